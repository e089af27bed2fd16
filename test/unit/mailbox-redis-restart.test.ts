/**
 * The Redis mailbox across a Redis crash: a redis-server of the test's own (appendonly yes,
 * appendfsync always, free port, temp dir — test/support/cluster-harness.ts) is killed with SIGKILL
 * while requests and a stream are in flight, then restarted on the same port and directory. Every
 * connection of both mailboxes must notice on its own and carry on: requests are answered again
 * within a few seconds (none waits for its whole deadline), requests in flight at the kill are
 * answered or fail fast with a retriable error, and an open stream either continues without a gap
 * or fails with a retriable error.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { StreamingError } from '../../runtime/errors';
import type { LogMessage, TimeTickMessage } from '../../runtime/message/types';
import type { CollectionInfo } from '../../runtime/client/api';
import { RedisMailbox } from '../../runtime/mailbox/redis/redis-mailbox';
import type { MailboxStream } from '../../runtime/mailbox/mailbox';
import { startRedis, type RedisProcess } from '../support/cluster-harness';

jest.setTimeout(60_000);

const PREFIX = 'restart';
const ADDRESS = 'node.n0';

function info(name: string): CollectionInfo {
  return { id: 1, name, schema: { fields: [] }, vchannels: [], partitions: [], state: 'normal' };
}

function tick(i: number): LogMessage {
  const m: TimeTickMessage = { type: 'TimeTick', vchannel: '', timetick: BigInt(1000 + i), lastConfirmedId: '', term: 1, header: {}, body: {} };
  return { ...m, id: `id-${i}`, size: 0 };
}

/** Polls `probe` until it is true or `timeoutMs` passed (then throws naming `what`). */
async function until(what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RedisMailbox across a redis-server kill -9 and restart (appendonly yes, appendfsync always)', () => {
  let dir: string;
  let redis: RedisProcess | undefined;
  const mailboxes: RedisMailbox[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-mailbox-restart-'));
    redis = await startRedis(dir, { aof: true });
  });

  afterEach(async () => {
    await Promise.all(mailboxes.splice(0).map((m) => m.close().catch(() => undefined)));
    await redis?.stop();
    redis = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function connect(name: string): Promise<RedisMailbox> {
    const m = await RedisMailbox.connect({ redis: { host: '127.0.0.1', port: redis!.port, connectionName: name }, prefix: PREFIX, blockMs: 1000, heartbeatMs: 500 });
    mailboxes.push(m);
    return m;
  }

  it('answers requests again within seconds, settles the ones in flight at the kill, and a stream continues or fails retriably', async () => {
    const server = await connect('restart-server');
    const client = await connect('restart-client');
    let handled = 0;
    let streamed = 0;
    await server.serve(ADDRESS, {
      describeCollection: async (c) => {
        handled++;
        return info(c.name);
      },
      subscribe: async () => {
        let i = 0;
        return {
          next: async () => {
            await new Promise((r) => setTimeout(r, 2));
            streamed++;
            return { value: tick(i++), done: false };
          },
          return: async () => ({ value: undefined, done: true }),
        };
      },
    });
    await expect(client.request(ADDRESS, { type: 'describeCollection', name: 'before' }, { timeoutMs: 5000 })).resolves.toMatchObject({ name: 'before' });

    // A stream, consumed in the background: items must come in order, without a gap or a repeat.
    const stream: MailboxStream<LogMessage> = await client.openStream(ADDRESS, { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 5000, credits: 16 });
    const items: number[] = [];
    let streamError: unknown;
    let streamDone = false;
    const consuming = (async () => {
      try {
        for (;;) {
          const r = await stream.next();
          if (r.done) break;
          items.push(Number(r.value.id.slice(3)));
        }
      } catch (e) {
        streamError = e;
      } finally {
        streamDone = true;
      }
    })();

    // Requests in flight all the time: 8 concurrent loops, each request with a 20 s deadline.
    let stop = false;
    const outcomes: Array<{ ok: boolean; ms: number; error?: unknown; sentAt: number }> = [];
    const load = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let n = 0; !stop; n++) {
          const sentAt = Date.now();
          try {
            await client.request(ADDRESS, { type: 'describeCollection', name: `w${w}-${n}` }, { timeoutMs: 20_000 });
            outcomes.push({ ok: true, ms: Date.now() - sentAt, sentAt });
          } catch (e) {
            outcomes.push({ ok: false, ms: Date.now() - sentAt, error: e, sentAt });
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }),
    );
    await until('load and stream running', 10_000, () => outcomes.length > 200 && items.length > 100);

    await redis!.kill9();
    const killedAt = Date.now();
    await redis!.restart();
    const restartedAt = Date.now();

    // Served again within seconds: a fresh request after the restart is answered, well before its deadline.
    const t0 = Date.now();
    await expect(client.request(ADDRESS, { type: 'describeCollection', name: 'after' }, { timeoutMs: 20_000 })).resolves.toMatchObject({ name: 'after' });
    const firstAnswerMs = Date.now() - t0;

    const okAfter = (): number => outcomes.filter((o) => o.ok && o.sentAt >= restartedAt).length;
    await until('load answered again after the restart', 10_000, () => okAfter() > 100);
    // The stream continues or ended with a retriable error.
    const itemsAtRestart = items.length;
    await until('stream continued or failed', 10_000, () => streamDone || items.length > itemsAtRestart + 100);
    stop = true;
    await load;
    stream.close();
    await consuming;

    expect(firstAnswerMs).toBeLessThan(5000);
    // Nothing waited for its whole deadline: every request in flight at the kill settled within seconds of the restart.
    const slow = outcomes.filter((o) => o.ms >= 10_000);
    expect(slow).toEqual([]);
    for (const o of outcomes.filter((x) => !x.ok)) expect(o.error).toMatchObject({ retriable: true });
    // Items in order, once each, without a gap (until the stream ended, if it did).
    for (let i = 1; i < items.length; i++) expect(items[i]).toBe(items[i - 1]! + 1);
    if (streamError !== undefined) {
      expect(streamError).toBeInstanceOf(StreamingError);
      expect(streamError).toMatchObject({ retriable: true });
    }
    expect(handled).toBeGreaterThan(0);
    expect(streamed).toBeGreaterThan(0);
    void killedAt;
  });
});
