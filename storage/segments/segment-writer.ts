/**
 * Encodes a sealed segment into its files (Apache Arrow IPC file format, ".arrow", readable by any
 * Arrow implementation) and writes them to an ObjectStore. See arrow-schema.ts for the columns and
 * manifest.ts for the manifest.
 *
 * `encodeSegment` is pure: the same input gives the same bytes, so a retried flush writes identical
 * files. Rows keep their input order (the WAL's order); each insert batch's timetick is repeated
 * on each of its rows. Every schema field must have a column in every insert batch, including an
 * autoId primary key (its values are assigned before the data reaches a segment).
 *
 * `writeSegment` puts the two data files, then the manifest create-only: a segment whose manifest
 * exists is complete. Writing a segment again with the same manifest is a no-op success; with a
 * different one it fails with SegmentConflictError and, when the manifest was already there, writes
 * nothing.
 */
import * as arrow from 'apache-arrow';
import { invalidArgument, type StreamingError } from '../../runtime/errors';
import type { CollectionSchema, Column, FieldSchema, PrimaryKeys } from '../../runtime/message/types';
import type { Timetick } from '../../runtime/message/timetick';
import { validateSchema } from '../../runtime/message/validate';
import { isObjectAlreadyExists } from '../objects/errors';
import type { ObjectStore } from '../objects/object-store';
import { arrowSchemaOf, arrowTypeOf, fieldsInTableOrder, type PrimaryKeyField } from './arrow-schema';
import { SegmentConflictError } from './errors';
import { SEGMENT_FILES, type SegmentFile, type SegmentRef, segmentFilePaths } from './layout';
import { SEGMENT_FORMAT_VERSION, type SegmentManifest, encodeManifest, sha256Hex } from './manifest';

export interface InsertBatch {
  timetick: Timetick;
  columns: readonly Column[];
}

export interface DeleteBatch {
  timetick: Timetick;
  primaryKeys: PrimaryKeys;
}

export interface SegmentInput extends SegmentRef {
  schema: CollectionSchema;
  inserts: readonly InsertBatch[];
  deletes: readonly DeleteBatch[];
}

export interface EncodeOptions {
  /** Layout root: key prefix of segments in the store. Default ''. */
  root?: string;
  /** Rows per Arrow record batch, at most. Default 65 536. */
  maxRowsPerBatch?: number;
  /** UTF-8 bytes of varchar and json values per record batch, at most (a larger single row gets a batch of its own). Default 64 MiB. */
  maxBatchBytes?: number;
}

export interface EncodedSegment {
  /** Object key → bytes: inserts, deletes, then the manifest (the order to write them in). */
  files: Map<string, Uint8Array>;
  manifest: SegmentManifest;
  /** The keys of the three files. */
  paths: Record<SegmentFile, string>;
}

const DEFAULT_MAX_ROWS_PER_BATCH = 65_536;
const DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024;
const MAX_UINT64 = (1n << 64n) - 1n;
const encoder = new TextEncoder();

/** One column flattened over all batches, in the shape its Arrow buffers need. */
type Flat =
  | { kind: 'fixed'; type: arrow.DataType; values: Int32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array }
  | { kind: 'bool'; values: Uint8Array }
  | { kind: 'utf8'; values: Uint8Array[] }
  | { kind: 'vector'; type: arrow.FixedSizeList; dim: number; values: Float32Array };

function bad(message: string, details: Record<string, unknown>): StreamingError {
  return invalidArgument(`segment: ${message}`, details);
}

