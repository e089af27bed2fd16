/**
 * The Redis the tests talk to (WALSTREAM_TEST_REDIS_URL, else REDIS_URL, else 127.0.0.1:6379) and
 * the helpers every Redis test needs: a connection that fails loudly when Redis does not answer
 * (these tests never skip), and key listing/deletion by pattern for cleaning up a test's prefix.
 */
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.WALSTREAM_TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const parsed = new URL(TEST_REDIS_URL);
/** Host and port of the test Redis, as ioredis options. */
export const TEST_REDIS = { host: parsed.hostname, port: Number(parsed.port || 6379) };

/** A client on `url`, or a failure naming what needs it and how to start one. */
export async function connectTestRedis(what: string, url: string = TEST_REDIS_URL): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch (e) {
    client.disconnect();
    throw new Error(
      `Redis is not reachable at ${url} (${e instanceof Error ? e.message : String(e)}). ${what} need it: ` +
        `start redis-server there (or set WALSTREAM_TEST_REDIS_URL). These tests do not skip.`,
    );
  }
}

export async function scanKeys(client: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}

/** Deletes every key matching `pattern`; returns how many. */
export async function deleteKeys(client: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await client.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
