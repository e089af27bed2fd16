/**
 * The standalone MetaStore: state in memory, persisted to `<dir>/meta.json` (see snapshot.ts),
 * one process per directory (`<dir>/LOCK`, see dir-lock.ts).
 *
 * Consistency: every operation decides synchronously against the in-memory state (so CAS, term bumps
 * and counters are atomic without locks) and resolves only once everything it decided on is durable.
 * Writes are group-committed: all changes made while a snapshot is being written go into the next
 * one (one fsync per batch). Watch events are emitted after their batch is durable, in commit order,
 * before the writers' promises resolve. A failed snapshot write fails the store (every later call
 * rejects with that error): memory would otherwise run ahead of the disk.
 *
 * Leases and leader holders live in memory only, timed by the injected Clock's monotonic time: they
 * belong to this process, so after a restart none is alive. On open, lease-attached keys are dropped
 * and no one leads; terms, counters, versions, leader epochs and the version sequence persist.
 */
import { systemClock, type Clock, type TimerHandle } from '../../../runtime/clock';
import { ChannelFencedError, StreamingError, invalidArgument, toStreamingError } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';
import { LeadershipLostError, LeaseLostError, storeClosed } from '../errors';
import {
  validateBatch,
  validateKey,
  validateName,
  validatePChannel,
  validatePlainKey,
  validateTtl,
  validateValue,
  validateVersion,
  type KeyWrite,
  type LeaderInfo,
  type Leadership,
  type Lease,
  type MetaStore,
  type PutOptions,
  type Unsubscribe,
  type VersionedValue,
  type WatchEvent,
} from '../meta-store';
import { acquireDirLock, removeLeftovers, type DirLock } from './dir-lock';
import { encodeSnapshot, loadSnapshot, mkdirDurable, SNAPSHOT_FILE, writeSnapshot, type MetaState, type StoredEntry } from './snapshot';

export interface EmbeddedMetaStoreOptions {
  /** Directory for `meta.json` and `LOCK`; created when missing. Usually `<dataDir>/meta`. */
  dir: string;
  /** Time source for lease and leadership expiry (monotonic) and lock labels. Default: systemClock. */
  clock?: Clock;
}

interface LiveLease {
  readonly id: string;
  readonly ttlMs: number;
  /** Monotonic ms at which it expires. */
  deadline: number;
  readonly keys: Set<string>;
}

interface Holder {
  readonly candidateId: string;
  readonly epoch: number;
  readonly ttlMs: number;
  deadline: number;
}

interface Watcher {
  readonly prefix: string;
  readonly onEvent: (event: WatchEvent) => void;
  active: boolean;
}

interface VersionWatcher {
  readonly name: string;
  readonly onVersion: (version: number) => void;
  last: number;
  active: boolean;
}

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

const MAX_ID_BATCH = 1_000_000;
const log = createLogger('meta.embedded');

export class EmbeddedMetaStore implements MetaStore {
  private readonly leases = new Map<string, LiveLease>();
  private readonly holders = new Map<string, Holder>();
  private readonly watchers = new Set<Watcher>();
  private readonly versionWatchers = new Set<VersionWatcher>();
  /** Version counters as of the last durable snapshot (what version watchers may see). */
  private readonly durableVersions: Map<string, number>;

  /** Changes applied to `state` that no snapshot write has captured yet. */
  private dirty = false;
  private commitWaiters: Waiter[] = [];
  private pendingEvents: WatchEvent[] = [];
  private pendingVersions = new Map<string, number>();
  /** The snapshot write in progress (captured everything applied before it started). */
  private writing: Promise<void> | undefined;
  /** The flush loop, while it runs. */
  private flushLoop: Promise<void> | undefined;
  private failure: StreamingError | undefined;
  private closing: Promise<void> | undefined;
  private expiryTimer: { at: number; handle: TimerHandle } | undefined;

