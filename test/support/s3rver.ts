/**
 * An in-process S3 server for tests (the `s3rver` package): no external MinIO. Each call starts a
 * server on a free loopback port with its own temporary directory; `stop()` ends every connection,
 * closes the server and removes the directory.
 *
 * Two additions that s3rver lacks, done as Koa middleware in front of its router:
 * - `conditionalWrites: true` makes a PUT with `If-None-Match: *` fail with 412 PreconditionFailed
 *   when the key exists, checked and applied under a per-key lock, as AWS S3 and MinIO do.
 *   Without it, the server ignores the header (like older S3-compatible servers).
 * - `injectFaults(fault, count)` makes the next `count` requests fail: with an S3 error status,
 *   with a dropped connection before the request is applied, or with a dropped connection after it
 *   was applied (the client cannot tell whether it landed).
 * `requests` records every request (method, path, query) so tests can assert on what was sent.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import S3rver from 's3rver';
import S3Error from 's3rver/lib/models/error';

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

type Ctx = Parameters<S3rver['middleware'][number]>[0];
type Next = () => Promise<void>;

export async function startS3rver(opts: S3rverOptions = {}): Promise<S3rverFixture> {
  const directory = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, vhostBuckets: false });
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

  // Koa composes `middleware` when the server starts: first ours, s3rver's own, the conditional check, its router.
  server.middleware.unshift(recordAndInject);
  if (opts.conditionalWrites === true) server.middleware.splice(server.middleware.length - 1, 0, ifNoneMatch);

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
