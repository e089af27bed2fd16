/**
 * Cluster benchmark (real processes, a Redis of its own, the Redis Streams WAL):
 * - unavailability after kill -9 of a node: from the kill to the first successful append to each
 *   of its pchannels on the new owner, p50/p99 over ≥ 10 runs (default lease TTL 3 s);
 * - append throughput of the cluster through the mailbox, beside `redis-benchmark` XADD with
 *   pipelining of the same payload size against the same Redis, in the same run.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../../config/load';
import { connectClusterClient } from '../../runtime/server/cluster/cluster-coordinator';
import { startRedis, startWalstream, type WalstreamProcess } from '../support/cluster-harness';
import { fmt, percentile, printTable, progress } from './table';
import { pchannelOf } from '../../runtime/message/types';

const run = promisify(execFile);
const DIM = 112;
const SCHEMA = { fields: [{ name: 'id', type: 'int64' as const, primaryKey: true }, { name: 'vec', type: 'floatVector' as const, dim: DIM }] };

export async function runClusterBench(): Promise<void> {
  const runs = Number(process.env.BENCH_FAILOVERS ?? 10);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-cluster-bench-'));
  const redis = await startRedis(dir);
  const flags = {
    'redis.url': redis.url,
    'redis.keyPrefix': 'wsb',
    'wal.backend': 'redis',
    'pchannels.count': '4',
    'coordinator.balanceIntervalMs': '1000',
    'objectStore.local.dir': path.join(dir, 'objects'),
    dataDir: path.join(dir, 'data'),
  };
  const procs: WalstreamProcess[] = [];
  const nodes = new Map<string, WalstreamProcess>();
  const { client, close } = await connectClusterClient(loadConfig({ flags: { 'redis.url': redis.url, 'redis.keyPrefix': 'wsb' } }));
  try {
    procs.push(await startWalstream('coordinator', 'coord', flags));
    for (const id of ['n0', 'n1', 'n2']) nodes.set(id, await startWalstream('node', id, flags));
    const ready = async (): Promise<void> => {
      for (;;) {
        const st = await client.status({ timeoutMs: 5000 }).catch(() => undefined);
        if (st && st.pchannels.every((p) => p.state === 'ASSIGNED') && st.nodes.length === nodes.size) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await ready();
    const info = await client.createCollection({ name: 'bench', schema: SCHEMA, shards: 4 });
    let pk = 0;
    const row = () => {
      const id = ++pk;
      return [{ name: 'id', type: 'int64' as const, data: [id] }, { name: 'vec', type: 'floatVector' as const, dim: DIM, data: new Float32Array(DIM).fill(id) }];
    };

    // Throughput through the mailbox: 64 concurrent appenders for a few seconds.
    progress('cluster append throughput');
    const duration = Number(process.env.BENCH_DURATION_MS ?? 3000);
    let n = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() - t0 < duration) {
          await client.insert({ collection: 'bench', columns: row() });
          n++;
        }
      }),
    );
    const rate = n / ((performance.now() - t0) / 1000);
    progress('redis-benchmark XADD with pipelining');
    const payload = 'x'.repeat(600);
    const { stdout } = await run('redis-benchmark', ['-p', String(redis.port), '-n', '200000', '-P', '64', '-q', 'XADD', 'benchstream', 'MAXLEN', '~', '100000', '*', 'd', payload]);
    const rb = Number(/([\d.]+) requests per second/.exec(stdout)?.[1] ?? NaN);

    // Failover: kill -9 a node owning pchannels; time until every one of them takes an append again.
    const unavailable: number[] = [];
    const vchannelOf = new Map(info.vchannels.map((v) => [pchannelOf(v), v]));
    for (let r = 0; r < runs; r++) {
      const st = await client.status();
      const victimId = st.nodes.find((x) => x.pchannels.length > 0)!.id;
      const owned = st.pchannels.filter((p) => p.node === victimId).map((p) => ({ name: p.name, term: p.term }));
      progress(`failover ${r + 1}/${runs}: kill -9 ${victimId} (${owned.map((o) => o.name).join(', ')})`);
      const killedAt = performance.now();
      await nodes.get(victimId)!.kill9();
      const times = await Promise.all(
        owned.map(async (o) => {
          const shard = info.vchannels.indexOf(vchannelOf.get(o.name)!);
          for (;;) {
            try {
              // A single-row insert keyed to land on this shard's vchannel.
              const txn = await client.beginTxn('bench', { shard, timeoutMs: 30_000 });
              await txn.insert(row());
              await txn.commit();
              return performance.now() - killedAt;
            } catch {
              /* not ready yet */
            }
          }
        }),
      );
      unavailable.push(Math.max(...times));
      nodes.set(victimId, await startWalstream('node', victimId, flags));
      await ready();
    }
    unavailable.sort((a, b) => a - b);
    printTable('Cluster: failover and throughput (3 node processes, Redis Streams WAL, lease TTL 3000 ms)', [
      { what: `unavailability after kill -9 of a node (${runs} runs)`, p50: `${fmt(percentile(unavailable, 50))} ms`, p99: `${fmt(percentile(unavailable, 99))} ms`, note: 'goal: < TTL + 1 s = 4000 ms' },
      { what: 'cluster appends through the mailbox (64 appenders)', p50: `${fmt(rate)} msg/s`, p99: '', note: '' },
      { what: 'redis-benchmark XADD, pipeline 64, same payload', p50: `${fmt(rb)} op/s`, p99: '', note: `ratio ${fmt(rate / rb, 3)}` },
    ]);
  } finally {
    await close().catch(() => undefined);
    await Promise.all([...procs, ...nodes.values()].map((p) => p.kill9()));
    await redis.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
