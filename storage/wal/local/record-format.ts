/**
 * On-disk record: `u32 LE payload length | u32 LE CRC32 | payload`. The CRC (zlib.crc32) covers
 * the four length bytes and then the payload, so a corrupt length field is caught too, and a
 * zero-filled tail (which a crash can leave on some file systems) never parses as a record:
 * the CRC of four zero bytes is not zero.
 */
import { crc32 } from 'node:zlib';
import { invalidArgument } from '../../../runtime/errors';

export const RECORD_HEADER_BYTES = 8;
/** Largest payload accepted, in bytes (256 MiB). Also bounds the length field when parsing. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

/** probeRecord: not all of the record's bytes are in the buffer. */
export const INCOMPLETE = -1;
/** probeRecord: the bytes are there and do not check out. */
export const CORRUPT = -2;

function checksum(buf: Buffer, at: number, length: number): number {
  const c = crc32(buf.subarray(at, at + 4));
  return crc32(buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length), c);
}

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
    // checksum()'s value with one native call: the length bytes folded in JS, then the payload from
    // its own array (not for an empty one: zlib's crc32 of an array without memory is 0, not the seed).
    const seed = lengthFieldCrc(buf, off);
    buf.writeUInt32LE(r.length === 0 ? seed : crc32(r, seed), off + 4);
    off += RECORD_HEADER_BYTES + r.length;
  }
  return off;
}

/**
 * Checks the record starting at `at` in `buf[0..end)`: its payload length when complete and
 * valid, INCOMPLETE when bytes are missing, CORRUPT when they are present and wrong.
 */
export function probeRecord(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return INCOMPLETE;
  const length = buf.readUInt32LE(at);
  if (length > MAX_RECORD_BYTES) return CORRUPT;
  if (end - at - RECORD_HEADER_BYTES < length) return INCOMPLETE;
  return checksum(buf, at, length) === buf.readUInt32LE(at + 4) ? length : CORRUPT;
}

/**
 * The read side splits probeRecord in two, so that a reader checks a record with one native crc32
 * call (the payload, on the view it hands out anyway) instead of two plus two subarrays:
 * recordLength looks at the header only, recordChecksOut verifies the CRC. The four length bytes
 * are folded in here in JS (a table lookup per byte); crc32 then continues over the payload from
 * that value, which gives exactly checksum()'s result.
 */
const CRC_TABLE = ((): Int32Array => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC32 of the four length bytes at `at` (what checksum() starts the payload's CRC from). */
function lengthFieldCrc(buf: Buffer, at: number): number {
  let c = -1;
  for (let i = at; i < at + 4; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
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
  return crc32(payload, lengthFieldCrc(buf, at)) === buf.readUInt32LE(at + 4);
}

/** Bytes needed to see the whole record at `at` (the header alone when its length is unknown). */
export function bytesNeeded(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
  const length = buf.readUInt32LE(at);
  return RECORD_HEADER_BYTES + Math.min(length, MAX_RECORD_BYTES);
}
