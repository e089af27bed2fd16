/**
 * Encodes a sealed segment into its files (Apache Arrow IPC file format, ".arrow", readable by any
 * Arrow implementation) and writes them to an ObjectStore. See arrow-schema.ts for the columns and
 * manifest.ts for the manifest.
 *
 * `encodeSegment` is pure: the same input gives the same bytes, so a retried flush writes identical
 * files. Rows keep their input order (the WAL's order); each insert batch's timetick is repeated
 * on each of its rows. Every schema field must have a column in every insert batch, including an
 * autoId primary key (its values are assigned before the data reaches a segment).
 * `SegmentEncoder` does the same incrementally, so that a reader of the WAL (the flush worker) puts
 * each insert straight into the record batches (table-builder.ts), the encoded columns of a WAL
 * message (InsertColumns) included.
 *
 * `writeSegment` puts the two data files, then the manifest create-only: a segment whose manifest
 * exists is complete. Writing a segment again with the same manifest is a no-op success; with a
 * different one it fails with SegmentConflictError and, when the manifest was already there, writes
 * nothing.
 */
import * as arrow from 'apache-arrow';
import { invalidArgument, type StreamingError } from '../../runtime/errors';
import type { InsertColumns } from '../../runtime/message/codec';
import type { CollectionSchema, Column, FieldSchema, PrimaryKeys } from '../../runtime/message/types';
import type { Timetick } from '../../runtime/message/timetick';
import { validateSchema } from '../../runtime/message/validate';
import { isObjectAlreadyExists } from '../objects/errors';
import type { ObjectStore } from '../objects/object-store';
import { joinedBytes } from '../objects/bytes';
import { arrowSchemaOf, fieldsInTableOrder } from './arrow-schema';
import { SegmentConflictError } from './errors';
import { SEGMENT_FILES, type SegmentFile, type SegmentRef, segmentFilePaths } from './layout';
import { CHECKSUM_OF_VERSION, SEGMENT_FORMAT_VERSION, type FileChecksum, type SegmentFileInfo, type SegmentManifest, checksumOf, checksumYielding, decodeManifest, encodeManifest } from './manifest';
import { type BatchBufferPool, TableBuilder } from './table-builder';

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
  /** Reuse full-size batch buffers of earlier segments from this pool (give them back with SegmentEncoder.recycle). */
  buffers?: BatchBufferPool;
}

/** What writeSegmentData wrote: the manifest (with the files' checksums) and the keys. */
export interface WrittenSegment {
  manifest: SegmentManifest;
  paths: Record<SegmentFile, string>;
}

export interface EncodedSegment {
  /** Object key → bytes: inserts, deletes, then the manifest (the order to write them in). */
  files: Map<string, Uint8Array>;
  manifest: SegmentManifest;
  /** The keys of the three files. */
  paths: Record<SegmentFile, string>;
}

/**
 * A segment's data files before their checksums are known (SegmentEncoder.finishData): what
 * writeSegmentData checksums while it writes them. Each file is given as the parts the Arrow writer
 * produced (its bytes are the parts back to back): the parts are mostly the record batches' own
 * buffers, so a large file is never copied into one buffer only to be checksummed and written.
 */
export interface SegmentData {
  paths: Record<SegmentFile, string>;
  inserts: readonly Uint8Array[];
  deletes: readonly Uint8Array[];
  /** The manifest but for the files' checksums. */
  manifest: Omit<SegmentManifest, 'files'> & { files: Record<'inserts' | 'deletes', Omit<SegmentFileInfo, 'checksum'>> };
}

const DEFAULT_MAX_ROWS_PER_BATCH = 65_536;
const DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024;
const MAX_UINT64 = (1n << 64n) - 1n;

function bad(message: string, details: Record<string, unknown>): StreamingError {
  return invalidArgument(`segment: ${message}`, details);
}

