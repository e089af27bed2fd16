/**
 * The one builder of every Redis key and pub/sub channel of the Redis MetaStore. No other file
 * spells a key. Everything lives under `prefix` (default `walstream:meta:`).
 *
 * Keys come in hash-tag groups so that every script touches one slot only (Redis Cluster):
 * - `{p:<pchannel>}` — one pchannel: its term, its owner data (`pchannel/<name>/…` keys), their
 *   index and version counter. The term CAS and the owner writes run in this slot.
 * - `{m}` — everything else: plain keys, leases, counters, version counters, elections.
 * Scripts build same-group keys from the bases passed in ARGV (the BullMQ habit), e.g. an entry key is
 * `kvBase .. logicalKey`.
 *
 * Layout (P = prefix):
 *   P{g}:kv:<logical key>        HASH  v = value, r = version, l = lease id (lease-attached keys also carry a PX TTL)
 *   P{g}:index                   ZSET  logical keys of the group (score 0), for `list` by lex range
 *   P{g}:rev                     STR   last version handed out in the group (INCR)
 *   P{p:<pchannel>}:term         STR   the pchannel's term (absent = 0)
 *   P{m}:pchannels               SET   pchannels that have a group (so `list` can reach them)
 *   P{m}:counter:<name>          STR   id counter (INCRBY)
 *   P{m}:version:<name>          STR   version counter (INCR + PUBLISH)
 *   P{m}:lease-seq               STR   lease sequence (INCR)
 *   P{m}:lease:<id>              STR   ttl ms, with PX = ttl
 *   P{m}:lease:<id>:keys         SET   logical keys attached to the lease
 *   P{m}:lease-deadlines         ZSET  lease id → expiry (Redis server ms), for the reaper
 *   P{m}:leader:<name>           HASH  e = epoch, c = candidate id, with PX = ttl
 *   P{m}:leader-epoch:<name>     STR   last epoch handed out (INCR; never expires)
 * Pub/sub channels (not keys; no slot):
 *   Pwatch:<logical key>         JSON  {k, v?, r}: put (v present) or delete; watchers PSUBSCRIBE Pwatch:<prefix>*
 *   Pversion:<name>              STR   the new version number
 */
import { invalidArgument } from '../../../runtime/errors';
import { ownerPChannelOf, PCHANNEL_NAMESPACE } from '../meta-store';

export const DEFAULT_PREFIX = 'walstream:meta:';

/** The hash-tag group of a key: one pchannel, or the shared meta group. */
export type KeyGroup = { readonly kind: 'meta' } | { readonly kind: 'pchannel'; readonly pchannel: string };

export const META_GROUP: KeyGroup = { kind: 'meta' };

export class MetaKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    if (typeof prefix !== 'string' || prefix.length === 0 || /[{}*?[\]\\\s]/.test(prefix)) {
      throw invalidArgument('Redis meta prefix must be non-empty, without braces, glob characters or whitespace', { prefix });
    }
  }

  groupOfKey(key: string): KeyGroup {
    const pchannel = ownerPChannelOf(key);
    return pchannel === undefined ? META_GROUP : { kind: 'pchannel', pchannel };
  }

  pchannelGroup(pchannel: string): KeyGroup {
    return { kind: 'pchannel', pchannel };
  }

  /** `{m}` or `{p:<pchannel>}`: the hash tag, including braces. */
  tag(group: KeyGroup): string {
    return group.kind === 'meta' ? '{m}' : `{p:${group.pchannel}}`;
  }

  /** Base of entry keys of a group; `kvBase(g) + logicalKey` is the entry. */
  kvBase(group: KeyGroup): string {
    return `${this.prefix}${this.tag(group)}:kv:`;
  }

  entry(key: string): string {
    return this.kvBase(this.groupOfKey(key)) + key;
  }

  index(group: KeyGroup): string {
    return `${this.prefix}${this.tag(group)}:index`;
  }

  revision(group: KeyGroup): string {
    return `${this.prefix}${this.tag(group)}:rev`;
  }

  term(pchannel: string): string {
    return `${this.prefix}${this.tag(this.pchannelGroup(pchannel))}:term`;
  }

  pchannels(): string {
    return `${this.prefix}{m}:pchannels`;
  }

  counter(name: string): string {
    return `${this.prefix}{m}:counter:${name}`;
  }

  version(name: string): string {
    return `${this.prefix}{m}:version:${name}`;
  }

  leaseSeq(): string {
    return `${this.prefix}{m}:lease-seq`;
  }

  /** Base of lease keys; `leaseBase() + id` is the lease, `+ ':keys'` its attached keys. */
  leaseBase(): string {
    return `${this.prefix}{m}:lease:`;
  }

  lease(id: string): string {
    return this.leaseBase() + id;
  }

  leaseKeys(id: string): string {
    return `${this.lease(id)}:keys`;
  }

  leaseDeadlines(): string {
    return `${this.prefix}{m}:lease-deadlines`;
  }

  leader(name: string): string {
    return `${this.prefix}{m}:leader:${name}`;
  }

  leaderEpoch(name: string): string {
    return `${this.prefix}{m}:leader-epoch:${name}`;
  }

  /** Base of watch channels; `watchBase() + logicalKey` is the channel a change of that key is published on. */
  watchBase(): string {
    return `${this.prefix}watch:`;
  }

  /** PSUBSCRIBE pattern for every key starting with `keyPrefix` (glob characters escaped). */
  watchPattern(keyPrefix: string): string {
    return `${this.watchBase()}${escapeGlob(keyPrefix)}*`;
  }

  versionChannel(name: string): string {
    return `${this.prefix}version:${name}`;
  }

  /** SCAN pattern for every key of this store (tests and tooling clean-up). */
  allKeysPattern(): string {
    return `${this.prefix}*`;
  }

  /** True when `keyPrefix` can match keys of pchannels it does not name (so `list` needs the registry). */
  prefixSpansPChannels(keyPrefix: string): boolean {
    if (keyPrefix.startsWith(PCHANNEL_NAMESPACE)) return !keyPrefix.slice(PCHANNEL_NAMESPACE.length).includes('/');
    return PCHANNEL_NAMESPACE.startsWith(keyPrefix);
  }

  /**
   * The groups whose keys can start with `keyPrefix`: the pchannel group when the prefix names one
   * pchannel, the matching registered pchannels for a partial name, the meta group otherwise — and
   * both for prefixes of the namespace itself (`''`, `'pch'`).
   */
  groupsForPrefix(keyPrefix: string, registeredPChannels: readonly string[]): KeyGroup[] {
    if (keyPrefix.startsWith(PCHANNEL_NAMESPACE)) {
      const rest = keyPrefix.slice(PCHANNEL_NAMESPACE.length);
      const slash = rest.indexOf('/');
      if (slash >= 0) return [this.pchannelGroup(rest.slice(0, slash))];
      return registeredPChannels.filter((p) => p.startsWith(rest)).map((p) => this.pchannelGroup(p));
    }
    if (PCHANNEL_NAMESPACE.startsWith(keyPrefix)) return [META_GROUP, ...registeredPChannels.map((p) => this.pchannelGroup(p))];
    return [META_GROUP];
  }
}

/** Escapes Redis glob metacharacters so a key prefix matches literally. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
