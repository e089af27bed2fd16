/**
 * The JSON face of the message model, shared by the HTTP gateway (runtime/server/http.ts) and the
 * CLI (runtime/cli/). One rule each way:
 *
 * - Out (encode): bigints (timeticks, transaction ids) become decimal strings, Float32Array vectors
 *   become flat number arrays; everything else is as is. `Json<T>` is the type of the result.
 * - In (decode): request bodies become client calls. Vector columns are flat number arrays with
 *   `dim` or arrays of rows (dim inferred); int64 values are safe-integer JSON numbers or decimal
 *   strings; timetick filters are decimal strings. A bad value is INVALID_ARGUMENT naming the field
 *   path (`columns[1].data[7]`) and the reason.
 * - Back (for the CLI's HTTP client): the encoded forms turned into the model again
 *   (`decodeLogMessage`, `decodeWriteResult`, `decodeAppendResult`).
 *
 * Vectors in JSON are for people and tools at the edge; in the log they stay raw float32.
 */
import { invalidArgument } from '../errors';
import type { Timetick } from '../message/timetick';
import {
  MESSAGE_TYPES,
  SCALAR_TYPES,
  SYSTEM_TYPES,
  type CollectionSchema,
  type Column,
  type FieldType,
  type LogMessage,
  type MessageType,
  type PrimaryKeys,
} from '../message/types';
import type { AppendResult, DeliverFilters, DeliverPolicy, SubscribeRequest, WriteResult } from '../client/api';

// ------------------------------------------------------------------ out: model → JSON

/** The JSON form of a model type: bigint → decimal string, Float32Array → number[]. */
export type Json<T> = T extends bigint
  ? string
  : T extends Float32Array
    ? number[]
    : T extends readonly (infer U)[]
      ? Json<U>[]
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

export type JsonLogMessage = Json<LogMessage>;
export type JsonWriteResult = Json<WriteResult>;
export type JsonAppendResult = Json<AppendResult>;

/**
 * A model value as a plain JSON value: bigint → decimal string, Float32Array → number[], the rest
 * as is (objects and arrays copied only along the way to something converted). Faster than a
 * JSON.stringify replacer, which would be called for every number of every vector.
 */
export function toJson<T>(value: T): Json<T> {
  return convert(value) as Json<T>;
}

function convert(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof Float32Array) return Array.from(v);
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = typeof x === 'object' || typeof x === 'bigint' ? convert(x) : x;
      if (y !== x && out === undefined) out = v.slice(0, i);
      if (out !== undefined) out.push(y);
    }
    return out ?? v;
  }
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = convert(x);
  return out;
}

/** One model value as JSON text (one line: fit for NDJSON). */
export function stringifyJson(value: unknown): string {
  return JSON.stringify(convert(value));
}

/** Columns of an insert in their JSON form: vectors as flat number arrays with `dim`. */
export function encodeColumns(columns: readonly Column[]): JsonColumn[] {
  return columns.map((c) => (c.type === 'floatVector' ? { name: c.name, type: c.type, dim: c.dim, data: Array.from(c.data) } : { name: c.name, type: c.type, data: [...c.data] }));
}

// ------------------------------------------------------------------ in: JSON → model

/** A column as a request carries it. */
export interface JsonColumn {
  name: string;
  type: FieldType;
  /** floatVector: flat rows × dim numbers (then `dim` is required) or one array of dim numbers per row. */
  data: unknown[];
  dim?: number;
}

export interface JsonPrimaryKeys {
  type: 'int64' | 'varchar';
  data: (number | string)[];
}

/** Largest magnitude of a finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const FIELD_TYPES: ReadonlySet<string> = new Set<string>([...SCALAR_TYPES, 'floatVector']);
const DECIMAL_INT = /^-?(0|[1-9][0-9]{0,18})$/;
const DECIMAL_UINT64 = /^(0|[1-9][0-9]{0,19})$/;
const UINT64_MAX = (1n << 64n) - 1n;

function bad(field: string, reason: string, extra: Record<string, unknown> = {}): never {
  throw invalidArgument(`invalid ${field === '' ? 'request' : field}: ${reason}`, { field, reason, ...extra });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A safe-integer JSON number or a decimal string, as a number (int64 columns and primary keys). */