  private constructor(
    readonly dir: string,
    private readonly clock: Clock,
    private readonly state: MetaState,
    private readonly lock: DirLock,
  ) {
    this.durableVersions = new Map(state.versions);
  }

  /** Locks `dir`, loads its state and drops what belonged to the previous process's leases. */
  static async open(options: EmbeddedMetaStoreOptions): Promise<EmbeddedMetaStore> {
    const clock = options.clock ?? systemClock;
    if (typeof options.dir !== 'string' || options.dir.length === 0) throw invalidArgument('EmbeddedMetaStoreOptions.dir must be a path', {});
    await mkdirDurable(options.dir);
    const lock = await acquireDirLock(options.dir, new Date(clock.now()));
    try {
      await removeLeftovers(options.dir, SNAPSHOT_FILE);
      const state = await loadSnapshot(options.dir);
      for (const [key, entry] of state.kv) if (entry.lease !== undefined) state.kv.delete(key);
      // Proves the directory is writable before anyone relies on the store, and persists the cleanup.
      await writeSnapshot(options.dir, encodeSnapshot(state));
      return new EmbeddedMetaStore(options.dir, clock, state, lock);
    } catch (e) {
      await lock.release().catch(() => undefined);
      throw e;
    }
  }

  // --- key/value -------------------------------------------------------------------------------

  async get(key: string): Promise<VersionedValue | undefined> {
    this.enter();
    validateKey(key);
    const entry = this.state.kv.get(key);
    await this.barrier();
    return entry && toVersioned(entry);
  }

  async list(prefix: string): Promise<ReadonlyMap<string, VersionedValue>> {
    this.enter();
    if (typeof prefix !== 'string') throw invalidArgument('list prefix must be a string', {});
    const rows: Array<[string, VersionedValue]> = [];
    for (const [key, entry] of this.state.kv) if (key.startsWith(prefix)) rows.push([key, toVersioned(entry)]);
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    await this.barrier();
    return new Map(rows);
  }

  async put(key: string, value: string, options?: PutOptions): Promise<number> {
    this.enter();
    validatePlainKey(key, 'put');
    validateValue(value);
    const lease = this.leaseFor(options);
    const version = this.writeEntry(key, value, lease);
    await this.barrier();
    return version;
  }

  async cas(key: string, expectedVersion: number, value: string, options?: PutOptions): Promise<number | undefined> {
    this.enter();
    validatePlainKey(key, 'cas');
    validateVersion('expectedVersion', expectedVersion);
    validateValue(value);
    const lease = this.leaseFor(options);
    const current = this.state.kv.get(key);
    const matches = expectedVersion === 0 ? current === undefined : current?.version === expectedVersion;
    const version = matches ? this.writeEntry(key, value, lease) : undefined;
    await this.barrier();
    return version;
  }

