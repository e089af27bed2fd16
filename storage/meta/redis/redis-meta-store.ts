/**
 * The cluster MetaStore on Redis (ioredis). Every multi-step change is one Lua script (scripts/*.lua,
 * registered by scripts/loader.ts); every key comes from keys.ts; negative script replies become typed
 * errors in error-codes.ts. See storage/meta/README.md for the layout and the fencing argument.
 *
 * Time: lease and leadership TTLs run on the Redis server (PX, TIME inside scripts) — the one clock
 * every process agrees on. The injected Clock only paces this process's lease reaper.
 *
 * Connections: one for commands, one (created on the first watch) for pub/sub. Watch events are
 * published by the writing scripts themselves (no keyspace-notification configuration needed). Keys
 * of an expired lease vanish by their PX at once; the reaper (any store instance, every
 * `reapIntervalMs`) then publishes their delete events.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { connectOrExplain } from '../../redis/connect';
import { systemClock, type Clock, type TimerHandle } from '../../../runtime/clock';
import { ErrorCode, StreamingError, invalidArgument, isStreamingError } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';
import { ConnectionLoss } from '../../../runtime/redis/connection-loss';
import { storeClosed } from '../errors';
import {
  validateBatch,
  validateKey,
  validateName,
  validatePChannel,
  validatePlainKey,
  validateTtl,
  validateValue,
  validateVersion,
  type KeyChangeEvent,
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
import { ScriptErrorCode, expectResult, scriptError } from './error-codes';
import { DEFAULT_PREFIX, META_GROUP, MetaKeys, type KeyGroup } from './keys';
import { registerScripts, type MetaScripts, type ScriptArg } from './scripts/loader';
import { WatchHub } from './watch-hub';

export interface RedisMetaStoreOptions {
  /**
   * ioredis connection options (host, port, password, db, tls …). Default host 127.0.0.1, port 6379.
   * `keyPrefix` is refused (scripts build keys themselves): use `prefix`.
   */
  redis?: RedisOptions;
  /** Prefix of every key and channel; no braces, glob characters or whitespace. Default `walstream:meta:`. */
  prefix?: string;
  /** Paces the lease reaper. Default: systemClock. */
  clock?: Clock;
  /** How often this instance ends expired leases and publishes their keys' delete events (ms); 0 = never. Default 1000. */
  reapIntervalMs?: number;
  /** Most leases ended per reaper script call. Default 100. */
  reapBatchSize?: number;
  /** Connect timeout (ms). Default 5000. */
  connectTimeoutMs?: number;
}

const MAX_ID_BATCH = 1_000_000;
const log = createLogger('meta.redis');

export class RedisMetaStore implements MetaStore {
  readonly keys: MetaKeys;
  private hub: Promise<WatchHub> | undefined;
  private reaper: TimerHandle | undefined;
  private reaping: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** pchannels already registered in `P{m}:pchannels` by this instance. */
  private readonly registered = new Set<string>();

  private constructor(
    private readonly client: Redis,
    private readonly scripts: MetaScripts,
    prefix: string,
    private readonly clock: Clock,
    private readonly reapBatchSize: number,
    private readonly connectTimeoutMs: number,
  ) {
    this.keys = new MetaKeys(prefix);
  }

  /** Connects (failing with a clear INNER error when Redis does not answer) and loads the scripts. */
  static async connect(options: RedisMetaStoreOptions = {}): Promise<RedisMetaStore> {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    new MetaKeys(prefix); // validates
    if (options.redis?.keyPrefix) throw invalidArgument('RedisMetaStoreOptions.redis.keyPrefix is not supported; use prefix', {});
    const reapIntervalMs = options.reapIntervalMs ?? 1000;
    const reapBatchSize = options.reapBatchSize ?? 100;
    const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    if (!Number.isSafeInteger(reapIntervalMs) || reapIntervalMs < 0) throw invalidArgument('reapIntervalMs must be a non-negative integer', { reapIntervalMs });
    if (!Number.isSafeInteger(reapBatchSize) || reapBatchSize < 1) throw invalidArgument('reapBatchSize must be a positive integer', { reapBatchSize });
    const client = new Redis({
      host: '127.0.0.1',
      port: 6379,
      connectionName: 'walstream-meta',
      ...options.redis,
      connectTimeout: connectTimeoutMs,
      lazyConnect: true,
    });
    client.on('error', (e: unknown) => log.debug('redis connection error', { error: String(e) }));
    await connectOrExplain(client, connectTimeoutMs);
    watchConnection(client, 'command connection');
    const store = new RedisMetaStore(client, registerScripts(client), prefix, options.clock ?? systemClock, reapBatchSize, connectTimeoutMs);
    if (reapIntervalMs > 0) store.reaper = store.clock.setInterval(() => store.reapSoon(), reapIntervalMs);
    return store;
  }

