/**
 * The one conformance suite every WalBackend runs (modelled on Milvus'
 * pkg/streaming/walimpls/test_framework.go). An implementation's test file calls
 * `describeWalBackendConformance('local', factory)`; the factory returns a fresh backend and a
 * cleanup for whatever it created (temp dirs, keys).
 *
 * What it checks, per pchannel (3 in parallel) and term (1..3):
 * - rw open; N−1 appends from 5 concurrent writers in batches of random size, then one marker;
 * - 2 concurrent readers with All read exactly the cumulative written set, in id order, ids
 *   strictly increasing, same bytes;
 * - StartFrom(id) starts exactly at id, StartAfter(id) at the entry after it;
 * - Latest delivers nothing until a new append, then exactly that entry;
 * - an ro open refuses append and truncate with INVALID_ARGUMENT and reads the same log;
 * then truncate + reopen keeps everything at or above the truncation point, in order.
 * Plus fencing (a newer term refuses the older log's writes, a lower-term rw open is refused) and
 * reader lifetimes (close/abort/backend close end a blocked reader).
 *
 * Seed: WAL_CONFORMANCE_SEED (default 20260101); it is printed in failure messages.
 */
import type { DeliverPolicy, LogEntry, WalBackend, WalLog } from '../../storage/wal/backend';
import type { MessageId } from '../../runtime/message/message-id';
import { ErrorCode } from '../../runtime/errors';
import { type Random, seededRandom } from '../../runtime/clock';

export interface WalBackendFixture {
  backend: WalBackend;
  cleanup(): Promise<void>;
}

interface Written {
  id: MessageId;
  data: Uint8Array;
}

