/**
 * Crash matrix of a standalone walstream: a child process inserts (with idempotency keys) and
 * flushes; it is killed with SIGKILL at random moments, right after recovery metadata was written
 * but before the checkpoint, and in the middle of a flush; each time it restarts on the same data
 * directory and continues from its last unacknowledged insert. At the end every row is flushed and
 * read back from the segment files: every acknowledged row is there exactly once, nothing that was
 * never attempted is, and the result equals what a run without crashes gives.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { spawn } from 'node:child_process';
import { seededRandom } from '../../runtime/clock';
import { loadConfig } from '../../config/load';
import { StandaloneServer } from '../../runtime/server/standalone';
import { pchannelPrefix } from '../../storage/meta/meta-store';
import { readSegment } from '../../storage/segments/segment-reader';
import type { FlushedSegment } from '../../storage/flush/flush-worker';
import { eventually } from '../support/wal-fixture';
import { pchannelOf } from '../../runtime/message/types';

const WRITER = path.join(__dirname, 'fixtures', 'standalone-writer.js');

interface RunResult {
  tried: number[];
  acked: number[];
  done: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function runWriter(dataDir: string, from: number, to: number, fault: string, killAfterAcks?: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dataDir, String(from), String(to), fault], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WALSTREAM_LOG_LEVEL: 'error' } });
    const r: RunResult = { tried: [], acked: [], done: false, code: null, signal: null };
    let buf = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer timed out (from ${from}, fault ${fault}); stderr: ${stderr}`));
    }, 90_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const [word, arg] = line.split(' ');
        if (word === 'try') r.tried.push(Number(arg));
        if (word === 'ack') {
          r.acked.push(Number(arg));
          if (killAfterAcks !== undefined && r.acked.length === killAfterAcks) child.kill('SIGKILL');
        }
        if (word === 'done') r.done = true;
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      r.code = code;
      r.signal = signal;
      if (code !== 0 && signal !== 'SIGKILL') reject(new Error(`writer exited ${code}: ${stderr}`));
      else resolve(r);
    });
  });
}

/** Flushes everything and returns every row key in the flushed segments (with repeats, if any). */
async function flushedKeys(dataDir: string): Promise<number[]> {
  const server = await StandaloneServer.start(
    loadConfig({ flags: { dataDir, 'segment.maxRows': '20', 'recovery.persistIntervalMs': '30', 'recovery.maxDirtyMessages': '5', 'recovery.minPersistGapMs': '0', logLevel: 'error' } }),
  );
  try {
    const info = await server.client.describeCollection('c');
    const sealedNow = (await server.client.flush('c')).segments.flatMap((s) => s.segmentIds);
    const pchannels = [...new Set(info.vchannels.map((v) => pchannelOf(v)))];
    const list = async (): Promise<FlushedSegment[]> =>
      (await Promise.all(pchannels.map(async (p) => [...(await server.meta.list(pchannelPrefix(p) + 'flushed/')).values()].map((v) => JSON.parse(v.value) as FlushedSegment)))).flat();
    // Every segment the recovery state knows for the collection must end up flushed.
    await eventually(
      async () => {
        const segs = await Promise.all(pchannels.map(async (p) => [...(await server.meta.list(pchannelPrefix(p) + 'segment/')).values()].map((v) => JSON.parse(v.value) as { segmentId: number; state: string })));
        const open = segs.flat().filter((s) => s.state === 'growing' || s.state === 'sealed');
        const flushed = new Set((await list()).map((s) => s.segmentId));
        return open.every((s) => flushed.has(s.segmentId)) && sealedNow.every((id) => flushed.has(id));
      },
      30_000,
      'every segment flushed',
    );
    const keys: number[] = [];
    for (const s of await list()) {
      const seg = await readSegment(server.objects, { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId }, { root: server.config.objectStore.rootPath });
      keys.push(...(seg.inserts.primaryKeys.data as number[]));
    }
    return keys.sort((a, b) => a - b);
  } finally {
    await server.close();
  }
}

describe('standalone crash matrix', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  test('kill -9 at random points, after metadata before checkpoint, and mid-flush: no acknowledged row lost, none duplicated', async () => {
    const rnd = seededRandom(Number(process.env.WALSTREAM_CRASH_SEED ?? 7));
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-crash-'));
    dirs.push(dir);
    const END = 600;
    const faults = ['none', 'after-meta:4', 'none', 'mid-flush:2', 'none', 'after-meta:9', 'none'];
    let from = 1;
    const acked = new Set<number>();
    const tried = new Set<number>();
    let crashes = 0;
    for (const fault of faults) {
      if (from >= END) break;
      const kill = fault === 'none' ? 3 + rnd.int(15) : undefined;
      const r = await runWriter(dir, from, END, fault, kill);
      r.tried.forEach((pk) => tried.add(pk));
      r.acked.forEach((pk) => acked.add(pk));
      if (r.signal === 'SIGKILL') crashes++;
      // Continue from the first insert of this run that was not acknowledged (retried with its key).
      const unacked = r.tried.filter((pk) => !r.acked.includes(pk));
      from = unacked.length > 0 ? Math.min(...unacked) : r.acked.length > 0 ? Math.max(...r.acked) + 5 : from;
      if (r.done) break;
    }
    if (from < END) {
      const r = await runWriter(dir, from, END, 'none');
      r.tried.forEach((pk) => tried.add(pk));
      r.acked.forEach((pk) => acked.add(pk));
      expect(r.done).toBe(true);
    }
    expect(crashes).toBeGreaterThanOrEqual(4);
    const keys = await flushedKeys(dir);
    // exactly once
    expect(keys.length).toBe(new Set(keys).size);
    // every acknowledged insert's 5 rows are there
    const expected: number[] = [];
    for (let pk = 1; pk < END; pk += 5) for (let i = 0; i < 5; i++) expected.push(pk + i);
    for (const pk of acked) for (let i = 0; i < 5; i++) expect(keys).toContain(pk + i);
    // and, since every insert was eventually acknowledged, the result equals a run without crashes
    expect(keys).toEqual(expected);

    // The same workload without any crash gives the same rows.
    const clean = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-clean-'));
    dirs.push(clean);
    const r = await runWriter(clean, 1, END, 'none');
    expect(r.done).toBe(true);
    expect(await flushedKeys(clean)).toEqual(expected);
  }, 300_000);
});
