/**
 * manifest.json of a flushed segment: what the segment is, its schema, and for each data file its
 * row count, byte size and checksum, plus the segment's smallest and largest timetick. Timeticks
 * exceed 2^53, so JSON carries them as decimal strings. The JSON is pretty-printed with a fixed key
 * order, so the same segment always yields the same bytes.
 *
 * Format 2 (written) checksums a file with CRC-32 (`crc32`: 8 lower-case hex digits, zlib's CRC-32,
 * the one of gzip, of the WAL's records and of S3's x-amz-checksum-crc32; runtime/crc32.ts);
 * format 1 (still read) with SHA-256 (`sha256`: 64 hex digits). The checksum guards against torn
 * or damaged files, not against someone who could rewrite the manifest as well; CRC-32 does that
 * at ~5.8 GB/s here (~1.9 GB/s with zlib's) against SHA-256's ~1 GB/s, which was a tenth of a
 * flush's CPU.
 */
import { createHash } from 'node:crypto';
import { crc32 } from '../../runtime/crc32';
import type { CollectionSchema } from '../../runtime/message/types';
import type { Timetick } from '../../runtime/message/timetick';
import { validateSchema } from '../../runtime/message/validate';
import { SegmentCorruptError, SegmentCorruptReason } from './errors';
import { SEGMENT_FILES, type SegmentRef } from './layout';

/** Version of the segment file format (manifest + Arrow layout) that is written. */
export const SEGMENT_FORMAT_VERSION = 2;
/** Versions readers accept: 1 differs from 2 in the checksum only (SHA-256). */
export type SegmentFormatVersion = 1 | 2;

export type ChecksumAlgorithm = 'crc32' | 'sha256';

/** The checksum algorithm of each format version. */
export const CHECKSUM_OF_VERSION: Record<SegmentFormatVersion, ChecksumAlgorithm> = { 1: 'sha256', 2: 'crc32' };

/** A file's checksum: lower-case hex (8 digits for crc32, 64 for sha256). */
export interface FileChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
}

export interface SegmentFileInfo {
  /** File name inside the segment's directory. */
  name: string;
  rows: number;
  bytes: number;
  /** Of the file's bytes, with the algorithm of the manifest's format version. */
  checksum: FileChecksum;
}

export interface SegmentManifest extends SegmentRef {
  formatVersion: SegmentFormatVersion;
  schema: CollectionSchema;
  files: { inserts: SegmentFileInfo; deletes: SegmentFileInfo };
  /** Smallest and largest timetick of any row, insert or delete; undefined when the segment has no rows. */
  timetick: { min: Timetick; max: Timetick } | undefined;
}

const HEX_DIGITS: Record<ChecksumAlgorithm, number> = { crc32: 8, sha256: 64 };

/** Bytes checksummed between two yields of checksumYielding. */
const CHECKSUM_SLICE_BYTES = 8 * 1024 * 1024;

/** The checksum of bytes given whole or as parts (a file's parts back to back: that of their concatenation). */
export function checksumOf(algorithm: ChecksumAlgorithm, bytes: Uint8Array | readonly Uint8Array[]): FileChecksum {
  const sum = newChecksum(algorithm);
  for (const part of ArrayBuffer.isView(bytes) ? [bytes] : bytes) sum.update(part);
  return { algorithm, value: sum.hex() };
}

/**
 * checksumOf in slices, yielding to the event loop between them: I/O started before (the put of
 * the same bytes) makes progress meanwhile on the I/O threads, so a large file's checksum costs
 * little more than its write.
 */
export async function checksumYielding(algorithm: ChecksumAlgorithm, bytes: Uint8Array | readonly Uint8Array[]): Promise<FileChecksum> {
  const sum = newChecksum(algorithm);
  let sinceYield = CHECKSUM_SLICE_BYTES;
  for (const part of ArrayBuffer.isView(bytes) ? [bytes] : bytes) {
    for (let at = 0; at < part.byteLength; ) {
      if (sinceYield >= CHECKSUM_SLICE_BYTES) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sinceYield = 0;
      }
      const end = Math.min(part.byteLength, at + CHECKSUM_SLICE_BYTES - sinceYield);
      sum.update(part.subarray(at, end));
      sinceYield += end - at;
      at = end;
    }
  }
  return { algorithm, value: sum.hex() };
}

interface RunningChecksum {
  update(part: Uint8Array): void;
  hex(): string;
}

function newChecksum(algorithm: ChecksumAlgorithm): RunningChecksum {
  if (algorithm === 'sha256') {
    const hash = createHash('sha256');
    return { update: (part) => void hash.update(part), hex: () => hash.digest('hex') };
  }
  let value = 0;
  return {
    update(part) {
      value = crc32(part, value);
    },
    hex: () => value.toString(16).padStart(8, '0'),
  };
}

