/**
 * What the coordinator persists: pchannel metas, the catalog, id counters. Every mutation is
 * persisted before it is applied in memory or told to anyone. Implementations: in memory (tests)
 * and over the MetaStore (embedded or Redis).
 */
import type { CollectionInfo, PartitionInfo } from '../../runtime/client/api';
import type { PChannelMeta } from './channel-meta';

export type CollectionRecord = Omit<CollectionInfo, 'partitions'> & {
  partitions: (PartitionInfo & { state: 'normal' | 'dropped' })[];
};

export interface CoordinatorStore {
  loadChannels(): Promise<PChannelMeta[]>;
  saveChannel(meta: PChannelMeta): Promise<void>;
  loadCollections(): Promise<CollectionRecord[]>;
  saveCollection(c: CollectionRecord): Promise<void>;
  /** Unique, increasing ids ("collection", "partition"); never max+1 of what exists. */
  nextId(counter: string): Promise<number>;
}

export class MemoryCoordinatorStore implements CoordinatorStore {
  private readonly channels = new Map<string, PChannelMeta>();
  private readonly collections = new Map<number, CollectionRecord>();
  private readonly counters = new Map<string, number>();

  loadChannels(): Promise<PChannelMeta[]> {
    return Promise.resolve([...this.channels.values()]);
  }
  saveChannel(meta: PChannelMeta): Promise<void> {
    this.channels.set(meta.name, meta);
    return Promise.resolve();
  }
  loadCollections(): Promise<CollectionRecord[]> {
    return Promise.resolve([...this.collections.values()].map((c) => structuredClone(c)));
  }
  saveCollection(c: CollectionRecord): Promise<void> {
    this.collections.set(c.id, structuredClone(c));
    return Promise.resolve();
  }
  nextId(counter: string): Promise<number> {
    const n = (this.counters.get(counter) ?? 0) + 1;
    this.counters.set(counter, n);
    return Promise.resolve(n);
  }
}
