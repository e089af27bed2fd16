/**
 * The MetaStore: the small, strongly consistent store the coordinator and the streaming nodes share
 * for discovery leases, pchannel terms (fencing), compare-and-set metadata, id counters, watched
 * version numbers and leader election (ARCHITECTURE §2, §6, §7; milvus-streaming-notes §5.1, §7.2).
 * Implementations: `embedded/embedded-meta-store.ts` (standalone, persisted to the data directory)
 * and `redis/redis-meta-store.ts` (cluster). Both pass test/conformance/meta-store.suite.ts.
 *
 * Keys are strings, values are strings (callers encode JSON). Two namespaces:
 * - pchannel data, `pchannel/<name>/…` (see `pchannelKey`): checkpoints, vchannel and segment meta.
 *   Written ONLY by `casOwnerWrite` at the pchannel's current term — the storage fence of
 *   ARCHITECTURE §6. `put`/`cas`/`delete` refuse these keys with INVALID_ARGUMENT.
 * - everything else (node registrations, assignments, catalog …): `put`/`cas`/`delete`, or
 *   `casLeaderWrite` for writes only the elected coordinator may make.
 *
 * Versions: every write gives the key a new version, strictly greater than every earlier version of
 * that key — also across delete and re-create, so a CAS on an old version can never succeed on a
 * new incarnation (no ABA). Versions are comparable for the same key only.
 *
 * Errors are StreamingErrors: INVALID_ARGUMENT (bad key/name/ttl), CHANNEL_FENCED
 * (`ChannelFencedError`, stale term), `LeaseLostError` / `LeadershipLostError` (UNRECOVERABLE),
 * ON_SHUTDOWN after `close()`, INNER (retriable) for I/O and connection failures.
 */
import { invalidArgument } from '../../runtime/errors';

/** A stored value and the version it was written at. */
export interface VersionedValue {
  readonly value: string;
  /** > 0; strictly increasing over the key's whole history (see file comment). */
  readonly version: number;
  /** Id of the lease the key is attached to; the key vanishes when that lease ends. */
  readonly lease?: string;
}

/** One change of one key. */
export type KeyChangeEvent =
  | { readonly type: 'put'; readonly key: string; readonly value: string; readonly version: number }
  /** `version` is the version of the deletion (greater than the deleted value's). */
  | { readonly type: 'delete'; readonly key: string; readonly version: number };

/** What a watcher receives: changes in commit order per key, or a request to re-read. */
export type WatchEvent =
  | KeyChangeEvent
  /**
   * Changes may have been missed (e.g. the Redis subscriber reconnected): re-read with `list` and
   * continue. Never sent by the embedded store.
   */
  | { readonly type: 'resync' };

/** Stops a watch; after it resolves the callback is not called again. Idempotent. */
export type Unsubscribe = () => Promise<void>;

/** One write of an atomic batch (`casOwnerWrite`, `casLeaderWrite`). */
export type KeyWrite = { readonly key: string; readonly value: string } | { readonly key: string; readonly delete: true };

export interface PutOptions {
  /** Attach the key to this lease: it is deleted when the lease expires or is revoked. */
  readonly lease?: Lease;
}

/**
 * A time-to-live token (node registration). Keys put with `{ lease }` live as long as it does.
 * Renew at ≤ 1/3 of the TTL; on `false` the holder has lost it and must stop at once (self-fence).
 */
export interface Lease {
  /** Unique for the store's lifetime: `<owner>.<sequence>`; never handed out twice. */
  readonly id: string;
  readonly ttlMs: number;
  /** Extends the lease (and its keys) by `ttlMs` from now; false when it already expired or was revoked. */
  renew(): Promise<boolean>;
  /** Ends the lease now and deletes its keys (watchers get delete events). Idempotent. */
  revoke(): Promise<void>;
}

/** The elected holder of `name` (the coordinator). */
export interface Leadership {
  readonly name: string;
  readonly candidateId: string;
  /** Increases with every new leader of `name`, across restarts; the leader-write fencing token. */
  readonly epoch: number;
  readonly ttlMs: number;
  /** Extends the leadership by `ttlMs`; false when it was lost (expired, resigned, replaced). */
  renew(): Promise<boolean>;
  /** Gives the leadership up now so another candidate can win at once. Idempotent. */
  resign(): Promise<void>;
}

