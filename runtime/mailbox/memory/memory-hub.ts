/**
 * The in-process stand-in for the Redis streams the mailbox uses: append-only streams with
 * increasing ids, length bounds (exact, where Redis's `MAXLEN ~` is approximate), consumer groups
 * (last-delivered id, per-consumer pending entries that survive a reader's restart, acks), key
 * expiry on the injected clock, and waiting for appends. One hub is "one Redis": every
 * MemoryMailbox on it sees the same streams. Entries are copied in, so no sender aliases a receiver.
 */
import { systemClock, type Clock } from '../../clock';
import type { WireEntry, WireFields } from '../wire';

interface Group {
  /** Highest sequence delivered to any consumer. */
  lastDelivered: number;
  /** Delivered, not acknowledged: sequence → consumer. */
  readonly pending: Map<number, string>;
}

interface MemStream {
  /** Entries by increasing sequence; trimmed from the front. */
  entries: { seq: number; fields: WireFields }[];
  readonly groups: Map<string, Group>;
  /** Wall-clock ms after which the stream no longer exists (PEXPIRE). */
  expiresAt: number | undefined;
}

export class MemoryMailboxHub {
  private readonly streams = new Map<string, MemStream>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private seq = 0;

  constructor(readonly clock: Clock = systemClock) {}

  /** XADD [NOMKSTREAM] MAXLEN maxLen: the new entry's id, or undefined when the stream is missing and must not be created. */
  add(key: string, fields: WireFields, opts: { maxLen: number; noMkStream?: boolean }): string | undefined {
    let s = this.live(key);
    if (!s) {
      if (opts.noMkStream) return undefined;
      s = { entries: [], groups: new Map(), expiresAt: undefined };
      this.streams.set(key, s);
    }
    const seq = ++this.seq;
    const copy: WireFields = new Map();
    for (const [k, v] of fields) copy.set(k, Buffer.from(v));
    s.entries.push({ seq, fields: copy });
    if (s.entries.length > opts.maxLen) s.entries.splice(0, s.entries.length - opts.maxLen);
    this.notify(key);
    return idOf(seq);
  }

  length(key: string): number {
    return this.live(key)?.entries.length ?? 0;
  }

  exists(key: string): boolean {
    return this.live(key) !== undefined;
  }

  /** PEXPIRE: false when the key does not exist. */
  expire(key: string, ttlMs: number): boolean {
    const s = this.live(key);
    if (!s) return false;
    s.expiresAt = this.clock.now() + ttlMs;
    return true;
  }

  /** XGROUP CREATE key group 0 MKSTREAM (no-op when it exists). */
  createGroup(key: string, group: string): void {
    let s = this.live(key);
    if (!s) {
      s = { entries: [], groups: new Map(), expiresAt: undefined };
      this.streams.set(key, s);
    }
    if (!s.groups.has(group)) s.groups.set(group, { lastDelivered: 0, pending: new Map() });
  }

  /** XREADGROUP … STREAMS key > : new entries, now pending for `consumer`. */
  readNew(key: string, group: string, consumer: string, count: number): WireEntry[] {
    const g = this.group(key, group);
    const s = this.live(key)!;
    const out: WireEntry[] = [];
    for (let i = firstAfter(s.entries, g.lastDelivered); i < s.entries.length && out.length < count; i++) {
      const e = s.entries[i]!;
      g.lastDelivered = e.seq;
      g.pending.set(e.seq, consumer);
      out.push({ id: idOf(e.seq), fields: e.fields });
    }
    return out;
  }

  /** XREADGROUP … STREAMS key <afterId> : this consumer's pending entries after `afterId` (fields undefined when trimmed). */
  readPending(key: string, group: string, consumer: string, afterId: string, count: number): WireEntry[] {
    const g = this.group(key, group);
    const s = this.live(key)!;
    const after = seqOf(afterId);
    const seqs = [...g.pending.entries()].filter(([seq, c]) => c === consumer && seq > after).map(([seq]) => seq).sort((a, b) => a - b).slice(0, count);
    return seqs.map((seq) => ({ id: idOf(seq), fields: s.entries.find((e) => e.seq === seq)?.fields }));
  }

  /** XACK: the number of entries acknowledged. */
  ack(key: string, group: string, ids: readonly string[]): number {
    const g = this.live(key)?.groups.get(group);
    if (!g) return 0;
    let n = 0;
    for (const id of ids) if (g.pending.delete(seqOf(id))) n++;
    return n;
  }

  /** Pending (delivered, unacknowledged) entries of a group. */
  pendingCount(key: string, group: string): number {
    return this.live(key)?.groups.get(group)?.pending.size ?? 0;
  }

  /** XREAD … STREAMS key <afterId> */
  read(key: string, afterId: string, count: number): WireEntry[] {
    const s = this.live(key);
    if (!s) return [];
    const out: WireEntry[] = [];
    for (let i = firstAfter(s.entries, seqOf(afterId)); i < s.entries.length && out.length < count; i++) {
      const e = s.entries[i]!;
      out.push({ id: idOf(e.seq), fields: e.fields });
    }
    return out;
  }

  /** Resolves at the next append to `key`; `cancel` resolves it at once. */
  nextAppend(key: string): { promise: Promise<void>; cancel(): void } {
    let set = this.waiters.get(key);
    if (!set) {
      set = new Set();
      this.waiters.set(key, set);
    }
    let done!: () => void;
    const promise = new Promise<void>((resolve) => (done = resolve));
    const waiters = set;
    const wake = (): void => {
      waiters.delete(wake);
      done();
    };
    waiters.add(wake);
    return { promise, cancel: wake };
  }

  /** DEL: true when the key existed. */
  delete(key: string): boolean {
    const existed = this.live(key) !== undefined;
    this.streams.delete(key);
    return existed;
  }

  keys(): string[] {
    return [...this.streams.keys()].filter((k) => this.live(k) !== undefined);
  }

  private notify(key: string): void {
    const set = this.waiters.get(key);
    if (!set) return;
    for (const w of [...set]) w();
  }

  private group(key: string, group: string): Group {
    const g = this.live(key)?.groups.get(group);
    if (!g) throw new Error(`NOGROUP no such key '${key}' or consumer group '${group}'`);
    return g;
  }

  private live(key: string): MemStream | undefined {
    const s = this.streams.get(key);
    if (s && s.expiresAt !== undefined && this.clock.now() >= s.expiresAt) {
      this.streams.delete(key);
      return undefined;
    }
    return s;
  }
}

/** Index of the first entry with a sequence above `seq` (entries are sorted). */
function firstAfter(entries: readonly { seq: number }[], seq: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function idOf(seq: number): string {
  return `${seq}-0`;
}

function seqOf(id: string): number {
  const n = Number(id.split('-')[0]);
  return Number.isFinite(n) ? n : 0;
}
