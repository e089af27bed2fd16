/**
 * `walstream demo`: a scripted workload that checks the service end to end through any
 * WalstreamClient (the CLI passes its HTTP client). It creates a collection, subscribes to every
 * shard from the start of the log, writes N rows in batches with several concurrent writers,
 * moves pchannels of the collection to other nodes while the writes go on, waits until the
 * subscribers have caught up with every acknowledged write, and checks that:
 *
 * - every acknowledged insert (vchannel, timetick) was seen exactly once, with its row count;
 * - every acknowledged row (primary key) was seen exactly once, and no unacknowledged one;
 * - timeticks strictly increase on each subscription;
 * - no insert and no transfer failed.
 */
import type { Clock } from '../clock';
import { toStreamingError } from '../errors';
import { pchannelOf, type CollectionSchema } from '../message/types';
import type { Timetick } from '../message/timetick';
import type { Subscription, TransferResult, WalstreamClient } from '../client/api';

export interface DemoOptions {
  /** Default `demo_<base36 time>`. */
  collection?: string;
  rows: number;
  batch: number;
  shards: number;
  dim: number;
  writers: number;
  transfers: number;
  /** Deadline of one insert (ms): longer than a transfer, so writes ride through moves. */
  insertTimeoutMs: number;
  /** How long the subscribers may take to catch up once the writes are done (ms). */
  catchUpTimeoutMs: number;
  /** Keep the collection afterwards (default: dropped). */
  keep: boolean;
  /** Aborting stops the writes (and transfers); the check then runs on what was written and fails as interrupted. */
  signal?: AbortSignal;
}

export const DEFAULT_DEMO_OPTIONS: DemoOptions = {
  rows: 2_000,
  batch: 100,
  shards: 2,
  dim: 8,
  writers: 4,
  transfers: 2,
  insertTimeoutMs: 60_000,
  catchUpTimeoutMs: 60_000,
  keep: false,
};

export interface DemoSummary {
  ok: boolean;
  collection: string;
  vchannels: string[];
  rows: number;
  batches: number;
  insertsAcked: number;
  insertsFailed: number;
  rowsAcked: number;
  transfers: TransferResult[];
  transfersFailed: number;
  /** Insert messages the subscribers saw. */
  insertMessagesSeen: number;
  rowsSeen: number;
  /** Acknowledged inserts (or rows) seen more than once. */
  duplicates: number;
  /** Acknowledged inserts (or rows) never seen. */
  missing: number;
  /** Inserts (or rows) seen but never acknowledged. */
  unexpected: number;
  /** Messages whose timetick was not above the previous one on the same subscription. */
  orderViolations: number;
  elapsedMs: number;
  rowsPerSecond: number;
  /** Human-readable reasons the check failed (empty when ok). */
  problems: string[];
}

export interface DemoReporter {
  /** Progress of the writes: rows acknowledged so far, with a short note. */
  progress?(rowsAcked: number, total: number, note: string): void;
  /** A line of narration ("created collection …", "moved …"). */
  log?(line: string): void;
}

/** Resolves waiters on every change; a waiter gives up at its deadline. */
class Changes {
  private waiters: (() => void)[] = [];
  constructor(private readonly clock: Clock) {}
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Waits for the next change or `untilMs` (monotonic); false when the deadline passed. */
  next(untilMs: number): Promise<boolean> {
    const remaining = untilMs - this.clock.monotonic();
    if (remaining <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => resolve(false), remaining);
      this.waiters.push(() => {
        timer.cancel();
        resolve(true);
      });
    });
  }
}

interface ShardView {
  vchannel: string;
  sub: Subscription;
  lastTimetick: Timetick;
  /** Insert messages seen, by timetick: how often and with how many rows. */
  inserts: Map<Timetick, { count: number; rows: number }>;
  orderViolations: number;
  error: string | undefined;
  done: Promise<void>;
}

function schemaOf(dim: number): CollectionSchema {
  return {
    fields: [
      { name: 'id', type: 'int64', primaryKey: true },
      { name: 'vector', type: 'floatVector', dim },
      { name: 'batch', type: 'int32' },
    ],
  };
}

