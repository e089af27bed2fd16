/**
 * Recovery of a pchannel on open: load the persisted state, then replay the WAL from the
 * checkpoint up to the new term's first TimeTick (messages at or below the checkpoint's timetick
 * are skipped; messages of unknown or dropped collections are tolerated), then apply the flush
 * commits. Logs progress with rate and ETA on long replays.
 */
import type { Clock } from '../../runtime/clock';
import type { Logger } from '../../runtime/logger';
import { decodeHeader, decodeMessage } from '../../runtime/message/codec';
import type { MessageId } from '../../runtime/message/message-id';
import type { LogMessage } from '../../runtime/message/types';
import { forEachEntry, type WalLog } from '../../storage/wal/backend';
import type { MetaStore } from '../../storage/meta/meta-store';
import { applyFlushed, loadRecoveryState } from './persisted';
import type { RecoveryState } from './state';

/** Decode options for entries whose bytes the backend already checked. */
const VERIFIED = { verified: true } as const;

export interface ReplayProgress {
  pchannel: string;
  replayed: number;
  /** Messages between the start of the replay and its end, when the backend's ids tell. */
  total?: number;
  /** True on the last report (the replay finished). */
  done?: boolean;
  ratePerSec: number;
  /** Seconds left, when the backend's ids tell how far the end is. */
  etaSec?: number;
}

export interface Recovered {
  state: RecoveryState;
  /** Messages replayed into the state (those above the checkpoint). */
  replayed: number;
}

const HEX16 = /^[0-9a-f]{16}$/;

function seqOf(id: MessageId): number | undefined {
  return HEX16.test(id) ? parseInt(id, 16) : undefined;
}

export async function recover(opts: {
  pchannel: string;
  log: WalLog;
  meta: MetaStore;
  /** The new term's first TimeTick: replay stops before it. */
  untilId: MessageId;
  clock: Clock;
  logger: Logger;
  onMessage?: (m: LogMessage) => void;
  onProgress?: (p: ReplayProgress) => void;
  progressEveryMs?: number;
}): Promise<Recovered> {
  const { pchannel, log, meta, untilId, clock, logger } = opts;
  const { state, flushed } = await loadRecoveryState(meta, pchannel);
  const cp = state.checkpoint;
  const skipAtOrBelow = cp ? BigInt(cp.timetick) : -1n;
  // Read from the idempotency window's start when it is before the checkpoint: messages up to the
  // checkpoint only rebuild the window, the rest also rebuild the state.
  const from = cp === undefined ? undefined : cp.windowFrom !== undefined && cp.windowFrom < cp.id ? cp.windowFrom : cp.id;
  const t0 = clock.monotonic();
  let lastReport = t0;
  let replayed = 0;
  const startSeq = cp ? seqOf(cp.id) : 1;
  const endSeq = seqOf(untilId);
  // Transient: nothing of an entry is kept but what is decoded from it.
  await forEachEntry(log, { policy: from ? { type: 'startFrom', id: from } : { type: 'all' }, transient: true }, (entry) => {
    if (entry.id >= untilId) return false;
    // Headers are enough for everything but CreateCollection (its schema): skip decoding bodies.
    const verified = entry.verified === true ? VERIFIED : undefined;
    const h = decodeHeader(entry.data, verified);
    const aboveCheckpoint = h.timetick > skipAtOrBelow;
    const m = (aboveCheckpoint && h.type === 'CreateCollection' ? decodeMessage(entry.data, verified) : h) as LogMessage;
    m.id = entry.id;
    m.size = entry.data.length;
    opts.onMessage?.(m);
    if (!aboveCheckpoint) return true;
    state.observe(m);
    replayed++;
    const now = clock.monotonic();
    if (now - lastReport >= (opts.progressEveryMs ?? 1000)) {
      lastReport = now;
      const rate = replayed / ((now - t0) / 1000);
      const cur = seqOf(entry.id);
      const p: ReplayProgress = { pchannel, replayed, ratePerSec: Math.round(rate) };
      if (cur !== undefined && endSeq !== undefined && startSeq !== undefined && rate > 0) {
        p.etaSec = Math.max(0, (endSeq - cur) / rate);
        p.total = Math.max(replayed, endSeq - startSeq);
      }
      logger.info('replaying pchannel', { ...p, ...(p.etaSec !== undefined ? { etaSec: Math.round(p.etaSec) } : {}) });
      opts.onProgress?.(p);
    }
    return true;
  });
  // After the replay: a segment committed by the flush worker after its record was last persisted
  // first gets the rows and the flush marker its record lacks, then its flushed state.
  applyFlushed(state, flushed);
  const ms = clock.monotonic() - t0;
  if (ms >= (opts.progressEveryMs ?? 1000)) opts.onProgress?.({ pchannel, replayed, total: replayed, ratePerSec: Math.round(replayed / (ms / 1000)), etaSec: 0, done: true });
  logger.info('pchannel recovered', {
    pchannel,
    fromCheckpoint: cp?.id ?? '(start)',
    replayed,
    ms: Math.round(ms),
    ratePerSec: ms > 0 ? Math.round(replayed / (ms / 1000)) : replayed,
    segments: state.segments.size,
  });
  return { state, replayed };
}
