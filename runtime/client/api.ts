/**
 * The walstream client API: one interface whatever the transport (in-process, HTTP, Redis mailbox).
 * Collections are addressed by name; data goes to the collection's shards (one vchannel each),
 * chosen by primary-key hash. Every call takes an optional deadline; calls that hit a moving
 * pchannel wait until its new owner is ready and retry within that deadline.
 */
import type { AppendResult } from '../../actors/wal/interceptors/interceptor';
import type { DeliverFilters } from '../../actors/wal/scanner/filters';
import type { MessageId } from '../message/message-id';
import type { Timetick } from '../message/timetick';
import type { CollectionSchema, Column, LogMessage, PrimaryKeys } from '../message/types';
import type { DeliverPolicy } from '../../storage/wal/backend';

export type { AppendResult, DeliverFilters, DeliverPolicy };

export interface CallOptions {
  /** Give up after this long (ms). Default: the client's default timeout. */
  timeoutMs?: number;
}

export interface PartitionInfo {
  id: number;
  name: string;
}

export interface CollectionInfo {
  id: number;
  name: string;
  schema: CollectionSchema;
  /** One vchannel per shard, `{pchannel}_{collectionId}v{shard}`. */
  vchannels: string[];
  partitions: PartitionInfo[];
  state: 'creating' | 'normal' | 'dropping' | 'dropped';
}

export interface CreateCollectionRequest {
  name: string;
  schema: CollectionSchema;
  /** Number of shards (vchannels). Default 1. */
  shards?: number;
}

export interface InsertRequest {
  collection: string;
  /** Default "_default". */
  partition?: string;
  columns: Column[];
  /**
   * Makes a retried insert land once: the same key with the same rows is written only once.
   * Default: generated per call (retries inside the call are safe; a caller's own retry needs its own key).
   */
  idempotencyKey?: string;
}

export interface DeleteRequest {
  collection: string;
  partition?: string;
  primaryKeys: PrimaryKeys;
  idempotencyKey?: string;
}

/** Where a write landed: one append per shard that received rows. */
export interface WriteResult {
  rows: number;
  appends: { vchannel: string; rows: number; result: AppendResult }[];
}

export interface FlushResult {
  collection: string;
  /** Segments sealed by this flush, per vchannel. */
  segments: { vchannel: string; segmentIds: number[] }[];
}

export interface SubscribeRequest {
  /** Exactly one of vchannel / pchannel. */
  vchannel?: string;
  pchannel?: string;
  policy: DeliverPolicy;
  filters?: DeliverFilters;
  /** Credit window (messages read ahead of the consumer). */
  credits?: number;
}

/**
 * A subscription that survives pchannel moves: on a move it resumes on the new owner from the
 * last delivered message's last-confirmed id with a timetick filter, so nothing is delivered twice.
 */
export interface Subscription extends AsyncIterable<LogMessage> {
  /** Last delivered timetick (0n before the first). */
  readonly lastTimetick: Timetick;
  readonly lastConfirmedId: MessageId;
  close(): void;
}

/** A transaction on one vchannel (Milvus: single-vchannel transactions). */
export interface ClientTxn {
  readonly vchannel: string;
  readonly id: bigint;
  insert(columns: Column[], partition?: string, o?: CallOptions): Promise<AppendResult>;
  delete(primaryKeys: PrimaryKeys, partition?: string, o?: CallOptions): Promise<AppendResult>;
  commit(o?: CallOptions): Promise<AppendResult>;
  rollback(o?: CallOptions): Promise<AppendResult>;
}

export interface PChannelStatus {
  name: string;
  node: string | undefined;
  term: number;
  state: 'UNINITIALIZED' | 'ASSIGNING' | 'ASSIGNED' | 'UNAVAILABLE';
  /** From the owner's WAL when it answered. */
  lastTimetick?: string;
  writeAheadBufferBytes?: number;
  writeAheadBufferEntries?: number;
  subscribers?: number;
}

export interface NodeStatus {
  id: string;
  state: 'alive' | 'unavailable' | 'stopped';
  pchannels: string[];
}

export interface ClusterStatus {
  assignmentVersion: number;
  nodes: NodeStatus[];
  pchannels: PChannelStatus[];
}

export interface TransferResult {
  pchannel: string;
  from: string | undefined;
  to: string;
  term: number;
  /** Time from the command to the new owner reporting ready. */
  tookMs: number;
}

export interface WalstreamClient {
  createCollection(req: CreateCollectionRequest, o?: CallOptions): Promise<CollectionInfo>;
  dropCollection(name: string, o?: CallOptions): Promise<void>;
  createPartition(collection: string, partition: string, o?: CallOptions): Promise<PartitionInfo>;
  dropPartition(collection: string, partition: string, o?: CallOptions): Promise<void>;
  describeCollection(name: string, o?: CallOptions): Promise<CollectionInfo>;
  listCollections(o?: CallOptions): Promise<CollectionInfo[]>;

  /**
   * Seals every growing segment of the collection (a ManualFlush on each of its vchannels) and
   * returns their ids; their files reach object storage in the background (`flushed` in status).
   */
  flush(collection: string, o?: CallOptions): Promise<FlushResult>;

  insert(req: InsertRequest, o?: CallOptions): Promise<WriteResult>;
  delete(req: DeleteRequest, o?: CallOptions): Promise<WriteResult>;
  /** A transaction on one shard of a collection (shard index, default 0). */
  beginTxn(collection: string, opts?: { shard?: number; keepaliveMs?: number } & CallOptions): Promise<ClientTxn>;

  subscribe(req: SubscribeRequest): Subscription;

  status(o?: CallOptions): Promise<ClusterStatus>;
  /** Moves a pchannel to another node (default: the least loaded other node). */
  transfer(pchannel: string, toNode?: string, o?: CallOptions): Promise<TransferResult>;

  close(): Promise<void>;
}
