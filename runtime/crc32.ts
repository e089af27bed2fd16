/**
 * CRC-32 (IEEE 802.3, the one of zlib, gzip and S3's x-amz-checksum-crc32): the checksum of the
 * local WAL's records, of encoded messages and of flushed segment files.
 *
 * It runs over every byte the WAL writes and every byte a flush or a replay reads, so it is one of
 * the largest costs of both: node:zlib's table-driven crc32 does ~1.9 GB/s here, the SIMD one of
 * the native `@node-rs/crc32` (a prebuilt N-API binary per platform, no install script) ~5.8 GB/s
 * on a large buffer and about twice zlib's rate on a 560-byte record. The native one is used when
 * its binary loads on this platform and gives zlib's value on a probe; otherwise, or with
 * `WALSTREAM_CRC32=zlib`, zlib's. Both compute the same function, so files written with one are
 * read with the other.
 */
import * as zlib from 'node:zlib';
import { createLogger } from './logger';

/** CRC-32 of `data`, continuing from `value` (the CRC of the bytes before it; 0 to start). */
export type Crc32 = (data: Uint8Array, value?: number) => number;

export type Crc32Implementation = 'native' | 'zlib';

interface Loaded {
  crc32: Crc32;
  implementation: Crc32Implementation;
  /** Why the native one is not used (undefined when it is). */
  reason: string | undefined;
}

/** A few bytes whose CRC-32 both implementations must agree on before the native one is trusted. */
const PROBE = new Uint8Array([0x77, 0x61, 0x6c, 0x73, 0x74, 0x72, 0x65, 0x61, 0x6d, 0x00, 0xff, 0x80]);

