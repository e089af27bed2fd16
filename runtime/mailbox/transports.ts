/**
 * The client transports over a mailbox (what runtime/client/in-process.ts does with nact queries,
 * across processes) and the server adapters that dispatch mailbox commands to the coordinator and
 * streaming-node actors with `ask`/`query`.
 *
 * Addresses: the coordinator serves COORDINATOR_ADDRESS, a node serves `nodeAddress(nodeId)`.
 * Subscriptions: the node's Scanner is the stream's iterator — the scanner's own credit window bounds
 * what the node reads ahead into memory, the mailbox credits bound what is on the wire.
 */
import { query, type Ref } from 'nact';
import { ask, type Reply } from '../ask';
import { ErrorCode, StreamingError } from '../errors';
import type { Message, NewMessage } from '../message/types';
import type { AppendResult, ClusterStatus, CollectionInfo, CreateCollectionRequest, FlushResult, PartitionInfo, TransferResult } from '../client/api';
import type { Assignment, CoordinatorTransport, NodeSubscription, NodeTransport } from '../client/transport';
import type { NodeControl } from '../../actors/coordinator/coordinator-actor';
import type { CoordinatorMsg } from '../../actors/coordinator/messages';
import type { NodeMsg, NodeStatus } from '../../actors/streaming-node/messages';
import type { Scanner, SubscribeOptions } from '../../actors/wal/scanner/scanner';
import type { CoordinatorCommand, NodeCommand } from './commands';
import type { CallHandler, Mailbox, MailboxServer, RequestContext, ServeOptions, StreamHandler } from './mailbox';

/** Every coordinator command has a handler (a new command fails to compile until served). */
type CoordinatorHandlers = { [T in CoordinatorCommand['type']]: CallHandler<T> };
/** Every node command has a handler. */
type NodeHandlers = { [T in Exclude<NodeCommand['type'], 'subscribe'>]: CallHandler<T> } & { subscribe: StreamHandler<'subscribe'> };

/** The coordinator's address. */
export const COORDINATOR_ADDRESS = 'coordinator';

/** A streaming node's address. */
export function nodeAddress(nodeId: string): string {
  return `node.${nodeId}`;
}

/** watchAssignment waits `timeoutMs` at the coordinator; the request's own deadline allows this much more. */
export const WATCH_MARGIN_MS = 5_000;

// ---------------------------------------------------------------- client side

export class MailboxCoordinatorTransport implements CoordinatorTransport {
  constructor(
    private readonly mailbox: Mailbox,
    private readonly address: string = COORDINATOR_ADDRESS,
  ) {}

  getAssignment(timeoutMs: number): Promise<Assignment> {
    return this.mailbox.request(this.address, { type: 'getAssignment' }, { timeoutMs });
  }
  watchAssignment(afterVersion: number, timeoutMs: number): Promise<Assignment> {
    return this.mailbox.request(this.address, { type: 'watchAssignment', afterVersion, timeoutMs: Math.max(0, Math.floor(timeoutMs)) }, { timeoutMs: timeoutMs + WATCH_MARGIN_MS });
  }
  createCollection(req: CreateCollectionRequest, timeoutMs: number): Promise<CollectionInfo> {
    return this.mailbox.request(this.address, { type: 'createCollection', req }, { timeoutMs });
  }
  dropCollection(name: string, timeoutMs: number): Promise<void> {
    return this.mailbox.request(this.address, { type: 'dropCollection', name }, { timeoutMs });
  }
  createPartition(collection: string, partition: string, timeoutMs: number): Promise<PartitionInfo> {
    return this.mailbox.request(this.address, { type: 'createPartition', collection, partition }, { timeoutMs });
  }
  dropPartition(collection: string, partition: string, timeoutMs: number): Promise<void> {
    return this.mailbox.request(this.address, { type: 'dropPartition', collection, partition }, { timeoutMs });
  }
  describeCollection(name: string, timeoutMs: number): Promise<CollectionInfo> {
    return this.mailbox.request(this.address, { type: 'describeCollection', name }, { timeoutMs });
  }
  listCollections(timeoutMs: number): Promise<CollectionInfo[]> {
    return this.mailbox.request(this.address, { type: 'listCollections' }, { timeoutMs });
  }
  flushCollection(name: string, timeoutMs: number): Promise<FlushResult> {
    return this.mailbox.request(this.address, { type: 'flushCollection', name }, { timeoutMs });
  }
  status(timeoutMs: number): Promise<ClusterStatus> {
    return this.mailbox.request(this.address, { type: 'status' }, { timeoutMs });
  }
  transfer(pchannel: string, toNode: string | undefined, timeoutMs: number): Promise<TransferResult> {
    return this.mailbox.request(this.address, { type: 'transfer', pchannel, ...(toNode !== undefined ? { toNode } : {}) }, { timeoutMs });
  }
}

