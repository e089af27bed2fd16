/**
 * The Redis Streams WAL backend across a Redis crash: a redis-server of the test's own (appendonly
 * yes, appendfsync always, free port, temp dir — test/support/cluster-harness.ts) is killed with
 * SIGKILL while appends and a tail reader are in flight, then restarted on the same port and
 * directory, with the backend (URL form: it owns a reconnecting connection) still open.
 *
 * Every append in flight at the kill settles within seconds — acknowledged, or a retriable error
 * whose outcome is unknown (ioredis 6.0.0 would leave it pending for ever: redis/ioredis#2193) —,
 * appends work again on the same log, nothing acknowledged is lost, and the tail reader reads on
 * without a gap or a repeat.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { RedisWalBackend } from '../../storage/wal/redis/redis-backend';
import { startRedis, type RedisProcess } from '../support/cluster-harness';
import { eventually } from '../support/wal-fixture';

jest.setTimeout(60_000);

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('redis wal backend across a redis-server kill -9 and restart, connection kept (appendonly yes, appendfsync always)', () => {
  let dir: string;
  let redis: RedisProcess | undefined;
  let backend: RedisWalBackend | undefined;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-wal-restart-'));
    redis = await startRedis(dir, { aof: true });
  });

  afterEach(async () => {
    await backend?.close();
    backend = undefined;
    await redis?.stop();
    redis = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('settles the appends in flight at the kill within seconds, appends and tails on after the restart, and loses nothing acknowledged', async () => {
    backend = await RedisWalBackend.connect({ redis: redis!.url, keyPrefix: 'restart:', tailBlockMs: 1000 });
    const log = await backend.open({ name: 'p', term: 1, accessMode: 'rw' });

    // A tail reader from the start, in the background.
    const abort = new AbortController();
    const read: string[] = [];
    let readError: unknown;
    const reading = (async () => {
      try {
        for await (const e of log.read({ policy: { type: 'all' }, signal: abort.signal })) read.push(e.id);
      } catch (e) {
        readError = e;
      }
    })();

    const acked: string[] = [];
    const outcomes: Array<{ ok: boolean; ms: number; sentAt: number; error?: unknown }> = [];
    let stop = false;
    const writers = Promise.all(
      [0, 1, 2, 3].map(async (w) => {
        for (let n = 0; !stop; n++) {
          const sentAt = Date.now();
          try {
            const ids = await log.append([bytes(`w${w}-${n}-a`), bytes(`w${w}-${n}-b`)]);
            acked.push(...ids);
            outcomes.push({ ok: true, ms: Date.now() - sentAt, sentAt });
          } catch (e) {
            outcomes.push({ ok: false, ms: Date.now() - sentAt, sentAt, error: e });
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }),
    );
    await eventually(() => acked.length > 400 && read.length > 100, 10_000, 'appends running');

    await redis!.kill9();
    await redis!.restart();
    const restartedAt = Date.now();

    const ackedAfter = (): number => outcomes.filter((o) => o.ok && o.sentAt >= restartedAt).length;
    await eventually(() => ackedAfter() > 50, 10_000, 'appends acknowledged again after the restart');
    stop = true;
    await writers;
    const lastAcked = [...acked].sort().pop()!;
    await eventually(() => read.includes(lastAcked) || readError !== undefined, 10_000, 'the tail reader read past the last acknowledged append');
    abort.abort();
    await reading;

    expect(readError).toBeUndefined();
    // Nothing waited long: the appends in flight at the kill settled within seconds of it.
    expect(outcomes.filter((o) => o.ms >= 5000)).toEqual([]);
    for (const o of outcomes.filter((x) => !x.ok)) expect(o.error).toMatchObject({ retriable: true });
    // In order, once each, and every acknowledged record is there (appendfsync always).
    for (let i = 1; i < read.length; i++) expect(read[i]! > read[i - 1]!).toBe(true);
    const seen = new Set(read);
    expect(acked.filter((id) => !seen.has(id))).toEqual([]);
  });
});
