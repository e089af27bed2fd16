/**
 * Little-endian byte writer and reader for the message codec (./codec.ts).
 *
 * The writer works on a buffer allocated once at its exact final size (the codec measures the
 * message first), so a write never grows or copies. The reader bounds-checks every read and raises
 * MessageDecodeError, so that no input makes it read outside its section, allocate an absurd array
 * or throw anything else. Short strings are encoded and decoded in JS: a native call costs more
 * than the loop for the names, channels and ids that make up most strings of a message.
 */
import { invalidArgument, MessageDecodeError } from '../errors';

/** True on little-endian hosts (all of Node's tier-1 platforms): float32 blocks are then plain byte copies. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const MAX_U64 = (1n << 64n) - 1n;
const TWO_32 = 4294967296;
/** Strings up to this many UTF-16 units are measured, encoded and decoded in JS. */
const SHORT_STRING = 64;
/** Strings up to this many bytes are decoded by concatenation (V8 keeps strings under 13 characters flat). */
const TINY_STRING = 12;
/** Slots of the recently decoded ASCII strings (of at most SHORT_STRING bytes) that ByteReader.utf8At reuses. */
const RECENT_SLOTS = 256;
const RECENT_STRINGS: string[] = new Array<string>(RECENT_SLOTS).fill('');

/** UTF-8 byte length of `s`, exactly as Buffer writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n > SHORT_STRING) return Buffer.byteLength(s, 'utf8');
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

function decodeError(reason: string, details: Record<string, unknown> = {}): MessageDecodeError {
  return new MessageDecodeError(reason, details);
}

export class ByteWriter {
  readonly buf: Buffer;
  readonly view: DataView;
  pos = 0;

  constructor(size: number) {
    // The codec checks that it wrote every byte before the buffer leaves it, so the
    // uninitialised (possibly pooled) memory of allocUnsafe never escapes.
    this.buf = Buffer.allocUnsafe(size);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, size);
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }

  u32(v: number): void {
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  /** A u64 from a bigint in [0, 2^64). */
  u64(v: bigint, what: string): void {
    if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw invalidArgument(`${what} must be a bigint in [0, 2^64)`, { field: what, value: String(v) });
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  /** A JS safe integer as int64 LE (two's complement), without going through BigInt. */
  safeInt(v: number, what: string): void {
    if (!Number.isSafeInteger(v)) throw invalidArgument(`${what} must be a safe integer`, { field: what, value: v });
    this.int64At(this.pos, v);
    this.pos += 8;
  }

  /** Writes a safe integer at `pos` (the caller checked it). */
  int64At(pos: number, v: number): void {
    if (v >= 0 && v < TWO_32) {
      this.view.setUint32(pos, v, true);
      this.view.setUint32(pos + 4, 0, true);
    } else {
      const hi = Math.floor(v / TWO_32);
      this.view.setUint32(pos, v - hi * TWO_32, true);
      this.view.setInt32(pos + 4, hi, true);
    }
  }

  f32(v: number): void {
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  f64(v: number): void {
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** u32 byte length + UTF-8 bytes. */
  string(s: string): void {
    const lenPos = this.pos;
    this.pos += 4;
    const n = this.utf8(s);
    this.view.setUint32(lenPos, n, true);
  }

  /** Raw UTF-8 bytes of `s` (no length); returns the byte count. */
  utf8(s: string): number {
    const start = this.pos;
    const n = s.length;
    if (n > SHORT_STRING) {
      this.pos += this.buf.write(s, start, 'utf8');
      return this.pos - start;
    }
    const b = this.buf;
    let p = start;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[p++] = c;
      } else if (c < 0x800) {
        b[p++] = 0xc0 | (c >> 6);
        b[p++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            b[p++] = 0xf0 | (c >> 18);
            b[p++] = 0x80 | ((c >> 12) & 0x3f);
            b[p++] = 0x80 | ((c >> 6) & 0x3f);
            b[p++] = 0x80 | (c & 0x3f);
            i++;
            continue;
          }
          c = 0xfffd; // lone surrogate, as Buffer does
        }
        b[p++] = 0xe0 | (c >> 12);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      }
    }
    this.pos = p;
    return p - start;
  }

  /** The raw bytes of a float32 block, little-endian. */
  float32s(data: Float32Array): void {
    if (HOST_IS_LITTLE_ENDIAN) {
      this.buf.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), this.pos);
      this.pos += data.byteLength;
    } else {
      for (let i = 0; i < data.length; i++) this.f32(data[i] as number);
    }
  }
}

