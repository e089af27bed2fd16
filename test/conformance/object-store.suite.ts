/**
 * The one conformance suite every ObjectStore runs. An implementation's test file calls
 * `describeObjectStoreConformance('local', factory, traits)`; the factory returns a fresh, empty
 * store and a cleanup for what it created.
 *
 * What it checks: bytes round-trip exactly (binary, empty, 5 MiB, a view into a larger buffer) and
 * are copied on put and get; overwrite; head (size, etag, missing → undefined); list by prefix (the
 * exact set, UTF-8 byte order, partial-segment prefixes, more than 1000 keys); delete (and of a
 * missing key); deletePrefix (count and exact remainder); get of a missing key → ObjectNotFoundError;
 * ifAbsent refusal (and, where the store promises it, exactly one winner among concurrent creators);
 * concurrent puts to distinct keys; key validation; close.
 *
 * Seed: OBJECT_STORE_CONFORMANCE_SEED (default 20260102); it is in the test names.
 */
import { ErrorCode } from '../../runtime/errors';
import { type Random, seededRandom } from '../../runtime/clock';
import type { ObjectEntry, ObjectStore } from '../../storage/objects/object-store';
import { ObjectAlreadyExistsError, ObjectNotFoundError, isObjectAlreadyExists, isObjectNotFound } from '../../storage/objects/errors';

