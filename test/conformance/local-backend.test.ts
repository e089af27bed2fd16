import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeWalBackendConformance } from './wal-backend.suite';
import { LocalWalBackend, type FsyncPolicy } from '../../storage/wal/local/local-backend';

function localFixture(fsync: FsyncPolicy, extra: { segmentBytes?: number } = {}) {
  return async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-local-conformance-'));
    return {
      backend: new LocalWalBackend({ dir, fsync, ...extra }),
      cleanup: () => fs.promises.rm(dir, { recursive: true, force: true }),
    };
  };
}

describeWalBackendConformance('local-fsync-always', localFixture('always'));
// Small segments: reads cross files, truncation deletes whole files, and queued calls share a write.
describeWalBackendConformance('local-fsync-always-small-segments', localFixture('always', { segmentBytes: 8 * 1024 }));
describeWalBackendConformance('local-fsync-interval', localFixture('interval'));