export function decodeInt64(v: unknown, field: string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) bad(field, 'not a safe integer (send larger int64 values as decimal strings; they must still be within ±(2^53 − 1))', { value: v });
    return v;
  }
  if (typeof v === 'string') {
    if (!DECIMAL_INT.test(v)) bad(field, 'not a decimal integer', { value: v });
    const n = Number(v);
    if (!Number.isSafeInteger(n)) bad(field, 'not a safe integer (must be within ±(2^53 − 1))', { value: v });
    return n;
  }
  return bad(field, 'expected an integer (number or decimal string)');
}

/** A timetick (or transaction id) given as a decimal string (a JSON number loses precision above 2^53). */
export function decodeTimetick(v: unknown, field: string): Timetick {
  if (typeof v !== 'string' || !DECIMAL_UINT64.test(v)) return bad(field, 'expected a decimal string of an unsigned 64-bit integer', { value: v });
  const t = BigInt(v);
  if (t > UINT64_MAX) bad(field, 'exceeds 2^64 − 1', { value: v });
  return t;
}

function decodeNumbers(data: unknown[], field: string, check: (v: number, at: string) => void): number[] {
  const out = new Array<number>(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const at = `${field}[${i}]`;
    if (typeof v !== 'number' || !Number.isFinite(v)) bad(at, 'expected a finite number', { index: i });
    check(v, at);
    out[i] = v;
  }
  return out;
}

function checkFloat32(v: number, at: string): void {
  if (Math.abs(v) > FLOAT32_MAX) bad(at, 'out of float32 range', { value: v });
}

