/**
 * Sequential, chunked reader of one segment file: one read(2) per chunk (default 1 MiB), records
 * parsed out of the chunk and handed out as zero-copy subarrays. `peek` never moves the cursor;
 * `advance` commits, so a caller can hold back entries it may not deliver yet.
 *
 * The records of a chunk are checked together (checkedRecordsEnd: one native CRC call for all of
 * them) when a peek first looks at the chunk, from the first record it hands out.
 *
 * Read-ahead: once that check has found where the complete records of a chunk end, a chunk whose
 * read filled it whole (the file goes on) starts the read of the next one, from there, so that a
 * reader going through a file (a flush, a replay) finds the next chunk read while it handles this
 * one instead of waiting for each read(2) in turn. Only a full read-ahead is used; a short one (the
 * tail of the file at the time) is dropped and read again when needed, as a live tail may have
 * grown since. Bytes read ahead are bytes a read a moment later would have found, with one
 * exception the reader takes care of: a file only grows, but its writer undoes a failed write
 * (truncates it and writes the next records at the same offset), so a reader of this process drops
 * what it read (dropBuffered) when a writer has undone a write since (ChannelState.undoneWrites); a
 * reader in another process is not told (the undo leaves no trace in the directory), which is a
 * limit of reading another process's live tail whether bytes were read ahead or not. A cut
 * truncates bytes that were never part of the log, and the reader decides what belongs to the log
 * from the terms, whatever the moment its bytes were read.
 */
import type { LogEntry } from '../backend';
import { sequenceId } from '../../../runtime/message/message-id';
import { CORRUPT, INCOMPLETE, RECORD_HEADER_BYTES, bytesNeeded, checkedRecordsEnd, recordChecksOut, recordLength } from './record-format';
import { closeFd, readAt } from './fs-io';
import type { SegmentFile } from './segment-files';

/**
 * Why a peek stopped: `limit` (reached maxSeq), `max` (maxCount entries), `more` (the buffer ran
 * out; peek again), `eof` (nothing after the last record), `incomplete` (a partial record at the
 * end of the file), `corrupt` (a complete record whose checksum or length is wrong).
 */
export type PeekStop = 'limit' | 'max' | 'more' | 'eof' | 'incomplete' | 'corrupt';

export interface PeekResult {
  entries: LogEntry[];
  stop: PeekStop;
}

export class CursorClosedError extends Error {
  constructor() {
    super('segment cursor closed');
  }
}

const EMPTY = Buffer.alloc(0);
/** Spare chunk buffers a transient reader keeps: the one read ahead and the one read next. */
const MAX_SPARE_CHUNKS = 2;

export class SegmentCursor {
  /** File offset of the next record. */
  offset = 0;
  /** Sequence number of the next record. */
  seq: number;
  private buf: Buffer = EMPTY;
  private bufStart = 0;
  private bufLen = 0;
  /**
   * Buffer offset below which the buffer's records were checked all at once (checkedRecordsEnd),
   * from the first record a peek looked at; -1 until a peek looks at this buffer.
   */
  private checkedEnd = -1;
  /** The last read filled its whole chunk (the file goes on) and its read-ahead is not started yet. */
  private readAheadDue = false;
  private ends: number[] = [];
  private closed = false;
  private io: Promise<unknown> | undefined;
  /** The read of the next chunk, started when the last one came back full. */
  private ahead: { position: number; readonly size: number; readonly read: Promise<{ buf: Buffer; n: number }> } | undefined;

  constructor(
    private readonly fd: number,
    readonly file: SegmentFile,
    private readonly chunkBytes: number,
    /**
     * Chunk buffers to read into again (a transient reader's: see ReadOptions.transient). A buffer
     * goes back here when the cursor reads the next chunk: by then the entries of the batches that
     * were handed out of it are no longer used.
     */
    private readonly spareChunks?: Buffer[],
  ) {
    this.seq = file.firstSeq;
  }

