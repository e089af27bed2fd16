/**
 * Messages of the coordinator actor. Node membership arrives as nodeUp/nodeDown (standalone: the
 * runtime; cluster: lease discovery); nodes report pchannels they gave up; clients read and watch
 * the assignment, manage the catalog and request transfers.
 */
import type { Ref } from 'nact';
import type { StreamingError } from '../../runtime/errors';
import type { Reply } from '../wal/messages';
import type { ClusterStatus, CollectionInfo, CreateCollectionRequest, FlushResult, PartitionInfo, TransferResult } from '../../runtime/client/api';
import type { Assignment } from '../../runtime/client/transport';
import type { PChannelMeta } from './channel-meta';
import type { CollectionRecord } from './store';

export type CoordinatorMsg =
  | { type: 'nodeUp'; nodeId: string }
  | { type: 'nodeDown'; nodeId: string }
  | { type: 'reportUnavailable'; pchannel: string; term: number; nodeId: string; reason: string }
  | { type: 'getAssignment'; replyTo: Ref<Reply<Assignment>> }
  | { type: 'watchAssignment'; afterVersion: number; timeoutMs: number; replyTo: Ref<Reply<Assignment>> }
  | { type: 'transfer'; pchannel: string; toNode?: string; replyTo: Ref<Reply<TransferResult>> }
  | { type: 'createCollection'; req: CreateCollectionRequest; replyTo: Ref<Reply<CollectionInfo>> }
  | { type: 'dropCollection'; name: string; replyTo: Ref<Reply<void>> }
  | { type: 'createPartition'; collection: string; partition: string; replyTo: Ref<Reply<PartitionInfo>> }
  | { type: 'dropPartition'; collection: string; partition: string; replyTo: Ref<Reply<void>> }
  | { type: 'describeCollection'; name: string; replyTo: Ref<Reply<CollectionInfo>> }
  | { type: 'listCollections'; replyTo: Ref<Reply<CollectionInfo[]>> }
  | { type: 'flushCollection'; name: string; replyTo: Ref<Reply<FlushResult>> }
  | { type: 'status'; replyTo: Ref<Reply<ClusterStatus>> }
  | { type: 'shutdown'; replyTo: Ref<Reply<void>> }
  // completions
  | { type: 'loaded'; channels: PChannelMeta[]; collections: CollectionRecord[]; versionEpoch: number }
  | { type: 'verified' }
  | { type: 'loadFailed'; error: StreamingError }
  | { type: 'watchTimeout'; watchId: number };
