/**
 * Node leases and coordinator election on the Redis MetaStore (real Redis on 127.0.0.1:6379,
 * short TTLs, polling with deadlines).
 */
import { randomUUID } from 'node:crypto';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import { RedisMetaStore } from '../../storage/meta/redis/redis-meta-store';
import type { Lease, MetaStore } from '../../storage/meta/meta-store';
import { NodeMembership, watchNodes } from '../../runtime/server/cluster/membership';
import { CoordinatorElection } from '../../runtime/server/cluster/election';
import { eventually } from '../support/wal-fixture';

const logger = createLogger('test');
const TTL = 600;
const RENEW = 150;

describe('cluster membership and election', () => {
  const stores: MetaStore[] = [];
  const prefix = `walstream-test-${randomUUID().slice(0, 8)}:`;
  const connect = async (): Promise<RedisMetaStore> => {
    const s = await RedisMetaStore.connect({ prefix, reapIntervalMs: 100 });
    stores.push(s);
    return s;
  };
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  test('a registered node is seen up; a closed one down; a node whose lease is lost self-fences and registers again', async () => {
    const coord = await connect();
    const ups: string[] = [];
    const downs: string[] = [];
    const unwatch = await watchNodes(coord, (i) => ups.push(i.nodeId), (id) => downs.push(id));
    const nodeStore = await connect();
    let fenced = 0;
    const m = await NodeMembership.register(nodeStore, { nodeId: 'n1', address: 'n1', startedAt: 0, pid: 1 }, { ttlMs: TTL, renewIntervalMs: RENEW, clock: systemClock, logger, onLost: async () => void fenced++ });
    await eventually(() => ups.includes('n1'), 5000, 'n1 up');
    // Steal the lease: its key is deleted, renew answers false → fence and re-register.
    const lease = (m as unknown as { lease: Lease }).lease;
    await lease.revoke();
    await eventually(() => fenced === 1, 5000, 'self-fence');
    await eventually(() => downs.includes('n1') && ups.filter((x) => x === 'n1').length === 2, 5000, 'down then up again');
    expect(m.alive).toBe(true);
    await m.close();
    await eventually(() => downs.filter((x) => x === 'n1').length === 2, 5000, 'down after close');
    await unwatch();
  });

  test('a node paused past its TTL fences before anything else when it wakes', async () => {
    const store = await connect();
    let fenced = 0;
    const m = await NodeMembership.register(store, { nodeId: 'n2', address: 'n2', startedAt: 0, pid: 2 }, { ttlMs: TTL, renewIntervalMs: RENEW, clock: systemClock, logger, onLost: async () => void fenced++ });
    // Block the event loop longer than the TTL (what SIGSTOP does to the process).
    const until = Date.now() + TTL + 100;
    while (Date.now() < until) {
      /* paused */
    }
    await eventually(() => fenced === 1, 5000, 'fenced after the pause');
    await m.close();
  });

  test('one leader at a time; a standby takes over with a higher epoch when the leader steps down', async () => {
    const events: string[] = [];
    const make = async (id: string) =>
      new CoordinatorElection(await connect(), id, {
        ttlMs: TTL,
        renewIntervalMs: RENEW,
        clock: systemClock,
        logger,
        onElected: async (l) => void events.push(`${id}:elected:${l.epoch}`),
        onDeposed: async () => void events.push(`${id}:deposed`),
      });
    const a = await make('a');
    const b = await make('b');
    a.start();
    await eventually(() => a.isLeader, 5000, 'a leads');
    b.start();
    await new Promise((r) => setTimeout(r, 3 * RENEW)); // b campaigns a few rounds meanwhile
    expect(b.isLeader).toBe(false);
    const epochA = a.epoch!;
    await a.close();
    await eventually(() => b.isLeader, 5000, 'b leads');
    expect(b.epoch!).toBeGreaterThan(epochA);
    expect(events).toEqual([`a:elected:${epochA}`, 'a:deposed', `b:elected:${b.epoch}`]);
    await b.close();
  });
});
