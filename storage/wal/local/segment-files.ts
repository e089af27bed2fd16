/**
 * Segment files of one pchannel directory and which of them make up the log.
 *
 * A segment file is `{firstSeq}-{epoch}.seg` (both 16 lower-case hex digits): its first record has
 * sequence number `firstSeq`; `epoch` is the rw open that created it (see term-store.ts). A file
 * holds the records [firstSeq, next live file's firstSeq); bytes after that many records are dead.
 *
 * Liveness (the rule that makes fencing work without locks, argued in README.md):
 * - a file is dead when another file has a higher epoch and a firstSeq <= its firstSeq
 *   (a newer rw open cut the log at or before it);
 * - a file is dead when its firstSeq is below the low-water mark left by truncation
 *   (`low-{seq}` marker files; the highest one counts).
 * Every other file is live. Live files, ordered by firstSeq, have non-decreasing epochs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { closeFd, errnoCode, fdatasync, fstatSize, ftruncate, openFd } from './fs-io';
import { SegmentCursor } from './segment-cursor';

export interface SegmentFile {
  readonly name: string;
  readonly firstSeq: number;
  readonly epoch: number;
}

export interface ChannelView {
  /** Live segment files by firstSeq. */
  readonly live: readonly SegmentFile[];
  /** Files that are not part of the log (safe to delete). */
  readonly dead: readonly SegmentFile[];
  /** Highest truncation low-water mark (0 when none). */
  readonly lowWatermark: number;
  /** Names of all low-water mark files. */
  readonly lowMarks: readonly { name: string; seq: number }[];
}

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.seg$/;
const LOW_MARK_RE = /^low-([0-9a-f]{16})$/;

export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function segmentFile(firstSeq: number, epoch: number): SegmentFile {
  return { name: `${hex16(firstSeq)}-${hex16(epoch)}.seg`, firstSeq, epoch };
}

export function lowMarkName(seq: number): string {
  return `low-${hex16(seq)}`;
}

export function parseSegmentName(name: string): SegmentFile | undefined {
  const m = SEGMENT_RE.exec(name);
  if (!m) return undefined;
  return { name, firstSeq: parseInt(m[1]!, 16), epoch: parseInt(m[2]!, 16) };
}

/** Applies the liveness rule to a directory listing. */
export function computeView(names: readonly string[]): ChannelView {
  const files: SegmentFile[] = [];
  const lowMarks: { name: string; seq: number }[] = [];
  for (const name of names) {
    const f = parseSegmentName(name);
    if (f) {
      files.push(f);
      continue;
    }
    const m = LOW_MARK_RE.exec(name);
    if (m) lowMarks.push({ name, seq: parseInt(m[1]!, 16) });
  }
  const lowWatermark = lowMarks.reduce((max, l) => Math.max(max, l.seq), 0);
  // By firstSeq ascending, epoch descending: everything before a file has firstSeq <= its own,
  // so "a higher epoch with firstSeq <= mine exists" is "a higher epoch was seen before me".
  files.sort((a, b) => a.firstSeq - b.firstSeq || b.epoch - a.epoch);
  const live: SegmentFile[] = [];
  const dead: SegmentFile[] = [];
  let maxEpoch = 0;
  for (const f of files) {
    if (f.epoch < maxEpoch || f.firstSeq < lowWatermark) dead.push(f);
    else live.push(f);
    maxEpoch = Math.max(maxEpoch, f.epoch);
  }
  // Same firstSeq and same epoch cannot both exist (same name); a same-firstSeq lower epoch is dead.
  return { live, dead, lowWatermark, lowMarks };
}

export async function readChannelView(channelDir: string): Promise<ChannelView> {
  let names: string[];
  try {
    names = await fs.promises.readdir(channelDir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') names = [];
    else throw e;
  }
  return computeView(names);
}

/** Index of the live file holding `seq` (the last with firstSeq <= seq), or -1. */
export function locate(view: ChannelView, seq: number): number {
  let lo = 0;
  let hi = view.live.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (view.live[mid]!.firstSeq <= seq) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** firstSeq of the first live file after `file` (its exclusive end), or undefined when it is the last. */
export function successorFirst(view: ChannelView, file: SegmentFile): number | undefined {
  for (const f of view.live) if (f.firstSeq > file.firstSeq) return f.firstSeq;
  return undefined;
}

export interface ScanResult {
  /** Complete, valid records from the start of the file. */
  count: number;
  /** Bytes those records take. */
  goodBytes: number;
  fileBytes: number;
  /** How the scan ended: clean end of file, a partial record, or a bad record. */
  end: 'eof' | 'incomplete' | 'corrupt';
}

/** Counts the valid records at the start of a file (chunked reads). */
export async function scanSegment(file: string, seg: SegmentFile, chunkBytes: number): Promise<ScanResult> {
  const fd = await openFd(file, 'r');
  const cursor = new SegmentCursor(fd, seg, chunkBytes);
  try {
    const fileBytes = await fstatSize(fd);
    for (;;) {
      const { entries, stop } = await cursor.peek(Number.MAX_SAFE_INTEGER, 1 << 16);
      cursor.advance(entries.length);
      if (stop === 'eof' || stop === 'incomplete' || stop === 'corrupt') {
        return { count: cursor.seq - seg.firstSeq, goodBytes: cursor.offset, fileBytes, end: stop };
      }
    }
  } finally {
    await cursor.close();
  }
}

/** Truncates a file to `length` bytes and makes that durable. */
export async function truncateDurably(file: string, length: number): Promise<void> {
  const fd = await openFd(file, 'r+');
  try {
    await ftruncate(fd, length);
    await fdatasync(fd);
  } finally {
    await closeFd(fd);
  }
}

/** fdatasync of a file by name. */
export async function syncFile(file: string): Promise<void> {
  const fd = await openFd(file, 'r+');
  try {
    await fdatasync(fd);
  } finally {
    await closeFd(fd);
  }
}

export function segmentPath(channelDir: string, f: SegmentFile): string {
  return path.join(channelDir, f.name);
}
