/**
 * Multi-process cluster tests: real `walstream coordinator` and `walstream node` processes, a Redis
 * of the test's own, the Redis Streams WAL. Node kill -9, split brain by SIGSTOP, coordinator
 * kill -9 during a reassignment, Redis restart with AOF.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { loadConfig } from '../../config/load';
import { connectClusterClient } from '../../runtime/server/cluster/cluster-coordinator';
import type { Client } from '../../runtime/client/client';
import { pchannelOf, type LogMessage } from '../../runtime/message/types';
import { toLogMessage } from '../../runtime/message/codec';
import { RedisWalBackend } from '../../storage/wal/redis/redis-backend';
import { SCHEMA, eventually, schemaRows } from '../support/wal-fixture';
import { startRedis, startWalstream, testClusterFlags, type RedisProcess, type WalstreamProcess } from '../support/cluster-harness';

jest.setTimeout(180_000);

interface Cluster {
  dir: string;
  redis: RedisProcess;
  prefix: string;
  coordinators: WalstreamProcess[];
  nodes: WalstreamProcess[];
  client: Client;
  closeClient(): Promise<void>;
  flags: Record<string, string>;
}

async function startCluster(opts: { aof?: boolean; nodes?: number; coordinators?: number } = {}): Promise<Cluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-cluster-'));
  const redis = await startRedis(dir, { aof: opts.aof ?? false });
  const prefix = 'ws';
  const flags = {
    ...testClusterFlags(redis.url, prefix),
    'objectStore.local.dir': path.join(dir, 'objects'),
    dataDir: path.join(dir, 'data'),
  };
  const coordinators = await Promise.all(Array.from({ length: opts.coordinators ?? 1 }, (_, i) => startWalstream('coordinator', `coord-${i}`, flags)));
  const nodes = await Promise.all(Array.from({ length: opts.nodes ?? 3 }, (_, i) => startWalstream('node', `n${i}`, flags)));
  const { client, close } = await connectClusterClient(loadConfig({ flags: { 'redis.url': redis.url, 'redis.keyPrefix': prefix } }));
  await eventually(async () => (await client.status({ timeoutMs: 5000 }).catch(() => undefined))?.pchannels.every((p) => p.state === 'ASSIGNED') ?? false, 60_000, 'every pchannel assigned');
  return { dir, redis, prefix, coordinators, nodes, client, closeClient: close, flags };
}

async function stopCluster(c: Cluster | undefined): Promise<void> {
  if (!c) return;
  await c.closeClient().catch(() => undefined);
  await Promise.all([...c.nodes, ...c.coordinators].map((p) => p.kill9()));
  await c.redis.stop();
  await fs.rm(c.dir, { recursive: true, force: true });
}

const rows = schemaRows;

function pksOf(m: LogMessage): number[] {
  if (m.type === 'Insert') return m.body.columns.find((c) => c.name === 'id')!.data as number[];
  if (m.type === 'Txn') return m.body.messages.flatMap(pksOf);
  return [];
}

/** A write load of several concurrent writers; every insert has a deadline longer than a failover. */
function writeLoad(client: Client, writers: number) {
  let stop = false;
  let next = 1;
  const acked: number[] = [];
  const failures: unknown[] = [];
  const done = Promise.all(
    Array.from({ length: writers }, async () => {
      while (!stop) {
        const from = next;
        next += 4;
        try {
          await client.insert({ collection: 'c', columns: rows(from, 4) }, { timeoutMs: 30_000 });
          for (let i = 0; i < 4; i++) acked.push(from + i);
        } catch (e) {
          failures.push(e);
          return; // a failed insert fails the test; stop this writer
        }
      }
    }),
  );
  return {
    acked,
    failures,
    async stop() {
      stop = true;
      await done;
    },
  };
}

/** Reads every vchannel of `c` from the start until all `want` keys are seen; checks order and once-only. */
async function verifyDelivered(client: Client, want: number[]): Promise<void> {
  const info = await client.describeCollection('c');
  const wanted = new Set(want);
  const seen: number[] = [];
  const seenSet = new Set<number>();
  await Promise.all(
    info.vchannels.map(async (vchannel) => {
      const sub = client.subscribe({ vchannel, policy: { type: 'all' }, filters: { types: ['Insert'] } });
      const timer = setTimeout(() => sub.close(), 60_000);
      let lastTt = -1n;
      for await (const m of sub) {
        expect(m.timetick > lastTt).toBe(true);
        lastTt = m.timetick;
        for (const pk of pksOf(m)) {
          seen.push(pk);
          seenSet.add(pk);
        }
        if (seen.length >= wanted.size && [...wanted].every((pk) => seenSet.has(pk))) break;
      }
      clearTimeout(timer);
      sub.close();
    }),
  );
  expect(seen.length).toBe(seenSet.size);
  expect(want.filter((pk) => !seenSet.has(pk))).toEqual([]);
}