function decodeVector(c: Record<string, unknown>, field: string): { dim: number; data: Float32Array } {
  const data = c['data'] as unknown[];
  const dimGiven = c['dim'];
  if (dimGiven !== undefined && (!Number.isInteger(dimGiven) || (dimGiven as number) < 1)) bad(`${field}.dim`, 'expected a positive integer', { value: dimGiven });
  if (data.length > 0 && Array.isArray(data[0])) {
    // One array per row.
    const dim = (dimGiven as number | undefined) ?? (data[0] as unknown[]).length;
    if (dim < 1) bad(`${field}.data[0]`, 'a vector needs at least one value');
    const out = new Float32Array(data.length * dim);
    for (let r = 0; r < data.length; r++) {
      const row = data[r];
      const at = `${field}.data[${r}]`;
      if (!Array.isArray(row)) bad(at, 'expected an array of numbers (rows are arrays when the first row is)');
      if (row.length !== dim) bad(at, `expected ${dim} values (dim), got ${row.length}`, { dim, length: row.length });
      for (let j = 0; j < dim; j++) {
        const v: unknown = row[j];
        if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${at}[${j}]`, 'expected a finite number');
        checkFloat32(v, `${at}[${j}]`);
        out[r * dim + j] = v;
      }
    }
    return { dim, data: out };
  }
  if (dimGiven === undefined) return bad(`${field}.dim`, 'required when the vector data is flat (rows × dim numbers)');
  const dim = dimGiven as number;
  if (data.length % dim !== 0) bad(`${field}.data`, `length ${data.length} is not a multiple of dim ${dim}`, { length: data.length, dim });
  return { dim, data: Float32Array.from(decodeNumbers(data, `${field}.data`, checkFloat32)) };
}

/** One JSON column as a model Column (shape and value types only; the schema check comes later). */
export function decodeColumn(value: unknown, field: string): Column {
  if (!isObject(value)) return bad(field, 'expected an object {name, type, data, dim?}');
  const { name, type, data } = value;
  if (typeof name !== 'string' || name === '') bad(`${field}.name`, 'expected a non-empty string');
  if (typeof type !== 'string' || !FIELD_TYPES.has(type)) bad(`${field}.type`, `expected one of ${[...FIELD_TYPES].join('|')}`, { value: type });
  if (!Array.isArray(data)) return bad(`${field}.data`, 'expected an array');
  if (type !== 'floatVector' && value['dim'] !== undefined) bad(`${field}.dim`, 'only vector columns have a dim');
  const at = `${field}.data`;
  switch (type as FieldType) {
    case 'floatVector':
      return { name, type: 'floatVector', ...decodeVector(value, field) };
    case 'bool':
      data.forEach((v, i) => typeof v !== 'boolean' && bad(`${at}[${i}]`, 'expected a boolean', { index: i }));
      return { name, type: 'bool', data: data as boolean[] };
    case 'int32':
      return {
        name,
        type: 'int32',
        data: decodeNumbers(data, at, (v, p) => {
          if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) bad(p, 'not an int32', { value: v });
        }),
      };
    case 'int64':
      return { name, type: 'int64', data: data.map((v, i) => decodeInt64(v, `${at}[${i}]`)) };
    case 'float':
      return { name, type: 'float', data: decodeNumbers(data, at, checkFloat32) };
    case 'double':
      return { name, type: 'double', data: decodeNumbers(data, at, () => undefined) };
    case 'varchar':
      data.forEach((v, i) => typeof v !== 'string' && bad(`${at}[${i}]`, 'expected a string', { index: i }));
      return { name, type: 'varchar', data: data as string[] };
    case 'json':
      return { name, type: 'json', data };
  }
}

/** The `columns` of an insert body. Duplicate names, unknown fields and row counts are checked against the schema later. */
export function decodeColumns(value: unknown, field = 'columns'): Column[] {
  if (!Array.isArray(value)) return bad(field, 'expected an array of columns');
  if (value.length === 0) bad(field, 'no columns');
  return value.map((c, i) => decodeColumn(c, `${field}[${i}]`));
}

export function decodePrimaryKeys(value: unknown, field = 'primaryKeys'): PrimaryKeys {
  if (!isObject(value)) return bad(field, 'expected {type: "int64" | "varchar", data: [...]}');
  const { type, data } = value;
  if (!Array.isArray(data)) return bad(`${field}.data`, 'expected an array');
  if (data.length === 0) bad(`${field}.data`, 'no primary keys');
  if (type === 'int64') return { type, data: data.map((v, i) => decodeInt64(v, `${field}.data[${i}]`)) };
  if (type === 'varchar') {
    data.forEach((v, i) => typeof v !== 'string' && bad(`${field}.data[${i}]`, 'expected a string', { index: i }));
    return { type, data: data as string[] };
  }
  return bad(`${field}.type`, 'expected int64 or varchar', { value: type });
}

/**
 * Row objects (`[{id: 1, vector: [..], title: "a"}, …]`, as the CLI reads them from a file) as
 * columns of `schema`: every field of the schema is a column (an autoId primary key is left out);
 * a row with a field the schema lacks, or without one it has, is INVALID_ARGUMENT `rows[i].name`.
 */
export function rowsToColumns(schema: CollectionSchema, rows: unknown[], field = 'rows', firstIndex = 0): Column[] {
  if (rows.length === 0) bad(field, 'no rows');
  const fields = schema.fields.filter((f) => f.autoId !== true);
  const known = new Set(schema.fields.map((f) => f.name));
  const json: JsonColumn[] = fields.map((f) => ({ name: f.name, type: f.type, data: [], ...(f.type === 'floatVector' ? { dim: f.dim } : {}) }));
  rows.forEach((row, r) => {
    const at = `${field}[${firstIndex + r}]`;
    if (!isObject(row)) bad(at, 'expected an object');
    for (const k of Object.keys(row)) if (!known.has(k)) bad(`${at}.${k}`, 'unknown field');
    fields.forEach((f, j) => {
      if (!(f.name in row)) bad(`${at}.${f.name}`, 'missing field');
      const col = json[j] as JsonColumn;
      const v = row[f.name];
      if (f.type === 'floatVector') {
        if (!Array.isArray(v)) bad(`${at}.${f.name}`, 'expected an array of numbers');
        if (v.length !== f.dim) bad(`${at}.${f.name}`, `expected ${f.dim} values (dim), got ${v.length}`, { dim: f.dim, length: v.length });
        v.forEach((x: unknown, k: number) => (typeof x !== 'number' || !Number.isFinite(x)) && bad(`${at}.${f.name}[${k}]`, 'expected a finite number'));
        for (const x of v) col.data.push(x);
      } else {
        col.data.push(v);
      }
    });
  });
  return json.map((c) => decodeColumn(c, `${field}.${c.name}`));
}

/** Subscription parameters as the query string (all strings) or a JSON body carries them. */
export interface SubscribeParams {
  vchannel?: string;
  pchannel?: string;
  /** With `shard` (default 0): that shard's vchannel. */
  collection?: string;
  shard?: number | string;
  /** all | latest | startFrom | startAfter. Default latest. */
  policy?: string;
  /** Message id for startFrom / startAfter. */
  id?: string;
  timetickGt?: string;
  timetickGte?: string;
  /** Comma-separated (query) or an array (body) of non-system message types. */
  types?: string | string[];
  credits?: number | string;
}

export const DELIVER_POLICIES = ['all', 'latest', 'startFrom', 'startAfter'] as const;

/** Where a subscription reads: a vchannel, a pchannel, or a shard of a collection (resolved by the caller). */
export type SubscribeTarget = { vchannel: string } | { pchannel: string } | { collection: string; shard: number };

export interface DecodedSubscribe {
  target: SubscribeTarget;
  policy: DeliverPolicy;
  filters?: DeliverFilters;
  credits?: number;
}

function decodeSmallInt(v: unknown, field: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^[0-9]{1,9}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return bad(field, `expected an integer in [${min}, ${max}]`, { value: v });
  return n;
}

export function decodeSubscribeParams(p: SubscribeParams): DecodedSubscribe {
  const given = (['vchannel', 'pchannel', 'collection'] as const).filter((k) => p[k] !== undefined);
  if (given.length !== 1) bad(given[1] ?? 'vchannel', 'exactly one of vchannel, pchannel, collection is required', { given });
  for (const k of given) if (typeof p[k] !== 'string' || p[k] === '') bad(k, 'expected a non-empty string');
  if (p.shard !== undefined && p.collection === undefined) bad('shard', 'only with collection');
  const target: SubscribeTarget =
    p.vchannel !== undefined
      ? { vchannel: p.vchannel }
      : p.pchannel !== undefined
        ? { pchannel: p.pchannel }
        : { collection: p.collection as string, shard: p.shard === undefined ? 0 : decodeSmallInt(p.shard, 'shard', 0, 1 << 20) };

  const policyName = p.policy ?? 'latest';
  let policy: DeliverPolicy;
  switch (policyName) {
    case 'all':
    case 'latest':
      if (p.id !== undefined) bad('id', `not used with policy ${policyName}`);
      policy = { type: policyName };
      break;
    case 'startFrom':
    case 'startAfter':
      if (typeof p.id !== 'string' || p.id === '') bad('id', `a message id is required with policy ${policyName}`);
      policy = { type: policyName, id: p.id };
      break;
    default:
      return bad('policy', `expected one of ${DELIVER_POLICIES.join('|')}`, { value: policyName });
  }

  const filters: DeliverFilters = {};
  if (p.timetickGt !== undefined) filters.timetickGt = decodeTimetick(p.timetickGt, 'timetickGt');
  if (p.timetickGte !== undefined) filters.timetickGte = decodeTimetick(p.timetickGte, 'timetickGte');
  if (p.types !== undefined) {
    const list = typeof p.types === 'string' ? p.types.split(',').map((s) => s.trim()).filter((s) => s !== '') : p.types;
    if (!Array.isArray(list) || list.length === 0) bad('types', 'expected one or more message types');
    filters.types = list.map((t, i) => {
      if (typeof t !== 'string' || !(MESSAGE_TYPES as string[]).includes(t)) bad(`types[${i}]`, `unknown message type (one of ${MESSAGE_TYPES.filter((m) => !SYSTEM_TYPES.has(m)).join('|')})`, { value: t });
      if (SYSTEM_TYPES.has(t as MessageType)) bad(`types[${i}]`, 'system messages always pass; they cannot be selected', { value: t });
      return t as MessageType;
    });
  }
  const out: DecodedSubscribe = { target, policy };
  if (Object.keys(filters).length > 0) out.filters = filters;
  if (p.credits !== undefined) out.credits = decodeSmallInt(p.credits, 'credits', 1, 65536);
  return out;
}

/** The query-string form of a subscription (what the CLI sends). */
export function encodeSubscribeParams(req: { target: SubscribeTarget } & Omit<SubscribeRequest, 'vchannel' | 'pchannel'>): Record<string, string> {
  const q: Record<string, string> = {};
  const t = req.target;
  if ('vchannel' in t) q['vchannel'] = t.vchannel;
  else if ('pchannel' in t) q['pchannel'] = t.pchannel;
  else {
    q['collection'] = t.collection;
    q['shard'] = String(t.shard);
  }
  q['policy'] = req.policy.type;
  if (req.policy.type === 'startFrom' || req.policy.type === 'startAfter') q['id'] = req.policy.id;
  if (req.filters?.timetickGt !== undefined) q['timetickGt'] = req.filters.timetickGt.toString();
  if (req.filters?.timetickGte !== undefined) q['timetickGte'] = req.filters.timetickGte.toString();
  if (req.filters?.types !== undefined) q['types'] = req.filters.types.join(',');
  if (req.credits !== undefined) q['credits'] = String(req.credits);
  return q;
}

// ------------------------------------------------------------------ back: JSON → model (HTTP client side)

function decodeTxnContext(t: { id: string; keepaliveMs: number } | undefined): { id: bigint; keepaliveMs: number } | undefined {
  return t === undefined ? undefined : { id: BigInt(t.id), keepaliveMs: t.keepaliveMs };
}

function decodeColumnsBack(columns: Json<Column>[]): Column[] {
  return columns.map((c) => (c.type === 'floatVector' ? { ...c, data: Float32Array.from(c.data) } : (c as Column)));
}

export function decodeAppendResult(j: JsonAppendResult): AppendResult {
  const txn = decodeTxnContext(j.txn);
  return { ...j, timetick: BigInt(j.timetick), ...(txn ? { txn } : {}) } as AppendResult;
}

export function decodeWriteResult(j: JsonWriteResult): WriteResult {
  return { rows: j.rows, appends: j.appends.map((a) => ({ vchannel: a.vchannel, rows: a.rows, result: decodeAppendResult(a.result) })) };
}

/** A message line of a subscription stream back into a LogMessage (timeticks as bigints, vectors as Float32Array). */
export function decodeLogMessage(j: JsonLogMessage): LogMessage {
  const txn = decodeTxnContext(j.txn);
  const base = { ...j, timetick: BigInt(j.timetick), ...(txn ? { txn } : {}) };
  switch (j.type) {
    case 'Insert':
      return { ...base, body: { columns: decodeColumnsBack(j.body.columns) } } as LogMessage;
    case 'ManualFlush':
      return { ...base, header: { ...j.header, flushTs: BigInt(j.header.flushTs) } } as LogMessage;
    case 'Txn':
      return {
        ...base,
        header: { ...j.header, txnId: BigInt(j.header.txnId) },
        body: { messages: j.body.messages.map((m) => decodeLogMessage(m as JsonLogMessage)) },
      } as LogMessage;
    default:
      return base as LogMessage;
  }
}
