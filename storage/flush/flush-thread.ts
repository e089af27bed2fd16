/**
 * The body of a flush thread (node:worker_threads), started by FlushThreadPool (flush-threads.ts).
 * It opens its own read-only WAL backend and its own object store from the settings in workerData
 * (each on the first job that needs it, so a failure to open is that job's failure and the next
 * job tries again; a segment the write buffer encoded needs no WAL),
 * then runs the file step of each job it is sent (writeFlushFiles: read the range, encode, checksum,
 * put the files and the manifest; or, for a segment the write buffer encoded, writeSegmentFiles:
 * checksum and put its files) and answers with what the commit needs or the error. It tells
 * the pool when a job's segment is encoded ('writing'): the pool may then send the next job, which
 * encodes while the last one's files are written (two jobs at most, one of them encoding). The
 * term check and the commit stay on the main thread, where the MetaStore is.
 *
 * Started as the thread's script when walstream runs compiled (dist/), or required by
 * flush-thread-entry.js when it runs from the TypeScript sources.
 */
import { isMainThread, parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { systemClock } from '../../runtime/clock';
import { createLogger } from '../../runtime/logger';
import type { WalBackend } from '../wal/backend';
import { openObjectStore } from '../objects/open';
import { writeFlushFiles, writeSegmentFiles } from './flush-files';
import { errorToWire, transferablesOf, type FlushThreadData, type FlushWalSettings, type FromThread, type ToThread } from './flush-thread-protocol';

/** Something this thread opens once, on first use; a failed open is tried again by the next get. */
class OpenOnce<T extends { close(): Promise<void> }> {
  private opening: Promise<T> | undefined;

  constructor(private readonly open: () => Promise<T>) {}

  get(): Promise<T> {
    const p = (this.opening ??= this.open());
    p.catch(() => {
      if (this.opening === p) this.opening = undefined;
    });
    return p;
  }

  /** Closes it if it was opened. */
  async close(): Promise<void> {
    const opened = await this.opening?.catch(() => undefined);
    await opened?.close();
  }
}

/** Serves flush jobs on this thread until told to close. Throws on the main thread. */
export function runFlushThread(): void {
  if (isMainThread || parentPort === null) throw new Error('runFlushThread runs inside a flush thread (node:worker_threads) only');
  const port: MessagePort = parentPort;
  const { settings } = workerData as FlushThreadData;
  const logger = createLogger('flush.thread');
  /** Jobs in progress: at most one encoding and one writing its files (the pool sends no more). */
  const running = new Set<Promise<void>>();
  const post = (m: FromThread): void => port.postMessage(m);
  // Each opened on the first job that needs it (a segment the write buffer encoded needs no WAL);
  // a failure to open is that job's failure, and the next job tries again.
  const objects = new OpenOnce(() => openObjectStore(settings.objects, systemClock));
  const backend = new OpenOnce(() => openWal(settings.wal));

  port.on('message', (m: ToThread) => {
    if (m.type === 'job') {
      const job = (async () => {
        try {
          const onWriting = (): void => post({ type: 'writing', id: m.id });
          if (m.data) {
            const files = await writeSegmentFiles(m.data, { objects: await objects.get(), threadId, onWriting });
            // Written: the batch buffers go back to the write buffer, for its next segments.
            const buffers = transferablesOf(m.data);
            port.postMessage({ type: 'done', id: m.id, files: { ...files, buffers } } satisfies FromThread, buffers);
          } else {
            const [wal, store] = await Promise.all([backend.get(), objects.get()]);
            post({ type: 'done', id: m.id, files: await writeFlushFiles(m.job, { backend: wal, objects: store, root: settings.root, threadId, onWriting }) });
          }
        } catch (e) {
          post({ type: 'failed', id: m.id, error: errorToWire(e) });
        }
      })();
      running.add(job);
      void job.finally(() => running.delete(job));
    } else {
      void (async () => {
        await Promise.all(running);
        await Promise.allSettled([objects.close(), backend.close()]);
        process.exit(0); // ends this thread only; nothing is left to flush out
      })().catch((e: unknown) => {
        logger.warn('closing a flush thread failed', { error: String(e) });
        process.exit(1);
      });
    }
  });
}

/** Loads only the configured backend (a thread on local files never loads ioredis). */
async function openWal(w: FlushWalSettings): Promise<WalBackend> {
  switch (w.kind) {
    case 'local': {
      const { LocalWalBackend } = await import('../wal/local/local-backend');
      // Read-only use: it never appends, so the fsync policy never applies.
      return new LocalWalBackend({ dir: w.dir, fsync: 'interval' });
    }
    case 'redis': {
      const { RedisWalBackend } = await import('../wal/redis/redis-backend');
      return RedisWalBackend.connect({ redis: w.url, keyPrefix: w.keyPrefix });
    }
  }
}

// The thread's script when compiled (dist/storage/flush/flush-thread.js).
if (!isMainThread && require.main === module) runFlushThread();
