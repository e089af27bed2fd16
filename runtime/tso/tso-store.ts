/**
 * Where the timestamp oracle keeps the physical-time upper bound it has reserved. The oracle hands
 * out timestamps only below a bound that `save` has made durable, so after a restart it starts
 * above the loaded bound and can never repeat a timestamp, even if the wall clock stepped back.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ErrorCode, StreamingError, invalidArgument, unrecoverable } from '../errors';

export interface TsoStore {
  /** The last saved bound (physical milliseconds), or undefined when nothing was ever saved. */
  load(): Promise<number | undefined>;
  /** Durably records `upperBoundPhysicalMs`; resolves only once it survives a crash. */
  save(upperBoundPhysicalMs: number): Promise<void>;
}

function checkBound(upperBoundPhysicalMs: number): void {
  if (!Number.isSafeInteger(upperBoundPhysicalMs) || upperBoundPhysicalMs < 0) {
    throw invalidArgument('TSO bound must be a non-negative safe integer (physical ms)', { upperBoundPhysicalMs });
  }
}

/**
 * In-memory store for tests and simulations. Share one instance between two oracles to simulate a
 * restart. `saves` lists every bound that became durable, in order.
 */
export class MemoryTsoStore implements TsoStore {
  private bound: number | undefined;
  readonly saves: number[] = [];

  constructor(initialBound?: number) {
    if (initialBound !== undefined) checkBound(initialBound);
    this.bound = initialBound;
  }

  /** The bound a restart would load now. */
  get savedBound(): number | undefined {
    return this.bound;
  }

  load(): Promise<number | undefined> {
    return Promise.resolve(this.bound);
  }

  save(upperBoundPhysicalMs: number): Promise<void> {
    try {
      checkBound(upperBoundPhysicalMs);
    } catch (e) {
      return Promise.reject(e);
    }
    this.bound = upperBoundPhysicalMs;
    this.saves.push(upperBoundPhysicalMs);
    return Promise.resolve();
  }
}

const FILE_VERSION = 1;

function checksumOf(version: number, bound: number): string {
  return createHash('sha256').update(`walstream-tso:${version}:${bound}`).digest('hex').slice(0, 16);
}

/** The file's whole content: one JSON line, with a checksum so a damaged digit is not taken at face value. */
export function encodeTsoFile(upperBoundPhysicalMs: number): string {
  return (
    JSON.stringify({
      version: FILE_VERSION,
      upperBoundPhysicalMs,
      checksum: checksumOf(FILE_VERSION, upperBoundPhysicalMs),
    }) + '\n'
  );
}

/** Parses a TSO file; anything but a well-formed, checksummed current-version record is UNRECOVERABLE. */
export function decodeTsoFile(text: string, path: string): number {
  const corrupt = (reason: string): StreamingError =>
    unrecoverable(`TSO file ${path} is corrupt: ${reason}; refusing to reset the timestamp bound (restore or remove it by hand)`, {
      path,
      reason,
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw corrupt(text.length === 0 ? 'empty file' : 'not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw corrupt('not a JSON object');
  const record = parsed as Record<string, unknown>;
  if (record.version !== FILE_VERSION) throw corrupt(`unsupported version ${JSON.stringify(record.version)}`);
  const bound = record.upperBoundPhysicalMs;
  if (typeof bound !== 'number' || !Number.isSafeInteger(bound) || bound < 0) {
    throw corrupt('upperBoundPhysicalMs is not a non-negative safe integer');
  }
  if (record.checksum !== checksumOf(FILE_VERSION, bound)) throw corrupt('checksum mismatch');
  return bound;
}

function ioError(op: string, path: string, e: unknown): StreamingError {
  if (e instanceof StreamingError) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? ErrorCode.RESOURCE_EXHAUSTED : ErrorCode.INNER;
  const message = e instanceof Error ? e.message : String(e);
  return new StreamingError(code, `TSO store: cannot ${op} ${path}: ${message}`, { cause: e, details: { path, errno } });
}

/** fsync of a directory, so that a rename or create inside it is durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The bound in one small file. `save` writes a temp file next to it, fsyncs it, renames it over the
 * old one and fsyncs the directory, so a crash leaves either the old or the new bound, never a mix.
 * Saves run one at a time in call order. A missing file loads as undefined; a corrupt one rejects
 * with UNRECOVERABLE instead of silently starting from zero.
 */
export class FileTsoStore implements TsoStore {
  private writes: Promise<void> = Promise.resolve();
  private tempSeq = 0;
  private dirReady = false;

  constructor(readonly path: string) {}

  async load(): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError('read', this.path, e);
    }
    return decodeTsoFile(text, this.path);
  }

  save(upperBoundPhysicalMs: number): Promise<void> {
    try {
      checkBound(upperBoundPhysicalMs);
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.writes.then(() => this.write(upperBoundPhysicalMs));
    this.writes = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async write(bound: number): Promise<void> {
    const dir = dirname(this.path);
    const temp = join(dir, `.${basename(this.path)}.tmp-${process.pid}-${++this.tempSeq}`);
    try {
      await this.ensureDir(dir);
      const handle = await open(temp, 'w', 0o644);
      try {
        await handle.writeFile(encodeTsoFile(bound), 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await fsyncDir(dir);
    } catch (e) {
      await unlink(temp).catch(() => undefined);
      throw ioError('write', this.path, e);
    }
  }

  /** Creates missing parent directories once, fsyncing each parent so the new entries survive a crash. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.dirReady) return;
    const firstCreated = await mkdir(dir, { recursive: true });
    if (firstCreated !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        await fsyncDir(dirname(d));
        if (d === firstCreated || dirname(d) === d) break;
      }
    }
    this.dirReady = true;
  }
}