export function encodeSegment(input: SegmentInput, opts: EncodeOptions = {}): EncodedSegment {
  const maxRows = opts.maxRowsPerBatch ?? DEFAULT_MAX_ROWS_PER_BATCH;
  const maxBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  if (!Number.isSafeInteger(maxRows) || maxRows < 1) throw bad('maxRowsPerBatch must be a positive integer', { maxRowsPerBatch: maxRows });
  if (!(maxBytes > 0)) throw bad('maxBatchBytes must be positive', { maxBatchBytes: maxBytes });
  const ref: SegmentRef = { collectionId: input.collectionId, partitionId: input.partitionId, segmentId: input.segmentId };
  const paths = segmentFilePaths(opts.root ?? '', ref); // validates root and ids
  validateSchema(input.schema);
  const { primaryKey, others } = fieldsInTableOrder(input.schema);

  let min: Timetick | undefined;
  let max: Timetick | undefined;
  const seeTimetick = (t: Timetick, where: Record<string, unknown>): void => {
    if (typeof t !== 'bigint' || t < 0n || t > MAX_UINT64) throw bad('timetick must be a bigint in [0, 2^64)', { ...where, timetick: String(t) });
    if (min === undefined || t < min) min = t;
    if (max === undefined || t > max) max = t;
  };

  // inserts
  const insertRows = input.inserts.map((b, i) => rowsOfInsert(input.schema, b, i));
  const nInserts = insertRows.reduce((a, b) => a + b, 0);
  const insertFlats = [primaryKey, ...others].map((f) => allocate(f, nInserts));
  const insertTimeticks = new BigUint64Array(nInserts);
  let at = 0;
  input.inserts.forEach((batch, i) => {
    const rows = insertRows[i]!;
    if (rows === 0) return;
    seeTimetick(batch.timetick, { insert: i });
    insertTimeticks.fill(batch.timetick, at, at + rows);
    const byName = new Map(batch.columns.map((c) => [c.name, c]));
    [primaryKey, ...others].forEach((f, k) => fill(insertFlats[k]!, f, byName.get(f.name)!, at, i));
    at += rows;
  });
  const insertsTable = buildTable(
    arrowSchemaOf('inserts', input.schema, ref),
    [insertFlats[0]!, { kind: 'fixed', type: new arrow.Uint64(), values: insertTimeticks }, ...insertFlats.slice(1)],
    nInserts,
    maxRows,
    maxBytes,
  );

  // deletes
  let nDeletes = 0;
  input.deletes.forEach((d, i) => {
    if (d.primaryKeys?.type !== primaryKey.type || !Array.isArray(d.primaryKeys.data)) {
      throw bad(`delete ${i}: primary keys must be ${primaryKey.type}`, { delete: i, type: d.primaryKeys?.type, expected: primaryKey.type });
    }
    nDeletes += d.primaryKeys.data.length;
  });
  const deleteKeys = allocate(primaryKey, nDeletes);
  const deleteTimeticks = new BigUint64Array(nDeletes);
  at = 0;
  input.deletes.forEach((d, i) => {
    const rows = d.primaryKeys.data.length;
    if (rows === 0) return;
    seeTimetick(d.timetick, { delete: i });
    deleteTimeticks.fill(d.timetick, at, at + rows);
    fill(deleteKeys, primaryKey, { name: primaryKey.name, ...d.primaryKeys } as Column, at, i, 'delete');
    at += rows;
  });
  const deletesTable = buildTable(
    arrowSchemaOf('deletes', input.schema, ref),
    [deleteKeys, { kind: 'fixed', type: new arrow.Uint64(), values: deleteTimeticks }],
    nDeletes,
    maxRows,
    maxBytes,
  );

  const insertsBytes = arrow.tableToIPC(insertsTable, 'file');
  const deletesBytes = arrow.tableToIPC(deletesTable, 'file');
  const manifest: SegmentManifest = {
    formatVersion: SEGMENT_FORMAT_VERSION,
    ...ref,
    schema: input.schema,
    files: {
      inserts: { name: SEGMENT_FILES.inserts, rows: nInserts, bytes: insertsBytes.byteLength, sha256: sha256Hex(insertsBytes) },
      deletes: { name: SEGMENT_FILES.deletes, rows: nDeletes, bytes: deletesBytes.byteLength, sha256: sha256Hex(deletesBytes) },
    },
    timetick: min === undefined || max === undefined ? undefined : { min, max },
  };
  const files = new Map<string, Uint8Array>([
    [paths.inserts, insertsBytes],
    [paths.deletes, deletesBytes],
    [paths.manifest, encodeManifest(manifest)],
  ]);
  return { files, manifest, paths };
}

/**
 * Writes an encoded segment: the data files, then the manifest create-only. Idempotent for the same
 * segment; SegmentConflictError when a different manifest is already stored under its key.
 */
