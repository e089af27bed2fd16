/**
 * manifest.json of a flushed segment: what the segment is, its schema, and for each data file its
 * row count, byte size and SHA-256, plus the segment's smallest and largest timetick. Timeticks
 * exceed 2^53, so JSON carries them as decimal strings. The JSON is pretty-printed with a fixed key
 * order, so the same segment always yields the same bytes.
 */
import { createHash } from 'node:crypto';
import type { CollectionSchema } from '../../runtime/message/types';
import type { Timetick } from '../../runtime/message/timetick';
import { validateSchema } from '../../runtime/message/validate';
import { SegmentCorruptError, SegmentCorruptReason } from './errors';
import { SEGMENT_FILES, type SegmentRef } from './layout';

/** Version of the segment file format (manifest + Arrow layout). Readers refuse other versions. */
export const SEGMENT_FORMAT_VERSION = 1;

export interface SegmentFileInfo {
  /** File name inside the segment's directory. */
  name: string;
  rows: number;
  bytes: number;
  /** Lower-case hex SHA-256 of the file's bytes. */
  sha256: string;
}

export interface SegmentManifest extends SegmentRef {
  formatVersion: typeof SEGMENT_FORMAT_VERSION;
  schema: CollectionSchema;
  files: { inserts: SegmentFileInfo; deletes: SegmentFileInfo };
  /** Smallest and largest timetick of any row, insert or delete; undefined when the segment has no rows. */
  timetick: { min: Timetick; max: Timetick } | undefined;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes hashed between two yields of sha256HexYielding. */
const HASH_SLICE_BYTES = 8 * 1024 * 1024;

/**
 * sha256Hex in slices, yielding to the event loop between them: I/O started before (the put of
 * the same bytes) makes progress meanwhile on the I/O threads, so a large file's hash costs little
 * more than its write. The bytes may come in parts (a file's parts back to back): the hash is
 * that of their concatenation.
 */
export async function sha256HexYielding(bytes: Uint8Array | readonly Uint8Array[]): Promise<string> {
  const hash = createHash('sha256');
  let sinceYield = HASH_SLICE_BYTES;
  for (const part of ArrayBuffer.isView(bytes) ? [bytes] : bytes) {
    for (let at = 0; at < part.byteLength; ) {
      if (sinceYield >= HASH_SLICE_BYTES) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sinceYield = 0;
      }
      const end = Math.min(part.byteLength, at + HASH_SLICE_BYTES - sinceYield);
      hash.update(part.subarray(at, end));
      sinceYield += end - at;
      at = end;
    }
  }
  return hash.digest('hex');
}

export function encodeManifest(m: SegmentManifest): Uint8Array {
  const file = (f: SegmentFileInfo): SegmentFileInfo => ({ name: f.name, rows: f.rows, bytes: f.bytes, sha256: f.sha256 });
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

function fileInfo(v: unknown, which: 'inserts' | 'deletes'): SegmentFileInfo {
  if (!isObject(v)) throw bad(`files.${which} is missing`);
  const { name, rows, bytes, sha256 } = v;
  if (name !== SEGMENT_FILES[which]) throw bad(`files.${which}.name must be ${SEGMENT_FILES[which]}`, { name });
  if (!isCount(rows) || !isCount(bytes)) throw bad(`files.${which}.rows and .bytes must be non-negative integers`);
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw bad(`files.${which}.sha256 must be 64 lower-case hex digits`);
  return { name: SEGMENT_FILES[which], rows, bytes, sha256 };
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
  if (v['formatVersion'] !== SEGMENT_FORMAT_VERSION) {
    throw new SegmentCorruptError(SegmentCorruptReason.UNSUPPORTED_VERSION, `format version ${String(v['formatVersion'])}, this reader knows ${SEGMENT_FORMAT_VERSION}`, {
      formatVersion: v['formatVersion'],
    });
  }
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
    formatVersion: SEGMENT_FORMAT_VERSION,
    collectionId,
    partitionId,
    segmentId,
    schema: schema as CollectionSchema,
    files: { inserts: fileInfo(files['inserts'], 'inserts'), deletes: fileInfo(files['deletes'], 'deletes') },
    timetick,
  };
  if ((manifest.files.inserts.rows + manifest.files.deletes.rows === 0) !== (timetick === undefined)) {
    throw bad('min/maxTimetick must be null exactly when the segment has no rows');
  }
  return manifest;
}
