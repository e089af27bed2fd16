/**
 * WAL backend on local files: one directory per pchannel holding segment files of
 * length+CRC-framed records, the pchannel's term records (terms/) and truncation marks.
 * See ../README.md for the format and ./README.md for the fencing argument.
 *
 * Only for disks every would-be owner of a pchannel sees with local-file semantics (standalone,
 * or nodes sharing one host): a moved pchannel must be readable by its new owner.
 */
import * as path from 'node:path';
import { validateChannel, type PChannelInfo, type WalBackend, type WalLog } from '../backend';
import { ErrorCode, StreamingError } from '../../../runtime/errors';
import { ChannelState } from './channel-state';
import { closeFd, fsyncDir, mkdirDurable, openFd, unlinkIfExists } from './fs-io';
import { LocalWalLog } from './local-wal-log';
import { type LocalWalBackendOptions, type ResolvedLocalOptions, resolveLocalOptions } from './options';
import { readChannelView, scanSegment, segmentFile, segmentPath, syncFile, truncateDurably } from './segment-files';
import { SegmentWriter, type LocalWalStats } from './segment-writer';

export type { LocalWalStats } from './segment-writer';

export type { FsyncPolicy, LocalWalBackendOptions, LocalWalLogger } from './options';
export { LOCAL_WAL_DEFAULTS } from './options';

export class LocalWalBackend implements WalBackend {
  readonly name = 'local';
  readonly stats: LocalWalStats = { writes: 0, syncs: 0, records: 0 };
  private readonly opts: ResolvedLocalOptions;
  private readonly channels = new Map<string, ChannelState>();
  private readonly logs = new Set<LocalWalLog>();
  private closing: Promise<void> | undefined;

  constructor(options: LocalWalBackendOptions) {
    this.opts = resolveLocalOptions(options);
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Directory of a pchannel under `dir`. */
  channelDir(pchannel: string): string {
    return path.join(this.opts.dir, pchannelDirName(pchannel));
  }

  async open(channel: PChannelInfo): Promise<WalLog> {
    validateChannel(channel);
    if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'local wal backend is closed');
    const state = this.channelState(channel.name);
    const info: PChannelInfo = { name: channel.name, term: channel.term, accessMode: channel.accessMode };
    const log = await state.exclusive(async () => {
      if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'local wal backend is closed');
      if (info.accessMode === 'ro') return new LocalWalLog(info, state, this.opts, this, undefined);
      return this.openRw(info, state);
    });
    this.logs.add(log);
    if (this.closed) {
      await log.close();
      throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'local wal backend is closed');
    }
    return log;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const results = await Promise.allSettled([...this.logs].map((l) => l.close()));
      for (const r of results) {
        if (r.status === 'rejected') this.opts.logger.warn('closing a wal log failed', { error: String(r.reason) });
      }
      this.logs.clear();
      for (const s of this.channels.values()) s.notify();
    })();
    return this.closing;
  }

  /** @internal */
  forget(log: LocalWalLog): void {
    this.logs.delete(log);
  }

  private channelState(pchannel: string): ChannelState {
    let s = this.channels.get(pchannel);
    if (!s) {
      s = new ChannelState(pchannel, this.channelDir(pchannel));
      this.channels.set(pchannel, s);
    }
    return s;
  }

  /**
   * rw open: claim the next epoch at the term (the fence point), then cut the log: scan the last
   * live file, drop its torn tail, make it durable, and start a new segment file at the next
   * sequence number with the new epoch. Whatever an older writer writes after this cut is dead.
   */
  private async openRw(info: PChannelInfo, state: ChannelState): Promise<LocalWalLog> {
    const { dir } = state;
    await mkdirDurable(dir);
    const claimed = await state.terms.claim(info.name, info.term, this.opts.clock.now());
    // In-process half of the fence: older handles of this instance now fail without any I/O.
    state.latestEpoch = claimed.epoch;
    state.latestTerm = claimed.term;
    state.writer = undefined;
    state.notify();

    const view = await readChannelView(dir);
    let firstSeq = Math.max(1, view.lowWatermark);
    const last = view.live[view.live.length - 1];
    if (last) {
      const file = segmentPath(dir, last);
      const scan = await scanSegment(file, last, this.opts.readChunkBytes);
      if (scan.goodBytes < scan.fileBytes) {
        this.opts.logger.warn('cutting the tail of a segment', {
          pchannel: info.name,
          file: last.name,
          records: scan.count,
          keptBytes: scan.goodBytes,
          cutBytes: scan.fileBytes - scan.goodBytes,
          reason: scan.end,
        });
        await truncateDurably(file, scan.goodBytes);
      } else {
        await syncFile(file);
      }
      firstSeq = last.firstSeq + scan.count;
    }
    const active = segmentFile(firstSeq, claimed.epoch);
    const fd = await openFd(segmentPath(dir, active), 'wx');
    try {
      await fsyncDir(dir);
      // Superseded empty files and strays of fenced writers are not part of the log: remove them.
      const after = await readChannelView(dir);
      let removed = false;
      for (const f of after.dead) removed = (await unlinkIfExists(segmentPath(dir, f))) || removed;
      if (removed) await fsyncDir(dir);
    } catch (e) {
      await closeFd(fd).catch(() => undefined);
      throw e;
    }
    const writer = new SegmentWriter(state, info.term, claimed.epoch, { file: active, fd, bytes: 0 }, this.opts, this.stats);
    if (state.latestEpoch === claimed.epoch) state.writer = writer;
    state.notify();
    return new LocalWalLog(info, state, this.opts, this, writer);
  }
}

/** File-system-safe, reversible directory name of a pchannel (bytes outside [A-Za-z0-9_-] as %XX). */
export function pchannelDirName(pchannel: string): string {
  let out = '';
  for (const b of Buffer.from(pchannel, 'utf8')) {
    const safe = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b === 0x2d;
    out += safe ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
