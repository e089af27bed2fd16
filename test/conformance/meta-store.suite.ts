/**
 * The one conformance suite every MetaStore runs (storage/meta/meta-store.ts). An implementation's
 * test file calls `describeMetaStoreConformance('redis', factory)`; the factory returns a fresh,
 * empty store (plus, where possible, peers: more stores on the same state, e.g. other connections),
 * a way to let lease time pass, and a cleanup.
 *
 * What it checks: versions on get/put/cas/delete (no reuse across delete and re-create); list by
 * prefix (exact keys, order, glob characters taken literally); the pchannel namespace is written only
 * by casOwnerWrite; CAS races (exactly one of N winners); leases (keys vanish after the TTL without
 * renew, stay with renew, go at once on revoke, delete events); terms (bump is a CAS, owner writes at
 * a stale term are refused with CHANNEL_FENCED and write nothing, writes racing a bump either land
 * before it or are fenced); nextId (disjoint ranges under concurrency); watches (puts and deletes in
 * order, only under the prefix, none after unsubscribe); version counters; leader election (one
 * leader, growing epochs, a new leader after expiry or resignation, stale-epoch writes refused);
 * close idempotent. Waiting is always a poll against a deadline, never a bare sleep.
 */
import { ChannelFencedError, ErrorCode, isFenced, type StreamingError } from '../../runtime/errors';
import { LeadershipLostError, LeaseLostError } from '../../storage/meta/errors';
import { pchannelKey, pchannelPrefix, type MetaStore, type VersionedValue, type WatchEvent } from '../../storage/meta/meta-store';

export interface MetaStoreFixture {
  /** The store under test, empty. */
  readonly store: MetaStore;
  /** More stores on the same state (other connections or processes); [] where only one may exist. */
  readonly peers: readonly MetaStore[];
  /** TTL of the leases and leaderships the suite creates (ms). */
  readonly ttlMs: number;
  /** Lets `ms` of lease time pass: a manual clock advances at once, a real one is waited for. */
  passTime(ms: number): Promise<void>;
  /** Deadline (real ms) for effects that follow asynchronously (events, expiry reaping). */
  readonly settleMs: number;
  cleanup(): Promise<void>;
}