/** Encodes a whole segment at once (see SegmentEncoder). */
export function encodeSegment(input: SegmentInput, opts: EncodeOptions = {}): EncodedSegment {
  const segment = new SegmentEncoder(input, opts);
  for (const batch of input.inserts) segment.addInsert(batch);
  for (const batch of input.deletes) segment.addDelete(batch);
  return segment.finish();
}

/**
 * Encodes a segment incrementally: inserts and deletes are added in order as they are read, and
 * go straight into the Arrow record batches (no per-insert copies are kept), then `finish` writes
 * the files. The result is the same as encodeSegment's for the same rows in the same order.
 * After a thrown error the encoder must not be used any more.
 */
export class SegmentEncoder {
  private readonly paths: Record<SegmentFile, string>;
  private readonly ref: SegmentRef;
  private readonly schema: CollectionSchema;
  /** Schema fields in table order (the primary key first). */
  private readonly fields: readonly FieldSchema[];
  private readonly fieldIndex: Map<string, number>;
  private readonly inserts: TableBuilder;
  private readonly deletes: TableBuilder;
  private nInserts = 0;
  private nDeletes = 0;
  private min: Timetick | undefined;
  private max: Timetick | undefined;
  /** Reused by addScannedInsert: for each field in table order, the message's column index (-1: none yet). */
  private readonly ordered: Int32Array;
  /** UTF-8 of the field names in table order, compared with a scanned column's name bytes. */
  private readonly fieldNames: Uint8Array[];
  /**
   * Field of the previous scanned insert's column by position: the inserts of a segment carry
   * their columns in one order, so a column's field is found by comparing its name bytes with that
   * field's, instead of decoding the name for the fieldIndex lookup.
   */
  private readonly lastFields: number[] = [];
  /** The InsertColumns and shape that `ordered` was worked out for, and the row count then found. */
  private readonly orderedFor: { columns: InsertColumns | undefined; shape: number; rows: number } = { columns: undefined, shape: -1, rows: 0 };

  constructor(segment: SegmentRef & { schema: CollectionSchema }, opts: EncodeOptions = {}) {
    const maxRowsPerBatch = opts.maxRowsPerBatch ?? DEFAULT_MAX_ROWS_PER_BATCH;
    const maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    if (!Number.isSafeInteger(maxRowsPerBatch) || maxRowsPerBatch < 1) throw bad('maxRowsPerBatch must be a positive integer', { maxRowsPerBatch });
    if (!(maxBatchBytes > 0)) throw bad('maxBatchBytes must be positive', { maxBatchBytes });
    this.ref = { collectionId: segment.collectionId, partitionId: segment.partitionId, segmentId: segment.segmentId };
    this.paths = segmentFilePaths(opts.root ?? '', this.ref); // validates root and ids
    validateSchema(segment.schema);
    this.schema = segment.schema;
    const { primaryKey, others } = fieldsInTableOrder(segment.schema);
    this.fields = [primaryKey, ...others];
    this.fieldIndex = new Map(this.fields.map((f, i) => [f.name, i]));
    this.ordered = new Int32Array(this.fields.length);
    this.fieldNames = this.fields.map((f) => Buffer.from(f.name, 'utf8'));
    const limits = { maxRowsPerBatch, maxBatchBytes };
    this.inserts = new TableBuilder(arrowSchemaOf('inserts', segment.schema, this.ref), this.fields, limits, opts.buffers);
    this.deletes = new TableBuilder(arrowSchemaOf('deletes', segment.schema, this.ref), [primaryKey], limits, opts.buffers);
  }

  /** Adds an insert's rows (every schema field needs a column; values are checked). */
  addInsert(batch: InsertBatch): void {
    const index = this.nInserts++;
    const rows = rowsOfInsert(this.schema, batch, index);
    if (rows === 0) return;
    this.seeTimetick(batch.timetick, 'insert', index);
    const byName = new Map(batch.columns.map((c) => [c.name, c]));
    this.inserts.appendColumns(
      this.fields.map((f) => byName.get(f.name)!),
      rows,
      batch.timetick,
      { what: 'insert', index },
    );
  }

