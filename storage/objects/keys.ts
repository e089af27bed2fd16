/**
 * Key rules shared by every ObjectStore (see object-store.ts). Checked once at each call, so that
 * the local and the S3 store accept exactly the same keys.
 */
import { invalidArgument, type StreamingError } from '../../runtime/errors';

/** S3's limit on a key, in UTF-8 bytes (the store's root prefix counts too for S3). */
export const MAX_KEY_BYTES = 1024;
/** First segment reserved for the stores' own files (local temp files, the S3 capability probe). */
export const RESERVED_SEGMENT = '.walstream';

const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f\\]/;

function bad(what: 'key' | 'prefix', value: string, reason: string): StreamingError {
  return invalidArgument(`invalid object ${what} ${JSON.stringify(value)}: ${reason}`, { [what]: value, reason });
}

function checkSegments(what: 'key' | 'prefix', value: string, segments: readonly string[]): void {
  for (const s of segments) {
    if (s === '') throw bad(what, value, 'empty path segment');
    if (s === '.' || s === '..') throw bad(what, value, `"${s}" segment`);
  }
}

/** Throws INVALID_ARGUMENT unless `key` is a valid object key. */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw bad('key', String(key), 'empty');
  if (FORBIDDEN_CHARS.test(key)) throw bad('key', key, 'control character or backslash');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw bad('key', key, `longer than ${MAX_KEY_BYTES} UTF-8 bytes`);
  if (key.startsWith('/') || key.endsWith('/')) throw bad('key', key, 'leading or trailing "/"');
  const segments = key.split('/');
  checkSegments('key', key, segments);
  if (segments[0] === RESERVED_SEGMENT) throw bad('key', key, `"${RESERVED_SEGMENT}/" is reserved`);
}

/**
 * Throws INVALID_ARGUMENT unless `prefix` is a valid list prefix: '' or the beginning of a valid
 * key (its last segment may be partial, and it may end with '/').
 */
export function validatePrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw bad('prefix', String(prefix), 'not a string');
  if (prefix === '') return;
  if (FORBIDDEN_CHARS.test(prefix)) throw bad('prefix', prefix, 'control character or backslash');
  if (Buffer.byteLength(prefix, 'utf8') > MAX_KEY_BYTES) throw bad('prefix', prefix, `longer than ${MAX_KEY_BYTES} UTF-8 bytes`);
  if (prefix.startsWith('/')) throw bad('prefix', prefix, 'leading "/"');
  const segments = prefix.split('/');
  // Every segment but the last is complete; the last may be '' (prefix ends with '/') or partial.
  checkSegments('prefix', prefix, segments.slice(0, -1));
  if (segments.length > 1 && segments[0] === RESERVED_SEGMENT) throw bad('prefix', prefix, `"${RESERVED_SEGMENT}/" is reserved`);
}

/** Compares keys in UTF-8 byte order (S3's listing order), which differs from UTF-16 order for astral characters. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
