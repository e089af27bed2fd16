/**
 * The walstream client over any transport: catalog calls go to the coordinator; inserts and
 * deletes are split by primary-key hash over the collection's shards and appended through the
 * router, which waits for ready and retries across pchannel moves; subscriptions resume on the
 * new owner. See ./api.ts for the contract.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import { ErrorCode, StreamingError, invalidArgument } from '../errors';
import { createLogger, type Logger } from '../logger';
import type { Column, NewMessage, PrimaryKeys, TxnContext } from '../message/types';
import { validateInsert } from '../message/validate';
import { TxnGuard } from '../message/txn-guard';
import type {
  AppendResult,
  CallOptions,
  ClientTxn,
  ClusterStatus,
  CollectionInfo,
  CreateCollectionRequest,
  DeleteRequest,
  FlushResult,
  InsertRequest,
  PartitionInfo,
  SubscribeRequest,
  Subscription,
  TransferResult,
  WalstreamClient,
  WriteResult,
} from './api';
import { ResumableSubscription } from './resumable-subscription';
import { DEFAULT_ROUTER_OPTIONS, Router, type RouterOptions } from './router';
import { selectKeys, selectRows, splitRows } from './sharding';
import type { CoordinatorTransport, NodeTransport } from './transport';

export interface ClientOptions {
  clock: Clock;
  /** Default deadline of a call. Default 30000 ms. */
  defaultTimeoutMs?: number;
  router?: RouterOptions;
  logger?: Logger;
}

export class Client implements WalstreamClient {
  readonly router: Router;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly defaultTimeoutMs: number;
  private readonly collections = new Map<string, CollectionInfo>();
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;

  constructor(
    private readonly coordinator: CoordinatorTransport,
    nodes: NodeTransport,
    opts: ClientOptions,
  ) {
    this.clock = opts.clock;
    this.logger = opts.logger ?? createLogger('client');
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.router = new Router(coordinator, nodes, this.clock, this.logger, opts.router ?? DEFAULT_ROUTER_OPTIONS);
  }

  private timeout(o?: CallOptions): number {
    const t = o?.timeoutMs ?? this.defaultTimeoutMs;
    if (!Number.isFinite(t) || t <= 0) throw invalidArgument('timeoutMs must be a positive number', { field: 'timeoutMs' });
    return t;
  }

  private deadline(o?: CallOptions): number {
    return this.clock.monotonic() + this.timeout(o);
  }

