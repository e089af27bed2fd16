/**
 * What the WAL knows of each vchannel: its collections (schema, partitions) and whether they are
 * dropped. The shard interceptor checks every Insert/Delete against it; DDL messages update it once
 * they are written. Pure state, rebuilt on open by replaying the log.
 */
import { unrecoverable } from '../../runtime/errors';
import type { CollectionSchema, Message } from '../../runtime/message/types';

export interface CollectionMeta {
  collectionId: number;
  name: string;
  schema: CollectionSchema;
  state: 'normal' | 'dropped';
  /** partitionId → state. */
  partitions: Map<number, 'normal' | 'dropped'>;
}

export interface VChannelRecord {
  vchannel: string;
  collections: { collectionId: number; name: string; schema: CollectionSchema; state: 'normal' | 'dropped'; partitions: [number, 'normal' | 'dropped'][] }[];
}

export class VChannelMeta {
  /** vchannel → collectionId → meta. */
  private readonly vchannels = new Map<string, Map<number, CollectionMeta>>();

  collection(vchannel: string, collectionId: number): CollectionMeta | undefined {
    return this.vchannels.get(vchannel)?.get(collectionId);
  }

  /** The collection, normal, or UNRECOVERABLE. */
  requireCollection(vchannel: string, collectionId: number, what: string): CollectionMeta {
    const c = this.collection(vchannel, collectionId);
    if (!c) throw unrecoverable(`${what}: collection ${collectionId} does not exist on vchannel ${vchannel}`, { vchannel, collectionId });
    if (c.state === 'dropped') throw unrecoverable(`${what}: collection ${collectionId} was dropped on vchannel ${vchannel}`, { vchannel, collectionId });
    return c;
  }

  /** Partition -1 means "every partition" (deletes). */
  requirePartition(vchannel: string, collectionId: number, partitionId: number, what: string): CollectionMeta {
    const c = this.requireCollection(vchannel, collectionId, what);
    if (partitionId === -1) return c;
    const p = c.partitions.get(partitionId);
    if (p === undefined) throw unrecoverable(`${what}: partition ${partitionId} does not exist in collection ${collectionId}`, { vchannel, collectionId, partitionId });
    if (p === 'dropped') throw unrecoverable(`${what}: partition ${partitionId} of collection ${collectionId} was dropped`, { vchannel, collectionId, partitionId });
    return c;
  }

  /** Checks that a DDL message may be written now (before it is written). */
  checkDdl(msg: Message): void {
    switch (msg.type) {
      case 'CreateCollection': {
        const c = this.collection(msg.vchannel, msg.header.collectionId);
        if (c?.state === 'dropped') {
          throw unrecoverable(`CreateCollection: collection ${msg.header.collectionId} was dropped on vchannel ${msg.vchannel}; ids are not reused`, {
            vchannel: msg.vchannel,
            collectionId: msg.header.collectionId,
          });
        }
        return;
      }
      case 'DropCollection':
        // Dropping twice is idempotent (a broadcast may be retried); dropping an unknown one is not.
        if (!this.collection(msg.vchannel, msg.header.collectionId)) {
          throw unrecoverable(`DropCollection: collection ${msg.header.collectionId} does not exist on vchannel ${msg.vchannel}`, {
            vchannel: msg.vchannel,
            collectionId: msg.header.collectionId,
          });
        }
        return;
      case 'CreatePartition': {
        const c = this.requireCollection(msg.vchannel, msg.header.collectionId, 'CreatePartition');
        if (c.partitions.get(msg.header.partitionId) === 'dropped') {
          throw unrecoverable(`CreatePartition: partition ${msg.header.partitionId} was dropped; ids are not reused`, { partitionId: msg.header.partitionId });
        }
        return;
      }
      case 'DropPartition':
        this.requirePartition(msg.vchannel, msg.header.collectionId, msg.header.partitionId, 'DropPartition');
        return;
      case 'ManualFlush':
        this.requireCollection(msg.vchannel, msg.header.collectionId, 'ManualFlush');
        return;
      default:
        return;
    }
  }

  /** Applies a written message. Unknown or dropped collections are tolerated (replay of old logs). */
  apply(msg: Message): void {
    switch (msg.type) {
      case 'CreateCollection': {
        let cols = this.vchannels.get(msg.vchannel);
        if (!cols) this.vchannels.set(msg.vchannel, (cols = new Map()));
        if (cols.has(msg.header.collectionId)) return;
        cols.set(msg.header.collectionId, {
          collectionId: msg.header.collectionId,
          name: msg.body.collectionName,
          // Its own copy, as replay rebuilds it from the log (the codec writes the schema as JSON): the
          // message body may be the caller's object, and the schema is indexed once (validate.ts).
          schema: JSON.parse(JSON.stringify(msg.body.schema)) as CollectionSchema,
          state: 'normal',
          partitions: new Map(msg.header.partitionIds.map((id) => [id, 'normal' as const])),
        });
        return;
      }
      case 'DropCollection': {
        const c = this.collection(msg.vchannel, msg.header.collectionId);
        if (c) c.state = 'dropped';
        return;
      }
      case 'CreatePartition': {
        const c = this.collection(msg.vchannel, msg.header.collectionId);
        if (c && !c.partitions.has(msg.header.partitionId)) c.partitions.set(msg.header.partitionId, 'normal');
        return;
      }
      case 'DropPartition': {
        const c = this.collection(msg.vchannel, msg.header.collectionId);
        if (c && c.partitions.has(msg.header.partitionId)) c.partitions.set(msg.header.partitionId, 'dropped');
        return;
      }
      default:
        return;
    }
  }

  /** Plain records of one vchannel, for persisting. */
  exportVChannel(vchannel: string): VChannelRecord {
    return {
      vchannel,
      collections: this.collectionsOf(vchannel).map((c) => ({
        collectionId: c.collectionId,
        name: c.name,
        schema: c.schema,
        state: c.state,
        partitions: [...c.partitions.entries()],
      })),
    };
  }

  importVChannel(r: VChannelRecord): void {
    const cols = new Map<number, CollectionMeta>();
    for (const c of r.collections) cols.set(c.collectionId, { collectionId: c.collectionId, name: c.name, schema: c.schema, state: c.state, partitions: new Map(c.partitions) });
    this.vchannels.set(r.vchannel, cols);
  }

  collectionsOf(vchannel: string): CollectionMeta[] {
    return [...(this.vchannels.get(vchannel)?.values() ?? [])];
  }

  vchannelNames(): string[] {
    return [...this.vchannels.keys()];
  }
}