  /** Entries from the cursor on, with sequence < maxSeq, at most maxCount. Reads at most one chunk. */
  async peek(maxSeq: number, maxCount: number): Promise<PeekResult> {
    const entries: LogEntry[] = [];
    this.ends = [];
    let off = this.offset;
    let seq = this.seq;
    let readOnce = false;
    for (;;) {
      if (seq >= maxSeq) return { entries, stop: 'limit' };
      if (entries.length >= maxCount) return { entries, stop: 'max' };
      let rel = off - this.bufStart;
      let r = rel >= 0 && rel <= this.bufLen ? recordLength(this.buf, rel, this.bufLen) : INCOMPLETE;
      if (r === INCOMPLETE) {
        if (entries.length > 0 || readOnce) return { entries, stop: 'more' };
        const got = await this.fillRecord(off);
        readOnce = true;
        rel = 0;
        r = recordLength(this.buf, 0, this.bufLen);
        if (r === INCOMPLETE) return { entries, stop: got === 0 ? 'eof' : 'incomplete' };
      }
      const dataAt = rel + RECORD_HEADER_BYTES;
      const data = r === CORRUPT ? undefined : this.buf.subarray(dataAt, dataAt + r);
      // The records of a fresh buffer are checked together, from the first one handed out; one
      // past them (a corrupt one) is checked on its own, and fails.
      if (this.checkedEnd < 0) {
        this.checkedEnd = checkedRecordsEnd(this.buf, rel, this.bufLen);
        if (this.readAheadDue) this.readAhead(this.checkedEnd);
      }
      if (data === undefined || (rel >= this.checkedEnd && !recordChecksOut(this.buf, rel, data))) {
        // Drop what was read so that a later peek looks at the file again (a live tail may still change).
        if (entries.length === 0) this.dropBuffered();
        return { entries, stop: 'corrupt' };
      }
      entries.push({ id: sequenceId(seq), data, verified: true });
      off += RECORD_HEADER_BYTES + r;
      this.ends.push(off);
      seq++;
    }
  }

