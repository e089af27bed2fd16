/**
 * Builds one table of a segment (inserts.arrow or deletes.arrow) record batch by record batch,
 * straight into the typed arrays that Arrow writes out, so that a column is built once whatever
 * number of inserts it comes from. Rows arrive in two shapes:
 * - message-model columns (`Column`), each value checked on the way in;
 * - encoded columns of WAL inserts (`InsertColumns` of a MessageScanner): their wire layout is
 *   Arrow's, so a message's column is one byte copy (a vector of raw float32 goes straight into the
 *   batch's Float32Array).
 *
 * A record batch is sealed when it holds `maxRowsPerBatch` rows, or before a row that would bring
 * its text (the UTF-8 of varchar and json values) past `maxBatchBytes` (a larger single row gets a
 * batch of its own). The batches depend only on the rows, not on how they were appended, so the
 * same rows always give the same file. A batch's buffers start small and grow; once a batch was
 * full the next ones start full-size, so a large segment is copied once and a small one stays small.
 * The caller (segment-writer.ts) checks the shape of what it appends: columns in table order, of the
 * table's types, with `rows` rows each.
 */
import * as arrow from 'apache-arrow';
import { invalidArgument, type StreamingError } from '../../runtime/errors';
import { HOST_IS_LITTLE_ENDIAN } from '../../runtime/message/bytes';
import type { InsertColumns } from '../../runtime/message/codec';
import type { Column, FieldSchema } from '../../runtime/message/types';
import type { Timetick } from '../../runtime/message/timetick';
import { TIMETICK_COLUMN, arrowTypeOf } from './arrow-schema';

export interface TableLimits {
  /** Rows per record batch, at most. */
  maxRowsPerBatch: number;
  /** UTF-8 bytes of text per record batch, at most (a larger single row gets a batch of its own). */
  maxBatchBytes: number;
}

/** Which append a value error belongs to, for its message: `insert 3: id[0] is not …`. */
export interface AppendContext {
  what: 'insert' | 'delete';
  index: number;
}

/** Rows of the first batch's buffers; they grow GROWTH-fold up to maxRowsPerBatch. */
const INITIAL_BATCH_ROWS = 1024;
/**
 * Growth factor of a batch's buffers: every growth allocates and copies, so growing 4-fold copies
 * a third of the final size (1 + 1/4 + …) where doubling copies all of it once more; a large
 * segment pays that on its first batch only, a small one keeps buffers at most 4× its rows.
 */
const GROWTH = 4;
const MAX_TEXT_BYTES_PER_COLUMN = 0x7fffffff;
/** Encoded values up to this many bytes are copied by a JS loop, larger ones by Buffer.copy. */
const SMALL_COPY = 32;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

function bad(message: string, details: Record<string, unknown>): StreamingError {
  return invalidArgument(`segment: ${message}`, details);
}

function wrongValue(field: string, at: AppendContext, i: number, expected: string, value: unknown): StreamingError {
  return bad(`${at.what} ${at.index}: ${field}[${i}] is not ${expected}`, { [at.what]: at.index, field, index: i, value: String(value) });
}

/** One column of the batch being built. */
interface ColumnBuffer {
  /** Grows to `capacity` rows, keeping the first `used`. */
  reserve(capacity: number, used: number): void;
  /** Copies rows [from, to) of encoded column `i` of `c` to row `at`. */
  copyEncoded(c: InsertColumns, i: number, from: number, to: number, at: number): void;
  /** Copies rows [from, to) of a column to row `at`, checking each value. */
  copyColumn(c: Column, from: number, to: number, at: number, where: AppendContext): void;
  /** Arrow data of the first `rows` rows, still sharing the buffers. */
  data(rows: number): arrow.Data;
  /** Bytes of the buffers of the batch being built. */
  readonly byteLength: number;
  /** Hands the buffers over (to a sealed batch) and starts empty. */
  release(): void;
  /** Gives the buffers of the batches sealed so far to `pool` (they must be unused from now on). */
  recycle(pool: BatchBufferPool): void;
}

type FixedArray = Int32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;
type FixedKind = 'int32' | 'int64' | 'uint64' | 'float' | 'double' | 'floatVector';

