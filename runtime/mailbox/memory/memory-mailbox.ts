/**
 * The mailbox in one process: the same WireMailbox as on Redis, over a MemoryMailboxHub. Same
 * envelopes, limits, deadlines, consumer-group restart semantics, credits and expiry — for unit
 * tests and seeded simulations. Several MemoryMailbox instances on one hub are several processes
 * on one Redis.
 */
import type { Clock, TimerHandle } from '../../clock';
import type { Logger } from '../../logger';
import { mailboxOptions, type MailboxOptions } from '../mailbox';
import { ReplyKind, replyFields } from '../envelope';
import { MAILBOX_GROUP, MailboxKeys } from '../redis/keys';
import type { InboxConsumer, InboxReader, MailboxWire, ReplyReader, WireEntry, WireFields } from '../wire';
import { WireMailbox } from '../wire-mailbox';
import { MemoryMailboxHub } from './memory-hub';

export { MemoryMailboxHub } from './memory-hub';

/** The key prefix memory mailboxes use on their hub (the same key builder as Redis). */
export const MEMORY_PREFIX = 'memory';

/** Keys of the memory mailboxes on a hub (tests inspect lengths and pending counts with them). */
export const memoryMailboxKeys = new MailboxKeys(MEMORY_PREFIX);

export class MemoryMailbox extends WireMailbox {
  constructor(
    readonly hub: MemoryMailboxHub,
    options: Partial<MailboxOptions> = {},
    logger?: Logger,
  ) {
    const clock = options.clock ?? hub.clock;
    const o = mailboxOptions({ ...options, clock });
    super(new MemoryWire(hub, memoryMailboxKeys, o, clock), o, logger);
  }
}

/** One read loop: knows when it is stopped, waits for appends or for a wake-up, and is interrupted by `stop()`. */
class ReadLoop {
  private stopped = false;
  private readonly cancels = new Set<() => void>();
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly hub: MemoryMailboxHub) {}

  run(body: (loop: ReadLoop) => Promise<void>): this {
    this.running = body(this).catch(() => undefined);
    return this;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Resolves at the next append to `key`, at `wake()`, or at `stop()`. */
  async waitAppend(key: string): Promise<void> {
    if (this.stopped) return;
    const w = this.hub.nextAppend(key);
    this.cancels.add(w.cancel);
    try {
      await w.promise;
    } finally {
      this.cancels.delete(w.cancel);
    }
  }

  /** Resolves at `wake()` or `stop()`. */
  async waitWake(): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => this.cancels.add(resolve));
  }

  wake(): void {
    for (const c of [...this.cancels]) c();
    this.cancels.clear();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running;
  }
}

class MemoryWire implements MailboxWire {
  readonly name = 'memory';
  private readonly loops = new Set<ReadLoop>();
  private closed = false;

  constructor(
    private readonly hub: MemoryMailboxHub,
    private readonly keys: MailboxKeys,
    private readonly opts: MailboxOptions,
    private readonly clock: Clock,
  ) {}

  sendRequest(address: string, fields: WireFields): Promise<void> {
    if (this.closed) return Promise.reject(new Error('memory mailbox wire closed'));
    this.hub.add(this.keys.inbox(address), fields, { maxLen: this.opts.inboxMaxLen });
    return Promise.resolve();
  }

  sendReply(clientId: string, fields: WireFields): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error('memory mailbox wire closed'));
    return Promise.resolve(this.hub.add(this.keys.replies(clientId), fields, { maxLen: this.opts.replyMaxLen, noMkStream: true }) !== undefined);
  }

  openReplies(clientId: string, deliver: (entries: WireEntry[]) => void): Promise<ReplyReader> {
    const key = this.keys.replies(clientId);
    const hello = replyFields({ kind: ReplyKind.hello, id: clientId });
    const create = (): string | undefined => {
      const id = this.hub.add(key, hello, { maxLen: this.opts.replyMaxLen });
      this.hub.expire(key, this.opts.replyTtlMs);
      return id;
    };
    let last = create() ?? '0-0';
    const refresh: TimerHandle = this.clock.setInterval(() => {
      if (!this.hub.expire(key, this.opts.replyTtlMs)) create();
    }, Math.max(1, Math.floor(this.opts.replyTtlMs / 3)));
    const loop = this.track(
      new ReadLoop(this.hub).run(async (l) => {
        while (!l.isStopped) {
          const entries = this.hub.read(key, last, this.opts.readCount);
          if (entries.length === 0) {
            await l.waitAppend(key);
            continue;
          }
          last = entries[entries.length - 1]!.id;
          deliver(entries);
          await Promise.resolve();
        }
      }),
    );
    return Promise.resolve({
      close: async () => {
        refresh.cancel();
        await this.stop(loop);
        this.hub.delete(key); // a clean close removes the stream at once (a crash leaves it to expire)
      },
    });
  }

  openInbox(address: string, consumer: string, target: InboxConsumer): Promise<InboxReader> {
    const key = this.keys.inbox(address);
    this.hub.createGroup(key, MAILBOX_GROUP);
    const loop = this.track(
      new ReadLoop(this.hub).run(async (l) => {
        // First what this consumer had read but not acknowledged (a restart), then new entries.
        let cursor = '0-0';
        for (;;) {
          if (l.isStopped) return;
          const n = target.capacity();
          if (n <= 0) {
            await l.waitWake();
            continue;
          }
          const entries = this.hub.readPending(key, MAILBOX_GROUP, consumer, cursor, Math.min(n, this.opts.readCount));
          if (entries.length === 0) break;
          cursor = entries[entries.length - 1]!.id;
          target.deliver(entries);
          await Promise.resolve();
        }
        while (!l.isStopped) {
          const n = target.capacity();
          if (n <= 0) {
            await l.waitWake();
            continue;
          }
          this.hub.createGroup(key, MAILBOX_GROUP); // recreated if the inbox was deleted
          const entries = this.hub.readNew(key, MAILBOX_GROUP, consumer, Math.min(n, this.opts.readCount));
          if (entries.length === 0) {
            await l.waitAppend(key);
            continue;
          }
          target.deliver(entries);
          await Promise.resolve();
        }
      }),
    );
    return Promise.resolve({
      ack: (ids) => {
        this.hub.ack(key, MAILBOX_GROUP, ids);
        return Promise.resolve();
      },
      wake: () => loop.wake(),
      close: () => this.stop(loop),
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.all([...this.loops].map((l) => this.stop(l))).then(() => undefined);
  }

  private track(loop: ReadLoop): ReadLoop {
    this.loops.add(loop);
    return loop;
  }

  private async stop(loop: ReadLoop): Promise<void> {
    await loop.stop();
    this.loops.delete(loop);
  }
}
