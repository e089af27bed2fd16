/**
 * ObjectStore on any S3-compatible endpoint (MinIO, AWS S3, …) through the `minio` client, path-style.
 * Objects live in `bucket` under `rootPrefix/`. `open()` checks the options, creates the bucket when
 * missing (unless told not to) and fails fast on bad credentials.
 *
 * Retries: the minio client's own retries are off; every request goes through one retry loop
 * (runtime/retry.ts) that retries only transient failures (connection errors, 5xx, SlowDown …)
 * with exponential backoff and jitter, and gives up with RetriesExceededError. A missing object,
 * a refused conditional put, access denied … fail at once.
 *
 * Create-only puts (`ifAbsent`), per `conditionalWrites`:
 * - 'native': PUT with `If-None-Match: *`; the server refuses atomically with 412 when the key
 *   exists (AWS S3 since 2024-08, MinIO). If an earlier attempt of the same put may have landed
 *   (the request was retried) and the refusal comes back, the object's ETag is compared with the
 *   MD5 of our bytes: equal means our own earlier attempt created it, and the put succeeds.
 * - 'headThenPut': HEAD, and PUT only when absent. NOT atomic: two writers racing on one key can
 *   both "create" it (the last one wins). Only for servers that ignore If-None-Match.
 * - 'auto' (default): on the first create-only put, probe once whether the server honours the
 *   header (create a probe object twice under `.walstream/`, then delete it) and use 'native' if
 *   it refuses the second create, else 'headThenPut' with a warning in the log.
 *
 * Objects are sent in one PUT (the client's part size is set to S3's 5 GiB single-PUT limit), so a
 * conditional header always applies to the whole object.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { type Clock, type Random, systemClock, systemRandom } from '../../../runtime/clock';
import { invalidArgument } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';
import { createRetry, type Retry, type RetryOptions } from '../../../runtime/retry';
import { joinedBytes, ownedBytes } from '../bytes';
import { CallGate } from '../call-gate';
import { ObjectAlreadyExistsError, ObjectNotFoundError } from '../errors';
import { RESERVED_SEGMENT, validateKey, validatePrefix } from '../keys';
import type { ObjectBytes, ObjectEntry, ObjectStat, ObjectStore, PutOptions } from '../object-store';
import { isNotFoundCode, isPreconditionFailedCode, mapS3Error, s3ErrorCode } from './s3-errors';

export type ConditionalWrites = 'auto' | 'native' | 'headThenPut';

export interface S3ObjectStoreOptions {
  /** Endpoint URL, e.g. `http://127.0.0.1:9000`; `https:` turns TLS on. Required. */
  endpoint: string;
  /** Required. */
  accessKey: string;
  /** Required. */
  secretKey: string;
  /** Temporary credentials' session token. Default none. */
  sessionToken?: string;
  /** Signing region. Default 'us-east-1'. */
  region?: string;
  /** Required; a valid S3 bucket name. */
  bucket: string;
  /** Key prefix inside the bucket that acts as the store's root, without leading or trailing '/'. Default '' (bucket root). */
  rootPrefix?: string;
  /** Create the bucket in `open()` when it does not exist. Default true. */
  createBucket?: boolean;
  /** How create-only puts are made (see the file comment). Default 'auto'. */
  conditionalWrites?: ConditionalWrites;
  /** Keys per list request, 1..1000. Default 1000. */
  listPageSize?: number;
  /** A request whose socket stays idle this long is abandoned (and retried), in ms. Default 30 000. */
  requestTimeoutMs?: number;
  /** Upper bound of sockets to the endpoint. Default 64. */
  maxSockets?: number;
  /** Backoff of transient failures (clock, random, signal and the retriable test are the store's). Default: 5 retries from 100 ms, ×2, ≤ 5 s. */
  retry?: Omit<RetryOptions, 'clock' | 'random' | 'signal' | 'isRetriable'>;
  /** How long `close()` waits for calls in flight, in ms. Default 10 000. */
  closeDeadlineMs?: number;
  /** Default systemClock. */
  clock?: Clock;
  /** Jitter and probe names. Default systemRandom. */
  random?: Random;
}

const log = createLogger('objects.s3');
const SINGLE_PUT_LIMIT = 5 * 1024 * 1024 * 1024;
const DELETE_BATCH = 1000;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

type ConditionalMode = Exclude<ConditionalWrites, 'auto'>;

