/**
 * End to end, as a user runs it: `walstream start` in a child process (temp data dir, port 0),
 * everything through HTTP. A steady write load with several writers, an NDJSON subscription per
 * shard, pchannels moved under the load; then: every acknowledged insert seen exactly once, in
 * strictly increasing timetick order, no insert failed. SIGTERM → exit 0; a restart on the same
 * data dir serves the same collection and the same rows.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HttpClient } from '../../runtime/cli/http-client';
import type { CollectionInfo, Subscription, TransferResult } from '../../runtime/client/api';
import { toStreamingError } from '../../runtime/errors';
import type { Timetick } from '../../runtime/message/timetick';
import { pchannelOf } from '../../runtime/message/types';
import { killAllServerProcesses, startServerProcess, type ServerProcess } from '../support/server-process';

jest.setTimeout(180_000);

const WRITERS = 4;
const BATCH = 20;
const DIM = 4;
const TRANSFERS = 3;
/** Inserts acknowledged between two transfers (and after the last), so each move happens under load. */
const INSERTS_BETWEEN_TRANSFERS = 30;
/** Deadline of one insert: well above the time a transfer takes. */
const INSERT_TIMEOUT_MS = 60_000;
const CATCH_UP_MS = 60_000;

/** Resolves waiters on every change (no sleeping: tests wait on events). */
class Changes {
  private waiters: (() => void)[] = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** What one NDJSON subscription saw. */
interface Seen {
  vchannel: string;
  lastTimetick: Timetick;
  outOfOrder: number;
  /** Insert messages of the collection by timetick → primary keys. */
  inserts: Map<Timetick, number[]>;
  error: string | undefined;
  done: Promise<void>;
  sub: Subscription;
}

function follow(client: HttpClient, vchannel: string, collectionId: number, changes: Changes): Seen {
  const seen: Seen = { vchannel, lastTimetick: -1n, outOfOrder: 0, inserts: new Map(), error: undefined, done: Promise.resolve(), sub: client.subscribe({ vchannel, policy: { type: 'all' } }) };
  seen.done = (async () => {
    try {
      for await (const m of seen.sub) {
        if (m.timetick <= seen.lastTimetick) seen.outOfOrder++;
        seen.lastTimetick = m.timetick;
        if (m.type === 'Insert' && m.vchannel === vchannel && m.header.collectionId === collectionId) {
          const ids = m.body.columns.find((c) => c.name === 'id');
          if (seen.inserts.has(m.timetick)) seen.inserts.set(m.timetick, [...(seen.inserts.get(m.timetick) ?? []), -1]);
          else seen.inserts.set(m.timetick, ids && ids.type === 'int64' ? [...ids.data] : []);
        }
        changes.notify();
      }
    } catch (e) {
      seen.error = toStreamingError(e).message;
      changes.notify();
    }
  })();
  return seen;
}

function allIds(seen: Seen[]): number[] {
  return seen.flatMap((s) => [...s.inserts.values()].flat()).sort((a, b) => a - b);
}

let dataDir: string;

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-e2e-'));
});

