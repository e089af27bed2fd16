/**
 * A client gives up on a request only once its clock is past the request's deadline: a server
 * drops a request only then, so a client that reported a timeout while the clock still read the
 * deadline (timers run on the event loop's own millisecond clock) would leave a request that a
 * server starting at that moment still runs.
 */
import { systemClock, type Clock } from '../../runtime/clock';
import { MemoryMailbox, MemoryMailboxHub } from '../../runtime/mailbox/memory/memory-mailbox';

/** Wall time set by the test; timers fire on the next macrotask whatever their delay. */
class EagerTimerClock implements Clock {
  wall = 1_000_000;
  fired = 0;
  now(): number {
    return this.wall;
  }
  monotonic(): number {
    return systemClock.monotonic();
  }
  setTimeout(fn: () => void, _ms: number) {
    const t = setTimeout(() => {
      this.fired++;
      fn();
    }, 0);
    return { cancel: () => clearTimeout(t) };
  }
  setInterval(fn: () => void, ms: number) {
    return systemClock.setInterval(fn, ms);
  }
  sleep(ms: number): Promise<void> {
    return systemClock.sleep(ms);
  }
}

async function until(probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in 5 s');
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('mailbox request deadline', () => {
  it('does not time out while the clock reads the deadline or before, and does once it is past', async () => {
    const clock = new EagerTimerClock();
    const client = new MemoryMailbox(new MemoryMailboxHub(), { heartbeatMs: 1000, clock });
    let outcome: unknown;
    void client.request('nobody', { type: 'describeCollection', name: 'c' }, { timeoutMs: 5_000 }).then(
      (v) => (outcome = v),
      (e: unknown) => (outcome = e),
    );
    // The timer fires early and again, with the clock before and then at the deadline: still waiting.
    await until(() => clock.fired >= 3);
    clock.wall += 5_000; // exactly the deadline
    const firedAt = clock.fired;
    await until(() => clock.fired >= firedAt + 3);
    expect(outcome).toBeUndefined();
    clock.wall += 1; // past it
    await until(() => outcome !== undefined);
    expect(outcome).toMatchObject({ code: 'UNKNOWN', retriable: true, details: { deadlineExceeded: true, timeoutMs: 5_000 } });
    await client.close();
  });

  it('gives up at most a second past the timeout when the wall clock stepped back', async () => {
    const clock = new EagerTimerClock();
    const client = new MemoryMailbox(new MemoryMailboxHub(), { heartbeatMs: 1000, clock });
    const t0 = performance.now();
    const sent = client.request('nobody', { type: 'describeCollection', name: 'c' }, { timeoutMs: 100 }).catch((e: unknown) => e);
    clock.wall -= 3_600_000; // an hour back: by the wall clock the deadline is an hour away
    const outcome = await sent;
    expect(outcome).toMatchObject({ code: 'UNKNOWN', details: { deadlineExceeded: true, timeoutMs: 100 } });
    expect(performance.now() - t0).toBeLessThan(100 + 1000 + 2_000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100 + 1000 - 5);
    await client.close();
  });
});
