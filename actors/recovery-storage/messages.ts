/** Messages of the recovery-storage actor (a child of a WAL actor). */
import type { Ref } from 'nact';
import type { Reply } from '../../runtime/ask';
import type { LogMessage } from '../../runtime/message/types';

export interface RecoveryStatus {
  pchannel: string;
  term: number;
  checkpoint: { id: string; timetick: string } | undefined;
  persistedCheckpoint: { id: string; timetick: string } | undefined;
  segments: { growing: number; sealed: number; flushed: number; dropped: number };
  dirtyMessages: number;
  truncatedBelow: string | undefined;
  flushJobsSubmitted: number;
}

export type RecoveryMsg =
  /** Persisted messages, in log order, and the bytes the WAL wrote for each. */
  | { type: 'observe'; messages: LogMessage[]; bytes: Uint8Array[] }
  | { type: 'persistNow'; replyTo?: Ref<Reply<void>> }
  | { type: 'status'; replyTo: Ref<RecoveryStatus> }
  | { type: 'close'; replyTo: Ref<Reply<void>> }
  // completions and timers
  | { type: 'tick' }
  | { type: 'gapOver' }
  | { type: 'persisted'; error?: unknown }
  | { type: 'flushed'; segmentId: number };
