/** forEachEntry: the entries of a log in order until the taker stops, batched where the backend can. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forEachEntry, type LogEntry, type WalBackend } from '../../storage/wal/backend';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';

const payload = (i: number): Uint8Array => Buffer.from(`entry-${i}`);

describe.each([
  ['local (batches)', (dir: string): WalBackend => new LocalWalBackend({ dir, fsync: 'interval', readChunkBytes: 4096 })],
  ['memory (one by one)', (): WalBackend => new MemoryWalBackend()],
])('forEachEntry on the %s backend', (_name, make) => {
  let dir: string;
  let backend: WalBackend;

  beforeEach(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-foreach-'));
    backend = make(dir);
  });

  afterEach(async () => {
    await backend.close();
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  async function logWith(n: number): Promise<Awaited<ReturnType<WalBackend['open']>>> {
    const log = await backend.open({ name: 'p', term: 1, accessMode: 'rw' });
    for (let i = 0; i < n; i += 100) await log.append(Array.from({ length: Math.min(100, n - i) }, (_, k) => payload(i + k + 1)));
    return log;
  }

  it('hands out every entry from the start position in order, and stops where the taker says', async () => {
    const log = await logWith(1_000);
    const ids: LogEntry[] = [];
    await forEachEntry(log, { policy: { type: 'all' } }, (e) => {
      ids.push({ id: e.id, data: Buffer.from(e.data) });
      return ids.length < 1_000;
    });
    expect(ids.map((e) => Buffer.from(e.data).toString())).toEqual(Array.from({ length: 1_000 }, (_, i) => `entry-${i + 1}`));
    const from: string[] = [];
    const start = ids[499]!.id;
    await forEachEntry(log, { policy: { type: 'startFrom', id: start }, transient: true }, (e) => {
      from.push(Buffer.from(e.data).toString());
      return from.length < 10;
    });
    expect(from).toEqual(Array.from({ length: 10 }, (_, i) => `entry-${500 + i}`));
    await log.close();
  });

  it('ends when the caller\'s signal aborts, at the tail as well', async () => {
    const log = await logWith(10);
    const ac = new AbortController();
    let taken = 0;
    const done = forEachEntry(log, { policy: { type: 'all' }, signal: ac.signal }, () => {
      taken++;
      if (taken === 10) setImmediate(() => ac.abort()); // the reader then waits at the tail
      return true;
    });
    await done;
    expect(taken).toBe(10);
    // The log still takes appends, and a new iteration sees them.
    await log.append([payload(11)]);
    const all: string[] = [];
    await forEachEntry(log, { policy: { type: 'all' } }, (e) => all.push(Buffer.from(e.data).toString()) < 11);
    expect(all).toEqual(Array.from({ length: 11 }, (_, i) => `entry-${i + 1}`));
    await log.close();
  });
});