  async delete(key: string, expectedVersion?: number): Promise<boolean> {
    this.enter();
    validatePlainKey(key, 'delete');
    if (expectedVersion !== undefined) validateVersion('expectedVersion', expectedVersion);
    const current = this.state.kv.get(key);
    const matches = current !== undefined && (expectedVersion === undefined || current.version === expectedVersion);
    if (matches) this.deleteEntry(key, ++this.state.revision);
    await this.barrier();
    return matches;
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<Unsubscribe> {
    this.enter();
    if (typeof prefix !== 'string') throw invalidArgument('watch prefix must be a string', {});
    const watcher: Watcher = { prefix, onEvent, active: true };
    this.watchers.add(watcher);
    return async () => {
      watcher.active = false;
      this.watchers.delete(watcher);
    };
  }

  // --- leases ----------------------------------------------------------------------------------

  async grantLease(owner: string, ttlMs: number): Promise<Lease> {
    this.enter();
    validateName('owner', owner);
    validateTtl(ttlMs);
    const id = `${owner}.${++this.state.leaseSeq}`;
    this.markDirty();
    this.leases.set(id, { id, ttlMs, deadline: this.clock.monotonic() + ttlMs, keys: new Set() });
    this.scheduleExpiry();
    await this.barrier();
    return {
      id,
      ttlMs,
      renew: () => this.renewLease(id, ttlMs),
      revoke: () => this.revokeLease(id),
    };
  }

  private async renewLease(id: string, ttlMs: number): Promise<boolean> {
    this.enter();
    const lease = this.leases.get(id);
    if (lease) {
      lease.deadline = this.clock.monotonic() + ttlMs;
      this.scheduleExpiry();
    }
    return lease !== undefined;
  }

  private async revokeLease(id: string): Promise<void> {
    this.enter();
    this.endLease(id);
    await this.barrier();
  }

  // --- terms and the storage fence -------------------------------------------------------------

  async pchannelTerm(pchannel: string): Promise<number> {
    this.enter();
    validatePChannel(pchannel);
    const term = this.state.terms.get(pchannel) ?? 0;
    await this.barrier();
    return term;
  }

  async bumpTerm(pchannel: string, expectedTerm: number): Promise<number | undefined> {
    this.enter();
    validatePChannel(pchannel);
    validateVersion('expectedTerm', expectedTerm);
    const current = this.state.terms.get(pchannel) ?? 0;
    let next: number | undefined;
    if (current === expectedTerm) {
      next = current + 1;
      this.state.terms.set(pchannel, next);
      this.markDirty();
    }
    await this.barrier();
    return next;
  }

  async casOwnerWrite(pchannel: string, term: number, writes: readonly KeyWrite[]): Promise<number> {
    this.enter();
    validatePChannel(pchannel);
    if (!Number.isSafeInteger(term) || term < 1) throw invalidArgument('owner term must be a positive integer', { pchannel, term });
    validateBatch(writes, pchannel, 'casOwnerWrite');
    const current = this.state.terms.get(pchannel) ?? 0;
    if (current !== term) {
      await this.barrier(); // the refusal is final only once the term that caused it is durable
      throw new ChannelFencedError(pchannel, term, current);
    }
    const version = this.applyBatch(writes);
    await this.barrier();
    return version;
  }

  // --- counters and versions -------------------------------------------------------------------

  async nextId(counter: string, count = 1): Promise<number> {
    this.enter();
    validateName('counter', counter);
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_ID_BATCH) {
      throw invalidArgument(`nextId count must be an integer in 1..${MAX_ID_BATCH}`, { counter, count });
    }
    const first = (this.state.counters.get(counter) ?? 0) + 1;
    this.state.counters.set(counter, first + count - 1);
    this.markDirty();
    await this.barrier();
    return first;
  }

  async getVersion(name: string): Promise<number> {
    this.enter();
    validateName('version name', name);
    const version = this.state.versions.get(name) ?? 0;
    await this.barrier();
    return version;
  }

  async bumpVersion(name: string): Promise<number> {
    this.enter();
    validateName('version name', name);
    const version = (this.state.versions.get(name) ?? 0) + 1;
    this.state.versions.set(name, version);
    this.pendingVersions.set(name, version);
    this.markDirty();
    await this.barrier();
    return version;
  }

  async watchVersion(name: string, onVersion: (version: number) => void): Promise<Unsubscribe> {
    this.enter();
    validateName('version name', name);
    await this.barrier();
    const watcher: VersionWatcher = { name, onVersion, last: this.durableVersions.get(name) ?? 0, active: true };
    this.versionWatchers.add(watcher);
    deliver(() => onVersion(watcher.last));
    return async () => {
      watcher.active = false;
      this.versionWatchers.delete(watcher);
    };
  }

  // --- leader election -------------------------------------------------------------------------

