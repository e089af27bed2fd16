/**
 * The vchannel locks of the lock interceptor. Exclusive messages (DDL, ManualFlush) take the write
 * lock of their vchannel (of the whole pchannel when the vchannel is ""); everything else takes the
 * read locks of the pchannel and of its vchannel. FIFO: once a writer waits, later readers queue
 * behind it, so an exclusive message is never starved and sees every earlier append finished.
 */
interface Waiter {
  exclusive: boolean;
  resolve: () => void;
}

class RwLock {
  readers = 0;
  writer = false;
  readonly queue: Waiter[] = [];

  tryTake(exclusive: boolean): boolean {
    if (this.queue.length > 0) return false;
    return this.take(exclusive);
  }

  take(exclusive: boolean): boolean {
    if (exclusive) {
      if (this.writer || this.readers > 0) return false;
      this.writer = true;
      return true;
    }
    if (this.writer) return false;
    this.readers++;
    return true;
  }

  release(exclusive: boolean): void {
    if (exclusive) this.writer = false;
    else this.readers--;
    while (this.queue.length > 0) {
      const w = this.queue[0]!;
      if (!this.take(w.exclusive)) break;
      this.queue.shift();
      w.resolve();
    }
  }

  get idle(): boolean {
    return !this.writer && this.readers === 0 && this.queue.length === 0;
  }
}

/** Per-vchannel locks kept while idle, at most (beyond it an idle lock is dropped on release). */
const MAX_IDLE_LOCKS = 1024;

export class VChannelLocks {
  private readonly global = new RwLock();
  private readonly perVChannel = new Map<string, RwLock>();

  private lockOf(vchannel: string): RwLock {
    let l = this.perVChannel.get(vchannel);
    if (!l) this.perVChannel.set(vchannel, (l = new RwLock()));
    return l;
  }

  private acquireOne(lock: RwLock, exclusive: boolean): Promise<void> | undefined {
    if (lock.tryTake(exclusive)) return undefined;
    return new Promise<void>((resolve) => lock.queue.push({ exclusive, resolve }));
  }

  /** Resolves when held; returns undefined when taken at once (the fast path allocates nothing). */
  acquire(vchannel: string, exclusive: boolean): Promise<void> | undefined {
    if (vchannel === '') return this.acquireOne(this.global, exclusive);
    const g = this.acquireOne(this.global, false);
    if (g === undefined) {
      return this.acquireOne(this.lockOf(vchannel), exclusive);
    }
    return g.then(() => this.acquireOne(this.lockOf(vchannel), exclusive));
  }

  release(vchannel: string, exclusive: boolean): void {
    if (vchannel === '') {
      this.global.release(exclusive);
      return;
    }
    const l = this.lockOf(vchannel);
    l.release(exclusive);
    // Idle locks stay for the next append (one per live vchannel); past a bound (appends to many
    // vchannels that do not exist) the idle one is dropped.
    if (l.idle && this.perVChannel.size > MAX_IDLE_LOCKS) this.perVChannel.delete(vchannel);
    this.global.release(false);
  }
}
