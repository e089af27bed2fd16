/**
 * Large messages end to end in standalone mode on the local WAL backend: inserts of ~3 MB each
 * (1000 rows × 768-dim float vectors + an int64 key; under the 4 MiB wal.maxMessageBytes, over the
 * local backend's 1 MiB read chunk) spread over several WAL segment files (small
 * wal.local.segmentBytes) and read from disk (tiny write-ahead buffer). Then: read back through a
 * subscription, restart on the same data directory and append, flush and read the Arrow files,
 * and an insert just over the limit is refused.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import { loadConfig } from '../../config/load';
import { StandaloneServer } from '../../runtime/server/standalone';
import { readSegment } from '../../storage/segments/segment-reader';
import { segmentFilePath } from '../../storage/segments/layout';
import { ErrorCode } from '../../runtime/errors';
import { pchannelOf, type CollectionSchema, type Column, type LogMessage } from '../../runtime/message/types';
import type { WalstreamClient } from '../../runtime/client/api';
import { eventually, flushedSegments } from '../support/wal-fixture';

const DIM = 768;
const ROWS_PER_INSERT = 1000; // 1000 × (768 × 4 + 8) ≈ 3.08 MB encoded
const INSERTS = 12;
const SEGMENT_BYTES = 8 * 1024 * 1024; // at most two large messages per WAL segment file
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024; // the default wal.maxMessageBytes

const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: DIM },
  ],
};

function config(dataDir: string) {
  return loadConfig({
    flags: {
      dataDir,
      'http.port': '0',
      'wal.local.fsync': 'interval',
      'wal.timetickIntervalMs': '50',
      'wal.local.segmentBytes': String(SEGMENT_BYTES),
      // Only the last entry stays in memory: subscribers catch up from the segment files.
      'wal.writeAheadBuffer.capacityBytes': String(64 * 1024),
      'recovery.persistIntervalMs': '100',
    },
  });
}

/** Deterministic vector component j of row `id` (exactly representable as float32). */
function component(id: number, j: number): number {
  return Math.fround(id * 0.5 + j / 1024 - 3);
}

function vectorsOf(from: number, n: number): Float32Array {
  const v = new Float32Array(n * DIM);
  for (let i = 0; i < n; i++) for (let j = 0; j < DIM; j++) v[i * DIM + j] = component(from + i, j);
  return v;
}

function bigRows(from: number, n: number): Column[] {
  return [
    { name: 'id', type: 'int64', data: Array.from({ length: n }, (_, i) => from + i) },
    { name: 'vec', type: 'floatVector', dim: DIM, data: vectorsOf(from, n) },
  ];
}

/** First key of insert k (0-based). */
const firstId = (k: number): number => 1 + k * ROWS_PER_INSERT;

/**
 * Checks rows (ids + flat vectors) against the generator; returns a description of the first
 * mismatch (jest's toEqual on millions of floats is far too slow), or undefined.
 */
function mismatch(ids: ArrayLike<number>, vec: ArrayLike<number>): string | undefined {
  if (vec.length !== ids.length * DIM) return `vector length ${vec.length}, want ${ids.length * DIM}`;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    for (let j = 0; j < DIM; j++) {
      const got = vec[i * DIM + j]!;
      const want = component(id, j);
      if (got !== want) return `row ${i} (id ${id}) component ${j}: got ${got}, want ${want}`;
    }
  }
  return undefined;
}

/** Reads Insert messages of `vchannel` from the start until `rows` rows arrived; checks every row. */
async function readBack(c: WalstreamClient, vchannel: string, rows: number, timeoutMs: number): Promise<{ ids: number[]; messages: number }> {
  const sub = c.subscribe({ vchannel, policy: { type: 'all' }, filters: { types: ['Insert'] } });
  const ids: number[] = [];
  let messages = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    sub.close();
  }, timeoutMs);
  try {
    for await (const m of sub as AsyncIterable<LogMessage>) {
      if (m.type !== 'Insert') continue;
      messages++;
      const idCol = m.body.columns.find((x) => x.name === 'id')!;
      const vecCol = m.body.columns.find((x) => x.name === 'vec')!;
      const pks = idCol.data as number[];
      expect(m.header.rows).toBe(pks.length);
      const bad = mismatch(pks, vecCol.data as Float32Array);
      if (bad !== undefined) throw new Error(`insert message ${messages} (first id ${pks[0]}): ${bad}`);
      ids.push(...pks);
      if (ids.length >= rows) break;
    }
  } finally {
    clearTimeout(timer);
    sub.close();
  }
  if (timedOut) throw new Error(`subscription: ${ids.length} of ${rows} rows within ${timeoutMs} ms`);
  return { ids, messages };
}