export async function writeSegment(store: ObjectStore, segment: EncodedSegment): Promise<void> {
  const { paths } = segment;
  const manifestBytes = segment.files.get(paths.manifest)!;
  const confirmSame = async (): Promise<void> => {
    const stored = await store.get(paths.manifest);
    if (!Buffer.from(stored).equals(Buffer.from(manifestBytes))) throw new SegmentConflictError(paths.manifest);
  };
  if ((await store.head(paths.manifest)) !== undefined) return confirmSame();
  await Promise.all([store.put(paths.inserts, segment.files.get(paths.inserts)!), store.put(paths.deletes, segment.files.get(paths.deletes)!)]);
  try {
    await store.put(paths.manifest, manifestBytes, { ifAbsent: true });
  } catch (e) {
    if (!isObjectAlreadyExists(e)) throw e;
    await confirmSame();
  }
}

// ------------------------------------------------------------------ input checks

function rowsOfInsert(schema: CollectionSchema, batch: InsertBatch, index: number): number {
  if (!Array.isArray(batch.columns)) throw bad(`insert ${index}: columns must be an array`, { insert: index });
  const byName = new Map<string, Column>();
  for (const c of batch.columns) {
    if (byName.has(c.name)) throw bad(`insert ${index}: duplicate column ${c.name}`, { insert: index, field: c.name });
    byName.set(c.name, c);
  }
  let rows = -1;
  for (const f of schema.fields) {
    const c = byName.get(f.name);
    if (c === undefined) throw bad(`insert ${index}: missing column ${f.name}`, { insert: index, field: f.name });
    if (c.type !== f.type) throw bad(`insert ${index}: column ${f.name} is ${c.type}, the schema says ${f.type}`, { insert: index, field: f.name, type: c.type, expected: f.type });
    let n: number;
    if (c.type === 'floatVector') {
      if (!(c.data instanceof Float32Array)) throw bad(`insert ${index}: column ${f.name} must be a Float32Array`, { insert: index, field: f.name });
      if (c.dim !== f.dim || c.data.length % f.dim !== 0) {
        throw bad(`insert ${index}: column ${f.name} must hold rows × ${f.dim} values`, { insert: index, field: f.name, dim: c.dim, length: c.data.length });
      }
      n = c.data.length / f.dim;
    } else {
      if (!Array.isArray(c.data)) throw bad(`insert ${index}: column ${f.name} must be an array`, { insert: index, field: f.name });
      n = c.data.length;
    }
    if (rows !== -1 && n !== rows) throw bad(`insert ${index}: column ${f.name} has ${n} rows, others ${rows}`, { insert: index, field: f.name, rows: n, expected: rows });
    rows = n;
  }
  if (byName.size !== schema.fields.length) {
    const unknown = [...byName.keys()].find((n) => !schema.fields.some((f) => f.name === n));
    throw bad(`insert ${index}: unknown column ${String(unknown)}`, { insert: index, field: unknown });
  }
  return Math.max(rows, 0);
}

function allocate(f: FieldSchema, n: number): Flat {
  switch (f.type) {
    case 'floatVector': {
      const dim = f.dim ?? 0;
      return { kind: 'vector', type: arrowTypeOf('floatVector', dim) as arrow.FixedSizeList, dim, values: new Float32Array(n * dim) };
    }
    case 'bool':
      return { kind: 'bool', values: new Uint8Array(n) };
    case 'int32':
      return { kind: 'fixed', type: new arrow.Int32(), values: new Int32Array(n) };
    case 'int64':
      return { kind: 'fixed', type: new arrow.Int64(), values: new BigInt64Array(n) };
    case 'float':
      return { kind: 'fixed', type: new arrow.Float32(), values: new Float32Array(n) };
    case 'double':
      return { kind: 'fixed', type: new arrow.Float64(), values: new Float64Array(n) };
    case 'varchar':
    case 'json':
      return { kind: 'utf8', values: new Array<Uint8Array>(n) };
  }
}

