/**
 * The HTTP gateway over a hand-written fake WalstreamClient: what reaches the client (nothing
 * malformed does), how errors map to statuses, the transaction registry, and the NDJSON stream's
 * backpressure and disconnect handling. test/unit/http.test.ts runs the same edge against a real
 * standalone server.
 */
import * as http from 'node:http';
import { EventEmitter, once } from 'node:events';
import winston from 'winston';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import { systemClock } from '../../runtime/clock';
import type {
  AppendResult,
  ClientTxn,
  ClusterStatus,
  CollectionInfo,
  FlushResult,
  InsertRequest,
  SubscribeRequest,
  Subscription,
  WalstreamClient,
  WriteResult,
} from '../../runtime/client/api';
import type { Column, LogMessage } from '../../runtime/message/types';
import { startHttpServer, type HttpServer } from '../../runtime/server/http';

const COLLECTION: CollectionInfo = {
  id: 7,
  name: 'c1',
  schema: {
    fields: [
      { name: 'id', type: 'int64', primaryKey: true },
      { name: 'v', type: 'floatVector', dim: 2 },
      { name: 'f', type: 'float' },
    ],
  },
  vchannels: ['p_0_7v0'],
  partitions: [{ id: 1, name: '_default' }],
  state: 'normal',
};

const APPEND: AppendResult = { id: '0000000000000009', timetick: 470712618225238016n, lastConfirmedId: '0000000000000008' };

