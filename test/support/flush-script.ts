/**
 * A hand-written WAL range for flush tests: one segment's CreateSegment, inserts (alone or in
 * transactions), deletes, time ticks and its flush marker, each message at the next timetick, on
 * one collection of SCHEMA (every column type the segment files have).
 */
import { composeTimetick, type Timetick } from '../../runtime/message/timetick';
import type { CollectionSchema, Column, Message, TxnContext } from '../../runtime/message/types';

export const PCHANNEL = 'p';
export const V = 'p_1v0';
export const OTHER_V = 'p_2v0';
export const SEGMENT = 1;
export const KEEPALIVE_MS = 10_000;
export const SCHEMA: CollectionSchema = {
  fields: [
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'vec', type: 'floatVector', dim: 3 },
    { name: 'tag', type: 'varchar', maxLength: 32 },
    { name: 'meta', type: 'json' },
    { name: 'ok', type: 'bool' },
  ],
};

export const tt = (ms: number): Timetick => composeTimetick(1_767_225_600_000 + ms, 0);

export function columns(ids: number[]): Column[] {
  return [
    { name: 'tag', type: 'varchar', data: ids.map((id) => `row-${id}-é`) },
    { name: 'id', type: 'int64', data: ids },
    { name: 'vec', type: 'floatVector', dim: 3, data: Float32Array.from(ids.flatMap((id) => [id, -id, id / 3])) },
    { name: 'meta', type: 'json', data: ids.map((id) => ({ id, tags: ['a', null] })) },
    { name: 'ok', type: 'bool', data: ids.map((id) => id % 2 === 0) },
  ];
}

/** Builds the log's messages in order, each at the next timetick (in ms). */
export class Script {
  readonly messages: Message[] = [];
  private ms = 0;

  private add(m: Omit<Message, 'timetick' | 'lastConfirmedId' | 'term'>, vchannel = V): Timetick {
    const timetick = tt(++this.ms);
    this.messages.push({ ...m, vchannel, timetick, lastConfirmedId: '', term: 1 } as Message);
    return timetick;
  }

  createSegment(segmentId = SEGMENT): number {
    this.add({ type: 'CreateSegment', vchannel: V, header: { collectionId: 1, partitionId: 10, segmentId, maxRows: 1000, maxBytes: 1 << 20 }, body: {} } as Message);
    return this.messages.length - 1;
  }

  insert(ids: number[], opts: { segmentId?: number; vchannel?: string; txn?: TxnContext } = {}): Timetick {
    const m = { type: 'Insert', vchannel: V, header: { collectionId: 1, partitionId: 10, rows: ids.length, bytes: 0, segmentId: opts.segmentId ?? SEGMENT }, body: { columns: columns(ids) } } as Message;
    if (opts.txn) m.txn = opts.txn;
    return this.add(m, opts.vchannel);
  }

  delete(keys: number[], opts: { partitionId?: number; txn?: TxnContext } = {}): Timetick {
    const m = { type: 'Delete', vchannel: V, header: { collectionId: 1, partitionId: opts.partitionId ?? 10, rows: keys.length }, body: { primaryKeys: { type: 'int64', data: keys } } } as Message;
    if (opts.txn) m.txn = opts.txn;
    return this.add(m);
  }

  begin(): TxnContext {
    const id = tt(this.ms + 1);
    this.add({ type: 'BeginTxn', vchannel: V, header: { keepaliveMs: KEEPALIVE_MS }, body: {}, txn: { id, keepaliveMs: KEEPALIVE_MS } } as Message);
    return { id, keepaliveMs: KEEPALIVE_MS };
  }

  end(txn: TxnContext, how: 'CommitTxn' | 'RollbackTxn'): Timetick {
    return this.add({ type: how, vchannel: V, header: {}, body: {}, txn } as Message);
  }

  flushMarker(segmentId = SEGMENT): { index: number; timetick: Timetick } {
    const timetick = this.add({ type: 'Flush', vchannel: V, header: { collectionId: 1, partitionId: 10, segmentId }, body: {} } as Message);
    return { index: this.messages.length - 1, timetick };
  }

  dropCollection(): void {
    this.add({ type: 'DropCollection', vchannel: V, header: { collectionId: 1 }, body: {} } as Message);
  }

  timeTick(afterMs: number): void {
    this.ms += afterMs;
    this.add({ type: 'TimeTick', vchannel: '', header: {}, body: {} } as Message, '');
  }
}
