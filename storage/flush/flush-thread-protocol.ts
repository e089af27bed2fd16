/**
 * What crosses the boundary between the main thread (FlushThreadPool, flush-threads.ts) and a
 * flush thread (flush-thread.ts): the settings a thread opens its own WAL backend and object store
 * from, the messages, and errors. Everything here is structured-cloneable plain data — live
 * objects (a backend, a store, a MetaStore) cannot cross, which is why a thread opens its own.
 */
import { isArrayBuffer } from 'node:util/types';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import type { ObjectStoreConfig } from '../../config/schema';
import type { FlushJob } from './flush-queue';
import type { FlushFiles } from './flush-files';
import type { SegmentData } from '../segments/segment-writer';

/** Buffers at least this large are moved to the thread; smaller ones (the Arrow writer's own, which it may share) are copied. */
const TRANSFER_MIN_BYTES = 1024 * 1024;

/**
 * The ArrayBuffers of `data`'s file parts to transfer with it: the record batches' buffers (a
 * segment's encoder owns them, and is spent once the data is made). The sender must not touch
 * them afterwards.
 */
export function transferablesOf(data: SegmentData): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const part of [...data.inserts, ...data.deletes]) {
    const b = part.buffer;
    // isArrayBuffer, not instanceof: the buffer may come from another realm (a SharedArrayBuffer never moves).
    if (isArrayBuffer(b) && b.byteLength >= TRANSFER_MIN_BYTES) out.add(b);
  }
  return [...out];
}

/**
 * The WAL a flush thread reads (read-only) — the same logs the node's own backend writes. The
 * memory backend has no entry: its logs live in one backend instance of one thread, so a flush on
 * it stays on the calling thread.
 */
export type FlushWalSettings =
  /** LocalWalBackend on `dir` (a second instance on the same directory behaves like another process: see storage/wal/local/README.md). */
  | { kind: 'local'; dir: string }
  /** RedisWalBackend on its own connection. */
  | { kind: 'redis'; url: string; keyPrefix: string };

export interface FlushThreadSettings {
  wal: FlushWalSettings;
  /** Opened with storage/objects/open.ts, as the node opens its own. */
  objects: ObjectStoreConfig;
  /** Layout root of segments in the object store. */
  root: string;
}

/** workerData of a flush thread. */
export interface FlushThreadData {
  settings: FlushThreadSettings;
}

export type ToThread =
  /**
   * Run the file step of `job`; answered by `done` or `failed` with the same id, maybe after
   * `writing`. With `data` (the segment as the write buffer encoded it, its large buffers
   * transferred, not copied) only its files are written; without, the WAL range is read.
   */
  | { type: 'job'; id: number; job: FlushJob; data?: SegmentData }
  /** Close the backend and the store, then exit (code 0). */
  | { type: 'close' };

export type FromThread =
  /** The job's segment is encoded; its files are being checksummed and written (the thread may take another job). */
  | { type: 'writing'; id: number }
  | { type: 'done'; id: number; files: FlushFiles }
  | { type: 'failed'; id: number; error: WireError };

/** An error as it crosses the boundary (Error subclasses lose their class in a structured clone). */
export interface WireError {
  /** A StreamingError: code, retriable and details are kept. Anything else comes back as a plain Error, as it was. */
  streaming: boolean;
  name: string;
  message: string;
  code?: ErrorCode;
  retriable?: boolean;
  details?: Record<string, unknown>;
  stack?: string;
}

/** The wire form of anything thrown in a thread. */
export function errorToWire(e: unknown): WireError {
  const name = e instanceof Error ? e.name : 'Error';
  const message = e instanceof Error ? e.message : String(e);
  const stack = e instanceof Error ? e.stack : undefined;
  if (!(e instanceof StreamingError)) return { streaming: false, name, message, ...(stack === undefined ? {} : { stack }) };
  const details = cloneableDetails(e.details);
  return { streaming: true, name, message, code: e.code, retriable: e.retriable, ...(details === undefined ? {} : { details }), ...(stack === undefined ? {} : { stack }) };
}

/**
 * The error again, on the receiving side: a StreamingError with the same code, retriable flag and
 * details (so isFenced, isRetriable, isObjectNotFound … decide as they would have in the thread),
 * its class name, and the thread's stack.
 */
export function errorFromWire(w: WireError): Error {
  const e: Error =
    w.streaming && w.code !== undefined
      ? new StreamingError(w.code, w.message, { ...(w.retriable === undefined ? {} : { retriable: w.retriable }), ...(w.details ? { details: w.details } : {}) })
      : new Error(w.message);
  e.name = w.name;
  if (w.stack !== undefined) e.stack = `${w.stack}\n    at <flush thread>`;
  return e;
}

/** `details` if a structured clone takes it, else a JSON-safe copy (bigints as strings), else nothing. */
function cloneableDetails(details: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> | undefined {
  if (details === undefined) return undefined;
  try {
    return structuredClone(details) as Record<string, unknown>;
  } catch {
    try {
      return JSON.parse(JSON.stringify(details, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
}

/** The error a job gets when its thread ended under it: retriable, the queue runs it again. */
export function threadDiedError(threadId: number, job: FlushJob, why: string): StreamingError {
  return new StreamingError(ErrorCode.INNER, `flush thread ${threadId} died while flushing segment ${job.segmentId} of ${job.pchannel} (${why}); the job can be retried`, {
    retriable: true,
    details: { threadId, pchannel: job.pchannel, segmentId: job.segmentId, reason: why },
  });
}