  // --- key/value -------------------------------------------------------------------------------

  get(key: string): Promise<VersionedValue | undefined> {
    return this.op('get', async () => {
      validateKey(key);
      const [value, version, lease] = await this.client.hmget(this.keys.entry(key), 'v', 'r', 'l');
      return toVersioned(value ?? null, version ?? null, lease ?? null);
    });
  }

  list(prefix: string): Promise<ReadonlyMap<string, VersionedValue>> {
    return this.op('list', async () => {
      if (typeof prefix !== 'string') throw invalidArgument('list prefix must be a string', {});
      const registered = this.keys.prefixSpansPChannels(prefix) ? await this.client.smembers(this.keys.pchannels()) : [];
      const rows: Array<[string, VersionedValue]> = [];
      for (const group of this.keys.groupsForPrefix(prefix, registered)) rows.push(...(await this.listGroup(group, prefix)));
      rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      return new Map(rows);
    });
  }

  put(key: string, value: string, options?: PutOptions): Promise<number> {
    return this.op('put', async () => {
      validatePlainKey(key, 'put');
      validateValue(value);
      return this.runPut(key, value, -1, options);
    });
  }

  cas(key: string, expectedVersion: number, value: string, options?: PutOptions): Promise<number | undefined> {
    return this.op('cas', async () => {
      validatePlainKey(key, 'cas');
      validateVersion('expectedVersion', expectedVersion);
      validateValue(value);
      const version = await this.runPut(key, value, expectedVersion, options);
      return version === 0 ? undefined : version;
    });
  }

  delete(key: string, expectedVersion?: number): Promise<boolean> {
    return this.op('delete', async () => {
      validatePlainKey(key, 'delete');
      if (expectedVersion !== undefined) validateVersion('expectedVersion', expectedVersion);
      const reply = await this.scripts.run(
        'delete',
        [this.keys.entry(key), this.keys.index(META_GROUP), this.keys.revision(META_GROUP)],
        [key, expectedVersion ?? -1, this.keys.watchBase()],
      );
      return expectResult(reply, { script: 'delete' }) > 0;
    });
  }

  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<Unsubscribe> {
    return this.op('watch', async () => {
      if (typeof prefix !== 'string') throw invalidArgument('watch prefix must be a string', {});
      const hub = await this.watchHub();
      let active = true;
      const offResync = hub.onResync(() => active && onEvent({ type: 'resync' }));
      let off: () => Promise<void>;
      try {
        off = await hub.addPattern(this.keys.watchPattern(prefix), (_channel, message) => {
          if (!active) return;
          const event = parseEvent(message);
          if (event && event.key.startsWith(prefix)) onEvent(event);
          else if (!event) log.warn('unparseable meta watch message', { message: message.slice(0, 200) });
        });
      } catch (e) {
        offResync();
        throw e;
      }
      return once(async () => {
        active = false;
        offResync();
        await off();
      });
    });
  }

  // --- leases ----------------------------------------------------------------------------------

  grantLease(owner: string, ttlMs: number): Promise<Lease> {
    return this.op('grantLease', async () => {
      validateName('owner', owner);
      validateTtl(ttlMs);
      const id = `${owner}.${await this.client.incr(this.keys.leaseSeq())}`;
      const granted = await this.scripts.run('grant-lease', [this.keys.lease(id), this.keys.leaseDeadlines()], [id, ttlMs]);
      if (expectResult(granted, { script: 'grant-lease', leaseId: id }) !== 1) {
        throw new StreamingError(ErrorCode.INNER, `lease id ${id} already exists (lease sequence reset?)`, { details: { id } });
      }
      return {
        id,
        ttlMs,
        renew: () =>
          this.op('lease.renew', async () => {
            const reply = await this.scripts.run(
              'renew-lease',
              [this.keys.lease(id), this.keys.leaseDeadlines()],
              [id, ttlMs, this.keys.kvBase(META_GROUP)],
            );
            return expectResult(reply, { script: 'renew-lease', leaseId: id }) === 1;
          }),
        revoke: () =>
          this.op('lease.revoke', async () => {
            await this.expireLeases(id);
          }),
      };
    });
  }

