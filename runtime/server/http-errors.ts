/**
 * Errors at the HTTP edge: every failure answers with `StreamingError.toJSON()` as the body and a
 * status chosen by the error code alone (never by message text):
 *
 * | code | status |
 * |---|---|
 * | any code with `details.reason = 'not found'` | 404 (unknown collection, partition, pchannel, route; a transaction id the gateway does not hold: TRANSACTION_EXPIRED) |
 * | INVALID_ARGUMENT | 400; 413 for a body over the limit, 415 for a body that is not JSON |
 * | UNRECOVERABLE | 422 (e.g. an insert that reached the log after its collection was dropped) |
 * | TRANSACTION_EXPIRED, INVALID_TRANSACTION_STATE | 409 |
 * | RESOURCE_EXHAUSTED | 429 |
 * | ON_SHUTDOWN | 503 |
 * | CHANNEL_NOT_EXIST, CHANNEL_FENCED, UNMATCHED_CHANNEL_TERM | 503 (the pchannel is moving; retry) |
 * | UNKNOWN with `details.deadlineExceeded` | 504 (the outcome is unknown) |
 * | anything else | 500 |
 */
import { ErrorCode, StreamingError, toStreamingError } from '../errors';

/** details.reason of an INVALID_ARGUMENT that names something missing. */
export const NOT_FOUND = 'not found';

/** An error raised by the HTTP edge itself, with the status it answers with (413, 415, …). */
export class HttpEdgeError extends StreamingError {
  constructor(
    readonly status: number,
    message: string,
    details: Record<string, unknown>,
  ) {
    super(ErrorCode.INVALID_ARGUMENT, message, { details, retriable: false });
    this.name = 'HttpEdgeError';
  }
}

export function httpStatusOf(e: StreamingError): number {
  if (e instanceof HttpEdgeError) return e.status;
  if (e.details?.['reason'] === NOT_FOUND) return 404;
  switch (e.code) {
    case ErrorCode.INVALID_ARGUMENT:
      return 400;
    case ErrorCode.UNRECOVERABLE:
      return 422;
    case ErrorCode.TRANSACTION_EXPIRED:
    case ErrorCode.INVALID_TRANSACTION_STATE:
      return 409;
    case ErrorCode.RESOURCE_EXHAUSTED:
      return 429;
    case ErrorCode.ON_SHUTDOWN:
    case ErrorCode.CHANNEL_NOT_EXIST:
    case ErrorCode.CHANNEL_FENCED:
    case ErrorCode.UNMATCHED_CHANNEL_TERM:
      return 503;
    case ErrorCode.UNKNOWN:
      return e.details?.['deadlineExceeded'] === true ? 504 : 500;
    default:
      return 500;
  }
}

/** An ajv error as fastify reports it. */
interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/columns/0/data/3` → `columns[0].data[3]`; `required` and `additionalProperties` name the property. */
export function fieldPathOf(err: AjvError, context: string | undefined): string {
  const segments = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra = err.params['missingProperty'] ?? err.params['additionalProperty'];
  if (typeof extra === 'string') segments.push(extra);
  let path = '';
  for (const s of segments) path += /^[0-9]+$/.test(s) ? `[${s}]` : path === '' ? s : `.${s}`;
  // Fields of the body, the path and the query by their own path, as a client wrote them; headers as such.
  return context === 'headers' ? (path === '' ? context : `${context}.${path}`) : path;
}

function reasonOf(err: AjvError): string {
  switch (err.keyword) {
    case 'required':
      return 'missing field';
    case 'additionalProperties':
      return 'unknown field';
    case 'enum':
      return `must be one of ${(err.params['allowedValues'] as unknown[]).join('|')}`;
    default:
      return err.message ?? err.keyword;
  }
}

/** Fastify's own errors (validation, body parsing, limits) and anything thrown, as a StreamingError. */
export function normalizeError(error: unknown, bodyLimitBytes: number): StreamingError {
  if (error instanceof StreamingError) return error;
  const e = error as { code?: string; statusCode?: number; validation?: AjvError[]; validationContext?: string; message?: string };
  if (Array.isArray(e.validation) && e.validation.length > 0) {
    const first = e.validation[0] as AjvError;
    const field = fieldPathOf(first, e.validationContext);
    const reason = reasonOf(first);
    return new StreamingError(ErrorCode.INVALID_ARGUMENT, `invalid ${field === '' ? e.validationContext ?? 'request' : field}: ${reason}`, {
      details: { field, reason, in: e.validationContext ?? 'body' },
    });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpEdgeError(413, `request body exceeds ${bodyLimitBytes} bytes`, { field: '', reason: 'body too large', limitBytes: bodyLimitBytes });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new StreamingError(ErrorCode.INVALID_ARGUMENT, e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'empty JSON body' : 'malformed JSON body', {
        details: { field: '', reason: 'malformed JSON' },
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpEdgeError(415, 'request bodies must be application/json', { field: '', reason: 'unsupported media type' });
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new HttpEdgeError(e.statusCode, e.message ?? 'bad request', { field: '', reason: e.code ?? 'bad request' });
  }
  return toStreamingError(error);
}
