/**
 * Standalone benchmark: how long a client is blocked by a planned transfer. One appender writes to
 * a vchannel without pause; the pchannel is transferred between the two nodes ≥ 20 times. For each
 * transfer, "blocked" = the longest append latency among appends in flight during the transfer.
 * Beside it, in the same run: the latency of a plain append (no transfer) and the transfer's own
 * duration as the coordinator measures it (close on the old node + open and recovery on the new).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { loadConfig } from '../../config/load';
import { StandaloneServer } from '../../runtime/server/standalone';
import { fmt, percentile, printTable, progress } from './table';
import { pchannelOf } from '../../runtime/message/types';

const SCHEMA = {
  fields: [
    { name: 'id', type: 'int64' as const, primaryKey: true },
    { name: 'vec', type: 'floatVector' as const, dim: 8 },
  ],
};

export async function runTransferBench(): Promise<void> {
  const transfers = Number(process.env.BENCH_TRANSFERS ?? 30);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-transfer-'));
  const server = await StandaloneServer.start(loadConfig({ flags: { dataDir: dir, 'wal.local.fsync': 'always' } }));
  try {
    const c = server.client;
    const info = await c.createCollection({ name: 'bench', schema: SCHEMA });
    const vchannel = info.vchannels[0]!;
    const pchannel = pchannelOf(vchannel);
    let pk = 0;
    const row = () => {
      const id = ++pk;
      return [
        { name: 'id', type: 'int64' as const, data: [id] },
        { name: 'vec', type: 'floatVector' as const, dim: 8, data: new Float32Array(8).fill(id) },
      ];
    };
    // Plain append latency, no transfer.
    const plain: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t = performance.now();
      await c.insert({ collection: 'bench', columns: row() });
      plain.push(performance.now() - t);
    }
    plain.sort((a, b) => a - b);

    // One appender without pause while the pchannel moves back and forth.
    const samples: { start: number; end: number }[] = [];
    let stop = false;
    let failures = 0;
    const appender = (async () => {
      while (!stop) {
        const start = performance.now();
        try {
          await c.insert({ collection: 'bench', columns: row() }, { timeoutMs: 30_000 });
        } catch {
          failures++;
        }
        samples.push({ start, end: performance.now() });
      }
    })();
    const blocked: number[] = [];
    const took: number[] = [];
    for (let i = 0; i < transfers; i++) {
      progress(`transfer ${i + 1}/${transfers}`);
      const t0 = performance.now();
      const r = await c.transfer(pchannel);
      const t1 = performance.now();
      took.push(r.tookMs);
      // Let the appender get through the switch, then measure the appends that overlapped it.
      const n = samples.length;
      while (samples.length < n + 20) await new Promise((res) => setImmediate(res));
      const overlapping = samples.filter((s) => s.end >= t0 && s.start <= t1);
      blocked.push(Math.max(0, ...overlapping.map((s) => s.end - s.start)));
    }
    stop = true;
    await appender;
    blocked.sort((a, b) => a - b);
    took.sort((a, b) => a - b);
    printTable(`Planned transfer of one pchannel, standalone, local backend fsync=always (${transfers} transfers, one appender without pause)`, [
      { what: 'plain append latency (no transfer)', p50: fmt(percentile(plain, 50), 2), p99: fmt(percentile(plain, 99), 2), unit: 'ms' },
      { what: 'transfer duration (coordinator)', p50: fmt(percentile(took, 50), 2), p99: fmt(percentile(took, 99), 2), unit: 'ms' },
      { what: 'client blocked by a transfer', p50: fmt(percentile(blocked, 50), 2), p99: fmt(percentile(blocked, 99), 2), unit: 'ms' },
      { what: 'failed appends', p50: failures, p99: '', unit: 'count' },
    ]);
  } finally {
    await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