export class S3ObjectStore implements ObjectStore {
  readonly name = 's3';
  readonly bucket: string;
  readonly rootPrefix: string;
  private readonly client: Client;
  private readonly agent: http.Agent;
  private readonly gate = new CallGate('s3');
  private readonly abort = new AbortController();
  private readonly retry: Retry;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly listPageSize: number;
  private readonly closeDeadlineMs: number;
  private readonly conditionalWrites: ConditionalWrites;
  private conditionalMode: Promise<ConditionalMode> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(opts: S3ObjectStoreOptions) {
    const url = parseEndpoint(opts.endpoint);
    this.bucket = opts.bucket;
    this.rootPrefix = opts.rootPrefix ?? '';
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
    this.listPageSize = opts.listPageSize ?? 1000;
    this.closeDeadlineMs = opts.closeDeadlineMs ?? 10_000;
    this.conditionalWrites = opts.conditionalWrites ?? 'auto';
    const useSSL = url.protocol === 'https:';
    this.agent = useSSL
      ? new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 })
      : new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 });
    this.client = new Client({
      endPoint: url.hostname,
      port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port),
      useSSL,
      accessKey: opts.accessKey,
      secretKey: opts.secretKey,
      ...(opts.sessionToken === undefined ? {} : { sessionToken: opts.sessionToken }),
      region: opts.region ?? 'us-east-1',
      pathStyle: true,
      partSize: SINGLE_PUT_LIMIT,
      transport: timeoutTransport(useSSL ? https : http, opts.requestTimeoutMs ?? 30_000),
      transportAgent: this.agent,
      retryOptions: { disableRetry: true },
    });
    this.retry = createRetry({
      retries: 5,
      initialRetryTimeMs: 100,
      maxRetryTimeMs: 5_000,
      ...opts.retry,
      clock: this.clock,
      random: this.random,
      signal: this.abort.signal,
      onRetry: (info) => {
        log.debug('retrying a transient failure', { attempt: info.attempt, delayMs: info.delayMs, error: String(info.error) });
        opts.retry?.onRetry?.(info);
      },
    });
  }

  /** Validates the options, creates the bucket when missing (default) and returns a ready store. */
  static async open(opts: S3ObjectStoreOptions): Promise<S3ObjectStore> {
    validateOptions(opts);
    const store = new S3ObjectStore(opts);
    try {
      await store.ensureBucket(opts.createBucket ?? true);
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  async put(key: string, parts: ObjectBytes, opts: PutOptions = {}): Promise<void> {
    validateKey(key);
    const data = joinedBytes(parts);
    return this.gate.run(async () => {
      if (opts.ifAbsent !== true) return this.putObject(key, data, false);
      const mode = await this.resolveConditionalMode();
      if (mode === 'native') return this.putObject(key, data, true);
      if ((await this.stat(key)) !== undefined) throw new ObjectAlreadyExistsError(key);
      return this.putObject(key, data, false);
    });
  }

  async get(key: string): Promise<Uint8Array> {
    validateKey(key);
    return this.gate.run(() =>
      this.attempt('get', key, async () => {
        try {
          const stream = await this.client.getObject(this.bucket, this.objectName(key));
          return await readAll(stream);
        } catch (e) {
          if (isNotFoundCode(s3ErrorCode(e))) throw new ObjectNotFoundError(key, e);
          throw e;
        }
      }),
    );
  }

  async head(key: string): Promise<ObjectStat | undefined> {
    validateKey(key);
    return this.gate.run(() => this.stat(key));
  }

  async *list(prefix: string): AsyncGenerator<ObjectEntry> {
    validatePrefix(prefix);
    yield* this.pages(prefix);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    return this.gate.run(() => this.attempt('delete', key, () => this.client.removeObject(this.bucket, this.objectName(key))));
  }

  async deletePrefix(prefix: string): Promise<number> {
    validatePrefix(prefix);
    return this.gate.run(async () => {
      let removed = 0;
      let batch: string[] = [];
      const flush = async (): Promise<void> => {
        const names = batch;
        batch = [];
        await this.attempt('deletePrefix', prefix, async () => {
          const results = await this.client.removeObjects(this.bucket, names);
          const failed = results.filter((r) => r?.Error !== undefined);
          if (failed.length > 0) {
            const first = failed[0]?.Error;
            throw Object.assign(new Error(`${failed.length} of ${names.length} deletes failed, first: ${first?.Key ?? '?'}: ${first?.Message ?? ''}`), {
              code: first?.Code,
            });
          }
        });
        removed += names.length;
      };
      for await (const { key } of this.pages(prefix)) {
        batch.push(this.objectName(key));
        if (batch.length >= DELETE_BATCH) await flush();
      }
      if (batch.length > 0) await flush();
      return removed;
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const drain = this.gate.shut(this.clock, this.closeDeadlineMs); // stops intake at once
      this.abort.abort(); // calls waiting for a retry give up now; requests on the wire may finish
      if (!(await drain)) log.warn('closed with calls still in flight', { bucket: this.bucket, deadlineMs: this.closeDeadlineMs });
      this.agent.destroy();
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ internals

  private objectName(key: string): string {
    return this.rootPrefix === '' ? key : `${this.rootPrefix}/${key}`;
  }

  private keyOf(objectName: string): string {
    return this.rootPrefix === '' ? objectName : objectName.slice(this.rootPrefix.length + 1);
  }

  /** One retried operation; failures become typed errors (transient ones are retried). */
  private attempt<T>(op: string, key: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    return this.retry(async (_bail, attempt) => {
      try {
        return await fn(attempt);
      } catch (e) {
        if (e instanceof ObjectNotFoundError || e instanceof ObjectAlreadyExistsError) throw e;
        throw mapS3Error(op, key, e);
      }
    });
  }

  private stat(key: string): Promise<ObjectStat | undefined> {
    return this.attempt('head', key, async () => {
      try {
        const st = await this.client.statObject(this.bucket, this.objectName(key));
        return { size: st.size, etag: stripQuotes(st.etag) };
      } catch (e) {
        if (isNotFoundCode(s3ErrorCode(e))) return undefined;
        throw e;
      }
    });
  }

  private putObject(key: string, data: Uint8Array, ifNoneMatch: boolean): Promise<void> {
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (ifNoneMatch) headers['If-None-Match'] = '*';
    return this.attempt('put', key, async (attempt) => {
      try {
        await this.client.putObject(this.bucket, this.objectName(key), body, body.length, headers);
      } catch (e) {
        if (!ifNoneMatch || !isPreconditionFailedCode(s3ErrorCode(e))) throw e;
        // Refused: the key exists. If an earlier attempt of this very put may have landed, it is ours when the bytes match.
        if (attempt > 1 && (await this.holdsExactly(key, body))) return;
        throw new ObjectAlreadyExistsError(key, e);
      }
    });
  }

  /** True when the object's ETag is the MD5 of `body` (true for single-PUT objects without SSE-KMS). */
  private async holdsExactly(key: string, body: Buffer): Promise<boolean> {
    const st = await this.client.statObject(this.bucket, this.objectName(key));
    return st.size === body.length && stripQuotes(st.etag) === createHash('md5').update(body).digest('hex');
  }

  private resolveConditionalMode(): Promise<ConditionalMode> {
    if (this.conditionalWrites !== 'auto') return Promise.resolve(this.conditionalWrites);
    this.conditionalMode ??= this.probeConditionalWrites().catch((e: unknown) => {
      this.conditionalMode = undefined; // probe again next time
      throw e;
    });
    return this.conditionalMode;
  }

  /** Creates a probe object twice with If-None-Match: *; a refusal of the second proves native support. */
  private async probeConditionalWrites(): Promise<ConditionalMode> {
    const name = this.objectName(`${RESERVED_SEGMENT}/probe-${process.pid}-${this.random.int(2 ** 31).toString(36)}`);
    const empty = Buffer.alloc(0);
    const headers = { 'Content-Type': 'application/octet-stream', 'If-None-Match': '*' };
    try {
      await this.attempt('probe', name, () => this.client.putObject(this.bucket, name, empty, 0, headers));
      try {
        await this.attempt('probe', name, async () => {
          try {
            await this.client.putObject(this.bucket, name, empty, 0, headers);
          } catch (e) {
            if (isPreconditionFailedCode(s3ErrorCode(e))) throw new ObjectAlreadyExistsError(name, e);
            throw e;
          }
        });
      } catch (e) {
        if (e instanceof ObjectAlreadyExistsError) {
          log.debug('the server honours If-None-Match: create-only puts are atomic', { bucket: this.bucket });
          return 'native';
        }
        throw e;
      }
      log.warn('the server ignores If-None-Match: create-only puts fall back to HEAD-then-PUT, which is not atomic', { bucket: this.bucket });
      return 'headThenPut';
    } finally {
      await this.attempt('probe', name, () => this.client.removeObject(this.bucket, name)).catch((e: unknown) =>
        log.warn('cannot remove the conditional-write probe object', { name, error: String(e) }),
      );
    }
  }

  private async *pages(prefix: string): AsyncGenerator<ObjectEntry> {
    const fullPrefix = this.rootPrefix === '' ? prefix : `${this.rootPrefix}/${prefix}`;
    let token = '';
    for (;;) {
      this.gate.check();
      const page = await this.attempt('list', prefix, () =>
        this.client.listObjectsV2Query(this.bucket, fullPrefix, token, '', this.listPageSize, ''),
      );
      for (const o of page.objects) {
        if (o.name === undefined) continue; // a common prefix (none without a delimiter)
        const key = this.keyOf(o.name);
        if (key.startsWith(`${RESERVED_SEGMENT}/`)) continue; // the store's own probe objects
        yield { key, size: o.size };
      }
      if (!page.isTruncated || !page.nextContinuationToken) return;
      token = String(page.nextContinuationToken); // (the client's XML parser may turn a digits-only token into a number)
    }
  }

  private async ensureBucket(create: boolean): Promise<void> {
    const exists = await this.attempt('bucketExists', '', () => this.client.bucketExists(this.bucket));
    if (exists) return;
    if (!create) throw invalidArgument(`bucket ${this.bucket} does not exist`, { field: 'bucket', bucket: this.bucket });
    await this.attempt('makeBucket', '', async () => {
      try {
        await this.client.makeBucket(this.bucket);
      } catch (e) {
        const code = s3ErrorCode(e);
        // Another process created it between our check and our create.
        if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
        throw e;
      }
    });
    log.info('created bucket', { bucket: this.bucket });
  }
}

function validateOptions(o: S3ObjectStoreOptions): void {
  const need = (field: keyof S3ObjectStoreOptions, ok: boolean, expected: string): void => {
    if (!ok) throw invalidArgument(`s3 object store: ${field} must be ${expected}`, { field, expected });
  };
  need('endpoint', typeof o.endpoint === 'string' && /^https?:\/\/[^/]+\/?$/.test(o.endpoint), 'an http(s) URL without a path');
  need('accessKey', typeof o.accessKey === 'string' && o.accessKey !== '', 'a non-empty string');
  need('secretKey', typeof o.secretKey === 'string' && o.secretKey !== '', 'a non-empty string');
  need('bucket', typeof o.bucket === 'string' && BUCKET_NAME.test(o.bucket), 'a valid S3 bucket name');
  const root = o.rootPrefix ?? '';
  need('rootPrefix', root === '' || (!root.startsWith('/') && !root.endsWith('/') && !root.split('/').some((s) => s === '' || s === '.' || s === '..')), "'' or a '/'-separated path without leading or trailing '/'");
  const page = o.listPageSize ?? 1000;
  need('listPageSize', Number.isInteger(page) && page >= 1 && page <= 1000, 'an integer in [1, 1000]');
  need('conditionalWrites', ['auto', 'native', 'headThenPut'].includes(o.conditionalWrites ?? 'auto'), "'auto', 'native' or 'headThenPut'");
  const timeout = o.requestTimeoutMs ?? 30_000;
  need('requestTimeoutMs', Number.isFinite(timeout) && timeout > 0, 'a positive number of ms');
}

function parseEndpoint(endpoint: string): URL {
  return new URL(endpoint);
}

function stripQuotes(etag: string | undefined): string | undefined {
  return etag === undefined ? undefined : etag.replace(/^"|"$/g, '');
}

async function readAll(stream: Readable): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return ownedBytes(Buffer.concat(chunks));
}

/** The HTTP(S) module with a socket idle timeout on every request (minio has none of its own). */
function timeoutTransport(base: typeof http | typeof https, timeoutMs: number): Pick<typeof http, 'request'> {
  const request = (...args: unknown[]): http.ClientRequest => {
    const req = (base.request as (...a: unknown[]) => http.ClientRequest)(...args);
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no response activity for ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    return req;
  };
  return { request: request as typeof http.request };
}