/** Copies column `c` (already shape-checked) into `flat` from row `at`, checking each value. */
function fill(flat: Flat, f: FieldSchema | PrimaryKeyField, c: Column, at: number, batch: number, what: 'insert' | 'delete' = 'insert'): void {
  const wrong = (i: number, expected: string, value: unknown): StreamingError =>
    bad(`${what} ${batch}: ${f.name}[${i}] is not ${expected}`, { [what]: batch, field: f.name, index: i, value: String(value) });
  switch (c.type) {
    case 'floatVector':
      (flat.values as Float32Array).set(c.data, at * c.dim);
      return;
    case 'bool': {
      const out = flat.values as Uint8Array;
      c.data.forEach((v, i) => {
        if (typeof v !== 'boolean') throw wrong(i, 'a boolean', v);
        out[at + i] = v ? 1 : 0;
      });
      return;
    }
    case 'int32': {
      const out = flat.values as Int32Array;
      c.data.forEach((v, i) => {
        if (typeof v !== 'number' || (v | 0) !== v) throw wrong(i, 'an int32', v);
        out[at + i] = v;
      });
      return;
    }
    case 'int64': {
      const out = flat.values as BigInt64Array;
      c.data.forEach((v, i) => {
        if (!Number.isSafeInteger(v)) throw wrong(i, 'a safe integer', v);
        out[at + i] = BigInt(v);
      });
      return;
    }
    case 'float':
    case 'double': {
      const out = flat.values as Float32Array | Float64Array;
      c.data.forEach((v, i) => {
        if (typeof v !== 'number') throw wrong(i, 'a number', v);
        out[at + i] = v;
      });
      return;
    }
    case 'varchar': {
      const out = flat.values as Uint8Array[];
      c.data.forEach((v, i) => {
        if (typeof v !== 'string') throw wrong(i, 'a string', v);
        out[at + i] = encoder.encode(v);
      });
      return;
    }
    case 'json': {
      const out = flat.values as Uint8Array[];
      c.data.forEach((v, i) => {
        let text: string | undefined;
        try {
          text = JSON.stringify(v) as string | undefined;
        } catch {
          text = undefined;
        }
        if (text === undefined) throw wrong(i, 'JSON-serializable', v);
        out[at + i] = encoder.encode(text);
      });
      return;
    }
  }
}

// ------------------------------------------------------------------ Arrow building

function buildTable(schema: arrow.Schema, flats: Flat[], rows: number, maxRows: number, maxBytes: number): arrow.Table {
  const utf8 = flats.filter((f): f is Extract<Flat, { kind: 'utf8' }> => f.kind === 'utf8');
  const batches: arrow.RecordBatch[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < rows; i++) {
    let rowBytes = 0;
    for (const f of utf8) rowBytes += f.values[i]!.byteLength;
    if (i - start === maxRows || (i > start && bytes + rowBytes > maxBytes)) {
      batches.push(recordBatch(schema, flats, start, i));
      start = i;
      bytes = 0;
    }
    bytes += rowBytes;
  }
  if (rows > start || batches.length === 0) batches.push(recordBatch(schema, flats, start, rows));
  return new arrow.Table(schema, batches);
}

function recordBatch(schema: arrow.Schema, flats: Flat[], a: number, b: number): arrow.RecordBatch {
  const length = b - a;
  const children = flats.map((f) => columnData(f, a, b));
  return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length, nullCount: 0, children }));
}

function columnData(f: Flat, a: number, b: number): arrow.Data {
  const length = b - a;
  switch (f.kind) {
    case 'fixed':
      return arrow.makeData({ type: f.type as arrow.Int, length, nullCount: 0, data: f.values.subarray(a, b) as Int32Array });
    case 'bool': {
      const bits = new Uint8Array(Math.ceil(length / 8));
      for (let i = 0; i < length; i++) if (f.values[a + i] === 1) bits[i >> 3]! |= 1 << (i & 7);
      return arrow.makeData({ type: new arrow.Bool(), length, nullCount: 0, data: bits });
    }
    case 'utf8': {
      const offsets = new Int32Array(length + 1);
      let total = 0;
      for (let i = 0; i < length; i++) {
        total += f.values[a + i]!.byteLength;
        if (total > 0x7fffffff) throw bad('a record batch holds more than 2 GiB of text; lower maxBatchBytes', { bytes: total });
        offsets[i + 1] = total;
      }
      const data = new Uint8Array(total);
      for (let i = 0; i < length; i++) data.set(f.values[a + i]!, offsets[i]!);
      return arrow.makeData({ type: new arrow.Utf8(), length, nullCount: 0, valueOffsets: offsets, data });
    }
    case 'vector': {
      const child = arrow.makeData({ type: new arrow.Float32(), length: length * f.dim, nullCount: 0, data: f.values.subarray(a * f.dim, b * f.dim) });
      return arrow.makeData({ type: f.type, length, nullCount: 0, child });
    }
  }
}