  /**
   * Adds the rows of a WAL insert given as its encoded columns (a MessageScanner's `columns` after
   * scanInsertColumns), copied into the record batches without decoding a value. The columns must
   * match the schema exactly, as for addInsert.
   */
  addScannedInsert(columns: InsertColumns, timetick: Timetick): void {
    const index = this.nInserts++;
    const o = this.orderedFor;
    // An insert laid out as the last one has its columns where the last one had them: same order, same checks.
    if (o.columns !== columns || o.shape !== columns.shape) {
      o.columns = undefined; // until the new order is worked out (it throws for a bad insert)
      o.rows = this.orderScanned(columns, index);
      o.columns = columns;
      o.shape = columns.shape;
    }
    const rows = o.rows;
    if (rows === 0) return;
    this.seeTimetick(timetick, 'insert', index);
    this.inserts.appendScanned(columns, this.ordered, rows, timetick);
  }

  /** Adds a delete's primary keys. */
  addDelete(d: DeleteBatch): void {
    const index = this.nDeletes++;
    const primaryKey = this.fields[0]!;
    if (d.primaryKeys?.type !== primaryKey.type || !Array.isArray(d.primaryKeys.data)) {
      throw bad(`delete ${index}: primary keys must be ${primaryKey.type}`, { delete: index, type: d.primaryKeys?.type, expected: primaryKey.type });
    }
    const rows = d.primaryKeys.data.length;
    if (rows === 0) return;
    this.seeTimetick(d.timetick, 'delete', index);
    this.deletes.appendColumns([{ name: primaryKey.name, ...d.primaryKeys } as Column], rows, d.timetick, { what: 'delete', index });
  }

  /** Bytes of the record batches built so far (inserts and deletes). */
  get heldBytes(): number {
    return this.inserts.heldBytes + this.deletes.heldBytes;
  }

  /** Primary keys of the rows inserted so far, in order. */
  insertedKeys(): (number | string)[] {
    return this.inserts.firstFieldValues();
  }

  /** Encodes the files and the manifest. The encoder is spent. */
  finish(): EncodedSegment {
    const inserts = arrow.tableToIPC(this.inserts.finish(), 'file');
    const deletes = arrow.tableToIPC(this.deletes.finish(), 'file');
    const algorithm = CHECKSUM_OF_VERSION[SEGMENT_FORMAT_VERSION];
    return completeSegment(this.dataOf([inserts], [deletes]), { inserts: checksumOf(algorithm, inserts), deletes: checksumOf(algorithm, deletes) });
  }

  /** Encodes the data files (in parts), leaving their checksums to writeSegmentData. The encoder is spent. */
  async finishData(): Promise<SegmentData> {
    return this.dataOf(await ipcFileParts(this.inserts.finish()), await ipcFileParts(this.deletes.finish()));
  }

  /**
   * Gives the record batches' buffers to the `buffers` pool of the options, for the next segment.
   * Only after the files are written (writeSegmentData resolved): nothing may use the encoder, its
   * SegmentData or the tables any more.
   */
  recycle(): void {
    this.inserts.recycle();
    this.deletes.recycle();
  }

  private dataOf(inserts: readonly Uint8Array[], deletes: readonly Uint8Array[]): SegmentData {
    return {
      paths: this.paths,
      inserts,
      deletes,
      manifest: {
        formatVersion: SEGMENT_FORMAT_VERSION,
        ...this.ref,
        schema: this.schema,
        files: {
          inserts: { name: SEGMENT_FILES.inserts, rows: this.inserts.rows, bytes: byteLengthOf(inserts) },
          deletes: { name: SEGMENT_FILES.deletes, rows: this.deletes.rows, bytes: byteLengthOf(deletes) },
        },
        timetick: this.min === undefined || this.max === undefined ? undefined : { min: this.min, max: this.max },
      },
    };
  }