  // --- terms and the storage fence -------------------------------------------------------------

  pchannelTerm(pchannel: string): Promise<number> {
    return this.op('pchannelTerm', async () => {
      validatePChannel(pchannel);
      return Number((await this.client.get(this.keys.term(pchannel))) ?? 0);
    });
  }

  bumpTerm(pchannel: string, expectedTerm: number): Promise<number | undefined> {
    return this.op('bumpTerm', async () => {
      validatePChannel(pchannel);
      validateVersion('expectedTerm', expectedTerm);
      await this.register(pchannel);
      const reply = await this.scripts.run('bump-term', [this.keys.term(pchannel)], [expectedTerm]);
      const term = expectResult(reply, { script: 'bump-term', pchannel });
      return term === 0 ? undefined : term;
    });
  }

  casOwnerWrite(pchannel: string, term: number, writes: readonly KeyWrite[]): Promise<number> {
    return this.op('casOwnerWrite', async () => {
      validatePChannel(pchannel);
      if (!Number.isSafeInteger(term) || term < 1) throw invalidArgument('owner term must be a positive integer', { pchannel, term });
      validateBatch(writes, pchannel, 'casOwnerWrite');
      const group = this.keys.pchannelGroup(pchannel);
      const reply = await this.scripts.run(
        'owner-write',
        [this.keys.term(pchannel), this.keys.index(group), this.keys.revision(group)],
        [term, this.keys.kvBase(group), this.keys.watchBase(), ...batchArgs(writes)],
      );
      if (reply === ScriptErrorCode.STALE_TERM) {
        const currentTerm = Number((await this.client.get(this.keys.term(pchannel)).catch(() => null)) ?? 0);
        throw scriptError(ScriptErrorCode.STALE_TERM, { script: 'owner-write', pchannel, term, currentTerm });
      }
      return expectResult(reply, { script: 'owner-write', pchannel, term });
    });
  }

  // --- counters and versions -------------------------------------------------------------------

  nextId(counter: string, count = 1): Promise<number> {
    return this.op('nextId', async () => {
      validateName('counter', counter);
      if (!Number.isSafeInteger(count) || count < 1 || count > MAX_ID_BATCH) {
        throw invalidArgument(`nextId count must be an integer in 1..${MAX_ID_BATCH}`, { counter, count });
      }
      const last = await this.client.incrby(this.keys.counter(counter), count);
      return last - count + 1;
    });
  }

  getVersion(name: string): Promise<number> {
    return this.op('getVersion', async () => {
      validateName('version name', name);
      return Number((await this.client.get(this.keys.version(name))) ?? 0);
    });
  }

  bumpVersion(name: string): Promise<number> {
    return this.op('bumpVersion', async () => {
      validateName('version name', name);
      const reply = await this.scripts.run('bump-version', [this.keys.version(name)], [this.keys.versionChannel(name)]);
      return expectResult(reply, { script: 'bump-version' });
    });
  }

  watchVersion(name: string, onVersion: (version: number) => void): Promise<Unsubscribe> {
    return this.op('watchVersion', async () => {
      validateName('version name', name);
      const hub = await this.watchHub();
      let active = true;
      let last = -1;
      const offer = (version: number): void => {
        if (!active || !Number.isSafeInteger(version) || version <= last) return;
        last = version;
        onVersion(version);
      };
      const off = await hub.addChannel(this.keys.versionChannel(name), (message) => offer(Number(message)));
      const reread = (): Promise<void> => this.getVersion(name).then(offer);
      const offResync = hub.onResync(() => {
        reread().catch((e: unknown) => log.warn('version re-read after reconnect failed', { name, error: String(e) }));
      });
      try {
        await reread(); // subscribed first, then read: no bump can fall in between
      } catch (e) {
        active = false;
        offResync();
        await off();
        throw e;
      }
      return once(async () => {
        active = false;
        offResync();
        await off();
      });
    });
  }

  // --- leader election -------------------------------------------------------------------------