/** A subscription fed by the test: `push` messages, or `endless` makes one per pull. */
class FakeSubscription implements Subscription {
  lastTimetick = 0n;
  lastConfirmedId = '';
  closed = false;
  pulls = 0;
  private queue: LogMessage[] = [];
  private waiter: (() => void) | undefined;
  constructor(private readonly endless?: (i: number) => LogMessage) {}
  push(m: LogMessage): void {
    this.queue.push(m);
    this.waiter?.();
  }
  close(): void {
    this.closed = true;
    this.waiter?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<LogMessage> {
    for (;;) {
      if (this.closed) return;
      if (this.endless) {
        this.pulls++;
        yield this.endless(this.pulls);
        continue;
      }
      const m = this.queue.shift();
      if (m) {
        this.pulls++;
        this.lastTimetick = m.timetick;
        yield m;
        continue;
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}

class FakeClient implements WalstreamClient {
  calls: { method: string; args: unknown[] }[] = [];
  /** The next call of any method throws this. */
  failWith: StreamingError | undefined;
  subscriptions: FakeSubscription[] = [];
  makeSubscription: () => FakeSubscription = () => new FakeSubscription();
  private txnSeq = 100n;

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const e = this.failWith;
    if (e) throw e;
  }
  callsOf(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  async createCollection(...args: unknown[]): Promise<CollectionInfo> {
    this.record('createCollection', ...args);
    return COLLECTION;
  }
  async dropCollection(...args: unknown[]): Promise<void> {
    this.record('dropCollection', ...args);
  }
  async createPartition(...args: unknown[]): Promise<{ id: number; name: string }> {
    this.record('createPartition', ...args);
    return { id: 2, name: String(args[1]) };
  }
  async dropPartition(...args: unknown[]): Promise<void> {
    this.record('dropPartition', ...args);
  }
  async describeCollection(name: string): Promise<CollectionInfo> {
    this.calls.push({ method: 'describeCollection', args: [name] });
    if (name !== 'c1') throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `collection ${name} does not exist`, { details: { field: 'collection', reason: 'not found' } });
    return COLLECTION;
  }
  async flush(collection: string): Promise<FlushResult> {
    this.record('flush', collection);
    return { collection, segments: [{ vchannel: 'p_0_7v0', segmentIds: [3] }] };
  }
  async listCollections(): Promise<CollectionInfo[]> {
    this.record('listCollections');
    return [COLLECTION];
  }
  async insert(req: InsertRequest, o?: unknown): Promise<WriteResult> {
    this.record('insert', req, o);
    return { rows: 1, appends: [{ vchannel: 'p_0_7v0', rows: 1, result: APPEND }] };
  }
  async delete(...args: unknown[]): Promise<WriteResult> {
    this.record('delete', ...args);
    return { rows: 1, appends: [{ vchannel: 'p_0_7v0', rows: 1, result: APPEND }] };
  }
  async beginTxn(...args: unknown[]): Promise<ClientTxn> {
    this.record('beginTxn', ...args);
    const id = this.txnSeq++;
    const rec = (m: string) => async (...a: unknown[]): Promise<AppendResult> => {
      this.record(`txn.${m}`, id, ...a);
      return { ...APPEND, txn: { id, keepaliveMs: 1000 } };
    };
    return { id, vchannel: 'p_0_7v0', insert: rec('insert'), delete: rec('delete'), commit: rec('commit'), rollback: rec('rollback') };
  }
  subscribe(req: SubscribeRequest): Subscription {
    this.calls.push({ method: 'subscribe', args: [req] });
    const s = this.makeSubscription();
    this.subscriptions.push(s);
    return s;
  }
  async status(): Promise<ClusterStatus> {
    this.calls.push({ method: 'status', args: [] });
    return { assignmentVersion: 1, nodes: [{ id: 'n0', state: 'alive', pchannels: ['p_0'] }], pchannels: [{ name: 'p_0', node: 'n0', term: 1, state: 'ASSIGNED' }] };
  }
  async transfer(...args: unknown[]): Promise<{ pchannel: string; from: string; to: string; term: number; tookMs: number }> {
    this.record('transfer', ...args);
    return { pchannel: String(args[0]), from: 'n0', to: 'n1', term: 2, tookMs: 3 };
  }
  async close(): Promise<void> {}
}

function insertMessage(i: number, payloadFloats = 2): LogMessage {
  const v = new Float32Array(payloadFloats);
  v[0] = 0.5;
  const columns: Column[] = [
    { name: 'id', type: 'int64', data: [i] },
    { name: 'v', type: 'floatVector', dim: payloadFloats, data: v },
  ];
  return {
    type: 'Insert',
    vchannel: 'p_0_7v0',
    timetick: 470712618225238016n + BigInt(i),
    lastConfirmedId: '0000000000000001',
    term: 1,
    id: i.toString(16).padStart(16, '0'),
    size: 100,
    txn: { id: 470712618225238000n, keepaliveMs: 10 },
    header: { collectionId: 7, partitionId: 1, rows: 1, bytes: 8, segmentId: 3 },
    body: { columns },
  };
}

let client: FakeClient;
let server: HttpServer;
let events: EventEmitter;

async function call(method: string, path: string, body?: unknown, raw?: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const hasBody = body !== undefined || raw !== undefined;
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: hasBody ? { 'content-type': 'application/json', ...headers } : headers,
    ...(hasBody ? { body: raw ?? JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const goodColumns = [
  { name: 'id', type: 'int64', data: [1, '2'] },
  { name: 'v', type: 'floatVector', data: [[0.5, 1], [2, 3]] },
  { name: 'f', type: 'float', data: [1.5, -2] },
];

beforeEach(async () => {
  client = new FakeClient();
  events = new EventEmitter();
  server = await startHttpServer(client, {
    host: '127.0.0.1',
    port: 0,
    bodyLimitBytes: 64 * 1024,
    maxOpenTxns: 2,
    heartbeatMs: 60_000,
    events: { emit: (e, d) => events.emit(e, d) },
    logger: winston.createLogger({ silent: true }),
  });
});

afterEach(async () => {
  await server.close();
});

describe('request validation: nothing malformed reaches the client', () => {
  const writes = (): number => client.callsOf('insert').length + client.callsOf('delete').length;

  test.each([
    ['malformed JSON', '{"columns": [', '', 'malformed JSON'],
    ['a NaN literal', '{"columns":[{"name":"v","type":"floatVector","dim":2,"data":[NaN,1]}]}', '', 'malformed JSON'],
    ['a string in a vector row', JSON.stringify({ columns: [{ name: 'v', type: 'floatVector', data: [[1, 2], [3, 'x']] }] }), 'columns[0].data[1][1]', 'must be number'],
    ['Infinity (1e999)', '{"columns":[{"name":"f","type":"float","data":[1e999]}]}', 'columns[0].data[0]', 'must be number'],
    ['a float beyond float32', JSON.stringify({ columns: [{ name: 'f', type: 'float', data: [1, 3.5e38] }] }), 'columns[0].data[1]', 'must be <= 3.4028234663852886e+38'],
    ['an unsafe int64 number', '{"columns":[{"name":"id","type":"int64","data":[9007199254740993]}]}', 'columns[0].data[0]', 'must be <= 9007199254740991'],
    ['an int64 string that is not a number', JSON.stringify({ columns: [{ name: 'id', type: 'int64', data: ['12a'] }] }), 'columns[0].data[0]', 'must match pattern "^-?(0|[1-9][0-9]{0,18})$"'],
    ['an unknown column type', JSON.stringify({ columns: [{ name: 'id', type: 'int128', data: [1] }] }), 'columns[0].type', 'must be one of bool|int32|int64|float|double|varchar|json|floatVector'],
    ['a missing field', JSON.stringify({ partition: 'p' }), 'columns', 'missing field'],
    ['an unknown field', JSON.stringify({ columns: goodColumns, extra: 1 }), 'extra', 'unknown field'],
    ['columns not an array', JSON.stringify({ columns: { name: 'id' } }), 'columns', 'must be array'],
  ])('%s → 400 naming the field', async (_what, raw, field, reason) => {
    const r = await call('POST', '/collections/c1/insert', undefined, raw);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', retriable: false, details: { field, reason } });
    expect(typeof r.json['message']).toBe('string');
    expect(writes()).toBe(0);
  });

  test.each([
    ['a vector of the wrong dim', [{ name: 'id', type: 'int64', data: [1] }, { name: 'v', type: 'floatVector', data: [[1, 2, 3]] }, { name: 'f', type: 'float', data: [1] }], 'v', 'dim mismatch'],
    ['a flat vector that is not rows × dim', [{ name: 'id', type: 'int64', data: [1] }, { name: 'v', type: 'floatVector', dim: 2, data: [1, 2, 3] }, { name: 'f', type: 'float', data: [1] }], 'columns[1].data', 'length 3 is not a multiple of dim 2'],
    ['a missing schema field', [{ name: 'id', type: 'int64', data: [1] }, { name: 'v', type: 'floatVector', data: [[1, 2]] }], 'f', 'missing field'],
    ['columns of different lengths', [{ name: 'id', type: 'int64', data: [1, 2] }, { name: 'v', type: 'floatVector', data: [[1, 2]] }, { name: 'f', type: 'float', data: [1] }], 'v', 'row count mismatch'],
    ['a field of the wrong type', [{ name: 'id', type: 'varchar', data: ['1'] }, { name: 'v', type: 'floatVector', data: [[1, 2]] }, { name: 'f', type: 'float', data: [1] }], 'id', 'type mismatch'],
  ])('%s → 400 from the schema check', async (_what, columns, field, reason) => {
    const r = await call('POST', '/collections/c1/insert', { columns });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field, reason } });
    expect(writes()).toBe(0);
  });

  test('an oversized body → 413, and the server still serves', async () => {
    const big = { columns: [{ name: 'f', type: 'float', data: new Array(20_000).fill(1.25) }] };
    const r = await call('POST', '/collections/c1/insert', big);
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { reason: 'body too large', limitBytes: 64 * 1024 } });
    expect(writes()).toBe(0);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  test('a body that is not JSON → 415; an unknown route → 404', async () => {
    const res = await fetch(`${server.address}/collections/c1/insert`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ code: 'INVALID_ARGUMENT', details: { reason: 'unsupported media type' } });
    const r = await call('GET', '/nope');
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { reason: 'not found' } });
    expect(writes()).toBe(0);
  });

  test('a bad timeout header → 400 naming the header', async () => {
    const r = await call('POST', '/collections/c1/insert', { columns: goodColumns }, undefined, { 'x-timeout-ms': 'soon' });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ details: { field: 'headers.x-timeout-ms' } });
    expect(writes()).toBe(0);
  });

  test('a good insert reaches the client decoded: int64 strings as numbers, vectors as Float32Array, the deadline from the header', async () => {
    const r = await call('POST', '/collections/c1/insert', { columns: goodColumns, partition: '_default', idempotencyKey: 'k1' }, undefined, { 'x-timeout-ms': '1234' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ rows: 1, appends: [{ vchannel: 'p_0_7v0', rows: 1, result: { id: APPEND.id, timetick: '470712618225238016', lastConfirmedId: APPEND.lastConfirmedId } }] });
    const [[req, o]] = client.callsOf('insert') as [[InsertRequest, { timeoutMs: number }]];
    expect(o).toEqual({ timeoutMs: 1234 });
    expect(req.collection).toBe('c1');
    expect(req.partition).toBe('_default');
    expect(req.idempotencyKey).toBe('k1');
    expect(req.columns[0]).toEqual({ name: 'id', type: 'int64', data: [1, 2] });
    const v = req.columns[1] as Extract<Column, { type: 'floatVector' }>;
    expect(v.dim).toBe(2);
    expect(v.data).toBeInstanceOf(Float32Array);
    expect(Array.from(v.data)).toEqual([0.5, 1, 2, 3]);
  });

  test('a delete with the wrong primary key type → 400; a good one passes', async () => {
    const bad = await call('POST', '/collections/c1/delete', { primaryKeys: { type: 'varchar', data: ['a'] } });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ details: { field: 'primaryKeys.type', reason: 'type mismatch' } });
    expect(client.callsOf('delete')).toHaveLength(0);
    const good = await call('POST', '/collections/c1/delete', { primaryKeys: { type: 'int64', data: [1, '9007199254740991'] } });
    expect(good.status).toBe(200);
    expect(client.callsOf('delete')[0]?.[0]).toMatchObject({ collection: 'c1', primaryKeys: { type: 'int64', data: [1, 9007199254740991] } });
  });

  test('collections: create 201, list, describe, unknown 404', async () => {
    const created = await call('POST', '/collections', { name: 'c1', schema: COLLECTION.schema, shards: 1 });
    expect(created.status).toBe(201);
    expect(created.json).toEqual(JSON.parse(JSON.stringify(COLLECTION)));
    expect((await call('GET', '/collections')).json).toEqual({ collections: [JSON.parse(JSON.stringify(COLLECTION))] });
    expect((await call('GET', '/collections/c1')).status).toBe(200);
    const missing = await call('GET', '/collections/zz');
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'collection', reason: 'not found' } });
    const badSchema = await call('POST', '/collections', { name: 'c2', schema: { fields: [{ name: 'v', type: 'floatVector', dim: 0 }] } });
    expect(badSchema.status).toBe(400);
    expect(badSchema.json).toMatchObject({ details: { field: 'schema.fields[0].dim' } });
    expect(client.callsOf('createCollection')).toHaveLength(1);
    const flushed = await fetch(`${server.address}/collections/c1/flush`, { method: 'POST' });
    expect(flushed.status).toBe(200);
    expect(await flushed.json()).toEqual({ collection: 'c1', segments: [{ vchannel: 'p_0_7v0', segmentIds: [3] }] });
  });
});

