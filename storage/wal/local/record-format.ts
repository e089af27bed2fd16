/**
 * On-disk record: `u32 LE payload length | u32 LE CRC32 | payload`. The CRC (zlib.crc32) covers
 * the four length bytes and then the payload, so a corrupt length field is caught too, and a
 * zero-filled tail (which a crash can leave on some file systems) never parses as a record:
 * the CRC of four zero bytes is not zero.
 */
import { crc32 } from '../../../runtime/crc32';
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

const CRC_TABLE = ((): Int32Array => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC32 of the four length bytes at `at` (what recordCrc continues over the payload from). */
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
  return recordCrc(buf, at, payload) === buf.readUInt32LE(at + 4);
}

/** Bytes needed to see the whole record at `at` (the header alone when its length is unknown). */
export function bytesNeeded(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
  const length = buf.readUInt32LE(at);
  return RECORD_HEADER_BYTES + Math.min(length, MAX_RECORD_BYTES);
}