const SEED = Number(process.env.WAL_CONFORMANCE_SEED ?? 20260101);
/** Messages per term per pchannel, including the marker. */
const MESSAGES_PER_TERM = 240;
const WRITERS = 5;
const MAX_BATCH = 16;
const TERMS = 3;
const PCHANNELS = 3;
/** Upper bound for any read that is expected to complete. */
const READ_DEADLINE_MS = 15_000;
/** How long "nothing arrives" is observed for. */
const QUIET_MS = 300;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function describeWalBackendConformance(name: string, factory: () => Promise<WalBackendFixture>): void {
  describe(`WalBackend conformance: ${name}`, () => {
    let fx: WalBackendFixture;

    beforeEach(async () => {
      fx = await factory();
    });

    afterEach(async () => {
      await fx.backend.close();
      await fx.backend.close(); // idempotent
      await fx.cleanup();
    });

    it(`runs ${PCHANNELS} pchannels in parallel through terms 1..${TERMS} (seed ${SEED})`, async () => {
      const pchannels = Array.from({ length: PCHANNELS }, (_, i) => `conformance-${name}-${i}`);
      await Promise.all(pchannels.map((p, i) => runPChannel(fx.backend, p, seededRandom(SEED + i * 7919))));
    });

    it('fences the older-term log and refuses an rw open below the current term', async () => {
      const { backend } = fx;
      const p = `fence-${name}`;
      const t1 = await backend.open({ name: p, term: 1, accessMode: 'rw' });
      const early = [bytes('t1-a'), bytes('t1-b')];
      const earlyIds = await t1.append(early);
      expect(earlyIds).toHaveLength(2);

      const t2 = await backend.open({ name: p, term: 2, accessMode: 'rw' });
      await expect(t1.append([bytes('t1-late-0'), bytes('t1-late-1')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      await expect(t1.append([bytes('t1-late-2')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      await expect(t1.truncate(earlyIds[1]!)).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      await expect(backend.open({ name: p, term: 1, accessMode: 'rw' })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });

      // ro at a lower term is allowed and does not take the pchannel away from term 2.
      const ro = await backend.open({ name: p, term: 1, accessMode: 'ro' });
      const marker = bytes('t2-marker');
      const [markerId] = await t2.append([marker]);
      const expected: Written[] = [
        { id: earlyIds[0]!, data: early[0]! },
        { id: earlyIds[1]!, data: early[1]! },
        { id: markerId!, data: marker },
      ];
      expectSameEntries(await readUntil(t2, { type: 'all' }, markerId!), expected, 'term-2 reader after fencing');
      expectSameEntries(await readUntil(ro, { type: 'all' }, markerId!), expected, 'ro reader after fencing');
      expectSameEntries(await readUntil(t1, { type: 'all' }, markerId!), expected, 'fenced log reader');

      // A newer term fences term 2 as well; term 1 stays fenced.
      const t3 = await backend.open({ name: p, term: 3, accessMode: 'rw' });
      await expect(t2.append([bytes('t2-late')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      await expect(t1.append([bytes('t1-later')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      await expect(backend.open({ name: p, term: 2, accessMode: 'rw' })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      const last = bytes('t3-marker');
      const [lastId] = await t3.append([last]);
      expect(lastId! > markerId!).toBe(true);
      expectSameEntries(await readUntil(t3, { type: 'all' }, lastId!), [...expected, { id: lastId!, data: last }], 'term-3 reader');
      await Promise.all([t1.close(), t2.close(), t3.close(), ro.close()]);
    });

    it('reports oldestId and refuses appends after close', async () => {
      const { backend } = fx;
      const log = await backend.open({ name: `oldest-${name}`, term: 1, accessMode: 'rw' });
      expect(await log.oldestId()).toBeUndefined();
      const ids = await log.append([bytes('a'), bytes('b'), bytes('c')]);
      expect(ids).toHaveLength(3);
      expect(ids[0]! < ids[1]! && ids[1]! < ids[2]!).toBe(true);
      expect(await log.oldestId()).toBe(ids[0]);
      await log.close();
      await log.close(); // idempotent
      await expect(log.append([bytes('d')])).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
    });

    it('ends a blocked reader on log close, on abort and on backend close', async () => {
      const { backend } = fx;
      // log close
      const a = await backend.open({ name: `lifetime-${name}-a`, term: 1, accessMode: 'rw' });
      const [aId] = await a.append([bytes('only')]);
      const ra = new Puller(a.read({ policy: { type: 'all' } }));
      const firstA = await ra.within(READ_DEADLINE_MS);
      expect(firstA).not.toBe(TIMEOUT);
      expect(firstA !== TIMEOUT && !firstA.done && firstA.value.id).toBe(aId);
      expect(await ra.within(QUIET_MS / 3)).toBe(TIMEOUT);
      await a.close();
      expect(await ra.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });

      // abort
      const b = await backend.open({ name: `lifetime-${name}-b`, term: 1, accessMode: 'rw' });
      const ac = new AbortController();
      const rb = new Puller(b.read({ policy: { type: 'latest' }, signal: ac.signal }));
      expect(await rb.within(QUIET_MS / 3)).toBe(TIMEOUT);
      ac.abort();
      expect(await rb.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });
      // an already aborted signal ends at once
      const rb2 = new Puller(b.read({ policy: { type: 'all' }, signal: ac.signal }));
      expect(await rb2.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });

      // backend close ends readers of every log, rw and ro
      const c = await backend.open({ name: `lifetime-${name}-c`, term: 1, accessMode: 'rw' });
      const cro = await backend.open({ name: `lifetime-${name}-c`, term: 1, accessMode: 'ro' });
      const rc = new Puller(c.read({ policy: { type: 'all' } }));
      const rcro = new Puller(cro.read({ policy: { type: 'latest' } }));
      expect(await rc.within(QUIET_MS / 3)).toBe(TIMEOUT);
      expect(await rcro.within(1)).toBe(TIMEOUT);
      await backend.close();
      expect(await rc.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });
      expect(await rcro.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });
      await expect(backend.open({ name: `lifetime-${name}-d`, term: 1, accessMode: 'rw' })).rejects.toMatchObject({
        code: ErrorCode.ON_SHUTDOWN,
      });
    });
  });
}

/** One pchannel of the framework test: terms 1..TERMS, then truncate and reopen. */
async function runPChannel(backend: WalBackend, pchannel: string, rnd: Random): Promise<void> {
  const written: Written[] = [];
  let lastLog: WalLog | undefined;
  for (let term = 1; term <= TERMS; term++) {
    const log = await backend.open({ name: pchannel, term, accessMode: 'rw' });
    expect(log.channel).toEqual({ name: pchannel, term, accessMode: 'rw' });

    // 1. N−1 appends from concurrent writers, then the marker of this term.
    written.push(...(await concurrentAppends(log, pchannel, term, MESSAGES_PER_TERM - 1, rnd)));
    const marker = bytes(`marker|${pchannel}|term=${term}`);
    const [markerId] = await log.append([marker]);
    written.push({ id: markerId!, data: marker });
    written.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    expect(new Set(written.map((w) => w.id)).size).toBe(written.length);
    expect(written[written.length - 1]!.id).toBe(markerId);
    expect(written).toHaveLength(term * MESSAGES_PER_TERM + 2 * (term - 1)); // + the Latest and after-ro probes of earlier terms

    // 2. Two concurrent readers with All, each until the marker.
    const [r1, r2] = await Promise.all([
      readUntil(log, { type: 'all' }, markerId!),
      readUntil(log, { type: 'all' }, markerId!),
    ]);
    expectSameEntries(r1, written, `${pchannel} term ${term} reader 1`);
    expectSameEntries(r2, written, `${pchannel} term ${term} reader 2`);

    // 3. StartFrom(mid) and StartAfter(mid); mid is never the marker so both reach it.
    const midIdx = rnd.int(written.length - 1);
    const mid = written[midIdx]!.id;
    expectSameEntries(await readUntil(log, { type: 'startFrom', id: mid }, markerId!), written.slice(midIdx), `${pchannel} startFrom`);
    expectSameEntries(await readUntil(log, { type: 'startAfter', id: mid }, markerId!), written.slice(midIdx + 1), `${pchannel} startAfter`);
    // Edge positions: the first and the last entry.
    expectSameEntries(await readUntil(log, { type: 'startFrom', id: written[0]!.id }, markerId!), written, `${pchannel} startFrom first`);
    expectSameEntries(await readUntil(log, { type: 'startFrom', id: markerId! }, markerId!), written.slice(-1), `${pchannel} startFrom marker`);

    // 4. Latest: nothing until a new append, then exactly that entry.
    written.push(await checkLatest(log, `latest|${pchannel}|term=${term}`));

    // 5. ro: refuses writes, reads the same log.
    const ro = await backend.open({ name: pchannel, term, accessMode: 'ro' });
    await expect(ro.append([bytes('ro-append')])).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(ro.truncate(written[0]!.id)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    const lastId = written[written.length - 1]!.id;
    expectSameEntries(await readUntil(ro, { type: 'all' }, lastId), written, `${pchannel} term ${term} ro reader`);
    await ro.close();
    // The ro open did not fence the rw log.
    const [probeId] = await log.append([bytes(`after-ro|${pchannel}|term=${term}`)]);
    written.push({ id: probeId!, data: bytes(`after-ro|${pchannel}|term=${term}`) });

    if (term < TERMS) await log.close();
    else lastLog = log;
  }

  // Truncate at the middle, reopen, read: everything >= upTo is there, in order; below may be gone.
  const log = lastLog!;
  const truncIdx = Math.floor(written.length / 2);
  const upTo = written[truncIdx]!.id;
  await log.truncate(upTo);
  const oldest = await log.oldestId();
  expect(oldest).toBeDefined();
  expect(oldest! <= upTo).toBe(true);
  await log.close();

  const reopened = await backend.open({ name: pchannel, term: TERMS + 1, accessMode: 'rw' });
  const lastId = written[written.length - 1]!.id;
  const after = await readUntil(reopened, { type: 'all' }, lastId);
  const startIdx = written.length - after.length;
  expect(startIdx).toBeGreaterThanOrEqual(0);
  expect(startIdx).toBeLessThanOrEqual(truncIdx);
  expectSameEntries(after, written.slice(startIdx), `${pchannel} after truncate + reopen`);
  expect(await reopened.oldestId()).toBe(after[0]!.id);
  // StartFrom below the retained range starts at the oldest retained entry.
  expectSameEntries(await readUntil(reopened, { type: 'startFrom', id: written[0]!.id }, lastId), after, `${pchannel} startFrom truncated id`);
  const next = bytes(`after-reopen|${pchannel}`);
  const [nextId] = await reopened.append([next]);
  expect(nextId! > lastId).toBe(true);
  expectSameEntries(
    await readUntil(reopened, { type: 'startAfter', id: lastId }, nextId!),
    [{ id: nextId!, data: next }],
    `${pchannel} append after reopen`,
  );
  await reopened.close();
}

/** `count` records from WRITERS concurrent writers in batches of random size; returns what was acknowledged. */
async function concurrentAppends(log: WalLog, pchannel: string, term: number, count: number, rnd: Random): Promise<Written[]> {
  let remaining = count;
  let serial = 0;
  const out: Written[] = [];
  const writer = async (w: number): Promise<void> => {
    while (remaining > 0) {
      const n = 1 + rnd.int(Math.min(MAX_BATCH, remaining));
      remaining -= n;
      const batch = Array.from({ length: n }, () => payload(`${pchannel}|t${term}|w${w}|#${serial++}`, rnd));
      const ids = await log.append(batch);
      expect(ids).toHaveLength(n);
      for (let i = 0; i < n; i++) {
        if (i > 0 && !(ids[i - 1]! < ids[i]!)) throw new Error(`ids of one batch not increasing: ${ids.join(',')}`);
        out.push({ id: ids[i]!, data: batch[i]! });
      }
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  expect(out).toHaveLength(count);
  return out;
}

/** Latest blocks (nothing in QUIET_MS), then delivers exactly the next appended entry. */
async function checkLatest(log: WalLog, tag: string): Promise<Written> {
  const ac = new AbortController();
  const reader = new Puller(log.read({ policy: { type: 'latest' }, signal: ac.signal }));
  expect(await reader.within(QUIET_MS)).toBe(TIMEOUT);
  const probe = bytes(tag);
  const [probeId] = await log.append([probe]);
  const got = await reader.within(READ_DEADLINE_MS);
  if (got === TIMEOUT || got.done) throw new Error(`latest reader did not deliver the appended entry ${probeId}`);
  expectSameEntries([got.value], [{ id: probeId!, data: probe }], 'latest reader');
  expect(await reader.within(QUIET_MS / 3)).toBe(TIMEOUT);
  ac.abort();
  expect(await reader.within(READ_DEADLINE_MS)).toEqual({ done: true, value: undefined });
  return { id: probeId!, data: probe };
}

/** Reads with `policy` until the entry `stopId` (inclusive), within READ_DEADLINE_MS. */
async function readUntil(log: WalLog, policy: DeliverPolicy, stopId: MessageId): Promise<LogEntry[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), READ_DEADLINE_MS);
  const out: LogEntry[] = [];
  try {
    for await (const e of log.read({ policy, signal: ac.signal })) {
      out.push(e);
      if (e.id >= stopId) return out;
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error(
    `reader (${JSON.stringify(policy)}) ended after ${out.length} entries (last ${out[out.length - 1]?.id ?? 'none'}) ` +
      `without reaching ${stopId}${ac.signal.aborted ? ` within ${READ_DEADLINE_MS} ms` : ''}`,
  );
}

function expectSameEntries(actual: readonly LogEntry[], expected: readonly Written[], label: string): void {
  for (let i = 1; i < actual.length; i++) {
    if (!(actual[i - 1]!.id < actual[i]!.id)) {
      throw new Error(`${label}: ids not strictly increasing at #${i}: ${actual[i - 1]!.id} then ${actual[i]!.id}`);
    }
  }
  // Ids first: a count or order mismatch shows as a readable diff.
  expect({ label, ids: actual.map((e) => e.id) }).toEqual({ label, ids: expected.map((e) => e.id) });
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!.data;
    const b = expected[i]!.data;
    if (!bytesEqual(a, b)) {
      throw new Error(
        `${label}: payload of ${actual[i]!.id} differs: got ${a.length} bytes "${preview(a)}", want ${b.length} bytes "${preview(b)}"`,
      );
    }
  }
}

const TIMEOUT = Symbol('timeout');

/** Pulls one entry at a time with a bounded wait; a pull that timed out stays pending for the next call. */
class Puller {
  private readonly it: AsyncIterator<LogEntry>;
  private pending: Promise<IteratorResult<LogEntry>> | undefined;

  constructor(iterable: AsyncIterable<LogEntry>) {
    this.it = iterable[Symbol.asyncIterator]();
  }

  async within(ms: number): Promise<IteratorResult<LogEntry> | typeof TIMEOUT> {
    this.pending ??= this.it.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMEOUT>((resolve) => (timer = setTimeout(() => resolve(TIMEOUT), ms)));
    try {
      const r = await Promise.race([this.pending, timeout]);
      if (r !== TIMEOUT) this.pending = undefined;
      return r;
    } finally {
      clearTimeout(timer);
    }
  }
}

function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A tagged payload with random filler of random length (0..700 bytes). */
function payload(tag: string, rnd: Random): Uint8Array {
  const head = encoder.encode(tag + '|');
  const out = new Uint8Array(head.length + rnd.int(701));
  out.set(head);
  for (let i = head.length; i < out.length; i++) out[i] = rnd.int(256);
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function preview(b: Uint8Array): string {
  return decoder.decode(b.subarray(0, 48)).replace(/[^\x20-\x7e]/g, '.');
}