const FIXED: Record<FixedKind, { bytes: number; make: (n: number) => FixedArray; wrap: (b: ArrayBuffer) => FixedArray; read: (v: DataView, at: number) => number | bigint }> = {
  int32: { bytes: 4, make: (n) => new Int32Array(n), wrap: (b) => new Int32Array(b), read: (v, at) => v.getInt32(at, true) },
  int64: { bytes: 8, make: (n) => new BigInt64Array(n), wrap: (b) => new BigInt64Array(b), read: (v, at) => v.getBigInt64(at, true) },
  uint64: { bytes: 8, make: (n) => new BigUint64Array(n), wrap: (b) => new BigUint64Array(b), read: (v, at) => v.getBigUint64(at, true) },
  float: { bytes: 4, make: (n) => new Float32Array(n), wrap: (b) => new Float32Array(b), read: (v, at) => v.getFloat32(at, true) },
  double: { bytes: 8, make: (n) => new Float64Array(n), wrap: (b) => new Float64Array(b), read: (v, at) => v.getFloat64(at, true) },
  floatVector: { bytes: 4, make: (n) => new Float32Array(n), wrap: (b) => new Float32Array(b), read: (v, at) => v.getFloat32(at, true) },
};

/**
 * Spare fixed-width column buffers, for the next batches encoded on this thread (a flush thread
 * encodes segment after segment, the write buffer one growing segment after another, mostly of one
 * shape): a buffer a batch outgrew, and the buffers of sealed batches once their segment is
 * written. A fresh buffer costs a page fault per 4 KiB the first time it is written — on the dev
 * VM ~15 µs each, some 80 times the cost of the copy into it — and a reused one nothing. A reused
 * buffer holds stale bytes, but a batch exposes (and Arrow writes) only its rows, each of which is
 * written before the batch is sealed. Kept by byte length (a buffer of any column type serves any
 * other of the same size); bounded by `maxBytes`; emptied once unused for `idleMs`, so an idle
 * process does not keep it.
 */
export class BatchBufferPool {
  private readonly spare = new Map<number, ArrayBuffer[]>();
  private bytes = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly idleMs: number,
  ) {}

  /** A spare buffer of `kind` with exactly `length` elements, if there is one. */
  take(kind: FixedKind, length: number): FixedArray | undefined {
    const b = this.spare.get(length * FIXED[kind].bytes)?.pop();
    if (b === undefined) return undefined;
    this.bytes -= b.byteLength;
    return FIXED[kind].wrap(b);
  }

  /** Keeps `b` (a whole column buffer that nothing uses any more) for a later take, within the bound. */
  give(b: ArrayBuffer): void {
    // A detached buffer (moved to another thread) has no bytes left.
    if (b.byteLength === 0 || this.bytes + b.byteLength > this.maxBytes) return;
    const list = this.spare.get(b.byteLength);
    if (list) list.push(b);
    else this.spare.set(b.byteLength, [b]);
    this.bytes += b.byteLength;
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.clear(), this.idleMs);
    this.idle.unref();
  }

  /** Drops every spare buffer. */
  clear(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    this.spare.clear();
    this.bytes = 0;
  }

  /** Bytes held. */
  get size(): number {
    return this.bytes;
  }
}

/** Fixed-width values (and vectors: `lanes` float32 per row), little-endian like the wire. */
class FixedBuffer implements ColumnBuffer {
  private values: FixedArray;
  private bytes: Uint8Array = EMPTY;
  private readonly rowBytes: number;
  /** Buffers handed to sealed batches (see recycle). */
  private sealed: FixedArray[] = [];

  constructor(
    private readonly kind: FixedKind,
    private readonly name: string,
    private readonly type: arrow.DataType,
    private readonly lanes: number,
    private readonly pool: BatchBufferPool | undefined,
  ) {
    this.rowBytes = FIXED[kind].bytes * lanes;
    this.values = FIXED[kind].make(0);
  }

  get byteLength(): number {
    return this.bytes.byteLength;
  }

  reserve(capacity: number, used: number): void {
    const length = capacity * this.lanes;
    const grown = this.pool?.take(this.kind, length) ?? FIXED[this.kind].make(length);
    const bytes = new Uint8Array(grown.buffer, grown.byteOffset, grown.byteLength);
    bytes.set(this.bytes.subarray(0, used * this.rowBytes));
    const outgrown = this.values;
    this.values = grown;
    this.bytes = bytes;
    if (outgrown.length > 0) this.pool?.give(outgrown.buffer as ArrayBuffer); // copied: nothing refers to it
  }

