/**
 * An in-process S3 server for tests (the `s3rver` package): no external MinIO. Each call starts a
 * server on a free loopback port with its own temporary directory; `stop()` ends every connection,
 * closes the server and removes the directory.
 *
 * Additions and fixes that s3rver lacks, done as Koa middleware in front of its router:
 * - ListObjectsV2 (GET /{bucket}?list-type=2) is served here, as S3 does it: keys in UTF-8 byte
 *   order (s3rver walks directories, so `a/b/c` came before `a/b.x`), pagination by continuation
 *   token (s3rver builds its tokens with DES, which OpenSSL 3 — Node ≥ 17 — refuses, so any
 *   truncated listing failed with 500), and `encoding-type=url` honoured (the minio client
 *   URL-decodes every listed key, so raw keys with `%` or `+` came back wrong). The request still
 *   passes s3rver's own authentication first. Delimiters are not supported (501).
 * - PUT answers only once the object is on disk, written to a temporary file and renamed into place.
 *   s3rver resolves its put when its hashing stream finishes, before the file stream has flushed, and
 *   takes the object's length from stat(2): a GET right after a PUT could return a truncated object
 *   (seen under load). An aborted upload no longer leaves a partial object either.
 * - `conditionalWrites: true` makes a PUT with `If-None-Match: *` fail with 412 PreconditionFailed
 *   when the key exists, checked and applied under a per-key lock, as AWS S3 and MinIO do.
 *   Without it, the server ignores the header (like older S3-compatible servers).
 * - `injectFaults(fault, count)` makes the next `count` requests fail: with an S3 error status,
 *   with a dropped connection before the request is applied, or with a dropped connection after it
 *   was applied (the client cannot tell whether it landed).
 * `requests` records every request (method, path, query) so tests can assert on what was sent.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import S3Error from 's3rver/lib/models/error';
import authentication from 's3rver/lib/middleware/authentication';

export type S3Fault =
  | { kind: 'error'; code: 'SlowDown' | 'InternalError' | 'ServiceUnavailable' | 'AccessDenied' }
  /** The connection is dropped before the request is applied. */
  | { kind: 'reset' }
  /** The request is applied, then the connection is dropped before the response. */
  | { kind: 'resetAfterApply' };

export interface S3rverOptions {
  /** Honour `If-None-Match: *` on PUT (412 when the key exists). Default false (s3rver's own behaviour: ignored). */
  conditionalWrites?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
}

export interface S3rverFixture {
  /** `http://127.0.0.1:{port}` */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Every request received, in arrival order. */
  readonly requests: RecordedRequest[];
  /** The next `count` requests (matching `method`, if given) fail with `fault`. */
  injectFaults(fault: S3Fault, count: number, match?: { method?: string }): void;
  /** How many injected faults have not fired yet. */
  pendingFaults(): number;
  stop(): Promise<void>;
}

type Ctx = S3rver.Context;
type Next = () => Promise<void>;

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** ListObjectsV2 with S3's ordering, continuation tokens and URL encoding (see the file comment). */
function listObjectsV2(): S3rver.Middleware {
  const authenticate = authentication();
  return async (ctx, next) => {
    const m = /^\/([^/]+)\/?$/.exec(ctx.path);
    if (ctx.method !== 'GET' || !m || one(ctx.query['list-type']) !== '2') return next();
    const bucket = decodeURIComponent(m[1]!);
    ctx.params = { bucket };
    await authenticate(ctx, async () => {
      if (!(await ctx.store.getBucket(bucket))) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
      if (one(ctx.query['delimiter'])) throw new S3Error('NotImplemented', 'the test fixture lists without a delimiter only');
      const prefix = one(ctx.query['prefix']) ?? '';
      const maxKeys = Math.min(1000, Number(one(ctx.query['max-keys']) ?? 1000));
      const token = one(ctx.query['continuation-token']);
      const startAfter = token !== undefined ? Buffer.from(token, 'base64url').toString('utf8') : (one(ctx.query['start-after']) ?? '');
      const urlEncoded = one(ctx.query['encoding-type']) === 'url';
      // RFC 3986 encoding (as S3 does): also !'()*, which s3rver's XML writer would otherwise turn into numeric entities.
      const enc = (k: string): string =>
        urlEncoded ? encodeURIComponent(k).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) : k;
      const { objects } = await ctx.store.listObjects(bucket, { prefix });
      const after = objects.filter((o) => o.key.startsWith(prefix) && utf8Order(o.key, startAfter) > 0).sort((a, b) => utf8Order(a.key, b.key));
      const page = after.slice(0, maxKeys);
      const truncated = after.length > page.length;
      const last = page[page.length - 1];
      ctx.body = {
        ListBucketResult: {
          '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
          Name: bucket,
          Prefix: enc(prefix),
          ...(token !== undefined ? { ContinuationToken: token } : startAfter !== '' ? { StartAfter: enc(startAfter) } : {}),
          ...(truncated && last ? { NextContinuationToken: Buffer.from(last.key, 'utf8').toString('base64url') } : {}),
          KeyCount: page.length,
          MaxKeys: maxKeys,
          ...(urlEncoded ? { EncodingType: 'url' } : {}),
          IsTruncated: truncated,
          Contents: page.map((o) => ({
            Key: enc(o.key),
            LastModified: o.lastModifiedDate.toISOString(),
            ETag: o.metadata['etag'],
            Size: o.size,
            StorageClass: 'STANDARD',
          })),
        },
      };
    });
  };
}

