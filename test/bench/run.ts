/**
 * `npm run bench`: runs every benchmark and prints its tables. `BENCH=name` runs one
 * (wal-append, transfer, recovery, cluster); `BENCH_DURATION_MS` sets the length of timed runs (default 3000).
 */
import * as os from 'node:os';
import { runWalAppendBench } from './wal-append.bench';
import { runTransferBench } from './transfer.bench';
import { runRecoveryBench } from './recovery.bench';
import { runClusterBench } from './cluster.bench';

const BENCHES: Record<string, () => Promise<void>> = {
  'wal-append': runWalAppendBench,
  transfer: runTransferBench,
  recovery: runRecoveryBench,
  cluster: runClusterBench,
};

async function main(): Promise<void> {
  const only = process.env.BENCH;
  console.log(`walstream benchmarks — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
  for (const [name, run] of Object.entries(BENCHES)) {
    if (only && only !== name) continue;
    await run();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
