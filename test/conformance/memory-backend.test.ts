import { describeWalBackendConformance } from './wal-backend.suite';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';

describeWalBackendConformance('memory', async () => ({
  backend: new MemoryWalBackend(),
  cleanup: async () => undefined,
}));

// The same suite with injected append latency (0–3 ms, varying per batch): order and fencing must not depend on it.
describeWalBackendConformance('memory-with-latency', async () => ({
  backend: new MemoryWalBackend({ appendLatencyMs: (records) => records.length % 4 }),
  cleanup: async () => undefined,
}));
