/** Transports for a client living in the same process as the coordinator and the nodes: nact queries. */
import type { Ref } from 'nact';
import { ask, type Reply } from '../ask';
import { ErrorCode, StreamingError } from '../errors';
import type { Message, NewMessage } from '../message/types';
import type { CoordinatorMsg } from '../../actors/coordinator/messages';
import type { NodeMsg } from '../../actors/streaming-node/messages';
import type { Scanner, SubscribeOptions } from '../../actors/wal/scanner/scanner';
import type { AppendResult, ClusterStatus, CollectionInfo, CreateCollectionRequest, FlushResult, PartitionInfo, TransferResult } from './api';
import type { Assignment, CoordinatorTransport, NodeSubscription, NodeTransport } from './transport';

export class InProcessCoordinatorTransport implements CoordinatorTransport {
  constructor(private readonly ref: Ref<CoordinatorMsg>) {}

  private q<T>(make: (replyTo: Ref<Reply<T>>) => CoordinatorMsg, timeoutMs: number, what: string): Promise<T> {
    return ask<CoordinatorMsg, T>(this.ref, make, timeoutMs, what);
  }

  getAssignment(timeoutMs: number): Promise<Assignment> {
    return this.q((replyTo) => ({ type: 'getAssignment', replyTo }), timeoutMs, 'get assignment');
  }
  watchAssignment(afterVersion: number, timeoutMs: number): Promise<Assignment> {
    return this.q((replyTo) => ({ type: 'watchAssignment', afterVersion, timeoutMs, replyTo }), timeoutMs + 5_000, 'watch assignment');
  }
  createCollection(req: CreateCollectionRequest, timeoutMs: number): Promise<CollectionInfo> {
    return this.q((replyTo) => ({ type: 'createCollection', req, replyTo }), timeoutMs, `create collection ${req.name}`);
  }
  dropCollection(name: string, timeoutMs: number): Promise<void> {
    return this.q((replyTo) => ({ type: 'dropCollection', name, replyTo }), timeoutMs, `drop collection ${name}`);
  }
  createPartition(collection: string, partition: string, timeoutMs: number): Promise<PartitionInfo> {
    return this.q((replyTo) => ({ type: 'createPartition', collection, partition, replyTo }), timeoutMs, `create partition ${partition}`);
  }
  dropPartition(collection: string, partition: string, timeoutMs: number): Promise<void> {
    return this.q((replyTo) => ({ type: 'dropPartition', collection, partition, replyTo }), timeoutMs, `drop partition ${partition}`);
  }
  describeCollection(name: string, timeoutMs: number): Promise<CollectionInfo> {
    return this.q((replyTo) => ({ type: 'describeCollection', name, replyTo }), timeoutMs, `describe collection ${name}`);
  }
  flushCollection(name: string, timeoutMs: number): Promise<FlushResult> {
    return this.q((replyTo) => ({ type: 'flushCollection', name, replyTo }), timeoutMs, `flush collection ${name}`);
  }
  listCollections(timeoutMs: number): Promise<CollectionInfo[]> {
    return this.q((replyTo) => ({ type: 'listCollections', replyTo }), timeoutMs, 'list collections');
  }
  status(timeoutMs: number): Promise<ClusterStatus> {
    return this.q((replyTo) => ({ type: 'status', replyTo }), timeoutMs, 'status');
  }
  transfer(pchannel: string, toNode: string | undefined, timeoutMs: number): Promise<TransferResult> {
    return this.q((replyTo) => ({ type: 'transfer', pchannel, ...(toNode !== undefined ? { toNode } : {}), replyTo }), timeoutMs, `transfer ${pchannel}`);
  }
}

export class InProcessNodeTransport implements NodeTransport {
  constructor(private readonly nodeRef: (nodeId: string) => Ref<NodeMsg> | undefined) {}

  private ref(node: string, pchannel: string): Ref<NodeMsg> {
    const r = this.nodeRef(node);
    if (!r) throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, `node ${node} is gone`, { details: { node, pchannel } });
    return r;
  }

  append(node: string, pchannel: string, term: number, message: NewMessage | Message, timeoutMs: number): Promise<AppendResult> {
    return ask<NodeMsg, AppendResult>(this.ref(node, pchannel), (replyTo) => ({ type: 'append', pchannel, term, message, replyTo }), timeoutMs, `append to ${pchannel}`);
  }

  async subscribe(node: string, pchannel: string, term: number, options: SubscribeOptions, timeoutMs: number): Promise<NodeSubscription> {
    const scanner = await ask<NodeMsg, Scanner>(this.ref(node, pchannel), (replyTo) => ({ type: 'subscribe', pchannel, term, options, replyTo }), timeoutMs, `subscribe to ${pchannel}`);
    return scanner;
  }
}
