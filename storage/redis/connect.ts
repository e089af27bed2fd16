/**
 * Connecting to Redis the same way everywhere (MetaStore, WAL backend, mailbox): the first attempt
 * does not retry (the caller decides what a missing Redis means) and fails with a clear, retriable
 * INNER error naming the address; afterwards the client's retry strategy applies to reconnects.
 * (A failed first attempt ends the client with status "end": calling `disconnect()` then would
 * leave ioredis's 2 s disconnect timer on an already-closed socket and keep the process alive.)
 */
import type { Redis } from 'ioredis';
import { ErrorCode, StreamingError } from '../../runtime/errors';

export function redisUnreachable(client: Redis, timeoutMs: number, e: unknown, what = 'cannot connect to Redis'): StreamingError {
  const { host, port } = client.options;
  const message = e instanceof Error ? e.message : String(e);
  return new StreamingError(ErrorCode.INNER, `${what} at ${host ?? '?'}:${port ?? '?'} (timeout ${timeoutMs} ms): ${message}. Is redis-server running there?`, {
    cause: e,
    details: { host, port },
  });
}

export async function connectOrExplain(client: Redis, timeoutMs: number): Promise<void> {
  const retryStrategy = client.options.retryStrategy;
  client.options.retryStrategy = () => null;
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    if (client.status !== 'end') client.disconnect();
    throw redisUnreachable(client, timeoutMs, e);
  } finally {
    client.options.retryStrategy = retryStrategy;
  }
}
