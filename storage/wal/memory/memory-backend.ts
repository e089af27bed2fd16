/**
 * In-memory WAL backend for unit tests and the seeded simulation. Logs are keyed by pchannel name
 * inside one backend instance: two `open`s of the same pchannel on one instance share the data,
 * so an old-term WalLog and a new-term WalLog fence each other exactly like on a real backend.
 *
 * Semantics (the same as the local backend, checked by test/conformance/wal-backend.suite.ts):
 * - ids are `sequenceId(n)` with dense 1-based sequence numbers;
 * - every rw open supersedes the pchannel's previous rw handles (a newer term, or a re-open at the
 *   same term): their appends and truncates reject with CHANNEL_FENCED and write nothing;
 * - an rw open with a term lower than the current one rejects with CHANNEL_FENCED;
 * - appends of one handle are applied in call order, each batch atomically.
 */
import { validateChannel, type DeliverPolicy, type LogEntry, type PChannelInfo, type ReadOptions, type WalBackend, type WalLog } from '../backend';
import { type MessageId, sequenceId, sequenceOf } from '../../../runtime/message/message-id';
import { ChannelFencedError, ErrorCode, StreamingError, assertNever, invalidArgument } from '../../../runtime/errors';
import { type Clock, systemClock } from '../../../runtime/clock';

export interface MemoryWalBackendOptions {
  /**
   * Injected latency of each append before it is applied (and fenced), in milliseconds. A function
   * receives the batch, so a test can vary it. Appends of one handle still apply in call order and
   * their latencies overlap. Default: 0 (applied on a later microtask, never synchronously).
   */
  appendLatencyMs?: number | ((records: readonly Uint8Array[]) => number);
  /** Clock used for the injected latency. Default: systemClock. */
  clock?: Clock;
}

/** The shared state of one pchannel inside one backend instance. */
class MemoryChannel {
  /** Current term; -1 before the first rw open. */
  term = -1;
  /** Count of rw opens; a handle whose epoch is not this one is fenced. */
  epoch = 0;
  /** Sequence number of entries[0]. */
  firstSeq = 1;
  readonly entries: LogEntry[] = [];
  private waiters = new Set<() => void>();

  constructor(readonly name: string) {}

  get nextSeq(): number {
    return this.firstSeq + this.entries.length;
  }

  notify(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  /** Resolves on the next notify(); the returned cancel() drops the waiter. */
  waitForChange(): { promise: Promise<void>; cancel(): void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => (wake = resolve));
    this.waiters.add(wake);
    return { promise, cancel: () => this.waiters.delete(wake) };
  }
}

export class MemoryWalBackend implements WalBackend {
  readonly name = 'memory';
  private readonly channels = new Map<string, MemoryChannel>();
  private readonly logs = new Set<MemoryWalLog>();
  private readonly clock: Clock;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: MemoryWalBackendOptions = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  async open(channel: PChannelInfo): Promise<WalLog> {
    validateChannel(channel);
    if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, `memory wal backend is closed`);
    let state = this.channels.get(channel.name);
    if (!state) {
      state = new MemoryChannel(channel.name);
      this.channels.set(channel.name, state);
    }
    let epoch = 0;
    if (channel.accessMode === 'rw') {
      if (channel.term < state.term) throw new ChannelFencedError(channel.name, channel.term, state.term);
      state.term = channel.term;
      epoch = ++state.epoch;
      // Wake readers so that nothing waits on a superseded writer.
      state.notify();
    }
    const log = new MemoryWalLog({ ...channel }, state, epoch, this);
    this.logs.add(log);
    return log;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.logs].map((l) => l.close()));
      this.logs.clear();
      for (const c of this.channels.values()) c.notify();
    })();
    return this.closing;
  }

  /** @internal */
  forget(log: MemoryWalLog): void {
    this.logs.delete(log);
  }

  /** @internal */
  latencyFor(records: readonly Uint8Array[]): number {
    const l = this.opts.appendLatencyMs;
    if (l === undefined) return 0;
    return typeof l === 'number' ? l : l(records);
  }

  /** @internal */
  sleep(ms: number): Promise<void> {
    return ms > 0 ? this.clock.sleep(ms) : Promise.resolve();
  }
}

class MemoryWalLog implements WalLog {
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Appends of this handle apply in call order. */
  private applyChain: Promise<void> = Promise.resolve();
  private readonly readerWakers = new Set<() => void>();