  private check(): void {
    if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'client closed');
  }

  // ------------------------------------------------------------------ catalog

  async createCollection(req: CreateCollectionRequest, o?: CallOptions): Promise<CollectionInfo> {
    this.check();
    const info = await this.coordinator.createCollection(req, this.timeout(o));
    this.collections.set(info.name, info);
    return info;
  }

  async dropCollection(name: string, o?: CallOptions): Promise<void> {
    this.check();
    this.collections.delete(name);
    await this.coordinator.dropCollection(name, this.timeout(o));
  }

  async createPartition(collection: string, partition: string, o?: CallOptions): Promise<PartitionInfo> {
    this.check();
    const p = await this.coordinator.createPartition(collection, partition, this.timeout(o));
    this.collections.delete(collection);
    return p;
  }

  async dropPartition(collection: string, partition: string, o?: CallOptions): Promise<void> {
    this.check();
    await this.coordinator.dropPartition(collection, partition, this.timeout(o));
    this.collections.delete(collection);
  }

  async describeCollection(name: string, o?: CallOptions): Promise<CollectionInfo> {
    this.check();
    const info = await this.coordinator.describeCollection(name, this.timeout(o));
    this.collections.set(name, info);
    return info;
  }

  listCollections(o?: CallOptions): Promise<CollectionInfo[]> {
    this.check();
    return this.coordinator.listCollections(this.timeout(o));
  }

  private async collection(name: string, o?: CallOptions): Promise<CollectionInfo> {
    if (typeof name !== 'string' || name === '') throw invalidArgument('collection name is required', { field: 'collection' });
    return this.collections.get(name) ?? this.describeCollection(name, o);
  }

  private async partitionId(info: CollectionInfo, partition: string | undefined, o?: CallOptions): Promise<number> {
    const name = partition ?? '_default';
    let p = info.partitions.find((x) => x.name === name);
    if (!p) p = (await this.describeCollection(info.name, o)).partitions.find((x) => x.name === name);
    if (!p) throw invalidArgument(`partition ${JSON.stringify(name)} does not exist in ${info.name}`, { field: 'partition', reason: 'not found' });
    return p.id;
  }

  flush(collection: string, o?: CallOptions): Promise<FlushResult> {
    this.check();
    return this.coordinator.flushCollection(collection, this.timeout(o));
  }

  // ------------------------------------------------------------------ writes

  async insert(req: InsertRequest, o?: CallOptions): Promise<WriteResult> {
    this.check();
    const deadline = this.deadline(o);
    const info = await this.collection(req.collection, o);
    const partitionId = await this.partitionId(info, req.partition, o);
    if (!Array.isArray(req.columns)) throw invalidArgument('columns must be an array', { field: 'columns' });
    // Validate the whole batch before splitting it over shards: a bad row rejects all of it.
    const { rows: total } = validateInsert(info.schema, req.columns);
    const pkField = info.schema.fields.find((f) => f.primaryKey);
    const key = req.idempotencyKey ?? randomUUID();
    const shards = info.vchannels.length;
    let parts: number[][];
    if (pkField?.autoId) {
      // The server generates the keys: spread the rows over the shards by position.
      parts = Array.from({ length: shards }, () => []);
      for (let i = 0; i < total; i++) parts[i % shards]!.push(i);
    } else {
      const pkColumn = req.columns.find((c) => c.name === pkField?.name)!;
      const pks = pkColumn.data as (number | string)[];
      parts = shards === 1 ? [pks.map((_, i) => i)] : splitRows(pks, shards);
    }
    const appends = await Promise.all(
      parts.map(async (rows, shard) => {
        if (rows.length === 0) return undefined;
        const vchannel = info.vchannels[shard]!;
        const columns: Column[] = shards === 1 ? req.columns : selectRows(req.columns, rows);
        const message: NewMessage = {
          type: 'Insert',
          vchannel,
          idempotencyKey: `${key}:${shard}`,
          header: { collectionId: info.id, partitionId, rows: rows.length, bytes: 0, segmentId: 0 },
          body: { columns },
        };
        const result = await this.router.append(message, deadline);
        return { vchannel, rows: rows.length, result };
      }),
    );
    const done = appends.filter((a): a is NonNullable<typeof a> => a !== undefined);
    return { rows: total, appends: done };
  }

  async delete(req: DeleteRequest, o?: CallOptions): Promise<WriteResult> {
    this.check();
    const deadline = this.deadline(o);
    const info = await this.collection(req.collection, o);
    const partitionId = req.partition === undefined ? -1 : await this.partitionId(info, req.partition, o);
    const keys = req.primaryKeys;
    if (!keys || !Array.isArray(keys.data) || (keys.type !== 'int64' && keys.type !== 'varchar')) {
      throw invalidArgument('primaryKeys must be { type: "int64" | "varchar", data: [...] }', { field: 'primaryKeys' });
    }
    const key = req.idempotencyKey ?? randomUUID();
    const shards = info.vchannels.length;
    const parts = splitRows(keys.data, shards);
    const appends = await Promise.all(
      parts.map(async (rows, shard) => {
        if (rows.length === 0) return undefined;
        const vchannel = info.vchannels[shard]!;
        const message: NewMessage = {
          type: 'Delete',
          vchannel,
          idempotencyKey: `${key}:${shard}`,
          header: { collectionId: info.id, partitionId, rows: rows.length },
          body: { primaryKeys: selectKeys(keys, rows) },
        };
        return { vchannel, rows: rows.length, result: await this.router.append(message, deadline) };
      }),
    );
    return { rows: keys.data.length, appends: appends.filter((a): a is NonNullable<typeof a> => a !== undefined) };
  }

  async beginTxn(collection: string, opts: { shard?: number; keepaliveMs?: number } & CallOptions = {}): Promise<ClientTxn> {
    this.check();
    const info = await this.collection(collection, opts);
    const shard = opts.shard ?? 0;
    const vchannel = info.vchannels[shard];
    if (vchannel === undefined) throw invalidArgument(`collection ${collection} has ${info.vchannels.length} shards; no shard ${shard}`, { field: 'shard' });
    const r = await this.router.append({ type: 'BeginTxn', vchannel, header: { keepaliveMs: opts.keepaliveMs ?? 0 }, body: {} }, this.deadline(opts));
    if (!r.txn) throw new StreamingError(ErrorCode.INNER, 'BeginTxn returned no transaction');
    return new RoutedTxn(this, info, vchannel, r.txn);
  }

  /** @internal used by transactions */
  async appendInTxn(message: NewMessage, o?: CallOptions): Promise<AppendResult> {
    return this.router.append(message, this.deadline(o));
  }

  /** @internal */
  resolvePartition(info: CollectionInfo, partition: string | undefined, o?: CallOptions): Promise<number> {
    return this.partitionId(info, partition, o);
  }

  // ------------------------------------------------------------------ reads and admin

  subscribe(req: SubscribeRequest): Subscription {
    this.check();
    const sub = new ResumableSubscription(this.router, req, this.clock, this.logger);
    this.subscriptions.add(sub);
    const close = sub.close.bind(sub);
    sub.close = () => {
      this.subscriptions.delete(sub);
      close();
    };
    return sub;
  }

  status(o?: CallOptions): Promise<ClusterStatus> {
    this.check();
    return this.coordinator.status(this.timeout(o));
  }

  transfer(pchannel: string, toNode?: string, o?: CallOptions): Promise<TransferResult> {
    this.check();
    return this.coordinator.transfer(pchannel, toNode, this.timeout(o));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const s of [...this.subscriptions]) s.close();
    this.router.close();
    return Promise.resolve();
  }
}

