/**
 * Messages of a streaming node: the coordinator assigns and removes pchannels (ordered by term;
 * stale operations are IGNORED_OPERATION), clients append and subscribe at the term they believe
 * current (a wrong node answers CHANNEL_NOT_EXIST, a wrong term UNMATCHED_CHANNEL_TERM).
 */
import type { Ref } from 'nact';
import type { AppendResult } from '../wal/interceptors/interceptor';
import type { Reply, WalStatus } from '../wal/messages';
import type { Scanner, SubscribeOptions } from '../wal/scanner/scanner';
import type { Message, NewMessage } from '../../runtime/message/types';
import type { StreamingError } from '../../runtime/errors';

export interface NodeStatus {
  nodeId: string;
  wals: (WalStatus | { pchannel: string; term: number; state: 'unavailable' | 'opening' })[];
}

export type NodeMsg =
  | { type: 'assign'; pchannel: string; term: number; replyTo: Ref<Reply<void>> }
  | { type: 'remove'; pchannel: string; term: number; replyTo: Ref<Reply<void>> }
  | { type: 'append'; pchannel: string; term: number; message: NewMessage | Message; replyTo: Ref<Reply<AppendResult>> }
  | { type: 'subscribe'; pchannel: string; term: number; options: SubscribeOptions; replyTo: Ref<Reply<Scanner>> }
  | { type: 'status'; replyTo: Ref<NodeStatus> }
  | { type: 'shutdown'; replyTo: Ref<Reply<void>> }
  /** Closes every WAL at once but keeps serving (self-fence after losing the lease). */
  | { type: 'dropAll'; replyTo: Ref<Reply<void>> }
  // from the node's own supervision and completions
  | { type: 'walReady'; pchannel: string; term: number; error?: StreamingError }
  | { type: 'walGaveUp'; pchannel: string; term: number; error: StreamingError }
  | { type: 'walClosed'; pchannel: string; term: number };
