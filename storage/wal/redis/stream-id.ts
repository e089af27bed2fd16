/**
 * Message ids of the Redis WAL backend, and their mapping to and from Redis stream ids.
 *
 * A Redis stream id is `<ms>-<seq>`, two unsigned 64-bit integers, ordered by (ms, seq). A message id
 * is the same two numbers in decimal, each left-padded with zeros to 20 digits (the width of
 * 2^64 − 1), joined by `-`:
 *
 *     Redis  1767225600000-3
 *     id     00000001767225600000-00000000000000000003     (41 characters)
 *
 * Fixed width makes plain string order equal stream order (runtime/message/message-id.ts), the full
 * 64-bit range of both parts is representable (no id Redis can hand out is refused), and stripping
 * the zeros gives back the id `redis-cli XRANGE` shows. Conversions are string operations (no BigInt)
 * except for `predecessorStreamId`.
 */
import type { MessageId } from '../../../runtime/message/message-id';
import { invalidArgument, unrecoverable } from '../../../runtime/errors';

const PART_WIDTH = 20;
const U64_MAX = '18446744073709551615';
const U64_MAX_BIG = (1n << 64n) - 1n;
const MESSAGE_ID_RE = /^(\d{20})-(\d{20})$/;
const STREAM_ID_RE = /^(\d{1,20})-(\d{1,20})$/;

/** The smallest stream id; never an entry's id (Redis refuses 0-0), so "after 0-0" is "from the start". */
export const MIN_STREAM_ID = '0-0';
/** The largest stream id; nothing can come after it. */
export const MAX_STREAM_ID = `${U64_MAX}-${U64_MAX}`;

/** `ms-seq` as Redis writes it → the fixed-width message id. Throws UNRECOVERABLE on anything else. (Hot path of reads.) */
export function toMessageId(streamId: string): MessageId {
  const dash = streamId.indexOf('-');
  const ms = streamId.slice(0, dash);
  const seq = streamId.slice(dash + 1);
  if (dash < 0 || !STREAM_ID_RE.test(streamId) || !fitsU64(ms) || !fitsU64(seq)) {
    throw unrecoverable(`Redis returned a malformed stream id ${JSON.stringify(streamId)}`, { streamId });
  }
  return `${ms.padStart(PART_WIDTH, '0')}-${seq.padStart(PART_WIDTH, '0')}`;
}

/** Fixed-width message id → `ms-seq` for XRANGE/XREAD/XTRIM. Throws INVALID_ARGUMENT for an id of another format. */
export function toStreamId(id: MessageId): string {
  const m = typeof id === 'string' ? MESSAGE_ID_RE.exec(id) : null;
  if (!m || m[1]! > U64_MAX || m[2]! > U64_MAX) {
    throw invalidArgument(`not a message id of the redis wal backend: ${JSON.stringify(id)} (expected 20 digits, '-', 20 digits)`, { id });
  }
  return `${stripZeros(m[1]!)}-${stripZeros(m[2]!)}`;
}

/** True when `id` has the format of this backend's message ids. */
export function isRedisMessageId(id: unknown): id is MessageId {
  if (typeof id !== 'string') return false;
  const m = MESSAGE_ID_RE.exec(id);
  return m !== null && m[1]! <= U64_MAX && m[2]! <= U64_MAX;
}

/**
 * The stream id just below `streamId` (`ms-(seq-1)`, or `(ms-1)-max`), for turning an inclusive start
 * into the exclusive position XREAD takes. `0-0` and `0-1` map to `0-0` (no entry can be 0-0).
 */
export function predecessorStreamId(streamId: string): string {
  const [msText, seqText] = streamId.split('-') as [string, string];
  const ms = BigInt(msText);
  const seq = BigInt(seqText);
  if (seq > 0n) return `${ms}-${seq - 1n}`;
  if (ms > 0n) return `${ms - 1n}-${U64_MAX_BIG}`;
  return MIN_STREAM_ID;
}

function fitsU64(digits: string): boolean {
  if (digits.length < PART_WIDTH) return true;
  const d = stripZeros(digits);
  return d.length < PART_WIDTH || (d.length === PART_WIDTH && d <= U64_MAX);
}

function stripZeros(digits: string): string {
  return digits.replace(/^0+(?=\d)/, '');
}