  copyEncoded(c: InsertColumns, i: number, from: number, to: number, at: number): void {
    const w = this.rowBytes;
    const start = c.valuesAt[i]! + from * w;
    const end = start + (to - from) * w;
    if (HOST_IS_LITTLE_ENDIAN) {
      if (end - start > SMALL_COPY) {
        c.bytes.copy(this.bytes, at * w, start, end);
      } else {
        // A row's scalar (the 8 bytes of a key): a loop costs less than the native copy's call and view.
        const src = c.bytes;
        const dst = this.bytes;
        for (let p = start, o = at * w; p < end; p++, o++) dst[o] = src[p]!;
      }
      return;
    }
    const view = new DataView(c.bytes.buffer, c.bytes.byteOffset + start, end - start);
    const { bytes, read } = FIXED[this.kind];
    const out = this.values as unknown as (number | bigint)[];
    for (let p = 0, o = at * this.lanes; p < end - start; p += bytes, o++) out[o] = read(view, p);
  }

  /** Sets rows [at, at + n) to the same timetick (the table's `_timetick` column). */
  fillTimetick(t: Timetick, at: number, n: number): void {
    const out = this.values as BigUint64Array;
    if (n === 1) out[at] = t;
    else out.fill(t, at, at + n);
  }

  copyColumn(c: Column, from: number, to: number, at: number, where: AppendContext): void {
    const name = this.name;
    switch (c.type) {
      case 'floatVector':
        (this.values as Float32Array).set(c.data.subarray(from * this.lanes, to * this.lanes), at * this.lanes);
        return;
      case 'int32': {
        const out = this.values as Int32Array;
        for (let i = from; i < to; i++) {
          const v = c.data[i];
          if (typeof v !== 'number' || (v | 0) !== v) throw wrongValue(name, where, i, 'an int32', v);
          out[at + i - from] = v;
        }
        return;
      }
      case 'int64': {
        const out = this.values as BigInt64Array;
        for (let i = from; i < to; i++) {
          const v = c.data[i];
          if (!Number.isSafeInteger(v)) throw wrongValue(name, where, i, 'a safe integer', v);
          out[at + i - from] = BigInt(v as number);
        }
        return;
      }
      case 'float':
      case 'double': {
        const out = this.values as Float32Array | Float64Array;
        for (let i = from; i < to; i++) {
          const v = c.data[i];
          if (typeof v !== 'number') throw wrongValue(name, where, i, 'a number', v);
          out[at + i - from] = v;
        }
        return;
      }
      default:
        throw bad(`column ${name} is ${c.type}, not a fixed-width type`, { field: name });
    }
  }

  data(rows: number): arrow.Data {
    if (this.kind !== 'floatVector') {
      return arrow.makeData({ type: this.type as arrow.Int, length: rows, nullCount: 0, data: this.values.subarray(0, rows) as Int32Array });
    }
    const child = arrow.makeData({ type: new arrow.Float32(), length: rows * this.lanes, nullCount: 0, data: (this.values as Float32Array).subarray(0, rows * this.lanes) });
    return arrow.makeData({ type: this.type as arrow.FixedSizeList, length: rows, nullCount: 0, child });
  }

  release(): void {
    if (this.pool && this.values.length > 0) this.sealed.push(this.values);
    this.values = FIXED[this.kind].make(0);
    this.bytes = EMPTY;
  }

  recycle(pool: BatchBufferPool): void {
    for (const a of this.sealed) pool.give(a.buffer as ArrayBuffer);
    this.sealed = [];
  }
}

/** Booleans, one byte each while building, packed into bits when the batch is sealed. */
class BoolBuffer implements ColumnBuffer {
  private values: Uint8Array = EMPTY;

  constructor(private readonly name: string) {}

  get byteLength(): number {
    return this.values.byteLength;
  }

  reserve(capacity: number, used: number): void {
    const grown = new Uint8Array(capacity);
    grown.set(this.values.subarray(0, used));
    this.values = grown;
  }

  copyEncoded(c: InsertColumns, i: number, from: number, to: number, at: number): void {
    const start = c.valuesAt[i]!;
    c.bytes.copy(this.values, at, start + from, start + to); // 0 or 1, checked by the codec
  }