  campaign(name: string, candidateId: string, ttlMs: number): Promise<Leadership | undefined> {
    return this.op('campaign', async () => {
      validateName('election name', name);
      validateName('candidateId', candidateId);
      validateTtl(ttlMs);
      const reply = await this.scripts.run('campaign', [this.keys.leader(name), this.keys.leaderEpoch(name)], [candidateId, ttlMs]);
      const epoch = expectResult(reply, { script: 'campaign', election: name });
      if (epoch === 0) return undefined;
      return {
        name,
        candidateId,
        epoch,
        ttlMs,
        renew: () =>
          this.op('leadership.renew', async () => {
            const r = await this.scripts.run('renew-leader', [this.keys.leader(name)], [epoch, ttlMs]);
            return expectResult(r, { script: 'renew-leader', election: name, epoch }) === 1;
          }),
        resign: () =>
          this.op('leadership.resign', async () => {
            await this.scripts.run('resign-leader', [this.keys.leader(name)], [epoch]);
          }),
      };
    });
  }

  leader(name: string): Promise<LeaderInfo | undefined> {
    return this.op('leader', async () => {
      validateName('election name', name);
      const [epoch, candidateId] = await this.client.hmget(this.keys.leader(name), 'e', 'c');
      return epoch && candidateId ? { candidateId, epoch: Number(epoch) } : undefined;
    });
  }

  casLeaderWrite(name: string, epoch: number, writes: readonly KeyWrite[]): Promise<number> {
    return this.op('casLeaderWrite', async () => {
      validateName('election name', name);
      validateVersion('epoch', epoch);
      validateBatch(writes, undefined, 'casLeaderWrite');
      const reply = await this.scripts.run(
        'leader-write',
        [this.keys.leader(name), this.keys.index(META_GROUP), this.keys.revision(META_GROUP)],
        [epoch, this.keys.kvBase(META_GROUP), this.keys.watchBase(), ...batchArgs(writes)],
      );
      if (reply === ScriptErrorCode.NOT_LEADER) {
        const current = await this.client.hget(this.keys.leader(name), 'e').catch(() => null);
        throw scriptError(ScriptErrorCode.NOT_LEADER, {
          script: 'leader-write',
          election: name,
          epoch,
          ...(current ? { currentEpoch: Number(current) } : {}),
        });
      }
      return expectResult(reply, { script: 'leader-write', election: name, epoch });
    });
  }