export function encodeManifest(m: SegmentManifest): Uint8Array {
  const algorithm = CHECKSUM_OF_VERSION[m.formatVersion];
  const file = (f: SegmentFileInfo): Record<string, unknown> => {
    if (f.checksum.algorithm !== algorithm) throw new Error(`manifest format ${m.formatVersion} takes ${algorithm} checksums, ${f.name} has ${f.checksum.algorithm}`);
    return { name: f.name, rows: f.rows, bytes: f.bytes, [algorithm]: f.checksum.value };
  };
  const json = {
    formatVersion: m.formatVersion,
    collectionId: m.collectionId,
    partitionId: m.partitionId,
    segmentId: m.segmentId,
    schema: m.schema,
    files: { inserts: file(m.files.inserts), deletes: file(m.files.deletes) },
    minTimetick: m.timetick === undefined ? null : m.timetick.min.toString(),
    maxTimetick: m.timetick === undefined ? null : m.timetick.max.toString(),
  };
  return new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`);
}

function bad(message: string, details: Record<string, unknown> = {}, cause?: unknown): SegmentCorruptError {
  return new SegmentCorruptError(SegmentCorruptReason.BAD_MANIFEST, `manifest: ${message}`, details, cause);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function fileInfo(v: unknown, which: 'inserts' | 'deletes', algorithm: ChecksumAlgorithm): SegmentFileInfo {
  if (!isObject(v)) throw bad(`files.${which} is missing`);
  const { name, rows, bytes } = v;
  const value = v[algorithm];
  if (name !== SEGMENT_FILES[which]) throw bad(`files.${which}.name must be ${SEGMENT_FILES[which]}`, { name });
  if (!isCount(rows) || !isCount(bytes)) throw bad(`files.${which}.rows and .bytes must be non-negative integers`);
  const digits = HEX_DIGITS[algorithm];
  if (typeof value !== 'string' || value.length !== digits || !/^[0-9a-f]+$/.test(value)) throw bad(`files.${which}.${algorithm} must be ${digits} lower-case hex digits`);
  return { name: SEGMENT_FILES[which], rows, bytes, checksum: { algorithm, value } };
}

function timetickOf(v: unknown, field: string): Timetick {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)$/.test(v)) throw bad(`${field} must be a decimal string`, { [field]: v });
  const t = BigInt(v);
  if (t >= 1n << 64n) throw bad(`${field} exceeds 64 bits`, { [field]: v });
  return t;
}

/** Parses and checks a manifest; anything malformed is a SegmentCorruptError. */
export function decodeManifest(bytes: Uint8Array): SegmentManifest {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad('not UTF-8 JSON', {}, e);
  }
  if (!isObject(v)) throw bad('not a JSON object');
  const formatVersion = v['formatVersion'];
  if (formatVersion !== 1 && formatVersion !== 2) {
    throw new SegmentCorruptError(SegmentCorruptReason.UNSUPPORTED_VERSION, `format version ${String(formatVersion)}, this reader knows 1 and 2`, { formatVersion });
  }
  const algorithm = CHECKSUM_OF_VERSION[formatVersion];
  const { collectionId, partitionId, segmentId, schema, files, minTimetick, maxTimetick } = v;
  if (!isCount(collectionId) || !isCount(partitionId) || !isCount(segmentId)) throw bad('collectionId, partitionId and segmentId must be non-negative integers');
  try {
    validateSchema(schema as CollectionSchema);
  } catch (e) {
    throw bad('invalid schema', {}, e);
  }
  if (!isObject(files)) throw bad('files is missing');
  let timetick: SegmentManifest['timetick'];
  if (minTimetick === null && maxTimetick === null) timetick = undefined;
  else {
    timetick = { min: timetickOf(minTimetick, 'minTimetick'), max: timetickOf(maxTimetick, 'maxTimetick') };
    if (timetick.min > timetick.max) throw bad('minTimetick > maxTimetick');
  }
  const manifest: SegmentManifest = {
    formatVersion,
    collectionId,
    partitionId,
    segmentId,
    schema: schema as CollectionSchema,
    files: { inserts: fileInfo(files['inserts'], 'inserts', algorithm), deletes: fileInfo(files['deletes'], 'deletes', algorithm) },
    timetick,
  };
  if ((manifest.files.inserts.rows + manifest.files.deletes.rows === 0) !== (timetick === undefined)) {
    throw bad('min/maxTimetick must be null exactly when the segment has no rows');
  }
  return manifest;
}
