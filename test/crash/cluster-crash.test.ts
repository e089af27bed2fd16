/**
 * Crash matrix of a walstream cluster: real processes (a `walstream coordinator` and three streaming
 * nodes, test/crash/fixtures/cluster-crash-node.js), a Redis of the test's own holding the Redis
 * Streams WAL, the MetaStore and the BullMQ flush jobs, and S3 (s3rver) for the segment files, as
 * cluster users run it. Under an insert load with idempotency keys, a streaming node is killed with
 * SIGKILL at seeded random points: at a random moment (mid-append, from outside), right after a WAL
 * append is durable but before it is acknowledged, right after recovery metadata was written but
 * before the checkpoint, during a flush before all files are written (at a segment file's PUT, seen
 * by a proxy between the node and S3), and after the files but before the flush commit (the killed
 * node being the process whose BullMQ worker runs the flush). After each kill either the node
 * restarts at once under the same id, or a new node replaces it and its pchannels move when its
 * lease expires; the clients' inserts wait and retry with their keys. At the end every segment is
 * flushed and read back from S3 (readSegment): every acknowledged row is there exactly once with its
 * values, no row that was never attempted is, the recovery metadata agrees with the files (row
 * counts, every segment flushed), and the rows equal those of the same inserts on a cluster that
 * never crashed (same Redis and S3, other key prefix and bucket). A flush job that a killed node was
 * running is not waited for (BullMQ finds it stalled only after ~90 s with its default lock and
 * stall intervals): the test moves its pchannel and the new owner resubmits it.
 *
 * WALSTREAM_CRASH_SEED picks the seed (default 11): the order of the faults, the victims, the kill
 * moments and the restart modes. WALSTREAM_CRASH_VERBOSE=1 prints what happened.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { Queue } from 'bullmq';
import { seededRandom, systemClock, type Random } from '../../runtime/clock';
import { loadConfig } from '../../config/load';
import type { WalstreamConfig } from '../../config/schema';
import { connectClusterClient } from '../../runtime/server/cluster/cluster-coordinator';
import { bullConnection, redisOptionsFromUrl } from '../../runtime/server/cluster/redis-connection';
import type { Client } from '../../runtime/client/client';
import type { ClusterStatus } from '../../runtime/client/api';
import { RedisMetaStore } from '../../storage/meta/redis/redis-meta-store';
import { pchannelPrefix } from '../../storage/meta/meta-store';
import { openObjectStore } from '../../storage/objects/open';
import type { ObjectStore } from '../../storage/objects/object-store';
import { readSegment } from '../../storage/segments/segment-reader';
import { FLUSH_QUEUE_NAME } from '../../storage/flush/bullmq-flush-queue';
import type { FlushJob } from '../../storage/flush/flush-queue';
import type { FlushedSegment } from '../../storage/flush/flush-worker';
import type { SegmentRecord } from '../../actors/recovery-storage/state';
import { SCHEMA, eventually, schemaRows } from '../support/wal-fixture';
import { startRedis, startWalstream, testClusterFlags, type RedisProcess, type WalstreamProcess } from '../support/cluster-harness';
import { startS3rver, type S3rverFixture } from '../support/s3rver';
import { pchannelOf } from '../../runtime/message/types';

const NODE = path.join(__dirname, 'fixtures', 'cluster-crash-node.js');
const SEED = Number(process.env.WALSTREAM_CRASH_SEED ?? 11);
const VERBOSE = process.env.WALSTREAM_CRASH_VERBOSE === '1';
const ROWS_PER_INSERT = 4;
const WRITERS = 4;
/** Pace of the insert load of the run with crashes. */
const INSERTS_PER_SECOND = 40;
/** How long a process may take to start (ts-node compiles the sources in each; slow on a busy 2-core machine). */
const READY_MS = 60_000;

type Fault = 'kill' | 'after-append' | 'after-meta' | 'flush-put' | 'before-flush-commit';
/** After a kill: the node restarts at once under its id, or a new node replaces it while its pchannels move. */
type Restart = 'restart-at-once' | 'replace';

