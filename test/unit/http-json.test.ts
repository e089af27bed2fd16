/** The JSON face of the model (runtime/server/json.ts): out, in and back. */
import { StreamingError } from '../../runtime/errors';
import type { Column, LogMessage } from '../../runtime/message/types';
import {
  decodeColumns,
  decodeInt64,
  decodeLogMessage,
  decodePrimaryKeys,
  decodeSubscribeParams,
  decodeTimetick,
  decodeWriteResult,
  encodeColumns,
  encodeSubscribeParams,
  rowsToColumns,
  stringifyJson,
  toJson,
  type JsonLogMessage,
} from '../../runtime/server/json';

const TT = 470712618225238016n; // > 2^53

function insert(): LogMessage {
  return {
    type: 'Insert',
    vchannel: 'p_0_1v0',
    timetick: TT,
    lastConfirmedId: '0000000000000002',
    term: 3,
    id: '0000000000000003',
    size: 120,
    idempotencyKey: 'k:0',
    header: { collectionId: 1, partitionId: 1, rows: 2, bytes: 40, segmentId: 5 },
    body: {
      columns: [
        { name: 'id', type: 'int64', data: [1, 9007199254740991] },
        { name: 'v', type: 'floatVector', dim: 2, data: Float32Array.from([0.1, -2, 3.5, 1e-7]) },
        { name: 'meta', type: 'json', data: [{ a: 1 }, null] },
      ],
    },
  };
}

