/** ioredis connection options from the configured Redis URL (redis://[user:password@]host:port[/db]). */
import type { RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import { invalidArgument } from '../../errors';

export function redisOptionsFromUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidArgument(`redis.url is not a URL: ${url}`, { field: 'redis.url' });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw invalidArgument(`redis.url must start with redis:// or rediss://, got ${url}`, { field: 'redis.url' });
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** The same connection for BullMQ (which needs maxRetriesPerRequest: null on its blocking connections). */
export function bullConnection(o: RedisOptions): ConnectionOptions {
  return {
    host: o.host,
    port: o.port,
    ...(o.username ? { username: o.username } : {}),
    ...(o.password ? { password: o.password } : {}),
    ...(o.db !== undefined ? { db: o.db } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    maxRetriesPerRequest: null,
  };
}
