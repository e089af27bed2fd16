/**
 * Property test of the WAL, modelled on Milvus' WAL adaptor test: 3 pchannels × 3 terms, 10
 * concurrent writers mixing plain inserts, committed, rolled-back and expired transactions, 2
 * concurrent readers. Asserts strictly increasing timeticks, that exactly the inserts plus committed
 * transaction bodies are delivered, and that resuming from any message's last-confirmed id with a
 * timetick filter returns exactly the messages at or after its timetick.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { ErrorCode, hasCode } from '../../runtime/errors';
import { seededRandom, type Random } from '../../runtime/clock';
import type { LogMessage } from '../../runtime/message/types';
import type { WalBackend } from '../../storage/wal/backend';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import type { WalHandle } from '../../actors/wal/wal-handle';
import type { SegmentLimits } from '../../actors/wal/segments';
import { collect, createCollection, dropCollection, insert, primaryKeys, walFixture, type WalFixture } from '../support/wal-fixture';

const PCHANNELS = 3;
const TERMS = 3;
const WRITERS = 10;
const OPS_PER_WRITER = 12;

interface RoundLog {
  /** Primary keys that must be delivered (plain inserts and committed txn bodies). */
  expected: Set<number>;
  /** Primary keys that must never be delivered (rolled back / expired). */
  forbidden: Set<number>;
}

async function writer(fx: WalFixture, wal: WalHandle, vchannel: string, collectionId: number, rnd: Random, log: RoundLog): Promise<void> {
  for (let op = 0; op < OPS_PER_WRITER; op++) {
    const dice = rnd.next();
    if (dice < 0.5) {
      const m = insert(vchannel, collectionId, 1 + rnd.int(3));
      await wal.append(m);
      for (const pk of m.body.columns[0]!.data as number[]) log.expected.add(pk);
    } else if (dice < 0.75) {
      const t = await wal.beginTxn(vchannel, 10_000);
      const pks: number[] = [];
      for (let i = rnd.int(5); i > 0; i--) {
        const m = insert(vchannel, collectionId, 1 + rnd.int(2));
        await t.append(m);
        pks.push(...(m.body.columns[0]!.data as number[]));
      }
      await t.commit();
      for (const pk of pks) log.expected.add(pk);
    } else if (dice < 0.9) {
      const t = await wal.beginTxn(vchannel, 10_000);
      for (let i = 1 + rnd.int(3); i > 0; i--) {
        const m = insert(vchannel, collectionId);
        await t.append(m);
        for (const pk of m.body.columns[0]!.data as number[]) log.forbidden.add(pk);
      }
      await t.rollback();
    } else {
      const t = await wal.beginTxn(vchannel, 1);
      const m = insert(vchannel, collectionId);
      for (const pk of m.body.columns[0]!.data as number[]) log.forbidden.add(pk);
      await t.append(m).catch((e: unknown) => {
        if (!hasCode(e, ErrorCode.TRANSACTION_EXPIRED)) throw e;
      });
      fx.clock.step(100); // wall time (and so timeticks, past the TSO batch age) moves beyond the keepalive
      await expect(t.commit()).rejects.toMatchObject({ code: ErrorCode.TRANSACTION_EXPIRED });
    }
  }
}

function isData(m: LogMessage): boolean {
  return m.type === 'Insert' || m.type === 'Txn';
}

async function readRound(wal: WalHandle, vchannel: string, collectionId: number): Promise<LogMessage[]> {
  const sub = await wal.subscribe({ vchannel, policy: { type: 'all' }, filters: { types: ['Insert', 'DropCollection'] } });
  try {
    return await collect(sub, (g) => g.some((m) => m.type === 'DropCollection' && m.header.collectionId === collectionId), 60_000);
  } finally {
    sub.close();
  }
}

async function runPChannel(fx: WalFixture, pchannel: string, seed: number): Promise<number> {
  const rnd = seededRandom(seed);
  let checkedResumes = 0;
  for (let term = 1; term <= TERMS; term++) {
    const wal = await fx.open(pchannel, term, { timetickIntervalMs: 10 });
    await wal.ready();
    const collectionId = term;
    const vchannel = `${pchannel}_${collectionId}v0`;
    await wal.append(createCollection(vchannel, collectionId));
    const round: RoundLog = { expected: new Set(), forbidden: new Set() };
    const readers = [readRound(wal, vchannel, collectionId), readRound(wal, vchannel, collectionId)];
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(fx, wal, vchannel, collectionId, seededRandom(seed * 100 + term * 10 + w), round)));
    await wal.append(dropCollection(vchannel, collectionId));
    const reads = await Promise.all(readers);

    for (const got of reads) {
      for (let i = 1; i < got.length; i++) expect(got[i]!.timetick > got[i - 1]!.timetick).toBe(true);
      const pks = got.flatMap(primaryKeys);
      expect(pks.length).toBe(new Set(pks).size); // no duplicates
      expect(new Set(pks)).toEqual(round.expected);
      for (const pk of pks) expect(round.forbidden.has(pk)).toBe(false);
    }
    const reference = reads[0]!.filter(isData);
    expect(reads[1]!.filter(isData).map((m) => m.id)).toEqual(reference.map((m) => m.id));

    // Resume from every delivered message's last-confirmed id with timetick ≥ its timetick.
    for (const m of reference) {
      const sub = await wal.subscribe({
        vchannel,
        policy: m.lastConfirmedId === '' ? { type: 'all' } : { type: 'startFrom', id: m.lastConfirmedId },
        filters: { types: ['Insert', 'DropCollection'], timetickGte: m.timetick },
      });
      const again = await collect(sub, (g) => g.some((x) => x.type === 'DropCollection'), 30_000);
      sub.close();
      const want = reference.filter((x) => x.timetick >= m.timetick);
      expect(again.filter(isData).map((x) => [x.id, x.timetick])).toEqual(want.map((x) => [x.id, x.timetick]));
      expect(again.filter(isData).flatMap(primaryKeys)).toEqual(want.flatMap(primaryKeys));
      checkedResumes++;
    }
    await wal.close();
  }
  return checkedResumes;
}

async function runProperty(backend: WalBackend, segmentLimits?: SegmentLimits): Promise<WalFixture> {
  const fx = await walFixture(backend, undefined, segmentLimits ? { segmentLimits } : {});
  try {
    const resumes = await Promise.all(Array.from({ length: PCHANNELS }, (_, p) => runPChannel(fx, `prop${p}`, 17 + p)));
    for (const r of resumes) expect(r).toBeGreaterThan(TERMS * 10);
    return fx;
  } finally {
    await fx.close();
  }
}

describe('WAL property', () => {
  test('memory backend', async () => {
    await runProperty(new MemoryWalBackend());
  }, 120_000);

  test('memory backend, tiny segments: inserts redone onto new segments, sealed segments flushed', async () => {
    const fx = await runProperty(new MemoryWalBackend(), { maxRows: 5, maxBytes: 1 << 20, maxIdleMs: 60_000, maxLifetimeMs: 600_000 });
    // Many segments were created and sealed: each got exactly one flush job.
    const ids = fx.flushQueue.jobs.map((j) => `${j.pchannel}/${j.segmentId}`);
    expect(ids.length).toBeGreaterThan(PCHANNELS * TERMS * 5);
    expect(new Set(ids).size).toBe(ids.length);
  }, 120_000);

  test('local file backend', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-prop-'));
    try {
      await runProperty(new LocalWalBackend({ dir, fsync: 'interval', fsyncIntervalMs: 50 }));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