/** Replaces s3rver's putObject with one that resolves only when the object is durably in place. */
function makePutsAtomic(store: S3rver.FilesystemStore): void {
  let seq = 0;
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    // Not ending in s3rver's object suffix, so listings never show it.
    const tmp = `${objectPath}.fixture-tmp-${++seq}`;
    await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
    const md5 = createHash('md5');
    let size = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _enc, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : (object.content as NodeJS.ReadableStream);
    try {
      await pipeline(source, measure, fs.createWriteStream(tmp));
      await fs.promises.rename(tmp, objectPath);
    } catch (e) {
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

export async function startS3rver(opts: S3rverOptions = {}): Promise<S3rverFixture> {
  const directory = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, vhostBuckets: false });
  makePutsAtomic(server.store);
  const requests: RecordedRequest[] = [];
  const faults: { fault: S3Fault; method: string | undefined }[] = [];

  const recordAndInject = async (ctx: Ctx, next: Next): Promise<void> => {
    requests.push({ method: ctx.method, path: ctx.path, query: { ...ctx.query } });
    const i = faults.findIndex((f) => f.method === undefined || f.method === ctx.method);
    if (i < 0) return next();
    const fault = faults.splice(i, 1)[0]!.fault;
    switch (fault.kind) {
      case 'error':
        throw new S3Error(fault.code, `injected fault ${fault.code}`);
      case 'reset':
        ctx.req.socket.destroy();
        return;
      case 'resetAfterApply':
        await next();
        ctx.req.socket.destroy();
        return;
    }
  };

  const locks = new Map<string, Promise<void>>();
  const ifNoneMatch = async (ctx: Ctx, next: Next): Promise<void> => {
    const m = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    const plainPut = ctx.method === 'PUT' && Object.keys(ctx.query).length === 0 && ctx.headers['x-amz-copy-source'] === undefined;
    if (!m || !plainPut || ctx.headers['if-none-match'] !== '*') return next();
    const bucket = decodeURIComponent(m[1]!);
    const key = decodeURIComponent(m[2]!);
    const id = `${bucket}/${key}`;
    const before = locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = before.then(() => new Promise<void>((r) => (release = r)));
    locks.set(id, mine);
    await before;
    try {
      if (await ctx.store.existsObject(bucket, key)) {
        throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match' });
      }
      await next();
    } finally {
      release();
      if (locks.get(id) === mine) locks.delete(id);
    }
  };

  // Koa composes `middleware` when the server starts: recording and faults first, then s3rver's own
  // (logging, XML rendering, vhost), then ours (listing, conditional check), then its router.
  server.middleware.unshift(recordAndInject);
  const ours: S3rver.Middleware[] = [listObjectsV2(), ...(opts.conditionalWrites === true ? [ifNoneMatch] : [])];
  server.middleware.splice(server.middleware.length - 1, 0, ...ours);

  const address = await server.run();
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    region: 'us-east-1',
    requests,
    injectFaults(fault, count, match = {}) {
      for (let i = 0; i < count; i++) faults.push({ fault, method: match.method });
    },
    pendingFaults: () => faults.length,
    stop() {
      stopped ??= (async () => {
        server.httpServer?.closeAllConnections();
        await server.close();
        await fs.promises.rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