export interface MailboxNodeTransportOptions {
  /** Address of a node. Default `nodeAddress`. */
  addressOf?: (nodeId: string) => string;
  /** Wire credits of a subscription that names none (its `credits` option sets both windows). Default: the mailbox's defaultCredits. */
  credits?: number;
}

export class MailboxNodeTransport implements NodeTransport {
  private readonly addressOf: (nodeId: string) => string;

  constructor(
    private readonly mailbox: Mailbox,
    private readonly opts: MailboxNodeTransportOptions = {},
  ) {
    this.addressOf = opts.addressOf ?? nodeAddress;
  }

  append(node: string, pchannel: string, term: number, message: NewMessage | Message, timeoutMs: number): Promise<AppendResult> {
    return this.mailbox.request(this.addressOf(node), { type: 'append', pchannel, term, message }, { timeoutMs });
  }

  subscribe(node: string, pchannel: string, term: number, options: SubscribeOptions, timeoutMs: number): Promise<NodeSubscription> {
    const credits = options.credits ?? this.opts.credits;
    return this.mailbox.openStream(this.addressOf(node), { type: 'subscribe', pchannel, term, options }, { timeoutMs, ...(credits !== undefined ? { credits } : {}) });
  }
}

/** How the coordinator reaches streaming nodes across processes. */
export class MailboxNodeControl implements NodeControl {
  private readonly addressOf: (nodeId: string) => string;

  constructor(
    private readonly mailbox: Mailbox,
    addressOf?: (nodeId: string) => string,
  ) {
    this.addressOf = addressOf ?? nodeAddress;
  }

  assign(node: string, pchannel: string, term: number, timeoutMs: number): Promise<void> {
    return this.mailbox.request(this.addressOf(node), { type: 'assign', pchannel, term }, { timeoutMs });
  }
  remove(node: string, pchannel: string, term: number, timeoutMs: number): Promise<void> {
    return this.mailbox.request(this.addressOf(node), { type: 'remove', pchannel, term }, { timeoutMs });
  }
  status(node: string, timeoutMs: number): Promise<NodeStatus> {
    return this.mailbox.request(this.addressOf(node), { type: 'nodeStatus' }, { timeoutMs });
  }
}

// ---------------------------------------------------------------- server side

