/**
 * Pacing of the recovery storage's dirty-message persists: under heavy traffic a persist per
 * `maxDirtyMessages` would write the MetaStore (and fsync the WAL's disk in standalone) every
 * millisecond; `minPersistGapMs` spaces them, while traffic still gets its state persisted
 * without waiting for the (long) interval.
 */
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { pchannelKey, type KeyWrite } from '../../storage/meta/meta-store';
import { createCollection, eventually, insert, walFixture, type WalFixture } from '../support/wal-fixture';

const P = 'pace';
const V = `${P}_1v0`;

/**
 * Records when each persist started (performance.now() ms of its first write: the metadata, or
 * the checkpoint alone), and the checkpoints written.
 */
function recordCheckpointWrites(fx: WalFixture, timeticks: bigint[] = []): number[] {
  const at: number[] = [];
  let started: number | undefined;
  const original = fx.meta.casOwnerWrite.bind(fx.meta);
  jest.spyOn(fx.meta, 'casOwnerWrite').mockImplementation((pchannel: string, term: number, writes: readonly KeyWrite[]) => {
    started ??= performance.now();
    const checkpoint = writes.find((w) => w.key === pchannelKey(P, 'checkpoint'));
    if (checkpoint && 'value' in checkpoint) {
      at.push(started);
      started = undefined;
      timeticks.push(BigInt((JSON.parse(checkpoint.value) as { timetick: string }).timetick));
    }
    return original(pchannel, term, writes);
  });
  return at;
}

/** Appends `n` inserts, `perWave` at a time, for at least `spanMs`. */
async function traffic(fx: WalFixture, n: number, spanMs: number): Promise<void> {
  const wal = await fx.open(P, 1, { timetickIntervalMs: 60_000 });
  await wal.ready();
  await wal.append(createCollection(V, 1));
  const t0 = performance.now();
  const waves = 20;
  for (let w = 0; w < waves; w++) {
    await Promise.all(Array.from({ length: n / waves }, () => wal.append(insert(V, 1))));
    const due = t0 + ((w + 1) * spanMs) / waves;
    while (performance.now() < due) await new Promise((r) => setImmediate(r));
  }
}

describe('recovery storage persist pacing', () => {
  let fx: WalFixture;
  afterEach(async () => fx.close());

  it('spaces dirty-message persists by minPersistGapMs and still persists under traffic', async () => {
    const gap = 150;
    fx = await walFixture(new MemoryWalBackend(), undefined, { recovery: { maxDirtyMessages: 5, minPersistGapMs: gap, persistIntervalMs: 60_000 } });
    const at = recordCheckpointWrites(fx);
    await traffic(fx, 400, 900);
    // 400 messages / 5 would be 80 persists; spaced by 150 ms over ~900 ms of traffic: a handful.
    await eventually(() => at.length >= 3, 5_000, 'dirty-message persists under traffic');
    expect(at.length).toBeLessThanOrEqual(Math.ceil(1_500 / gap));
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(gap - 5);
  });

  it('with minPersistGapMs 0 persists as often as maxDirtyMessages asks (one at a time)', async () => {
    fx = await walFixture(new MemoryWalBackend(), undefined, { recovery: { maxDirtyMessages: 5, minPersistGapMs: 0, persistIntervalMs: 60_000 } });
    const at = recordCheckpointWrites(fx);
    await traffic(fx, 400, 900);
    // Paced at 150 ms the same traffic gets at most ~7; unpaced, persists follow one another (each a
    // snapshot write with two fsyncs, a few ms here, tens under load).
    expect(at.length).toBeGreaterThan(8);
  });

  it('a persist due when the gap ends catches the last dirty messages without waiting for the interval', async () => {
    fx = await walFixture(new MemoryWalBackend(), undefined, { recovery: { maxDirtyMessages: 5, minPersistGapMs: 200, persistIntervalMs: 60_000 } });
    const timeticks: bigint[] = [];
    const at = recordCheckpointWrites(fx, timeticks);
    const wal = await fx.open(P, 1, { timetickIntervalMs: 60_000 });
    await wal.ready();
    await wal.append(createCollection(V, 1));
    await Promise.all(Array.from({ length: 10 }, () => wal.append(insert(V, 1))));
    await eventually(() => at.length >= 1, 5_000, 'first persist');
    const first = at[0]!;
    const last = await Promise.all(Array.from({ length: 10 }, () => wal.append(insert(V, 1))));
    await eventually(() => at.length >= 2, 5_000, 'persist after the gap');
    expect(at[1]! - first).toBeGreaterThanOrEqual(195);
    // The delayed persist covers every append made before it: nothing waits for the 60 s interval.
    const lastTimetick = last.reduce((a, r) => (r.timetick > a ? r.timetick : a), 0n);
    expect(timeticks[1]).toBeGreaterThanOrEqual(lastTimetick);
    expect(timeticks[0]).toBeLessThan(lastTimetick);
  });
});
