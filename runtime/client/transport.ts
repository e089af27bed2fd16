/**
 * What a client needs from the cluster, whatever carries it (in-process actors, HTTP, Redis mailbox):
 * the coordinator (assignment, catalog, admin) and the streaming nodes (append, subscribe).
 */
import type { NewMessage, Message, LogMessage } from '../message/types';
import type { PChannelState } from '../../actors/coordinator/channel-meta';
import type { SubscribeOptions } from '../../actors/wal/scanner/scanner';
import type {
  AppendResult,
  ClusterStatus,
  CollectionInfo,
  CreateCollectionRequest,
  FlushResult,
  PartitionInfo,
  TransferResult,
} from './api';

export interface ChannelAssignment {
  name: string;
  term: number;
  node: string | undefined;
  state: PChannelState;
}

export interface Assignment {
  /** Increases on every change; survives coordinator restarts. */
  version: number;
  /** Live streaming nodes. */
  nodes: string[];
  channels: ChannelAssignment[];
}

export interface CoordinatorTransport {
  getAssignment(timeoutMs: number): Promise<Assignment>;
  /** Resolves with the first assignment whose version is above `afterVersion`, or the current one after `timeoutMs`. */
  watchAssignment(afterVersion: number, timeoutMs: number): Promise<Assignment>;
  createCollection(req: CreateCollectionRequest, timeoutMs: number): Promise<CollectionInfo>;
  dropCollection(name: string, timeoutMs: number): Promise<void>;
  createPartition(collection: string, partition: string, timeoutMs: number): Promise<PartitionInfo>;
  dropPartition(collection: string, partition: string, timeoutMs: number): Promise<void>;
  describeCollection(name: string, timeoutMs: number): Promise<CollectionInfo>;
  flushCollection(name: string, timeoutMs: number): Promise<FlushResult>;
  listCollections(timeoutMs: number): Promise<CollectionInfo[]>;
  status(timeoutMs: number): Promise<ClusterStatus>;
  transfer(pchannel: string, toNode: string | undefined, timeoutMs: number): Promise<TransferResult>;
}

/** A node-side subscription: messages in order, with credits; `close()` ends it. */
export interface NodeSubscription extends AsyncIterator<LogMessage> {
  close(): void;
}

export interface NodeTransport {
  append(node: string, pchannel: string, term: number, message: NewMessage | Message, timeoutMs: number): Promise<AppendResult>;
  subscribe(node: string, pchannel: string, term: number, options: SubscribeOptions, timeoutMs: number): Promise<NodeSubscription>;
}
