/**
 * The HTTP gateway over an in-process standalone server (temp data dir, port 0): bad input of
 * every kind is answered with the documented status and error body, the server keeps serving,
 * and nothing bad is written: in the end the log holds exactly the good inserts.
 *
 * Statuses (runtime/server/http-errors.ts): unknown collection or partition → 404 (INVALID_ARGUMENT,
 * reason "not found"), whatever the route; a bad body → 400 naming the field; a body over the
 * limit → 413; an insert the log refuses because its collection was dropped → 422 UNRECOVERABLE.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import winston from 'winston';
import type { Ref } from 'nact';
import { loadConfig } from '../../config';
import { systemClock } from '../../runtime/clock';
import { Client } from '../../runtime/client/client';
import { InProcessCoordinatorTransport } from '../../runtime/client/in-process';
import type { InsertRequest, WalstreamClient } from '../../runtime/client/api';
import type { Timetick } from '../../runtime/message/timetick';
import type { CoordinatorMsg } from '../../actors/coordinator/messages';
import { StandaloneServer } from '../../runtime/server/standalone';
import { startHttpServer, type HttpServer } from '../../runtime/server/http';
import { HttpClient } from '../../runtime/cli/http-client';

jest.setTimeout(60_000);

const BODY_LIMIT = 64 * 1024;
let dir: string;
let server: StandaloneServer;
let gateway: HttpServer;
/** Inserts that reached the client object (the edge lets only well-formed ones through). */
let clientInserts: InsertRequest[];
/** Acknowledged inserts of `docs`: vchannel → timetick → rows. */
const good = new Map<string, Map<Timetick, number>>();
let docsVchannels: string[] = [];

type Answer = { status: number; json: Record<string, unknown> };

