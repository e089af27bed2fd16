import { describeObjectStoreConformance } from './object-store.suite';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../storage/objects/s3/s3-object-store';
import { isObjectAlreadyExists } from '../../storage/objects/errors';
import { ErrorCode } from '../../runtime/errors';
import { RetriesExceededError, type RetryInfo } from '../../runtime/retry';
import { startS3rver, type S3rverFixture } from '../support/s3rver';

/** Fast backoff for tests: the retry path is exercised, not waited for. */
const FAST_RETRY = { retries: 4, initialRetryTimeMs: 5, maxRetryTimeMs: 20 };

let server: S3rverFixture; // honours If-None-Match, like AWS S3 and MinIO
let legacy: S3rverFixture; // ignores it, like s3rver itself and older S3-compatible servers
let seq = 0;

beforeAll(async () => {
  [server, legacy] = await Promise.all([startS3rver({ conditionalWrites: true }), startS3rver()]);
});

afterAll(async () => {
  await Promise.all([server.stop(), legacy.stop()]);
});

function options(s: S3rverFixture, extra: Partial<S3ObjectStoreOptions> = {}): S3ObjectStoreOptions {
  // A fresh root prefix per store: tests share a server and a bucket but never each other's keys.
  return {
    endpoint: s.endpoint,
    accessKey: s.accessKey,
    secretKey: s.secretKey,
    region: s.region,
    bucket: 'walstream-test',
    rootPrefix: `run-${process.pid}/store-${++seq}`,
    retry: FAST_RETRY,
    ...extra,
  };
}

describeObjectStoreConformance('s3 (native If-None-Match)', async () => ({ store: await S3ObjectStore.open(options(server, { conditionalWrites: 'native' })), cleanup: async () => undefined }), {
  hasEtag: true,
  atomicIfAbsent: true,
  manyKeys: 1100,
});

describeObjectStoreConformance('s3 (auto-detected HEAD-then-PUT)', async () => ({ store: await S3ObjectStore.open(options(legacy)), cleanup: async () => undefined }), {
  hasEtag: true,
  atomicIfAbsent: false,
  manyKeys: 1100,
});

describeObjectStoreConformance('s3 (bucket root, small list pages)', async () => ({
  store: await S3ObjectStore.open({ ...options(server), bucket: `walstream-root-${++seq}`, rootPrefix: '', listPageSize: 7 }),
  cleanup: async () => undefined,
}), { hasEtag: true, atomicIfAbsent: true, manyKeys: 60 });

