/**
 * Validation of collection schemas and insert batches, done once at the edge (CreateCollection,
 * append of an Insert). A bad schema or batch is rejected whole with StreamingError
 * INVALID_ARGUMENT whose details name the `field` ('' for the schema or batch as a whole) and the
 * `reason` (one of ValidationReason), plus `index` (the first bad row) where a value is at fault.
 */
import { invalidArgument, type StreamingError } from '../errors';
import { SCALAR_TYPES, type CollectionSchema, type Column, type FieldSchema, type FieldType } from './types';

/** Largest vector dimension (as Milvus). */
export const MAX_VECTOR_DIM = 32768;
/** Largest varchar maxLength (as Milvus). */
export const MAX_VARCHAR_LENGTH = 65535;
/** Longest field name. */
export const MAX_FIELD_NAME_LENGTH = 255;

export const ValidationReason = {
  // schema
  INVALID_SCHEMA: 'invalid schema',
  INVALID_FIELD_NAME: 'invalid field name',
  DUPLICATE_FIELD: 'duplicate field name',
  UNKNOWN_TYPE: 'unknown type',
  NO_PRIMARY_KEY: 'no primary key',
  MULTIPLE_PRIMARY_KEYS: 'multiple primary keys',
  INVALID_PRIMARY_KEY_TYPE: 'primary key must be int64 or varchar',
  AUTO_ID_NOT_INT64_PRIMARY_KEY: 'autoId requires an int64 primary key',
  INVALID_DIM: 'dim must be an integer in [1, 32768]',
  DIM_ON_SCALAR: 'dim on a non-vector field',
  INVALID_MAX_LENGTH: 'maxLength must be an integer in [1, 65535]',
  MAX_LENGTH_ON_NON_VARCHAR: 'maxLength on a non-varchar field',
  INVALID_FLAG: 'primaryKey and autoId must be booleans',
  NO_VECTOR_FIELD: 'no vector field',
  // insert
  INVALID_COLUMNS: 'columns must be an array of columns',
  EMPTY_INSERT: 'no rows',
  MISSING_FIELD: 'missing field',
  UNKNOWN_FIELD: 'unknown field',
  DUPLICATE_COLUMN: 'duplicate column',
  AUTO_ID_PRESENT: 'autoId primary key must be absent',
  TYPE_MISMATCH: 'type mismatch',
  INVALID_DATA: 'data has the wrong shape',
  DIM_MISMATCH: 'dim mismatch',
  VECTOR_LENGTH: 'vector length is not rows × dim',
  ROW_COUNT_MISMATCH: 'row count mismatch',
  WRONG_VALUE_TYPE: 'wrong value type',
  NOT_FINITE: 'not a finite number',
  FLOAT_OUT_OF_RANGE: 'out of float32 range',
  UNSAFE_INT64: 'not a safe integer',
  INT32_OUT_OF_RANGE: 'not an int32',
  TOO_LONG: 'exceeds maxLength',
  INVALID_UTF16: 'not well-formed UTF-16 (lone surrogate)',
  NOT_JSON: 'not JSON-serializable',
} as const;
export type ValidationReason = (typeof ValidationReason)[keyof typeof ValidationReason];

const R = ValidationReason;
const KNOWN_TYPES: ReadonlySet<string> = new Set<string>([...SCALAR_TYPES, 'floatVector']);

function fail(field: string, reason: ValidationReason, extra: Record<string, unknown> = {}): StreamingError {
  const where = field === '' ? '' : ` field ${JSON.stringify(field)}`;
  const at = typeof extra['index'] === 'number' ? ` (row ${extra['index']})` : '';
  return invalidArgument(`invalid${where}: ${reason}${at}`, { field, reason, ...extra });
}

/**
 * Checks a collection schema: known types, unique non-empty field names, exactly one primary key
 * of type int64 or varchar, autoId only on an int64 primary key, vectors with an integer dim in
 * [1, 32768] (and at least one vector field), maxLength only on varchar, in [1, 65535].
 */