export function describeMetaStoreConformance(name: string, factory: () => Promise<MetaStoreFixture>): void {
  describe(`MetaStore conformance: ${name}`, () => {
    let fx: MetaStoreFixture;
    const all = (): MetaStore[] => [fx.store, ...fx.peers];
    const pick = (i: number): MetaStore => all()[i % all().length]!;
    const other = (): MetaStore => fx.peers[0] ?? fx.store;

    beforeEach(async () => {
      fx = await factory();
    });

    afterEach(async () => {
      if (!fx) return;
      for (const s of all()) {
        await s.close();
        await s.close(); // idempotent
      }
      await fx.cleanup();
    });

    it('get/put/cas/delete track versions and never reuse one across delete and re-create', async () => {
      const s = fx.store;
      expect(await s.get('kv/a')).toBeUndefined();

      const v1 = await s.cas('kv/a', 0, 'one');
      expect(v1).toBeGreaterThan(0);
      expect(await s.get('kv/a')).toEqual({ value: 'one', version: v1 });
      expect(await s.cas('kv/a', 0, 'must be absent')).toBeUndefined();

      const v2 = (await s.cas('kv/a', v1!, 'two'))!;
      expect(v2).toBeGreaterThan(v1!);
      expect(await s.cas('kv/a', v1!, 'stale')).toBeUndefined();
      expect(await s.get('kv/a')).toEqual({ value: 'two', version: v2 });

      const v3 = await s.put('kv/a', 'three');
      expect(v3).toBeGreaterThan(v2);
      expect(await s.delete('kv/a', v2)).toBe(false);
      expect(await s.get('kv/a')).toEqual({ value: 'three', version: v3 });
      expect(await s.delete('kv/a', v3)).toBe(true);
      expect(await s.get('kv/a')).toBeUndefined();
      expect(await s.delete('kv/a')).toBe(false);
      expect(await s.cas('kv/a', v3, 'gone')).toBeUndefined();

      // Re-created: a new version above every earlier one, so no old CAS can land (no ABA).
      const v4 = await s.put('kv/a', 'four');
      expect(v4).toBeGreaterThan(v3);
      for (const old of [v1!, v2, v3]) expect(await s.cas('kv/a', old, 'aba')).toBeUndefined();
      expect(await s.delete('kv/a')).toBe(true);

      // Values are opaque strings: empty, unicode, JSON with quotes and newlines.
      const odd = ['', 'π ≈ 3.14 — 😀', JSON.stringify({ a: '"q"\n\\', n: [1, 2] })];
      for (const [i, value] of odd.entries()) {
        const v = await s.put(`kv/odd/${i}`, value);
        for (const peer of all()) expect(await peer.get(`kv/odd/${i}`)).toEqual({ value, version: v });
      }
    });

    it('list returns exactly the live keys under a prefix, in key order, glob characters literal', async () => {
      const s = fx.store;
      const written = new Map<string, VersionedValue>();
      for (const key of ['ls/b', 'ls/a', 'ls/a/1', 'ls/c*[x]?', 'ls/c-plain', 'lsx', 'other/a']) {
        written.set(key, { value: `v:${key}`, version: await s.put(key, `v:${key}`) });
      }
      expect(await s.delete('ls/c-plain')).toBe(true);

      const listed = await other().list('ls/');
      expect([...listed.keys()]).toEqual(['ls/a', 'ls/a/1', 'ls/b', 'ls/c*[x]?']);
      for (const [k, v] of listed) expect(v).toEqual(written.get(k));

      expect([...(await s.list('ls/c*')).keys()]).toEqual(['ls/c*[x]?']);
      expect([...(await s.list('ls')).keys()]).toEqual(['ls/a', 'ls/a/1', 'ls/b', 'ls/c*[x]?', 'lsx']);
      expect((await s.list('ls/zzz')).size).toBe(0);
      expect((await s.list('*')).size).toBe(0);

      // Owner data is listed like any key, also by prefixes that span pchannels.
      await s.bumpTerm('lp-1', 0);
      const ov = await s.casOwnerWrite('lp-1', 1, [{ key: pchannelKey('lp-1', 'checkpoint'), value: 'cp' }]);
      expect(await s.list(pchannelPrefix('lp-1'))).toEqual(new Map([[pchannelKey('lp-1', 'checkpoint'), { value: 'cp', version: ov }]]));
      expect([...(await s.list('pchannel/lp')).keys()]).toEqual([pchannelKey('lp-1', 'checkpoint')]);
      const everything = await s.list('');
      expect([...everything.keys()]).toEqual(['ls/a', 'ls/a/1', 'ls/b', 'ls/c*[x]?', 'lsx', 'other/a', pchannelKey('lp-1', 'checkpoint')]);
    });

    it('refuses plain writes to pchannel data and owner/leader writes outside their namespace', async () => {
      const s = fx.store;
      const key = pchannelKey('ns-1', 'checkpoint');
      const invalid = { code: ErrorCode.INVALID_ARGUMENT };
      await expect(s.put(key, 'x')).rejects.toMatchObject(invalid);
      await expect(s.cas(key, 0, 'x')).rejects.toMatchObject(invalid);
      await expect(s.delete(key)).rejects.toMatchObject(invalid);
      await s.bumpTerm('ns-1', 0);
      await expect(s.casOwnerWrite('ns-1', 1, [{ key: 'plain/x', value: 'x' }])).rejects.toMatchObject(invalid);
      await expect(s.casOwnerWrite('ns-1', 1, [{ key: pchannelKey('ns-2', 'x'), value: 'x' }])).rejects.toMatchObject(invalid);
      await expect(s.casOwnerWrite('ns-1', 1, [])).rejects.toMatchObject(invalid);
      await expect(s.casOwnerWrite('ns-1', 1, [{ key, value: 'a' }, { key, value: 'b' }])).rejects.toMatchObject(invalid);
      const leadership = (await s.campaign('ns-election', 'c', fx.ttlMs))!;
      await expect(s.casLeaderWrite('ns-election', leadership.epoch, [{ key, value: 'x' }])).rejects.toMatchObject(invalid);
      expect(await s.get(key)).toBeUndefined();
      expect((await s.list('plain/')).size).toBe(0);

      await expect(s.put('', 'x')).rejects.toMatchObject(invalid);
      await expect(s.grantLease('node', 0)).rejects.toMatchObject(invalid);
      await expect(s.nextId('segment', 0)).rejects.toMatchObject(invalid);
      await expect(s.campaign('e', 'c', -5)).rejects.toMatchObject(invalid);
      await expect(s.bumpTerm('bad/name', 0)).rejects.toMatchObject(invalid);
      await expect(s.cas('kv/x', -1, 'x')).rejects.toMatchObject(invalid);
    });

    it('CAS races: exactly one of N concurrent writers at the same version wins', async () => {
      const N = 24;
      // Create race: everyone expects "absent".
      const created = await Promise.all(Array.from({ length: N }, (_, i) => pick(i).cas('race/k', 0, `c${i}`)));
      const createWinners = created.flatMap((v, i) => (v === undefined ? [] : [{ v, i }]));
      expect(createWinners).toHaveLength(1);
      const base = createWinners[0]!;
      expect(await fx.store.get('race/k')).toEqual({ value: `c${base.i}`, version: base.v });

      // Update race at that version, three rounds.
      let version = base.v;
      for (let round = 0; round < 3; round++) {
        const results = await Promise.all(Array.from({ length: N }, (_, i) => pick(i + round).cas('race/k', version, `r${round}w${i}`)));
        const winners = results.flatMap((v, i) => (v === undefined ? [] : [{ v, i }]));
        expect(winners).toHaveLength(1);
        const w = winners[0]!;
        expect(w.v).toBeGreaterThan(version);
        expect(await fx.store.get('race/k')).toEqual({ value: `r${round}w${w.i}`, version: w.v });
        version = w.v;
      }
    });

    it('leases: renew keeps attached keys, without renew they vanish after the TTL', async () => {
      const s = fx.store;
      const ttl = fx.ttlMs;
      const lease = await s.grantLease('node-1', ttl);
      const second = await s.grantLease('node-1', ttl);
      expect(second.id).not.toBe(lease.id);
      await second.revoke();

      const v = await s.put('nodes/1', 'addr-1', { lease });
      expect(await s.get('nodes/1')).toEqual({ value: 'addr-1', version: v, lease: lease.id });
      const plain = await s.put('nodes/plain', 'no lease');
      const rec = new Recorder();
      const off = await s.watch('nodes/', rec.push);

      // Renewed every third of the TTL for two TTLs: the key stays.
      for (let i = 0; i < 6; i++) {
        await fx.passTime(Math.floor(ttl / 3));
        expect(await lease.renew()).toBe(true);
        expect(await s.get('nodes/1')).toEqual({ value: 'addr-1', version: v, lease: lease.id });
      }

      // No more renewals: gone once the TTL has passed, with a delete event.
      await fx.passTime(ttl + 1);
      await eventually('nodes/1 to vanish', async () => (await s.get('nodes/1')) === undefined, fx.settleMs);
      expect(await lease.renew()).toBe(false);
      expect(await other().list('nodes/')).toEqual(new Map([['nodes/plain', { value: 'no lease', version: plain }]]));
      await rec.waitFor('delete event of nodes/1', (e) => e.type === 'delete' && e.key === 'nodes/1', fx.settleMs);
      const del = rec.events.find((e) => e.type === 'delete');
      expect(del).toEqual({ type: 'delete', key: 'nodes/1', version: expect.any(Number) });
      expect((del as { version: number }).version).toBeGreaterThan(v);
      expect(rec.events.filter((e) => e.type !== 'resync')).toHaveLength(1);

      const err = await s.put('nodes/2', 'x', { lease }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseLostError);
      expect(err).toMatchObject({ code: ErrorCode.UNRECOVERABLE, retriable: false });
      expect(await s.get('nodes/2')).toBeUndefined();
      await off();
    });

    it('leases: revoke deletes the attached keys at once; an overwritten key is detached', async () => {
      const s = fx.store;
      const lease = await s.grantLease('node-2', fx.ttlMs);
      const rec = new Recorder();
      const off = await other().watch('reg/', rec.push);
      await s.put('reg/a', 'a', { lease });
      await s.put('reg/b', 'b', { lease });
      await s.cas('reg/c', 0, 'c', { lease });
      const vc = await s.put('reg/c', 'c-detached'); // no lease any more

      await lease.revoke();
      expect(await s.get('reg/a')).toBeUndefined();
      expect(await s.get('reg/b')).toBeUndefined();
      expect(await s.get('reg/c')).toEqual({ value: 'c-detached', version: vc });
      expect(await lease.renew()).toBe(false);
      await lease.revoke(); // idempotent
      await expect(s.put('reg/d', 'd', { lease })).rejects.toBeInstanceOf(LeaseLostError);

      await rec.waitFor('delete events of reg/a and reg/b', () => rec.deletes().length >= 2, fx.settleMs);
      expect(rec.deletes().sort()).toEqual(['reg/a', 'reg/b']);
      expect(rec.puts()).toEqual(['reg/a', 'reg/b', 'reg/c', 'reg/c']);
      await off();
    });

    it('terms: bumpTerm is a CAS; owner writes at a stale term are fenced and write nothing', async () => {
      const s = fx.store;
      const p = 'pch-1';
      const checkpoint = pchannelKey(p, 'checkpoint');
      const segment = pchannelKey(p, 'segments/7');
      expect(await s.pchannelTerm(p)).toBe(0);
      await expect(s.casOwnerWrite(p, 1, [{ key: checkpoint, value: 'x' }])).rejects.toBeInstanceOf(ChannelFencedError);

      expect(await s.bumpTerm(p, 0)).toBe(1);
      expect(await s.bumpTerm(p, 0)).toBeUndefined();
      const bumps = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).bumpTerm(p, 1)));
      expect(bumps.filter((t) => t !== undefined)).toEqual([2]);
      for (const peer of all()) expect(await peer.pchannelTerm(p)).toBe(2);

      const v = await s.casOwnerWrite(p, 2, [
        { key: checkpoint, value: 'cp-1' },
        { key: segment, value: 'seg-7' },
      ]);
      expect(await other().get(checkpoint)).toEqual({ value: 'cp-1', version: v });
      expect(await other().get(segment)).toEqual({ value: 'seg-7', version: v });

      // A new owner: the bump is the fence. The old owner (term 2) writes nothing any more.
      expect(await other().bumpTerm(p, 2)).toBe(3);
      const late = pchannelKey(p, 'segments/8');
      const err = (await s.casOwnerWrite(p, 2, [{ key: checkpoint, value: 'late' }, { key: late, value: 'late' }]).catch((e: unknown) => e)) as StreamingError;
      expect(err).toBeInstanceOf(ChannelFencedError);
      expect(isFenced(err)).toBe(true);
      expect(err.retriable).toBe(false);
      expect(err.details).toMatchObject({ pchannel: p, term: 2, currentTerm: 3 });
      await expect(s.casOwnerWrite(p, 4, [{ key: late, value: 'future' }])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      expect(await s.get(checkpoint)).toEqual({ value: 'cp-1', version: v });
      expect(await s.get(late)).toBeUndefined();

      // The current owner writes and deletes in one batch with one version.
      const v2 = await other().casOwnerWrite(p, 3, [
        { key: segment, delete: true },
        { key: checkpoint, value: 'cp-2' },
      ]);
      expect(v2).toBeGreaterThan(v);
      expect(await s.list(pchannelPrefix(p))).toEqual(new Map([[checkpoint, { value: 'cp-2', version: v2 }]]));
      expect(await s.pchannelTerm('pch-untouched')).toBe(0);
    });

    it('terms: owner writes racing a bump either land before it or are fenced', async () => {
      const p = 'pch-race';
      await fx.store.bumpTerm(p, 0);
      const N = 40;
      const writes = Array.from({ length: N }, (_, i) =>
        pick(i)
          .casOwnerWrite(p, 1, [{ key: pchannelKey(p, `k/${i}`), value: `w${i}` }])
          .then(
            (version) => ({ i, version }),
            (e: unknown) => {
              if (!isFenced(e)) throw e;
              return { i, version: undefined };
            },
          ),
      );
      const bump = other().bumpTerm(p, 1);
      const results = await Promise.all(writes);
      expect(await bump).toBe(2);

      const listed = await fx.store.list(pchannelPrefix(p));
      const landed = results.filter((r) => r.version !== undefined);
      expect(listed.size).toBe(landed.length);
      for (const r of results) {
        const entry = listed.get(pchannelKey(p, `k/${r.i}`));
        if (r.version === undefined) expect(entry).toBeUndefined();
        else expect(entry).toEqual({ value: `w${r.i}`, version: r.version });
      }
      await expect(fx.store.casOwnerWrite(p, 1, [{ key: pchannelKey(p, 'k/after'), value: 'x' }])).rejects.toBeInstanceOf(ChannelFencedError);
    });

    it('nextId hands out disjoint ranges under concurrency, starting at 1', async () => {
      const counts = Array.from({ length: 40 }, (_, i) => 1 + (i % 3));
      const firsts = await Promise.all(counts.map((c, i) => pick(i).nextId('segment', c)));
      const ids = firsts.flatMap((first, i) => Array.from({ length: counts[i]! }, (_, k) => first + k));
      const total = counts.reduce((a, b) => a + b, 0);
      expect(ids).toHaveLength(total);
      expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      expect(await fx.store.nextId('segment')).toBe(total + 1);
      expect(await other().nextId('other-counter')).toBe(1);
    });

    it('watch delivers puts and deletes under its prefix in order, and nothing after unsubscribe', async () => {
      const a = new Recorder();
      const b = new Recorder();
      const offA = await fx.store.watch('w/', a.push);
      const offB = await other().watch('w/', b.push);
      const writer = other();

      const v1 = await writer.put('w/x', '1');
      const v2 = await writer.put('w/y', '2');
      await writer.put('wz', 'not under w/');
      await writer.put('other/z', 'not under w/');
      const v3 = await writer.put('w/x', '3');
      expect(await writer.delete('w/y')).toBe(true);

      const expected = [
        { type: 'put', key: 'w/x', value: '1', version: v1 },
        { type: 'put', key: 'w/y', value: '2', version: v2 },
        { type: 'put', key: 'w/x', value: '3', version: v3 },
        { type: 'delete', key: 'w/y', version: expect.any(Number) },
      ];
      for (const r of [a, b]) {
        await r.waitFor('4 events', () => r.changes().length >= 4, fx.settleMs);
        expect(r.changes()).toEqual(expected);
        expect((r.changes()[3] as { version: number }).version).toBeGreaterThan(v3);
      }

      // Owner writes are watched like any change.
      const ownerRec = new Recorder();
      const offOwner = await fx.store.watch(pchannelPrefix('pw-1'), ownerRec.push);
      await writer.bumpTerm('pw-1', 0);
      const ov = await writer.casOwnerWrite('pw-1', 1, [{ key: pchannelKey('pw-1', 'checkpoint'), value: 'cp' }]);
      await ownerRec.waitFor('owner write event', () => ownerRec.changes().length >= 1, fx.settleMs);
      expect(ownerRec.changes()).toEqual([{ type: 'put', key: pchannelKey('pw-1', 'checkpoint'), value: 'cp', version: ov }]);

      // After unsubscribe, nothing: b (still subscribed, same order of delivery) sees the next write, a does not.
      await offA();
      await offA(); // idempotent
      const v5 = await writer.put('w/after', '5');
      await b.waitFor('w/after', () => b.changes().length >= 5, fx.settleMs);
      expect(b.changes()[4]).toEqual({ type: 'put', key: 'w/after', value: '5', version: v5 });
      expect(a.changes()).toHaveLength(4);
      await offB();
      await offOwner();
    });

    it('version counters: bumps are delivered to watchers, in increasing order', async () => {
      const s = fx.store;
      expect(await s.getVersion('assignment')).toBe(0);
      const seen: number[] = [];
      const off = await s.watchVersion('assignment', (v) => seen.push(v));
      expect(seen).toEqual([0]);

      const bumper = other();
      expect(await bumper.bumpVersion('assignment')).toBe(1);
      expect(await bumper.bumpVersion('assignment')).toBe(2);
      expect(await bumper.bumpVersion('assignment')).toBe(3);
      await eventually('version 3 delivered', () => seen.at(-1) === 3, fx.settleMs);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
      expect(await s.getVersion('assignment')).toBe(3);
      expect(await s.getVersion('other-version')).toBe(0);

      const late: number[] = [];
      const offLate = await s.watchVersion('assignment', (v) => late.push(v));
      expect(late).toEqual([3]);
      await off();
      expect(await bumper.bumpVersion('assignment')).toBe(4);
      await eventually('version 4 delivered to the late watcher', () => late.at(-1) === 4, fx.settleMs);
      expect(seen.at(-1)).toBe(3);
      await offLate();
    });

    it('election: one leader, a greater epoch for each new one, stale-epoch writes refused', async () => {
      const s = fx.store;
      const ttl = fx.ttlMs;
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => pick(i).campaign('coord', `cand-${i}`, ttl)));
      const leaders = results.filter((l) => l !== undefined);
      expect(leaders).toHaveLength(1);
      const first = leaders[0]!;
      expect(first.epoch).toBeGreaterThanOrEqual(1);
      expect(await other().leader('coord')).toEqual({ candidateId: first.candidateId, epoch: first.epoch });
      expect(await s.campaign('coord', first.candidateId, ttl)).toBeUndefined();

      const v = await s.casLeaderWrite('coord', first.epoch, [
        { key: 'assign/p1', value: 'n1' },
        { key: 'assign/p2', value: 'n2' },
      ]);
      expect(await other().list('assign/')).toEqual(
        new Map([
          ['assign/p1', { value: 'n1', version: v }],
          ['assign/p2', { value: 'n2', version: v }],
        ]),
      );

      // Renewed: nobody else wins.
      for (let i = 0; i < 4; i++) {
        await fx.passTime(Math.floor(ttl / 3));
        expect(await first.renew()).toBe(true);
        expect(await other().campaign('coord', 'usurper', ttl)).toBeUndefined();
      }

      // Not renewed: after the TTL a new candidate wins with a greater epoch.
      await fx.passTime(ttl + 1);
      const second = await eventually('a new leader', () => other().campaign('coord', 'cand-new', ttl), fx.settleMs);
      expect(second.epoch).toBeGreaterThan(first.epoch);
      expect(await s.leader('coord')).toEqual({ candidateId: 'cand-new', epoch: second.epoch });
      expect(await first.renew()).toBe(false);

      const err = await s.casLeaderWrite('coord', first.epoch, [{ key: 'assign/p1', value: 'stale' }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeadershipLostError);
      expect(err).toMatchObject({ code: ErrorCode.UNRECOVERABLE, retriable: false });
      expect(await s.get('assign/p1')).toEqual({ value: 'n1', version: v });

      const v2 = await other().casLeaderWrite('coord', second.epoch, [{ key: 'assign/p2', delete: true }]);
      expect(v2).toBeGreaterThan(v);
      expect([...(await s.list('assign/')).keys()]).toEqual(['assign/p1']);

      // Resign: only the holder's resign counts; afterwards the next candidate wins at once.
      await first.resign();
      expect(await s.leader('coord')).toEqual({ candidateId: 'cand-new', epoch: second.epoch });
      await second.resign();
      await second.resign();
      expect(await s.leader('coord')).toBeUndefined();
      const third = await s.campaign('coord', 'cand-3', ttl);
      expect(third?.epoch).toBeGreaterThan(second.epoch);
      await expect(other().casLeaderWrite('coord', second.epoch, [{ key: 'assign/p1', value: 'x' }])).rejects.toBeInstanceOf(LeadershipLostError);
      expect(await s.campaign('other-election', 'cand-3', ttl)).toBeDefined();
    });

    it('close is idempotent and later calls reject with ON_SHUTDOWN', async () => {
      const s = fx.store;
      await s.put('c/k', 'v');
      await Promise.all([s.close(), s.close()]);
      await s.close();
      await expect(s.get('c/k')).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await expect(s.put('c/k', 'x')).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await expect(s.bumpTerm('pch-c', 0)).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      for (const peer of fx.peers) expect(await peer.get('c/k')).toMatchObject({ value: 'v' });
    });
  });
}