describe('errors map to statuses, the body is StreamingError.toJSON()', () => {
  test.each([
    [new StreamingError(ErrorCode.INVALID_ARGUMENT, 'bad'), 400],
    [new StreamingError(ErrorCode.UNRECOVERABLE, 'dropped'), 422],
    [new StreamingError(ErrorCode.TRANSACTION_EXPIRED, 'expired'), 409],
    [new StreamingError(ErrorCode.INVALID_TRANSACTION_STATE, 'state'), 409],
    [new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, 'full'), 429],
    [new StreamingError(ErrorCode.ON_SHUTDOWN, 'closing'), 503],
    [new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, 'moving'), 503],
    [new StreamingError(ErrorCode.CHANNEL_FENCED, 'fenced'), 503],
    [new StreamingError(ErrorCode.UNMATCHED_CHANNEL_TERM, 'term'), 503],
    [new StreamingError(ErrorCode.UNKNOWN, 'no answer', { details: { deadlineExceeded: true }, retriable: true }), 504],
    [new StreamingError(ErrorCode.UNKNOWN, 'boom'), 500],
    [new StreamingError(ErrorCode.INNER, 'inner'), 500],
  ])('%s → %i', async (error, status) => {
    client.failWith = error;
    const r = await call('POST', '/transfer', { pchannel: 'p_0' });
    expect(r.status).toBe(status);
    expect(r.json).toEqual(JSON.parse(JSON.stringify(error.toJSON())));
  });

  test('a plain Error from the client → 500 UNKNOWN', async () => {
    client.failWith = new Error('kaboom') as StreamingError;
    const r = await call('POST', '/transfer', { pchannel: 'p_0' });
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ code: 'UNKNOWN', message: 'kaboom' });
  });
});

