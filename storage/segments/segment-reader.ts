/**
 * Reads a flushed segment back: the manifest, then each data file, whose size and checksum must
 * match the manifest (else SegmentCorruptError, before any Arrow parsing), then the Arrow tables,
 * whose schema and row counts must match the manifest too. Columns come back in the message
 * model's shapes (Column, PrimaryKeys), with per-row timeticks; `insertRows` iterates rows.
 */
import * as arrow from 'apache-arrow';
import type { Column, FieldSchema, PrimaryKeys } from '../../runtime/message/types';
import { isObjectNotFound } from '../objects/errors';
import type { ObjectStore } from '../objects/object-store';
import { TIMETICK_COLUMN, arrowSchemaOf, fieldsInTableOrder, type SegmentTable } from './arrow-schema';
import { SegmentCorruptError, SegmentCorruptReason } from './errors';
import { type SegmentRef, segmentFilePaths } from './layout';
import { type SegmentFileInfo, type SegmentManifest, checksumOf, decodeManifest } from './manifest';

export interface DecodedInserts {
  rows: number;
  primaryKeys: PrimaryKeys;
  /** Timetick of each row. */
  timeticks: BigUint64Array;
  /** One column per schema field (the primary key included), in schema order. */
  columns: Column[];
}

export interface DecodedDeletes {
  rows: number;
  primaryKeys: PrimaryKeys;
  timeticks: BigUint64Array;
}

export interface DecodedSegment {
  manifest: SegmentManifest;
  inserts: DecodedInserts;
  deletes: DecodedDeletes;
}

export interface SegmentFilesBytes {
  inserts: Uint8Array;
  deletes: Uint8Array;
}

/** Throws SegmentCorruptError unless `bytes` has the manifest's size and checksum. */
export function verifyFile(info: SegmentFileInfo, bytes: Uint8Array): void {
  if (bytes.byteLength !== info.bytes) {
    throw new SegmentCorruptError(SegmentCorruptReason.SIZE_MISMATCH, `${info.name} has ${bytes.byteLength} bytes, the manifest says ${info.bytes}`, {
      file: info.name,
      expected: info.bytes,
      actual: bytes.byteLength,
    });
  }
  const { algorithm, value: expected } = info.checksum;
  const actual = checksumOf(algorithm, bytes).value;
  if (actual !== expected) {
    throw new SegmentCorruptError(SegmentCorruptReason.CHECKSUM_MISMATCH, `${info.name} has ${algorithm} ${actual}, the manifest says ${expected}`, {
      file: info.name,
      algorithm,
      expected,
      actual,
    });
  }
}

/** Verifies and decodes the data files of a segment whose manifest is already decoded. */
export function decodeSegment(manifest: SegmentManifest, files: SegmentFilesBytes): DecodedSegment {
  verifyFile(manifest.files.inserts, files.inserts);
  verifyFile(manifest.files.deletes, files.deletes);
  const { primaryKey, others } = fieldsInTableOrder(manifest.schema);

  const inserts = readTable('inserts', manifest, files.inserts);
  const insertColumns = new Map<string, Column>();
  [primaryKey, ...others].forEach((f, i) => {
    // table columns: primary key, _timetick, others
    insertColumns.set(f.name, toColumn(f, inserts.getChildAt(i === 0 ? 0 : i + 1)!, 'inserts'));
  });
  const deletes = readTable('deletes', manifest, files.deletes);
  return {
    manifest,
    inserts: {
      rows: inserts.numRows,
      primaryKeys: toPrimaryKeys(insertColumns.get(primaryKey.name)!),
      timeticks: timeticksOf(inserts),
      columns: manifest.schema.fields.map((f) => insertColumns.get(f.name)!),
    },
    deletes: {
      rows: deletes.numRows,
      primaryKeys: toPrimaryKeys(toColumn(primaryKey, deletes.getChildAt(0)!, 'deletes')),
      timeticks: timeticksOf(deletes),
    },
  };
}

export interface ReadSegmentOptions {
  /** Layout root the segment was written under. Default ''. */
  root?: string;
}

/** Reads the manifest of a stored segment (ObjectNotFoundError when the segment is not complete). */
export async function readSegmentManifest(store: ObjectStore, ref: SegmentRef, opts: ReadSegmentOptions = {}): Promise<SegmentManifest> {
  const paths = segmentFilePaths(opts.root ?? '', ref);
  const manifest = decodeManifest(await store.get(paths.manifest));
  if (manifest.collectionId !== ref.collectionId || manifest.partitionId !== ref.partitionId || manifest.segmentId !== ref.segmentId) {
    throw new SegmentCorruptError(SegmentCorruptReason.BAD_MANIFEST, `${paths.manifest} describes another segment`, { path: paths.manifest, ref, manifest: { ...manifest, schema: undefined, timetick: undefined } });
  }
  return manifest;
}