export interface ObjectStoreFixture {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

export interface ObjectStoreTraits {
  /** head() returns an etag. */
  hasEtag: boolean;
  /** Concurrent ifAbsent puts on one key: exactly one succeeds (false for S3's HEAD-then-PUT fallback). */
  atomicIfAbsent: boolean;
  /** Keys written for the pagination case (> 1000 crosses S3's page size). */
  manyKeys: number;
}

const SEED = Number(process.env.OBJECT_STORE_CONFORMANCE_SEED ?? 20260102);
const MIB = 1024 * 1024;

function randomBytes(random: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = random.int(2 ** 32);
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = (v >>> 24) & 0xff;
  }
  return out;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function collect(it: AsyncIterable<ObjectEntry>): Promise<ObjectEntry[]> {
  const out: ObjectEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export function describeObjectStoreConformance(name: string, factory: () => Promise<ObjectStoreFixture>, traits: ObjectStoreTraits): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    let fx: ObjectStoreFixture;
    let store: ObjectStore;

    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
    });

    afterEach(async () => {
      await fx.store.close();
      await fx.cleanup();
    });

    it(`round-trips binary, empty and 5 MiB objects byte for byte (seed ${SEED})`, async () => {
      const random = seededRandom(SEED);
      const allBytes = new Uint8Array(512).map((_, i) => i % 256);
      const big = randomBytes(random, 5 * MIB + 3);
      const objects = new Map<string, Uint8Array>([
        ['bin/all-256-values', allBytes],
        ['bin/random', randomBytes(random, 4099)],
        ['bin/empty', new Uint8Array(0)],
        ['bin/big', big],
      ]);
      for (const [k, v] of objects) await store.put(k, v);
      for (const [k, v] of objects) {
        const got = await store.get(k);
        expect(got).toBeInstanceOf(Uint8Array);
        expect(got.byteLength).toBe(v.byteLength);
        expect(Buffer.from(got).equals(Buffer.from(v))).toBe(true);
        expect(await store.head(k)).toMatchObject({ size: v.byteLength });
      }
    });

    it('stores only the bytes of a view, and copies on put and on get', async () => {
      const backing = text('xxxxHELLOyyyy');
      const view = backing.subarray(4, 9);
      await store.put('view', view);
      backing.fill(0); // the caller reuses its buffer after put
      const first = await store.get('view');
      expect(Buffer.from(first).toString()).toBe('HELLO');
      expect(first.byteOffset).toBe(0);
      expect(first.buffer.byteLength).toBe(5); // no view into a shared pool
      first.fill(0); // the caller scribbles over what it got
      expect(Buffer.from(await store.get('view')).toString()).toBe('HELLO');
    });

    it('puts an object given in parts as their concatenation (views, empty parts, no parts), create-only too', async () => {
      const random = seededRandom(SEED + 1);
      const backing = randomBytes(random, 3 * MIB);
      const parts = [backing.subarray(0, 10), new Uint8Array(0), backing.subarray(10, MIB + 7), text('-tail-'), backing.subarray(2 * MIB)];
      await store.put('parts/a', parts);
      expect(Buffer.from(await store.get('parts/a')).equals(Buffer.concat(parts))).toBe(true);
      expect(await store.head('parts/a')).toMatchObject({ size: Buffer.concat(parts).byteLength });
      await store.put('parts/a', []);
      expect((await store.get('parts/a')).byteLength).toBe(0);
      await store.put('parts/b', [text('one'), text('two')], { ifAbsent: true });
      await expect(store.put('parts/b', [text('three')], { ifAbsent: true })).rejects.toBeInstanceOf(ObjectAlreadyExistsError);
      expect(Buffer.from(await store.get('parts/b')).toString()).toBe('onetwo');
    });

    it('replaces an object on a plain put', async () => {
      await store.put('a/b', text('one'));
      await store.put('a/b', text('second value'));
      expect(Buffer.from(await store.get('a/b')).toString()).toBe('second value');
      expect(await store.head('a/b')).toMatchObject({ size: 12 });
    });

    it('heads: size and etag, undefined for a missing key', async () => {
      await store.put('h/one', text('12345'));
      const st = await store.head('h/one');
      expect(st?.size).toBe(5);
      if (traits.hasEtag) expect(typeof st?.etag).toBe('string');
      else expect(st?.etag).toBeUndefined();
      expect(await store.head('h/missing')).toBeUndefined();
      expect(await store.head('h')).toBeUndefined(); // a "directory" is no object
    });

    it('gets a missing key as ObjectNotFoundError (typed, not retriable)', async () => {
      await store.put('present/x', text('x'));
      for (const key of ['absent', 'present/y', 'present', 'present/x/z']) {
        const err: unknown = await store.get(key).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ObjectNotFoundError);
        expect(isObjectNotFound(err)).toBe(true);
        expect(err).toMatchObject({ code: ErrorCode.UNRECOVERABLE, retriable: false, details: { key, reason: 'not found' } });
      }
    });

    it('lists exactly the keys under a prefix, in UTF-8 byte order', async () => {
      const keys = [
        'c1/p1/s1/inserts.arrow',
        'c1/p1/s1/manifest.json',
        'c1/p1/s10/manifest.json',
        'c1/p1/s2/manifest.json',
        'c1/p1.x',
        'c1/p10/s1/manifest.json',
        'c1/with space/é/😀',
        'c1/with space/é/ÿ',
        'c1/with space/é/\uffff',
        'c1/with space/a+b%20c&d<e>\'"',
        'c2/p1/s1/manifest.json',
        'top',
      ];
      await Promise.all(keys.map((k, i) => store.put(k, new Uint8Array(i))));
      const sorted = [...keys].sort(byteOrder);

      const all = await collect(store.list(''));
      expect(all.map((e) => e.key)).toEqual(sorted);
      expect(all.map((e) => e.size)).toEqual(sorted.map((k) => keys.indexOf(k)));

      const expectPrefix = async (prefix: string): Promise<void> => {
        const got = (await collect(store.list(prefix))).map((e) => e.key);
        expect({ prefix, got }).toEqual({ prefix, got: sorted.filter((k) => k.startsWith(prefix)) });
      };
      for (const prefix of ['c1/', 'c1/p1/', 'c1/p1', 'c1/p1/s1', 'c1/p1/s1/', 'c1/with space/é/', 'c', 'c2/p1/s1/manifest.json', 'top', 'nothing/', 'c3']) {
        await expectPrefix(prefix);
      }
      expect(await collect(store.list('nothing/'))).toEqual([]);
    });

    it(`lists ${traits.manyKeys} keys across pages, each exactly once`, async () => {
      const keys = Array.from({ length: traits.manyKeys }, (_, i) => `many/${String(i).padStart(5, '0')}`);
      await pool(keys, 32, (k) => store.put(k, text(k)));
      await store.put('many-not-under-prefix', text('x'));
      const listed = await collect(store.list('many/'));
      expect(listed.map((e) => e.key)).toEqual(keys);
      expect(listed.every((e) => e.size === e.key.length)).toBe(true);
    });

    it('deletes: the key is gone, its neighbours stay, deleting a missing key succeeds', async () => {
      await store.put('d/a', text('a'));
      await store.put('d/b', text('b'));
      await store.put('d/sub/c', text('c'));
      await store.delete('d/a');
      await store.delete('d/sub/c');
      await expect(store.get('d/a')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await store.head('d/sub/c')).toBeUndefined();
      expect((await collect(store.list('d/'))).map((e) => e.key)).toEqual(['d/b']);
      await store.delete('d/a');
      await store.delete('never/was/here');
      // the key can be written again after a delete, also create-only
      await store.put('d/sub/c', text('again'), { ifAbsent: true });
      expect(Buffer.from(await store.get('d/sub/c')).toString()).toBe('again');
    });

    it('deletePrefix removes exactly the keys under the prefix and counts them', async () => {
      const keys = ['x/1/a', 'x/1/b', 'x/1/deep/c', 'x/10/a', 'x/2/a', 'y/1/a'];
      await Promise.all(keys.map((k) => store.put(k, text(k))));
      expect(await store.deletePrefix('x/1/')).toBe(3);
      expect((await collect(store.list(''))).map((e) => e.key)).toEqual(['x/10/a', 'x/2/a', 'y/1/a']);
      expect(await store.deletePrefix('x/1')).toBe(1); // a plain string prefix: takes x/10/a
      expect(await store.deletePrefix('nothing/')).toBe(0);
      expect((await collect(store.list(''))).map((e) => e.key)).toEqual(['x/2/a', 'y/1/a']);
      expect(Buffer.from(await store.get('y/1/a')).toString()).toBe('y/1/a');
    });

    it(`deletePrefix removes more than one page (${traits.manyKeys} keys)`, async () => {
      const keys = Array.from({ length: traits.manyKeys }, (_, i) => `bulk/${i}`);
      await pool(keys, 32, (k) => store.put(k, text('v')));
      await store.put('bulkier', text('stays'));
      expect(await store.deletePrefix('bulk/')).toBe(traits.manyKeys);
      expect((await collect(store.list(''))).map((e) => e.key)).toEqual(['bulkier']);
    });

    it('refuses a create-only put on an existing key and keeps the object', async () => {
      await store.put('once', text('first'), { ifAbsent: true });
      const err: unknown = await store.put('once', text('second'), { ifAbsent: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ObjectAlreadyExistsError);
      expect(isObjectAlreadyExists(err)).toBe(true);
      expect(err).toMatchObject({ code: ErrorCode.IGNORED_OPERATION, retriable: false, details: { key: 'once', reason: 'already exists' } });
      expect(Buffer.from(await store.get('once')).toString()).toBe('first');
      // a plain put still replaces it
      await store.put('once', text('third'));
      expect(Buffer.from(await store.get('once')).toString()).toBe('third');
    });

    if (traits.atomicIfAbsent) {
      it('lets exactly one of 16 concurrent create-only puts win', async () => {
        const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => store.put('race', text(`writer-${i}`), { ifAbsent: true })));
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(isObjectAlreadyExists(r.reason)).toBe(true);
        expect(Buffer.from(await store.get('race')).toString()).toBe(`writer-${winners[0]}`);
      });
    }

    it('takes 64 concurrent puts to distinct keys and reads each back exactly', async () => {
      const random = seededRandom(SEED + 1);
      const objects = Array.from({ length: 64 }, (_, i) => ({ key: `conc/${i % 8}/${i}`, data: randomBytes(random, 1 + random.int(70_000)) }));
      await Promise.all(objects.map((o) => store.put(o.key, o.data)));
      const got = await Promise.all(objects.map((o) => store.get(o.key)));
      got.forEach((g, i) => {
        const want = objects[i]!;
        expect({ key: want.key, length: g.byteLength, same: Buffer.from(g).equals(Buffer.from(want.data)) }).toEqual({ key: want.key, length: want.data.byteLength, same: true });
      });
      expect((await collect(store.list('conc/'))).map((e) => e.key)).toEqual(objects.map((o) => o.key).sort(byteOrder));
    });

    it('rejects invalid keys and prefixes with INVALID_ARGUMENT', async () => {
      for (const key of ['', '/abs', 'trailing/', 'a//b', 'a/./b', 'a/../b', '..', 'back\\slash', 'nul\u0000', '.walstream/tmp/x', 'x'.repeat(1025)]) {
        await expect(store.put(key, text('x'))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        await expect(store.get(key)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        await expect(store.head(key)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        await expect(store.delete(key)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      }
      for (const prefix of ['/abs', 'a//b', 'a/../', '.walstream/']) {
        await expect(collect(store.list(prefix))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        await expect(store.deletePrefix(prefix)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      }
      expect(await collect(store.list(''))).toEqual([]); // nothing of the store's own shows up
    });

    it('close is idempotent and later calls fail with ON_SHUTDOWN', async () => {
      await store.put('k', text('v'));
      await Promise.all([store.close(), store.close()]);
      await store.close();
      await expect(store.get('k')).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await expect(store.put('k2', text('v'))).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await expect(collect(store.list(''))).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
    });
  });
}