  async campaign(name: string, candidateId: string, ttlMs: number): Promise<Leadership | undefined> {
    this.enter();
    validateName('election name', name);
    validateName('candidateId', candidateId);
    validateTtl(ttlMs);
    if (this.liveHolder(name)) {
      await this.barrier();
      return undefined;
    }
    const epoch = (this.state.epochs.get(name) ?? 0) + 1;
    this.state.epochs.set(name, epoch);
    this.markDirty();
    this.holders.set(name, { candidateId, epoch, ttlMs, deadline: this.clock.monotonic() + ttlMs });
    await this.barrier(); // an epoch is handed out only once durable, so a restart never repeats it
    return {
      name,
      candidateId,
      epoch,
      ttlMs,
      renew: async () => {
        this.enter();
        const holder = this.liveHolder(name);
        if (holder?.epoch !== epoch) return false;
        holder.deadline = this.clock.monotonic() + ttlMs;
        return true;
      },
      resign: async () => {
        this.enter();
        if (this.holders.get(name)?.epoch === epoch) this.holders.delete(name);
      },
    };
  }

  async leader(name: string): Promise<LeaderInfo | undefined> {
    this.enter();
    validateName('election name', name);
    const holder = this.liveHolder(name);
    return holder && { candidateId: holder.candidateId, epoch: holder.epoch };
  }

  async casLeaderWrite(name: string, epoch: number, writes: readonly KeyWrite[]): Promise<number> {
    this.enter();
    validateName('election name', name);
    validateVersion('epoch', epoch);
    validateBatch(writes, undefined, 'casLeaderWrite');
    const holder = this.liveHolder(name);
    if (holder?.epoch !== epoch) throw new LeadershipLostError(name, epoch, holder?.epoch);
    const version = this.applyBatch(writes);
    await this.barrier();
    return version;
  }

