/**
 * The object store: where flushed segments (and later other immutable files) live. Seven methods
 * over whole objects named by keys; an embedded implementation (a local directory, ./local/) and a
 * real one (any S3 endpoint, ./s3/). Both pass test/conformance/object-store.suite.ts.
 *
 * Keys are `/`-separated paths relative to the store's root (a directory, or a prefix inside a
 * bucket): no leading or trailing `/`, no empty, `.` or `..` segment, no `\` or control character,
 * at most 1024 UTF-8 bytes, and not under the reserved `.walstream/` (see ./keys.ts). A key may not
 * also be a "directory" of other keys (`a/b` and `a/b/c` cannot both exist): the local store cannot
 * represent that, so neither store accepts it portably (the local one refuses with INVALID_ARGUMENT;
 * the layout module never builds such keys).
 *
 * Errors are StreamingErrors: ObjectNotFoundError (get of a missing key), ObjectAlreadyExistsError
 * (put with ifAbsent on an existing key), INVALID_ARGUMENT (bad key), ON_SHUTDOWN (after close),
 * INNER (retriable I/O failure; the S3 store retries these itself and then raises
 * RetriesExceededError from runtime/retry.ts). See ./errors.ts.
 */
export interface PutOptions {
  /**
   * Create only: if the key exists, write nothing and reject with ObjectAlreadyExistsError.
   * Local store: atomic (link(2) of a complete temporary file). S3 store: `If-None-Match: *`
   * where the server honours it, else HEAD-then-PUT, which is NOT atomic (see ./s3/README section
   * in ../README.md). Default false (a put replaces the object atomically).
   */
  ifAbsent?: boolean;
}

export interface ObjectStat {
  /** Size in bytes. */
  size: number;
  /** The server's entity tag (quotes stripped), when the store has one; undefined for the local store. */
  etag: string | undefined;
}

export interface ObjectEntry {
  key: string;
  size: number;
}

/**
 * The bytes of an object to put: one array, or parts whose concatenation is the object. Parts let a
 * writer that has a large object in pieces (a flushed segment's Arrow file is its record batches'
 * buffers) hand them over without copying them into one buffer first: the local store writes them
 * with writev(2), the S3 store joins them. A wrapper that forwards `data` passes parts through.
 */
export type ObjectBytes = Uint8Array | readonly Uint8Array[];

export interface ObjectStore {
  /** Implementation name: "local", "s3". */
  readonly name: string;
  /**
   * Writes a whole object. Readers see either the old object or the complete new one, never a part.
   * Resolves once durable (local: fsynced; S3: acknowledged by the server).
   */
  put(key: string, data: ObjectBytes, opts?: PutOptions): Promise<void>;
  /** The whole object's bytes; rejects with ObjectNotFoundError when the key does not exist. */
  get(key: string): Promise<Uint8Array>;
  /** Size and etag, or undefined when the key does not exist. */
  head(key: string): Promise<ObjectStat | undefined>;
  /**
   * Every object whose key starts with `prefix` (a plain string prefix, not a directory: `a/b`
   * matches `a/bc`), in ascending UTF-8 byte order of keys. `''` lists everything. Lazy: pages are
   * fetched while iterating. Objects put or deleted during the iteration may or may not appear.
   */
  list(prefix: string): AsyncIterable<ObjectEntry>;
  /** Removes an object; removing a missing key succeeds (as in S3). */
  delete(key: string): Promise<void>;
  /** Removes every object whose key starts with `prefix` and resolves with how many were removed. */
  deletePrefix(prefix: string): Promise<number>;
  /** Stops accepting calls (they reject with ON_SHUTDOWN), waits for calls in flight, releases resources. Idempotent. */
  close(): Promise<void>;
}