export function validateSchema(schema: CollectionSchema): void {
  if (typeof schema !== 'object' || schema === null || !Array.isArray(schema.fields)) throw fail('', R.INVALID_SCHEMA);
  const names = new Set<string>();
  let primaryKey: FieldSchema | undefined;
  let vectors = 0;
  for (const f of schema.fields as unknown[]) {
    if (typeof f !== 'object' || f === null) throw fail('', R.INVALID_SCHEMA);
    const field = f as FieldSchema;
    const name: unknown = field.name;
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_FIELD_NAME_LENGTH) {
      throw fail(typeof name === 'string' ? name : '', R.INVALID_FIELD_NAME);
    }
    if (names.has(name)) throw fail(name, R.DUPLICATE_FIELD);
    names.add(name);
    if (!KNOWN_TYPES.has(field.type)) throw fail(name, R.UNKNOWN_TYPE, { type: field.type });
    if ((field.primaryKey !== undefined && typeof field.primaryKey !== 'boolean') || (field.autoId !== undefined && typeof field.autoId !== 'boolean')) {
      throw fail(name, R.INVALID_FLAG);
    }
    if (field.primaryKey === true) {
      if (primaryKey !== undefined) throw fail(name, R.MULTIPLE_PRIMARY_KEYS, { primaryKey: primaryKey.name });
      if (field.type !== 'int64' && field.type !== 'varchar') throw fail(name, R.INVALID_PRIMARY_KEY_TYPE, { type: field.type });
      primaryKey = field;
    }
    if (field.autoId === true && (field.primaryKey !== true || field.type !== 'int64')) throw fail(name, R.AUTO_ID_NOT_INT64_PRIMARY_KEY);
    if (field.type === 'floatVector') {
      vectors++;
      if (!Number.isInteger(field.dim) || (field.dim as number) < 1 || (field.dim as number) > MAX_VECTOR_DIM) {
        throw fail(name, R.INVALID_DIM, { dim: field.dim });
      }
    } else if (field.dim !== undefined) {
      throw fail(name, R.DIM_ON_SCALAR);
    }
    if (field.maxLength !== undefined) {
      if (field.type !== 'varchar') throw fail(name, R.MAX_LENGTH_ON_NON_VARCHAR);
      if (!Number.isInteger(field.maxLength) || field.maxLength < 1 || field.maxLength > MAX_VARCHAR_LENGTH) {
        throw fail(name, R.INVALID_MAX_LENGTH, { maxLength: field.maxLength });
      }
    }
  }
  if (primaryKey === undefined) throw fail('', R.NO_PRIMARY_KEY);
  if (vectors === 0) throw fail('', R.NO_VECTOR_FIELD);
}

/** Row count of a column, or throws when its data has the wrong shape. */
function rowsOf(c: Column, schemaField: FieldSchema): number {
  if (c.type === 'floatVector') {
    if (!(c.data instanceof Float32Array)) throw fail(c.name, R.INVALID_DATA, { expected: 'Float32Array' });
    if (c.dim !== schemaField.dim) throw fail(c.name, R.DIM_MISMATCH, { dim: c.dim, expected: schemaField.dim });
    const dim = c.dim;
    if (c.data.length % dim !== 0) throw fail(c.name, R.VECTOR_LENGTH, { length: c.data.length, dim });
    return c.data.length / dim;
  }
  if (!Array.isArray(c.data)) throw fail(c.name, R.INVALID_DATA, { expected: 'array' });
  return c.data.length;
}

function checkValues(c: Column, schemaField: FieldSchema): void {
  const field = c.name;
  switch (c.type) {
    case 'floatVector': {
      const data = c.data;
      for (let i = 0; i < data.length; i++) {
        const v = data[i] as number;
        if (!Number.isFinite(v)) {
          throw fail(field, R.NOT_FINITE, { index: Math.floor(i / c.dim), value: v });
        }
      }
      return;
    }
    case 'bool':
      for (let i = 0; i < c.data.length; i++) if (typeof c.data[i] !== 'boolean') throw fail(field, R.WRONG_VALUE_TYPE, { index: i, expected: 'boolean' });
      return;
    case 'int32':
      for (let i = 0; i < c.data.length; i++) {
        const v = c.data[i];
        if (typeof v !== 'number') throw fail(field, R.WRONG_VALUE_TYPE, { index: i, expected: 'number' });
        if ((v | 0) !== v) throw fail(field, R.INT32_OUT_OF_RANGE, { index: i, value: v });
      }
      return;
    case 'int64':
      for (let i = 0; i < c.data.length; i++) {
        const v = c.data[i];
        if (typeof v !== 'number') throw fail(field, R.WRONG_VALUE_TYPE, { index: i, expected: 'number' });
        if (!Number.isSafeInteger(v)) throw fail(field, R.UNSAFE_INT64, { index: i, value: v });
      }
      return;
    case 'float':
    case 'double':
      for (let i = 0; i < c.data.length; i++) {
        const v = c.data[i];
        if (typeof v !== 'number') throw fail(field, R.WRONG_VALUE_TYPE, { index: i, expected: 'number' });
        if (!Number.isFinite(v)) throw fail(field, R.NOT_FINITE, { index: i, value: v });
        // A double beyond the float32 range would be stored as ±Infinity.
        if (c.type === 'float' && !Number.isFinite(Math.fround(v))) {
          throw fail(field, R.FLOAT_OUT_OF_RANGE, { index: i, value: v });
        }
      }
      return;
    case 'varchar': {
      const max = schemaField.maxLength;
      for (let i = 0; i < c.data.length; i++) {
        const v = c.data[i];
        if (typeof v !== 'string') throw fail(field, R.WRONG_VALUE_TYPE, { index: i, expected: 'string' });
        if (max !== undefined && v.length > max) throw fail(field, R.TOO_LONG, { index: i, length: v.length, maxLength: max });
        if (!isWellFormed(v)) throw fail(field, R.INVALID_UTF16, { index: i });
      }
      return;
    }
    case 'json':
      for (let i = 0; i < c.data.length; i++) {
        let text: string | undefined;
        try {
          text = JSON.stringify(c.data[i]) as string | undefined;
        } catch {
          text = undefined; // bigint, cycle
        }
        if (typeof text !== 'string') throw fail(field, R.NOT_JSON, { index: i });
      }
      return;
  }
}

