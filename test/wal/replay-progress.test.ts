import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import { encodeMessage } from '../../runtime/message/codec';
import type { Message } from '../../runtime/message/types';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { recover, type ReplayProgress } from '../../actors/recovery-storage/replay';

test('replay reports progress with a total, a rate and an ETA, and a final report', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-replay-'));
  const meta = await EmbeddedMetaStore.open({ dir });
  const backend = new MemoryWalBackend();
  try {
    const log = await backend.open({ name: 'r0', term: 1, accessMode: 'rw' });
    const tick = (tt: bigint): Uint8Array => encodeMessage({ type: 'TimeTick', vchannel: '', timetick: tt, lastConfirmedId: '', term: 1, header: {}, body: {} } as Message);
    for (let i = 0; i < 20; i++) await log.append(Array.from({ length: 500 }, (_, j) => tick(BigInt(1 + i * 500 + j))));
    const [untilId] = await log.append([tick(1_000_000n)]);
    const reports: ReplayProgress[] = [];
    const r = await recover({ pchannel: 'r0', log, meta, untilId: untilId!, clock: systemClock, logger: createLogger('test'), onProgress: (p) => reports.push(p), progressEveryMs: 0 });
    expect(r.replayed).toBe(10_000);
    expect(reports.length).toBeGreaterThan(100);
    const last = reports[reports.length - 1]!;
    expect(last).toMatchObject({ done: true, replayed: 10_000, total: 10_000, etaSec: 0 });
    for (let i = 1; i < reports.length; i++) expect(reports[i]!.replayed).toBeGreaterThanOrEqual(reports[i - 1]!.replayed);
    expect(reports[0]!.total).toBe(10_000);
    expect(reports.slice(0, -1).every((p) => p.etaSec !== undefined && p.ratePerSec > 0)).toBe(true);
  } finally {
    await backend.close();
    await meta.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
