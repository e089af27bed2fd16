/**
 * A message id is a backend position inside one pchannel. Every backend encodes its positions as
 * fixed-width strings, so that plain string order equals log order within a pchannel.
 * Ids of different pchannels or backends are not comparable.
 */
export type MessageId = string;

/** The id used before anything is known ("no position"). Sorts before every real id. */
export const NO_MESSAGE_ID: MessageId = '';

export function compareMessageId(a: MessageId, b: MessageId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function minMessageId(a: MessageId, b: MessageId): MessageId {
  if (a === NO_MESSAGE_ID) return b;
  if (b === NO_MESSAGE_ID) return a;
  return a < b ? a : b;
}

const HEX_CODES = [...'0123456789abcdef'].map((c) => c.charCodeAt(0));
const TWO_32 = 2 ** 32;

/**
 * Sequence-numbered backends (local files, memory) write ids as 16 hex digits of a 1-based sequence
 * number (a safe integer). Every entry read or appended gets one: the 16 character codes make one
 * flat string, about a fifth of the cost of `toString(16).padStart(16, '0')`, whose result is a
 * concatenation that each comparison would flatten again.
 */
export function sequenceId(seq: number): MessageId {
  const h = HEX_CODES;
  const hi = Math.floor(seq / TWO_32);
  const lo = seq >>> 0;
  return String.fromCharCode(
    h[(hi >>> 28) & 15]!, h[(hi >>> 24) & 15]!, h[(hi >>> 20) & 15]!, h[(hi >>> 16) & 15]!,
    h[(hi >>> 12) & 15]!, h[(hi >>> 8) & 15]!, h[(hi >>> 4) & 15]!, h[hi & 15]!,
    h[lo >>> 28]!, h[(lo >>> 24) & 15]!, h[(lo >>> 20) & 15]!, h[(lo >>> 16) & 15]!,
    h[(lo >>> 12) & 15]!, h[(lo >>> 8) & 15]!, h[(lo >>> 4) & 15]!, h[lo & 15]!,
  );
}

export function sequenceOf(id: MessageId): number {
  return parseInt(id, 16);
}