/** In each pchannel's log, terms never go back: no write of an older owner after a newer one's. */
async function verifyOneWriterPerTerm(c: Cluster, pchannels: string[]): Promise<Map<string, number[]>> {
  const backend = await RedisWalBackend.connect({ redis: c.redis.url, keyPrefix: `${c.prefix}:wal:` });
  const termsByPchannel = new Map<string, number[]>();
  try {
    for (const p of pchannels) {
      const log = await backend.open({ name: p, term: 0, accessMode: 'ro' });
      const last = await lastId(log);
      const terms: number[] = [];
      const abort = new AbortController();
      if (last !== undefined) {
        for await (const e of log.read({ policy: { type: 'all' }, signal: abort.signal })) {
          const m = toLogMessage(e);
          const prev = terms[terms.length - 1];
          if (prev === undefined || prev !== m.term) terms.push(m.term);
          if (e.id >= last) break;
        }
      }
      abort.abort();
      await log.close();
      for (let i = 1; i < terms.length; i++) expect(terms[i]!).toBeGreaterThan(terms[i - 1]!);
      termsByPchannel.set(p, terms);
    }
  } finally {
    await backend.close();
  }
  return termsByPchannel;
}

async function lastId(log: Awaited<ReturnType<RedisWalBackend['open']>>): Promise<string | undefined> {
  const abort = new AbortController();
  let last: string | undefined;
  const it = log.read({ policy: { type: 'all' }, signal: abort.signal })[Symbol.asyncIterator]();
  // The log is not growing any more when this is called: read until a short quiet period.
  for (;;) {
    const r = await Promise.race([it.next(), new Promise<'quiet'>((res) => setTimeout(() => res('quiet'), 300))]);
    if (r === 'quiet' || r.done) break;
    last = r.value.id;
  }
  abort.abort();
  return last;
}

async function ownerOf(client: Client, pchannel: string): Promise<{ node: string | undefined; term: number; state: string }> {
  const p = (await client.status({ timeoutMs: 10_000 })).pchannels.find((x) => x.name === pchannel)!;
  return { node: p.node, term: p.term, state: p.state };
}