async function call(method: string, urlPath: string, body?: unknown, raw?: string): Promise<Answer> {
  const hasBody = body !== undefined || raw !== undefined;
  const res = await fetch(`${gateway.address}${urlPath}`, {
    method,
    ...(hasBody ? { headers: { 'content-type': 'application/json' }, body: raw ?? JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
}

function docsRows(ids: number[]): unknown {
  return {
    columns: [
      { name: 'id', type: 'int64', data: ids },
      { name: 'v', type: 'floatVector', data: ids.map((i) => [i, 0.5, -1]) },
      { name: 'title', type: 'varchar', data: ids.map((i) => `t${i}`) },
    ],
  };
}

async function insertGood(ids: number[]): Promise<void> {
  const r = await call('POST', '/collections/docs/insert', docsRows(ids));
  expect(r.status).toBe(200);
  for (const a of r.json['appends'] as { vchannel: string; rows: number; result: { timetick: string } }[]) {
    good.get(a.vchannel)?.set(BigInt(a.result.timetick), a.rows);
  }
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-http-'));
  server = await StandaloneServer.start(loadConfig({ flags: { dataDir: dir, 'pchannels.count': '2', 'wal.local.fsync': 'interval', 'wal.timetickIntervalMs': '50' } }));
  clientInserts = [];
  // The real client, with its inserts recorded.
  const spy: WalstreamClient = Object.create(server.client) as WalstreamClient;
  spy.insert = (req, o) => {
    clientInserts.push(req);
    return server.client.insert(req, o);
  };
  gateway = await startHttpServer(spy, { host: '127.0.0.1', port: 0, bodyLimitBytes: BODY_LIMIT, logger: winston.createLogger({ silent: true }) });

  const created = await call('POST', '/collections', {
    name: 'docs',
    schema: {
      fields: [
        { name: 'id', type: 'int64', primaryKey: true },
        { name: 'v', type: 'floatVector', dim: 3 },
        { name: 'title', type: 'varchar', maxLength: 8 },
      ],
    },
    shards: 2,
  });
  expect(created.status).toBe(201);
  docsVchannels = created.json['vchannels'] as string[];
  for (const v of docsVchannels) good.set(v, new Map());
  await insertGood([1, 2, 3, 4, 5, 6]);
});

afterAll(async () => {
  await gateway?.close();
  await server?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

let testsRun = 0;
afterEach(async () => {
  // Whatever a test sent, the server still serves.
  expect((await call('GET', '/healthz')).status).toBe(200);
  testsRun++;
});

describe('bad input never reaches the client and is answered clearly', () => {
  test.each([
    ['malformed JSON', undefined, '{"columns": [{"name": "id",', 400, { code: 'INVALID_ARGUMENT', details: { field: '', reason: 'malformed JSON' } }],
    ['a NaN literal', undefined, '{"columns":[{"name":"v","type":"floatVector","dim":3,"data":[NaN,1,2]}]}', 400, { code: 'INVALID_ARGUMENT', details: { reason: 'malformed JSON' } }],
    ['a number where a string belongs', { columns: [{ name: 'title', type: 'varchar', data: ['a', 7] }] }, undefined, 400, { details: { field: 'columns[0].data[1]', reason: 'must be string' } }],
    ['a string in a vector', { columns: [{ name: 'v', type: 'floatVector', data: [[1, 2, 'x']] }] }, undefined, 400, { details: { field: 'columns[0].data[0][2]', reason: 'must be number' } }],
    ['Infinity (1e999) in a vector', undefined, '{"columns":[{"name":"v","type":"floatVector","dim":3,"data":[1e999,1,2]}]}', 400, { details: { field: 'columns[0].data[0]' } }],
    ['a value beyond float32 in a vector', { columns: [{ name: 'v', type: 'floatVector', data: [[1, 2, 1e39]] }] }, undefined, 400, { details: { field: 'columns[0].data[0][2]' } }],
    ['columns given as an object', { columns: { id: [1] } }, undefined, 400, { details: { field: 'columns', reason: 'must be array' } }],
    ['an unknown body field', { ...(docsRows([7]) as object), ttl: 5 }, undefined, 400, { details: { field: 'ttl', reason: 'unknown field' } }],
    ['a vector with the wrong dim', { columns: [{ name: 'id', type: 'int64', data: [7] }, { name: 'v', type: 'floatVector', data: [[1, 2]] }, { name: 'title', type: 'varchar', data: ['a'] }] }, undefined, 400, { details: { field: 'v', reason: 'dim mismatch', dim: 2, expected: 3 } }],
    ['a missing column', { columns: [{ name: 'id', type: 'int64', data: [7] }, { name: 'v', type: 'floatVector', data: [[1, 2, 3]] }] }, undefined, 400, { details: { field: 'title', reason: 'missing field' } }],
    ['a varchar beyond maxLength', { columns: [{ name: 'id', type: 'int64', data: [7] }, { name: 'v', type: 'floatVector', data: [[1, 2, 3]] }, { name: 'title', type: 'varchar', data: ['much too long'] }] }, undefined, 400, { details: { field: 'title', reason: 'exceeds maxLength' } }],
    // One bad row in a two-shard batch: rejected whole, no shard written.
    ['one bad row among good ones', { columns: [{ name: 'id', type: 'int64', data: [7, 8, 9, 10] }, { name: 'v', type: 'floatVector', data: [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]] }, { name: 'title', type: 'varchar', data: ['a', 'b', 'c', 'much too long'] }] }, undefined, 400, { details: { field: 'title', reason: 'exceeds maxLength', index: 3 } }],
  ])('%s → 400 naming the field and the reason', async (_what, body, raw, status, expected) => {
    const before = clientInserts.length;
    const r = await call('POST', '/collections/docs/insert', body, raw);
    expect(r.status).toBe(status);
    expect(r.json).toMatchObject({ retriable: false, ...expected });
    expect(typeof r.json['message']).toBe('string');
    expect(clientInserts.length).toBe(before);
  });

  test('an oversized body → 413', async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => 1000 + i);
    const raw = JSON.stringify(docsRows(ids));
    expect(raw.length).toBeGreaterThan(BODY_LIMIT);
    const r = await call('POST', '/collections/docs/insert', undefined, raw);
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { reason: 'body too large', limitBytes: BODY_LIMIT } });
  });

  test('an unknown collection → 404 on every route', async () => {
    const before = clientInserts.length;
    for (const [method, p, body] of [
      ['POST', '/collections/nope/insert', docsRows([1])],
      ['POST', '/collections/nope/delete', { primaryKeys: { type: 'int64', data: [1] } }],
      ['GET', '/collections/nope', undefined],
      ['DELETE', '/collections/nope', undefined],
      ['POST', '/collections/nope/txns', {}],
      ['GET', '/subscribe?collection=nope', undefined],
    ] as const) {
      const r = await call(method, p, body);
      expect([p, r.status]).toEqual([p, 404]);
      expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'collection', reason: 'not found' } });
    }
    expect(clientInserts.length).toBe(before);
  });

  test('an unknown partition → 404 (the client resolves partitions)', async () => {
    const r = await call('POST', '/collections/docs/insert', { ...(docsRows([7]) as object), partition: 'nope' });
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'partition', reason: 'not found' } });
  });

  test('insert after drop: 404 once the gateway knows of the drop; 422 UNRECOVERABLE when the log refuses it', async () => {
    const schema = { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'v', type: 'floatVector', dim: 3 }] };
    const rows = { columns: [{ name: 'id', type: 'int64', data: [1, 2, 3] }, { name: 'v', type: 'floatVector', dim: 3, data: [1, 2, 3, 4, 5, 6, 7, 8, 9] }] };

    // Dropped through this gateway: the name no longer resolves.
    expect((await call('POST', '/collections', { name: 'gone1', schema })).status).toBe(201);
    expect((await call('POST', '/collections/gone1/insert', rows)).status).toBe(200);
    expect((await call('DELETE', '/collections/gone1')).status).toBe(200);
    const afterOwnDrop = await call('POST', '/collections/gone1/insert', rows);
    expect(afterOwnDrop.status).toBe(404);

    // Dropped by another client (another gateway): this gateway's client still routes the insert,
    // and the log refuses it (no Insert after DropCollection).
    expect((await call('POST', '/collections', { name: 'gone2', schema })).status).toBe(201);
    expect((await call('POST', '/collections/gone2/insert', rows)).status).toBe(200);
    const coordinator = (server as unknown as { coordinator: Ref<CoordinatorMsg> }).coordinator;
    const other = new Client(new InProcessCoordinatorTransport(coordinator), server.client.router.nodes, { clock: systemClock });
    await other.dropCollection('gone2');
    await other.close();
    const refused = await call('POST', '/collections/gone2/insert', rows);
    expect(refused.status).toBe(422);
    expect(refused.json).toMatchObject({ code: 'UNRECOVERABLE', retriable: false });
  });

  test('transactions: an unknown id → 404 TRANSACTION_EXPIRED; a good one commits as one Txn', async () => {
    expect((await call('POST', '/txns/12345/commit')).status).toBe(404);
    const begun = await call('POST', '/collections/docs/txns', { shard: 0 });
    expect(begun.status).toBe(201);
    const id = begun.json['txnId'] as string;
    const bad = await call('POST', `/txns/${id}/insert`, { columns: [{ name: 'v', type: 'floatVector', data: [[1]] }] });
    expect(bad.status).toBe(400);
    const rolledBack = await call('POST', `/txns/${id}/rollback`);
    expect(rolledBack.status).toBe(200);
    expect(await call('POST', `/txns/${id}/commit`)).toMatchObject({ status: 404, json: { code: 'TRANSACTION_EXPIRED' } });
  });
});

describe('afterwards', () => {
  test('the log holds exactly the good inserts', async () => {
    expect(testsRun).toBe(17); // every test above ran first
    await insertGood(Array.from({ length: 20 }, (_, i) => 100 + i)); // a last good batch on both shards
    const client = new HttpClient(gateway.address);
    try {
      for (const vchannel of docsVchannels) {
        const acked = good.get(vchannel) as Map<Timetick, number>;
        const last = [...acked.keys()].reduce((a, b) => (b > a ? b : a), 0n);
        const seen = new Map<Timetick, number>();
        let previous = -1n;
        const sub = client.subscribe({ vchannel, policy: { type: 'all' } });
        for await (const m of sub) {
          expect(m.timetick).toBeGreaterThan(previous);
          previous = m.timetick;
          if (m.type === 'Insert') seen.set(m.timetick, m.header.rows);
          if (m.type === 'Txn') throw new Error('the rolled-back transaction must not be delivered');
          if (m.timetick >= last) break;
        }
        sub.close();
        expect(seen).toEqual(acked);
      }
    } finally {
      await client.close();
    }
  });
});
