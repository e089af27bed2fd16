/**
 * A flush thread for FlushThreadPool tests: it speaks storage/flush/flush-thread-protocol.ts, but a
 * job does nothing by itself. The test moves each job on by posting to the thread's Worker
 * `{ type: 'step', segmentId, step }`: step 'writing' (its segment is encoded), 'done' (files
 * written: answered with FlushFiles naming this thread) or 'fail'. So the pool's scheduling can be
 * checked at every point, with no timing involved. Plain JS: a worker does not load TypeScript.
 */
const { parentPort, threadId } = require('node:worker_threads');

/** segmentId → the pool's job id, for the jobs this thread holds. */
const jobs = new Map();

parentPort.on('message', (m) => {
  if (m.type === 'job') {
    jobs.set(m.job.segmentId, m.id);
  } else if (m.type === 'step') {
    const id = jobs.get(m.segmentId);
    if (id === undefined) throw new Error(`no job for segment ${m.segmentId} on thread ${threadId}`);
    if (m.step === 'writing') parentPort.postMessage({ type: 'writing', id });
    else {
      jobs.delete(m.segmentId);
      if (m.step === 'done') {
        const file = { bytes: 1, checksum: { algorithm: 'crc32', value: '00000000' } };
        parentPort.postMessage({ type: 'done', id, files: { rows: 1, deletes: 0, manifest: `seg/${m.segmentId}/manifest.json`, files: { inserts: file, deletes: file }, threadId } });
      } else {
        parentPort.postMessage({ type: 'failed', id, error: { streaming: false, name: 'Error', message: `segment ${m.segmentId} failed as told` } });
      }
    }
  } else if (m.type === 'close') {
    process.exit(0);
  }
});
