import { crc32 } from 'node:zlib';
import {
  CODEC_VERSION,
  DEFAULT_MAX_MESSAGE_BYTES,
  ENVELOPE_BYTES,
  MESSAGE_MAGIC,
  decodeHeader,
  MessageScanner,
  decodeLazily,
  decodeMessage,
  encodeMessage,
  toLogMessage,
} from '../../runtime/message/codec';
import { ErrorCode, MessageDecodeError, StreamingError } from '../../runtime/errors';
import { MessageTypeCode, type Column, type InsertMessage, type Message, type MessageCommon, type MessageType, type TxnMessage } from '../../runtime/message/types';
import { composeTimetick } from '../../runtime/message/timetick';

// ---------------------------------------------------------------- helpers

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What `fn` throws, or undefined. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectInvalidArgument(fn: () => unknown, details?: Record<string, unknown>): StreamingError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(StreamingError);
  expect(e).not.toBeInstanceOf(MessageDecodeError);
  const se = e as StreamingError;
  expect(se.code).toBe(ErrorCode.INVALID_ARGUMENT);
  if (details) expect(se.details).toMatchObject(details);
  return se;
}

/** Describes a decode outcome that is not a MessageDecodeError (for collecting failures in loops). */
function notDecodeError(fn: () => unknown): string | undefined {
  const e = thrown(fn);
  if (e instanceof MessageDecodeError) return undefined;
  return e === undefined ? 'returned a message' : `threw ${(e as Error)?.name}: ${(e as Error)?.message}`;
}

function bytesOf(f: Float32Array): number[] {
  return Array.from(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
}

/** Recomputes both checksums of an envelope in place (to reach the parser behind them). */
function reseal(b: Buffer): void {
  const headerLength = b.readUInt32LE(10);
  const bodyLength = b.readUInt32LE(14);
  const headerEnd = ENVELOPE_BYTES + headerLength;
  if (headerEnd + bodyLength !== b.length) return;
  b.writeUInt32LE(bodyLength === 0 ? 0 : crc32(b.subarray(headerEnd)), 18);
  b.writeUInt32LE(crc32(b.subarray(6, headerEnd)), 2);
}

// ---------------------------------------------------------------- fixtures

const BIG_TT = composeTimetick(1_750_000_000_123, 262_143); // > 2^53
const MAX_U64 = (1n << 64n) - 1n;

function common(over: Partial<MessageCommon> = {}): MessageCommon {
  return { vchannel: 'by-dev-rootcoord-dml_3_449v0', timetick: BIG_TT, lastConfirmedId: '00000000000003e8', term: 7, ...over };
}

/** Float32 values that must survive bit-exactly, NaN with a payload included. */
function trickyFloats(): Float32Array {
  const f = new Float32Array([0, -0, 1.401298464324817e-45, -1.401298464324817e-45, 1.1754942106924411e-38, 3.4028234663852886e38, Infinity, -Infinity, Math.fround(0.1), -1.5, 0, 0]);
  new Uint32Array(f.buffer)[10] = 0x7fc01234; // quiet NaN with a payload
  new Uint32Array(f.buffer)[11] = 0xffa00001; // negative signalling-pattern NaN
  return f;
}

function allColumns(): Column[] {
  return [
    { name: 'id', type: 'int64', data: [0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32) - 1] },
    { name: 'vec', type: 'floatVector', dim: 4, data: trickyFloats().subarray(0, 12) },
    { name: 'flag', type: 'bool', data: [true, false, true, true, false, false, true] },
    { name: 'i32', type: 'int32', data: [0, 1, -1, 2147483647, -2147483648, 123456, -0] },
    { name: 'f32', type: 'float', data: [0, -0, 0.5, -1.25, Math.fround(0.1), 3.4028234663852886e38, 1.401298464324817e-45] },
    { name: 'f64', type: 'double', data: [0, -0, 0.1, -1e308, 5e-324, Math.PI, Number.MAX_SAFE_INTEGER] },
    {
      name: 'tag',
      type: 'varchar',
      data: ['', 'a', 'héllo wörld', '😀 emoji', '日本語のテキスト', 'twelve chars', 'x'.repeat(13) + 'é'.repeat(60)],
    },
    { name: 'meta', type: 'json', data: [null, 1.5, 'str', [1, 'two', { three: 3 }], { a: { b: [true, false] } }, { u: 'ü😀' }, false] },
  ];
}

function insert(over: Partial<MessageCommon> = {}, columns: Column[] = allColumns(), rows = 7): InsertMessage {
  return {
    type: 'Insert',
    ...common(over),
    header: { collectionId: 449, partitionId: 450, rows, bytes: 1234, segmentId: 1001 },
    body: { columns },
  };
}