  copyColumn(c: Column, from: number, to: number, at: number, where: AppendContext): void {
    if (c.type !== 'bool') throw bad(`column ${this.name} is ${c.type}, not bool`, { field: this.name });
    for (let i = from; i < to; i++) {
      const v = c.data[i];
      if (typeof v !== 'boolean') throw wrongValue(this.name, where, i, 'a boolean', v);
      this.values[at + i - from] = v ? 1 : 0;
    }
  }

  data(rows: number): arrow.Data {
    const bits = new Uint8Array(Math.ceil(rows / 8));
    for (let i = 0; i < rows; i++) if (this.values[i] === 1) bits[i >> 3]! |= 1 << (i & 7);
    return arrow.makeData({ type: new arrow.Bool(), length: rows, nullCount: 0, data: bits });
  }

  release(): void {
    this.values = EMPTY;
  }

  /** Booleans are a byte per row while building: not worth pooling. */
  recycle(): void {}
}

/** UTF-8 text (varchar, json): Arrow's offsets and one byte buffer per batch. */
class Utf8Buffer implements ColumnBuffer {
  private offsets = new Int32Array(1);
  private bytes: Uint8Array = EMPTY;

  constructor(private readonly name: string) {}

  get byteLength(): number {
    return this.offsets.byteLength + this.bytes.byteLength;
  }

  reserve(capacity: number, used: number): void {
    const grown = new Int32Array(capacity + 1);
    grown.set(this.offsets.subarray(0, used + 1));
    this.offsets = grown;
  }

  /** Text bytes of rows [0, rows). */
  private end(rows: number): number {
    return this.offsets[rows]!;
  }

  /** Makes room for `extra` more text bytes after row `at`; returns where they go. */
  private textRoom(at: number, extra: number): number {
    const start = this.end(at);
    const need = start + extra;
    if (need > MAX_TEXT_BYTES_PER_COLUMN) throw bad('a record batch holds more than 2 GiB of text; lower maxBatchBytes', { field: this.name, bytes: need });
    if (need > this.bytes.byteLength) {
      const grown = new Uint8Array(Math.min(MAX_TEXT_BYTES_PER_COLUMN, Math.max(need, 2 * this.bytes.byteLength, 64 * 1024)));
      grown.set(this.bytes.subarray(0, start));
      this.bytes = grown;
    }
    return start;
  }

  copyEncoded(c: InsertColumns, i: number, from: number, to: number, at: number): void {
    const b = c.bytes;
    const lengthsAt = c.lengthsAt[i]!;
    let src = c.valuesAt[i]!;
    for (let r = 0; r < from; r++) src += b.readUInt32LE(lengthsAt + 4 * r);
    let n = 0;
    for (let r = from; r < to; r++) n += b.readUInt32LE(lengthsAt + 4 * r);
    let p = this.textRoom(at, n);
    b.copy(this.bytes, p, src, src + n);
    for (let r = from; r < to; r++) {
      p += b.readUInt32LE(lengthsAt + 4 * r);
      this.offsets[at + r - from + 1] = p;
    }
  }

  /** Copies already encoded texts (see textsOf). */
  copyTexts(texts: readonly Uint8Array[], from: number, to: number, at: number): void {
    let n = 0;
    for (let i = from; i < to; i++) n += texts[i]!.byteLength;
    let p = this.textRoom(at, n);
    for (let i = from; i < to; i++) {
      const t = texts[i]!;
      this.bytes.set(t, p);
      p += t.byteLength;
      this.offsets[at + i - from + 1] = p;
    }
  }

  /** Text columns are encoded before they are appended (their sizes decide the batches): see copyTexts. */
  copyColumn(): void {
    throw bad(`column ${this.name}: text is appended with copyTexts`, { field: this.name });
  }

  data(rows: number): arrow.Data {
    return arrow.makeData({ type: new arrow.Utf8(), length: rows, nullCount: 0, valueOffsets: this.offsets.subarray(0, rows + 1), data: this.bytes.subarray(0, this.end(rows)) });
  }

  release(): void {
    this.offsets = new Int32Array(1);
    this.bytes = EMPTY;
  }