/** Serves the coordinator's commands at `address` by asking the coordinator actor. */
export function serveCoordinator(mailbox: Mailbox, address: string, coordinator: Ref<CoordinatorMsg>, opts: ServeOptions = {}): Promise<MailboxServer> {
  const q = <T>(ctx: RequestContext, make: (replyTo: Ref<Reply<T>>) => CoordinatorMsg, what: string, timeoutMs = ctx.remainingMs()): Promise<T> =>
    ask<CoordinatorMsg, T>(coordinator, make, timeoutMs, what);
  const handlers: CoordinatorHandlers = {
    getAssignment: (_c, ctx) => q(ctx, (replyTo) => ({ type: 'getAssignment', replyTo }), 'get assignment'),
    watchAssignment: (c, ctx) =>
      q(ctx, (replyTo) => ({ type: 'watchAssignment', afterVersion: c.afterVersion, timeoutMs: c.timeoutMs, replyTo }), 'watch assignment', Math.min(ctx.remainingMs(), c.timeoutMs + WATCH_MARGIN_MS)),
    createCollection: (c, ctx) => q(ctx, (replyTo) => ({ type: 'createCollection', req: c.req, replyTo }), `create collection ${c.req.name}`),
    dropCollection: (c, ctx) => q(ctx, (replyTo) => ({ type: 'dropCollection', name: c.name, replyTo }), `drop collection ${c.name}`),
    createPartition: (c, ctx) => q(ctx, (replyTo) => ({ type: 'createPartition', collection: c.collection, partition: c.partition, replyTo }), `create partition ${c.partition}`),
    dropPartition: (c, ctx) => q(ctx, (replyTo) => ({ type: 'dropPartition', collection: c.collection, partition: c.partition, replyTo }), `drop partition ${c.partition}`),
    describeCollection: (c, ctx) => q(ctx, (replyTo) => ({ type: 'describeCollection', name: c.name, replyTo }), `describe collection ${c.name}`),
    listCollections: (_c, ctx) => q(ctx, (replyTo) => ({ type: 'listCollections', replyTo }), 'list collections'),
    flushCollection: (c, ctx) => q(ctx, (replyTo) => ({ type: 'flushCollection', name: c.name, replyTo }), `flush collection ${c.name}`),
    status: (_c, ctx) => q(ctx, (replyTo) => ({ type: 'status', replyTo }), 'status'),
    transfer: (c, ctx) => q(ctx, (replyTo) => ({ type: 'transfer', pchannel: c.pchannel, ...(c.toNode !== undefined ? { toNode: c.toNode } : {}), replyTo }), `transfer ${c.pchannel}`),
  };
  return mailbox.serve(address, handlers, opts);
}

/** Serves a streaming node's commands (control and data) at `address` by asking the node actor. */
export function serveNode(mailbox: Mailbox, address: string, node: Ref<NodeMsg>, opts: ServeOptions = {}): Promise<MailboxServer> {
  const q = <T>(ctx: RequestContext, make: (replyTo: Ref<Reply<T>>) => NodeMsg, what: string): Promise<T> => ask<NodeMsg, T>(node, make, ctx.remainingMs(), what);
  const handlers: NodeHandlers = {
    assign: (c, ctx) => q(ctx, (replyTo) => ({ type: 'assign', pchannel: c.pchannel, term: c.term, replyTo }), `assign ${c.pchannel}`),
    remove: (c, ctx) => q(ctx, (replyTo) => ({ type: 'remove', pchannel: c.pchannel, term: c.term, replyTo }), `remove ${c.pchannel}`),
    nodeStatus: async (_c, ctx) => {
      try {
        return (await query(node, (replyTo: Ref<NodeStatus>): NodeMsg => ({ type: 'status', replyTo }), ctx.remainingMs())) as NodeStatus;
      } catch (e) {
        throw new StreamingError(ErrorCode.UNKNOWN, `node status: no answer within ${ctx.remainingMs()} ms`, { cause: e, retriable: true, details: { deadlineExceeded: true } });
      }
    },
    append: (c, ctx) => q(ctx, (replyTo) => ({ type: 'append', pchannel: c.pchannel, term: c.term, message: c.message, replyTo }), `append to ${c.pchannel}`),
    subscribe: async (c, ctx) => {
      const scanner = await q<Scanner>(ctx, (replyTo) => ({ type: 'subscribe', pchannel: c.pchannel, term: c.term, options: c.options, replyTo }), `subscribe to ${c.pchannel}`);
      return scanner;
    },
  };
  return mailbox.serve(address, handlers, opts);
}
