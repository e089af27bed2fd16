/** Message ids of the sequence-numbered backends: 16 hex digits whose string order is the sequence order. */
import { compareMessageId, sequenceId, sequenceOf } from '../../runtime/message/message-id';
import { seededRandom } from '../../runtime/clock';

const reference = (seq: number): string => seq.toString(16).padStart(16, '0');

describe('sequenceId', () => {
  it('writes 16 lower-case hex digits of the sequence number, and sequenceOf reads it back', () => {
    const random = seededRandom(20261126);
    const seqs = [0, 1, 15, 16, 255, 65_535, 65_536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 48 + 12_345, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 70_000; i++) seqs.push(i);
    for (let i = 0; i < 10_000; i++) seqs.push(Math.floor(random.next() * Number.MAX_SAFE_INTEGER));
    for (const seq of seqs) {
      const id = sequenceId(seq);
      expect(id).toHaveLength(16);
      if (id !== reference(seq)) expect({ seq, id }).toEqual({ seq, id: reference(seq) });
      if (sequenceOf(id) !== seq) expect({ id, seq: sequenceOf(id) }).toEqual({ id, seq });
    }
    expect(sequenceId(0xfedcba9876)).toBe('000000fedcba9876');
    expect(sequenceId(Number.MAX_SAFE_INTEGER)).toBe('001fffffffffffff');
  });

  it('orders ids as their sequence numbers, across the 32-bit boundary too', () => {
    const seqs = [3, 2 ** 32 - 1, 2 ** 32, 10, 2 ** 40, 2 ** 32 + 1, 0, 9, 16];
    const byId = [...seqs].sort((a, b) => compareMessageId(sequenceId(a), sequenceId(b)));
    expect(byId).toEqual([...seqs].sort((a, b) => a - b));
  });
});