  /**
   * Moves the cursor forward to record `toSeq` without handing out entries, reading the file in
   * chunks and stepping from header to header: a reader that starts inside a file does not build
   * an entry for each record before its start. It stops early, before the first record whose bytes
   * are not all there yet and, with `verify`, before the first one that does not check out, so the
   * next peek finds that record and reports it as it would have without the skip.
   * `verify` false (lengths only, no CRC) is for records that were complete and valid before the
   * file got its successor (a sealed file: the writer fdatasyncs it before rolling over, a cut
   * scans it): their checksums protect data nobody asked for. Whatever is delivered from the
   * landing position on is checked by peek as always.
   */
  async skip(toSeq: number, verify: boolean): Promise<void> {
    this.ends = [];
    let scratch: Buffer | undefined;
    while (this.seq < toSeq) {
      const rel = this.offset - this.bufStart;
      let r = rel >= 0 && rel <= this.bufLen ? recordLength(this.buf, rel, this.bufLen) : INCOMPLETE;
      if (r === INCOMPLETE) {
        // Nothing of these chunks is handed out: the buffer of this skip's last read serves the next.
        await this.fillRecord(this.offset, scratch);
        scratch = this.buf;
        r = recordLength(this.buf, 0, this.bufLen);
        if (r === INCOMPLETE) return;
      }
      if (r === CORRUPT) return;
      const at = this.offset - this.bufStart;
      if (verify && !recordChecksOut(this.buf, at, this.buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + r))) return;
      this.offset += RECORD_HEADER_BYTES + r;
      this.seq++;
    }
  }

  /** Forgets what was read (the buffer and the read-ahead): the next peek reads the file again. */
  dropBuffered(): void {
    this.bufLen = 0;
    this.checkedEnd = -1;
    this.readAheadDue = false;
    if (this.ahead) this.ahead.position = -1; // still waited for before the fd closes, never used
  }

  /** Moves past the first `n` entries of the last peek. */
  advance(n: number): void {
    if (n <= 0) return;
    const end = this.ends[n - 1];
    if (end === undefined) throw new Error(`advance(${n}) beyond the ${this.ends.length} peeked entries`);
    this.offset = end;
    this.seq += n;
    this.ends = [];
  }

  /** Closes the fd once no read is in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.io) await this.io.catch(() => undefined);
    if (this.ahead) await this.ahead.read.catch(() => undefined);
    this.ahead = undefined;
    await closeFd(this.fd);
  }

  /** Bytes to read at `position` to see all of the record there (its header when nothing of it is buffered). */
  private bytesNeededAt(position: number): number {
    const rel = position - this.bufStart;
    return rel >= 0 && rel <= this.bufLen ? bytesNeeded(this.buf, rel, this.bufLen) : RECORD_HEADER_BYTES;
  }

  /**
   * Reads at `position` a chunk (or all of the record there, when its header is already buffered).
   * When the header only came with this read and shows a record longer than what was read (a
   * record larger than a chunk), reads all of that record. Returns what the last read got (0: end
   * of file). `scratch`: see fill.
   */
  private async fillRecord(position: number, scratch?: Buffer): Promise<number> {
    const got = await this.fill(position, Math.max(this.chunkBytes, this.bytesNeededAt(position)), scratch);
    if (got === 0 || recordLength(this.buf, 0, this.bufLen) !== INCOMPLETE) return got;
    const need = this.bytesNeededAt(position);
    return need <= this.bufLen ? got : this.fill(position, need, scratch);
  }

  /**
   * One read at `position` into a new buffer, or into `scratch` when it is large enough (a buffer
   * of which no entry holds a view: skip's); or the read-ahead of that chunk when it was started
   * and came back full.
   */
  private async fill(position: number, size: number, scratch?: Buffer): Promise<number> {
    if (this.closed) throw new CursorClosedError();
    const ahead = this.ahead;
    this.ahead = undefined;
    let buf: Buffer | undefined;
    let n = 0;
    if (ahead) {
      // Wait for it in any case, as for any read in flight.
      const done = await this.inFlight(ahead.read).catch(() => undefined);
      if (this.closed) throw new CursorClosedError();
      if (done && ahead.position === position && ahead.size >= size && done.n === ahead.size) ({ buf, n } = done);
      else if (done) this.spare(done.buf);
    }
    if (buf === undefined) {
      const into = scratch !== undefined && scratch.length >= size ? scratch : undefined;
      buf = into ?? this.newChunk(size);
      n = await this.inFlight(readAt(this.fd, buf, 0, size, position));
      // A short read of a regular file means end of file. Keep small reads in a right-sized copy, so
      // that entries handed out do not pin a mostly empty chunk.
      if (n < size >>> 2 && into === undefined) {
        const read = buf;
        buf = Buffer.from(buf.subarray(0, n));
        this.spare(read);
      }
    }
    if (buf !== this.buf) this.spare(this.buf);
    this.buf = buf;
    this.bufStart = position;
    this.bufLen = n;
    this.checkedEnd = -1;
    this.readAheadDue = n === size && scratch === undefined;
    return n;
  }

  /** Waits for a read, as the one in flight that close() waits for before it closes the fd. */
  private async inFlight<T>(read: Promise<T>): Promise<T> {
    this.io = read;
    try {
      return await read;
    } finally {
      this.io = undefined;
    }
  }

  /** A buffer of `size` bytes to read into: a spare chunk buffer when there is one. */
  private newChunk(size: number): Buffer {
    return (size === this.chunkBytes ? this.spareChunks?.pop() : undefined) ?? Buffer.allocUnsafe(size);
  }

  /** Keeps a chunk buffer nobody reads from any more for a later read (a transient reader's; at most a few). */
  private spare(buf: Buffer): void {
    const spare = this.spareChunks;
    if (spare !== undefined && buf.length === this.chunkBytes && spare.length < MAX_SPARE_CHUNKS) spare.push(buf);
  }

  /**
   * Starts reading the chunk at buffer offset `at`, the end of the buffer's complete records (found
   * by the check of its records: see the class).
   */
  private readAhead(at: number): void {
    this.readAheadDue = false;
    if (at === 0 || this.closed) return; // a record larger than the chunk: fillRecord reads it whole
    const position = this.bufStart + at;
    const size = this.chunkBytes;
    const buf = this.newChunk(size);
    const read = readAt(this.fd, buf, 0, size, position).then((n) => ({ buf, n }));
    read.catch(() => undefined); // an error surfaces, if at all, through the read that replaces it
    this.ahead = { position, size, read };
  }
}