function log(line: string): void {
  if (VERBOSE) process.stdout.write(`[cluster-crash] ${line}\n`);
}

/** Keys of insert `i`: 4i+1 … 4i+4. */
function firstKey(i: number): number {
  return i * ROWS_PER_INSERT + 1;
}

function shuffle<T>(items: T[], rnd: Random): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rnd.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * Inserts 0, 1, 2 … (each ROWS_PER_INSERT rows, idempotency key `ins-<i>`) from `writers` concurrent
 * writers, paced at `perSecond` until stopped, or `count` of them as fast as they go. An insert that
 * fails is retried with the same key until it is acknowledged: every attempted insert ends up
 * acknowledged.
 */
class InsertLoad {
  readonly attempted = new Set<number>();
  readonly acked = new Set<number>();
  /** Failed attempts (each retried with its key): a 30 s deadline covers a failover, so none is expected. */
  readonly errors: string[] = [];
  private next = 0;
  private stopping = false;
  private readonly done: Promise<void>;
  private readonly startedAt = Date.now();

  constructor(
    private readonly client: Client,
    writers: number,
    private readonly opts: { perSecond?: number; count?: number } = {},
  ) {
    this.done = Promise.all(Array.from({ length: writers }, () => this.writer())).then(() => undefined);
    this.done.catch(() => undefined); // reported by stop() / finished(), not as an unhandled rejection
  }

  private async writer(): Promise<void> {
    while (!this.stopping && this.next < (this.opts.count ?? Infinity)) {
      const i = this.next++;
      if (this.opts.perSecond !== undefined) {
        // Paced (load shaping, so that the run stays short): insert i starts at i / perSecond seconds.
        const at = this.startedAt + (i * 1000) / this.opts.perSecond;
        if (at > Date.now()) await new Promise((r) => setTimeout(r, at - Date.now()));
        if (this.stopping) return; // not attempted
      }
      this.attempted.add(i);
      for (let attempt = 1; ; attempt++) {
        try {
          await this.client.insert({ collection: 'c', idempotencyKey: `ins-${i}`, columns: schemaRows(firstKey(i), ROWS_PER_INSERT) }, { timeoutMs: 30_000 });
          this.acked.add(i);
          break;
        } catch (e) {
          this.errors.push(`insert ${i} attempt ${attempt}: ${e instanceof Error ? e.message : String(e)}`);
          if (attempt >= 5) throw new Error(`insert ${i} failed ${attempt} times: ${this.errors.slice(-3).join(' | ')}`);
        }
      }
    }
  }

  /** Stops starting inserts; resolves once every started one is acknowledged. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
  }

  /** Resolves when all `count` inserts are acknowledged. */
  finished(): Promise<void> {
    return this.done;
  }
}

/**
 * One node's way to S3: a pass-through HTTP proxy in front of the S3 server. Armed, it kills its
 * node (SIGKILL from here) when the node sends its n-th PUT of a segment file, and drops that PUT:
 * the node dies in the middle of a flush, with some of the segment's files written. It works
 * wherever in the node the put runs (the main thread or a flush thread).
 */
interface S3Gate {
  port: number;
  /** Kills the node at its n-th segment-file PUT from now (`kill` is called instead of forwarding it). */
  arm(n: number, kill: () => void): void;
  close(): Promise<void>;
}