export class ByteReader {
  readonly buf: Buffer;
  readonly view: DataView;
  pos: number;
  end: number;

  /** Reads `buf[pos, end)`; `view` covers the whole of `buf`. */
  constructor(buf: Buffer, view: DataView, pos: number, end: number) {
    this.buf = buf;
    this.view = view;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws unless `n` more bytes are there. */
  need(n: number): void {
    if (!(n <= this.end - this.pos)) throw decodeError('out of bounds', { offset: this.pos, need: n, available: this.end - this.pos });
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  safeInt(): number {
    this.need(8);
    const v = this.int64At(this.pos);
    this.pos += 8;
    return v;
  }

  /** A safe integer at `pos` (the caller checked the bounds). */
  int64At(pos: number): number {
    const v = this.view.getInt32(pos + 4, true) * TWO_32 + this.view.getUint32(pos, true);
    if (!Number.isSafeInteger(v)) throw decodeError('int64 outside the safe integer range', { offset: pos });
    return v;
  }

  /** u32 byte length + UTF-8 bytes. */
  string(): string {
    const n = this.u32();
    this.need(n);
    const s = this.utf8At(this.pos, n);
    this.pos += n;
    return s;
  }

  /** `n` bytes of UTF-8 at `pos` (the caller checked the bounds). */
  utf8At(pos: number, n: number): string {
    if (n === 0) return '';
    const b = this.buf;
    const end = pos + n;
    if (n > SHORT_STRING) return b.toString('utf8', pos, end);
    // Channels, ids and column names repeat from message to message: a recent equal string is
    // returned as it is (a comparison, no new string). Only ASCII strings are kept, so a byte
    // ≥ 0x80 never matches.
    const slot = (n + 31 * (b[pos] as number) + 131 * (b[end - 1] as number)) & (RECENT_SLOTS - 1);
    const recent = RECENT_STRINGS[slot]!;
    if (recent.length === n) {
      let i = 0;
      while (i < n && recent.charCodeAt(i) === b[pos + i]) i++;
      if (i === n) return recent;
    }
    let s: string;
    if (n <= TINY_STRING) {
      // A native call costs more than this loop for tiny strings (column names, short values);
      // below 13 characters V8 keeps the concatenation flat.
      s = '';
      for (let i = pos; i < end; i++) {
        const c = b[i] as number;
        if (c >= 0x80) return b.toString('utf8', pos, end);
        s += String.fromCharCode(c);
      }
    } else {
      let i = pos;
      while (i < end && (b[i] as number) < 0x80) i++;
      if (i !== end) return b.toString('utf8', pos, end);
      s = b.toString('latin1', pos, end);
    }
    RECENT_STRINGS[slot] = s;
    return s;
  }

  /**
   * A copy of `n` little-endian float32 values at the current position, in a Float32Array that is
   * 4-byte aligned whatever the input's offset. Small blocks come from Node's Buffer pool (like
   * Buffer.allocUnsafe) because allocating a fresh ArrayBuffer costs far more than decoding a small
   * message: the array's `.buffer` may then be shared, so use byteOffset/byteLength with it.
   */
  float32s(n: number): Float32Array {
    const bytes = 4 * n;
    this.need(bytes);
    let out: Float32Array;
    if (HOST_IS_LITTLE_ENDIAN) {
      const mem = Buffer.allocUnsafe(bytes);
      out = (mem.byteOffset & 3) === 0 ? new Float32Array(mem.buffer, mem.byteOffset, n) : new Float32Array(n);
      new Uint8Array(out.buffer, out.byteOffset, bytes).set(this.buf.subarray(this.pos, this.pos + bytes));
    } else {
      out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = this.view.getFloat32(this.pos + 4 * i, true);
    }
    this.pos += bytes;
    return out;
  }
}
