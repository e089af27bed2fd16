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
    buf.writeUInt32LE(checksum(buf, off, r.length), off + 4);
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

/** Bytes needed to see the whole record at `at` (the header alone when its length is unknown). */
export function bytesNeeded(buf: Buffer, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
  const length = buf.readUInt32LE(at);
  return RECORD_HEADER_BYTES + Math.min(length, MAX_RECORD_BYTES);
}
