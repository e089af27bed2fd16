/**
 * The Mailbox conformance suite on Redis at 127.0.0.1:6379 (REDIS_URL overrides), plus Redis
 * specifics: the key layout, the consumer group, recovery after a reader connection is killed, and
 * a clear error when Redis does not answer. Every test uses its own key prefix and deletes it afterwards.
 * No Redis → these tests FAIL (they never skip): start one with `redis-server --port 6379`.
 */
import { Redis } from 'ioredis';
import { ErrorCode } from '../../runtime/errors';
import { MAILBOX_GROUP, MailboxKeys } from '../../runtime/mailbox/redis/keys';
import { RedisMailbox } from '../../runtime/mailbox/redis/redis-mailbox';
import type { MailboxOptions } from '../../runtime/mailbox/mailbox';
import { describeMailboxConformance, eventually } from './mailbox.suite';
import { TEST_REDIS, connectTestRedis, deleteKeys, scanKeys } from '../support/test-redis';
import { freePort } from '../support/cluster-harness';

const REDIS = TEST_REDIS;
const RUN = `walstream-test-mailbox-${process.pid}-${Date.now().toString(36)}`;
let seq = 0;
let admin: Redis;
let nodeMaxEntries = 100;

beforeAll(async () => {
  admin = await connectTestRedis('The Redis mailbox tests');
  const cfg = (await admin.config('GET', 'stream-node-max-entries')) as string[];
  nodeMaxEntries = Number(cfg[1] ?? 100) || 100;
});

afterAll(async () => {
  if (admin?.status === 'ready') {
    await deleteKeys(admin, `${RUN}*`);
    await admin.quit();
  } else {
    admin?.disconnect();
  }
});



function nextPrefix(): string {
  return `${RUN}-${++seq}`;
}

function connect(prefix: string, options: Partial<MailboxOptions> = {}, connectionName = 'walstream-mailbox-test'): Promise<RedisMailbox> {
  return RedisMailbox.connect({ redis: { ...REDIS, connectionName }, prefix, blockMs: 1000, heartbeatMs: 1000, ...options });
}

async function pending(key: string): Promise<number> {
  if ((await admin.exists(key)) === 0) return 0;
  const summary = (await admin.xpending(key, MAILBOX_GROUP)) as [number, ...unknown[]];
  return Number(summary[0]);
}

describeMailboxConformance('redis', async () => {
  const prefix = nextPrefix();
  const keys = new MailboxKeys(prefix);
  return {
    mailbox: (options) => connect(prefix, options),
    inboxLength: (address) => admin.xlen(keys.inbox(address)),
    pendingCount: (address) => pending(keys.inbox(address)),
    replyLength: (clientId) => admin.xlen(keys.replies(clientId)),
    replyStreamExists: async (clientId) => (await admin.exists(keys.replies(clientId))) === 1,
    deleteReplyStream: async (clientId) => {
      await admin.del(keys.replies(clientId));
    },
    trimSlack: nodeMaxEntries,
    cleanup: async () => {
      await deleteKeys(admin, `${prefix}:*`);
    },
  };
});

describe('RedisMailbox specifics', () => {
  it('keeps every key under {prefix}:mailbox: — one stream per inbox, one per client — with a consumer group and a TTL on reply streams', async () => {
    const prefix = nextPrefix();
    const server = await connect(prefix);
    const client = await connect(prefix, { clientId: 'client-1', replyTtlMs: 30_000 });
    try {
      await server.serve('coordinator', { getAssignment: async () => ({ version: 7, nodes: ['n1'], channels: [{ name: 'dml_0', term: 2, node: 'n1', state: 'ASSIGNED' }] }) });
      await server.serve('node.n1', { nodeStatus: async () => ({ nodeId: 'n1', wals: [] }) });
      await expect(client.request('coordinator', { type: 'getAssignment' }, { timeoutMs: 5000 })).resolves.toEqual({ version: 7, nodes: ['n1'], channels: [{ name: 'dml_0', term: 2, node: 'n1', state: 'ASSIGNED' }] });
      await expect(client.request('node.n1', { type: 'nodeStatus' }, { timeoutMs: 5000 })).resolves.toEqual({ nodeId: 'n1', wals: [] });
      const keys = await scanKeys(admin, `${prefix}*`);
      expect(keys.sort()).toEqual([`${prefix}:mailbox:coordinator`, `${prefix}:mailbox:node.n1`, `${prefix}:mailbox:reply:client-1`].sort());
      expect(await admin.type(`${prefix}:mailbox:coordinator`)).toBe('stream');
      const groups = (await admin.xinfo('GROUPS', `${prefix}:mailbox:coordinator`)) as unknown[][];
      expect(groups.map((g) => g[1])).toEqual([MAILBOX_GROUP]);
      const ttl = await admin.pttl(`${prefix}:mailbox:reply:client-1`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_000);
      // Binary values cross as raw bytes: the request entry holds the command JSON, not number arrays.
      const [entry] = (await admin.xrange(`${prefix}:mailbox:coordinator`, '-', '+')) as [string, string[]][];
      expect(entry?.[1]).toEqual(expect.arrayContaining(['k', 'call', 'c', '{"type":"getAssignment"}']));
    } finally {
      await client.close();
      await server.close();
      await deleteKeys(admin, `${prefix}*`);
    }
  });

  it('keeps serving after its blocking reader connections are killed', async () => {
    const prefix = nextPrefix();
    const name = `walstream-mailbox-kill-${process.pid}-${seq}`;
    const server = await connect(prefix, { blockMs: 200 }, name);
    const client = await connect(prefix, { blockMs: 200 }, `${name}-client`);
    try {
      await server.serve('srv', { describeCollection: async (c) => ({ id: 1, name: c.name, schema: { fields: [] }, vchannels: [], partitions: [], state: 'normal' }) });
      await expect(client.request('srv', { type: 'describeCollection', name: 'before' }, { timeoutMs: 5000 })).resolves.toMatchObject({ name: 'before' });
      const list = (await admin.client('LIST')) as string;
      const readers = list.split('\n').filter((l) => l.includes(`name=${name}-inbox-srv `) || l.includes(`name=${name}-client-reply `));
      expect(readers).toHaveLength(2);
      for (const line of readers) await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!);
      await eventually('served again after reconnect', async () =>
        client
          .request('srv', { type: 'describeCollection', name: 'after' }, { timeoutMs: 1000 })
          .then((r) => r.name === 'after')
          .catch(() => false),
      );
    } finally {
      await client.close();
      await server.close();
      await deleteKeys(admin, `${prefix}*`);
    }
  });

  it('fails with a clear INNER error when Redis does not answer, and refuses a keyPrefix or a bad prefix', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await RedisMailbox.connect({ redis: { host: '127.0.0.1', port }, prefix: nextPrefix() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.INNER, retriable: true });
    expect((err as Error).message).toContain(`cannot connect to Redis at 127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(RedisMailbox.connect({ redis: { ...REDIS, keyPrefix: 'x:' } })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(RedisMailbox.connect({ redis: REDIS, prefix: 'bad{tag}' })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});

