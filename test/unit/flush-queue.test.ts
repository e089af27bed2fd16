/**
 * Flush queues: the in-process one and the BullMQ one (real Redis on 127.0.0.1:6379) share the
 * semantics: one job per segment, retriable failures retried, fenced jobs dropped without retries.
 */
import { randomUUID } from 'node:crypto';
import { ChannelFencedError, ErrorCode, StreamingError } from '../../runtime/errors';
import { systemClock } from '../../runtime/clock';
import type { FlushJob, FlushQueue } from '../../storage/flush/flush-queue';
import { InlineFlushQueue, type FlushWorker } from '../../storage/flush/inline-flush-queue';
import { BullMqFlushQueue, BullMqFlushRunner } from '../../storage/flush/bullmq-flush-queue';
import { eventually } from '../support/wal-fixture';

function job(segmentId: number, pchannel = 'p0'): FlushJob {
  return {
    pchannel,
    term: 1,
    segmentId,
    vchannel: `${pchannel}_1v0`,
    collectionId: 1,
    partitionId: 10,
    schema: { fields: [{ name: 'id', type: 'int64', primaryKey: true }, { name: 'v', type: 'floatVector', dim: 2 }] },
    fromId: '0000000000000001',
    toId: '0000000000000009',
    toTimetick: '123',
  };
}

class ScriptedWorker implements FlushWorker {
  calls = new Map<number, number>();
  done = new Set<number>();
  constructor(private readonly script: (segmentId: number, attempt: number) => void) {}
  async process(j: FlushJob): Promise<void> {
    const n = (this.calls.get(j.segmentId) ?? 0) + 1;
    this.calls.set(j.segmentId, n);
    await new Promise((r) => setImmediate(r));
    this.script(j.segmentId, n);
    this.done.add(j.segmentId);
  }
}

const script = (segmentId: number, attempt: number): void => {
  if (segmentId === 2 && attempt < 3) throw new StreamingError(ErrorCode.INNER, 'object store hiccup', { retriable: true });
  if (segmentId === 3) throw new ChannelFencedError('p0', 1, 2);
};

async function exercise(queue: FlushQueue, worker: ScriptedWorker): Promise<void> {
  await queue.submit(job(1));
  await queue.submit(job(1)); // a resubmission: not run twice
  await queue.submit(job(2));
  await queue.submit(job(3));
  await eventually(() => worker.done.has(1) && worker.done.has(2) && worker.calls.get(3) === 1, 15_000, 'jobs processed');
  expect(worker.calls.get(1)).toBe(1);
  expect(worker.calls.get(2)).toBe(3); // two retriable failures, then success
  expect(worker.done.has(3)).toBe(false);
}

describe('flush queues', () => {
  test('in-process queue', async () => {
    const worker = new ScriptedWorker(script);
    const q = new InlineFlushQueue(worker, systemClock, { backoffMs: 5 });
    try {
      await exercise(q, worker);
      await q.drained();
      expect(worker.calls.get(3)).toBe(1); // fenced: never retried
      expect(q.completed).toBe(2);
      expect(q.failed).toBe(1);
    } finally {
      await q.close();
    }
  });

  test('BullMQ queue and runner', async () => {
    const prefix = `walstream-test-${randomUUID().slice(0, 8)}`;
    const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null };
    const worker = new ScriptedWorker(script);
    const q = new BullMqFlushQueue({ connection, prefix, backoffMs: 10 });
    const runner = new BullMqFlushRunner(worker, { connection, prefix });
    try {
      await exercise(q, worker);
      await eventually(async () => (await q.bullQueue.getJobState('p0-3-t1')) === 'failed', 10_000, 'fenced job failed');
      const fenced = await q.bullQueue.getJob('p0-3-t1');
      expect(fenced?.attemptsMade).toBe(1);
      expect(await q.bullQueue.getJobState('p0-1-t1')).toBe('completed');
      expect(worker.calls.get(3)).toBe(1);
      // The next owner (term 2) flushes the segment whose term-1 job failed as fenced.
      await q.submit({ ...job(3), term: 2 });
      await eventually(async () => (await q.bullQueue.getJobState('p0-3-t2')) !== 'unknown' && worker.calls.get(3) === 2, 10_000, 'new owner job ran');
    } finally {
      await runner.close();
      await q.bullQueue.obliterate({ force: true }).catch(() => undefined);
      await q.close();
    }
  });

  test('BullMQ: a job held by a worker that died is taken over within seconds, not BullMQ\'s ~90 s', async () => {
    const prefix = `walstream-test-${randomUUID().slice(0, 8)}`;
    const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null };
    // The first runner takes the job and never finishes it; then it is gone without a word (as a
    // killed node: force-closed, its lock neither released nor renewed).
    let started!: () => void;
    const taken = new Promise<void>((r) => (started = r));
    const stuck: FlushWorker = { process: () => (started(), new Promise<void>(() => undefined)) };
    const dead = new BullMqFlushRunner(stuck, { connection, prefix });
    const q = new BullMqFlushQueue({ connection, prefix, backoffMs: 10 });
    const worker = new ScriptedWorker(() => undefined);
    let heir: BullMqFlushRunner | undefined;
    try {
      await q.submit(job(7));
      await taken;
      await dead.bullWorker.close(true);
      const t0 = Date.now();
      heir = new BullMqFlushRunner(worker, { connection, prefix });
      await eventually(() => worker.done.has(7), 20_000, 'job taken over');
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(await q.bullQueue.getJobState('p0-7-t1')).toBe('completed');
    } finally {
      await heir?.close();
      await dead.close().catch(() => undefined);
      await q.bullQueue.obliterate({ force: true }).catch(() => undefined);
      await q.close();
    }
  }, 30_000);
});