async function startS3Gate(target: URL, bucket: string, root: string): Promise<S3Gate> {
  let armed: { left: number; kill: () => void } | undefined;
  const server = http.createServer((req, res) => {
    if (armed && req.method === 'PUT' && (req.url ?? '').startsWith(`/${bucket}/${root}/`) && --armed.left === 0) {
      const { kill } = armed;
      armed = undefined;
      kill();
      req.socket.destroy();
      return;
    }
    // Forwarded as is (the Host header too: the request's signature covers it).
    const upstream = http.request({ host: target.hostname, port: Number(target.port), method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    arm(n, kill) {
      armed = { left: n, kill };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Cluster {
  prefix: string;
  config: WalstreamConfig;
  flags: Record<string, string>;
  s3: S3rverFixture;
  /** Each node id's way to S3 (kept across restarts under the same id). */
  gates: Map<string, S3Gate>;
  coordinator: WalstreamProcess;
  nodes: WalstreamProcess[];
  client: Client;
  closeClient(): Promise<void>;
  meta: RedisMetaStore;
  objects: ObjectStore;
  queue: Queue<FlushJob>;
}

function clusterFlags(dir: string, redis: RedisProcess, s3: S3rverFixture, prefix: string): Record<string, string> {
  const endpoint = new URL(s3.endpoint);
  return {
    ...testClusterFlags(redis.url, prefix),
    'objectStore.kind': 's3',
    'objectStore.s3.endPoint': endpoint.hostname,
    'objectStore.s3.port': endpoint.port,
    'objectStore.s3.accessKey': s3.accessKey,
    'objectStore.s3.secretKey': s3.secretKey,
    'objectStore.s3.region': s3.region,
    'objectStore.s3.bucket': `${prefix}-segments`,
    'segment.maxRows': '60',
    'recovery.persistIntervalMs': '100',
    'recovery.maxDirtyMessages': '10',
    'recovery.minPersistGapMs': '0',
    dataDir: path.join(dir, prefix),
  };
}

async function startCluster(dir: string, redis: RedisProcess, s3: S3rverFixture, prefix: string, nodes: number): Promise<Cluster> {
  const flags = clusterFlags(dir, redis, s3, prefix);
  const config = loadConfig({ flags: { ...flags, mode: 'node' } });
  const partial = { prefix, config, flags, s3, gates: new Map<string, S3Gate>() };
  const [coordinator, ...procs] = await Promise.all([
    startWalstream('coordinator', `${prefix}-coord`, flags, READY_MS),
    ...Array.from({ length: nodes }, (_, i) => startNode(partial, `${prefix}-n${i}`)),
  ]);
  const { client, close } = await connectClusterClient(config);
  const meta = await RedisMetaStore.connect({ redis: redisOptionsFromUrl(redis.url), prefix: `${prefix}:meta:`, reapIntervalMs: 0 });
  const objects = await openObjectStore(config.objectStore, systemClock);
  const queue = new Queue<FlushJob>(FLUSH_QUEUE_NAME, { connection: bullConnection(redisOptionsFromUrl(redis.url)), prefix });
  await eventually(async () => (await status(client))?.pchannels.every((p) => p.state === 'ASSIGNED') ?? false, 60_000, `${prefix}: every pchannel assigned`);
  return { ...partial, coordinator: coordinator!, nodes: procs, client, closeClient: close, meta, objects, queue };
}

/** Starts node `id` (again), reaching S3 through its gate. */
async function startNode(c: Pick<Cluster, 'config' | 'flags' | 's3' | 'gates'>, id: string): Promise<WalstreamProcess> {
  let gate = c.gates.get(id);
  if (!gate) {
    gate = await startS3Gate(new URL(c.s3.endpoint), c.config.objectStore.s3.bucket, c.config.objectStore.rootPath);
    c.gates.set(id, gate);
  }
  return startWalstream('node', id, { ...c.flags, 'objectStore.s3.port': String(gate.port) }, READY_MS, { script: NODE });
}

async function stopCluster(c: Cluster): Promise<void> {
  await c.closeClient().catch(() => undefined);
  await c.queue.close().catch(() => undefined);
  await c.objects.close().catch(() => undefined);
  await c.meta.close().catch(() => undefined);
  await Promise.all([...c.nodes, c.coordinator].map((p) => p.kill9()));
  await Promise.all([...c.gates.values()].map((g) => g.close()));
}

function status(client: Client): Promise<ClusterStatus | undefined> {
  return client.status({ timeoutMs: 5_000 }).catch(() => undefined);
}

function dead(p: WalstreamProcess): boolean {
  return p.child.exitCode !== null || p.child.signalCode !== null;
}

/** Every segment record and every flushed record of the collection's pchannels. */
async function segmentState(c: Cluster, pchannels: string[]): Promise<{ segments: Map<number, SegmentRecord & { pchannel: string }>; flushed: Map<number, FlushedSegment & { pchannel: string }> }> {
  const segments = new Map<number, SegmentRecord & { pchannel: string }>();
  const flushed = new Map<number, FlushedSegment & { pchannel: string }>();
  for (const p of pchannels) {
    for (const [key, v] of await c.meta.list(pchannelPrefix(p))) {
      const rel = key.slice(pchannelPrefix(p).length);
      if (rel.startsWith('segment/')) segments.set(Number(rel.slice('segment/'.length)), { ...(JSON.parse(v.value) as SegmentRecord), pchannel: p });
      else if (rel.startsWith('flushed/')) {
        const f = JSON.parse(v.value) as FlushedSegment;
        expect(flushed.has(f.segmentId)).toBe(false);
        flushed.set(f.segmentId, { ...f, pchannel: p });
      }
    }
  }
  return { segments, flushed };
}

/**
 * Seals everything and waits until every segment of the collection is flushed. A flush job that a
 * killed process was running stays "active" in BullMQ until its lock expires and a stall check
 * runs (BullMQ's defaults: up to a minute or more); the test does not wait for that: it moves the
 * pchannel of such a job (active for over 5 s, or failed, at the owner's current term), and the new
 * owner resubmits the segment at its term. Returns how many pchannels were moved so.
 */
async function flushAll(c: Cluster, pchannels: string[]): Promise<number> {
  const sealed = (await c.client.flush('c', { timeoutMs: 30_000 })).segments.flatMap((s) => s.segmentIds);
  const rescued = new Set<string>();
  let pending: number[] = [];
  await eventually(
    async () => {
      const { segments, flushed } = await segmentState(c, pchannels);
      // Flushed, and the owners' recovery state knows it (so the segment meta is final).
      pending = [...new Set([...segments.keys(), ...sealed])].filter((id) => segments.get(id)?.state !== 'dropped' && (!flushed.has(id) || segments.get(id)?.state !== 'flushed'));
      if (pending.length === 0) return true;
      const st = await status(c.client);
      if (!st) return false;
      const stuck = [...(await c.queue.getActive()).filter((j) => j.processedOn !== undefined && Date.now() - j.processedOn > 5_000), ...(await c.queue.getFailed())];
      for (const j of stuck) {
        const p = st.pchannels.find((x) => x.name === j.data.pchannel);
        const key = `${j.data.pchannel}@${j.data.term}`;
        if (!p || p.state !== 'ASSIGNED' || p.term !== j.data.term || !pending.includes(j.data.segmentId) || rescued.has(key)) continue;
        rescued.add(key);
        log(`flush job ${String(j.id)} stuck (${j.failedReason ?? 'active'}): moving ${j.data.pchannel}`);
        await c.client.transfer(j.data.pchannel, undefined, { timeoutMs: 30_000 });
      }
      return false;
    },
    60_000,
    `${c.prefix}: every segment flushed`,
  ).catch(async (e: unknown) => {
    const { segments, flushed } = await segmentState(c, pchannels);
    const jobs = await Promise.all(
      pending.map(async (id) => {
        const s = segments.get(id);
        const found = (await c.queue.getJobs(['active', 'waiting', 'delayed', 'failed', 'completed'])).filter((j) => j.data.segmentId === id);
        const states = await Promise.all(found.map(async (j) => `${String(j.id)}:${await j.getState()}${j.failedReason ? `(${j.failedReason})` : ''}`));
        return `segment ${id} ${s?.pchannel ?? '?'} ${s?.state ?? 'no meta'} rows ${s?.rows ?? '?'} flushed ${flushed.has(id)} jobs [${states.join(' ')}]`;
      }),
    );
    throw new Error(`${e instanceof Error ? e.message : String(e)}; status ${JSON.stringify((await status(c.client))?.pchannels)}\n${jobs.join('\n')}`);
  });
  return rescued.size;
}

interface FlushedRows {
  /** Every row read back, in key order (keys repeat if a row was flushed twice). */
  rows: { pk: number; vec: number[]; tag: string }[];
  segments: number;
}

/** Reads every flushed segment back from the object store and checks it against its records. */
async function readFlushedRows(c: Cluster, pchannels: string[]): Promise<FlushedRows> {
  const { segments, flushed } = await segmentState(c, pchannels);
  const rows: FlushedRows['rows'] = [];
  for (const f of flushed.values()) {
    const seg = await readSegment(c.objects, { collectionId: f.collectionId, partitionId: f.partitionId, segmentId: f.segmentId }, { root: c.config.objectStore.rootPath });
    const pks = seg.inserts.primaryKeys.data as number[];
    // The recovery metadata agrees with the files: the commit's row count, and the segment meta's.
    expect({ segment: f.segmentId, rows: seg.inserts.rows }).toEqual({ segment: f.segmentId, rows: f.rows });
    expect({ segment: f.segmentId, pchannel: segments.get(f.segmentId)?.pchannel, rows: segments.get(f.segmentId)?.rows }).toEqual({ segment: f.segmentId, pchannel: f.pchannel, rows: f.rows });
    const vec = seg.inserts.columns.find((col) => col.name === 'vec');
    const tag = seg.inserts.columns.find((col) => col.name === 'tag');
    if (vec?.type !== 'floatVector' || tag?.type !== 'varchar') throw new Error(`segment ${f.segmentId} lacks its vec/tag columns`);
    pks.forEach((pk, r) => rows.push({ pk, vec: [...vec.data.subarray(r * 4, r * 4 + 4)], tag: tag.data[r] as string }));
  }
  rows.sort((a, b) => a.pk - b.pk);
  return { rows, segments: flushed.size };
}

/** The rows inserts 0 … count-1 write, as schemaRows builds them. */
function expectedRows(count: number): FlushedRows['rows'] {
  const out: FlushedRows['rows'] = [];
  for (let i = 0; i < count; i++) {
    const cols = schemaRows(firstKey(i), ROWS_PER_INSERT);
    const vec = cols[1]!.data as Float32Array;
    const tag = cols[2]!.data as string[];
    for (let r = 0; r < ROWS_PER_INSERT; r++) out.push({ pk: firstKey(i) + r, vec: [...vec.subarray(r * 4, r * 4 + 4)], tag: tag[r]! });
  }
  return out;
}

describe('cluster crash matrix', () => {
  let dir: string | undefined;
  let redis: RedisProcess | undefined;
  let s3: S3rverFixture | undefined;
  const clusters: Cluster[] = [];
  let starting: Promise<Cluster> | undefined;

  afterAll(async () => {
    const late = await starting?.catch(() => undefined);
    if (late && !clusters.includes(late)) clusters.push(late);
    await Promise.all(clusters.map((c) => stopCluster(c)));
    await redis?.stop();
    await s3?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('kill -9 of nodes mid-append, after metadata before checkpoint and mid-flush, then restart or move: every acknowledged row exactly once, as without crashes', async () => {
    const t0 = Date.now();
    const rnd = seededRandom(SEED);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-cluster-crash-'));
    [redis, s3] = await Promise.all([startRedis(dir), startS3rver({ conditionalWrites: true })]);

    // ---------------------------------------------------------------- the run with crashes
    const c = await startCluster(dir, redis, s3, 'crash', 3);
    clusters.push(c);
    // The cluster that never crashes (a coordinator and one node) starts meanwhile, before the
    // crashes (not to slow the first ones down), and stays idle until the end.
    starting = startCluster(dir, redis, s3, 'clean', 1);
    starting.catch(() => undefined); // awaited below
    const info = await c.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const pchannels = [...new Set(info.vchannels.map(pchannelOf))];
    const load = new InsertLoad(c.client, WRITERS, { perSecond: INSERTS_PER_SECOND });
    await eventually(() => load.acked.size >= 20, 30_000, 'load running');
    await starting;
    log(`clusters up, load running: ${Date.now() - t0} ms`);

    const faults = shuffle<Fault>(['kill', 'after-append', 'after-meta', 'after-meta', 'flush-put', 'before-flush-commit'], rnd);
    const restarts = shuffle<Restart>(['restart-at-once', 'restart-at-once', 'restart-at-once', 'replace', 'replace', 'replace'], rnd);
    const happened: string[] = [];
    let replaced = 0;
    for (const [step, fault] of faults.entries()) {
      const restart = restarts[step]!;
      const st = await c.client.status({ timeoutMs: 10_000 });
      const owners = c.nodes.filter((n) => (st.nodes.find((x) => x.id === n.id)?.pchannels.length ?? 0) > 0);
      expect(owners.length).toBeGreaterThan(0);
      const victim = owners[rnd.int(owners.length)]!;
      const held = st.pchannels.filter((p) => p.node === victim.id).map((p) => ({ name: p.name, term: p.term }));
      const stepStart = Date.now();
      const ackedBefore = load.acked.size;
      if (fault === 'kill') {
        // A random moment of the insert load (appends in flight, from outside the process).
        const target = ackedBefore + 5 + rnd.int(40);
        await eventually(() => load.acked.size >= target, 30_000, 'inserts before the kill');
        await victim.kill9();
      } else {
        const n = 1 + rnd.int(fault === 'after-append' || fault === 'after-meta' ? 4 : 3);
        let killedAtPut = false;
        if (fault === 'flush-put') {
          // Outside the process: its n-th segment-file PUT to S3 (from whichever thread) kills it.
          c.gates.get(victim.id)!.arm(n, () => {
            killedAtPut = true;
            victim.child.kill('SIGKILL');
          });
        } else {
          victim.send(`arm ${fault}:${n}`);
          await eventually(() => victim.output().includes(`armed ${fault}:${n}\n`) || dead(victim), 10_000, `${victim.id} armed`);
        }
        if (fault === 'flush-put' || fault === 'before-flush-commit') {
          // Seal the growing segments, wait for their flush, again, until the victim's flush worker takes a job and dies in it.
          const deadline = Date.now() + 30_000;
          while (!dead(victim)) {
            if (Date.now() > deadline) {
              const active = (await c.queue.getActive()).map((j) => `${String(j.id)} since ${Date.now() - (j.processedOn ?? 0)} ms`);
              const workers = (await c.queue.getWorkers()).map((w) => w['name'] ?? '?');
              throw new Error(`${victim.id} not killed by ${fault}:${n} within 30000 ms; active jobs [${active.join(', ')}]; workers [${workers.join(', ')}]; ${victim.id} said:\n${victim.output().slice(-3000)}`);
            }
            const sealed = (await c.client.flush('c', { timeoutMs: 30_000 })).segments.flatMap((s) => s.segmentIds);
            await eventually(
              async () => {
                if (dead(victim)) return true;
                const { flushed } = await segmentState(c, pchannels);
                return sealed.every((id) => flushed.has(id));
              },
              30_000,
              `flush of segments ${sealed.join(',')}`,
            );
          }
        } else {
          await eventually(() => dead(victim), 30_000, `${victim.id} killed by ${fault}:${n}`);
        }
        // It died of the armed fault (its last line may come after the exit event).
        if (fault === 'flush-put') expect(killedAtPut).toBe(true);
        else await eventually(() => victim.output().includes(`dying ${fault} `), 5_000, `${victim.id} says it dies of ${fault}`);
      }
      const diedAt = Date.now();
      const i = c.nodes.indexOf(victim);
      c.nodes[i] = await startNode(c, restart === 'restart-at-once' ? victim.id : `${c.prefix}-n${c.nodes.length + replaced++}`);
      // The victim's pchannels are open again at a newer term (on another node or on the restarted one).
      await eventually(
        async () => {
          const now = await status(c.client);
          return (
            now !== undefined &&
            now.pchannels.every((p) => p.state === 'ASSIGNED' && (restart === 'restart-at-once' || p.node !== victim.id)) &&
            held.every((h) => now.pchannels.find((p) => p.name === h.name)!.term > h.term)
          );
        },
        45_000,
        `pchannels of ${victim.id} (${fault}, ${restart}) open again`,
      );
      const openAt = Date.now();
      const line =
        `${fault} of ${victim.id} (held ${held.map((h) => `${h.name}@${h.term}`).join(',')}; ${restart}): died after ${diedAt - stepStart} ms, ` +
        `open again after ${openAt - diedAt} ms, step ${Date.now() - stepStart} ms, ${load.acked.size - ackedBefore} inserts acked meanwhile`;
      happened.push(line);
      log(line);
      expect(load.errors).toEqual([]);
    }
    // The load goes on after the last recovery, then stops with every attempted insert acknowledged.
    const ackedNow = load.acked.size;
    await eventually(() => load.acked.size >= ackedNow + 20, 30_000, 'load continues after the last crash');
    await load.stop();
    expect(load.errors).toEqual([]);
    const inserts = load.attempted.size;
    expect([...load.attempted].sort((a, b) => a - b)).toEqual(Array.from({ length: inserts }, (_, i) => i));
    expect(load.acked.size).toBe(inserts);
    expect(happened).toHaveLength(faults.length);

    log(`crashes done, load stopped: ${Date.now() - t0} ms`);
    const rescued = await flushAll(c, pchannels);
    log(`flushed: ${Date.now() - t0} ms`);
    const crashed = await readFlushedRows(c, pchannels);
    log(`read back: ${Date.now() - t0} ms`);
    const keys = crashed.rows.map((r) => r.pk);
    // Exactly once: no key twice …
    const dup = keys.filter((k, j) => j > 0 && keys[j - 1] === k);
    expect(dup).toEqual([]);
    // … nothing that was never attempted …
    expect(keys.filter((k) => !load.attempted.has(Math.floor((k - 1) / ROWS_PER_INSERT)))).toEqual([]);
    // … every acknowledged row, with its values.
    const want = expectedRows(inserts);
    const have = new Set(keys);
    expect(want.filter((r) => !have.has(r.pk)).map((r) => r.pk)).toEqual([]);
    expect(crashed.rows).toEqual(want);
    const crashMs = Date.now() - t0;
    await stopCluster(clusters.pop()!);

    // ---------------------------------------------------------------- the same inserts, no crash
    const clean = await starting;
    clusters.push(clean);
    const cleanInfo = await clean.client.createCollection({ name: 'c', schema: SCHEMA, shards: 4 });
    const cleanPchannels = [...new Set(cleanInfo.vchannels.map(pchannelOf))];
    const cleanLoad = new InsertLoad(clean.client, WRITERS, { count: inserts });
    await cleanLoad.finished();
    log(`clean load done: ${Date.now() - t0} ms`);
    expect(cleanLoad.errors).toEqual([]);
    expect(cleanLoad.acked.size).toBe(inserts);
    await flushAll(clean, cleanPchannels);
    const reference = await readFlushedRows(clean, cleanPchannels);
    expect(reference.rows).toEqual(want);
    expect(crashed.rows).toEqual(reference.rows);
    log(
      `${inserts} inserts: ${crashed.rows.length} rows in ${crashed.segments} segments (${rescued} stuck flush jobs moved), ${crashMs} ms; ` +
        `without crashes in ${reference.segments} segments, ${Date.now() - t0 - crashMs} ms (seed ${SEED})`,
    );
    // Two clusters of processes, each compiling the sources under ts-node: ~100 s alone, up to ~3 min
    // beside other suites on a 2-core machine.
  }, 300_000);
});