describe('transactions', () => {
  test('begin, insert, commit; a second commit and an unknown id are 404 TRANSACTION_EXPIRED', async () => {
    const begun = await call('POST', '/collections/c1/txns', { keepaliveMs: 5000 });
    expect(begun.status).toBe(201);
    const txnId = begun.json['txnId'] as string;
    expect(begun.json).toEqual({ txnId: '100', vchannel: 'p_0_7v0' });
    const ins = await call('POST', `/txns/${txnId}/insert`, { columns: goodColumns });
    expect(ins.status).toBe(200);
    expect(ins.json).toMatchObject({ timetick: '470712618225238016', txn: { id: '100' } });
    const badIns = await call('POST', `/txns/${txnId}/insert`, { columns: [{ name: 'v', type: 'floatVector', data: [[1]] }] });
    expect(badIns.status).toBe(400);
    expect((await fetch(`${server.address}/txns/${txnId}/commit`, { method: 'POST' })).status).toBe(200);
    const again = await fetch(`${server.address}/txns/${txnId}/commit`, { method: 'POST' });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ code: 'TRANSACTION_EXPIRED', details: { reason: 'not found' } });
    expect((await call('POST', '/txns/999/rollback', {})).status).toBe(404);
    expect((await call('POST', '/txns/abc/rollback', {})).status).toBe(400);
    expect(client.callsOf('txn.insert')).toHaveLength(1);
    expect(client.callsOf('txn.commit')).toHaveLength(1);
  });

  test('the registry is bounded: beyond maxOpenTxns a begin is 429; a finished one frees its place', async () => {
    const a = await call('POST', '/collections/c1/txns', {});
    await call('POST', '/collections/c1/txns', {});
    const third = await call('POST', '/collections/c1/txns', {});
    expect(third.status).toBe(429);
    expect(third.json).toMatchObject({ code: 'RESOURCE_EXHAUSTED', retriable: true });
    expect(client.callsOf('beginTxn')).toHaveLength(2);
    expect((await call('POST', `/txns/${a.json['txnId'] as string}/rollback`, {})).status).toBe(200);
    expect((await call('POST', '/collections/c1/txns', {})).status).toBe(201);
  });

  test('a transaction the WAL reports expired is forgotten (409, then 404)', async () => {
    const begun = await call('POST', '/collections/c1/txns', {});
    client.failWith = new StreamingError(ErrorCode.TRANSACTION_EXPIRED, 'expired in the WAL');
    expect((await call('POST', `/txns/${begun.json['txnId'] as string}/insert`, { columns: goodColumns })).status).toBe(409);
    client.failWith = undefined;
    expect((await call('POST', `/txns/${begun.json['txnId'] as string}/insert`, { columns: goodColumns })).status).toBe(404);
  });
});

