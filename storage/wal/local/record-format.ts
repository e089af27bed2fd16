/**
 * On-disk record: `u32 LE payload length | u32 LE CRC32 | payload`. The CRC (zlib.crc32) covers
 * the four length bytes and then the payload, so a corrupt length field is caught too, and a
 * zero-filled tail (which a crash can leave on some file systems) never parses as a record:
 * the CRC of four zero bytes is not zero.
 */
import { type Crc32Shift, Crc32Shifts, crc32, crc32Small, shiftCrc32 } from '../../../runtime/crc32';
import { invalidArgument } from '../../../runtime/errors';

export const RECORD_HEADER_BYTES = 8;
/** Largest payload accepted, in bytes (256 MiB). Also bounds the length field when parsing. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

/** recordLength: not all of the record's bytes are in the buffer. */
export const INCOMPLETE = -1;
/** recordLength: the length field is out of range (recordChecksOut: the bytes do not check out). */
export const CORRUPT = -2;

/** Bytes one batch takes on disk; throws INVALID_ARGUMENT for an oversized record. */
export function encodedBytes(records: readonly Uint8Array[]): number {
  let total = 0;
  for (const r of records) {
    if (r.length > MAX_RECORD_BYTES) {
      throw invalidArgument(`record of ${r.length} bytes exceeds the maximum of ${MAX_RECORD_BYTES}`, { bytes: r.length, max: MAX_RECORD_BYTES });
    }
    total += RECORD_HEADER_BYTES + r.length;
  }
  return total;
}

/** Encodes `records` into `buf` at `at`; returns the offset after the last record. */
export function encodeRecordsInto(buf: Buffer, at: number, records: readonly Uint8Array[]): number {
  let off = at;
  for (const r of records) {
    buf.writeUInt32LE(r.length, off);
    buf.set(r, off + RECORD_HEADER_BYTES);
    buf.writeUInt32LE(recordCrc(buf, off, r), off + 4);
    off += RECORD_HEADER_BYTES + r.length;
  }
  return off;
}

/**
 * The CRC of the record at `at` in `buf` with payload `payload` (its own array on the write side,
 * the view a reader hands out on the read side), in one native crc32 call: the four length bytes
 * are folded in here in JS (a table lookup per byte), crc32 continues over the payload from that
 * value. The read side is split in two: recordLength looks at the header only, recordChecksOut
 * verifies the CRC.
 */
function recordCrc(buf: Buffer, at: number, payload: Uint8Array): number {
  const seed = lengthFieldCrc(buf, at);
  return crc32(payload, seed);
}

/** CRC32 of the four length bytes at `at` (what recordCrc continues over the payload from). */
function lengthFieldCrc(buf: Buffer, at: number): number {
  return crc32Small(buf, at, at + 4);
}

/**
 * Payload length of the record at `at` in `buf[0..end)` when all of its bytes are there, without
 * checking its CRC: INCOMPLETE when bytes are missing, CORRUPT when the length field is out of range.
 */
export function recordLength(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return INCOMPLETE;
  const length = buf.readUInt32LE(at);
  if (length > MAX_RECORD_BYTES) return CORRUPT;
  return end - at - RECORD_HEADER_BYTES < length ? INCOMPLETE : length;
}

/** Whether the record at `at`, whose payload bytes `payload` are (a view of `buf`), matches its CRC. */
export function recordChecksOut(buf: Buffer, at: number, payload: Uint8Array): boolean {
  return recordCrc(buf, at, payload) === buf.readUInt32LE(at + 4);
}

/** Bytes needed to see the whole record at `at` (the header alone when its length is unknown). */
export function bytesNeeded(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
  const length = buf.readUInt32LE(at);
  return RECORD_HEADER_BYTES + Math.min(length, MAX_RECORD_BYTES);
}

const shifts = new Crc32Shifts();
/** A run is checked by combination when it has at least this many records per distinct length. */
const RECORDS_PER_LENGTH = 4;

/**
 * End of the records from `at` on in `buf[0..end)` that are complete and check out: the offset of
 * the first record that is incomplete, has a length out of range or does not match its CRC (`end`
 * or `at` at the extremes). What recordChecksOut says record by record, with one native crc32 call
 * over all of the records instead of one per record (each call costs far more than its bytes: a
 * WAL chunk holds thousands of small records): the CRC of the whole run must be what the records'
 * stored CRCs make it (CRC-32 combination, see Crc32Shifts; the stored CRC of a record covers its
 * length field and payload, the run also holds the CRC fields). A run that does not add up is
 * checked record by record to find the first one that fails.
 */
export function checkedRecordsEnd(buf: Buffer, at: number, end: number): number {
  // The run, and its lengths: combining costs little per record of a length seen before (a log's
  // records mostly have few), more than a call of its own per record of a length seen once.
  let runEnd = at;
  let records = 0;
  const lengths = new Set<number>();
  for (let previous = -1; ; records++) {
    const n = recordLength(buf, runEnd, end);
    if (n < 0) break;
    if (n !== previous) lengths.add(n);
    previous = n;
    runEnd += RECORD_HEADER_BYTES + n;
  }
  if (records === 0) return at;
  if (lengths.size * RECORDS_PER_LENGTH <= records && crc32(buf.subarray(at, runEnd)) === runCrc(buf, at, runEnd)) return runEnd;
  // Lengths that keep changing, or a run that does not add up: record by record, to the first that fails.
  let p = at;
  while (p < runEnd) {
    const n = buf.readUInt32LE(p);
    if (!recordChecksOut(buf, p, buf.subarray(p + RECORD_HEADER_BYTES, p + RECORD_HEADER_BYTES + n))) return p;
    p += RECORD_HEADER_BYTES + n;
  }
  return runEnd;
}

/** The CRC of the bytes of the (complete) records in buf[at, end) if each matches its stored CRC. */
function runCrc(buf: Buffer, at: number, end: number): number {
  let expected = 0;
  // Shifts past a payload and past a whole record of the current length (kept by `shifts`, and
  // table-driven once used often; undefined for a length past those it keeps: shifted bit by bit).
  let length = -1;
  let payload: Crc32Shift | undefined;
  let record: Crc32Shift | undefined;
  for (let off = at; off < end; ) {
    const n = buf.readUInt32LE(off);
    if (n !== length) {
      length = n;
      payload = shifts.of(n);
      record = shifts.of(RECORD_HEADER_BYTES + n);
    }
    const lengthCrc = lengthFieldCrc(buf, off);
    const headerCrc = crc32Small(buf, off + 4, off + RECORD_HEADER_BYTES, lengthCrc); // length and CRC fields
    // crc(length‖crc‖payload) = shift(crc(length‖crc), n) ^ crc(payload), and the stored CRC is
    // crc(length‖payload) = shift(crc(length), n) ^ crc(payload).
    const whole = ((payload ? payload.apply(headerCrc ^ lengthCrc) : shiftCrc32(headerCrc ^ lengthCrc, n)) ^ buf.readUInt32LE(off + 4)) >>> 0;
    if (off === at) expected = whole;
    else expected = ((record ? record.apply(expected) : shiftCrc32(expected, RECORD_HEADER_BYTES + n)) ^ whole) >>> 0;
    off += RECORD_HEADER_BYTES + n;
  }
  return expected;
}
