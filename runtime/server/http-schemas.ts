/**
 * JSON schemas of every HTTP request (bodies, params, query strings), checked by fastify's ajv
 * before a handler runs. No type coercion and no extra properties: a wrong type or an unknown field
 * is a 400 naming the field path. The decoders in ./json.ts then check what a JSON schema cannot
 * say well (float32 range, safe integers, rows × dim); the collection schema is checked last.
 */
import { MESSAGE_TYPES, SCALAR_TYPES, SYSTEM_TYPES } from '../message/types';
import { FLOAT32_MAX } from './json';

const NAME = { type: 'string', minLength: 1, maxLength: 255 } as const;
const FIELD_TYPES = [...SCALAR_TYPES, 'floatVector'];
const FLOAT32 = { type: 'number', minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX } as const;
/** int64 as a JSON number (a safe integer) or a decimal string. */
const INT64 = { type: ['integer', 'string'], pattern: '^-?(0|[1-9][0-9]{0,18})$', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER } as const;
const TIMETICK = { type: 'string', pattern: '^(0|[1-9][0-9]{0,19})$' } as const;
/** A transaction id in a path: the decimal timetick of its BeginTxn. */
const TXN_ID = { type: 'string', pattern: '^[0-9]{1,20}$' } as const;
const IDEMPOTENCY_KEY = { type: 'string', minLength: 1, maxLength: 256 } as const;

/** Items of a column's data by column type (if/then keeps the error at the bad value's path). */
const COLUMN_DATA_BY_TYPE = [
  // floatVector: flat numbers (with dim) or one array of numbers per row
  ['floatVector', { ...FLOAT32, type: ['number', 'array'], items: FLOAT32 }],
  ['bool', { type: 'boolean' }],
  ['int32', { type: 'integer', minimum: -2147483648, maximum: 2147483647 }],
  ['int64', INT64],
  ['float', FLOAT32],
  ['double', { type: 'number' }],
  ['varchar', { type: 'string' }],
] as const;

export const COLUMN = {
  type: 'object',
  required: ['name', 'type', 'data'],
  additionalProperties: false,
  properties: {
    name: NAME,
    type: { type: 'string', enum: FIELD_TYPES },
    dim: { type: 'integer', minimum: 1, maximum: 32768 },
    data: { type: 'array' },
  },
  allOf: COLUMN_DATA_BY_TYPE.map(([type, items]) => ({
    if: { properties: { type: { const: type } } },
    then: { properties: { data: { type: 'array', items } } },
  })),
} as const;

const COLUMNS = { type: 'array', minItems: 1, items: COLUMN } as const;

const PRIMARY_KEYS = {
  type: 'object',
  required: ['type', 'data'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['int64', 'varchar'] },
    data: { type: 'array', minItems: 1 },
  },
  allOf: [
    { if: { properties: { type: { const: 'int64' } } }, then: { properties: { data: { type: 'array', items: INT64 } } } },
    { if: { properties: { type: { const: 'varchar' } } }, then: { properties: { data: { type: 'array', items: { type: 'string' } } } } },
  ],
} as const;

const FIELD_SCHEMA = {
  type: 'object',
  required: ['name', 'type'],
  additionalProperties: false,
  properties: {
    name: NAME,
    type: { type: 'string', enum: FIELD_TYPES },
    dim: { type: 'integer', minimum: 1, maximum: 32768 },
    primaryKey: { type: 'boolean' },
    autoId: { type: 'boolean' },
    maxLength: { type: 'integer', minimum: 1, maximum: 65535 },
  },
} as const;

const COLLECTION_PARAMS = { type: 'object', required: ['name'], properties: { name: NAME } } as const;

/** Any request may name its deadline in this header (ms); default: the client's default timeout. */
export const TIMEOUT_HEADER = 'x-timeout-ms';
const HEADERS = { type: 'object', properties: { [TIMEOUT_HEADER]: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } } } as const;

const EMPTY_BODY = { type: 'object', additionalProperties: false, properties: {} } as const;

