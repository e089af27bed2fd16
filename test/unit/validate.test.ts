import { ErrorCode, StreamingError } from '../../runtime/errors';
import type { CollectionSchema, Column, FieldSchema } from '../../runtime/message/types';
import { estimateInsertBytes, validateInsert, validateSchema, ValidationReason as R } from '../../runtime/message/validate';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectRejected(fn: () => unknown, field: string, reason: string): StreamingError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(StreamingError);
  const se = e as StreamingError;
  expect(se.code).toBe(ErrorCode.INVALID_ARGUMENT);
  expect(se.retriable).toBe(false);
  expect({ field: se.details?.['field'], reason: se.details?.['reason'] }).toEqual({ field, reason });
  return se;
}

const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: 4 },
    { name: 'flag', type: 'bool' },
    { name: 'i32', type: 'int32' },
    { name: 'f32', type: 'float' },
    { name: 'f64', type: 'double' },
    { name: 'title', type: 'varchar', maxLength: 5 },
    { name: 'meta', type: 'json' },
  ],
};

function withFields(...fields: FieldSchema[]): CollectionSchema {
  return { fields };
}

const pk: FieldSchema = { name: 'id', type: 'int64', primaryKey: true };
const vec: FieldSchema = { name: 'vec', type: 'floatVector', dim: 8 };

describe('validateSchema', () => {
  it.each<[string, CollectionSchema]>([
    ['int64 primary key', SCHEMA],
    ['autoId int64 primary key', withFields({ ...pk, autoId: true }, vec)],
    ['varchar primary key', withFields({ name: 'id', type: 'varchar', primaryKey: true, maxLength: 64 }, vec)],
    ['dim 1 and dim 32768', withFields(pk, { name: 'a', type: 'floatVector', dim: 1 }, { name: 'b', type: 'floatVector', dim: 32768 })],
    ['explicit false flags', withFields({ ...pk, autoId: false }, { ...vec, primaryKey: false })],
  ])('accepts %s', (_name, schema) => {
    expect(() => validateSchema(schema)).not.toThrow();
  });

  it.each<[string, unknown, string, string]>([
    ['no fields array', { fields: 'x' }, '', R.INVALID_SCHEMA],
    ['a null schema', null, '', R.INVALID_SCHEMA],
    ['a null field', { fields: [pk, null] }, '', R.INVALID_SCHEMA],
    ['no primary key', withFields({ name: 'id', type: 'int64' }, vec), '', R.NO_PRIMARY_KEY],
    ['an empty schema', withFields(), '', R.NO_PRIMARY_KEY],
    ['two primary keys', withFields(pk, { name: 'id2', type: 'varchar', primaryKey: true }, vec), 'id2', R.MULTIPLE_PRIMARY_KEYS],
    ['a float primary key', withFields({ name: 'id', type: 'float', primaryKey: true }, vec), 'id', R.INVALID_PRIMARY_KEY_TYPE],
    ['a vector primary key', withFields({ ...vec, primaryKey: true }), 'vec', R.INVALID_PRIMARY_KEY_TYPE],
    ['autoId on a varchar primary key', withFields({ name: 'id', type: 'varchar', primaryKey: true, autoId: true }, vec), 'id', R.AUTO_ID_NOT_INT64_PRIMARY_KEY],
    ['autoId on a non-primary field', withFields(pk, vec, { name: 'n', type: 'int64', autoId: true }), 'n', R.AUTO_ID_NOT_INT64_PRIMARY_KEY],
    ['a non-boolean primaryKey', withFields({ ...pk, primaryKey: 1 as unknown as boolean }, vec), 'id', R.INVALID_FLAG],
    ['duplicate field names', withFields(pk, vec, { name: 'vec', type: 'int32' }), 'vec', R.DUPLICATE_FIELD],
    ['an empty field name', withFields(pk, vec, { name: '', type: 'int32' }), '', R.INVALID_FIELD_NAME],
    ['a too long field name', withFields(pk, vec, { name: 'n'.repeat(256), type: 'int32' }), 'n'.repeat(256), R.INVALID_FIELD_NAME],
    ['a non-string field name', withFields(pk, vec, { name: 7 as unknown as string, type: 'int32' }), '', R.INVALID_FIELD_NAME],
    ['an unknown type', withFields(pk, vec, { name: 'x', type: 'int8' as 'int32' }), 'x', R.UNKNOWN_TYPE],
    ['a vector without dim', withFields(pk, { name: 'v', type: 'floatVector' }), 'v', R.INVALID_DIM],
    ['a vector with dim 0', withFields(pk, { name: 'v', type: 'floatVector', dim: 0 }), 'v', R.INVALID_DIM],
    ['a vector with dim 32769', withFields(pk, { name: 'v', type: 'floatVector', dim: 32769 }), 'v', R.INVALID_DIM],
    ['a vector with a fractional dim', withFields(pk, { name: 'v', type: 'floatVector', dim: 2.5 }), 'v', R.INVALID_DIM],
    ['a vector with a NaN dim', withFields(pk, { name: 'v', type: 'floatVector', dim: NaN }), 'v', R.INVALID_DIM],
    ['dim on a scalar', withFields(pk, vec, { name: 'n', type: 'int32', dim: 4 }), 'n', R.DIM_ON_SCALAR],
    ['maxLength 0', withFields(pk, vec, { name: 's', type: 'varchar', maxLength: 0 }), 's', R.INVALID_MAX_LENGTH],
    ['maxLength 65536', withFields(pk, vec, { name: 's', type: 'varchar', maxLength: 65536 }), 's', R.INVALID_MAX_LENGTH],
    ['maxLength on an int', withFields(pk, vec, { name: 'n', type: 'int64', maxLength: 4 }), 'n', R.MAX_LENGTH_ON_NON_VARCHAR],
    ['no vector field', withFields(pk, { name: 'n', type: 'int32' }), '', R.NO_VECTOR_FIELD],
  ])('rejects %s', (_name, schema, field, reason) => {
    expectRejected(() => validateSchema(schema as CollectionSchema), field, reason);
  });
});

