/**
 * The WalBackend conformance suite on the Redis Streams backend, against the Redis at
 * WALSTREAM_TEST_REDIS_URL (default redis://127.0.0.1:6379). Every fixture uses a fresh key prefix
 * and deletes its keys afterwards. If Redis does not answer, every test FAILS (it is not skipped).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describeWalBackendConformance, type WalBackendFixture } from './wal-backend.suite';
import { RedisWalBackend, type RedisWalBackendOptions } from '../../storage/wal/redis/redis-backend';

const REDIS_URL = process.env.WALSTREAM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN = `${process.pid}-${randomBytes(4).toString('hex')}`;
let fixtures = 0;

/** A client on the test Redis, or a failure that says what to do. */
async function testRedis(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch (e) {
    client.disconnect();
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (${e instanceof Error ? e.message : String(e)}). ` +
        `The Redis WAL conformance tests need a Redis >= 6.2: start redis-server there or set WALSTREAM_TEST_REDIS_URL.`,
    );
  }
}

async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

function redisFixture(mode: 'url' | 'client', extra: Partial<RedisWalBackendOptions> = {}) {
  return async (): Promise<WalBackendFixture> => {
    const admin = await testRedis();
    const keyPrefix = `walstream-test:wal:${RUN}:${mode}-${fixtures++}:`;
    const backend = await RedisWalBackend.connect({ redis: mode === 'url' ? REDIS_URL : admin, keyPrefix, ...extra });
    return {
      backend,
      cleanup: async () => {
        try {
          await deleteKeys(admin, backend.keys.allKeysPattern());
          expect(backend.tailConnections).toBe(0); // every tail reader gave its connection back
        } finally {
          await admin.quit();
        }
      },
    };
  };
}

// The backend creates (and quits) its command connection from a URL; default chunk size.
describeWalBackendConformance('redis', redisFixture('url'));
// A given client (left open by close()), and chunks of 7 so catch-up reads cross many chunk borders.
describeWalBackendConformance('redis-shared-client-small-chunks', redisFixture('client', { readChunk: 7 }));
