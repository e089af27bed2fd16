/**
 * One pub/sub connection shared by all watches of a RedisMetaStore. Subscriptions are reference
 * counted per channel / pattern; `add*` resolves only once Redis has acknowledged the subscription
 * (so every later publish is delivered). A removed handler is never called again, even if the
 * UNSUBSCRIBE is still in flight.
 *
 * Pub/sub is at-most-once: messages published while the connection is down are lost. ioredis
 * re-subscribes after a reconnect; once that is acknowledged (a PING behind the re-subscribe commands
 * has returned) the hub calls every resync listener so watchers re-read what they may have missed.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../../runtime/logger';

type PatternHandler = (channel: string, message: string) => void;
type ChannelHandler = (message: string) => void;

interface Subscription<H> {
  readonly handlers: Set<H>;
  /** Resolves when Redis acknowledged the (P)SUBSCRIBE. */
  readonly ready: Promise<void>;
}

export class WatchHub {
  private readonly patterns = new Map<string, Subscription<PatternHandler>>();
  private readonly channels = new Map<string, Subscription<ChannelHandler>>();
  private readonly resyncListeners = new Set<() => void>();
  private connectedOnce = false;
  private closed = false;

  constructor(
    private readonly sub: Redis,
    private readonly log: Logger,
  ) {
    sub.on('pmessage', (pattern: string, channel: string, message: string) => {
      const s = this.patterns.get(pattern);
      if (s) for (const h of [...s.handlers]) if (s.handlers.has(h)) safe(this.log, () => h(channel, message));
    });
    sub.on('message', (channel: string, message: string) => {
      const s = this.channels.get(channel);
      if (s) for (const h of [...s.handlers]) if (s.handlers.has(h)) safe(this.log, () => h(message));
    });
    sub.on('ready', () => {
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        return;
      }
      // Reconnected: ioredis has just sent the re-subscriptions; a PING queued behind them returns
      // after they are in effect. Only then may watchers re-read.
      sub.ping().then(
        () => {
          if (this.closed) return;
          this.log.warn('meta watch connection re-established; watchers resync');
          for (const l of [...this.resyncListeners]) safe(this.log, l);
        },
        (e: unknown) => this.log.warn('meta watch connection: ping after reconnect failed', { error: String(e) }),
      );
    });
  }

  /** The subscriber connection is ready for the first time (called by the owner after connect). */
  markConnected(): void {
    this.connectedOnce = true;
  }

  addPattern(pattern: string, handler: PatternHandler): Promise<() => Promise<void>> {
    return this.add(this.patterns, pattern, handler, () => this.sub.psubscribe(pattern), () => this.sub.punsubscribe(pattern), 'punsubscribe');
  }

  addChannel(channel: string, handler: ChannelHandler): Promise<() => Promise<void>> {
    return this.add(this.channels, channel, handler, () => this.sub.subscribe(channel), () => this.sub.unsubscribe(channel), 'unsubscribe');
  }

  /**
   * Adds a handler to the subscription of `name` (subscribing on first use); the returned function
   * removes it (unsubscribing with the last handler). A failed subscribe removes the handler again.
   */
  private async add<H>(
    subs: Map<string, Subscription<H>>,
    name: string,
    handler: H,
    subscribe: () => Promise<unknown>,
    unsubscribe: () => Promise<unknown>,
    what: string,
  ): Promise<() => Promise<void>> {
    let s = subs.get(name);
    if (!s) {
      s = { handlers: new Set(), ready: subscribe().then(() => undefined) };
      subs.set(name, s);
    }
    const subscription = s;
    subscription.handlers.add(handler);
    try {
      await subscription.ready;
    } catch (e) {
      subscription.handlers.delete(handler);
      if (subscription.handlers.size === 0 && subs.get(name) === subscription) subs.delete(name);
      throw e;
    }
    return async () => {
      if (!subscription.handlers.delete(handler) || subscription.handlers.size > 0) return;
      if (subs.get(name) !== subscription) return;
      subs.delete(name);
      if (!this.closed) await unsubscribe().catch((e: unknown) => this.log.debug(`${what} failed`, { error: String(e) }));
    };
  }

  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.patterns.values()) s.handlers.clear();
    for (const s of this.channels.values()) s.handlers.clear();
    this.patterns.clear();
    this.channels.clear();
    this.resyncListeners.clear();
    await this.sub.quit().catch(() => this.sub.disconnect());
  }
}

function safe(log: Logger, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    log.warn('meta watcher callback threw', { error: String(e) });
  }
}
