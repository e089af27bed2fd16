/** runtime/crc32: the native CRC-32 where it loads, zlib's otherwise — the same values either way. */
import * as zlib from 'node:zlib';
import { seededRandom } from '../../runtime/clock';
import { Crc32Shifts, crc32, crc32Implementation, crc32Small, shiftCrc32 } from '../../runtime/crc32';

describe('crc32', () => {
  it('uses the native implementation on this platform (its binary is installed with the package)', () => {
    expect(crc32Implementation).toEqual({ implementation: 'native', reason: undefined });
  });

  it("gives zlib's CRC-32 for any bytes, offset and running value", () => {
    const random = seededRandom(20261126);
    const backing = new Uint8Array(3 * 1024 * 1024 + 64);
    for (let i = 0; i < backing.length; i++) backing[i] = random.int(256);
    const lengths = [1, 2, 3, 7, 8, 15, 16, 31, 64, 255, 560, 4096, 65_537, 3 * 1024 * 1024];
    for (let i = 0; i < 200; i++) lengths.push(1 + random.int(100_000));
    for (const length of lengths) {
      const offset = random.int(64);
      const view = backing.subarray(offset, offset + length);
      const value = random.int(2) === 0 ? 0 : random.int(2 ** 32);
      const got = { length, offset, value, crc: crc32(view, value) };
      if (got.crc !== zlib.crc32(view, value)) expect(got).toEqual({ length, offset, value, crc: zlib.crc32(view, value) });
    }
    // Running over parts equals the whole.
    const whole = backing.subarray(0, 1_000_003);
    let running = 0;
    for (let at = 0; at < whole.length; at += 99_991) running = crc32(whole.subarray(at, Math.min(whole.length, at + 99_991)), running);
    expect(running).toBe(zlib.crc32(whole));
    // Empty data leaves the running value as it is, with or without memory behind the view.
    for (const empty of [new Uint8Array(0), new Uint8Array(new ArrayBuffer(0)), backing.subarray(5, 5), Buffer.alloc(0)]) {
      expect([crc32(empty), crc32(empty, 123), crc32(empty, 0xfedcba98)]).toEqual([0, 123, 0xfedcba98]);
    }
    // The standard check value of CRC-32.
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    // Views of other typed arrays' memory, and of a Buffer.
    const floats = new Float32Array([1.5, -0, NaN, 3e38]);
    expect(crc32(new Uint8Array(floats.buffer))).toBe(zlib.crc32(new Uint8Array(floats.buffer)));
    expect(crc32(Buffer.from('walstream'))).toBe(zlib.crc32(Buffer.from('walstream')));
  });

  it("falls back to zlib's when the native one does not load, or when WALSTREAM_CRC32=zlib", () => {
    jest.isolateModules(() => {
      jest.doMock('@node-rs/crc32', () => {
        throw new Error('no binary for this platform');
      });
      const m = require('../../runtime/crc32') as typeof import('../../runtime/crc32');
      expect(m.crc32Implementation.implementation).toBe('zlib');
      expect(m.crc32Implementation.reason).toContain('no binary for this platform');
      const bytes = new TextEncoder().encode('123456789');
      expect(m.crc32(bytes)).toBe(0xcbf43926);
      expect(m.crc32(bytes, 77)).toBe(zlib.crc32(bytes, 77));
      expect(m.crc32(new Uint8Array(new ArrayBuffer(0)), 123)).toBe(123); // where zlib's own answers 0
      jest.dontMock('@node-rs/crc32');
    });
    jest.isolateModules(() => {
      jest.doMock('@node-rs/crc32', () => ({ crc32: () => 42 })); // a broken binary: disagrees on the probe
      const m = require('../../runtime/crc32') as typeof import('../../runtime/crc32');
      expect(m.crc32Implementation).toMatchObject({ implementation: 'zlib', reason: expect.stringContaining('disagrees') });
      jest.dontMock('@node-rs/crc32');
    });
    const saved = process.env['WALSTREAM_CRC32'];
    process.env['WALSTREAM_CRC32'] = 'zlib';
    try {
      jest.isolateModules(() => {
        const m = require('../../runtime/crc32') as typeof import('../../runtime/crc32');
        expect(m.crc32Implementation).toEqual({ implementation: 'zlib', reason: 'WALSTREAM_CRC32=zlib' });
      });
    } finally {
      if (saved === undefined) delete process.env['WALSTREAM_CRC32'];
      else process.env['WALSTREAM_CRC32'] = saved;
    }
  });
});

describe('crc32 combination', () => {
  it('shift(crc(A), |B|) ^ crc(B) is crc(A‖B) for any A and B: bit by bit, and kept for a length (before and after it gets its tables)', () => {
    const random = seededRandom(20261206);
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => random.int(256)));
    const shifts = new Crc32Shifts();
    const lengths = [0, 1, 2, 3, 4, 7, 8, 255, 256, 566, 4096, 65_537, 1_048_583];
    for (let i = 0; i < 60; i++) lengths.push(random.int(20_000));
    // 566 many times: past the uses after which its tables are built, with every kind of CRC value.
    for (let i = 0; i < 300; i++) lengths.push(566);
    const failures: string[] = [];
    for (const n of lengths) {
      const a = bytes(random.int(3) === 0 ? 0 : random.int(2_000));
      const b = bytes(n);
      const want = zlib.crc32(Buffer.concat([a, b]));
      const bitByBit = (shiftCrc32(zlib.crc32(a), n) ^ zlib.crc32(b)) >>> 0;
      const kept = (shifts.of(n)!.apply(zlib.crc32(a)) ^ zlib.crc32(b)) >>> 0;
      if (bitByBit !== want || kept !== want) failures.push(`|A| ${a.length} |B| ${n}: ${bitByBit}, ${kept} != ${want}`);
    }
    expect(failures).toEqual([]);
    // Through the tables (built by now for 566) as bit by bit, for any value.
    const tabled = shifts.of(566)!;
    for (const crc of [0, 1, 0x80, 0x8000, 0x800000, 0x80000000, 0xffffffff, 0x7fffffff, 0xdeadbeef]) {
      expect({ crc, shifted: tabled.apply(crc) }).toEqual({ crc, shifted: shiftCrc32(crc, 566) });
    }
  });

  it('keeps the shifts of at most 256 lengths; past them a length has none (shifted bit by bit) until misses dominate', () => {
    const shifts = new Crc32Shifts();
    for (let n = 1; n <= 256; n++) expect(shifts.of(n)?.bytes).toBe(n);
    expect(shifts.of(257)).toBeUndefined();
    expect(shifts.of(100)?.bytes).toBe(100); // the kept ones stay
    // Lengths not kept, asked for again and again: the cache starts over and keeps them.
    let kept: number | undefined;
    for (let i = 0; i < 4 * 256 && kept === undefined; i++) kept = shifts.of(1000 + (i % 2))?.bytes;
    expect(kept).toBeGreaterThanOrEqual(1000);
    expect(shifts.of(100)?.bytes).toBe(100); // kept again, as a new length
  });

  it('crc32Small is zlib\'s CRC-32 of a range, from any running value', () => {
    const random = seededRandom(7);
    const buf = Buffer.from(Array.from({ length: 256 }, () => random.int(256)));
    for (let i = 0; i < 200; i++) {
      const from = random.int(200);
      const to = from + random.int(56);
      const value = random.int(2) === 0 ? 0 : random.int(2 ** 32);
      expect(crc32Small(buf, from, to, value)).toBe(zlib.crc32(buf.subarray(from, to), value));
    }
  });
});