  /** Checks the timetick of insert or delete `index` and widens the segment's range with it. */
  private seeTimetick(t: Timetick, what: 'insert' | 'delete', index: number): void {
    if (typeof t !== 'bigint' || t < 0n || t > MAX_UINT64) throw bad('timetick must be a bigint in [0, 2^64)', { [what]: index, timetick: String(t) });
    if (this.min === undefined || t < this.min) this.min = t;
    if (this.max === undefined || t > this.max) this.max = t;
  }

  /** Puts a scanned insert's column indexes in table order into `ordered`, checking them against the schema; returns the row count. */
  private orderScanned(columns: InsertColumns, index: number): number {
    const ordered = this.ordered;
    ordered.fill(-1);
    let rows = -1;
    for (let i = 0; i < columns.count; i++) {
      const last = this.lastFields[i];
      let k = last !== undefined && columns.nameIs(i, this.fieldNames[last]!) ? last : undefined;
      if (k === undefined) {
        const name = columns.name(i);
        k = this.fieldIndex.get(name);
        if (k === undefined) throw bad(`insert ${index}: unknown column ${name}`, { insert: index, field: name });
        this.lastFields[i] = k;
      }
      const f = this.fields[k]!;
      if (ordered[k] !== -1) throw bad(`insert ${index}: duplicate column ${f.name}`, { insert: index, field: f.name });
      const type = columns.type[i]!;
      if (type !== f.type) throw bad(`insert ${index}: column ${f.name} is ${type}, the schema says ${f.type}`, { insert: index, field: f.name, type, expected: f.type });
      const dim = columns.dim[i]!;
      if (type === 'floatVector' && dim !== f.dim) {
        throw bad(`insert ${index}: column ${f.name} must hold rows × ${String(f.dim)} values`, { insert: index, field: f.name, dim });
      }
      const n = columns.rows[i]!;
      if (rows !== -1 && n !== rows) throw bad(`insert ${index}: column ${f.name} has ${n} rows, others ${rows}`, { insert: index, field: f.name, rows: n, expected: rows });
      rows = n;
      ordered[k] = i;
    }
    if (columns.count !== this.fields.length) {
      const missing = this.fields.find((_, k) => ordered[k] === -1)!;
      throw bad(`insert ${index}: missing column ${missing.name}`, { insert: index, field: missing.name });
    }
    return Math.max(rows, 0);
  }
}

/**
 * The parts of an Arrow IPC file as its writer emits them (tableToIPC(table, 'file') is their
 * concatenation): the body parts are views of the record batches' buffers, not copies.
 */
async function ipcFileParts(table: arrow.Table): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  // The writer is closed once writeAll returns: iterating drains what it buffered, nothing waits.
  for await (const part of arrow.RecordBatchFileWriter.writeAll(table)) parts.push(part);
  return parts;
}