function caught(f: () => unknown): StreamingError {
  try {
    f();
  } catch (e) {
    if (e instanceof StreamingError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('out: model → JSON', () => {
  test('timeticks and transaction ids as decimal strings, vectors as number arrays, the rest as is', () => {
    const m = { ...insert(), txn: { id: TT - 5n, keepaliveMs: 100 } } as LogMessage;
    const j = JSON.parse(stringifyJson(m)) as JsonLogMessage & { body: { columns: { data: unknown[] }[] } };
    expect(j.timetick).toBe('470712618225238016');
    expect(j.txn).toEqual({ id: '470712618225238011', keepaliveMs: 100 });
    expect(j.body.columns[0]?.data).toEqual([1, 9007199254740991]);
    expect(j.body.columns[1]).toEqual({ name: 'v', type: 'floatVector', dim: 2, data: Array.from(Float32Array.from([0.1, -2, 3.5, 1e-7])) });
    expect(j.body.columns[2]?.data).toEqual([{ a: 1 }, null]);
    expect(toJson(m)).toEqual(j);
  });

  test('a Txn with its messages and a ManualFlush survive the round trip', () => {
    const txn: LogMessage = {
      type: 'Txn',
      vchannel: 'p_0_1v0',
      timetick: TT + 9n,
      lastConfirmedId: '0000000000000001',
      term: 3,
      id: '000000000000000a',
      size: 300,
      header: { txnId: TT, count: 1 },
      body: { messages: [{ ...(insert() as Extract<LogMessage, { type: 'Insert' }>), txn: { id: TT, keepaliveMs: 10 } }] },
    };
    const flush: LogMessage = {
      type: 'ManualFlush',
      vchannel: 'p_0_1v0',
      timetick: TT + 10n,
      lastConfirmedId: '0000000000000001',
      term: 3,
      id: '000000000000000b',
      size: 50,
      header: { collectionId: 1, flushTs: TT + 10n, segmentIds: [5] },
      body: {},
    };
    for (const m of [insert(), txn, flush]) {
      const back = decodeLogMessage(JSON.parse(stringifyJson(m)) as JsonLogMessage);
      expect(back).toEqual(m);
    }
  });

  test('a write result decodes back with bigint timeticks', () => {
    const r = { rows: 2, appends: [{ vchannel: 'p_0_1v0', rows: 2, result: { id: '01', timetick: TT, lastConfirmedId: '00' } }] };
    expect(decodeWriteResult(toJson(r))).toEqual(r);
  });
});

describe('in: JSON → model', () => {
  test('vector columns: rows of numbers or flat with dim, as Float32Array of rows × dim', () => {
    const [rows] = decodeColumns([{ name: 'v', type: 'floatVector', data: [[1, 2], [3, 4]] }]);
    const [flat] = decodeColumns([{ name: 'v', type: 'floatVector', dim: 2, data: [1, 2, 3, 4] }]);
    for (const c of [rows, flat]) {
      expect(c).toMatchObject({ name: 'v', type: 'floatVector', dim: 2 });
      expect(Array.from((c as Extract<Column, { type: 'floatVector' }>).data)).toEqual([1, 2, 3, 4]);
    }
    expect(encodeColumns([flat as Column])).toEqual([{ name: 'v', type: 'floatVector', dim: 2, data: [1, 2, 3, 4] }]);
  });

  test.each([
    [[{ name: 'v', type: 'floatVector', data: [1, 2] }], 'columns[0].dim'],
    [[{ name: 'v', type: 'floatVector', data: [[1, 2], [3]] }], 'columns[0].data[1]'],
    [[{ name: 'v', type: 'floatVector', data: [[1, 2], [3, NaN]] }], 'columns[0].data[1][1]'],
    [[{ name: 'v', type: 'floatVector', data: [[1, 4e38]] }], 'columns[0].data[0][1]'],
    [[{ name: 'v', type: 'floatVector', dim: 3, data: [1, 2] }], 'columns[0].data'],
    [[{ name: 'f', type: 'float', data: [Infinity] }], 'columns[0].data[0]'],
    [[{ name: 'i', type: 'int32', data: [2 ** 31] }], 'columns[0].data[0]'],
    [[{ name: 'i', type: 'int64', data: [2 ** 53] }], 'columns[0].data[0]'],
    [[{ name: 'i', type: 'int64', data: ['9007199254740993'] }], 'columns[0].data[0]'],
    [[{ name: 'b', type: 'bool', data: [true, 1] }], 'columns[0].data[1]'],
    [[{ name: 's', type: 'varchar', data: ['a', 2] }], 'columns[0].data[1]'],
    [[{ name: 's', type: 'varchar', dim: 2, data: ['a'] }], 'columns[0].dim'],
    [[{ name: '', type: 'varchar', data: ['a'] }], 'columns[0].name'],
    [[{ name: 'x', type: 'decimal', data: [1] }], 'columns[0].type'],
    [[], 'columns'],
  ])('%j → INVALID_ARGUMENT at %s', (columns, field) => {
    const e = caught(() => decodeColumns(columns));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.details).toMatchObject({ field });
  });

  test('int64: safe JSON numbers or decimal strings', () => {
    expect(decodeInt64(-42, 'x')).toBe(-42);
    expect(decodeInt64('9007199254740991', 'x')).toBe(9007199254740991);
    expect(decodeInt64('-0', 'x')).toBe(-0);
    expect(caught(() => decodeInt64('01', 'x')).details).toMatchObject({ field: 'x', reason: 'not a decimal integer' });
    expect(caught(() => decodeInt64(1.5, 'x')).details).toMatchObject({ field: 'x' });
    expect(decodePrimaryKeys({ type: 'int64', data: [1, '2'] })).toEqual({ type: 'int64', data: [1, 2] });
    expect(caught(() => decodePrimaryKeys({ type: 'varchar', data: [1] })).details).toMatchObject({ field: 'primaryKeys.data[0]' });
  });

  test('timeticks: decimal strings up to 2^64 − 1', () => {
    expect(decodeTimetick('18446744073709551615', 't')).toBe(18446744073709551615n);
    expect(caught(() => decodeTimetick('18446744073709551616', 't')).details).toMatchObject({ field: 't' });
    expect(caught(() => decodeTimetick(12, 't')).details).toMatchObject({ field: 't' });
  });

  test('rows → columns against a schema', () => {
    const schema = {
      fields: [
        { name: 'id', type: 'int64' as const, primaryKey: true, autoId: true },
        { name: 'v', type: 'floatVector' as const, dim: 2 },
        { name: 's', type: 'varchar' as const },
      ],
    };
    const cols = rowsToColumns(schema, [
      { v: [1, 2], s: 'a' },
      { v: [3, 4], s: 'b' },
    ]);
    expect(cols.map((c) => c.name)).toEqual(['v', 's']);
    expect(Array.from((cols[0] as Extract<Column, { type: 'floatVector' }>).data)).toEqual([1, 2, 3, 4]);
    expect(caught(() => rowsToColumns(schema, [{ v: [1, 2] }])).details).toMatchObject({ field: 'rows[0].s', reason: 'missing field' });
    expect(caught(() => rowsToColumns(schema, [{ v: [1, 2], s: 'a', z: 1 }])).details).toMatchObject({ field: 'rows[0].z', reason: 'unknown field' });
    expect(caught(() => rowsToColumns(schema, [{ v: [1, 2], s: 'a' }, { v: [1, 2, 3], s: 'a' }], 'rows', 10)).details).toMatchObject({ field: 'rows[11].v', dim: 2, length: 3 });
  });

  test('subscribe parameters: decode, and encode back to the same query', () => {
    const d = decodeSubscribeParams({ collection: 'c', shard: '1', policy: 'startFrom', id: '00a', timetickGt: '5', timetickGte: '6', types: 'Insert,Delete', credits: '8' });
    expect(d).toEqual({
      target: { collection: 'c', shard: 1 },
      policy: { type: 'startFrom', id: '00a' },
      filters: { timetickGt: 5n, timetickGte: 6n, types: ['Insert', 'Delete'] },
      credits: 8,
    });
    expect(decodeSubscribeParams(encodeSubscribeParams(d))).toEqual(d);
    expect(decodeSubscribeParams({ vchannel: 'v' })).toEqual({ target: { vchannel: 'v' }, policy: { type: 'latest' } });
    expect(caught(() => decodeSubscribeParams({ vchannel: 'v', types: 'TimeTick' })).details).toMatchObject({ field: 'types[0]' });
    expect(caught(() => decodeSubscribeParams({ pchannel: 'p', shard: 1 })).details).toMatchObject({ field: 'shard' });
    expect(caught(() => decodeSubscribeParams({ vchannel: 'v', policy: 'all', id: 'x' })).details).toMatchObject({ field: 'id' });
  });
});