describe('cluster (multi-process)', () => {
  let c: Cluster | undefined;
  afterEach(async () => {
    await stopCluster(c);
    c = undefined;
  });

  test('a node is kill -9ed under load: its pchannels move, clients wait and continue, nothing acknowledged is lost or doubled', async () => {
    c = await startCluster();
    const info = await c.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const load = writeLoad(c.client, 6);
    await eventually(() => load.acked.length > 200 || load.failures.length > 0, 30_000, 'load running');
    expect(load.failures).toEqual([]);
    const st = await c.client.status();
    const victim = c.nodes.find((n) => st.nodes.find((x) => x.id === n.id)!.pchannels.length > 0)!;
    const moved = st.pchannels.filter((p) => p.node === victim.id).map((p) => ({ name: p.name, term: p.term }));
    const killedAt = Date.now();
    await victim.kill9();
    await eventually(async () => {
      const now = await c!.client.status({ timeoutMs: 5000 }).catch(() => undefined);
      return moved.every((m) => {
        const p = now?.pchannels.find((x) => x.name === m.name);
        return p !== undefined && p.state === 'ASSIGNED' && p.node !== victim.id && p.term > m.term;
      });
    }, 30_000, 'pchannels of the killed node reassigned');
    const failoverMs = Date.now() - killedAt;
    const ackedAtMove = load.acked.length;
    await eventually(() => load.acked.length > ackedAtMove + 200, 30_000, 'load continues after the move');
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(failoverMs).toBeLessThan(15_000);
    await verifyDelivered(c.client, load.acked);
    const pchannels = [...new Set(info.vchannels.map((v) => pchannelOf(v)))];
    const terms = await verifyOneWriterPerTerm(c, pchannels);
    for (const m of moved) if (terms.has(m.name)) expect(terms.get(m.name)!.length).toBeGreaterThanOrEqual(2);
  });

  test('split brain: a node paused (SIGSTOP) until its pchannels moved writes nothing after it wakes, and gives up its WALs', async () => {
    c = await startCluster();
    await c.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const load = writeLoad(c.client, 4);
    await eventually(() => load.acked.length > 100 || load.failures.length > 0, 30_000, 'load running');
    const st = await c.client.status();
    const victim = c.nodes.find((n) => st.nodes.find((x) => x.id === n.id)!.pchannels.length > 0)!;
    const moved = st.pchannels.filter((p) => p.node === victim.id).map((p) => ({ name: p.name, term: p.term }));
    victim.signal('SIGSTOP');
    // The term each pchannel got on the node that took it over.
    const takenOver = new Map<string, number>();
    await eventually(async () => {
      const now = await c!.client.status({ timeoutMs: 5000 }).catch(() => undefined);
      return moved.every((m) => {
        const p = now?.pchannels.find((x) => x.name === m.name);
        if (p === undefined || p.state !== 'ASSIGNED' || p.node === victim.id || p.term <= m.term) return false;
        takenOver.set(m.name, p.term);
        return true;
      });
    }, 30_000, 'pchannels of the paused node reassigned');
    victim.signal('SIGCONT');
    // It notices its lease is gone and drops every WAL; the coordinator sees it come back empty-handed.
    await eventually(() => victim.output().includes('node self-fenced'), 15_000, 'self-fence after waking');
    // Once back (empty-handed), rebalancing may give it a pchannel again: only at a term above the
    // one its successor got, never at the term it held when it was paused.
    await eventually(async () => {
      const now = await c!.client.status({ timeoutMs: 5000 }).catch(() => undefined);
      const n = now?.nodes.find((x) => x.id === victim.id);
      return (
        n !== undefined &&
        moved.every((m) => {
          if (!n.pchannels.includes(m.name)) return true;
          const p = now!.pchannels.find((x) => x.name === m.name);
          return p !== undefined && p.node === victim.id && p.term > takenOver.get(m.name)!;
        })
      );
    }, 30_000, 'paused node holds none of its old pchannels at an old term');
    const ackedNow = load.acked.length;
    await eventually(() => load.acked.length > ackedNow + 100 || load.failures.length > 0, 30_000, 'load continues');
    await load.stop();
    expect(load.failures).toEqual([]);
    // Nothing of the old terms landed after the new terms began.
    const terms = await verifyOneWriterPerTerm(c, moved.map((m) => m.name));
    for (const m of moved) expect(terms.get(m.name)!.filter((t) => t === m.term).length).toBeLessThanOrEqual(1);
    await verifyDelivered(c.client, load.acked);
  });

  test('the coordinator is kill -9ed during a reassignment: a standby finishes it', async () => {
    c = await startCluster({ coordinators: 2 });
    await c.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const load = writeLoad(c.client, 4);
    await eventually(() => load.acked.length > 100 || load.failures.length > 0, 30_000, 'load running');
    await eventually(() => c!.coordinators.some((p) => p.output().includes('leading\n')), 10_000, 'a leader');
    const leader = c.coordinators.find((p) => p.output().includes('leading\n'))!;
    expect(leader).toBeDefined();
    const st = await c.client.status();
    const victim = c.nodes.find((n) => st.nodes.find((x) => x.id === n.id)!.pchannels.length > 0)!;
    const moved = st.pchannels.filter((p) => p.node === victim.id).map((p) => ({ name: p.name, term: p.term }));
    await victim.kill9();
    // The node's lease expires (TTL 3 s); kill the leader around the time it starts moving its pchannels.
    await new Promise((r) => setTimeout(r, 3_000));
    await leader.kill9();
    const standby = c.coordinators.find((p) => p !== leader)!;
    await eventually(() => standby.output().includes('leading\n'), 30_000, 'standby takes over');
    await eventually(async () => {
      const now = await c!.client.status({ timeoutMs: 5000 }).catch(() => undefined);
      return (
        now !== undefined &&
        now.pchannels.every((p) => p.state === 'ASSIGNED' && p.node !== victim.id) &&
        moved.every((m) => now.pchannels.find((p) => p.name === m.name)!.term > m.term)
      );
    }, 45_000, 'reassignment finished by the standby');
    const ackedNow = load.acked.length;
    await eventually(() => load.acked.length > ackedNow + 100 || load.failures.length > 0, 30_000, 'load continues');
    await load.stop();
    expect(load.failures).toEqual([]);
    await verifyDelivered(c.client, load.acked);
  });

  test('Redis restarts (AOF on): the cluster resumes and loses no acknowledged message', async () => {
    c = await startCluster({ aof: true });
    await c.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const load = writeLoad(c.client, 4);
    await eventually(() => load.acked.length > 100 || load.failures.length > 0, 30_000, 'load running');
    await c.redis.kill9();
    await c.redis.restart();
    const ackedNow = load.acked.length;
    await eventually(() => load.acked.length > ackedNow + 100 || load.failures.length > 0, 60_000, 'load continues after the restart').catch((e: unknown) => {
      if (process.env.WALSTREAM_DEBUG_CLUSTER) for (const p of [...c!.nodes, ...c!.coordinators]) console.log(p.id, p.output().slice(-3000));
      throw e;
    });
    await load.stop();
    if (load.failures.length > 0 && process.env.WALSTREAM_DEBUG_CLUSTER) for (const p of [...c.nodes, ...c.coordinators]) console.log(p.id, p.output().slice(-4000));
    expect(load.failures).toEqual([]);
    await verifyDelivered(c.client, load.acked);
  });
});
