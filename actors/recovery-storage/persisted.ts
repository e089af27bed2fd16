/**
 * Recovery state in the MetaStore, in the pchannel owner's namespace (every write a CAS on the
 * owner's term, so a fenced owner writes nothing):
 *   pchannel/<p>/vchannel/<vchannel>  vchannel meta (collections, partitions, schema, state)
 *   pchannel/<p>/segment/<id>         segment meta
 *   pchannel/<p>/flushed/<id>         written by the flush worker when the segment's files are committed
 *   pchannel/<p>/checkpoint           replay starts here
 * Persist order: metadata first, checkpoint after — the checkpoint never gets ahead of the metadata.
 */
import type { KeyWrite, MetaStore } from '../../storage/meta/meta-store';
import { pchannelKey, pchannelPrefix } from '../../storage/meta/meta-store';
import { flushedKeyPath } from '../../storage/flush/flush-queue';
import type { VChannelRecord } from '../wal/vchannel-meta';
import { RecoveryState, type Checkpoint, type SegmentRecord } from './state';

const VCHANNEL = 'vchannel/';
const SEGMENT = 'segment/';
const FLUSHED = flushedKeyPath(0).replace(/0$/, '');
const CHECKPOINT = 'checkpoint';

/** What a pchannel's MetaStore namespace holds: the recovery state as persisted, and the segments the flush worker committed. */
export interface LoadedRecoveryState {
  state: RecoveryState;
  /**
   * Segments with a flush commit. The commit can be newer than the segment's record (its owner died
   * before it persisted the segment again): apply them with `applyFlushed` after the replay, which
   * brings such a record up to date first (its last rows, its flush marker).
   */
  flushed: ReadonlySet<number>;
}

export async function loadRecoveryState(meta: MetaStore, pchannel: string): Promise<LoadedRecoveryState> {
  const prefix = pchannelPrefix(pchannel);
  const all = await meta.list(prefix);
  const state = new RecoveryState();
  const flushed = new Set<number>();
  for (const [key, v] of all) {
    const path = key.slice(prefix.length);
    if (path.startsWith(VCHANNEL)) state.vchannels.importVChannel(JSON.parse(v.value) as VChannelRecord);
    else if (path.startsWith(SEGMENT)) {
      const s = JSON.parse(v.value) as SegmentRecord;
      state.segments.set(s.segmentId, s);
    } else if (path.startsWith(FLUSHED)) flushed.add(Number(path.slice(FLUSHED.length)));
    else if (path === CHECKPOINT) state.checkpoint = JSON.parse(v.value) as Checkpoint;
  }
  state.persistedCheckpoint = state.checkpoint;
  return { state, flushed };
}

/** Marks the committed segments flushed; a record that did not say so yet is dirty (rewritten at the next persist). */
export function applyFlushed(state: RecoveryState, flushed: ReadonlySet<number>): void {
  for (const id of flushed) state.markFlushed(id);
}

/** Writes what is dirty, then the checkpoint. Returns how many keys were written. */
export async function persistRecoveryState(meta: MetaStore, pchannel: string, term: number, state: RecoveryState): Promise<number> {
  const writes: KeyWrite[] = [];
  for (const v of state.dirtyVChannels) writes.push({ key: pchannelKey(pchannel, VCHANNEL + v), value: JSON.stringify(state.vchannels.exportVChannel(v)) });
  for (const id of state.dirtySegments) {
    const s = state.segments.get(id);
    if (s) writes.push({ key: pchannelKey(pchannel, SEGMENT + String(id)), value: JSON.stringify(s) });
  }
  const checkpoint = state.checkpoint;
  const dirtyMessages = state.dirtyMessages;
  state.dirtyVChannels.clear();
  state.dirtySegments.clear();
  state.dirtyMessages = 0;
  try {
    if (writes.length > 0) await meta.casOwnerWrite(pchannel, term, writes);
    if (checkpoint) {
      await meta.casOwnerWrite(pchannel, term, [{ key: pchannelKey(pchannel, CHECKPOINT), value: JSON.stringify(checkpoint) }]);
      state.persistedCheckpoint = checkpoint;
    }
  } catch (e) {
    // Not written: dirty again (unless changed meanwhile, which re-marks them anyway).
    for (const w of writes) {
      const path = w.key.slice(pchannelPrefix(pchannel).length);
      if (path.startsWith(VCHANNEL)) state.dirtyVChannels.add(path.slice(VCHANNEL.length));
      else if (path.startsWith(SEGMENT)) state.dirtySegments.add(Number(path.slice(SEGMENT.length)));
    }
    state.dirtyMessages += dirtyMessages;
    throw e;
  }
  return writes.length + (checkpoint ? 1 : 0);
}

export function flushedWatchPrefix(pchannel: string): string {
  return pchannelPrefix(pchannel) + FLUSHED;
}

export function segmentIdOfFlushedKey(pchannel: string, key: string): number | undefined {
  const prefix = flushedWatchPrefix(pchannel);
  if (!key.startsWith(prefix)) return undefined;
  const id = Number(key.slice(prefix.length));
  return Number.isInteger(id) ? id : undefined;
}
