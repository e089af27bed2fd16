/**
 * Settles the commands a dropped Redis connection would otherwise leave pending for ever, and tells
 * its owner when the connection drops and when it is back.
 *
 * Why: a connection with `autoResendUnfulfilledCommands: false` does not resend a command whose
 * reply was lost in a disconnect (the WAL's connections: a write applied twice behind its caller's
 * back would break exactly-once; the mailbox's blocking readers: a resent XREADGROUP would hide what
 * the lost one had claimed). ioredis 6.0.0 then drops such a command at the reconnect WITHOUT
 * settling its promise (redis/ioredis#2193, fixed upstream by #2194, not in a release yet): a write
 * or a blocked XREAD / XREADGROUP in flight when Redis went away waits for ever, and so does
 * everything queued behind it.
 *
 * A ConnectionLoss rejects every tracked command that was written on a connection that then closed,
 * with the owner's `lost()` error (the outcome of such a write is unknown). A command tracked while
 * the client was not connected sits in ioredis' offline queue, which is sent at the reconnect: it is
 * armed from then on (settled by Redis' reply, or rejected at the next drop), so nothing stale is
 * left queued in front of the owner's retry.
 */
import type { Redis } from 'ioredis';

export interface ConnectionLossOptions {
  /** The error a tracked command in flight on a dropped connection is rejected with. Default: a plain Error. */
  lost?(): Error;
  /** A ready connection dropped; `inFlight` tracked commands are being rejected. */
  onDrop?(inFlight: number): void;
  /** The connection is ready again, `downMs` after it dropped. */
  onRestore?(downMs: number): void;
}

/** Every error a ConnectionLoss rejected a command with. */
const LOST = new WeakSet<object>();

/** One tracked command: where it is (undefined once settled or rejected). */
interface Tracked {
  reject(error: Error): void;
  in: Set<Tracked> | undefined;
}

export class ConnectionLoss {
  /** Written on the current connection: rejected when it closes. */
  private readonly armed = new Set<Tracked>();
  /** In ioredis' offline queue: written (and armed) when the connection is ready again. */
  private readonly queued = new Set<Tracked>();
  private connected: boolean;
  private droppedAt: number | undefined;
  /** Drops of a ready connection so far. */
  drops = 0;

  constructor(
    private readonly connection: Redis,
    private readonly opts: ConnectionLossOptions,
  ) {
    this.connected = connection.status === 'ready';
    // ioredis emits status events on the next tick, after it has moved (or dropped) its queues.
    connection.on('close', () => this.onClose());
    connection.on('ready', () => this.onReady());
  }

  /**
   * Sends a command (`send` issues it on this connection) and returns its reply, or rejects with
   * `lost()` if the connection it is written on drops first. Where the command goes is decided here,
   * before sending, exactly as ioredis decides it: a write that fails on a socket Redis just closed
   * turns the socket unwritable at once, but the command is already in flight.
   */
  track<T>(send: () => Promise<T>): Promise<T> {
    const where = this.writable() ? this.armed : this.queued;
    let p: Promise<T>;
    try {
      p = send();
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<T>((resolve, reject) => {
      const t: Tracked = { reject, in: where };
      where.add(t);
      const forget = (): void => {
        t.in?.delete(t);
        t.in = undefined;
      };
      p.then(
        (v) => {
          forget();
          resolve(v);
        },
        (e: unknown) => {
          forget();
          reject(e);
        },
      );
    });
  }

  /** Whether `e` is the rejection of a tracked command whose connection dropped. */
  isLost(e: unknown): boolean {
    return typeof e === 'object' && e !== null && LOST.has(e);
  }

  /** Commands tracked and not settled yet. */
  get pending(): number {
    return this.armed.size + this.queued.size;
  }

  /** Whether ioredis writes a command sent now to the socket (otherwise it queues it until ready). */
  private writable(): boolean {
    const stream = this.connection.stream as { writable?: boolean; _writableState?: { ended?: boolean } } | undefined;
    return this.connection.status === 'ready' && stream?.writable === true && stream._writableState?.ended !== true;
  }

  private onClose(): void {
    const armed = [...this.armed];
    this.armed.clear();
    if (this.connected) {
      this.connected = false;
      this.drops++;
      this.droppedAt = Date.now();
      this.opts.onDrop?.(armed.length);
    }
    if (armed.length === 0) return;
    const error = this.opts.lost?.() ?? new Error('the connection to Redis dropped with the command in flight (its outcome is unknown)');
    LOST.add(error);
    for (const t of armed) {
      t.in = undefined;
      t.reject(error);
    }
  }

  private onReady(): void {
    for (const t of this.queued) {
      t.in = this.armed;
      this.armed.add(t);
    }
    this.queued.clear();
    if (this.connected) return;
    this.connected = true;
    if (this.droppedAt !== undefined) {
      const downMs = Date.now() - this.droppedAt;
      this.droppedAt = undefined;
      this.opts.onRestore?.(downMs);
    }
  }
}
