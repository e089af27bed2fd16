/**
 * Unit tests of the Redis Streams WAL backend (storage/wal/redis/) beyond the conformance suite:
 * id mapping, key layout, binary payloads, one script call per batch, fencing between two backend
 * instances, prompt abort of a blocked tail read, the reader cap, and a kill -9 restart of a
 * redis-server with `appendfsync always` (started by the test on a free port in a temp dir).
 *
 * Uses the Redis at WALSTREAM_TEST_REDIS_URL (default redis://127.0.0.1:6379) with a fresh key
 * prefix, deleted afterwards; fails (not skips) when it does not answer.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import type { LogEntry, WalLog } from '../../storage/wal/backend';
import { ErrorCode } from '../../runtime/errors';
import { seededRandom } from '../../runtime/clock';
import { RedisWalBackend, type RedisWalBackendOptions } from '../../storage/wal/redis/redis-backend';
import { WalKeys } from '../../storage/wal/redis/keys';
import { FIRST_READ_COUNT, READ_BUDGET_BYTES } from '../../storage/wal/redis/redis-reader';
import { MetaKeys } from '../../storage/meta/redis/keys';
import {
  MAX_STREAM_ID,
  MIN_STREAM_ID,
  isRedisMessageId,
  predecessorStreamId,
  toMessageId,
  toStreamId,
} from '../../storage/wal/redis/stream-id';
import { TEST_REDIS_URL, connectTestRedis, deleteKeys } from '../support/test-redis';
import { freePort } from '../support/cluster-harness';

const REDIS_URL = TEST_REDIS_URL;
const RUN = `${process.pid}-${randomBytes(4).toString('hex')}`;
const U64_MAX = (1n << 64n) - 1n;
const encoder = new TextEncoder();
let prefixes = 0;

// ------------------------------------------------------------------------------------------------
// Id mapping (pure)
// ------------------------------------------------------------------------------------------------

describe('redis wal message ids', () => {
  const rnd = seededRandom(4242);
  /** A random u64 biased towards interesting magnitudes (small, around 2^32, 2^53, 2^64). */
  const u64 = (): bigint => {
    const hi = BigInt(Math.floor(rnd.next() * 2 ** 32));
    const lo = BigInt(Math.floor(rnd.next() * 2 ** 32));
    switch (rnd.int(5)) {
      case 0:
        return BigInt(rnd.int(3));
      case 1:
        return lo;
      case 2:
        return (1n << 53n) + BigInt(rnd.int(3)) - 1n;
      case 3:
        return U64_MAX - BigInt(rnd.int(3));
      default:
        return (hi << 32n) | lo;
    }
  };
  const cmp = (a: [bigint, bigint], b: [bigint, bigint]): number => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] === b[1] ? 0 : a[1] < b[1] ? -1 : 1);

  it('round-trips and orders like the stream (property over 5000 random id pairs)', () => {
    for (let i = 0; i < 5000; i++) {
      const a: [bigint, bigint] = [u64(), u64()];
      const b: [bigint, bigint] = [rnd.int(4) === 0 ? a[0] : u64(), u64()];
      const sa = `${a[0]}-${a[1]}`;
      const sb = `${b[0]}-${b[1]}`;
      const ia = toMessageId(sa);
      const ib = toMessageId(sb);
      expect(ia).toHaveLength(41);
      expect(isRedisMessageId(ia)).toBe(true);
      expect(toStreamId(ia)).toBe(sa);
      expect(toMessageId(toStreamId(ia))).toBe(ia);
      const stringOrder = ia < ib ? -1 : ia > ib ? 1 : 0;
      if (stringOrder !== cmp(a, b)) throw new Error(`order differs for ${sa} vs ${sb}: ${ia} vs ${ib}`);
    }
  });

  it('documents the format with an example and maps the extremes', () => {
    expect(toMessageId('1767225600000-3')).toBe('00000001767225600000-00000000000000000003');
    expect(toStreamId('00000001767225600000-00000000000000000003')).toBe('1767225600000-3');
    expect(toMessageId('0-1')).toBe('00000000000000000000-00000000000000000001');
    expect(toMessageId(MAX_STREAM_ID)).toBe('18446744073709551615-18446744073709551615');
    expect(toStreamId(toMessageId(MAX_STREAM_ID))).toBe(MAX_STREAM_ID);
  });

  it('refuses ids of other formats and out-of-range parts', () => {
    for (const bad of ['', 'abc', '0000000000000000000a', '1-2', '00000000000000000001-0000000000000000000', '18446744073709551616-00000000000000000000']) {
      expect(() => toStreamId(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
      expect(isRedisMessageId(bad)).toBe(false);
    }
    expect(() => toStreamId('0000000000000001' as string)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT })); // a local/memory id
    for (const bad of ['', '1', '1-', '-1', 'a-b', '18446744073709551616-0', '1-2-3']) {
      expect(() => toMessageId(bad)).toThrow(expect.objectContaining({ code: ErrorCode.UNRECOVERABLE }));
    }
  });

  it('computes the predecessor used to turn StartFrom into an exclusive XREAD position', () => {
    expect(predecessorStreamId('5-3')).toBe('5-2');
    expect(predecessorStreamId('5-0')).toBe(`4-${U64_MAX}`);
    expect(predecessorStreamId('0-1')).toBe(MIN_STREAM_ID);
    expect(predecessorStreamId('0-0')).toBe(MIN_STREAM_ID);
    expect(predecessorStreamId(MAX_STREAM_ID)).toBe(`${U64_MAX}-${U64_MAX - 1n}`);
  });
});

