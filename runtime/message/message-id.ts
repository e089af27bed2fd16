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

/** Sequence-numbered backends (local files, memory) write ids as 16 hex digits of a 1-based sequence number. */
export function sequenceId(seq: number): MessageId {
  return seq.toString(16).padStart(16, '0');
}

export function sequenceOf(id: MessageId): number {
  return parseInt(id, 16);
}
