/**
 * Large messages in cluster mode: a coordinator and two node processes on a Redis of the test's
 * own (Redis Streams WAL, Redis mailbox between client and nodes). Inserts of ~3 MB (1000 rows ×
 * 768-dim vectors, one shard so that each is one message) are appended and read back row for row;
 * one just under wal.maxMessageBytes (4 MiB) too; one just over it is refused with
 * INVALID_ARGUMENT (not a timeout), and the cluster keeps taking inserts.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { loadConfig } from '../../config/load';
import { connectClusterClient } from '../../runtime/server/cluster/cluster-coordinator';
import type { Client } from '../../runtime/client/client';
import { StreamingError } from '../../runtime/errors';
import type { CollectionSchema, Column } from '../../runtime/message/types';
import { eventually } from '../support/wal-fixture';
import { startRedis, startWalstream, testClusterFlags, type RedisProcess, type WalstreamProcess } from '../support/cluster-harness';

jest.setTimeout(240_000);

const DIM = 768;
const ROWS = 1000;
const INSERTS = 6;
const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: DIM },
  ],
};

/** Vector value j of row `id`: recomputed on read, so nothing is kept to compare with. */
const valueOf = (id: number, j: number): number => Math.fround(id * 0.5 + j / 1024);

function rows(from: number, n: number): Column[] {
  const ids = Array.from({ length: n }, (_, i) => from + i);
  const vec = new Float32Array(n * DIM);
  ids.forEach((id, i) => {
    for (let j = 0; j < DIM; j++) vec[i * DIM + j] = valueOf(id, j);
  });
  return [
    { name: 'id', type: 'int64', data: ids },
    { name: 'vec', type: 'floatVector', dim: DIM, data: vec },
  ];
}

/**
 * Reads the vchannel's inserts from the start until `done` says so (or the deadline closes the
 * subscription); counts each id and checks four vector values of every row.
 */
async function readInserts(client: Client, vchannel: string, done: (seen: Map<number, number>) => boolean): Promise<{ seen: Map<number, number>; wrongValues: number }> {
  const seen = new Map<number, number>();
  let wrongValues = 0;
  const sub = client.subscribe({ vchannel, policy: { type: 'all' }, filters: { types: ['Insert'] } });
  const deadline = setTimeout(() => sub.close(), 90_000);
  try {
    for await (const m of sub) {
      if (m.type !== 'Insert') continue;
      const ids = m.body.columns.find((c) => c.name === 'id')!.data as number[];
      const vec = m.body.columns.find((c) => c.name === 'vec')!.data as Float32Array;
      ids.forEach((id, i) => {
        seen.set(id, (seen.get(id) ?? 0) + 1);
        for (const j of [0, 1, 383, 767]) if (vec[i * DIM + j] !== valueOf(id, j)) wrongValues++;
      });
      if (done(seen)) break;
    }
  } finally {
    clearTimeout(deadline);
    sub.close();
  }
  return { seen, wrongValues };
}

describe('large messages (cluster, Redis Streams WAL, Redis mailbox)', () => {
  let dir: string | undefined;
  let redis: RedisProcess | undefined;
  const procs: WalstreamProcess[] = [];
  let client: Client;
  let close: (() => Promise<void>) | undefined;

  afterAll(async () => {
    await close?.().catch(() => undefined);
    await Promise.all(procs.map((p) => p.kill9()));
    await redis?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('~3 MB inserts come back row for row; one over 4 MiB is INVALID_ARGUMENT and the cluster goes on', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-large-cluster-'));
    redis = await startRedis(dir);
    const flags = { ...testClusterFlags(redis.url, 'ws'), 'objectStore.local.dir': path.join(dir, 'objects'), dataDir: path.join(dir, 'data') };
    procs.push(await startWalstream('coordinator', 'coord-0', flags));
    procs.push(...(await Promise.all([0, 1].map((i) => startWalstream('node', `n${i}`, flags)))));
    ({ client, close } = await connectClusterClient(loadConfig({ flags: { 'redis.url': redis.url, 'redis.keyPrefix': 'ws' } })));
    await eventually(async () => (await client.status({ timeoutMs: 5000 }).catch(() => undefined))?.pchannels.every((p) => p.state === 'ASSIGNED') ?? false, 60_000, 'pchannels assigned');
    const info = await client.createCollection({ name: 'big', schema: SCHEMA, shards: 1 });
    const vchannel = info.vchannels[0]!;

    for (let b = 0; b < INSERTS; b++) await client.insert({ collection: 'big', columns: rows(b * ROWS + 1, ROWS) }, { timeoutMs: 60_000 });
    const all = await readInserts(client, vchannel, (seen) => seen.size >= INSERTS * ROWS);
    expect(all.wrongValues).toBe(0);
    expect([...all.seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: INSERTS * ROWS }, (_, i) => i + 1));
    expect([...all.seen.values()].every((n) => n === 1)).toBe(true);

    // 1370 rows × (768 × 4 + 8) bytes ≈ 4.22 MB encoded: over the 4 MiB limit.
    const refused = await client.insert({ collection: 'big', columns: rows(100_000, 1370) }, { timeoutMs: 30_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(StreamingError);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', details: { limit: 4 * 1024 * 1024 } });

    // The cluster goes on: a small insert, and one just under the limit (1361 rows ≈ 4.19 MB).
    await client.insert({ collection: 'big', columns: rows(200_000, 10) }, { timeoutMs: 30_000 });
    await client.insert({ collection: 'big', columns: rows(300_000, 1361) }, { timeoutMs: 30_000 });
    const after = await readInserts(client, vchannel, (seen) => seen.has(300_000 + 1360));
    expect(after.wrongValues).toBe(0);
    expect(after.seen.size).toBe(INSERTS * ROWS + 10 + 1361); // nothing of the refused insert
    expect(after.seen.has(100_000)).toBe(false);
  });
});