export interface LeaderInfo {
  readonly candidateId: string;
  readonly epoch: number;
}

export interface MetaStore {
  // --- key/value with versions ---------------------------------------------------------------
  get(key: string): Promise<VersionedValue | undefined>;
  /** Every live key starting with `prefix`, in ascending key order (code-unit order). */
  list(prefix: string): Promise<ReadonlyMap<string, VersionedValue>>;
  /** Unconditional write; resolves with the new version. */
  put(key: string, value: string, options?: PutOptions): Promise<number>;
  /**
   * Writes only if the key's version is `expectedVersion` (0 = the key must be absent). Resolves
   * with the new version, or undefined when the version did not match (nothing written).
   */
  cas(key: string, expectedVersion: number, value: string, options?: PutOptions): Promise<number | undefined>;
  /** Deletes the key (only at `expectedVersion` when given); true when something was deleted. */
  delete(key: string, expectedVersion?: number): Promise<boolean>;
  /**
   * Calls `onEvent` for every change of a key starting with `prefix` that commits after the returned
   * promise resolves. Pattern for a consistent view: watch, then `list`, then apply only events
   * whose version is greater than the listed one (and re-list on `resync`).
   */
  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<Unsubscribe>;

  // --- leases ------------------------------------------------------------------------------------
  /** A new lease labelled `owner` (e.g. the node id) with the given TTL. */
  grantLease(owner: string, ttlMs: number): Promise<Lease>;

  // --- pchannel terms and the storage fence ----------------------------------------------------
  /** The pchannel's current term; 0 when it was never assigned. */
  pchannelTerm(pchannel: string): Promise<number>;
  /**
   * Term CAS: when the current term is `expectedTerm`, makes it `expectedTerm + 1` and resolves with
   * it; otherwise resolves undefined (re-read with `pchannelTerm`). Every later owner write at an
   * older term is refused — this bump is the fence.
   */
  bumpTerm(pchannel: string, expectedTerm: number): Promise<number | undefined>;
  /**
   * Applies `writes` (keys under `pchannelKey(pchannel, …)`) atomically, only if `term` is the
   * pchannel's current term; else rejects with ChannelFencedError (CHANNEL_FENCED, never retried)
   * and writes nothing. Resolves with the version every put key now has.
   */
  casOwnerWrite(pchannel: string, term: number, writes: readonly KeyWrite[]): Promise<number>;

  // --- counters and watched versions -----------------------------------------------------------
  /** Reserves `count` ids; resolves with the first. Ids start at 1 and are never handed out twice. */
  nextId(counter: string, count?: number): Promise<number>;
  /** Current value of a version counter (0 if never bumped). */
  getVersion(name: string): Promise<number>;
  /** +1 on the version counter `name` (e.g. the assignment version); watchers learn of it at once. */
  bumpVersion(name: string): Promise<number>;
  /**
   * Calls `onVersion` with the current value (before the promise resolves) and then with every
   * greater value; values are delivered in increasing order, and intermediate ones may be skipped.
   */
  watchVersion(name: string, onVersion: (version: number) => void): Promise<Unsubscribe>;

  // --- leader election ---------------------------------------------------------------------------
  /** Becomes the leader of `name` when nobody holds it; undefined when someone (even this candidate) does. */
  campaign(name: string, candidateId: string, ttlMs: number): Promise<Leadership | undefined>;
  /** The live leader of `name`, if any. */
  leader(name: string): Promise<LeaderInfo | undefined>;
  /**
   * Applies `writes` (keys outside the pchannel namespace) atomically, only while `epoch` is the live
   * leadership of `name`; else rejects with LeadershipLostError and writes nothing.
   */
  casLeaderWrite(name: string, epoch: number, writes: readonly KeyWrite[]): Promise<number>;

  /** Idempotent; later calls reject with ON_SHUTDOWN. Does not revoke leases or resign. */
  close(): Promise<void>;
}

// --- the pchannel namespace -------------------------------------------------------------------

/** Keys under this prefix belong to a pchannel's owner: `pchannel/<name>/<path>`. */
export const PCHANNEL_NAMESPACE = 'pchannel/';

const MAX_KEY_LENGTH = 1024;
const MAX_NAME_LENGTH = 200;