afterEach(async () => {
  await killAllServerProcesses();
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

test('writes under pchannel moves are seen exactly once and in order; SIGTERM exits 0; a restart serves the same data', async () => {
  // ------------------------------------------------------------------ first run
  let server: ServerProcess = await startServerProcess({ dataDir, args: ['--pchannels.count', '4', '--standalone.streamingNodes', '2'] });
  let client = new HttpClient(server.url);
  expect(await client.healthy()).toBe(true);

  const info: CollectionInfo = await client.createCollection({
    name: 'e2e',
    schema: { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'vector', type: 'floatVector', dim: DIM }] },
    shards: 2,
  });
  expect(info.vchannels).toHaveLength(2);

  const changes = new Changes();
  const seen = info.vchannels.map((v) => follow(client, v, info.id, changes));

  // The load: WRITERS concurrent writers, unique ids, until told to stop.
  const acks = new Map<string, Map<Timetick, number>>(info.vchannels.map((v) => [v, new Map()]));
  const ackedIds: number[] = [];
  const failures: string[] = [];
  let inserts = 0;
  let nextId = 1;
  let stop = false;
  const writer = async (): Promise<void> => {
    while (!stop) {
      const ids = Array.from({ length: BATCH }, () => nextId++);
      const vectors = new Float32Array(ids.length * DIM).map((_, i) => (ids[Math.floor(i / DIM)] as number) + (i % DIM) / 10);
      try {
        const r = await client.insert({ collection: 'e2e', columns: [{ name: 'id', type: 'int64', data: ids }, { name: 'vector', type: 'floatVector', dim: DIM, data: vectors }] }, { timeoutMs: INSERT_TIMEOUT_MS });
        expect(r.rows).toBe(ids.length);
        for (const a of r.appends) acks.get(a.vchannel)?.set(a.result.timetick, a.rows);
        ackedIds.push(...ids);
      } catch (e) {
        failures.push(toStreamingError(e).message);
      }
      inserts++;
      changes.notify();
    }
  };
  const load = Promise.all(Array.from({ length: WRITERS }, writer));

  // Several transfers of the collection's pchannels while the writers go on.
  const pchannels = [...new Set(info.vchannels.map(pchannelOf))];
  const transfers: TransferResult[] = [];
  const termsBefore = new Map((await client.status()).pchannels.map((p) => [p.name, p.term]));
  for (let i = 0; i < TRANSFERS; i++) {
    const target = inserts + INSERTS_BETWEEN_TRANSFERS;
    await changes.until(() => inserts >= target || failures.length > 0, INSERT_TIMEOUT_MS, `${target} inserts`);
    transfers.push(await client.transfer(pchannels[i % pchannels.length] as string));
  }
  const target = inserts + INSERTS_BETWEEN_TRANSFERS;
  await changes.until(() => inserts >= target || failures.length > 0, INSERT_TIMEOUT_MS, `${target} inserts`);
  stop = true;
  await load;

  expect(failures).toEqual([]);
  expect(transfers).toHaveLength(TRANSFERS);
  for (const t of transfers) {
    expect(t.to).not.toBe(t.from);
    expect(t.term).toBeGreaterThan(termsBefore.get(t.pchannel) ?? 0);
  }
  const status = await client.status();
  for (const t of transfers.slice(-pchannels.length)) expect(status.pchannels.find((p) => p.name === t.pchannel)).toMatchObject({ node: t.to, term: t.term, state: 'ASSIGNED' });

  // The subscribers catch up with the last acknowledged timetick of their vchannel.
  const lastAcked = (v: string): Timetick => [...(acks.get(v)?.keys() ?? [])].reduce((a, b) => (b > a ? b : a), -1n);
  await changes.until(() => seen.every((s) => s.error !== undefined || s.lastTimetick >= lastAcked(s.vchannel)), CATCH_UP_MS, 'subscribers to catch up');
  for (const s of seen) s.sub.close();
  await Promise.all(seen.map((s) => s.done));

  for (const s of seen) {
    expect(s.error).toBeUndefined();
    expect(s.outOfOrder).toBe(0);
    const acked = acks.get(s.vchannel) as Map<Timetick, number>;
    // Exactly the acknowledged inserts, each once, with its rows.
    expect([...s.inserts.keys()].sort()).toEqual([...acked.keys()].sort());
    for (const [tt, rows] of acked) expect(s.inserts.get(tt)?.length).toBe(rows);
  }
  const ids = allIds(seen);
  expect(ids.length).toBe(ackedIds.length);
  expect(ids).toEqual([...ackedIds].sort((a, b) => a - b));
  expect(new Set(ids).size).toBe(ids.length);
  expect(ackedIds.length).toBeGreaterThanOrEqual((TRANSFERS + 1) * INSERTS_BETWEEN_TRANSFERS * BATCH);

  // ------------------------------------------------------------------ SIGTERM
  await client.close();
  const exit = await server.stop('SIGTERM');
  expect(exit).toEqual({ code: 0, signal: null });
  expect(server.stdout()).toMatch(/walstream shutting down \(SIGTERM\)\nwalstream stopped\n$/);

  // ------------------------------------------------------------------ restart on the same data dir
  server = await startServerProcess({ dataDir, args: ['--pchannels.count', '4', '--standalone.streamingNodes', '2'] });
  client = new HttpClient(server.url);
  const again = await client.describeCollection('e2e');
  expect(again).toMatchObject({ id: info.id, name: 'e2e', vchannels: info.vchannels, state: 'normal' });
  const replay = info.vchannels.map((v) => follow(client, v, info.id, changes));
  await changes.until(() => replay.every((s) => s.error !== undefined || s.lastTimetick >= lastAcked(s.vchannel)), CATCH_UP_MS, 'replay to reach the last acknowledged timetick');
  for (const s of replay) s.sub.close();
  await Promise.all(replay.map((s) => s.done));
  for (const s of replay) {
    expect(s.error).toBeUndefined();
    expect(s.outOfOrder).toBe(0);
    expect([...s.inserts.keys()].sort()).toEqual([...(acks.get(s.vchannel) as Map<Timetick, number>).keys()].sort());
  }
  expect(allIds(replay)).toEqual(ids);

  // Still writable after the restart.
  const r = await client.insert({ collection: 'e2e', columns: [{ name: 'id', type: 'int64', data: [nextId] }, { name: 'vector', type: 'floatVector', dim: DIM, data: new Float32Array(DIM) }] });
  expect(r.rows).toBe(1);

  await client.close();
  expect(await server.stop('SIGTERM')).toEqual({ code: 0, signal: null });
});
