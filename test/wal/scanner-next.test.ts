/**
 * A subscription's next() may be called again before the previous call resolved (an iterator used
 * by hand, not by for-await): every call is answered, in call order, each with its own message.
 */
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { createCollection, insert, walFixture, type WalFixture } from '../support/wal-fixture';

const P = 'nx';
const V = `${P}_1v0`;

describe('subscription next() called concurrently', () => {
  let fx: WalFixture;
  afterEach(async () => fx.close());

  it('answers every pending call in call order, then ends them all on close', async () => {
    fx = await walFixture(new MemoryWalBackend());
    const wal = await fx.open(P, 1, { timetickIntervalMs: 60_000 });
    const first = await wal.ready();
    await wal.append(createCollection(V, 1));
    const sub = await wal.subscribe({ policy: { type: 'startAfter', id: first.lastPersistedId }, filters: { types: ['Insert'] } });
    const calls = [sub.next(), sub.next(), sub.next()];
    const a = await wal.append(insert(V, 1));
    const b = await wal.append(insert(V, 1));
    const [r1, r2] = await Promise.all([calls[0]!, calls[1]!]);
    expect([r1.done, r2.done]).toEqual([false, false]);
    expect([r1.value!.timetick, r2.value!.timetick]).toEqual([a.timetick, b.timetick]);
    sub.close();
    await expect(calls[2]!).resolves.toEqual({ value: undefined, done: true });
  });
});