  /** Text buffers are sized by their batch's text, not by its rows: not pooled. */
  recycle(): void {}
}

/** The UTF-8 of each value of a varchar or json column (json: its JSON text), checked. */
function textsOf(f: FieldSchema, c: Column, where: AppendContext): Uint8Array[] {
  const out = new Array<Uint8Array>(c.data.length);
  if (c.type === 'varchar') {
    c.data.forEach((v, i) => {
      if (typeof v !== 'string') throw wrongValue(f.name, where, i, 'a string', v);
      out[i] = encoder.encode(v);
    });
  } else if (c.type === 'json') {
    c.data.forEach((v, i) => {
      let text: string | undefined;
      try {
        text = JSON.stringify(v) as string | undefined;
      } catch {
        text = undefined;
      }
      if (text === undefined) throw wrongValue(f.name, where, i, 'JSON-serializable', v);
      out[i] = encoder.encode(text);
    });
  }
  return out;
}

function bufferFor(f: FieldSchema, pool: BatchBufferPool | undefined): ColumnBuffer {
  switch (f.type) {
    case 'floatVector':
      return new FixedBuffer('floatVector', f.name, arrowTypeOf('floatVector', f.dim), f.dim ?? 0, pool);
    case 'bool':
      return new BoolBuffer(f.name);
    case 'varchar':
    case 'json':
      return new Utf8Buffer(f.name);
    default:
      return new FixedBuffer(f.type, f.name, arrowTypeOf(f.type), 1, pool);
  }
}

export class TableBuilder {
  /** Buffers in table order: the first field, `_timetick`, the other fields. */
  private readonly buffers: ColumnBuffer[];
  private readonly timeticks: FixedBuffer;
  private readonly textFields: number[];
  private readonly batches: arrow.RecordBatch[] = [];
  private batchRows = 0;
  private batchText = 0;
  private capacity = 0;
  /** Capacity a new batch starts with: that of the last sealed one. */
  private startCapacity: number;
  /** Rows appended so far. */
  rows = 0;
  /** Bytes of the buffers of the sealed batches. */
  private sealedBytes = 0;

  /** `fields` in table order without `_timetick` (the primary key first); `schema` is the table's Arrow schema. */
  constructor(
    private readonly schema: arrow.Schema,
    private readonly fields: readonly FieldSchema[],
    private readonly limits: TableLimits,
    /** Where batch buffers come from and go back to (outgrown, or recycle); none: always fresh. */
    private readonly pool?: BatchBufferPool,
  ) {
    this.timeticks = new FixedBuffer('uint64', TIMETICK_COLUMN, new arrow.Uint64(), 1, pool);
    const own = fields.map((f) => bufferFor(f, pool));
    this.buffers = [own[0]!, this.timeticks, ...own.slice(1)];
    this.textFields = fields.flatMap((f, i) => (f.type === 'varchar' || f.type === 'json' ? [i] : []));
    this.startCapacity = Math.min(INITIAL_BATCH_ROWS, limits.maxRowsPerBatch);
  }

  /** Appends `rows` rows of encoded columns: `order[k]` is the column of field k (table order). */
  appendScanned(columns: InsertColumns, order: Int32Array, rows: number, timetick: Timetick): void {
    const textBytes = this.textFields.length === 0 ? undefined : encodedTextBytes(columns, this.textFields.map((k) => order[k]!));
    for (let r = 0; r < rows; ) {
      const n = this.room(r, rows, textBytes);
      for (let k = 0; k < order.length; k++) this.bufferOf(k).copyEncoded(columns, order[k]!, r, r + n, this.batchRows);
      this.commit(n, timetick);
      r += n;
    }
  }

  /** Appends `rows` rows given as columns, one per field in table order (values checked). */
  appendColumns(columns: readonly Column[], rows: number, timetick: Timetick, where: AppendContext): void {
    const texts = this.fields.map((f, k) => (this.textFields.includes(k) ? textsOf(f, columns[k]!, where) : undefined));
    const textBytes = this.textFields.length === 0 ? undefined : (r: number): number => this.textFields.reduce((n, k) => n + texts[k]![r]!.byteLength, 0);
    for (let r = 0; r < rows; ) {
      const n = this.room(r, rows, textBytes);
      for (let k = 0; k < columns.length; k++) {
        const t = texts[k];
        if (t !== undefined) (this.bufferOf(k) as Utf8Buffer).copyTexts(t, r, r + n, this.batchRows);
        else this.bufferOf(k).copyColumn(columns[k]!, r, r + n, this.batchRows, where);
      }
      this.commit(n, timetick);
      r += n;
    }
  }