export async function runDemo(client: WalstreamClient, options: Partial<DemoOptions>, clock: Clock, reporter: DemoReporter = {}): Promise<DemoSummary> {
  const o: DemoOptions = { ...DEFAULT_DEMO_OPTIONS, ...options };
  const name = o.collection ?? `demo_${Date.now().toString(36)}`;
  const log = (s: string): void => reporter.log?.(s);
  const started = clock.monotonic();
  const changes = new Changes(clock);

  const info = await client.createCollection({ name, schema: schemaOf(o.dim), shards: o.shards }, { timeoutMs: o.insertTimeoutMs });
  log(`created collection ${name} with ${info.vchannels.length} shard(s): ${info.vchannels.join(', ')}`);

  // Subscribers first, from the start of the log: nothing written later can be missed.
  const rowsSeen = new Map<number, number>();
  const shards: ShardView[] = info.vchannels.map((vchannel) => {
    const view: ShardView = {
      vchannel,
      sub: client.subscribe({ vchannel, policy: { type: 'all' } }),
      lastTimetick: -1n,
      inserts: new Map(),
      orderViolations: 0,
      error: undefined,
      done: Promise.resolve(),
    };
    view.done = (async () => {
      try {
        for await (const m of view.sub) {
          if (m.timetick <= view.lastTimetick) view.orderViolations++;
          view.lastTimetick = m.timetick;
          if (m.type === 'Insert' && m.vchannel === vchannel && m.header.collectionId === info.id) {
            const seen = view.inserts.get(m.timetick) ?? { count: 0, rows: 0 };
            seen.count++;
            seen.rows = m.header.rows;
            view.inserts.set(m.timetick, seen);
            const ids = m.body.columns.find((c) => c.name === 'id');
            if (ids && ids.type === 'int64') for (const id of ids.data) rowsSeen.set(id, (rowsSeen.get(id) ?? 0) + 1);
          }
          changes.notify();
        }
      } catch (e) {
        view.error = toStreamingError(e).message;
        changes.notify();
      }
    })();
    return view;
  });

  // Writers.
  const batches = Math.ceil(o.rows / o.batch);
  const acks = new Map<string, { timetick: Timetick; rows: number }[]>(info.vchannels.map((v) => [v, []]));
  const ackedIds = new Set<number>();
  let nextBatch = 0;
  let batchesAcked = 0;
  let insertsFailed = 0;
  const failures: string[] = [];
  const transfers: TransferResult[] = [];
  let transfersFailed = 0;
  const note = (): string => `rows; transfers ${transfers.length}/${o.transfers}${insertsFailed ? `, ${insertsFailed} failed` : ''}`;

  const writer = async (): Promise<void> => {
    for (;;) {
      if (o.signal?.aborted) return;
      const b = nextBatch++;
      if (b >= batches) return;
      const first = b * o.batch;
      const n = Math.min(o.batch, o.rows - first);
      const ids = Array.from({ length: n }, (_, i) => first + i + 1);
      const vectors = new Float32Array(n * o.dim);
      for (let i = 0; i < n; i++) for (let j = 0; j < o.dim; j++) vectors[i * o.dim + j] = ((ids[i] as number) % 1000) / 1000 + j;
      try {
        const r = await client.insert(
          { collection: name, columns: [{ name: 'id', type: 'int64', data: ids }, { name: 'vector', type: 'floatVector', dim: o.dim, data: vectors }, { name: 'batch', type: 'int32', data: ids.map(() => b) }] },
          { timeoutMs: o.insertTimeoutMs },
        );
        for (const a of r.appends) acks.get(a.vchannel)?.push({ timetick: a.result.timetick, rows: a.rows });
        for (const id of ids) ackedIds.add(id);
      } catch (e) {
        insertsFailed++;
        if (failures.length < 5) failures.push(`batch ${b}: ${toStreamingError(e).code} ${toStreamingError(e).message}`);
      }
      batchesAcked++;
      reporter.progress?.(ackedIds.size, o.rows, note());
      changes.notify();
    }
  };

  // Transfers: the i-th once (i+1)/(transfers+1) of the batches are done, while writers go on.
  const mover = async (): Promise<void> => {
    const pchannels = [...new Set(info.vchannels.map(pchannelOf))];
    for (let i = 0; i < o.transfers; i++) {
      const threshold = Math.floor(((i + 1) * batches) / (o.transfers + 1));
      while (batchesAcked < threshold && !o.signal?.aborted) await changes.next(clock.monotonic() + 1_000);
      if (o.signal?.aborted) return;
      const pchannel = pchannels[i % pchannels.length] as string;
      try {
        const t = await client.transfer(pchannel, undefined, { timeoutMs: o.insertTimeoutMs });
        transfers.push(t);
        log(`moved ${t.pchannel} from ${t.from ?? '-'} to ${t.to} (term ${t.term}, ${Math.round(t.tookMs)} ms) after ${batchesAcked}/${batches} batches`);
      } catch (e) {
        transfersFailed++;
        log(`transfer of ${pchannel} failed: ${toStreamingError(e).message}`);
      }
      reporter.progress?.(ackedIds.size, o.rows, note());
    }
  };

  await Promise.all([...Array.from({ length: Math.max(1, o.writers) }, writer), mover()]);
  const writeMs = clock.monotonic() - started;

  // Catch up: every subscriber past the last acknowledged timetick of its vchannel.
  const caughtUp = (s: ShardView): boolean => s.error !== undefined || (acks.get(s.vchannel) ?? []).every((a) => s.lastTimetick >= a.timetick);
  const until = clock.monotonic() + o.catchUpTimeoutMs;
  while (!shards.every(caughtUp)) if (!(await changes.next(until))) break;
  for (const s of shards) s.sub.close();
  await Promise.all(shards.map((s) => s.done));

  // Check.
  const problems: string[] = [];
  let duplicates = 0;
  let missing = 0;
  let unexpected = 0;
  let insertMessagesSeen = 0;
  for (const s of shards) {
    if (s.error !== undefined) problems.push(`subscription of ${s.vchannel} failed: ${s.error}`);
    const acked = acks.get(s.vchannel) ?? [];
    const ackedTts = new Set(acked.map((a) => a.timetick));
    for (const a of acked) {
      const seen = s.inserts.get(a.timetick);
      if (!seen) missing++;
      else if (seen.count > 1) duplicates++;
      else if (seen.rows !== a.rows) problems.push(`insert at ${a.timetick} on ${s.vchannel}: ${seen.rows} rows seen, ${a.rows} acknowledged`);
    }
    for (const [tt, seen] of s.inserts) {
      insertMessagesSeen += seen.count;
      if (!ackedTts.has(tt)) unexpected++;
    }
  }
  let rowsDuplicated = 0;
  let rowsMissing = 0;
  for (const id of ackedIds) {
    const n = rowsSeen.get(id) ?? 0;
    if (n === 0) rowsMissing++;
    else if (n > 1) rowsDuplicated++;
  }
  const rowsUnexpected = [...rowsSeen.keys()].filter((id) => !ackedIds.has(id)).length;
  const orderViolations = shards.reduce((n, s) => n + s.orderViolations, 0);
  if (missing || rowsMissing) problems.push(`${missing} acknowledged insert(s) / ${rowsMissing} row(s) never seen`);
  if (duplicates || rowsDuplicated) problems.push(`${duplicates} insert(s) / ${rowsDuplicated} row(s) seen more than once`);
  if (unexpected || rowsUnexpected) problems.push(`${unexpected} insert(s) / ${rowsUnexpected} row(s) seen but never acknowledged`);
  if (orderViolations) problems.push(`${orderViolations} message(s) out of timetick order`);
  if (insertsFailed) problems.push(`${insertsFailed} insert(s) failed: ${failures.join('; ')}`);
  if (transfersFailed) problems.push(`${transfersFailed} transfer(s) failed`);
  if (o.signal?.aborted) problems.push(`interrupted after ${batchesAcked}/${batches} batches`);

  if (!o.keep) {
    await client.dropCollection(name, { timeoutMs: o.insertTimeoutMs }).catch((e: unknown) => log(`dropping ${name} failed: ${toStreamingError(e).message}`));
  }
  const elapsedMs = clock.monotonic() - started;
  return {
    ok: problems.length === 0,
    collection: name,
    vchannels: info.vchannels,
    rows: o.rows,
    batches,
    insertsAcked: batchesAcked - insertsFailed,
    insertsFailed,
    rowsAcked: ackedIds.size,
    transfers,
    transfersFailed,
    insertMessagesSeen,
    rowsSeen: [...rowsSeen.values()].reduce((a, b) => a + b, 0),
    duplicates: duplicates + rowsDuplicated,
    missing: missing + rowsMissing,
    unexpected: unexpected + rowsUnexpected,
    orderViolations,
    elapsedMs: Math.round(elapsedMs),
    rowsPerSecond: writeMs > 0 ? Math.round((ackedIds.size * 1000) / writeMs) : 0,
    problems,
  };
}