/** Reads, verifies and decodes a stored segment. */
export async function readSegment(store: ObjectStore, ref: SegmentRef, opts: ReadSegmentOptions = {}): Promise<DecodedSegment> {
  const paths = segmentFilePaths(opts.root ?? '', ref);
  const manifest = await readSegmentManifest(store, ref, opts);
  const fetch = async (key: string): Promise<Uint8Array> => {
    try {
      return await store.get(key);
    } catch (e) {
      if (isObjectNotFound(e)) throw new SegmentCorruptError(SegmentCorruptReason.MISSING_FILE, `${key} is missing but the manifest exists`, { path: key }, e);
      throw e;
    }
  };
  const [inserts, deletes] = await Promise.all([fetch(paths.inserts), fetch(paths.deletes)]);
  return decodeSegment(manifest, { inserts, deletes });
}

/** One insert row: every field by name (vectors as Float32Array views) and its timetick. */
export interface SegmentRow {
  timetick: bigint;
  values: Record<string, unknown>;
}

/** The inserted rows in order. */
export function* insertRows(inserts: DecodedInserts): Generator<SegmentRow> {
  for (let i = 0; i < inserts.rows; i++) {
    const values: Record<string, unknown> = {};
    for (const c of inserts.columns) values[c.name] = c.type === 'floatVector' ? c.data.subarray(i * c.dim, (i + 1) * c.dim) : c.data[i];
    yield { timetick: inserts.timeticks[i]!, values };
  }
}

// ------------------------------------------------------------------ Arrow decoding

function corrupt(reason: SegmentCorruptReason, message: string, details: Record<string, unknown> = {}, cause?: unknown): SegmentCorruptError {
  return new SegmentCorruptError(reason, message, details, cause);
}

function readTable(which: SegmentTable, manifest: SegmentManifest, bytes: Uint8Array): arrow.Table {
  const file = manifest.files[which].name;
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(bytes);
  } catch (e) {
    throw corrupt(SegmentCorruptReason.BAD_ARROW, `${file}: ${e instanceof Error ? e.message : String(e)}`, { file }, e);
  }
  const expected = arrowSchemaOf(which, manifest.schema, manifest);
  const got = table.schema.fields;
  const same =
    got.length === expected.fields.length &&
    expected.fields.every((f, i) => got[i]?.name === f.name && arrow.util.compareTypes(got[i]!.type, f.type));
  if (!same) {
    throw corrupt(SegmentCorruptReason.SCHEMA_MISMATCH, `${file}: columns ${got.map((f) => `${f.name}:${String(f.type)}`).join(', ')}`, {
      file,
      expected: expected.fields.map((f) => `${f.name}:${String(f.type)}`),
    });
  }
  if (table.numRows !== manifest.files[which].rows) {
    throw corrupt(SegmentCorruptReason.ROW_COUNT_MISMATCH, `${file} has ${table.numRows} rows, the manifest says ${manifest.files[which].rows}`, {
      file,
      expected: manifest.files[which].rows,
      actual: table.numRows,
    });
  }
  return table;
}

function timeticksOf(table: arrow.Table): BigUint64Array {
  return table.getChild(TIMETICK_COLUMN)!.toArray() as BigUint64Array;
}

function toPrimaryKeys(c: Column): PrimaryKeys {
  return c.type === 'varchar' ? { type: 'varchar', data: c.data } : { type: 'int64', data: c.data as number[] };
}

function toColumn(f: FieldSchema, vector: arrow.Vector, table: SegmentTable): Column {
  const name = f.name;
  switch (f.type) {
    case 'floatVector': {
      const dim = f.dim ?? 0;
      const data = new Float32Array(vector.length * dim);
      let at = 0;
      for (const chunk of vector.data) {
        const child = chunk.children[0];
        const values = child === undefined ? undefined : (arrow.makeVector(child).toArray() as Float32Array);
        if (values === undefined || values.length !== chunk.length * dim) {
          throw corrupt(SegmentCorruptReason.BAD_VALUE, `${table}: vector column ${name} has a malformed chunk`, { field: name });
        }
        data.set(values, at);
        at += values.length;
      }
      return { name, type: 'floatVector', dim, data };
    }
    case 'bool':
      return { name, type: 'bool', data: Array.from(vector.toArray() as Iterable<boolean>) };
    case 'int32':
    case 'float':
    case 'double':
      return { name, type: f.type, data: Array.from(vector.toArray() as Int32Array | Float32Array | Float64Array) };
    case 'int64': {
      const raw = vector.toArray() as BigInt64Array;
      const data = new Array<number>(raw.length);
      for (let i = 0; i < raw.length; i++) {
        const n = Number(raw[i]);
        if (!Number.isSafeInteger(n)) throw corrupt(SegmentCorruptReason.BAD_VALUE, `${table}: ${name}[${i}] = ${String(raw[i])} is not a safe integer`, { field: name, index: i });
        data[i] = n;
      }
      return { name, type: 'int64', data };
    }
    case 'varchar':
      return { name, type: 'varchar', data: Array.from(vector.toArray() as Iterable<string>) };
    case 'json': {
      const texts = vector.toArray() as string[];
      const data = texts.map((t, i) => {
        try {
          return JSON.parse(t) as unknown;
        } catch (e) {
          throw corrupt(SegmentCorruptReason.BAD_VALUE, `${table}: ${name}[${i}] is not JSON`, { field: name, index: i }, e);
        }
      });
      return { name, type: 'json', data };
    }
  }
}
