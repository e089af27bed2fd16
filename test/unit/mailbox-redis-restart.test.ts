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
import { Redis } from 'ioredis';
import { StreamingError } from '../../runtime/errors';
import type { LogMessage, TimeTickMessage } from '../../runtime/message/types';
import type { CollectionInfo } from '../../runtime/client/api';
import { encodeCommand, encodeItem } from '../../runtime/mailbox/commands';
import { ReplyKind, RequestKind, replyFields, requestFields } from '../../runtime/mailbox/envelope';
import { MAILBOX_GROUP, MailboxKeys } from '../../runtime/mailbox/redis/keys';
import { RedisMailbox } from '../../runtime/mailbox/redis/redis-mailbox';
import type { MailboxStream } from '../../runtime/mailbox/mailbox';
import type { WireFields } from '../../runtime/mailbox/wire';
import { startRedis, type RedisProcess } from '../support/cluster-harness';
import { eventually } from '../support/wal-fixture';

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

function flat(fields: WireFields, extra: Array<[string, string]> = []): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  for (const [k, v] of fields) out.push(k, v);
  for (const [k, v] of extra) out.push(k, v);
  return out;
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

  let admin: Redis | undefined;
  afterEach(() => {
    admin?.disconnect();
    admin = undefined;
  });

  async function adminConnection(): Promise<Redis> {
    admin = new Redis({ host: '127.0.0.1', port: redis!.port, lazyConnect: true, maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
    await admin.connect();
    return admin;
  }

  async function killClient(a: Redis, connectionName: string): Promise<void> {
    const list = (await a.client('LIST')) as string;
    const line = list.split('\n').find((l) => l.includes(`name=${connectionName} `));
    if (!line) throw new Error(`no connection named ${connectionName}`);
    await a.client('KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!);
  }

  async function connect(name: string): Promise<RedisMailbox> {
    const m = await RedisMailbox.connect({ redis: { host: '127.0.0.1', port: redis!.port, connectionName: name }, prefix: PREFIX, blockMs: 1000, heartbeatMs: 500 });
    mailboxes.push(m);
    return m;
  }

  /** A server at ADDRESS answering describeCollection; returns the names it was asked for, in order. */
  async function serveDescribe(name: string): Promise<string[]> {
    const server = await connect(name);
    const names: string[] = [];
    await server.serve(ADDRESS, {
      describeCollection: async (c) => {
        names.push(c.name);
        return info(c.name);
      },
    });
    return names;
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
    await eventually(() => outcomes.length > 200 && items.length > 100, 10_000, 'load and stream running');

    await redis!.kill9();
    const killedAt = Date.now();
    await redis!.restart();
    const restartedAt = Date.now();

    // Served again within seconds: a fresh request after the restart is answered, well before its deadline.
    const t0 = Date.now();
    await expect(client.request(ADDRESS, { type: 'describeCollection', name: 'after' }, { timeoutMs: 20_000 })).resolves.toMatchObject({ name: 'after' });
    const firstAnswerMs = Date.now() - t0;

    const okAfter = (): number => outcomes.filter((o) => o.ok && o.sentAt >= restartedAt).length;
    await eventually(() => okAfter() > 100, 10_000, 'load answered again after the restart');
    // The stream continues or ended with a retriable error.
    const itemsAtRestart = items.length;
    await eventually(() => streamDone || items.length > itemsAtRestart + 100, 10_000, 'stream continued or failed');
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

  it('after a dropped inbox connection, handles the entries a lost read had claimed — once', async () => {
    const names = await serveDescribe('claim-server');
    const a = await adminConnection();
    const key = new MailboxKeys(PREFIX).inbox(ADDRESS);
    // What a read does whose reply never arrives: Redis hands the entry to the server's consumer
    // (XREADGROUP in one transaction with the XADD, so the blocked server read does not get it).
    const fields = requestFields({ kind: RequestKind.call, id: 'lost.1', replyTo: 'nobody', deadline: Date.now() + 30_000, command: encodeCommand({ type: 'describeCollection', name: 'claimed' }) });
    await a.multi().xadd(key, '*', ...flat(fields)).xreadgroup('GROUP', MAILBOX_GROUP, 'server', 'COUNT', 10, 'STREAMS', key, '>').exec();
    const pending = async (): Promise<number> => Number(((await a.xpending(key, MAILBOX_GROUP)) as [number])[0]);
    expect(await pending()).toBe(1);
    // The connection drops (as when Redis restarts): the reader re-reads its pending entries.
    await killClient(a, 'claim-server-inbox-node.n0');
    await eventually(async () => names.includes('claimed') && (await pending()) === 0, 10_000, 'claimed entry handled and acknowledged');
    // An ordinary request still works, and the claimed one ran once.
    const client = await connect('claim-client');
    await expect(client.request(ADDRESS, { type: 'describeCollection', name: 'after' }, { timeoutMs: 5000 })).resolves.toMatchObject({ name: 'after' });
    expect(names.filter((n) => n === 'claimed')).toEqual(['claimed']);
  });

  it('drops the second copy of a request or a reply that was written twice (re-sent after a reconnect)', async () => {
    const names = await serveDescribe('dup-server');
    const a = await adminConnection();
    const keys = new MailboxKeys(PREFIX);
    const inbox = keys.inbox(ADDRESS);
    const request = requestFields({ kind: RequestKind.call, id: 'dup.1', replyTo: 'nobody', deadline: Date.now() + 30_000, command: encodeCommand({ type: 'describeCollection', name: 'twice' }) });
    await a.xadd(inbox, '*', ...flat(request, [['q', 'feedfeed.1']]));
    await a.xadd(inbox, '*', ...flat(request, [['q', 'feedfeed.1']]));
    await a.xadd(inbox, '*', ...flat(requestFields({ kind: RequestKind.call, id: 'dup.2', replyTo: 'nobody', deadline: Date.now() + 30_000, command: encodeCommand({ type: 'describeCollection', name: 'next' }) }), [['q', 'feedfeed.2']]));
    const pending = async (): Promise<number> => Number(((await a.xpending(inbox, MAILBOX_GROUP)) as [number])[0]);
    await eventually(async () => names.includes('next') && (await pending()) === 0, 10_000, 'requests handled and all three entries acknowledged');
    expect(names).toEqual(['twice', 'next']);

    // Replies: a stream whose items arrive twice. Nobody serves `quiet`: the test answers in its place.
    const client = await connect('dup-client');
    const opening = client.openStream('quiet', { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000 });
    let entry: [string, string[]] | undefined;
    await eventually(async () => {
      entry = ((await a.xrange(keys.inbox('quiet'), '-', '+')) as Array<[string, string[]]>)[0];
      return entry !== undefined;
    }, 5000, 'open request in the inbox');
    const f = entry![1];
    const id = f[f.indexOf('id') + 1]!;
    const replies = keys.replies(client.clientId);
    const item = (i: number): (string | Buffer)[] => flat(replyFields({ kind: ReplyKind.item, id, payload: encodeItem('subscribe', tick(i)) }), [['q', `beef.${i + 2}`]]);
    await a.xadd(replies, '*', ...flat(replyFields({ kind: ReplyKind.open, id }), [['q', 'beef.1']]));
    await a.xadd(replies, '*', ...item(0));
    await a.xadd(replies, '*', ...item(0)); // the copy
    await a.xadd(replies, '*', ...item(1));
    await a.xadd(replies, '*', ...flat(replyFields({ kind: ReplyKind.end, id }), [['q', 'beef.4']]));
    const stream = await opening;
    const got: string[] = [];
    for await (const m of stream) got.push(m.id);
    expect(got).toEqual(['id-0', 'id-1']);
  });
});