/** The key of `path` in `pchannel`'s owner namespace, e.g. `pchannelKey('dml_0', 'checkpoint')`. */
export function pchannelKey(pchannel: string, path: string): string {
  validatePChannel(pchannel);
  if (path.length === 0) throw invalidArgument('pchannel key path must not be empty', { pchannel });
  return validateKey(`${PCHANNEL_NAMESPACE}${pchannel}/${path}`);
}

/** `pchannel/<name>/`: the prefix to `list` or `watch` one pchannel's data. */
export function pchannelPrefix(pchannel: string): string {
  validatePChannel(pchannel);
  return `${PCHANNEL_NAMESPACE}${pchannel}/`;
}

/** The pchannel whose owner writes `key`, or undefined when the key is outside the namespace. */
export function ownerPChannelOf(key: string): string | undefined {
  if (!key.startsWith(PCHANNEL_NAMESPACE)) return undefined;
  const end = key.indexOf('/', PCHANNEL_NAMESPACE.length);
  return end < 0 ? undefined : key.slice(PCHANNEL_NAMESPACE.length, end);
}

// --- validation shared by the implementations -----------------------------------------------------

export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw invalidArgument('meta key must be a non-empty string', { key });
  if (key.length > MAX_KEY_LENGTH) throw invalidArgument(`meta key longer than ${MAX_KEY_LENGTH}`, { key: key.slice(0, 80) });
  if (key.startsWith(PCHANNEL_NAMESPACE) && !validPChannel(ownerPChannelOf(key) ?? '')) {
    throw invalidArgument('a key in the pchannel namespace must be pchannel/<name>/<path>', { key });
  }
  return key;
}

/** A plain (non-owner) key: valid and outside the pchannel namespace. */
export function validatePlainKey(key: string, op: string): string {
  validateKey(key);
  if (ownerPChannelOf(key) !== undefined) {
    throw invalidArgument(`${op}: ${key} is pchannel data; only casOwnerWrite writes it (at the current term)`, { key, op });
  }
  return key;
}

function validPChannel(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && !/[/{}\s]/.test(name);
}

export function validatePChannel(pchannel: string): string {
  if (typeof pchannel !== 'string' || !validPChannel(pchannel)) {
    throw invalidArgument('pchannel name must be 1..200 characters without "/", "{", "}" or whitespace', { pchannel });
  }
  return pchannel;
}

/** Names of counters, versions, elections and lease owners. */
export function validateName(what: string, name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || /[{}\s]/.test(name)) {
    throw invalidArgument(`${what} must be 1..200 characters without "{", "}" or whitespace`, { [what]: name });
  }
  return name;
}

export function validateTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw invalidArgument('ttlMs must be a positive integer (ms)', { ttlMs });
  return ttlMs;
}

export function validateVersion(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw invalidArgument(`${what} must be a non-negative integer`, { [what]: v });
  return v;
}

export function validateValue(value: string): string {
  if (typeof value !== 'string') throw invalidArgument('meta value must be a string', { type: typeof value });
  return value;
}

/** Checks a batch for `casOwnerWrite` (all keys in `pchannel`'s namespace) or `casLeaderWrite` (none). */
export function validateBatch(writes: readonly KeyWrite[], owner: string | undefined, op: string): void {
  if (!Array.isArray(writes) || writes.length === 0) throw invalidArgument(`${op}: writes must be a non-empty array`, { op });
  const seen = new Set<string>();
  for (const w of writes) {
    validateKey(w.key);
    if ('value' in w) validateValue(w.value);
    else if (w.delete !== true) throw invalidArgument(`${op}: each write needs a value or delete: true`, { key: w.key });
    if (seen.has(w.key)) throw invalidArgument(`${op}: key ${w.key} appears twice in one batch`, { key: w.key });
    seen.add(w.key);
    const keyOwner = ownerPChannelOf(w.key);
    if (owner === undefined && keyOwner !== undefined) {
      throw invalidArgument(`${op}: ${w.key} is pchannel data; only casOwnerWrite writes it`, { key: w.key });
    }
    if (owner !== undefined && keyOwner !== owner) {
      throw invalidArgument(`${op}: ${w.key} is not in pchannel ${owner}'s namespace (${PCHANNEL_NAMESPACE}${owner}/…)`, { key: w.key, pchannel: owner });
    }
  }
}
