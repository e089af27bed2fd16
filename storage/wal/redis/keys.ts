/**
 * The one builder of every Redis key of the Redis WAL backend. No other file spells a key.
 *
 * All keys of one pchannel share the hash tag `{p:<pchannel>}` — the same tag the Redis MetaStore
 * gives a pchannel's term and owner data (storage/meta/redis/keys.ts) — so that every script of the
 * WAL runs in one slot on Redis Cluster, and a pchannel's WAL keys and meta keys live in the same
 * slot (a later script may fence a metadata write on the WAL term, or the reverse).
 *
 * Layout (P = prefix, default `walstream:wal:`):
 *   P{p:<pchannel>}:stream   STREAM  the log: one entry per record, one field `d` = the record's bytes
 *   P{p:<pchannel>}:term     HASH    term = current term (absent = never opened rw),
 *                                    epoch = number of rw opens (each rw open supersedes the previous one)
 */
import { invalidArgument } from '../../../runtime/errors';

export const DEFAULT_WAL_KEY_PREFIX = 'walstream:wal:';

/** Name of the stream entry field that holds a record. */
export const RECORD_FIELD = 'd';

export class WalKeys {
  constructor(readonly prefix: string = DEFAULT_WAL_KEY_PREFIX) {
    if (typeof prefix !== 'string' || prefix.length === 0 || /[{}*?[\]\\\s]/.test(prefix)) {
      throw invalidArgument('Redis WAL keyPrefix must be non-empty, without braces, glob characters or whitespace', {
        field: 'keyPrefix',
        value: prefix,
      });
    }
  }

  /** `{p:<pchannel>}`: the hash tag of a pchannel, including braces. */
  tag(pchannel: string): string {
    return `{p:${pchannel}}`;
  }

  /** The stream that holds the pchannel's log. */
  stream(pchannel: string): string {
    return `${this.prefix}${this.tag(pchannel)}:stream`;
  }

  /** The pchannel's fencing state (term, epoch). */
  term(pchannel: string): string {
    return `${this.prefix}${this.tag(pchannel)}:term`;
  }

  /** SCAN pattern for every key under this prefix (tests and tooling clean-up). */
  allKeysPattern(): string {
    return `${this.prefix}*`;
  }
}
