/**
 * A timestamp source shared by every process of a cluster: one Lua script on Redis hands out
 * ranges of hybrid timestamps (see tso-allocate-1.lua), so timeticks are globally monotonic across
 * nodes and terms without a round trip to the coordinator. WALs batch over it with TsoAllocator.
 * Monotonic across Redis restarts as long as Redis persists (AOF) or its clock is ahead of the last
 * physical time handed out.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import { ErrorCode, StreamingError, invalidArgument } from '../../errors';
import { composeTimetick } from '../../message/timetick';
import { MAX_ALLOCATE_COUNT, type TimestampRange, type TimestampSource } from '../oracle';

const SCRIPT = 'tso-allocate';
const COMMAND = 'walstreamTsoAllocate';

type WithTso = Redis & { [COMMAND](key: string, count: number): Promise<[number, number]> };

/** The TSO key of a cluster. */
export function tsoKey(prefix: string): string {
  return `${prefix}:tso`;
}

export class RedisTimestampSource implements TimestampSource {
  private readonly redis: WithTso;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
  ) {
    if (!(COMMAND in redis)) {
      redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: readFileSync(path.join(__dirname, `${SCRIPT}-1.lua`), 'utf8') });
    }
    this.redis = redis as WithTso;
  }

  async allocate(count: number): Promise<TimestampRange> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_ALLOCATE_COUNT) throw invalidArgument(`count must be an integer in [1, ${MAX_ALLOCATE_COUNT}]`, { field: 'count' });
    let r: [number, number];
    try {
      r = await this.redis[COMMAND](tsoKey(this.keyPrefix), count);
    } catch (e) {
      throw new StreamingError(ErrorCode.INNER, `timestamp allocation on Redis failed: ${String(e)}`, { cause: e, retriable: true });
    }
    return { first: composeTimetick(Number(r[0]), Number(r[1])), count };
  }
}