/** One message of every encodable type, with every optional field set somewhere. */
function fixtures(): Message[] {
  return [
    { type: 'TimeTick', ...common({ vchannel: '', timetick: MAX_U64, lastConfirmedId: '' }), header: {}, body: {} },
    insert({ txn: { id: BIG_TT - 100n, keepaliveMs: 10_000 }, idempotencyKey: 'client-1:req-42' }),
    insert({ idempotencyKey: '' }),
    {
      type: 'Delete',
      ...common({ idempotencyKey: 'k' }),
      header: { collectionId: 449, partitionId: 450, rows: 3 },
      body: { primaryKeys: { type: 'int64', data: [1, -5, Number.MAX_SAFE_INTEGER] } },
    },
    {
      type: 'Delete',
      ...common({ txn: { id: 1n, keepaliveMs: 0 } }),
      header: { collectionId: 449, partitionId: -1, rows: 3 },
      body: { primaryKeys: { type: 'varchar', data: ['pk-1', '', 'ключ'] } },
    },
    { type: 'Flush', ...common(), header: { collectionId: 449, partitionId: 450, segmentId: 77 }, body: {} },
    {
      type: 'CreateCollection',
      ...common(),
      header: { collectionId: 449, partitionIds: [450, 451] },
      body: {
        collectionName: 'books',
        schema: {
          fields: [
            { name: 'id', type: 'int64', primaryKey: true, autoId: true },
            { name: 'vec', type: 'floatVector', dim: 128 },
            { name: 'title', type: 'varchar', maxLength: 200 },
          ],
        },
        partitions: [
          { id: 450, name: '_default' },
          { id: 451, name: 'p1' },
        ],
      },
    },
    { type: 'DropCollection', ...common(), header: { collectionId: 449 }, body: {} },
    { type: 'CreatePartition', ...common(), header: { collectionId: 449, partitionId: 452 }, body: { partitionName: 'パーティション' } },
    { type: 'DropPartition', ...common(), header: { collectionId: 449, partitionId: 452 }, body: {} },
    { type: 'ManualFlush', ...common(), header: { collectionId: 449, flushTs: BIG_TT + 1n, segmentIds: [1001, 1002, 1003] }, body: {} },
    {
      type: 'CreateSegment',
      ...common(),
      header: { collectionId: 449, partitionId: 450, segmentId: 1004, maxRows: 1_000_000, maxBytes: 8 * 1024 ** 3 },
      body: {},
    },
    { type: 'BeginTxn', ...common(), header: { keepaliveMs: 30_000 }, body: {} },
    { type: 'CommitTxn', ...common({ txn: { id: BIG_TT, keepaliveMs: 30_000 } }), header: {}, body: {} },
    { type: 'RollbackTxn', ...common({ txn: { id: MAX_U64, keepaliveMs: 1 } }), header: {}, body: {} },
  ];
}

/** Deep equality that distinguishes -0 from 0 and compares Float32Array bits (NaN payloads included). */
function expectSameMessage(actual: unknown, expected: unknown): void {
  const norm = (v: unknown): unknown => {
    if (v instanceof Float32Array) return { float32Bits: bytesOf(v) };
    if (typeof v === 'number' && Object.is(v, -0)) return '-0';
    if (Array.isArray(v)) return v.map(norm);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
    return v;
  };
  expect(norm(actual)).toStrictEqual(norm(expected));
}

/** What a float column reads back as: float32 precision. */
function expectedAfterRoundTrip(msg: Message): Message {
  if (msg.type !== 'Insert') return msg;
  const columns = msg.body.columns.map((c): Column => (c.type === 'float' ? { ...c, data: c.data.map((v) => Math.fround(v)) } : c));
  // int32 -0 is written as 0.
  const fixed = columns.map((c): Column => (c.type === 'int32' ? { ...c, data: c.data.map((v) => v | 0) } : c));
  return { ...msg, body: { columns: fixed } };
}

// ---------------------------------------------------------------- round trips