/** A valid batch of two rows for SCHEMA, with `over` replacing (or, with `undefined`, removing) columns. */
function batch(over: Record<string, Column | undefined> = {}): Column[] {
  const base: Column[] = [
    { name: 'id', type: 'int64', data: [1, Number.MAX_SAFE_INTEGER] },
    { name: 'vec', type: 'floatVector', dim: 4, data: new Float32Array([0, -0, 1e-45, 3.4e38, 1, 2, 3, 4]) },
    { name: 'flag', type: 'bool', data: [true, false] },
    { name: 'i32', type: 'int32', data: [-2147483648, 2147483647] },
    { name: 'f32', type: 'float', data: [0.5, -3.4e38] },
    { name: 'f64', type: 'double', data: [1e308, -0] },
    { name: 'title', type: 'varchar', data: ['', 'héllo'] },
    { name: 'meta', type: 'json', data: [null, { a: [1, 'b'] }] },
  ];
  const out: Column[] = [];
  for (const c of base) {
    if (!(c.name in over)) out.push(c);
    else if (over[c.name] !== undefined) out.push(over[c.name] as Column);
  }
  for (const [name, c] of Object.entries(over)) if (c !== undefined && !base.some((b) => b.name === name)) out.push(c);
  return out;
}

describe('validateInsert', () => {
  it('accepts a valid batch and returns its row count', () => {
    expect(validateInsert(SCHEMA, batch())).toEqual({ rows: 2 });
  });

  it('accepts columns in any order', () => {
    expect(validateInsert(SCHEMA, [...batch()].reverse())).toEqual({ rows: 2 });
  });

  it('accepts a batch without the autoId primary key', () => {
    const schema = withFields({ ...pk, autoId: true }, { name: 'vec', type: 'floatVector', dim: 2 });
    expect(validateInsert(schema, [{ name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array(6) }])).toEqual({ rows: 3 });
  });

  it('accepts a varchar of exactly maxLength UTF-16 units (an emoji counts 2)', () => {
    expect(validateInsert(SCHEMA, batch({ title: { name: 'title', type: 'varchar', data: ['abcde', '😀😀'] } }))).toEqual({ rows: 2 });
  });

  const autoIdSchema = withFields({ ...pk, autoId: true }, { name: 'vec', type: 'floatVector', dim: 4 });
  const vec2 = (data: number[], dim = 4): Column => ({ name: 'vec', type: 'floatVector', dim, data: new Float32Array(data) });

  it.each<[string, CollectionSchema, Column[], string, string, number?]>([
    ['columns not an array', SCHEMA, null as unknown as Column[], '', R.INVALID_COLUMNS],
    ['a null column', SCHEMA, [null as unknown as Column], '', R.INVALID_COLUMNS],
    ['a missing field', SCHEMA, batch({ flag: undefined }), 'flag', R.MISSING_FIELD],
    ['a missing primary key', SCHEMA, batch({ id: undefined }), 'id', R.MISSING_FIELD],
    ['an unknown field', SCHEMA, batch({ extra: { name: 'extra', type: 'int32', data: [1, 2] } }), 'extra', R.UNKNOWN_FIELD],
    ['a duplicate column', SCHEMA, [...batch(), { name: 'i32', type: 'int32', data: [1, 2] }], 'i32', R.DUPLICATE_COLUMN],
    ['an autoId primary key given', autoIdSchema, [{ name: 'id', type: 'int64', data: [1, 2] }, vec2(new Array(8).fill(0))], 'id', R.AUTO_ID_PRESENT],
    ['a wrong type', SCHEMA, batch({ i32: { name: 'i32', type: 'int64', data: [1, 2] } }), 'i32', R.TYPE_MISMATCH],
    ['a vector given as numbers', SCHEMA, batch({ vec: { name: 'vec', type: 'floatVector', dim: 4, data: [1, 2, 3, 4] as unknown as Float32Array } }), 'vec', R.INVALID_DATA],
    ['scalar data not an array', SCHEMA, batch({ f64: { name: 'f64', type: 'double', data: new Float64Array(2) as unknown as number[] } }), 'f64', R.INVALID_DATA],
    ['a wrong vector dim', SCHEMA, batch({ vec: vec2(new Array(16).fill(0), 8) }), 'vec', R.DIM_MISMATCH],
    ['a vector length that is not rows × dim', SCHEMA, batch({ vec: vec2(new Array(7).fill(0)) }), 'vec', R.VECTOR_LENGTH],
    ['a vector with too few rows', SCHEMA, batch({ vec: vec2(new Array(4).fill(0)) }), 'vec', R.ROW_COUNT_MISMATCH],
    ['a scalar column with too many rows', SCHEMA, batch({ flag: { name: 'flag', type: 'bool', data: [true, false, true] } }), 'flag', R.ROW_COUNT_MISMATCH],
    ['NaN in a vector', SCHEMA, batch({ vec: vec2([0, 0, 0, 0, 0, NaN, 0, 0]) }), 'vec', R.NOT_FINITE, 1],
    ['Infinity in a vector', SCHEMA, batch({ vec: vec2([Infinity, 0, 0, 0, 0, 0, 0, 0]) }), 'vec', R.NOT_FINITE, 0],
    ['-Infinity in a vector', SCHEMA, batch({ vec: vec2([0, 0, 0, 0, 0, 0, 0, -Infinity]) }), 'vec', R.NOT_FINITE, 1],
    ['NaN in a float', SCHEMA, batch({ f32: { name: 'f32', type: 'float', data: [0, NaN] } }), 'f32', R.NOT_FINITE, 1],
    ['Infinity in a double', SCHEMA, batch({ f64: { name: 'f64', type: 'double', data: [Infinity, 0] } }), 'f64', R.NOT_FINITE, 0],
    ['a float beyond float32 range', SCHEMA, batch({ f32: { name: 'f32', type: 'float', data: [1e39, 0] } }), 'f32', R.FLOAT_OUT_OF_RANGE, 0],
    ['a string in a double column', SCHEMA, batch({ f64: { name: 'f64', type: 'double', data: ['1' as unknown as number, 0] } }), 'f64', R.WRONG_VALUE_TYPE, 0],
    ['an unsafe int64', SCHEMA, batch({ id: { name: 'id', type: 'int64', data: [1, 2 ** 53] } }), 'id', R.UNSAFE_INT64, 1],
    ['a fractional int64', SCHEMA, batch({ id: { name: 'id', type: 'int64', data: [1.5, 2] } }), 'id', R.UNSAFE_INT64, 0],
    ['a bigint in an int64 column', SCHEMA, batch({ id: { name: 'id', type: 'int64', data: [1n as unknown as number, 2] } }), 'id', R.WRONG_VALUE_TYPE, 0],
    ['an int32 above range', SCHEMA, batch({ i32: { name: 'i32', type: 'int32', data: [0, 2147483648] } }), 'i32', R.INT32_OUT_OF_RANGE, 1],
    ['an int32 below range', SCHEMA, batch({ i32: { name: 'i32', type: 'int32', data: [-2147483649, 0] } }), 'i32', R.INT32_OUT_OF_RANGE, 0],
    ['a fractional int32', SCHEMA, batch({ i32: { name: 'i32', type: 'int32', data: [0.5, 0] } }), 'i32', R.INT32_OUT_OF_RANGE, 0],
    ['a varchar over maxLength', SCHEMA, batch({ title: { name: 'title', type: 'varchar', data: ['ok', 'toolong'] } }), 'title', R.TOO_LONG, 1],
    ['a varchar with a lone surrogate', SCHEMA, batch({ title: { name: 'title', type: 'varchar', data: ['\ud800', 'a'] } }), 'title', R.INVALID_UTF16, 0],
    ['a non-string varchar', SCHEMA, batch({ title: { name: 'title', type: 'varchar', data: ['a', null as unknown as string] } }), 'title', R.WRONG_VALUE_TYPE, 1],
    ['a non-boolean bool', SCHEMA, batch({ flag: { name: 'flag', type: 'bool', data: [1 as unknown as boolean, true] } }), 'flag', R.WRONG_VALUE_TYPE, 0],
    ['a json value with a bigint', SCHEMA, batch({ meta: { name: 'meta', type: 'json', data: [1n, null] } }), 'meta', R.NOT_JSON, 0],
    ['an undefined json value', SCHEMA, batch({ meta: { name: 'meta', type: 'json', data: [null, undefined] } }), 'meta', R.NOT_JSON, 1],
    ['zero rows', autoIdSchema, [vec2([])], '', R.EMPTY_INSERT],
  ])('rejects %s', (_name, schema, columns, field, reason, ...rest) => {
    // `...rest`, not a sixth parameter: jest takes a callback with more parameters than the row has cells as an async `done` test.
    const index = rest[0];
    const e = expectRejected(() => validateInsert(schema, columns), field, reason);
    if (index !== undefined) expect(e.details?.['index']).toBe(index);
  });
});

describe('estimateInsertBytes', () => {
  it('counts fixed widths, vector floats, UTF-8 and JSON text', () => {
    const columns: Column[] = [
      { name: 'id', type: 'int64', data: [1, 2] }, // 16
      { name: 'vec', type: 'floatVector', dim: 4, data: new Float32Array(8) }, // 32
      { name: 'flag', type: 'bool', data: [true, false] }, // 2
      { name: 'i32', type: 'int32', data: [1, 2] }, // 8
      { name: 'f32', type: 'float', data: [1, 2] }, // 8
      { name: 'f64', type: 'double', data: [1, 2] }, // 16
      { name: 's', type: 'varchar', data: ['ab', 'é'] }, // 4 + 2 + 4 + 2
      { name: 'j', type: 'json', data: [null, { a: 1 }] }, // 4 + 4 + 4 + 7
    ];
    expect(estimateInsertBytes(columns)).toBe(16 + 32 + 2 + 8 + 8 + 16 + 12 + 19);
  });
});