  // --- lifetime --------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.reaper?.cancel();
      this.reaper = undefined;
      await this.reaping;
      if (this.hub) {
        const hub = await this.hub.catch(() => undefined);
        await hub?.close().catch((e: unknown) => log.warn('meta store close: watch connection', { error: String(e) }));
      }
      await this.client.quit().catch((e: unknown) => {
        log.warn('meta store close: quit failed', { error: String(e) });
        this.client.disconnect();
      });
    })();
    return this.closing;
  }

  // --- internals -------------------------------------------------------------------------------

  /** Runs one operation: refused after close; Redis/transport failures become retriable INNER errors. */
  private async op<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.closing) throw storeClosed('redis meta store');
    try {
      return await fn();
    } catch (e) {
      if (isStreamingError(e)) throw e;
      const message = e instanceof Error ? e.message : String(e);
      throw new StreamingError(ErrorCode.INNER, `redis meta store: ${name} failed: ${message}`, { cause: e, details: { op: name } });
    }
  }

  private async runPut(key: string, value: string, expected: number, options: PutOptions | undefined): Promise<number> {
    const leaseId = options?.lease?.id ?? '';
    const reply = await this.scripts.run(
      'put',
      [this.keys.entry(key), this.keys.index(META_GROUP), this.keys.revision(META_GROUP)],
      [key, value, expected, leaseId, this.keys.leaseBase(), this.keys.watchBase()],
    );
    return expectResult(reply, { script: 'put', leaseId });
  }

  private async listGroup(group: KeyGroup, prefix: string): Promise<Array<[string, VersionedValue]>> {
    const min: string | Buffer = prefix === '' ? '-' : `[${prefix}`;
    // No UTF-8 sequence contains 0xff, so (prefix + 0xff) bounds every key that starts with prefix.
    const max: string | Buffer = prefix === '' ? '+' : Buffer.concat([Buffer.from(`(${prefix}`, 'utf8'), Buffer.from([0xff])]);
    const names = (await this.client.zrangebylex(this.keys.index(group), min, max)).filter((k) => k.startsWith(prefix));
    if (names.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const k of names) pipeline.hmget(this.keys.kvBase(group) + k, 'v', 'r', 'l');
    const replies = (await pipeline.exec()) ?? [];
    const rows: Array<[string, VersionedValue]> = [];
    names.forEach((k, i) => {
      const [err, fields] = replies[i] ?? [new Error('missing pipeline reply'), null];
      if (err) throw err;
      const [v, r, l] = (fields as Array<string | null> | null) ?? [];
      const entry = toVersioned(v ?? null, r ?? null, l ?? null); // undefined: expired lease key, awaiting the reaper
      if (entry) rows.push([k, entry]);
    });
    return rows;
  }

  /** Records that `pchannel` has a key group, so `list` across pchannels can reach it. */
  private async register(pchannel: string): Promise<void> {
    if (this.registered.has(pchannel)) return;
    await this.client.sadd(this.keys.pchannels(), pchannel);
    this.registered.add(pchannel);
  }

  private async expireLeases(revokeId: string): Promise<number> {
    const reply = await this.scripts.run(
      'expire-leases',
      [this.keys.leaseDeadlines(), this.keys.index(META_GROUP), this.keys.revision(META_GROUP)],
      [this.keys.leaseBase(), this.keys.kvBase(META_GROUP), this.keys.watchBase(), revokeId, this.reapBatchSize] as ScriptArg[],
    );
    return expectResult(reply, { script: 'expire-leases', leaseId: revokeId });
  }

  private reapSoon(): void {
    if (this.reaping || this.closing) return;
    this.reaping = (async () => {
      try {
        while (!this.closing && (await this.expireLeases('')) >= this.reapBatchSize) {
          // a full batch: more may be due
        }
      } catch (e) {
        log.warn('lease reaper failed (will retry)', { error: String(e) });
      } finally {
        this.reaping = undefined;
      }
    })();
  }

  private watchHub(): Promise<WatchHub> {
    this.hub ??= (async () => {
      const name = this.client.options.connectionName;
      const sub = this.client.duplicate({ lazyConnect: true, ...(name ? { connectionName: `${name}-sub` } : {}) });
      sub.on('error', (e: unknown) => log.debug('redis watch connection error', { error: String(e) }));
      await connectOrExplain(sub, this.connectTimeoutMs);
      watchConnection(sub, 'watch connection', true);
      const hub = new WatchHub(sub, log);
      hub.markConnected();
      return hub;
    })();
    const hub = this.hub;
    hub.catch(() => {
      if (this.hub === hub) this.hub = undefined; // let the next watch try again
    });
    return hub;
  }
}


/**
 * Logs when a connection drops and when it is back (ioredis reconnects on its own; commands in
 * flight are re-sent then). The watch hub logs the watch connection's return itself (after the
 * re-subscriptions are in effect).
 */
function watchConnection(client: Redis, what: string, dropOnly = false): void {
  new ConnectionLoss(client, {
    onDrop: () => {
      if (client.status !== 'end') log.warn(`meta ${what} to Redis lost; reconnecting`);
    },
    ...(dropOnly ? {} : { onRestore: (downMs: number) => log.warn(`meta ${what} to Redis re-established`, { downMs }) }),
  });
}

function toVersioned(value: string | null, version: string | null, lease: string | null): VersionedValue | undefined {
  if (value === null || version === null) return undefined;
  return lease === null ? { value, version: Number(version) } : { value, version: Number(version), lease };
}

function parseEvent(message: string): KeyChangeEvent | undefined {
  try {
    const m = JSON.parse(message) as { k?: unknown; v?: unknown; r?: unknown };
    if (typeof m.k !== 'string' || typeof m.r !== 'string') return undefined;
    const version = Number(m.r);
    return typeof m.v === 'string' ? { type: 'put', key: m.k, value: m.v, version } : { type: 'delete', key: m.k, version };
  } catch {
    return undefined;
  }
}

function batchArgs(writes: readonly KeyWrite[]): string[] {
  const args: string[] = [];
  for (const w of writes) {
    if ('value' in w) args.push('put', w.key, w.value);
    else args.push('del', w.key, '');
  }
  return args;
}

function once(fn: () => Promise<void>): Unsubscribe {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}
