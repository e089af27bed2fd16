/**
 * The MetaStore conformance suite on Redis at 127.0.0.1:6379 (REDIS_URL overrides), plus the Redis
 * specifics: the key layout (prefix, hash tags), resync after the watch connection drops, and a clear
 * error when Redis does not answer. Every test uses its own key prefix and deletes it afterwards.
 * No Redis → these tests FAIL (they never skip): start one with `redis-server --port 6379`.
 */
import { Redis } from 'ioredis';
import { ErrorCode } from '../../runtime/errors';
import { pchannelKey } from '../../storage/meta/meta-store';
import { RedisMetaStore } from '../../storage/meta/redis/redis-meta-store';
import { describeMetaStoreConformance, eventually, Recorder } from './meta-store.suite';
import { TEST_REDIS, connectTestRedis, deleteKeys, scanKeys } from '../support/test-redis';
import { freePort } from '../support/cluster-harness';

const REDIS = TEST_REDIS;
const RUN = `walstream-test:meta:${process.pid}-${Date.now().toString(36)}`;
let seq = 0;

let admin: Redis;

beforeAll(async () => {
  admin = await connectTestRedis('The Redis MetaStore tests');
});

afterAll(async () => {
  if (admin.status === 'ready') {
    await deleteKeys(admin, `${RUN}:*`);
    await admin.quit();
  } else if (admin.status !== 'end') {
    admin.disconnect();
  }
});


function nextPrefix(): string {
  return `${RUN}:${++seq}:`;
}

async function connect(prefix: string, connectionName = 'walstream-meta-test'): Promise<RedisMetaStore> {
  return RedisMetaStore.connect({ redis: { ...REDIS, connectionName }, prefix, reapIntervalMs: 25 });
}

describeMetaStoreConformance('redis', async () => {
  const prefix = nextPrefix();
  const store = await connect(prefix);
  const peer = await connect(prefix);
  return {
    store,
    peers: [peer],
    ttlMs: 600,
    passTime: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    settleMs: 5000,
    cleanup: async () => {
      await deleteKeys(admin, `${prefix}*`);
    },
  };
});

describe('RedisMetaStore specifics', () => {
  it('fails with a clear INNER error when Redis does not answer', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await RedisMetaStore.connect({ redis: { host: '127.0.0.1', port }, prefix: nextPrefix() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.INNER, retriable: true });
    expect((err as Error).message).toContain(`cannot connect to Redis at 127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('keeps every key under the prefix, in the {m} or {p:<pchannel>} hash-tag group', async () => {
    const prefix = nextPrefix();
    const store = await connect(prefix);
    try {
      await store.put('nodes/1', 'a', { lease: await store.grantLease('node-1', 10_000) });
      await store.bumpTerm('dml_0', 0);
      await store.casOwnerWrite('dml_0', 1, [{ key: pchannelKey('dml_0', 'checkpoint'), value: 'cp' }]);
      await store.nextId('segment');
      await store.bumpVersion('assignment');
      await store.campaign('coord', 'c', 10_000);

      const keys = await scanKeys(admin, `${prefix}*`);
      expect(keys.sort()).toEqual(
        [
          `${prefix}{m}:counter:segment`,
          `${prefix}{m}:index`,
          `${prefix}{m}:kv:nodes/1`,
          `${prefix}{m}:leader-epoch:coord`,
          `${prefix}{m}:leader:coord`,
          `${prefix}{m}:lease-deadlines`,
          `${prefix}{m}:lease-seq`,
          `${prefix}{m}:lease:node-1.1`,
          `${prefix}{m}:lease:node-1.1:keys`,
          `${prefix}{m}:pchannels`,
          `${prefix}{m}:rev`,
          `${prefix}{m}:version:assignment`,
          `${prefix}{p:dml_0}:index`,
          `${prefix}{p:dml_0}:kv:pchannel/dml_0/checkpoint`,
          `${prefix}{p:dml_0}:rev`,
          `${prefix}{p:dml_0}:term`,
        ].sort(),
      );
      // The term and the owner data share one slot: the fence script is Redis Cluster safe.
      const tagOf = (k: string): string => /\{([^}]*)\}/.exec(k)?.[1] ?? k;
      expect(new Set(keys.filter((k) => k.includes('dml_0')).map(tagOf))).toEqual(new Set(['p:dml_0']));
      expect(await admin.pttl(`${prefix}{m}:kv:nodes/1`)).toBeGreaterThan(0);
    } finally {
      await store.close();
      await deleteKeys(admin, `${prefix}*`);
    }
  });

  it('tells watchers to resync after the watch connection drops, then keeps delivering', async () => {
    const prefix = nextPrefix();
    const connectionName = `walstream-meta-resync-${process.pid}-${seq}`;
    const store = await connect(prefix, connectionName);
    try {
      const rec = new Recorder();
      const versions: number[] = [];
      await store.watch('r/', rec.push);
      await store.watchVersion('assignment', (v) => versions.push(v));
      const v1 = await store.put('r/1', 'a');
      await rec.waitFor('first event', () => rec.changes().length >= 1, 5000);

      const clients = (await admin.client('LIST')) as string;
      const sub = clients.split('\n').find((line) => line.includes(`name=${connectionName}-sub `));
      expect(sub).toBeDefined();
      const id = /\bid=(\d+)/.exec(sub!)?.[1];
      // Changes while the watch connection is down are not delivered as events...
      await admin.client('KILL', 'ID', id!);
      await store.bumpVersion('assignment');
      await rec.waitFor('resync', (e) => e.type === 'resync', 10_000);
      // ...but the version watcher re-reads on resync, and new changes arrive again.
      await eventually('version 1 after resync', () => versions.at(-1) === 1, 5000);
      const v2 = await store.put('r/2', 'b');
      await rec.waitFor('event after reconnect', (e) => e.type === 'put' && e.key === 'r/2', 5000);
      expect(rec.changes()[0]).toEqual({ type: 'put', key: 'r/1', value: 'a', version: v1 });
      expect(rec.changes().at(-1)).toEqual({ type: 'put', key: 'r/2', value: 'b', version: v2 });
    } finally {
      await store.close();
      await deleteKeys(admin, `${prefix}*`);
    }
  });

  it('refuses a keyPrefix in the connection options and a prefix with braces', async () => {
    await expect(RedisMetaStore.connect({ redis: { ...REDIS, keyPrefix: 'x:' } })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(RedisMetaStore.connect({ redis: REDIS, prefix: 'bad{tag}:' })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});