describe('S3ObjectStore specifics', () => {
  const stores: S3ObjectStore[] = [];
  const open = async (s: S3rverFixture, extra: Partial<S3ObjectStoreOptions> = {}): Promise<S3ObjectStore> => {
    const store = await S3ObjectStore.open(options(s, extra));
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('lists more than 1000 keys with continuation tokens', async () => {
    const store = await open(server);
    const keys = Array.from({ length: 1003 }, (_, i) => `p/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, new Uint8Array([1]))));
    const before = server.requests.length;
    const listed: string[] = [];
    for await (const e of store.list('p/')) listed.push(e.key);
    expect(listed).toEqual(keys);
    const listCalls = server.requests.slice(before).filter((r) => r.method === 'GET' && r.query['list-type'] === '2');
    expect(listCalls).toHaveLength(2);
    expect(listCalls[1]?.query['continuation-token']).toEqual(expect.any(String));
  });

  it('creates a missing bucket, or refuses it when createBucket is false', async () => {
    const store = await open(server, { bucket: `fresh-bucket-${++seq}` });
    await store.put('k', new Uint8Array([42]));
    expect([...(await store.get('k'))]).toEqual([42]);
    await expect(S3ObjectStore.open(options(server, { bucket: `absent-bucket-${++seq}`, createBucket: false }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
  });

  it('validates options once at open', async () => {
    await expect(S3ObjectStore.open(options(server, { endpoint: 'ftp://x' }))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'endpoint' } });
    await expect(S3ObjectStore.open(options(server, { bucket: 'Bad_Bucket' }))).rejects.toMatchObject({ details: { field: 'bucket' } });
    await expect(S3ObjectStore.open(options(server, { rootPrefix: '/x/' }))).rejects.toMatchObject({ details: { field: 'rootPrefix' } });
    await expect(S3ObjectStore.open(options(server, { listPageSize: 1001 }))).rejects.toMatchObject({ details: { field: 'listPageSize' } });
  });

  it('fails at open on bad credentials, without retrying', async () => {
    // (s3rver checks the access key only; it does not verify V4 signatures, so a wrong secret would pass)
    const before = server.requests.length;
    await expect(S3ObjectStore.open(options(server, { accessKey: 'UNKNOWN' }))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE, retriable: false });
    expect(server.requests.length - before).toBe(1);
  });

  it('retries transient failures (503, dropped connections) and then succeeds', async () => {
    const retries: RetryInfo[] = [];
    const store = await open(server, { retry: { ...FAST_RETRY, onRetry: (i) => retries.push(i) } });
    server.injectFaults({ kind: 'error', code: 'SlowDown' }, 2, { method: 'PUT' });
    server.injectFaults({ kind: 'reset' }, 1, { method: 'PUT' });
    await store.put('flaky', new Uint8Array([1, 2, 3]));
    server.injectFaults({ kind: 'error', code: 'InternalError' }, 1, { method: 'GET' });
    expect([...(await store.get('flaky'))]).toEqual([1, 2, 3]);
    expect(server.pendingFaults()).toBe(0);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3, 1]);
    expect(retries.every((r) => (r.error as { code?: string }).code === ErrorCode.INNER)).toBe(true);
  });

  it('gives up after the configured retries with RetriesExceededError keeping the cause', async () => {
    const store = await open(server, { retry: { retries: 2, initialRetryTimeMs: 1, maxRetryTimeMs: 2 } });
    server.injectFaults({ kind: 'error', code: 'ServiceUnavailable' }, 3, { method: 'GET' });
    const err: unknown = await store.get('whatever').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RetriesExceededError);
    expect(err).toMatchObject({ code: ErrorCode.INNER, retriable: false, attempts: 3 });
    expect((err as Error).cause).toMatchObject({ code: ErrorCode.INNER, retriable: true });
    expect(server.pendingFaults()).toBe(0);
  });

  it('does not retry a permanent failure', async () => {
    const store = await open(server);
    server.injectFaults({ kind: 'error', code: 'AccessDenied' }, 1, { method: 'PUT' });
    await expect(store.put('denied', new Uint8Array([1]))).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE, retriable: false });
    expect(await store.head('denied')).toBeUndefined();
  });

  it('treats its own landed attempt as success when a create-only put is retried', async () => {
    const store = await open(server, { conditionalWrites: 'native' });
    // The first PUT is applied but its response is lost; the retry meets 412 and finds our own bytes.
    server.injectFaults({ kind: 'resetAfterApply' }, 1, { method: 'PUT' });
    await store.put('ambiguous', new Uint8Array([9, 9, 9]), { ifAbsent: true });
    expect(server.pendingFaults()).toBe(0);
    expect([...(await store.get('ambiguous'))]).toEqual([9, 9, 9]);
    // …while different bytes are still refused.
    const refused: unknown = await store.put('ambiguous', new Uint8Array([1]), { ifAbsent: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isObjectAlreadyExists(refused)).toBe(true);
  });

  it('auto-detects native conditional writes, and leaves no probe object behind', async () => {
    const store = await open(server); // conditionalWrites: 'auto'
    const before = server.requests.length;
    await store.put('first', new Uint8Array([1]), { ifAbsent: true });
    await store.put('second', new Uint8Array([2]), { ifAbsent: true });
    const sent = server.requests.slice(before);
    // probe: create, create again (refused), delete; then one conditional PUT per call, no HEADs
    expect(sent.map((r) => r.method)).toEqual(['PUT', 'PUT', 'DELETE', 'PUT', 'PUT']);
    const keys: string[] = [];
    for await (const e of store.list('')) keys.push(e.key);
    expect(keys).toEqual(['first', 'second']);
  });

  it('stops waiting for a retry when closed', async () => {
    let retryWaitStarted!: () => void;
    const waiting = new Promise<void>((resolve) => (retryWaitStarted = resolve));
    const store = await S3ObjectStore.open(
      options(server, { retry: { retries: 5, initialRetryTimeMs: 60_000, maxRetryTimeMs: 60_000, onRetry: () => retryWaitStarted() } }),
    );
    server.injectFaults({ kind: 'error', code: 'SlowDown' }, 1, { method: 'GET' });
    const pending = store.get('k').then(
      () => undefined,
      (e: unknown) => e,
    );
    await waiting; // the GET failed once and the store now waits 60 s before retrying
    await store.close();
    expect(await pending).toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
  });
});