export const SCHEMAS = {
  headers: HEADERS,
  createCollection: {
    body: {
      type: 'object',
      required: ['name', 'schema'],
      additionalProperties: false,
      properties: {
        name: NAME,
        schema: {
          type: 'object',
          required: ['fields'],
          additionalProperties: false,
          properties: { fields: { type: 'array', minItems: 1, maxItems: 1024, items: FIELD_SCHEMA } },
        },
        shards: { type: 'integer', minimum: 1, maximum: 1024 },
      },
    },
  },
  collection: { params: COLLECTION_PARAMS },
  createPartition: {
    params: COLLECTION_PARAMS,
    body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: NAME } },
  },
  flush: { params: COLLECTION_PARAMS, body: EMPTY_BODY },
  dropPartition: {
    params: { type: 'object', required: ['name', 'partition'], properties: { name: NAME, partition: NAME } },
  },
  insert: {
    params: COLLECTION_PARAMS,
    body: {
      type: 'object',
      required: ['columns'],
      additionalProperties: false,
      properties: { partition: NAME, columns: COLUMNS, idempotencyKey: IDEMPOTENCY_KEY },
    },
  },
  delete: {
    params: COLLECTION_PARAMS,
    body: {
      type: 'object',
      required: ['primaryKeys'],
      additionalProperties: false,
      properties: { partition: NAME, primaryKeys: PRIMARY_KEYS, idempotencyKey: IDEMPOTENCY_KEY },
    },
  },
  beginTxn: {
    params: COLLECTION_PARAMS,
    body: {
      type: 'object',
      additionalProperties: false,
      properties: { shard: { type: 'integer', minimum: 0, maximum: 1024 }, keepaliveMs: { type: 'integer', minimum: 1, maximum: 3_600_000 } },
    },
  },
  txnInsert: {
    params: { type: 'object', required: ['id'], properties: { id: TXN_ID } },
    body: { type: 'object', required: ['columns'], additionalProperties: false, properties: { partition: NAME, columns: COLUMNS } },
  },
  txnDelete: {
    params: { type: 'object', required: ['id'], properties: { id: TXN_ID } },
    body: { type: 'object', required: ['primaryKeys'], additionalProperties: false, properties: { partition: NAME, primaryKeys: PRIMARY_KEYS } },
  },
  txnFinish: {
    params: { type: 'object', required: ['id'], properties: { id: TXN_ID } },
    body: EMPTY_BODY,
  },
  transfer: {
    body: { type: 'object', required: ['pchannel'], additionalProperties: false, properties: { pchannel: NAME, toNode: NAME } },
  },
} as const;

const SUBSCRIBE_PROPERTIES = {
  vchannel: NAME,
  pchannel: NAME,
  collection: NAME,
  policy: { type: 'string', enum: ['all', 'latest', 'startFrom', 'startAfter'] },
  id: { type: 'string', minLength: 1, maxLength: 128 },
  timetickGt: TIMETICK,
  timetickGte: TIMETICK,
} as const;

const DELIVERABLE_TYPES = MESSAGE_TYPES.filter((t) => !SYSTEM_TYPES.has(t));

/** GET /subscribe: every value is a string of the query. */
export const SUBSCRIBE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...SUBSCRIBE_PROPERTIES,
    shard: { type: 'string', pattern: '^[0-9]{1,7}$' },
    types: { type: 'string', pattern: `^(${DELIVERABLE_TYPES.join('|')})(,(${DELIVERABLE_TYPES.join('|')}))*$` },
    credits: { type: 'string', pattern: '^[1-9][0-9]{0,4}$' },
  },
} as const;

/** POST /subscribe: the same fields as JSON. */
export const SUBSCRIBE_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...SUBSCRIBE_PROPERTIES,
    shard: { type: 'integer', minimum: 0, maximum: 1024 },
    types: { type: 'array', minItems: 1, items: { type: 'string', enum: DELIVERABLE_TYPES } },
    credits: { type: 'integer', minimum: 1, maximum: 65536 },
  },
} as const;