  // --- lifetime --------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.expiryTimer?.handle.cancel();
      this.expiryTimer = undefined;
      try {
        while (this.flushLoop) await this.flushLoop;
      } catch (e) {
        log.warn('meta store close: final snapshot write failed', { dir: this.dir, error: String(e) });
      }
      this.watchers.clear();
      this.versionWatchers.clear();
      await this.lock.release().catch((e: unknown) => log.warn('meta store close: cannot release lock', { dir: this.dir, error: String(e) }));
    })();
    return this.closing;
  }

  // --- internals -------------------------------------------------------------------------------

  /** Common entry of every call: refuse when closed or failed, then end the leases that are due. */
  private enter(): void {
    if (this.closing) throw storeClosed('embedded meta store');
    if (this.failure) throw this.failure;
    this.expireDue();
  }

  private leaseFor(options: PutOptions | undefined): LiveLease | undefined {
    if (options?.lease === undefined) return undefined;
    const lease = this.leases.get(options.lease.id);
    if (!lease) throw new LeaseLostError(options.lease.id);
    return lease;
  }

  private liveHolder(name: string): Holder | undefined {
    const holder = this.holders.get(name);
    if (holder && holder.deadline <= this.clock.monotonic()) {
      this.holders.delete(name);
      return undefined;
    }
    return holder;
  }

  private writeEntry(key: string, value: string, lease: LiveLease | undefined): number {
    const version = ++this.state.revision;
    const entry: StoredEntry = { value, version };
    if (lease) {
      entry.lease = lease.id;
      lease.keys.add(key);
    }
    this.state.kv.set(key, entry);
    this.pendingEvents.push({ type: 'put', key, value, version });
    this.markDirty();
    return version;
  }

  private deleteEntry(key: string, version: number): void {
    this.state.kv.delete(key);
    this.pendingEvents.push({ type: 'delete', key, version });
    this.markDirty();
  }

  /** One version for the whole batch (like one etcd transaction). */
  private applyBatch(writes: readonly KeyWrite[]): number {
    const version = ++this.state.revision;
    for (const w of writes) {
      if ('value' in w) {
        this.state.kv.set(w.key, { value: w.value, version });
        this.pendingEvents.push({ type: 'put', key: w.key, value: w.value, version });
      } else if (this.state.kv.has(w.key)) {
        this.deleteEntry(w.key, version);
      }
    }
    this.markDirty();
    return version;
  }

  private endLease(id: string): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    this.leases.delete(id);
    for (const key of lease.keys) {
      if (this.state.kv.get(key)?.lease === id) this.deleteEntry(key, ++this.state.revision);
    }
    this.scheduleExpiry();
  }

  private expireDue(): void {
    const now = this.clock.monotonic();
    for (const lease of [...this.leases.values()]) if (lease.deadline <= now) this.endLease(lease.id);
  }

  /** Keeps one timer at the earliest lease deadline, so expired keys go (and watchers hear) without traffic. */
  private scheduleExpiry(): void {
    if (this.closing) return;
    let at = Infinity;
    for (const lease of this.leases.values()) at = Math.min(at, lease.deadline);
    if (this.expiryTimer?.at === at) return;
    this.expiryTimer?.handle.cancel();
    this.expiryTimer = undefined;
    if (at === Infinity) return;
    const handle = this.clock.setTimeout(() => {
      if (this.expiryTimer?.handle !== handle) return;
      this.expiryTimer = undefined;
      if (this.closing || this.failure) return;
      this.expireDue();
      this.scheduleExpiry();
    }, Math.max(0, at - this.clock.monotonic()));
    this.expiryTimer = { at, handle };
  }

  private markDirty(): void {
    this.dirty = true;
    if (!this.flushLoop) this.flushLoop = this.runFlushLoop();
  }

  /** Resolves once everything applied to the state so far is durable (immediately if it already is). */
  private async barrier(): Promise<void> {
    if (this.dirty) {
      await new Promise<void>((resolve, reject) => this.commitWaiters.push({ resolve, reject }));
    } else if (this.writing) {
      await this.writing;
    }
    if (this.failure) throw this.failure;
  }

  private async runFlushLoop(): Promise<void> {
    await Promise.resolve(); // let the calling operation finish its synchronous changes first
    while (this.dirty && !this.failure) {
      this.dirty = false;
      const waiters = this.commitWaiters;
      const events = this.pendingEvents;
      const versions = this.pendingVersions;
      this.commitWaiters = [];
      this.pendingEvents = [];
      this.pendingVersions = new Map();
      const text = encodeSnapshot(this.state);
      const write = writeSnapshot(this.dir, text);
      this.writing = write.then(
        () => undefined,
        () => undefined,
      );
      try {
        await write;
      } catch (e) {
        this.failure = toStreamingError(e);
        log.error('meta store snapshot write failed; the store is unusable until reopened', { dir: this.dir, error: String(e) });
        for (const w of [...waiters, ...this.commitWaiters]) w.reject(this.failure);
        this.commitWaiters = [];
        break;
      } finally {
        this.writing = undefined;
      }
      this.emit(events, versions);
      for (const w of waiters) w.resolve();
    }
    this.flushLoop = undefined;
  }

  private emit(events: readonly WatchEvent[], versions: ReadonlyMap<string, number>): void {
    if (events.length > 0 && this.watchers.size > 0) {
      const watchers = [...this.watchers];
      for (const event of events) {
        if (event.type === 'resync') continue;
        for (const w of watchers) if (w.active && event.key.startsWith(w.prefix)) deliver(() => w.onEvent(event));
      }
    }
    for (const [name, version] of versions) {
      this.durableVersions.set(name, version);
      for (const w of [...this.versionWatchers]) {
        if (!w.active || w.name !== name || version <= w.last) continue;
        w.last = version;
        deliver(() => w.onVersion(version));
      }
    }
  }
}

function toVersioned(entry: StoredEntry): VersionedValue {
  return entry.lease === undefined ? { value: entry.value, version: entry.version } : { value: entry.value, version: entry.version, lease: entry.lease };
}

/** Runs a watcher callback; its exceptions are logged, never propagated into the store. */
function deliver(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    log.warn('meta store watcher callback threw', { error: String(e) });
  }
}
