import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import type { CreateCollectionMessage, LogMessage, NewMessage } from '../../runtime/message/types';
import type { WalBackend } from '../../storage/wal/backend';
import type { WalHandle } from '../../actors/wal/wal-handle';
import { query, type Ref } from 'nact';
import type { AppendEntry, Reply, WalMsg } from '../../actors/wal/messages';
import { collect, createCollection, dropCollection, eventually, insert, interceptAppends, primaryKeys, walFixture, type WalFixture } from '../support/wal-fixture';

const V = 'p0_1v0';

describe('WAL actor', () => {
  let fx: WalFixture;
  beforeEach(async () => {
    fx = await walFixture(new MemoryWalBackend());
  });
  afterEach(async () => {
    await fx.close();
  });

  test('appends get strictly increasing ids and timeticks, last-confirmed ids behind them', async () => {
    const wal = await fx.open('p0', 1);
    const opened = await wal.ready();
    expect(opened.state).toBe('open');
    await wal.append(createCollection(V, 1));
    const results = await Promise.all(Array.from({ length: 200 }, () => wal.append(insert(V, 1))));
    const sorted = [...results].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i]!.timetick > sorted[i - 1]!.timetick).toBe(true);
      expect(sorted[i]!.id > sorted[i - 1]!.id).toBe(true);
    }
    for (const r of results) expect(r.lastConfirmedId < r.id).toBe(true);
    expect(new Set(results.map((r) => r.id)).size).toBe(200);
  });

  test('a schema object that carries more than JSON (a method) is kept as the log has it, and inserts go on', async () => {
    const wal = await fx.open('p0', 1);
    await wal.ready();
    const cc = createCollection(V, 1) as NewMessage<CreateCollectionMessage>;
    const schema = { ...cc.body.schema, describe: () => 'not data' };
    await wal.append({ ...cc, body: { ...cc.body, schema } });
    schema.fields = []; // the caller's object changes afterwards: the WAL keeps its own copy
    const r = await wal.append(insert(V, 1));
    expect(r.id > '').toBe(true);
  });

  test('an answer callback that throws does not keep the other appends of its batch unanswered', async () => {
    const wal = await fx.open('p0', 1);
    await wal.ready();
    await wal.append(createCollection(V, 1));
    const answers: string[] = [];
    const entries: AppendEntry[] = [
      {
        message: { type: 'TimeTick', vchannel: '', header: {}, body: {} },
        reply: () => {
          answers.push('refused');
          throw new Error('caller callback failed');
        },
      },
      { message: insert(V, 1), reply: (r) => answers.push(r.ok ? 'written' : `failed: ${r.error.message}`) },
    ];
    await query(wal.ref, (replyTo: Ref<Reply<void>>): WalMsg => ({ type: 'appendBatch', entries, taken: false, replyTo }), 5_000);
    await eventually(() => answers.length === 2);
    expect(answers).toEqual(['refused', 'written']);
    expect((await wal.status()).state).toBe('open');
  });

  test('status reports the group-commit choice and the measures it rests on once groups completed', async () => {
    const wal = await fx.open('p0', 1);
    await wal.ready();
    const before = (await wal.status()).groupCommit;
    expect(before).toEqual({ mode: 'merge', busyUsPerAppend: 0, writeMs: 0 });
    await wal.append(createCollection(V, 1));
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 50 }, () => wal.append(insert(V, 1))));
    const after = (await wal.status()).groupCommit;
    expect(['merge', 'overlap']).toContain(after.mode);
    expect(after.busyUsPerAppend).toBeGreaterThan(0);
    expect(after.writeMs).toBeGreaterThan(0);
  });

  test('concurrent appends are group-committed into fewer backend writes', async () => {
    let writes = 0;
    const counting = interceptAppends(new MemoryWalBackend(), 'counting', (log) => (records) => {
      writes++;
      return log.append(records);
    });
    const f2 = await walFixture(counting);
    try {
      const wal = await f2.open('g0', 1, { timetickIntervalMs: 60_000 });
      await wal.append(createCollection('g0_1v0', 1));
      const before = writes;
      await Promise.all(Array.from({ length: 256 }, () => wal.append(insert('g0_1v0', 1))));
      expect(writes - before).toBeGreaterThan(0);
      expect(writes - before).toBeLessThan(64);
    } finally {
      await f2.close();
    }
  });

  describe('group commits in flight', () => {
    interface HeldWrite {
      records: readonly Uint8Array[];
      release(): Promise<string[]>;
      fail(e: unknown): void;
    }

    /**
     * A backend whose appends, once `hold` is set, wait until the test settles them, in whatever
     * order it chooses (the write itself happens in call order, as every backend must keep it).
     */
    function heldBackend(): { backend: WalBackend; held: HeldWrite[]; ctl: { hold: boolean } } {
      const held: HeldWrite[] = [];
      const ctl = { hold: false };
      const backend = interceptAppends(new MemoryWalBackend(), 'held', (log) => (records) => {
        const written = log.append(records);
        if (!ctl.hold) return written;
        return new Promise<string[]>((resolve, reject) => {
          held.push({ records, release: () => written.then((ids) => (resolve(ids), ids)), fail: (e) => reject(e) });
        });
      });
      return { backend, held, ctl };
    }

    /** Creates the collection and its first segment, and lets the WAL see fast writes of bursts; then holds writes. */
    async function warmUp(wal: WalHandle, vchannel: string, ctl: { hold: boolean }): Promise<void> {
      await wal.append(createCollection(vchannel, 1));
      await wal.append(insert(vchannel, 1));
      for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 40 }, () => wal.append(insert(vchannel, 1))));
      ctl.hold = true;
    }

    test('with fast writes a burst is written as two groups in flight; answers come in append order even when the backend answers the second first', async () => {
      const { backend, held, ctl } = heldBackend();
      const f2 = await walFixture(backend);
      try {
        const wal = await f2.open('h0', 1, { timetickIntervalMs: 60_000 });
        await wal.ready();
        await warmUp(wal, 'h0_1v0', ctl);
        const answered: number[] = [];
        const appends = Array.from({ length: 40 }, (_, i) => wal.append(insert('h0_1v0', 1)).then((r) => (answered.push(i), r)));
        await eventually(() => held.length === 2, 5000, 'two group commits in flight');
        expect(held[0]!.records.length + held[1]!.records.length).toBe(40);
        expect(held[0]!.records.length).toBe(20);
        expect((await wal.status()).inFlightWrite).toBe(40);
        // The second group is answered by the backend first: nobody is acknowledged before the first group is durable.
        await held[1]!.release();
        await new Promise((r) => setImmediate(r));
        expect(answered).toEqual([]);
        await held[0]!.release();
        const results = await Promise.all(appends);
        expect(answered).toEqual(Array.from({ length: 40 }, (_, i) => i));
        for (let i = 1; i < results.length; i++) {
          expect(results[i]!.id > results[i - 1]!.id).toBe(true);
          expect(results[i]!.timetick > results[i - 1]!.timetick).toBe(true);
        }
      } finally {
        await f2.close();
      }
    });

    test('when writes turn slow, the appenders answered by one write join the next group again instead of waving in halves', async () => {
      let latencyMs = 0;
      let writes = 0;
      let records = 0;
      const counting = interceptAppends(new MemoryWalBackend(), 'slow', (log) => {
        // One write after the other, like a disk: each takes latencyMs once the previous is done.
        let disk: Promise<unknown> = Promise.resolve();
        return (r) => {
          writes++;
          records += r.length;
          const ms = latencyMs;
          const done = disk.then(() => (ms > 0 ? new Promise((res) => setTimeout(res, ms)) : undefined)).then(() => log.append(r));
          disk = done.catch(() => undefined);
          return done;
        };
      });
      const f2 = await walFixture(counting);
      try {
        const wal = await f2.open('s0', 1, { timetickIntervalMs: 60_000 });
        await wal.append(createCollection('s0_1v0', 1));
        await wal.append(insert('s0_1v0', 1));
        // 32 appenders, each appending in a loop: fast writes first (the WAL overlaps, in waves of
        // 16), then 20 ms writes, where one group per write carries more.
        let slowWritesSeen = 0;
        let w0 = 0;
        let r0 = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            for (let i = 0; i < 20; i++) await wal.append(insert('s0_1v0', 1));
            if (latencyMs === 0) {
              latencyMs = 20;
            }
            for (let i = 0; i < 15; i++) {
              await wal.append(insert('s0_1v0', 1));
              // Measure once the WAL has seen a few slow writes.
              if (++slowWritesSeen === 32 * 5) {
                w0 = writes;
                r0 = records;
              }
            }
          }),
        );
        expect(records - r0).toBeGreaterThanOrEqual(32 * 9);
        // Nearly every write carries all 32 appenders (a few fewer for TimeTicks or stragglers).
        expect((records - r0) / (writes - w0)).toBeGreaterThan(24);
      } finally {
        await f2.close();
      }
    });

    test('when a group commit fails, the later group in flight and the pending appends fail with it', async () => {
      const { backend, held, ctl } = heldBackend();
      const f2 = await walFixture(backend);
      try {
        const wal = await f2.open('h1', 1, { timetickIntervalMs: 60_000 });
        await wal.ready();
        await warmUp(wal, 'h1_1v0', ctl);
        const appends = Array.from({ length: 40 }, () => wal.append(insert('h1_1v0', 1)).then(() => 'ok', (e: unknown) => e));
        await eventually(() => held.length === 2, 5000, 'two group commits in flight');
        // The second group is durable, but the first failed: no append after the failure is acknowledged.
        await held[1]!.release();
        held[0]!.fail(new StreamingError(ErrorCode.INNER, 'disk on fire'));
        const outcomes = await Promise.all(appends);
        expect(outcomes.filter((o) => o === 'ok')).toHaveLength(0);
        for (const o of outcomes) expect(o).toMatchObject({ code: ErrorCode.INNER });
        await expect(wal.append(insert('h1_1v0', 1))).rejects.toBeInstanceOf(StreamingError);
      } finally {
        await f2.close();
      }
    });

    test('a backend that answers ids out of append order stops the WAL instead of breaking id = timetick order', async () => {
      let calls = 0;
      // From the third call on, every answer claims the very first id.
      const backend = interceptAppends(new MemoryWalBackend(), 'reordering', (log) => async (records) => (++calls <= 2 ? log.append(records) : records.map(() => '0000000000000001')));
      const f2 = await walFixture(backend);
      try {
        const wal = await f2.open('r0', 1, { timetickIntervalMs: 60_000 });
        await wal.ready();
        await wal.append(createCollection('r0_1v0', 1));
        await expect(wal.append(insert('r0_1v0', 1))).rejects.toMatchObject({ code: ErrorCode.INNER, message: expect.stringContaining('ids must follow append order') });
      } finally {
        await f2.close();
      }
    });
  });

  test('no Insert before CreateCollection or after DropCollection: UNRECOVERABLE and nothing written', async () => {
    const wal = await fx.open('p0', 1);
    await expect(wal.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
    await wal.append(createCollection(V, 1));
    const ok = await wal.append(insert(V, 1, 2));
    await expect(wal.append(insert(V, 1, 1, 999))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE }); // unknown partition
    await wal.append(dropCollection(V, 1));
    await expect(wal.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
    await expect(wal.append({ type: 'Delete', vchannel: V, header: { collectionId: 1, partitionId: -1, rows: 1 }, body: { primaryKeys: { type: 'int64', data: [1] } } })).rejects.toMatchObject({
      code: ErrorCode.UNRECOVERABLE,
    });
    await expect(wal.append(createCollection(V, 1))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE }); // ids are not reused

    const sub = await wal.subscribe({ vchannel: V, policy: { type: 'all' }, filters: { types: ['Insert', 'CreateCollection', 'DropCollection', 'Delete'] } });
    const got = await collect(sub, (g) => g.some((m) => m.type === 'DropCollection'));
    sub.close();
    expect(got.filter((m) => m.type !== 'TimeTick').map((m) => m.type)).toEqual(['CreateCollection', 'Insert', 'DropCollection']);
    expect(got.find((m) => m.type === 'Insert')!.id).toBe(ok.id);
  });

  test('bad input is refused with INVALID_ARGUMENT: system types, schema mismatch, oversized message', async () => {
    const wal = await fx.open('p0', 1, { maxMessageBytes: 4096 });
    await wal.append(createCollection(V, 1));
    await expect(wal.append({ type: 'TimeTick', vchannel: '', header: {}, body: {} })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(wal.append({ type: 'Flush', vchannel: V, header: { collectionId: 1, partitionId: 10, segmentId: 1 }, body: {} })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
    const wrongDim = insert(V, 1);
    wrongDim.body.columns[1] = { name: 'vec', type: 'floatVector', dim: 3, data: new Float32Array(3) };
    await expect(wal.append(wrongDim)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: expect.objectContaining({ field: 'vec' }) });
    const big = insert(V, 1, 300);
    const err = await wal.append(big).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamingError);
    expect((err as StreamingError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((err as StreamingError).details).toMatchObject({ limit: 4096 });
    // still serving
    await expect(wal.append(insert(V, 1))).resolves.toHaveProperty('id');
  });

  test('transactions: committed delivered once as a Txn at the commit timetick; rolled back never', async () => {
    const wal = await fx.open('p0', 1);
    await wal.append(createCollection(V, 1));
    const sub = await wal.subscribe({ vchannel: V, policy: { type: 'latest' }, filters: { types: ['Insert'] } });

    const t1 = await wal.beginTxn(V, 5000);
    const a = insert(V, 1, 2);
    const b = insert(V, 1, 1);
    await t1.append(a);
    await t1.append(b);
    const t2 = await wal.beginTxn(V, 5000);
    await t2.append(insert(V, 1, 3));
    const plain = insert(V, 1, 1);
    const plainR = await wal.append(plain);
    await t2.rollback();
    const commit = await t1.commit();

    const got = await collect(sub, (g) => g.some((m) => m.type === 'Txn'));
    sub.close();
    const data = got.filter((m) => m.type !== 'TimeTick');
    expect(data.map((m) => m.type)).toEqual(['Insert', 'Txn']);
    expect(data[0]!.timetick).toBe(plainR.timetick);
    const txn = data[1]!;
    expect(txn.timetick).toBe(commit.timetick);
    expect(primaryKeys(txn)).toEqual([...(a.body.columns[0]!.data as number[]), ...(b.body.columns[0]!.data as number[])]);
    if (txn.type !== 'Txn') throw new Error('not a txn');
    for (const body of txn.body.messages) expect(body.timetick).toBe(commit.timetick);
    await expect(t1.commit()).rejects.toMatchObject({ code: ErrorCode.INVALID_TRANSACTION_STATE });
  });

  test('a transaction expires in timetick time; its commit is TRANSACTION_EXPIRED', async () => {
    const wal = await fx.open('p0', 1);
    await wal.append(createCollection(V, 1));
    const t = await wal.beginTxn(V, 100);
    await t.append(insert(V, 1));
    fx.clock.step(1000); // timeticks jump 1 s ahead of the txn's last message
    await expect(t.commit()).rejects.toMatchObject({ code: ErrorCode.TRANSACTION_EXPIRED });
    const t2 = await wal.beginTxn(V, 100);
    fx.clock.step(1000);
    await expect(t2.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.TRANSACTION_EXPIRED });
  });

  test('an exclusive DDL on the vchannel fails its open transactions, not those of other vchannels', async () => {
    const wal = await fx.open('p0', 1);
    const V2 = 'p0_2v0';
    await wal.append(createCollection(V, 1));
    await wal.append(createCollection(V2, 2));
    const t1 = await wal.beginTxn(V, 10_000);
    await t1.append(insert(V, 1));
    const t2 = await wal.beginTxn(V2, 10_000);
    await t2.append(insert(V2, 2));
    await wal.append({ type: 'CreatePartition', vchannel: V, header: { collectionId: 1, partitionId: 11 }, body: { partitionName: 'p11' } });
    await expect(t1.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.TRANSACTION_EXPIRED });
    await expect(t2.commit()).resolves.toHaveProperty('timetick');
    // the new partition takes inserts
    await expect(wal.append(insert(V, 1, 1, 11))).resolves.toHaveProperty('id');
  });

  test('an older term is fenced once a newer term opens: nothing it writes lands', async () => {
    const w1 = await fx.open('p0', 1);
    await w1.append(createCollection(V, 1));
    await w1.append(insert(V, 1));
    const w2 = await fx.open('p0', 2);
    const s2 = await w2.ready();
    expect(s2.term).toBe(2);
    const late = insert(V, 1);
    await expect(w1.append(late)).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    await expect(w1.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    // the new term rebuilt the vchannel meta from the log and accepts inserts
    const r = await w2.append(insert(V, 1));
    const sub = await w2.subscribe({ policy: { type: 'all' } });
    const got = await collect(sub, (g) => g.some((m) => m.id === r.id));
    sub.close();
    const lateId = (late.body.columns[0]!.data as number[])[0]!;
    expect(got.flatMap(primaryKeys)).not.toContain(lateId);
    const ticks = got.filter((m) => m.type === 'TimeTick' && m.term === 2);
    expect(ticks.length).toBeGreaterThanOrEqual(1);
    // the first message of term 2 is a TimeTick above every timetick of term 1
    const firstOfTerm2 = got.find((m) => m.term === 2)!;
    expect(firstOfTerm2.type).toBe('TimeTick');
    for (const m of got.filter((x) => x.term === 1)) expect(m.timetick < firstOfTerm2.timetick).toBe(true);
    for (let i = 1; i < got.length; i++) expect(got[i]!.timetick > got[i - 1]!.timetick).toBe(true);
  });

  test('idle TimeTicks advance a tailing reader without writes', async () => {
    const wal = await fx.open('p0', 1, { timetickIntervalMs: 20 });
    await wal.ready();
    const sub = await wal.subscribe({ policy: { type: 'latest' } });
    const got = await collect(sub, (g) => g.length >= 3);
    sub.close();
    expect(got.every((m) => m.type === 'TimeTick')).toBe(true);
    expect(got.some((m) => m.notPersisted === true)).toBe(true);
    for (let i = 1; i < got.length; i++) expect(got[i]!.timetick > got[i - 1]!.timetick).toBe(true);
  });

  test('deliver policies and filters', async () => {
    const wal = await fx.open('p0', 1, { timetickIntervalMs: 60_000 });
    const V2 = 'p0_2v0';
    await wal.append(createCollection(V, 1));
    await wal.append(createCollection(V2, 2));
    const rs = [];
    for (let i = 0; i < 10; i++) rs.push(await wal.append(insert(i % 2 === 0 ? V : V2, i % 2 === 0 ? 1 : 2)));
    const onlyInserts = { types: ['Insert' as const] };
    const all = await wal.subscribe({ policy: { type: 'all' }, filters: onlyInserts });
    const gotAll = await collect(all, (g) => g.filter((m) => m.type === 'Insert').length === 10);
    all.close();
    expect(gotAll.filter((m) => m.type === 'Insert').map((m) => m.id)).toEqual(rs.map((r) => r.id));

    const from = await wal.subscribe({ policy: { type: 'startFrom', id: rs[4]!.id }, filters: onlyInserts });
    const gotFrom = await collect(from, (g) => g.filter((m) => m.type === 'Insert').length === 6);
    from.close();
    expect(gotFrom.filter((m) => m.type === 'Insert')[0]!.id).toBe(rs[4]!.id);

    const after = await wal.subscribe({ policy: { type: 'startAfter', id: rs[4]!.id }, filters: onlyInserts });
    const gotAfter = await collect(after, (g) => g.filter((m) => m.type === 'Insert').length === 5);
    after.close();
    expect(gotAfter.filter((m) => m.type === 'Insert')[0]!.id).toBe(rs[5]!.id);

    const vch = await wal.subscribe({ vchannel: V2, policy: { type: 'all' }, filters: { ...onlyInserts, timetickGt: rs[2]!.timetick } });
    const gotV = await collect(vch, (g) => g.filter((m) => m.type === 'Insert').length === 4);
    vch.close();
    expect(gotV.filter((m) => m.type === 'Insert').map((m) => m.id)).toEqual([rs[3]!.id, rs[5]!.id, rs[7]!.id, rs[9]!.id]);
    expect(gotV.every((m) => m.vchannel === V2 || m.vchannel === '')).toBe(true);

    const gte = await wal.subscribe({ policy: { type: 'all' }, filters: { ...onlyInserts, timetickGte: rs[8]!.timetick } });
    const gotGte = await collect(gte, (g) => g.filter((m) => m.type === 'Insert').length === 2);
    gte.close();
    expect(gotGte.filter((m) => m.type === 'Insert').map((m) => m.id)).toEqual([rs[8]!.id, rs[9]!.id]);

    await expect(wal.subscribe({ policy: { type: 'all' }, filters: { types: ['TimeTick'] } })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });

  test('a reader catches up from the backend, switches to the buffer, falls back when evicted, and loses nothing', async () => {
    // A tiny buffer: a slow reader is evicted and must go back to the backend.
    const wal = await fx.open('p0', 1, { writeAheadBuffer: { capacityBytes: 2048, keepaliveMs: 60_000 }, timetickIntervalMs: 60_000 });
    await wal.append(createCollection(V, 1));
    const first = await Promise.all(Array.from({ length: 50 }, () => wal.append(insert(V, 1))));
    const sub = await wal.subscribe({ policy: { type: 'all' }, filters: { types: ['Insert'] }, credits: 4 });
    const inserts = (g: LogMessage[]): number => g.filter((m) => m.type === 'Insert').length;
    const got: LogMessage[] = await collect(sub, (g) => inserts(g) >= 50);
    await eventually(() => sub.currentMode === 'tail', 5000, 'reader tailing the buffer');
    // The reader stalls (its credits run out) while the writer moves far past the buffer's capacity.
    const second = await Promise.all(Array.from({ length: 200 }, () => wal.append(insert(V, 1))));
    expect(sub.buffered).toBeLessThanOrEqual(4);
    const expected = [...first, ...second].map((r) => r.id).sort();
    got.push(...(await collect(sub, (g) => inserts(got) + inserts(g) >= 250)));
    sub.close();
    const ids = got.filter((m) => m.type === 'Insert').map((m) => m.id);
    expect(ids).toEqual(expected);
    for (let i = 1; i < got.length; i++) expect(got[i]!.timetick > got[i - 1]!.timetick).toBe(true);
    expect(sub.switches.toTail).toBeGreaterThanOrEqual(1);
    expect(sub.switches.toCatchup).toBeGreaterThanOrEqual(1);
  });

  test('an append retried with the same idempotency key is written once, also after the pchannel moves to a new term', async () => {
    const w1 = await fx.open('p0', 1);
    await w1.append(createCollection(V, 1));
    const m = { ...insert(V, 1), idempotencyKey: 'k-1' };
    const [a, b] = await Promise.all([w1.append(m), w1.append(m)]); // the second while the first is in flight
    const c = await w1.append(m);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const w2 = await fx.open('p0', 2);
    const d = await w2.append(m);
    expect(d.id).toBe(a.id);
    expect(d.timetick).toBe(a.timetick);
    const e = await w2.append({ ...insert(V, 1), idempotencyKey: 'k-2' });
    const sub = await w2.subscribe({ policy: { type: 'all' }, filters: { types: ['Insert'] } });
    const got = await collect(sub, (g) => g.some((x) => x.id === e.id));
    sub.close();
    expect(got.filter((x) => x.type === 'Insert').map((x) => x.idempotencyKey)).toEqual(['k-1', 'k-2']);
  });

  test('close ends subscribers with ON_SHUTDOWN and refuses appends', async () => {
    const wal = await fx.open('p0', 1);
    await wal.append(createCollection(V, 1));
    const sub = await wal.subscribe({ policy: { type: 'latest' } });
    await wal.close();
    await expect(collect(sub, () => false, 2000)).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
    await expect(wal.append(insert(V, 1))).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
    await eventually(async () => (await wal.status()).state === 'closed');
  });
});