  constructor(
    readonly channel: PChannelInfo,
    private readonly state: MemoryChannel,
    private readonly epoch: number,
    private readonly backend: MemoryWalBackend,
  ) {}

  async append(records: readonly Uint8Array[]): Promise<MessageId[]> {
    this.checkWritable('append');
    const copies = records.map((r) => Uint8Array.prototype.slice.call(r));
    const latency = this.backend.sleep(this.backend.latencyFor(records));
    const applied = this.applyChain.then(async () => {
      await latency;
      this.checkFence();
      const ids: MessageId[] = [];
      for (const data of copies) {
        const id = sequenceId(this.state.nextSeq);
        this.state.entries.push({ id, data });
        ids.push(id);
      }
      if (ids.length > 0) this.state.notify();
      return ids;
    });
    this.applyChain = applied.then(
      () => undefined,
      () => undefined,
    );
    return applied;
  }

  read(opts: ReadOptions): AsyncIterable<LogEntry> {
    // The start is fixed when read() is called (matters for 'latest').
    const start = this.startSeq(opts.policy);
    return this.iterate(start, opts.signal);
  }

  async truncate(upTo: MessageId): Promise<void> {
    this.checkWritable('truncate');
    const upToSeq = parseId(upTo);
    this.checkFence();
    const drop = Math.min(this.state.entries.length, Math.max(0, upToSeq - this.state.firstSeq));
    if (drop > 0) {
      this.state.entries.splice(0, drop);
      this.state.firstSeq += drop;
    }
  }

  async oldestId(): Promise<MessageId | undefined> {
    return this.state.entries[0]?.id;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      // Drain appends already accepted, then end the readers.
      await this.applyChain;
      for (const wake of this.readerWakers) wake();
      this.readerWakers.clear();
      this.backend.forget(this);
    })();
    return this.closing;
  }

  private checkWritable(op: 'append' | 'truncate'): void {
    if (this.channel.accessMode !== 'rw') {
      throw invalidArgument(`cannot ${op} pchannel ${this.channel.name}: opened read-only`, { pchannel: this.channel.name, op });
    }
    if (this.closed) throw onShutdown(this.channel.name);
  }

  private checkFence(): void {
    if (this.state.epoch !== this.epoch) throw new ChannelFencedError(this.channel.name, this.channel.term, this.state.term);
  }

  private startSeq(policy: DeliverPolicy): number {
    switch (policy.type) {
      case 'all':
        return 0;
      case 'latest':
        return this.state.nextSeq;
      case 'startFrom':
        return parseId(policy.id);
      case 'startAfter':
        return parseId(policy.id) + 1;
      default:
        return assertNever(policy, 'deliver policy');
    }
  }

  private async *iterate(startSeq: number, signal: AbortSignal | undefined): AsyncGenerator<LogEntry> {
    let seq = startSeq;
    let delivered = false;
    const stopped = (): boolean => this.closed || this.backend.closed || signal?.aborted === true;
    while (!stopped()) {
      const state = this.state;
      if (seq < state.firstSeq) {
        if (delivered) throw truncatedUnderReader(this.channel.name, seq, state.firstSeq);
        seq = state.firstSeq;
      }
      const entry = state.entries[seq - state.firstSeq];
      if (entry) {
        seq++;
        delivered = true;
        yield entry;
        continue;
      }
      await this.waitForChange(signal);
    }
  }

  private async waitForChange(signal: AbortSignal | undefined): Promise<void> {
    const change = this.state.waitForChange();
    let onAbort: (() => void) | undefined;
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    this.readerWakers.add(wake);
    if (signal) {
      onAbort = wake;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    try {
      await Promise.race([change.promise, woken]);
    } finally {
      change.cancel();
      this.readerWakers.delete(wake);
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    }
  }
}

function parseId(id: MessageId): number {
  if (!/^[0-9a-f]{16}$/.test(id)) throw invalidArgument(`not a message id of this backend: ${JSON.stringify(id)}`, { id });
  return sequenceOf(id);
}

function onShutdown(pchannel: string): StreamingError {
  return new StreamingError(ErrorCode.ON_SHUTDOWN, `wal log of pchannel ${pchannel} is closed`, { details: { pchannel } });
}

function truncatedUnderReader(pchannel: string, seq: number, oldest: number): StreamingError {
  return new StreamingError(ErrorCode.UNRECOVERABLE, `pchannel ${pchannel} was truncated under a reader`, {
    details: { pchannel, nextId: sequenceId(seq), oldestId: sequenceId(oldest) },
  });
}