/** True when `s` has no lone surrogate (it would not survive UTF-8 unchanged). */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false; // low surrogate first
    const d = s.charCodeAt(i + 1); // NaN past the end
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/**
 * Checks an insert batch against a (valid) schema and returns its row count: every field of the
 * schema has exactly one column (except an autoId primary key, which must be absent), of the
 * schema's type; vectors have the schema's dim and rows × dim finite values; float/double values are
 * finite (float within float32 range), int64 values are safe integers, int32 values are int32,
 * varchar values are strings within maxLength; all columns have the same, non-zero row count.
 * The first problem found is thrown (columns in their order, then missing fields in schema order).
 */
export function validateInsert(schema: CollectionSchema, columns: readonly Column[]): { rows: number } {
  if (!Array.isArray(columns)) throw fail('', R.INVALID_COLUMNS);
  const index = schemaIndex(schema);
  let rows = -1;
  let firstColumn = '';
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i] as Column;
    if (typeof c !== 'object' || c === null || typeof c.name !== 'string') throw fail('', R.INVALID_COLUMNS);
    const f = index.byName.get(c.name);
    if (f === undefined) throw fail(c.name, R.UNKNOWN_FIELD);
    for (let j = 0; j < i; j++) if ((columns[j] as Column).name === c.name) throw fail(c.name, R.DUPLICATE_COLUMN);
    if (f.autoId === true) throw fail(c.name, R.AUTO_ID_PRESENT);
    if (c.type !== f.type) throw fail(c.name, R.TYPE_MISMATCH, { type: c.type, expected: f.type });
    const n = rowsOf(c, f);
    if (rows === -1) {
      rows = n;
      firstColumn = c.name;
    } else if (n !== rows) {
      throw fail(c.name, R.ROW_COUNT_MISMATCH, { rows: n, expected: rows, column: firstColumn });
    }
    checkValues(c, f);
  }
  // Every column named a distinct field that takes a column: as many columns as such fields means none is missing.
  if (columns.length !== index.columnFields) {
    for (const f of schema.fields) {
      if (f.autoId !== true && !columns.some((c) => c.name === f.name)) throw fail(f.name, R.MISSING_FIELD, { type: f.type });
    }
  }
  if (rows <= 0) throw fail('', R.EMPTY_INSERT);
  return { rows };
}

interface SchemaIndex {
  byName: Map<string, FieldSchema>;
  primaryKey: FieldSchema | undefined;
  /** Fields an insert has a column for (all but an autoId primary key). */
  columnFields: number;
}

/** Lookups of a (valid, unchanging) schema, built once per schema object: inserts are checked against it at every append. */
const SCHEMA_INDEX = new WeakMap<CollectionSchema, SchemaIndex>();

function schemaIndex(schema: CollectionSchema): SchemaIndex {
  let index = SCHEMA_INDEX.get(schema);
  if (index === undefined) {
    const byName = new Map<string, FieldSchema>();
    for (const f of schema.fields) byName.set(f.name, f);
    index = { byName, primaryKey: schema.fields.find((f) => f.primaryKey === true), columnFields: schema.fields.filter((f) => f.autoId !== true).length };
    SCHEMA_INDEX.set(schema, index);
  }
  return index;
}

/** The primary key field of a valid schema. */
export function primaryKeyOf(schema: CollectionSchema): FieldSchema | undefined {
  return schemaIndex(schema).primaryKey;
}

const FIXED_WIDTH: Partial<Record<FieldType, number>> = { bool: 1, int32: 4, int64: 8, float: 4, double: 8 };

/**
 * Approximate size of an insert's data in bytes (what a segment grows by): fixed-width values at
 * their width, vectors at 4 bytes a value, varchar at their UTF-8 length plus a 4-byte offset, json
 * at the length of its JSON text plus 4. Cheap: no encoding.
 */
export function estimateInsertBytes(columns: readonly Column[]): number {
  let bytes = 0;
  for (const c of columns) {
    switch (c.type) {
      case 'floatVector':
        bytes += c.data.byteLength;
        break;
      case 'varchar':
        for (const s of c.data) bytes += 4 + Buffer.byteLength(s, 'utf8');
        break;
      case 'json':
        for (const v of c.data) bytes += 4 + (JSON.stringify(v)?.length ?? 0);
        break;
      default:
        bytes += (FIXED_WIDTH[c.type] ?? 8) * c.data.length;
    }
  }
  return bytes;
}
