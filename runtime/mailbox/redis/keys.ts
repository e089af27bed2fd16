/**
 * The one builder of every Redis key of the mailbox (the storage/meta/redis/keys.ts habit): no other
 * file spells a key. Everything lives under `{prefix}:mailbox:`.
 *
 * Layout (P = prefix):
 *   P:mailbox:<address>            STREAM  inbox of one address (a node, the coordinator); consumer group `MAILBOX_GROUP`
 *   P:mailbox:reply:<clientId>     STREAM  one client's replies; PEXPIRE refreshed while the client lives
 *
 * Addresses and client ids never contain `:` (see `validateAddress`), so an inbox key never equals a
 * reply key. Every command touches one key, so the layout runs unchanged on Redis Cluster (no hash tags needed).
 */
import { invalidArgument } from '../../errors';
import { validateAddress, validateClientId } from '../mailbox';

export const DEFAULT_MAILBOX_PREFIX = 'walstream';

/** The consumer group every server of an address reads the inbox with. */
export const MAILBOX_GROUP = 'servers';

export class MailboxKeys {
  constructor(readonly prefix: string = DEFAULT_MAILBOX_PREFIX) {
    if (typeof prefix !== 'string' || prefix.length === 0 || /[{}*?[\]\\\s]/.test(prefix)) {
      throw invalidArgument('Redis mailbox prefix must be non-empty, without braces, glob characters or whitespace', { field: 'prefix', prefix });
    }
  }

  inbox(address: string): string {
    validateAddress(address);
    return `${this.prefix}:mailbox:${address}`;
  }

  replies(clientId: string): string {
    validateClientId(clientId);
    return `${this.prefix}:mailbox:reply:${clientId}`;
  }

  /** SCAN pattern for every key of this mailbox (tests and tooling clean-up). */
  allKeysPattern(): string {
    return `${this.prefix}:mailbox:*`;
  }
}
