/**
 * The term of a pchannel on disk: `terms/{epoch}` files (16 hex digits), one per rw open, each
 * written completely (temp file + fsync) and then published with link(2), which fails when the name
 * exists: a lock-free compare-and-set on "the next epoch". The file with the highest epoch holds the
 * current term. Files are never rewritten or deleted, so a name is never reused and the fence check
 * of a writer at epoch e is one stat: "does terms/{e+1} exist?".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChannelFencedError, unrecoverable } from '../../../runtime/errors';
import { errnoCode, fsyncDir, mkdirDurable, unlinkIfExists, writeFileDurably } from './fs-io';
import { hex16 } from './segment-files';

export interface TermRecord {
  /** Ordinal of the rw open (1, 2, …); orders opens, including re-opens at the same term. */
  readonly epoch: number;
  readonly term: number;
}

const EPOCH_RE = /^[0-9a-f]{16}$/;
const TMP_PREFIX = '.tmp-';
/** Temp files older than this are left-overs of a crashed open (ms). */
const STALE_TMP_MS = 60_000;
/** statSync options: undefined for a missing file instead of a throw. */
const STAT_IF_EXISTS = { throwIfNoEntry: false } as const;
let tmpCounter = 0;

export class TermStore {
  readonly dir: string;

  constructor(channelDir: string) {
    this.dir = path.join(channelDir, 'terms');
  }

  /** The newest rw open, or undefined when the pchannel was never opened rw. */
  async latest(): Promise<TermRecord | undefined> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
    let max = -1;
    for (const n of names) if (EPOCH_RE.test(n)) max = Math.max(max, parseInt(n, 16));
    if (max < 0) return undefined;
    return this.readRecord(max);
  }

  /**
   * Claims the next epoch at `term`. Fails with CHANNEL_FENCED when the current term is higher.
   * After this resolves, every writer of an older epoch fails its fence check.
   */
  async claim(pchannel: string, term: number, nowMs: number): Promise<TermRecord> {
    await mkdirDurable(this.dir);
    await this.removeStaleTemps(nowMs);
    for (;;) {
      const latest = await this.latest();
      if (latest && term < latest.term) throw new ChannelFencedError(pchannel, term, latest.term);
      const epoch = (latest?.epoch ?? 0) + 1;
      const tmp = path.join(this.dir, `${TMP_PREFIX}${hex16(epoch)}-${process.pid}-${tmpCounter++}`);
      await writeFileDurably(tmp, JSON.stringify({ term, epoch, pid: process.pid, openedAtMs: nowMs }) + '\n');
      let won = true;
      try {
        await fs.promises.link(tmp, this.file(epoch));
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
        won = false; // another open took this epoch first: look again
      } finally {
        await unlinkIfExists(tmp);
      }
      if (!won) continue;
      await fsyncDir(this.dir);
      return { epoch, term };
    }
  }

  /** True while no rw open newer than `epoch` exists. One stat(2), no allocation on the common path. */
  isLatestSync(epoch: number): boolean {
    if (this.nextFileOf?.epoch !== epoch) this.nextFileOf = { epoch, file: this.file(epoch + 1) };
    return fs.statSync(this.nextFileOf.file, STAT_IF_EXISTS) === undefined;
  }

  /** The path isLatestSync looks at (asked before every write of the writer at that epoch). */
  private nextFileOf: { epoch: number; file: string } | undefined;

  /** The term of the newest open, for error messages (undefined when unreadable). */
  async currentTerm(): Promise<number | undefined> {
    try {
      return (await this.latest())?.term;
    } catch {
      return undefined;
    }
  }

  private file(epoch: number): string {
    return path.join(this.dir, hex16(epoch));
  }

  private async readRecord(epoch: number): Promise<TermRecord> {
    const file = this.file(epoch);
    const text = await fs.promises.readFile(file, 'utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const rec = parsed as { term?: unknown; epoch?: unknown } | undefined;
    if (!rec || !Number.isSafeInteger(rec.term) || rec.epoch !== epoch) {
      throw unrecoverable(`term file ${file} is not valid`, { file, content: text.slice(0, 200) });
    }
    return { epoch, term: rec.term as number };
  }

  private async removeStaleTemps(nowMs: number): Promise<void> {
    const names = await fs.promises.readdir(this.dir);
    for (const n of names) {
      if (!n.startsWith(TMP_PREFIX)) continue;
      const p = path.join(this.dir, n);
      const st = await fs.promises.stat(p).catch(() => undefined);
      if (st && nowMs - st.mtimeMs > STALE_TMP_MS) await unlinkIfExists(p);
    }
  }
}
