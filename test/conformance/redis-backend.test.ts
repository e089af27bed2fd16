/**
 * The WalBackend conformance suite on the Redis Streams backend, against the Redis at
 * WALSTREAM_TEST_REDIS_URL (default redis://127.0.0.1:6379). Every fixture uses a fresh key prefix
 * and deletes its keys afterwards. If Redis does not answer, every test FAILS (it is not skipped).
 */
import { randomBytes } from 'node:crypto';
import { describeWalBackendConformance, type WalBackendFixture } from './wal-backend.suite';
import { RedisWalBackend, type RedisWalBackendOptions } from '../../storage/wal/redis/redis-backend';
import { TEST_REDIS_URL, connectTestRedis, deleteKeys } from '../support/test-redis';

const REDIS_URL = TEST_REDIS_URL;
const RUN = `${process.pid}-${randomBytes(4).toString('hex')}`;
let fixtures = 0;



function redisFixture(mode: 'url' | 'client', extra: Partial<RedisWalBackendOptions> = {}) {
  return async (): Promise<WalBackendFixture> => {
    const admin = await connectTestRedis('The Redis WAL conformance tests');
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