function load(): Loaded {
  const fallback = (reason: string): Loaded => ({ crc32: zlib.crc32, implementation: 'zlib', reason });
  if (process.env['WALSTREAM_CRC32'] === 'zlib') return fallback('WALSTREAM_CRC32=zlib');
  let native: Crc32;
  try {
    native = (require('@node-rs/crc32') as { crc32: Crc32 }).crc32;
  } catch (e) {
    return fallback(`@node-rs/crc32 did not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    if (native(PROBE) !== zlib.crc32(PROBE) || native(PROBE, 0xdeadbeef) !== zlib.crc32(PROBE, 0xdeadbeef)) return fallback('@node-rs/crc32 disagrees with zlib on the probe');
  } catch (e) {
    return fallback(`@node-rs/crc32 failed on the probe: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { crc32: native, implementation: 'native', reason: undefined };
}

const loaded = load();
if (loaded.implementation === 'zlib' && process.env['WALSTREAM_CRC32'] !== 'zlib') {
  createLogger('crc32').warn("CRC-32 runs on node:zlib's implementation, about a third of the native one's speed on large buffers", { reason: loaded.reason });
}
const impl = loaded.crc32;

/**
 * CRC-32 of `data` continuing from `value`. Empty data leaves `value` as it is (zlib's crc32 of a
 * view without memory answers 0 whatever the value; the native one answers the value).
 */
export const crc32: Crc32 = (data, value = 0) => (data.byteLength === 0 ? value >>> 0 : impl(data, value));

/** Which implementation `crc32` is, and why not the native one (status and logs). */
export const crc32Implementation: { implementation: Crc32Implementation; reason: string | undefined } = {
  implementation: loaded.implementation,
  reason: loaded.reason,
};

// ---------------------------------------------------------------- combining CRCs

/** The CRC-32 polynomial, reflected (bit 31 is x^0). */
const POLY = 0xedb88320;

/** a(x) × b(x) modulo the polynomial (a ≠ 0), reflected as zlib's multmodp. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial. */
const X2N = ((): number[] => {
  const t = [1 << 30]; // x^1
  for (let k = 1; k < 32; k++) t.push(multModP(t[k - 1]!, t[k - 1]!));
  return t;
})();

/** The byte tables of multiplication by `op`: T[256k + v] = op × (v << 8k), so that op × c is four lookups. */
function shiftTables(op: number): Int32Array {
  const t = new Int32Array(1024);
  for (let k = 0; k < 4; k++) for (let v = 0; v < 256; v++) t[256 * k + v] = multModP(op, (v << (8 * k)) >>> 0);
  return t;
}

function applyTables(t: Int32Array, crc: number): number {
  return (t[crc & 0xff]! ^ t[256 + ((crc >>> 8) & 0xff)]! ^ t[512 + ((crc >>> 16) & 0xff)]! ^ t[768 + (crc >>> 24)]!) >>> 0;
}

/** POW2[k]: the tables of x^(8 × 2^k), the shift past 2^k bytes; made when first needed. */
const POW2: (Int32Array | undefined)[] = [];

/**
 * crc moved past `bytes` bytes: shift(crc(A), |B|) ^ crc(B) = crc(A‖B). One table multiplication
 * per bit of `bytes` (each four lookups); for a length that repeats, Crc32Shifts is faster.
 */
export function shiftCrc32(crc: number, bytes: number): number {
  for (let k = 0, n = bytes; n > 0; k++, n = Math.floor(n / 2)) {
    if (n % 2 === 1) crc = applyTables((POW2[k] ??= shiftTables(X2N[(k + 3) & 31]!)), crc);
  }
  return crc;
}

/** Uses of one length after which it gets tables of its own (4 KiB): then a shift is four lookups. */
const TABLE_AFTER_USES = 64;
/** Lengths kept (a log's records mostly have few distinct lengths); others are shifted bit by bit. */
const MAX_SHIFTS = 256;

/** Moves a CRC past a fixed number of bytes (see Crc32Shifts). */
export class Crc32Shift {
  private uses = 0;
  private tables: Int32Array | undefined;

  constructor(
    /** The number of bytes. */
    readonly bytes: number,
  ) {}

  /** shift(crc(A)) ^ crc(B) = crc(A‖B) for |B| = bytes. */
  apply(crc: number): number {
    const t = this.tables;
    if (t !== undefined) return applyTables(t, crc);
    if (++this.uses === TABLE_AFTER_USES) {
      // x^(8 × bytes): the shift of x^0 (bit 31) past the bytes.
      this.tables = shiftTables(shiftCrc32(0x80000000, this.bytes));
    }
    return shiftCrc32(crc, this.bytes);
  }
}

/**
 * CRC-32 combination, as zlib's crc32_combine: for bytes A then B, crc(A‖B) = shift(crc(A), |B|)
 * ^ crc(B), where a shift is a multiplication by x^(8|B|) modulo the polynomial. A shift past any
 * length is one table multiplication (four lookups) per bit of the length; a length used often
 * gets tables of its own, one multiplication in all (the records of a log mostly have few
 * distinct lengths). With it a reader checks many records' CRCs with one native crc32 call over
 * all of them (see the local WAL's record format) instead of one call each. `of(bytes)` gives the
 * shift past that many bytes, kept for the next time (the first MAX_SHIFTS lengths).
 */
export class Crc32Shifts {
  private readonly shifts = new Map<number, Crc32Shift>();
  /** Lengths asked for and not kept since the cache was full: past a few per kept one it starts over. */
  private misses = 0;

  /** The shift past `bytes` bytes; undefined when MAX_SHIFTS other lengths are kept already (use shiftCrc32). */
  of(bytes: number): Crc32Shift | undefined {
    let s = this.shifts.get(bytes);
    if (s === undefined) {
      if (this.shifts.size >= MAX_SHIFTS) {
        // The lengths kept may be those of another workload: start over once misses dominate.
        if (++this.misses < 4 * MAX_SHIFTS) return undefined;
        this.shifts.clear();
        this.misses = 0;
      }
      s = new Crc32Shift(bytes);
      this.shifts.set(bytes, s);
    }
    return s;
  }
}

const CRC_TABLE = ((): Int32Array => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/**
 * CRC-32 of bytes [from, to) of `buf` continuing from `value`, in JS (a table lookup per byte):
 * for a few bytes, where the native call costs more than the loop.
 */
export function crc32Small(buf: Uint8Array, from: number, to: number, value = 0): number {
  let c = ~value;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