function byteLengthOf(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

/** The manifest of `data`, given its data files' checksums. */
function manifestWith(data: SegmentData, checksums: Record<'inserts' | 'deletes', FileChecksum>): SegmentManifest {
  const m = data.manifest;
  return { ...m, files: { inserts: { ...m.files.inserts, checksum: checksums.inserts }, deletes: { ...m.files.deletes, checksum: checksums.deletes } } };
}

/** The segment's files and manifest (a file's parts joined), given its data files' checksums. */
function completeSegment(data: SegmentData, checksums: Record<'inserts' | 'deletes', FileChecksum>): EncodedSegment {
  const { paths } = data;
  const manifest = manifestWith(data, checksums);
  const files = new Map<string, Uint8Array>([
    [paths.inserts, joinedBytes(data.inserts)],
    [paths.deletes, joinedBytes(data.deletes)],
    [paths.manifest, encodeManifest(manifest)],
  ]);
  return { files, manifest, paths };
}

/**
 * Writes an encoded segment: the data files, then the manifest create-only (writeSegmentData, the
 * one write path). Idempotent for the same segment; SegmentConflictError when a different manifest
 * is already stored under its key.
 */
export async function writeSegment(store: ObjectStore, segment: EncodedSegment): Promise<void> {
  const { paths, files, manifest } = segment;
  await writeSegmentData(store, { paths, inserts: [files.get(paths.inserts)!], deletes: [files.get(paths.deletes)!], manifest });
}

/**
 * writeSegment for data files whose checksums are not computed yet: they are checksummed while
 * they are being put, then the manifest is put create-only. Resolves with the segment's manifest:
 * this one, or the one already stored for the same rows by an earlier format version (see
 * manifestInStore).
 */
export async function writeSegmentData(store: ObjectStore, data: SegmentData): Promise<WrittenSegment> {
  const { paths } = data;
  const algorithm = CHECKSUM_OF_VERSION[data.manifest.formatVersion];
  const checksummed = async (): Promise<SegmentManifest> =>
    manifestWith(data, { inserts: await checksumYielding(algorithm, data.inserts), deletes: await checksumYielding(algorithm, data.deletes) });
  if ((await store.head(paths.manifest)) !== undefined) {
    return { manifest: await manifestInStore(store, paths.manifest, await checksummed(), data), paths };
  }
  const puts = Promise.all([store.put(paths.inserts, data.inserts), store.put(paths.deletes, data.deletes)]);
  puts.catch(() => undefined); // awaited below; a failure while checksumming must not count as unhandled
  const manifest = await checksummed();
  await puts;
  return { manifest: await putManifest(store, paths.manifest, manifest, data), paths };
}

/** Puts the manifest create-only; when one is there already, what manifestInStore says of it. */
async function putManifest(store: ObjectStore, key: string, manifest: SegmentManifest, data: SegmentData): Promise<SegmentManifest> {
  try {
    await store.put(key, encodeManifest(manifest), { ifAbsent: true });
    return manifest;
  } catch (e) {
    if (!isObjectAlreadyExists(e)) throw e;
    return manifestInStore(store, key, manifest, data);
  }
}

/**
 * The manifest stored under `key` when it stands for `manifest`: the same bytes, or a complete
 * segment written by an earlier format version with the same rows whose checksums are those of
 * this segment's files (`data`). The data files of both formats are the same bytes (the Arrow
 * layout did not change, ARROW_LAYOUT_VERSION), so whichever writer put them last, the stored
 * manifest describes what is in the store; its checksums are checked against these bytes all the
 * same, so that a manifest is never kept over files it does not describe. Anything else is a
 * SegmentConflictError.
 */
async function manifestInStore(store: ObjectStore, key: string, manifest: SegmentManifest, data: SegmentData): Promise<SegmentManifest> {
  const stored = await store.get(key);
  const ours = encodeManifest(manifest);
  if (Buffer.from(stored).equals(Buffer.from(ours.buffer, ours.byteOffset, ours.byteLength))) return manifest;
  let earlier: SegmentManifest;
  try {
    earlier = decodeManifest(stored);
  } catch {
    throw new SegmentConflictError(key);
  }
  if (earlier.formatVersion >= manifest.formatVersion || !sameRows(earlier, manifest)) throw new SegmentConflictError(key);
  for (const file of ['inserts', 'deletes'] as const) {
    const info = earlier.files[file];
    if (info.bytes !== manifest.files[file].bytes || (await checksumYielding(info.checksum.algorithm, data[file])).value !== info.checksum.value) throw new SegmentConflictError(key);
  }
  return earlier;
}

/** Whether two manifests describe the same rows of the same segment (whatever their format). */
function sameRows(a: SegmentManifest, b: SegmentManifest): boolean {
  return (
    a.collectionId === b.collectionId &&
    a.partitionId === b.partitionId &&
    a.segmentId === b.segmentId &&
    JSON.stringify(a.schema) === JSON.stringify(b.schema) &&
    a.files.inserts.rows === b.files.inserts.rows &&
    a.files.deletes.rows === b.files.deletes.rows &&
    a.timetick?.min === b.timetick?.min &&
    a.timetick?.max === b.timetick?.max
  );
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
