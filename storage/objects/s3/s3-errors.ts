/**
 * The one place that reads errors of the `minio` client and of Node's HTTP stack and turns them into
 * walstream's typed errors. Nothing else looks at their codes or messages.
 */
import { type StreamingError } from '../../../runtime/errors';
import { exhaustedStoreError, permanentStoreError, transientStoreError } from '../errors';

/** S3 error codes (from the XML body) after which the same request may succeed later. */
const TRANSIENT_S3_CODES: ReadonlySet<string> = new Set([
  'InternalError',
  'ServiceUnavailable',
  'SlowDown',
  'RequestTimeout',
  'OperationAborted',
  // AWS: a concurrent conditional write on the same key is in progress; retry.
  'ConditionalRequestConflict',
  'XMinioServerNotInitialized',
]);

/** Socket-level failures: the server was unreachable or the connection broke. */
const TRANSIENT_NET_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
  'UND_ERR_SOCKET',
]);

const EXHAUSTED_S3_CODES: ReadonlySet<string> = new Set(['XMinioStorageFull', 'TooManyRequests']);

/**
 * With its own retries disabled, minio answers the statuses it considers retryable (408, 429, 499,
 * 5xx) with a plain Error whose message carries the status and no code, so the status is read from
 * the message here, and only here.
 */
const RETRYABLE_STATUS_MESSAGE = /Retryable HTTP status: (\d{3})/;

/** The error's code: an S3 error code (`NoSuchKey`, `PreconditionFailed` …) or a socket errno code. */
export function s3ErrorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  // Node's happy-eyeballs connect failure: an AggregateError whose parts carry the codes.
  const parts = (e as { errors?: unknown }).errors;
  if (Array.isArray(parts)) for (const p of parts) {
    const c = s3ErrorCode(p);
    if (c !== undefined) return c;
  }
  return undefined;
}

/** HTTP status of a "retryable status" failure of the minio client, if that is what `e` is. */
export function retryableStatusOf(e: unknown): number | undefined {
  if (!(e instanceof Error)) return undefined;
  const m = RETRYABLE_STATUS_MESSAGE.exec(e.message);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export function isNotFoundCode(code: string | undefined): boolean {
  return code === 'NoSuchKey' || code === 'NotFound';
}

export function isPreconditionFailedCode(code: string | undefined): boolean {
  return code === 'PreconditionFailed';
}

/** Any other failure → INNER (retriable), RESOURCE_EXHAUSTED or UNRECOVERABLE. */
export function mapS3Error(op: string, key: string, e: unknown): StreamingError {
  const status = retryableStatusOf(e);
  if (status === 429) return exhaustedStoreError('s3', op, key, e);
  if (status !== undefined) return transientStoreError('s3', op, key, e);
  const code = s3ErrorCode(e);
  if (code !== undefined && EXHAUSTED_S3_CODES.has(code)) return exhaustedStoreError('s3', op, key, e);
  if (code !== undefined && (TRANSIENT_S3_CODES.has(code) || TRANSIENT_NET_CODES.has(code))) return transientStoreError('s3', op, key, e);
  return permanentStoreError('s3', op, key, e);
}