class RoutedTxn implements ClientTxn {
  readonly id: bigint;
  private readonly guard: TxnGuard;

  constructor(
    private readonly client: Client,
    private readonly info: CollectionInfo,
    readonly vchannel: string,
    private readonly txn: TxnContext,
  ) {
    this.id = txn.id;
    this.guard = new TxnGuard(txn.id);
  }

  private body(make: (partitionId: number) => NewMessage, partition: string | undefined, defaultAll: boolean, o?: CallOptions): Promise<AppendResult> {
    return this.guard.body(async () => {
      const partitionId = defaultAll && partition === undefined ? -1 : await this.client.resolvePartition(this.info, partition, o);
      return this.client.appendInTxn({ ...make(partitionId), txn: this.txn }, o);
    });
  }

  insert(columns: Column[], partition?: string, o?: CallOptions): Promise<AppendResult> {
    return this.body(
      (partitionId) => ({ type: 'Insert', vchannel: this.vchannel, header: { collectionId: this.info.id, partitionId, rows: 0, bytes: 0, segmentId: 0 }, body: { columns } }),
      partition,
      false,
      o,
    );
  }

  delete(primaryKeys: PrimaryKeys, partition?: string, o?: CallOptions): Promise<AppendResult> {
    return this.body(
      (partitionId) => ({ type: 'Delete', vchannel: this.vchannel, header: { collectionId: this.info.id, partitionId, rows: primaryKeys.data.length }, body: { primaryKeys } }),
      partition,
      true,
      o,
    );
  }

  commit(o?: CallOptions): Promise<AppendResult> {
    return this.guard.finish('CommitTxn', () => this.client.appendInTxn({ type: 'CommitTxn', vchannel: this.vchannel, header: {}, body: {}, txn: this.txn }, o));
  }

  rollback(o?: CallOptions): Promise<AppendResult> {
    return this.guard.finish('RollbackTxn', () => this.client.appendInTxn({ type: 'RollbackTxn', vchannel: this.vchannel, header: {}, body: {}, txn: this.txn }, o));
  }
}
