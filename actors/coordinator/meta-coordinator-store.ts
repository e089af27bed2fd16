/**
 * The coordinator's state in the MetaStore: `coordinator/pchannel/<name>`, `coordinator/collection/<id>`
 * (JSON), id counters. Saving a pchannel at a new term also raises the pchannel's fencing term, so
 * owner writes of older terms (checkpoints, segment meta) are refused from then on. When a
 * leadership is given (cluster mode), every write is a leader write at its epoch.
 */
import type { PChannelMeta } from './channel-meta';
import type { CollectionRecord, CoordinatorStore } from './store';
import type { KeyWrite, MetaStore } from '../../storage/meta/meta-store';

const CHANNEL_PREFIX = 'coordinator/pchannel/';
const COLLECTION_PREFIX = 'coordinator/collection/';

export class MetaCoordinatorStore implements CoordinatorStore {
  constructor(
    private readonly meta: MetaStore,
    private readonly leadership?: { name: string; epoch: number },
  ) {}

  private async write(writes: KeyWrite[]): Promise<void> {
    if (this.leadership) await this.meta.casLeaderWrite(this.leadership.name, this.leadership.epoch, writes);
    else for (const w of writes) 'delete' in w ? await this.meta.delete(w.key) : await this.meta.put(w.key, w.value);
  }

  async loadChannels(): Promise<PChannelMeta[]> {
    const all = await this.meta.list(CHANNEL_PREFIX);
    return [...all.values()].map((v) => JSON.parse(v.value) as PChannelMeta);
  }

  async saveChannel(meta: PChannelMeta): Promise<void> {
    // Raise the storage fence to the new term before anyone is told about it.
    for (let cur = await this.meta.pchannelTerm(meta.name); cur < meta.term; cur = await this.meta.pchannelTerm(meta.name)) {
      await this.meta.bumpTerm(meta.name, cur);
    }
    await this.write([{ key: CHANNEL_PREFIX + meta.name, value: JSON.stringify(meta) }]);
  }

  async loadCollections(): Promise<CollectionRecord[]> {
    const all = await this.meta.list(COLLECTION_PREFIX);
    return [...all.values()].map((v) => JSON.parse(v.value) as CollectionRecord);
  }

  async saveCollection(c: CollectionRecord): Promise<void> {
    await this.write([{ key: COLLECTION_PREFIX + String(c.id), value: JSON.stringify(c) }]);
  }

  nextId(counter: string): Promise<number> {
    return this.meta.nextId(`coordinator.${counter}`);
  }
}