describe('codec round trip', () => {
  it('covers every encodable message type', () => {
    const types = new Set(fixtures().map((m) => m.type));
    const encodable = (Object.keys(MessageTypeCode) as MessageType[]).filter((t) => t !== 'Txn');
    expect([...types].sort()).toEqual([...encodable].sort());
  });

  it.each(fixtures().map((m, i) => [`${i}:${m.type}`, m] as const))('%s decodes to an equal message', (_name, msg) => {
    const bytes = encodeMessage(msg);
    expect(bytes[0]).toBe(MESSAGE_MAGIC);
    expect(bytes[1]).toBe(CODEC_VERSION);
    const decoded = decodeMessage(bytes);
    expectSameMessage(decoded, expectedAfterRoundTrip(msg));
    expect(decoded.timetick).toBe(msg.timetick);
    expect(typeof decoded.timetick).toBe('bigint');
    // Absent optional fields stay absent (not present-but-undefined).
    expect('txn' in decoded).toBe(msg.txn !== undefined);
    expect('idempotencyKey' in decoded).toBe(msg.idempotencyKey !== undefined);
    // Re-encoding the decoded message gives the same bytes.
    expect(Buffer.from(encodeMessage(decoded)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('keeps float32 vectors bit-exact (-0, subnormals, infinities, NaN payloads)', () => {
    const data = trickyFloats();
    const msg = insert({}, [{ name: 'vec', type: 'floatVector', dim: 3, data }], 4);
    const decoded = decodeMessage(encodeMessage(msg)) as InsertMessage;
    const col = decoded.body.columns[0];
    expect(col?.type).toBe('floatVector');
    if (col?.type !== 'floatVector') return;
    expect(col.data).toBeInstanceOf(Float32Array);
    expect(col.dim).toBe(3);
    expect(bytesOf(col.data)).toEqual(bytesOf(data));
    expect(Object.is(col.data[1], -0)).toBe(true);
    expect(col.data[2]).toBe(1.401298464324817e-45);
  });

  it('encodes a Float32Array that is a view at an odd offset of a larger buffer', () => {
    const backing = new Float32Array([9, 9, 1, 2, 3, 4, 9]);
    const data = backing.subarray(2, 6);
    const decoded = decodeMessage(encodeMessage(insert({}, [{ name: 'v', type: 'floatVector', dim: 2, data }], 2))) as InsertMessage;
    const col = decoded.body.columns[0];
    expect(col?.type === 'floatVector' && Array.from(col.data)).toEqual([1, 2, 3, 4]);
  });

  it('decodes from an unaligned Uint8Array into aligned copies that do not alias the input', () => {
    const bytes = encodeMessage(insert());
    for (const shift of [1, 2, 3, 5]) {
      const backing = new ArrayBuffer(bytes.length + shift);
      const unaligned = new Uint8Array(backing, shift, bytes.length);
      unaligned.set(bytes);
      const decoded = decodeMessage(unaligned) as InsertMessage;
      const col = decoded.body.columns.find((c) => c.type === 'floatVector');
      if (col?.type !== 'floatVector') throw new Error('no vector column');
      expect(col.data.byteOffset % 4).toBe(0);
      expect(col.data.buffer).not.toBe(backing);
      const before = bytesOf(col.data);
      unaligned.fill(0xff);
      expect(bytesOf(col.data)).toEqual(before);
      expectSameMessage(decoded, expectedAfterRoundTrip(insert()));
    }
  });

  it('round-trips timeticks and txn ids across the whole u64 range', () => {
    for (const tt of [0n, 1n, 2n ** 53n + 1n, BIG_TT, 2n ** 63n, MAX_U64]) {
      const msg: Message = { type: 'CommitTxn', ...common({ timetick: tt, txn: { id: tt, keepaliveMs: 5 } }), header: {}, body: {} };
      const decoded = decodeMessage(encodeMessage(msg));
      expect(decoded.timetick).toBe(tt);
      expect(decoded.txn).toEqual({ id: tt, keepaliveMs: 5 });
    }
  });

  it('round-trips strings at the boundaries of the short-string paths', () => {
    const data: string[] = [];
    for (const n of [11, 12, 13, 63, 64, 65, 200]) data.push('a'.repeat(n), 'é'.repeat(n), '😀'.repeat(n), 'a'.repeat(n - 1) + 'é');
    const msg = insert({ vchannel: 'v'.repeat(65), lastConfirmedId: 'ü'.repeat(30) }, [{ name: 'ñ'.repeat(12), type: 'varchar', data }], data.length);
    expectSameMessage(decodeMessage(encodeMessage(msg)), msg);
  });

  it('decodes recurring and look-alike short strings exactly, in any order (recent strings are reused only when equal)', () => {
    // Same length, same first and last byte (the same recent-string slot), different middles;
    // non-ASCII look-alikes; the short-string bounds; ids that differ in one digit.
    const strings = ['vAz', 'vBz', 'v\u00e9z', 'vz', 'v\u00ffz', 'a'.repeat(12), 'a'.repeat(5) + 'b' + 'a'.repeat(6), 'x'.repeat(64), 'x'.repeat(32) + 'é' + 'x'.repeat(31)];
    for (let i = 0; i < 40; i++) strings.push(i.toString(16).padStart(16, '0'), `ch_${i % 7}v${i % 3}`);
    const random = rng(20261126);
    for (let round = 0; round < 600; round++) {
      const pick = (): string => strings[Math.floor(random() * strings.length)]!;
      const name = pick();
      const text = pick();
      const msg = insert({ vchannel: pick(), lastConfirmedId: pick() }, [{ name, type: 'varchar', data: [text, pick()] }], 2);
      const bytes = encodeMessage(msg);
      expectSameMessage(decodeMessage(bytes), msg);
      const lazy = decodeLazily(bytes);
      const scanner = new MessageScanner();
      scanner.scan(bytes);
      scanner.scanInsertColumns();
      expect([lazy.header.vchannel, lazy.header.lastConfirmedId, scanner.columns.name(0), scanner.vchannelIs(Buffer.from(msg.vchannel))]).toEqual([msg.vchannel, msg.lastConfirmedId, name, true]);
    }
  });

  it('toLogMessage adds the id and the encoded size', () => {
    const msg = fixtures()[1] as Message;
    const data = encodeMessage(msg);
    const log = toLogMessage({ id: '0000000000000010', data });
    expect(log.id).toBe('0000000000000010');
    expect(log.size).toBe(data.length);
    const { id: _id, size: _size, ...rest } = log;
    expectSameMessage(rest, expectedAfterRoundTrip(msg));
    expect(() => toLogMessage({ id: 'x', data: data.subarray(0, 30) })).toThrow(MessageDecodeError);
  });
});

// ---------------------------------------------------------------- decodeHeader

describe('decodeHeader', () => {
  it.each(fixtures().map((m, i) => [`${i}:${m.type}`, m] as const))('%s: equals the decoded message without its body', (_name, msg) => {
    const bytes = encodeMessage(msg);
    const header = decodeHeader(bytes);
    const { body: _body, ...full } = decodeMessage(bytes);
    expect('body' in header).toBe(false);
    expectSameMessage(header, full);
  });

  it('does not read the body: a corrupt body fails decodeMessage but not decodeHeader', () => {
    const rows = 20_000;
    const dim = 32;
    const msg = insert(
      { idempotencyKey: 'big' },
      [
        { name: 'id', type: 'int64', data: Array.from({ length: rows }, (_, i) => i) },
        { name: 'vec', type: 'floatVector', dim, data: new Float32Array(rows * dim).fill(0.25) },
      ],
      rows,
    );
    const bytes = Buffer.from(encodeMessage(msg));
    expect(bytes.length).toBeGreaterThan(2_000_000);
    const expected = decodeHeader(bytes);
    const headerEnd = ENVELOPE_BYTES + bytes.readUInt32LE(10);
    // Scribble over the whole body: only its length stays right.
    bytes.fill(0xab, headerEnd);
    expect(decodeHeader(bytes)).toEqual(expected);
    const e = thrown(() => decodeMessage(bytes));
    expect(e).toBeInstanceOf(MessageDecodeError);
    expect((e as MessageDecodeError).details).toMatchObject({ reason: 'body checksum mismatch' });
    // The body's length is still bounds-checked.
    expect(() => decodeHeader(bytes.subarray(0, bytes.length - 1))).toThrow(MessageDecodeError);
  });
});

describe('decodeLazily', () => {
  it.each(fixtures().map((m, i) => [`${i}:${m.type}`, m] as const))('%s: header and body() are decodeHeader and decodeMessage', (_name, msg) => {
    const bytes = encodeMessage(msg);
    const lazy = decodeLazily(bytes);
    expect(lazy.header).toEqual(decodeHeader(bytes));
    expectSameMessage({ ...lazy.header, body: lazy.body() }, decodeMessage(bytes));
  });

  it('checks the body only when asked: a corrupt body fails body(), not decodeLazily', () => {
    const bytes = Buffer.from(encodeMessage(insert()));
    const header = decodeHeader(bytes);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0x10;
    const lazy = decodeLazily(bytes);
    expect(lazy.header).toEqual(header);
    const e = thrown(() => lazy.body());
    expect(e).toBeInstanceOf(MessageDecodeError);
    expect((e as MessageDecodeError).details).toMatchObject({ reason: 'body checksum mismatch' });
  });
});

// ---------------------------------------------------------------- MessageScanner

describe('MessageScanner', () => {
  /** The wire (= Arrow) layout of a column's values and lengths, built independently of the codec (little-endian host). */
  function expectedLayout(c: Column): { values: number[]; lengths: number[]; dim: number } {
    const bytes = (a: ArrayBufferView): number[] => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const texts = (data: string[]) => ({
      values: Array.from(Buffer.concat(data.map((t) => Buffer.from(t, 'utf8')))),
      lengths: data.map((t) => Buffer.byteLength(t, 'utf8')),
      dim: 0,
    });
    switch (c.type) {
      case 'floatVector':
        return { values: bytes(c.data), lengths: [], dim: c.dim };
      case 'bool':
        return { values: c.data.map((v) => (v ? 1 : 0)), lengths: [], dim: 0 };
      case 'int32':
        return { values: bytes(Int32Array.from(c.data)), lengths: [], dim: 0 };
      case 'int64':
        return { values: bytes(BigInt64Array.from(c.data.map((v) => BigInt(v)))), lengths: [], dim: 0 };
      case 'float':
        return { values: bytes(Float32Array.from(c.data)), lengths: [], dim: 0 };
      case 'double':
        return { values: bytes(Float64Array.from(c.data)), lengths: [], dim: 0 };
      case 'varchar':
        return texts(c.data);
      case 'json':
        return texts(c.data.map((v) => JSON.stringify(v)));
    }
  }

  /** What the scanner says about the message it scanned last, in decodeHeader's terms. */
  function scanned(s: MessageScanner, vchannel: string): Record<string, unknown> {
    return {
      type: s.type,
      vchannel: s.vchannelIs(Buffer.from(vchannel, 'utf8')) ? vchannel : '(other)',
      pchannelWide: s.pchannelWide,
      timetick: s.timetick(),
      txn: s.hasTxn ? s.txnId() : undefined,
      ...(s.type === 'Insert' ? { collectionId: s.collectionId, partitionId: s.partitionId, segmentId: s.segmentId } : {}),
    };
  }

  function fromHeader(bytes: Uint8Array): Record<string, unknown> {
    const h = decodeHeader(bytes);
    const ids = h.type === 'Insert' ? { collectionId: h.header.collectionId, partitionId: h.header.partitionId, segmentId: h.header.segmentId ?? 0 } : {};
    return { type: h.type, vchannel: h.vchannel, pchannelWide: h.vchannel === '', timetick: h.timetick, txn: h.txn?.id, ...ids };
  }

  /** Column i of the last scan as plain data. */
  function layoutOf(s: MessageScanner, i: number): { name: string; type: string; rows: number; dim: number; values: number[]; lengths: number[] } {
    const c = s.columns;
    const lengths: number[] = [];
    if (c.lengthsAt[i]! >= 0) for (let r = 0; r < c.rows[i]!; r++) lengths.push(c.bytes.readUInt32LE(c.lengthsAt[i]! + 4 * r));
    return { name: c.name(i), type: c.type[i]!, rows: c.rows[i]!, dim: c.dim[i]!, values: Array.from(c.bytes.subarray(c.valuesAt[i]!, c.valuesAt[i]! + c.valuesLength[i]!)), lengths };
  }

  it.each(fixtures().map((m, i) => [`${i}:${m.type}`, m] as const))('%s: sees what decodeHeader sees', (_name, msg) => {
    const bytes = encodeMessage(msg);
    const s = new MessageScanner();
    s.scan(bytes);
    expect(scanned(s, msg.vchannel)).toEqual(fromHeader(bytes));
  });

  it.each(fixtures().map((m, i) => [`${i}:${m.type}`, m] as const))('%s: a changed header is accepted by scan exactly when decodeHeader accepts it (seeded)', (_name, msg) => {
    const random = rng(31);
    const original = Buffer.from(encodeMessage(msg));
    const headerEnd = ENVELOPE_BYTES + original.readUInt32LE(10);
    const s = new MessageScanner();
    const failures: string[] = [];
    for (let n = 0; n < 1_500; n++) {
      const b = Buffer.from(original);
      const edits = 1 + Math.floor(random() * 2);
      for (let k = 0; k < edits; k++) {
        const i = ENVELOPE_BYTES + Math.floor(random() * (headerEnd - ENVELOPE_BYTES));
        b[i] = random() < 0.5 ? Math.floor(random() * 256) : random() < 0.5 ? 0xff : 0;
      }
      reseal(b);
      const header = thrown(() => decodeHeader(b));
      const scan = thrown(() => s.scan(b));
      if (scan !== undefined && !(scan instanceof MessageDecodeError)) failures.push(`#${n}: ${(scan as Error).message}`);
      else if ((header === undefined) !== (scan === undefined)) failures.push(`#${n}: decodeHeader ${String(header ?? 'ok')}, scan ${String(scan ?? 'ok')}`);
    }
    expect(failures).toEqual([]);
  });

  it("lays out an insert's columns in the wire layout, every type, without copying", () => {
    const bytes = encodeMessage(insert());
    const s = new MessageScanner();
    s.scan(bytes);
    s.scanInsertColumns();
    const rowsOf = (c: Column): number => (c.type === 'floatVector' ? c.data.length / c.dim : c.data.length);
    expect(s.columns.count).toBe(allColumns().length);
    allColumns().forEach((c, i) => {
      expect(layoutOf(s, i)).toEqual({ name: c.name, type: c.type, rows: rowsOf(c), ...expectedLayout(c) });
    });
    expect(s.columns.bytes.buffer).toBe(bytes.buffer); // no copy
  });

  it('scans messages side by side in one block and across blocks, in any order (offsets are per message)', () => {
    const msgs = [...fixtures(), insert({ vchannel: 'other' }), insert({ vchannel: '' })];
    const encoded = msgs.map((m) => encodeMessage(m));
    // As a WAL chunk holds them: back to back after an 8-byte record header each, at odd offsets.
    const block = Buffer.concat(encoded.flatMap((e) => [Buffer.alloc(3 + (e.length % 5)), e]));
    const views: Uint8Array[] = [];
    let at = 0;
    for (const e of encoded) {
      at += 3 + (e.length % 5);
      views.push(block.subarray(at, at + e.length));
      at += e.length;
    }
    const s = new MessageScanner();
    const random = rng(11);
    for (let round = 0; round < 200; round++) {
      const i = Math.floor(random() * msgs.length);
      const fromBlock = random() < 0.5;
      const bytes = fromBlock ? views[i]! : encoded[i]!;
      s.scan(bytes);
      expect({ round, i, got: scanned(s, msgs[i]!.vchannel) }).toEqual({ round, i, got: fromHeader(encoded[i]!) });
      if (msgs[i]!.type === 'Insert') {
        s.scanInsertColumns();
        const want = (msgs[i] as InsertMessage).body.columns.map((c) => c.name);
        expect(Array.from({ length: s.columns.count }, (_, k) => layoutOf(s, k).name)).toEqual(want);
        expect(layoutOf(s, 0).values).toEqual(expectedLayout((msgs[i] as InsertMessage).body.columns[0]!).values);
      }
    }
  });

  it('checks the body only when asked: a corrupt body fails scanInsertColumns, not scan; a corrupt header fails scan', () => {
    const bytes = Buffer.from(encodeMessage(insert()));
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0x10;
    const s = new MessageScanner();
    s.scan(bytes);
    const e = thrown(() => s.scanInsertColumns());
    expect(e).toBeInstanceOf(MessageDecodeError);
    expect((e as MessageDecodeError).details).toMatchObject({ reason: 'body checksum mismatch' });
    const header = Buffer.from(encodeMessage(insert()));
    header[ENVELOPE_BYTES + 2] = (header[ENVELOPE_BYTES + 2] as number) ^ 0x01;
    expect((thrown(() => s.scan(header)) as MessageDecodeError).details).toMatchObject({ reason: 'header checksum mismatch' });
  });

  it('scanInsertColumns of another type is a MessageDecodeError', () => {
    const s = new MessageScanner();
    for (const msg of fixtures().filter((m) => m.type !== 'Insert')) {
      s.scan(encodeMessage(msg));
      expect(thrown(() => s.scanInsertColumns())).toBeInstanceOf(MessageDecodeError);
    }
  });

  it('skips both checksums only when told (verified), and still checks the structure', () => {
    const bytes = Buffer.from(encodeMessage(insert()));
    bytes.writeUInt32LE(0, 2);
    bytes.writeUInt32LE(0, 18);
    const s = new MessageScanner();
    expect(thrown(() => s.scan(bytes))).toBeInstanceOf(MessageDecodeError);
    s.scan(bytes, { verified: true });
    s.scanInsertColumns();
    expect(s.columns.count).toBe(allColumns().length);
    expect(thrown(() => s.scan(bytes.subarray(0, bytes.length - 1), { verified: true }))).toBeInstanceOf(MessageDecodeError);
  });

  /** Fixed-width columns only (no text): inserts of one shape are recognised from the last one. */
  function fixedColumns(seed: number, rows: number): Column[] {
    const random = rng(seed);
    return [
      { name: 'id', type: 'int64', data: Array.from({ length: rows }, () => Math.floor(random() * 2 ** 40)) },
      { name: 'flag', type: 'bool', data: Array.from({ length: rows }, () => random() < 0.5) },
      { name: 'n', type: 'int32', data: Array.from({ length: rows }, () => Math.floor(random() * 1000) - 500) },
      { name: 'x', type: 'double', data: Array.from({ length: rows }, () => random()) },
      { name: 'vec', type: 'floatVector', dim: 3, data: Float32Array.from({ length: rows * 3 }, () => random()) },
    ];
  }

  it('lays out inserts of one shape after another right, values and all, and tells when the shape changes', () => {
    const s = new MessageScanner();
    const shapes: number[] = [];
    // Same shape (2 rows) with new values, then 3 rows, then 2 rows again, then another column order.
    const inserts = [1, 2, 3].map((k) => fixedColumns(k, 2));
    inserts.push(fixedColumns(4, 3), fixedColumns(5, 2), fixedColumns(6, 2).reverse(), fixedColumns(7, 2).reverse());
    // Side by side in one block, as a WAL chunk holds them.
    const encoded = inserts.map((c) => encodeMessage(insert({}, c, c[0]!.data.length)));
    const block = Buffer.concat(encoded);
    let at = 0;
    encoded.forEach((e, k) => {
      s.scan(block.subarray(at, at + e.length));
      s.scanInsertColumns();
      at += e.length;
      shapes.push(s.columns.shape);
      inserts[k]!.forEach((c, i) => expect({ k, i, got: layoutOf(s, i) }).toEqual({ k, i, got: { name: c.name, type: c.type, rows: c.type === 'floatVector' ? c.data.length / c.dim : c.data.length, ...expectedLayout(c) } }));
    });
    expect(shapes[1]).toBe(shapes[0]);
    expect(shapes[2]).toBe(shapes[0]);
    expect(new Set([shapes[0], shapes[3], shapes[4], shapes[5]]).size).toBe(4);
    expect(shapes[6]).toBe(shapes[5]);
  });

  it('an insert of the last shape still has its values checked, and a bad one does not spoil the next', () => {
    const s = new MessageScanner();
    const good = Buffer.from(encodeMessage(insert({}, fixedColumns(1, 2), 2)));
    s.scan(good);
    s.scanInsertColumns();
    const shape = s.columns.shape;
    // The same shape, an unsafe int64 and a bool byte of 2: the checks of a fresh layout.
    const id = s.columns.valuesAt[0]! - good.byteOffset;
    const flag = s.columns.valuesAt[1]! - good.byteOffset;
    const unsafe = Buffer.from(good);
    unsafe.writeBigInt64LE(2n ** 60n, id);
    reseal(unsafe);
    const bool = Buffer.from(good);
    bool[flag + 1] = 2;
    reseal(bool);
    for (const bad of [unsafe, bool]) {
      s.scan(bad);
      expect(thrown(() => s.scanInsertColumns())).toBeInstanceOf(MessageDecodeError);
      expect(thrown(() => decodeMessage(bad))).toBeInstanceOf(MessageDecodeError);
    }
    // A refused insert leaves nothing to go on: the next is laid out afresh (a new shape), and right.
    s.scan(good);
    s.scanInsertColumns();
    expect(s.columns.shape).not.toBe(shape);
    expect(layoutOf(s, 0).values).toEqual(expectedLayout(fixedColumns(1, 2)[0]!).values);
  });

  it.each([
    ['every column type', () => insert({ txn: { id: 42n, keepaliveMs: 1000 }, idempotencyKey: 'k' })],
    ['fixed-width columns (recognised from the last insert)', () => insert({}, fixedColumns(3, 4), 4)],
  ])('accepts exactly what the decoders accept, garbage behind valid checksums included (seeded): %s', (_name, make) => {
    const random = rng(7);
    const original = Buffer.from(encodeMessage(make()));
    const failures: string[] = [];
    const s = new MessageScanner();
    for (let n = 0; n < 20_000; n++) {
      const b = Buffer.from(original);
      const edits = 1 + Math.floor(random() * 3);
      for (let k = 0; k < edits; k++) {
        const i = ENVELOPE_BYTES + Math.floor(random() * (b.length - ENVELOPE_BYTES));
        b[i] = random() < 0.5 ? Math.floor(random() * 256) : random() < 0.5 ? 0xff : 0;
      }
      reseal(b);
      // Every other round the original first, so that the next is checked against its layout.
      if (n % 2 === 0) {
        s.scan(original);
        s.scanInsertColumns();
      }
      // scan alone is decodeHeader; scan then scanInsertColumns is decodeMessage.
      const header = thrown(() => decodeHeader(b));
      const full = thrown(() => decodeMessage(b));
      const scan = thrown(() => s.scan(b));
      const columns = scan ?? thrown(() => s.scanInsertColumns());
      for (const e of [scan, columns]) if (e !== undefined && !(e instanceof MessageDecodeError)) failures.push(`#${n}: ${(e as Error).name} ${(e as Error).message}`);
      if ((header === undefined) !== (scan === undefined)) failures.push(`#${n}: decodeHeader ${String(header ?? 'ok')}, scan ${String(scan ?? 'ok')}`);
      if ((full === undefined) !== (columns === undefined)) failures.push(`#${n}: decodeMessage ${String(full ?? 'ok')}, scanInsertColumns ${String(columns ?? 'ok')}`);
    }
    expect(failures).toEqual([]);
  });
});

// ---------------------------------------------------------------- encode errors

describe('bytes a backend already verified', () => {
  const msg = fixtures().find((m) => m.type === 'Insert')!;

  it('skip both checksums only when told: the same message, and a stale checksum is no error', () => {
    const bytes = Buffer.from(encodeMessage(msg));
    const plain = decodeMessage(bytes);
    expect(decodeMessage(bytes, { verified: true })).toEqual(plain);
    // Zero both checksum fields: ordinary decoding refuses, verified decoding does not compute them.
    bytes.writeUInt32LE(0, 2);
    bytes.writeUInt32LE(0, 18);
    expect(thrown(() => decodeMessage(bytes))).toBeInstanceOf(MessageDecodeError);
    expect(thrown(() => decodeHeader(bytes))).toBeInstanceOf(MessageDecodeError);
    expect(decodeMessage(bytes, { verified: true })).toEqual(plain);
    expect(decodeHeader(bytes, { verified: true })).toEqual(decodeHeader(encodeMessage(msg)));
    expect(decodeLazily(bytes, { verified: true }).body()).toEqual(plain.body);
    expect(() => decodeLazily(bytes).body()).toThrow(MessageDecodeError);
    expect(toLogMessage({ id: '0000000000000001', data: bytes, verified: true })).toMatchObject({ type: msg.type, body: plain.body });
    expect(thrown(() => toLogMessage({ id: '0000000000000001', data: bytes }))).toBeInstanceOf(MessageDecodeError);
  });

  it('still checks structure: a truncated or mislabelled message is an error even when verified', () => {
    const bytes = encodeMessage(msg);
    expect(thrown(() => decodeMessage(bytes.slice(0, bytes.length - 1), { verified: true }))).toBeInstanceOf(MessageDecodeError);
    const badType = Buffer.from(bytes);
    badType.writeUInt16LE(0xfff0, 6);
    expect(thrown(() => decodeMessage(badType, { verified: true }))).toBeInstanceOf(MessageDecodeError);
  });
});

describe('encode errors', () => {
  it('rejects a message over the default maximum size with its size and the limit', () => {
    const data = new Float32Array(DEFAULT_MAX_MESSAGE_BYTES / 4 + 8);
    const msg = insert({}, [{ name: 'vec', type: 'floatVector', dim: 8, data }], data.length / 8);
    const e = expectInvalidArgument(() => encodeMessage(msg));
    expect(e.details).toMatchObject({ limit: DEFAULT_MAX_MESSAGE_BYTES });
    expect(e.details?.['size']).toBeGreaterThan(DEFAULT_MAX_MESSAGE_BYTES);
  });

  it('honours maxMessageBytes exactly: the limit itself passes, one byte less fails', () => {
    const msg = insert();
    const size = encodeMessage(msg).length;
    expect(encodeMessage(msg, { maxMessageBytes: size }).length).toBe(size);
    expectInvalidArgument(() => encodeMessage(msg, { maxMessageBytes: size - 1 }), { size, limit: size - 1 });
  });

  it('never encodes a consume-side Txn message', () => {
    const txn: TxnMessage = { type: 'Txn', ...common(), header: { txnId: 1n, count: 0 }, body: { messages: [] } };
    expectInvalidArgument(() => encodeMessage(txn));
  });

  const cases: [string, () => Message, Record<string, unknown>][] = [
    ['an unsafe int64 value', () => insert({}, [{ name: 'id', type: 'int64', data: [1, 2 ** 53] }], 2), { field: 'id', index: 1 }],
    ['a fractional int64 value', () => insert({}, [{ name: 'id', type: 'int64', data: [1.5] }], 1), { field: 'id', index: 0 }],
    ['an int32 out of range', () => insert({}, [{ name: 'n', type: 'int32', data: [2 ** 31] }], 1), { field: 'n' }],
    ['a vector whose length is not a multiple of dim', () => insert({}, [{ name: 'v', type: 'floatVector', dim: 3, data: new Float32Array(4) }], 1), { field: 'v' }],
    ['a vector with dim 0', () => insert({}, [{ name: 'v', type: 'floatVector', dim: 0, data: new Float32Array(0) }], 0), { field: 'v' }],
    ['a negative timetick', () => insert({ timetick: -1n }), { field: 'timetick' }],
    ['a timetick of 2^64', () => insert({ timetick: 1n << 64n }), { field: 'timetick' }],
    ['a txn id of 2^64', () => insert({ txn: { id: 1n << 64n, keepaliveMs: 1 } }), { field: 'txn.id' }],
    ['a fractional term', () => insert({ term: 1.5 }), { field: 'term' }],
    ['a negative term', () => insert({ term: -1 }), { field: 'term' }],
    ['an unsafe collection id', () => ({ type: 'DropCollection', ...common(), header: { collectionId: 2 ** 60 }, body: {} }), { field: 'header.collectionId' }],
    ['a json value that is not serializable', () => insert({}, [{ name: 'j', type: 'json', data: [undefined] }], 1), { field: 'j' }],
    ['a json value with a bigint', () => insert({}, [{ name: 'j', type: 'json', data: [{ n: 1n }] }], 1), { field: 'j', index: 0 }],
    ['a varchar value that is not a string', () => insert({}, [{ name: 's', type: 'varchar', data: [1 as unknown as string] }], 1), { field: 's' }],
  ];
  it.each(cases)('rejects %s with INVALID_ARGUMENT', (_name, make, details) => {
    expectInvalidArgument(() => encodeMessage(make()), details);
  });
});

// ---------------------------------------------------------------- corrupt input

describe('corrupt input always throws MessageDecodeError', () => {
  const samples = fixtures().filter((m) => ['Insert', 'Delete', 'CreateCollection', 'ManualFlush', 'RollbackTxn'].includes(m.type));

  it.each(samples.map((m, i) => [`${i}:${m.type}`, m] as const))('%s: every truncation', (_name, msg) => {
    const bytes = encodeMessage(msg);
    const failures: string[] = [];
    for (let len = 0; len < bytes.length; len++) {
      const cut = bytes.slice(0, len);
      const a = notDecodeError(() => decodeMessage(cut));
      const b = notDecodeError(() => decodeHeader(cut));
      if (a || b) failures.push(`len ${len}: ${a ?? b}`);
    }
    expect(failures).toEqual([]);
  });

  it.each(samples.map((m, i) => [`${i}:${m.type}`, m] as const))('%s: every single-bit flip', (_name, msg) => {
    const bytes = Buffer.from(encodeMessage(msg));
    const headerEnd = ENVELOPE_BYTES + bytes.readUInt32LE(10);
    const header = decodeHeader(bytes);
    const failures: string[] = [];
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        bytes[i] = (bytes[i] as number) ^ (1 << bit);
        const a = notDecodeError(() => decodeMessage(bytes));
        if (a) failures.push(`byte ${i} bit ${bit}: decodeMessage ${a}`);
        if (i < headerEnd) {
          const b = notDecodeError(() => decodeHeader(bytes));
          if (b) failures.push(`byte ${i} bit ${bit}: decodeHeader ${b}`);
        } else {
          // A flip in the body does not concern the header, which is still right.
          expect(decodeHeader(bytes)).toEqual(header);
        }
        bytes[i] = (bytes[i] as number) ^ (1 << bit);
      }
    }
    expect(failures).toEqual([]);
  });

  it('a wrong version is "unsupported version"', () => {
    for (const version of [0, 2, 255]) {
      const bytes = Buffer.from(encodeMessage(insert()));
      bytes[1] = version;
      for (const decode of [decodeMessage, decodeHeader]) {
        const e = thrown(() => decode(bytes));
        expect(e).toBeInstanceOf(MessageDecodeError);
        expect((e as MessageDecodeError).details).toMatchObject({ reason: 'unsupported version', version });
      }
    }
  });

  it('a wrong magic is "bad magic"', () => {
    const bytes = Buffer.from(encodeMessage(insert()));
    bytes[0] = 0x00;
    const e = thrown(() => decodeMessage(bytes));
    expect(e).toBeInstanceOf(MessageDecodeError);
    expect((e as MessageDecodeError).details).toMatchObject({ reason: 'bad magic' });
  });

  it('trailing bytes, an empty input and a non-byte input are rejected', () => {
    const bytes = encodeMessage(insert());
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    for (const input of [longer, new Uint8Array(0), 'not bytes' as unknown as Uint8Array, null as unknown as Uint8Array]) {
      expect(notDecodeError(() => decodeMessage(input))).toBeUndefined();
      expect(notDecodeError(() => decodeHeader(input))).toBeUndefined();
    }
  });

  it('random buffers (seeded), with and without a valid magic and version', () => {
    const random = rng(0xc0dec);
    const failures: string[] = [];
    for (let n = 0; n < 10_000; n++) {
      const len = Math.floor(random() * 200);
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = Math.floor(random() * 256);
      if (n % 2 === 1 && len >= 2) {
        b[0] = MESSAGE_MAGIC;
        b[1] = CODEC_VERSION;
      }
      const a = notDecodeError(() => decodeMessage(b));
      const h = notDecodeError(() => decodeHeader(b));
      if (a || h) failures.push(`#${n}: ${a ?? h}`);
    }
    expect(failures).toEqual([]);
  });

  it('garbage behind valid checksums never throws anything but MessageDecodeError (seeded)', () => {
    // With the checksums recomputed, the parser itself must reject or accept every input safely.
    const random = rng(42);
    const codes = Object.values(MessageTypeCode);
    const failures: string[] = [];
    const check = (b: Buffer, what: string): void => {
      for (const decode of [decodeMessage, decodeHeader]) {
        const e = thrown(() => decode(b));
        if (e !== undefined && !(e instanceof MessageDecodeError)) failures.push(`${what}: ${(e as Error).name} ${(e as Error).message}`);
      }
    };
    // 1. Envelopes with random type, flags and sections.
    for (let n = 0; n < 5_000; n++) {
      const headerLength = Math.floor(random() * 120);
      const bodyLength = Math.floor(random() * 120);
      const b = Buffer.alloc(ENVELOPE_BYTES + headerLength + bodyLength);
      for (let i = ENVELOPE_BYTES; i < b.length; i++) b[i] = Math.floor(random() * 256);
      b[0] = MESSAGE_MAGIC;
      b[1] = CODEC_VERSION;
      b.writeUInt16LE(codes[Math.floor(random() * codes.length)] as number, 6);
      b.writeUInt16LE(Math.floor(random() * 4), 8);
      b.writeUInt32LE(headerLength, 10);
      b.writeUInt32LE(bodyLength, 14);
      reseal(b);
      check(b, `random envelope #${n}`);
    }
    // 2. Real messages with a few bytes mutated (lengths and counts included), resealed.
    const originals = fixtures().map((m) => Buffer.from(encodeMessage(m)));
    for (let n = 0; n < 20_000; n++) {
      const b = Buffer.from(originals[n % originals.length] as Buffer);
      const edits = 1 + Math.floor(random() * 3);
      for (let k = 0; k < edits; k++) {
        const i = ENVELOPE_BYTES + Math.floor(random() * (b.length - ENVELOPE_BYTES));
        b[i] = random() < 0.5 ? Math.floor(random() * 256) : random() < 0.5 ? 0xff : 0;
      }
      reseal(b);
      check(b, `mutated #${n}`);
    }
    expect(failures).toEqual([]);
  });
});