/** Collects watch events; `waitFor` polls it against a deadline. */
export class Recorder {
  readonly events: WatchEvent[] = [];
  readonly push = (e: WatchEvent): void => {
    this.events.push(e);
  };

  changes(): WatchEvent[] {
    return this.events.filter((e) => e.type !== 'resync');
  }

  puts(): string[] {
    return this.events.flatMap((e) => (e.type === 'put' ? [e.key] : []));
  }

  deletes(): string[] {
    return this.events.flatMap((e) => (e.type === 'delete' ? [e.key] : []));
  }

  async waitFor(what: string, pred: (e: WatchEvent) => boolean, timeoutMs: number): Promise<void>;
  async waitFor(what: string, pred: () => boolean, timeoutMs: number): Promise<void>;
  async waitFor(what: string, pred: ((e: WatchEvent) => boolean) | (() => boolean), timeoutMs: number): Promise<void> {
    const test = (): boolean => (pred.length === 0 ? (pred as () => boolean)() : this.events.some(pred as (e: WatchEvent) => boolean));
    await eventually(what, () => test() || undefined, timeoutMs, () => JSON.stringify(this.events));
  }
}

/**
 * Polls `probe` until it returns something other than undefined/false, or fails after `timeoutMs`
 * (real time) naming what it waited for.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  describeState?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeState ? `; state: ${describeState()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
