/**
 * Messages of the WAL actor (one per pchannel). Requests carry `replyTo`; storage completions come
 * back as messages (`opened`, `appendPersisted`, `appendFailed`) so the handler never awaits I/O.
 */
import type { Ref } from 'nact';
import type { StreamingError } from '../../runtime/errors';
import type { MessageId } from '../../runtime/message/message-id';
import type { LogMessage, Message, NewMessage } from '../../runtime/message/types';
import type { WalLog } from '../../storage/wal/backend';
import type { AppendResult } from './interceptors/interceptor';
import type { Scanner, SubscribeOptions } from './scanner/scanner';
import type { IdempotencyWindow } from './idempotency';
import type { RecoveryState } from '../recovery-storage/state';

export type { Reply } from '../../runtime/ask';
import type { Reply } from '../../runtime/ask';

/** One append of an `appendBatch`: answered exactly once through `reply`. */
export interface AppendEntry {
  message: NewMessage | Message;
  /** Called as a method (entries may be class instances). */
  reply(r: Reply<AppendResult>): void;
}

export interface WalStatus {
  pchannel: string;
  term: number;
  state: 'opening' | 'open' | 'fenced' | 'closing' | 'closed' | 'failed';
  lastTimetick: string;
  lastPersistedId: MessageId;
  writeAheadBuffer: { entries: number; bytes: number };
  pendingAppends: number;
  inFlightWrite: number;
  openTransactions: number;
  subscribers: number;
  /** The pacer's choice (GroupCommitPacer) and what it is based on: medians of the main thread's time per append and of a write. */
  groupCommit: { mode: 'overlap' | 'merge'; busyUsPerAppend: number; writeMs: number };
}

export type WalMsg =
  // requests
  | { type: 'append'; message: NewMessage | Message; replyTo: Ref<Reply<AppendResult>> }
  /**
   * Appends from one in-process caller (WalHandle), coalesced while the message waits in the
   * mailbox: `entries` may still grow until the actor takes it (then it sets `taken`). Each entry is
   * answered through its own `reply`; `replyTo` gets an acceptance as soon as the batch is taken.
   */
  | { type: 'appendBatch'; entries: AppendEntry[]; taken: boolean; replyTo: Ref<Reply<void>> }
  | { type: 'subscribe'; options: SubscribeOptions; replyTo: Ref<Reply<Scanner>> }
  | { type: 'status'; replyTo: Ref<WalStatus> }
  | { type: 'awaitOpen'; replyTo: Ref<Reply<WalStatus>> }
  | { type: 'close'; replyTo?: Ref<Reply<void>> }
  // completions and timers (sent by the actor to itself)
  | { type: 'opened'; log: WalLog; firstTimeTick: LogMessage; recovered: RecoveryState; idempotency: IdempotencyWindow }
  | { type: 'openFailed'; error: StreamingError }
  | { type: 'startWrite' }
  | { type: 'appendPersisted'; batch: number; ids: MessageId[] }
  | { type: 'appendFailed'; batch: number; error: StreamingError }
  | { type: 'tick' }
  | { type: 'closeDeadline' }
  | { type: 'closed' };