describe('redis wal keys', () => {
  /** The part of a key Redis Cluster hashes: the first non-empty {…}, else the whole key. */
  const hashTag = (key: string): string => {
    const open = key.indexOf('{');
    const close = open < 0 ? -1 : key.indexOf('}', open + 1);
    return close > open + 1 ? key.slice(open + 1, close) : key;
  };

  it('puts every key of a pchannel (and its meta-store keys) in one hash slot', () => {
    const keys = new WalKeys('walstream:wal:');
    const meta = new MetaKeys('walstream:meta:');
    for (const p of ['by-dev-rootcoord-dml_0', 'p:with:colons', 'odd}name', 'ü-☃']) {
      const tag = hashTag(keys.stream(p));
      expect(hashTag(keys.term(p))).toBe(tag);
      expect(hashTag(meta.term(p))).toBe(tag);
      expect(keys.stream(p).startsWith('walstream:wal:')).toBe(true);
    }
    expect(hashTag(keys.stream('a'))).not.toBe(hashTag(keys.stream('b')));
    expect(keys.stream('by-dev-rootcoord-dml_0')).toBe('walstream:wal:{p:by-dev-rootcoord-dml_0}:stream');
    expect(keys.term('by-dev-rootcoord-dml_0')).toBe('walstream:wal:{p:by-dev-rootcoord-dml_0}:term');
  });

  it('refuses a prefix with braces, glob characters or whitespace', () => {
    for (const bad of ['', 'a{b', 'a}b', 'a*', 'a b', 'a?']) {
      expect(() => new WalKeys(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Against the shared test Redis
// ------------------------------------------------------------------------------------------------

describe('redis wal backend on a live Redis', () => {
  let admin: Redis;
  const backends: RedisWalBackend[] = [];
  const prefixesUsed: string[] = [];

  beforeAll(async () => {
    admin = await connectTestRedis('The Redis WAL backend tests', REDIS_URL);
  });

  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
    for (const p of prefixesUsed.splice(0)) await deleteKeys(admin, `${p}*`);
  });

  afterAll(async () => {
    await admin?.quit();
  });

  async function backend(extra: Partial<RedisWalBackendOptions> = {}, keyPrefix = newPrefix()): Promise<RedisWalBackend> {
    if (!prefixesUsed.includes(keyPrefix)) prefixesUsed.push(keyPrefix);
    const b = await RedisWalBackend.connect({ redis: REDIS_URL, keyPrefix, ...extra });
    backends.push(b);
    return b;
  }

  it('stores and returns binary payloads byte for byte (every byte value, empty, 1 MiB)', async () => {
    const b = await backend({ readChunk: 50 });
    const log = await b.open({ name: 'binary', term: 1, accessMode: 'rw' });
    const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const singles = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));
    const rnd = seededRandom(7);
    const big = Uint8Array.from({ length: 1 << 20 }, () => rnd.int(256));
    const reversed = allBytes.slice().reverse();
    const utf8Breakers = Uint8Array.of(0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc, 0x00, 0x0d, 0x0a, 0x22, 0x5c);
    const records = [allBytes, new Uint8Array(0), ...singles, big, reversed, utf8Breakers];
    // A view into a larger buffer: only the view's bytes are written.
    const backing = Uint8Array.from({ length: 64 }, (_, i) => 255 - i);
    records.push(backing.subarray(10, 20));

    const ids = await log.append(records);
    expect(ids).toHaveLength(records.length);
    const all = await readN(log.read({ policy: { type: 'all' } }), records.length);
    expect(all.map((e) => e.id)).toEqual(ids);
    all.forEach((e, i) => expect(Buffer.from(e.data).equals(Buffer.from(records[i]!))).toBe(true));
    expect(all[all.length - 1]!.data).toHaveLength(10);

    // StartFrom / StartAfter in the middle of a chunk, and a tail read of binary data.
    const from = await readN(log.read({ policy: { type: 'startFrom', id: ids[100]! } }), 3);
    expect(from.map((e) => Array.from(e.data))).toEqual([[98], [99], [100]]);
    const after = await readN(log.read({ policy: { type: 'startAfter', id: ids[100]! } }), 1);
    expect(Array.from(after[0]!.data)).toEqual([99]);
    const ac = new AbortController();
    const tail = log.read({ policy: { type: 'latest' }, signal: ac.signal })[Symbol.asyncIterator]();
    const pending = tail.next();
    const [tailId] = await log.append([allBytes]);
    const got = await pending;
    expect(got.done).toBe(false);
    expect(got.value!.id).toBe(tailId);
    expect(Buffer.from(got.value!.data).equals(Buffer.from(allBytes))).toBe(true);
    ac.abort();
    expect(await tail.next()).toEqual({ done: true, value: undefined });
  });

  it('appends a batch with one script call: one command on the wire, one EVALSHA and N XADDs on the server', async () => {
    const client = new Redis(REDIS_URL, { connectionName: `walstream-unit-${RUN}` });
    client.on('error', () => undefined);
    const b = await backend({ redis: client });
    const monitor = await RawMonitor.start(REDIS_URL);
    try {
      const log = await b.open({ name: 'one-call', term: 1, accessMode: 'rw' });
      await log.append([bytes('warm-up')]); // the first call on a connection sends EVAL with the body
      // MONITOR lists commands in execution order, a little after they ran: sentinels mark the window.
      const seen: MonitorLine[] = [];
      monitor.onLine((line) => seen.push(line));
      const sentinelAt = async (text: string): Promise<number> => {
        await client.echo(text);
        await waitUntil(() => seen.some((s) => s.args[0]?.toLowerCase() === 'echo' && s.args[1] === text), 5000, `${text} in MONITOR`);
        return seen.findIndex((s) => s.args[0]?.toLowerCase() === 'echo' && s.args[1] === text);
      };
      const begin = await sentinelAt(`begin-${RUN}`);
      const sent: string[] = [];
      const original = client.sendCommand.bind(client);
      const spy = jest.spyOn(client, 'sendCommand').mockImplementation((command, stream) => {
        sent.push(command.name);
        return original(command, stream);
      });

      const batch = Array.from({ length: 64 }, (_, i) => bytes(`record-${i}-${'x'.repeat(500)}`));
      const ids = await log.append(batch);
      spy.mockRestore();
      expect(ids).toHaveLength(64);
      expect(sent).toEqual(['evalsha']);

      const end = await sentinelAt(`end-${RUN}`);
      const stream = b.keys.stream('one-call');
      const mine = seen.slice(begin + 1, end).filter((s) => s.args.includes(stream));
      const scriptCalls = mine.filter((s) => /^eval(sha)?$/i.test(s.args[0] ?? ''));
      const xadds = mine.filter((s) => s.args[0]?.toLowerCase() === 'xadd');
      expect(scriptCalls).toHaveLength(1);
      expect(scriptCalls[0]!.source).not.toBe('lua');
      expect(xadds).toHaveLength(64);
      expect(xadds.every((s) => s.source === 'lua')).toBe(true);
    } finally {
      monitor.close();
      await b.close();
      expect(client.status).toBe('ready'); // a given client is not quit by close()
      await client.quit();
    }
  });

  it('fences between two backend instances (two connections, as two processes would)', async () => {
    const keyPrefix = newPrefix();
    const a = await backend({}, keyPrefix);
    const b = await backend({}, keyPrefix);
    const p = 'two-instances';

    const a1 = await a.open({ name: p, term: 1, accessMode: 'rw' });
    const early = await a1.append([bytes('a1-0'), bytes('a1-1')]);
    const b2 = await b.open({ name: p, term: 2, accessMode: 'rw' });
    await expect(a1.append([bytes('a1-late')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED, details: { term: 1, currentTerm: 2 } });
    await expect(a1.truncate(early[1]!)).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    await expect(a.open({ name: p, term: 1, accessMode: 'rw' })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    // ro at any term leaves the term alone.
    const aro = await a.open({ name: p, term: 0, accessMode: 'ro' });
    expect(await admin.hget(a.keys.term(p), 'term')).toBe('2');

    // Appends racing a newer open: every batch either lands whole before the fence or not at all.
    const racing: Array<Promise<string[]>> = [];
    const a2 = await a.open({ name: p, term: 2, accessMode: 'rw' }); // same term: supersedes b2
    await expect(b2.append([bytes('b2-late')])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    for (let i = 0; i < 40; i++) racing.push(a2.append([bytes(`race-${i}-0`), bytes(`race-${i}-1`), bytes(`race-${i}-2`)]));
    const b3 = await b.open({ name: p, term: 3, accessMode: 'rw' });
    const [b3First] = await b3.append([bytes('b3-first')]);
    const settled = await Promise.allSettled(racing);
    const landed = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const s of settled) if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    for (const ids of landed) for (const id of ids) expect(id < b3First!).toBe(true);

    const all = await readN(aro.read({ policy: { type: 'all' } }), 2 + landed.length * 3 + 1);
    const text = all.map((e) => Buffer.from(e.data).toString());
    expect(text.slice(0, 2)).toEqual(['a1-0', 'a1-1']);
    expect(text[text.length - 1]).toBe('b3-first');
    // Only whole batches, and only ones that were acknowledged.
    const raceTexts = text.slice(2, -1);
    const ackedBatches = settled.flatMap((s, i) => (s.status === 'fulfilled' ? [i] : []));
    expect(raceTexts).toEqual(ackedBatches.flatMap((i) => [`race-${i}-0`, `race-${i}-1`, `race-${i}-2`]));
    expect(await admin.xlen(a.keys.stream(p))).toBe(all.length);
  });

  it('ends a blocked tail read promptly on abort and frees its connection', async () => {
    const connectionName = `walstream-unit-abort-${RUN}`;
    const client = new Redis(REDIS_URL, { connectionName });
    client.on('error', () => undefined);
    const b = await backend({ redis: client, tailBlockMs: 60_000 });
    const monitor = await RawMonitor.start(REDIS_URL);
    try {
      const log = await b.open({ name: 'abort', term: 1, accessMode: 'rw' });
      await log.append([bytes('before')]);
      const stream = b.keys.stream('abort');
      let xreads = 0;
      monitor.onLine(({ args }) => {
        if (args[0]?.toLowerCase() === 'xread' && args.includes(stream)) xreads++;
      });
      const ac = new AbortController();
      const it = log.read({ policy: { type: 'all' }, signal: ac.signal })[Symbol.asyncIterator]();
      expect(Buffer.from((await it.next()).value!.data).toString()).toBe('before');
      const pending = it.next();
      // The server has run the XREAD BLOCK (nothing to return, so it is blocked now).
      await waitUntil(() => xreads >= 1, 5000, 'the tail XREAD on the server');
      expect(b.tailConnections).toBe(1);
      expect(await tailClientsOnServer(admin, `${connectionName}-tail`)).toBe(1);

      const t0 = performance.now();
      ac.abort();
      expect(await pending).toEqual({ done: true, value: undefined });
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeLessThan(200); // not the 60 s BLOCK
      expect(b.tailConnections).toBe(0);
      await waitUntil(async () => (await tailClientsOnServer(admin, `${connectionName}-tail`)) === 0, 5000, 'the tail connection to close');
    } finally {
      monitor.close();
      await b.close();
      await client.quit();
    }
  });

  it('re-issues the tail XREAD after each BLOCK timeout and still delivers', async () => {
    const b = await backend({ tailBlockMs: 20 });
    const monitor = await RawMonitor.start(REDIS_URL);
    try {
      const log = await b.open({ name: 'reblock', term: 1, accessMode: 'rw' });
      const stream = b.keys.stream('reblock');
      let xreads = 0;
      monitor.onLine(({ args }) => {
        if (args[0]?.toLowerCase() === 'xread' && args.includes(stream)) xreads++;
      });
      const ac = new AbortController();
      const it = log.read({ policy: { type: 'latest' }, signal: ac.signal })[Symbol.asyncIterator]();
      const pending = it.next();
      await waitUntil(() => xreads >= 3, 5000, 'three XREAD BLOCK timeouts');
      const [id] = await log.append([bytes('late')]);
      const got = await pending;
      expect(got.value?.id).toBe(id);
      ac.abort();
      expect(await it.next()).toEqual({ done: true, value: undefined });
    } finally {
      monitor.close();
    }
  });

  it('caps tail readers at maxReaders with RESOURCE_EXHAUSTED, and frees the slot when one ends', async () => {
    const b = await backend({ maxReaders: 1 });
    const log = await b.open({ name: 'cap', term: 1, accessMode: 'rw' });
    const ac1 = new AbortController();
    const r1 = log.read({ policy: { type: 'latest' }, signal: ac1.signal })[Symbol.asyncIterator]();
    const p1 = r1.next();
    await waitUntil(() => b.tailConnections === 1, 5000, 'the first tail reader');
    const r2 = log.read({ policy: { type: 'latest' } })[Symbol.asyncIterator]();
    await expect(r2.next()).rejects.toMatchObject({ code: ErrorCode.RESOURCE_EXHAUSTED, retriable: true });
    // Catch-up reads need no tail connection.
    const [id] = await log.append([bytes('x')]);
    expect((await p1).value?.id).toBe(id);
    const ac3 = new AbortController();
    const r3 = log.read({ policy: { type: 'all' }, signal: ac3.signal })[Symbol.asyncIterator]();
    expect((await r3.next()).value?.id).toBe(id); // caught up without a tail connection
    await expect(r3.next()).rejects.toMatchObject({ code: ErrorCode.RESOURCE_EXHAUSTED }); // then it reached the tail
    ac1.abort();
    expect(await r1.next()).toEqual({ done: true, value: undefined });
    expect(b.tailConnections).toBe(0);
    const r4 = log.read({ policy: { type: 'all' } })[Symbol.asyncIterator]();
    expect((await r4.next()).value?.id).toBe(id);
    await log.close();
    expect(await r4.next()).toEqual({ done: true, value: undefined });
  });

  it('refuses appends and truncates in ro mode and bad records, and validates options', async () => {
    const b = await backend();
    const ro = await b.open({ name: 'ro', term: 5, accessMode: 'ro' });
    await expect(ro.append([bytes('x')])).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(ro.truncate(toMessageId('1-0'))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect(await admin.exists(b.keys.term('ro'), b.keys.stream('ro'))).toBe(0);
    const rw = await b.open({ name: 'ro', term: 5, accessMode: 'rw' });
    await expect(rw.append(['not bytes' as unknown as Uint8Array])).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(rw.truncate('0000000000000001')).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(rw.read({ policy: { type: 'startFrom', id: 'nope' } })[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
    await expect(RedisWalBackend.connect({ redis: 'http://x' })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(RedisWalBackend.connect({ redis: REDIS_URL, maxReaders: 0 })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(RedisWalBackend.connect({ redis: REDIS_URL, keyPrefix: 'a{b' })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });

  it('truncates with XTRIM MINID: entries below upTo go, upTo stays', async () => {
    const b = await backend();
    const log = await b.open({ name: 'trunc', term: 1, accessMode: 'rw' });
    const ids = await log.append(Array.from({ length: 10 }, (_, i) => bytes(`t${i}`)));
    await log.truncate(ids[4]!);
    expect(await log.oldestId()).toBe(ids[4]);
    expect(await admin.xlen(b.keys.stream('trunc'))).toBe(6);
    await log.truncate(ids[2]!); // below the oldest: nothing changes
    expect(await log.oldestId()).toBe(ids[4]);
    const rest = await readN(log.read({ policy: { type: 'startFrom', id: ids[0]! } }), 6);
    expect(rest.map((e) => e.id)).toEqual(ids.slice(4));
  });

  it('reads large records in chunks of about READ_BUDGET_BYTES, not readChunk records each', async () => {
    const b = await backend({ readChunk: 1000 });
    const log = await b.open({ name: 'large', term: 1, accessMode: 'rw' });
    const records = Array.from({ length: 24 }, (_, i) => new Uint8Array(randomBytes((3 << 20) + i)));
    const ids: string[] = [];
    for (let i = 0; i < records.length; i += 4) ids.push(...(await log.append(records.slice(i, i + 4))));
    // Each XRANGE's COUNT, as sent.
    const counts: number[] = [];
    const callBuffer = b.client.callBuffer.bind(b.client);
    const spy = jest.spyOn(b.client, 'callBuffer').mockImplementation(((command: string, ...args: unknown[]) => {
      if (command === 'xrange') counts.push(Number(args[args.indexOf('COUNT') + 1]));
      return callBuffer(command, ...(args as never[]));
    }) as typeof b.client.callBuffer);
    try {
      const all = await readN(log.read({ policy: { type: 'all' } }), records.length);
      expect(all.map((e) => e.id)).toEqual(ids);
      all.forEach((e, i) => expect(Buffer.from(e.data).equals(Buffer.from(records[i]!))).toBe(true));
    } finally {
      spy.mockRestore();
    }
    // The first read asks for a few (nothing is known of the sizes yet); once 3 MiB records are
    // seen, at most 16 MiB / 3 MiB of them per read.
    expect(counts[0]).toBe(FIRST_READ_COUNT);
    expect(counts.length).toBeGreaterThan(1);
    for (const c of counts.slice(1)) expect(c).toBe(Math.floor(READ_BUDGET_BYTES / ((3 << 20) + 12)));
  });

  it('fails with a clear message when Redis does not answer', async () => {
    const port = await freePort();
    await expect(RedisWalBackend.connect({ redis: `redis://127.0.0.1:${port}`, connectTimeoutMs: 500 })).rejects.toMatchObject({
      code: ErrorCode.INNER,
      message: expect.stringContaining(`cannot reach Redis at 127.0.0.1:${port}`),
    });
  });
});

// ------------------------------------------------------------------------------------------------
// kill -9 of a redis-server with appendfsync always
// ------------------------------------------------------------------------------------------------

describe('redis wal backend across a redis-server crash (appendonly yes, appendfsync always)', () => {
  let dir: string;
  let server: RedisServer | undefined;

  beforeEach(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-redis-restart-'));
  });

  afterEach(async () => {
    await server?.kill();
    server = undefined;
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged record (and the term) after kill -9 and restart on the same directory', async () => {
    server = await RedisServer.start(dir);
    // Fail fast once the server is gone instead of queueing and reconnecting.
    const client = new Redis(server.port, '127.0.0.1', { retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => undefined);
    await client.connect();
    const backend = await RedisWalBackend.connect({ redis: client, keyPrefix: 'crash:', closeTimeoutMs: 100 });
    const log = await backend.open({ name: 'crash', term: 1, accessMode: 'rw' });

    const acked: Array<{ id: string; data: Uint8Array }> = [];
    let batchesAcked = 0;
    let killed: Promise<void> | undefined;
    const rnd = seededRandom(99);
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; ; n++) {
        const batch = Array.from({ length: 1 + rnd.int(8) }, (_, i) => {
          const head = bytes(`w${w}-b${n}-r${i}|`);
          const out = new Uint8Array(head.length + rnd.int(300));
          out.set(head);
          for (let k = head.length; k < out.length; k++) out[k] = rnd.int(256);
          return out;
        });
        let ids: string[];
        try {
          ids = await log.append(batch);
        } catch {
          return; // the server is gone: this batch is not acknowledged
        }
        ids.forEach((id, i) => acked.push({ id, data: batch[i]! }));
        // kill -9 while the other writers still have appends in flight
        if (++batchesAcked === 300) killed = server!.kill('SIGKILL');
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    await killed;
    await backend.close();
    expect(client.status).toBe('end'); // no reconnects (retryStrategy null)
    expect(batchesAcked).toBeGreaterThanOrEqual(300);

    server = await RedisServer.start(dir);
    const backend2 = await RedisWalBackend.connect({ redis: `redis://127.0.0.1:${server.port}`, keyPrefix: 'crash:' });
    try {
      // The term survived: a lower-term rw open is still refused.
      await expect(backend2.open({ name: 'crash', term: 0, accessMode: 'rw' })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
      const reopened = await backend2.open({ name: 'crash', term: 2, accessMode: 'rw' });
      acked.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
      const last = acked[acked.length - 1]!.id;
      const ac = new AbortController();
      const found = new Map<string, Uint8Array>();
      for await (const e of reopened.read({ policy: { type: 'all' }, signal: ac.signal })) {
        found.set(e.id, e.data);
        if (e.id >= last) break;
      }
      const missing = acked.filter((a) => !found.has(a.id));
      expect(missing.map((m) => m.id)).toEqual([]);
      for (const a of acked) expect(Buffer.from(found.get(a.id)!).equals(Buffer.from(a.data))).toBe(true);
      // At most the batches in flight at the kill can be there without an ack.
      expect(found.size - acked.length).toBeLessThanOrEqual(4 * 8);
      const [next] = await reopened.append([bytes('after-restart')]);
      expect(next! > last).toBe(true);
    } finally {
      await backend2.close();
    }
  });
});

describe('redis wal backend with waitForReplicas (a primary and a replica started by the test)', () => {
  const dirs: string[] = [];
  const servers: RedisServer[] = [];

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.kill()));
    await Promise.all(dirs.splice(0).map((d) => fs.promises.rm(d, { recursive: true, force: true })));
  });

  async function server(extra: readonly string[]): Promise<RedisServer> {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-redis-wait-'));
    dirs.push(dir);
    const s = await RedisServer.start(dir, extra);
    servers.push(s);
    return s;
  }

  it('acknowledges once the replica has the batch, and rejects (records on the primary) when too few replicas answer', async () => {
    const primary = await server(['--repl-diskless-sync-delay', '0']);
    const replica = await server(['--replicaof', '127.0.0.1', String(primary.port)]);
    const admin = await connectTestRedis('The Redis WAL backend tests', `redis://127.0.0.1:${primary.port}`);
    const onReplica = await connectTestRedis('The Redis WAL backend tests', `redis://127.0.0.1:${replica.port}`);
    const backend = await RedisWalBackend.connect({
      redis: `redis://127.0.0.1:${primary.port}`,
      keyPrefix: 'wait:',
      waitForReplicas: { replicas: 1, timeoutMs: 5000 },
    });
    const tooMany = await RedisWalBackend.connect({
      redis: `redis://127.0.0.1:${primary.port}`,
      keyPrefix: 'wait:',
      waitForReplicas: { replicas: 2, timeoutMs: 50 },
    });
    try {
      await waitUntil(async () => /slave0:.*state=online/.test(await admin.info('replication')), 10_000, 'the replica to be online');
      const log = await backend.open({ name: 'w', term: 1, accessMode: 'rw' });
      const ids = await log.append([bytes('r0'), bytes('r1')]);
      // Acknowledged ⇒ already on the replica, with the same ids (scripts replicate by effect).
      const there = await onReplica.xrange(backend.keys.stream('w'), '-', '+');
      expect(there.map(([id]) => toMessageId(id))).toEqual(ids);

      const log2 = await tooMany.open({ name: 'w', term: 2, accessMode: 'rw' });
      const err = await log2.append([bytes('r2')]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: ErrorCode.INNER, retriable: true, details: { replicas: 1, wanted: 2 } });
      expect(await admin.xlen(backend.keys.stream('w'))).toBe(3); // on the primary nevertheless
    } finally {
      await Promise.all([backend.close(), tooMany.close(), admin.quit(), onReplica.quit()]);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

function newPrefix(): string {
  return `walstream-test:wal-unit:${RUN}:${prefixes++}:`;
}



/** Reads exactly `n` entries (then stops the reader), within 10 s. */
async function readN(iterable: AsyncIterable<LogEntry>, n: number): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  const it = iterable[Symbol.asyncIterator]();
  const deadline = performance.now() + 10_000;
  try {
    while (out.length < n) {
      if (performance.now() > deadline) throw new Error(`read ${out.length} of ${n} entries within 10 s`);
      const r = await it.next();
      if (r.done) throw new Error(`reader ended after ${out.length} of ${n} entries`);
      out.push(r.value);
    }
    return out;
  } finally {
    await it.return?.();
  }
}

/** Re-checks `cond` (every 5 ms) until it holds; fails after `timeoutMs`. */
async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function tailClientsOnServer(admin: Redis, name: string): Promise<number> {
  const list = (await admin.client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
}


interface MonitorLine {
  /** Command name and arguments, unescaped (binary bytes as latin1 characters). */
  args: string[];
  /** `ip:port` of the client, or `lua` for a command run by a script. */
  source: string;
}

/**
 * MONITOR on a raw socket (ioredis' monitor() can mistake a monitor line that arrives in the same
 * packet as the +OK for a reply and throw "Command queue state error" under concurrent traffic).
 */
class RawMonitor {
  private readonly listeners: Array<(line: MonitorLine) => void> = [];
  private buffer = '';

  private constructor(private readonly socket: net.Socket) {}

  static async start(url: string): Promise<RawMonitor> {
    const u = new URL(url);
    const socket = net.connect(Number(u.port || 6379), u.hostname || '127.0.0.1');
    const monitor = new RawMonitor(socket);
    socket.setEncoding('latin1');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        if (u.password) socket.write(`AUTH ${decodeURIComponent(u.password)}\r\n`);
        socket.write('MONITOR\r\n');
      });
      socket.on('data', (chunk: string) => {
        monitor.buffer += chunk;
        let nl: number;
        while ((nl = monitor.buffer.indexOf('\r\n')) >= 0) {
          const line = monitor.buffer.slice(0, nl);
          monitor.buffer = monitor.buffer.slice(nl + 2);
          if (line === '+OK') resolve();
          else if (line.startsWith('-')) reject(new Error(`MONITOR refused: ${line}`));
          else if (line.startsWith('+')) monitor.dispatch(line);
        }
      });
    });
    return monitor;
  }

  onLine(fn: (line: MonitorLine) => void): void {
    this.listeners.push(fn);
  }

  close(): void {
    this.socket.destroy();
  }

  private dispatch(line: string): void {
    const open = line.indexOf('[');
    const close = line.indexOf(']', open);
    const source = line.slice(open + 1, close).split(' ')[1] ?? '';
    const args: string[] = [];
    for (const m of line.slice(close + 1).matchAll(/"((?:[^"\\]|\\.)*)"/g)) args.push(unescapeMonitor(m[1]!));
    for (const fn of this.listeners) fn({ args, source });
  }
}

function unescapeMonitor(s: string): string {
  return s.replace(/\\(x[0-9a-f]{2}|.)/g, (_m, e: string) => {
    if (e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' } as Record<string, string>)[e] ?? e;
  });
}

/** A redis-server child process in `dir` (by default with AOF on and fsync on every write). */
class RedisServer {
  private exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(dir: string, extra: readonly string[] = ['--appendonly', 'yes', '--appendfsync', 'always']): Promise<RedisServer> {
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--logfile', '', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new RedisServer(child, port);
    // Ready when it says so on stdout (after loading the AOF); fail if it exits or stays silent.
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server on port ${port} not ready within 10 s:\n${out}`)), 10_000);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer): void => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) done();
      };
      child.stdout?.on('data', onData);
      child.once('error', (e) => done(e));
      child.once('exit', (code) => done(new Error(`redis-server exited with ${code} before it was ready:\n${out}`)));
    });
    child.stdout?.resume();
    child.stderr?.resume();
    return server;
  }

  /** Kills the server by its pid (SIGKILL = kill -9 by default) and waits for it to exit. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.child.pid!, signal);
    return this.exited;
  }
}
