import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { RedisTimestampSource, tsoKey } from '../../runtime/tso/redis/redis-timestamp-source';
import { TsoAllocator } from '../../runtime/tso';
import { physicalOf } from '../../runtime/message/timetick';
import { ErrorCode } from '../../runtime/errors';

describe('Redis timestamp source', () => {
  const prefix = `walstream-test-${randomUUID().slice(0, 8)}`;
  const clients: Redis[] = [];
  const connect = (): Redis => {
    const r = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false, maxRetriesPerRequest: 1 });
    clients.push(r);
    return r;
  };
  afterAll(async () => {
    await clients[0]?.del(tsoKey(prefix));
    await Promise.all(clients.map((c) => c.quit()));
  });

  test('ranges from several processes never overlap and increase; near the Redis clock', async () => {
    const sources = [new RedisTimestampSource(connect(), prefix), new RedisTimestampSource(connect(), prefix), new RedisTimestampSource(connect(), prefix)];
    const ranges = await Promise.all(Array.from({ length: 300 }, (_, i) => sources[i % 3]!.allocate(1 + (i % 7) * 1000)));
    const spans = ranges.map((r) => [r.first, r.first + BigInt(r.count) - 1n] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0] > spans[i - 1]![1]).toBe(true);
    const total = ranges.reduce((n, r) => n + r.count, 0);
    expect(total).toBe(ranges.map((r) => r.count).reduce((a, b) => a + b));
    expect(Math.abs(physicalOf(spans[0]![0]) - Date.now())).toBeLessThan(60_000);
  });

  test('a full logical range moves to the next millisecond', async () => {
    const s = new RedisTimestampSource(connect(), prefix);
    const a = await s.allocate(262_144);
    const b = await s.allocate(1);
    expect(b.first > a.first + 262_143n).toBe(true);
  });

  test('batches through TsoAllocator stay strictly increasing; bad counts are refused', async () => {
    const alloc = new TsoAllocator({ source: new RedisTimestampSource(connect(), prefix), batchSize: 100 });
    let last = 0n;
    for (let i = 0; i < 1000; i++) {
      const t = await alloc.allocate();
      expect(t > last).toBe(true);
      last = t;
    }
    await expect(new RedisTimestampSource(connect(), prefix).allocate(0)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});