  /** The values of the first field (the primary key) of every row so far, in order. */
  firstFieldValues(): (number | string)[] {
    const out: (number | string)[] = [];
    const chunks = this.batches.map((b) => b.data.children[0]!);
    if (this.batchRows > 0) chunks.push(this.buffers[0]!.data(this.batchRows));
    for (const d of chunks) {
      for (const v of arrow.makeVector(d).toArray() as Iterable<bigint | string>) out.push(typeof v === 'bigint' ? Number(v) : v);
    }
    return out;
  }

  /** The table: the sealed batches, at least one (empty) batch. The builder is spent. */
  finish(): arrow.Table {
    if (this.batchRows > 0 || this.batches.length === 0) this.seal();
    return new arrow.Table(this.schema, this.batches);
  }

  /**
   * Gives the sealed batches' buffers back to the pool. Only once nothing refers to the
   * table any more (its files are written): the next segment overwrites them. The builder is spent.
   */
  recycle(): void {
    if (this.pool) for (const b of this.buffers) b.recycle(this.pool);
  }

  /** Buffer of field `k` (table order without `_timetick`). */
  private bufferOf(k: number): ColumnBuffer {
    return this.buffers[k === 0 ? 0 : k + 1]!;
  }

  /**
   * How many of rows [r, rows) of an append go into the current batch, which is sealed first when
   * it is full; makes room for them. `textBytes(i)` is row i's text size (undefined: no text).
   */
  private room(r: number, rows: number, textBytes: ((i: number) => number) | undefined): number {
    const { maxRowsPerBatch, maxBatchBytes } = this.limits;
    if (this.batchRows === maxRowsPerBatch) this.seal();
    let n = Math.min(rows - r, maxRowsPerBatch - this.batchRows);
    if (textBytes !== undefined) {
      let fit = 0;
      for (; fit < n; fit++) {
        const b = textBytes(r + fit);
        if (this.batchRows + fit > 0 && this.batchText + b > maxBatchBytes) break;
        this.batchText += b;
      }
      if (fit === 0) {
        // The next row's text does not fit beside the batch's: it starts the next batch.
        this.seal();
        return this.room(r, rows, textBytes);
      }
      n = fit;
    }
    this.reserve(this.batchRows + n);
    return n;
  }

  /** Counts `n` rows copied at the end of the batch, with their timetick. */
  private commit(n: number, timetick: Timetick): void {
    this.timeticks.fillTimetick(timetick, this.batchRows, n);
    this.batchRows += n;
    this.rows += n;
  }

  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    const capacity = Math.min(this.limits.maxRowsPerBatch, Math.max(rows, this.startCapacity, GROWTH * this.capacity));
    for (const b of this.buffers) b.reserve(capacity, this.batchRows);
    this.capacity = capacity;
  }

  /** Bytes of the buffers held: the sealed batches' and the one being built (its whole capacity). */
  get heldBytes(): number {
    let n = this.sealedBytes;
    for (const b of this.buffers) n += b.byteLength;
    return n;
  }

  private seal(): void {
    for (const b of this.buffers) this.sealedBytes += b.byteLength;
    const children = this.buffers.map((b) => b.data(this.batchRows));
    this.batches.push(new arrow.RecordBatch(this.schema, arrow.makeData({ type: new arrow.Struct(this.schema.fields), length: this.batchRows, nullCount: 0, children })));
    for (const b of this.buffers) b.release();
    this.startCapacity = Math.max(this.startCapacity, this.capacity);
    this.capacity = 0;
    this.batchRows = 0;
    this.batchText = 0;
  }
}

/** Row r's text size over encoded text columns `text` of `c`. */
function encodedTextBytes(c: InsertColumns, text: readonly number[]): (r: number) => number {
  const lengthsAt = text.map((i) => c.lengthsAt[i]!);
  return (r) => {
    let n = 0;
    for (const at of lengthsAt) n += c.bytes.readUInt32LE(at + 4 * r);
    return n;
  };
}