describe('subscribe: NDJSON stream', () => {
  async function readLines(res: Response, n: number): Promise<Record<string, unknown>[]> {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const out: Record<string, unknown>[] = [];
    while (out.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0 && out.length < n) {
        out.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    }
    reader.releaseLock();
    return out;
  }

  test('messages as JSON lines: bigints as strings, vectors as arrays; the query decoded for the client', async () => {
    client.makeSubscription = () => {
      const s = new FakeSubscription();
      s.push(insertMessage(1));
      s.push(insertMessage(2));
      return s;
    };
    const res = await fetch(`${server.address}/subscribe?collection=c1&policy=startAfter&id=0000000000000001&timetickGt=5&types=Insert,Delete&credits=16`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = await readLines(res, 2);
    expect(lines[0]).toMatchObject({ type: 'Insert', timetick: '470712618225238017', txn: { id: '470712618225238000' }, body: { columns: [{ data: [1] }, { dim: 2, data: [0.5, 0] }] } });
    expect(lines[1]).toMatchObject({ timetick: '470712618225238018' });
    const [[req]] = client.callsOf('subscribe') as [[SubscribeRequest]];
    expect(req).toEqual({ vchannel: 'p_0_7v0', policy: { type: 'startAfter', id: '0000000000000001' }, filters: { timetickGt: 5n, types: ['Insert', 'Delete'] }, credits: 16 });
    await res.body?.cancel();
    await waitFor(() => client.subscriptions[0]?.closed === true);
  });

  test.each([
    ['', 'vchannel', 'exactly one of vchannel, pchannel, collection is required'],
    ['?vchannel=p_0_7v0&pchannel=p_0', 'pchannel', 'exactly one of vchannel, pchannel, collection is required'],
    ['?vchannel=p_0_7v0&policy=startFrom', 'id', 'a message id is required with policy startFrom'],
    ['?vchannel=p_0_7v0&policy=sometimes', 'policy', 'must be one of all|latest|startFrom|startAfter'],
    ['?vchannel=p_0_7v0&types=TimeTick', 'types', undefined],
    ['?vchannel=p_0_7v0&timetickGt=-1', 'timetickGt', undefined],
    ['?vchannel=p_0_7v0&bogus=1', 'bogus', 'unknown field'],
  ])('bad query %s → 400 naming %s', async (query, field, reason) => {
    const r = await call('GET', `/subscribe${query}`);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field, ...(reason ? { reason } : {}) } });
    expect(client.callsOf('subscribe')).toHaveLength(0);
  });

  test('unknown pchannel → 404 before any subscription or transfer', async () => {
    const r = await call('GET', '/subscribe?vchannel=nope_1v0');
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'vchannel', reason: 'not found' } });
    expect(client.callsOf('subscribe')).toHaveLength(0);
    const t = await call('POST', '/transfer', { pchannel: 'nope' });
    expect(t.status).toBe(404);
    expect(t.json).toMatchObject({ details: { field: 'pchannel', reason: 'not found' } });
    expect(client.callsOf('transfer')).toHaveLength(0);
  });

  test('an idle subscription opens after firstMessageWaitMs with a heartbeat line, then streams', async () => {
    const idle = await startHttpServer(client, { host: '127.0.0.1', port: 0, bodyLimitBytes: 1024, firstMessageWaitMs: 20, logger: winston.createLogger({ silent: true }) });
    try {
      const res = await fetch(`${idle.address}/subscribe?vchannel=p_0_7v0`);
      expect(res.status).toBe(200);
      client.subscriptions[0]!.push(insertMessage(1));
      const lines = await readLines(res, 2);
      expect(lines[0]).toEqual({ heartbeat: true, lastTimetick: '0' });
      expect(lines[1]).toMatchObject({ type: 'Insert', timetick: '470712618225238017' });
      await res.body?.cancel();
    } finally {
      await idle.close();
    }
  });

  test('POST /subscribe takes the same fields as JSON', async () => {
    client.makeSubscription = () => {
      const s = new FakeSubscription();
      s.push(insertMessage(1));
      return s;
    };
    const res = await fetch(`${server.address}/subscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pchannel: 'p_0', policy: 'all', types: ['Insert'] }) });
    expect(res.status).toBe(200);
    expect(await readLines(res, 1)).toHaveLength(1);
    expect(client.callsOf('subscribe')[0]?.[0]).toEqual({ pchannel: 'p_0', policy: { type: 'all' }, filters: { types: ['Insert'] } });
    await res.body?.cancel();
  });

  test('backpressure: the server stays a bounded number of messages ahead of a slow reader; a disconnect closes the subscription', async () => {
    // ~32 KiB lines, as many as the server pulls: without backpressure it would run away.
    const MESSAGE_FLOATS = 16 * 1024;
    client.makeSubscription = () => new FakeSubscription((i) => insertMessage(i, MESSAGE_FLOATS));
    const blocked = once(events, 'subscribe.blocked');
    const req = http.get(`${server.address}/subscribe?vchannel=p_0_7v0&policy=all`);
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    expect(res.statusCode).toBe(200);
    const ended = once(events, 'subscribe.end');
    res.pause(); // the reader stops reading
    await blocked;
    const sub = client.subscriptions[0]!;

    // Now read slowly (a macrotask per line) and watch how far ahead of the reader the server gets.
    let consumed = 0;
    let maxLead = 0;
    let lineBytes = 0;
    let buffered = '';
    res.setEncoding('utf8');
    for await (const chunk of res as AsyncIterable<string>) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        lineBytes = nl + 1;
        buffered = buffered.slice(nl + 1);
        consumed++;
        maxLead = Math.max(maxLead, sub.pulls - consumed);
        await new Promise((r) => setImmediate(r));
      }
      if (consumed >= 250) break;
    }
    expect(consumed).toBeGreaterThanOrEqual(250);
    expect(lineBytes).toBeGreaterThan(32 * 1024);
    // Bounded by the socket buffers (a few MiB on loopback), not by the log.
    expect(maxLead * lineBytes).toBeLessThan(32 * 1024 * 1024);

    req.destroy();
    const [end] = (await ended) as [{ how: string }];
    expect(end.how).toBe('disconnected');
    expect(sub.closed).toBe(true);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  test('close(): ends streams with an ON_SHUTDOWN line, healthz 503, new requests 503, idempotent', async () => {
    const pending = fetch(`${server.address}/subscribe?vchannel=p_0_7v0&policy=all`);
    // The 200 goes out once the subscription delivered its first message.
    await waitFor(() => client.subscriptions.length === 1);
    client.subscriptions[0]!.push(insertMessage(1));
    const res = await pending;
    expect(res.status).toBe(200);
    const closing = server.close();
    const lines = await readLines(res, 3);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ error: { code: 'ON_SHUTDOWN' } });
    await closing;
    await server.close();
    expect(client.subscriptions[0]?.closed).toBe(true);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = systemClock.monotonic() + timeoutMs;
  while (!cond()) {
    if (systemClock.monotonic() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}