async function walSegmentFiles(dataDir: string, pchannel: string): Promise<string[]> {
  const entries = await fs.readdir(path.join(dataDir, 'wal'), { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.seg') && (e.parentPath ?? e.path).includes(pchannel)).map((e) => e.name);
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('large messages (standalone, local WAL)', () => {
  let dir: string;
  let server: StandaloneServer | undefined;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-large-'));
  });
  afterAll(async () => {
    await server?.close();
    server = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  // One scenario in steps that build on each other (same data directory).
  let vchannel: string;
  let pchannel: string;

  test('~3 MB inserts span several WAL segment files and come back row for row through a subscription', async () => {
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const info = await c.createCollection({ name: 'big', schema: SCHEMA, shards: 1 });
    vchannel = info.vchannels[0]!;
    pchannel = pchannelOf(vchannel);
    const filesBefore = (await walSegmentFiles(dir, pchannel)).length;
    for (let k = 0; k < INSERTS; k++) {
      const w = await c.insert({ collection: 'big', columns: bigRows(firstId(k), ROWS_PER_INSERT) });
      expect(w.rows).toBe(ROWS_PER_INSERT);
    }
    const files = await walSegmentFiles(dir, pchannel);
    expect(files.length).toBeGreaterThan(filesBefore);
    expect(files.length).toBeGreaterThanOrEqual(Math.floor((INSERTS * 3_000_000) / SEGMENT_BYTES));
    const { ids, messages } = await readBack(c, vchannel, INSERTS * ROWS_PER_INSERT, 20_000);
    expect(messages).toBe(INSERTS);
    expect(ids).toEqual(range(1, INSERTS * ROWS_PER_INSERT));
  });

  test('a restart on the same data directory replays the large messages; one more insert lands after them', async () => {
    expect(server).toBeDefined();
    await server!.close();
    server = undefined;
    server = await StandaloneServer.start(config(dir));
    const c = server.client;
    const w = await c.insert({ collection: 'big', columns: bigRows(firstId(INSERTS), ROWS_PER_INSERT) });
    expect(w.rows).toBe(ROWS_PER_INSERT);
    const total = (INSERTS + 1) * ROWS_PER_INSERT;
    const { ids, messages } = await readBack(c, vchannel, total, 20_000);
    expect(messages).toBe(INSERTS + 1);
    expect(ids).toEqual(range(1, total));
  });

  test('a manual flush writes every row to Arrow segment files that read back exactly', async () => {
    expect(server).toBeDefined();
    const s = server!;
    const total = (INSERTS + 1) * ROWS_PER_INSERT;
    const flush = await s.client.flush('big');
    expect(flush.segments).toHaveLength(1);
    // ~3 s alone; a fresh checkout's first flush thread compiles its sources, and beside other suites on two cores that can take many times longer.
    await eventually(async () => (await flushedSegments(s, pchannel)).reduce((n, x) => n + x.rows, 0) >= total, 100_000, 'all rows flushed');
    const segs = await flushedSegments(s, pchannel);
    expect(segs.reduce((n, x) => n + x.rows, 0)).toBe(total);
    const seen: number[] = [];
    for (const seg of segs) {
      const ref = { collectionId: seg.collectionId, partitionId: seg.partitionId, segmentId: seg.segmentId };
      const decoded = await readSegment(s.objects, ref, { root: s.config.objectStore.rootPath });
      expect(decoded.inserts.rows).toBe(seg.rows);
      const pks = decoded.inserts.primaryKeys.data as number[];
      const vec = decoded.inserts.columns.find((x) => x.name === 'vec')!.data as Float32Array;
      const bad = mismatch(pks, vec);
      if (bad !== undefined) throw new Error(`segment ${seg.segmentId}: ${bad}`);
      seen.push(...pks);
      // Any Arrow reader reads the inserts file: row count, keys and a few vector values.
      const bytes = await s.objects.get(segmentFilePath(s.config.objectStore.rootPath, ref, 'inserts'));
      const table = tableFromIPC(bytes);
      expect(table.numRows).toBe(seg.rows);
      const idCol = table.getChild('id')!;
      for (const i of [0, Math.floor(seg.rows / 2), seg.rows - 1]) {
        const id = Number(idCol.get(i));
        expect(id).toBe(pks[i]);
        const v = table.getChild('vec')!.get(i) as { toArray(): Float32Array } | null;
        expect(v).not.toBeNull();
        const arr = Array.from(v!.toArray());
        expect(arr).toHaveLength(DIM);
        expect(arr[0]).toBe(component(id, 0));
        expect(arr[DIM - 1]).toBe(component(id, DIM - 1));
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual(range(1, total));
  }, 150_000);

  test('an insert just over wal.maxMessageBytes is refused with INVALID_ARGUMENT and the WAL keeps working', async () => {
    expect(server).toBeDefined();
    const c = server!.client;
    // Each row is 8 + 768 × 4 = 3080 bytes of body: 1362 rows are over 4 MiB by the rows alone.
    const rows = Math.floor(MAX_MESSAGE_BYTES / (8 + DIM * 4)) + 1;
    expect(rows * (8 + DIM * 4)).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(rows * (8 + DIM * 4) - MAX_MESSAGE_BYTES).toBeLessThan(8 + DIM * 4);
    const from = 1_000_000;
    await expect(c.insert({ collection: 'big', columns: bigRows(from, rows) }, { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      details: expect.objectContaining({ limit: MAX_MESSAGE_BYTES }),
    });
    // Still accepting writes, and the refused rows were never written.
    const next = (INSERTS + 1) * ROWS_PER_INSERT + 1;
    await c.insert({ collection: 'big', columns: bigRows(next, 10) });
    const { ids } = await readBack(c, vchannel, next + 9, 20_000);
    expect(ids).toEqual(range(1, next + 9));
  });
});
