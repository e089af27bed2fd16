/**
 * ObjectStore on a local directory (the embedded default). A key `a/b/c` is the file `{dir}/a/b/c`,
 * so the directory can be read with ordinary tools. The store's own temporary files live in
 * `{dir}/.walstream/tmp/` (same file system, so that rename and link are atomic).
 *
 * put: the bytes go to a temporary file (written — parts with writev(2), without joining them —,
 * fdatasync'ed, closed), which is then renamed over the key (replace) or hard-linked to it
 * (ifAbsent: link(2) fails with EEXIST when the key exists, atomically, and the object appears
 * complete or not at all); then the parent directory is fsync'ed.
 * delete: unlink, then empty parent directories are removed up to the root. A put racing with that
 * pruning re-creates its directory and tries again.
 *
 * Limitation: a key cannot also be a directory of other keys (`a/b` and `a/b/c`): such a put is
 * refused with INVALID_ARGUMENT.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clock, type Random, systemClock, systemRandom } from '../../../runtime/clock';
import { invalidArgument, type StreamingError } from '../../../runtime/errors';
import { createLogger } from '../../../runtime/logger';
import { errnoCode, fsyncDir, mkdirDurable, openFd, writeAllAt, fdatasync, closeFd, unlinkIfExists } from '../../wal/local/fs-io';
import { CallGate } from '../call-gate';
import {
  ObjectAlreadyExistsError,
  ObjectNotFoundError,
  exhaustedStoreError,
  permanentStoreError,
  transientStoreError,
} from '../errors';
import { RESERVED_SEGMENT, validateKey, validatePrefix } from '../keys';
import type { ObjectBytes, ObjectEntry, ObjectStat, ObjectStore, PutOptions } from '../object-store';
import { ownedBytes } from '../bytes';

export interface LocalObjectStoreOptions {
  /** Root directory; created (with parents) when missing. */
  dir: string;
  /** fsync data and directories, so that a put that resolved survives a machine crash. Default true. */
  fsync?: boolean;
  /** Temporary files older than this (ms, by mtime), left by a crashed process, are removed by `open`. Default 3 600 000. */
  staleTempMs?: number;
  /** How long `close()` waits for calls in flight, in ms. Default 10 000. */
  closeDeadlineMs?: number;
  /** Default systemClock. */
  clock?: Clock;
  /** Names of temporary files. Default systemRandom. */
  random?: Random;
}

const log = createLogger('objects.local');
const TMP_DIR = path.join(RESERVED_SEGMENT, 'tmp');
/** Attempts of a put whose parent directory is removed under it by concurrent deletes. */
const MAX_INSTALL_ATTEMPTS = 8;

export class LocalObjectStore implements ObjectStore {
  readonly name = 'local';
  private readonly gate = new CallGate('local');
  private readonly fsync: boolean;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly closeDeadlineMs: number;
  private readonly tmpDir: string;
  private tmpSeq = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    opts: LocalObjectStoreOptions,
  ) {
    this.fsync = opts.fsync ?? true;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
    this.closeDeadlineMs = opts.closeDeadlineMs ?? 10_000;
    this.tmpDir = path.join(dir, TMP_DIR);
  }

  /** Creates the directory when missing and removes stale temporary files. */
  static async open(opts: LocalObjectStoreOptions): Promise<LocalObjectStore> {
    if (typeof opts.dir !== 'string' || opts.dir === '') throw invalidArgument('local object store: dir is required', { field: 'dir' });
    const store = new LocalObjectStore(path.resolve(opts.dir), opts);
    await mkdirDurable(store.tmpDir);
    await store.removeStaleTemps(opts.staleTempMs ?? 3_600_000);
    return store;
  }

  async put(key: string, data: ObjectBytes, opts: PutOptions = {}): Promise<void> {
    validateKey(key);
    // Parts are written with writev(2), never joined in memory.
    const write = ArrayBuffer.isView(data) ? (fd: number) => writeAllAt(fd, Buffer.from(data.buffer, data.byteOffset, data.byteLength), 0) : (fd: number) => writevAll(fd, data);
    return this.gate.run(async () => {
      const tmp = await this.writeTemp(key, write);
      try {
        await this.install(key, tmp, opts.ifAbsent === true);
      } finally {
        // After a rename the temporary name is gone already; after a link it is removed here.
        await unlinkIfExists(tmp).catch((e: unknown) => log.warn('cannot remove temporary file', { tmp, error: String(e) }));
      }
    });
  }

  async get(key: string): Promise<Uint8Array> {
    validateKey(key);
    return this.gate.run(async () => {
      try {
        return ownedBytes(await fs.promises.readFile(this.pathOf(key)));
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') throw new ObjectNotFoundError(key, e);
        throw mapFsError('get', key, e);
      }
    });
  }

  async head(key: string): Promise<ObjectStat | undefined> {
    validateKey(key);
    return this.gate.run(async () => {
      try {
        const st = await fs.promises.stat(this.pathOf(key));
        return st.isFile() ? { size: st.size, etag: undefined } : undefined;
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
        throw mapFsError('head', key, e);
      }
    });
  }

  async *list(prefix: string): AsyncGenerator<ObjectEntry> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    yield* this.walk(slash < 0 ? '' : prefix.slice(0, slash), prefix.slice(slash + 1));
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    return this.gate.run(() => this.deleteOne(key));
  }

  async deletePrefix(prefix: string): Promise<number> {
    validatePrefix(prefix);
    return this.gate.run(async () => {
      let n = 0;
      for await (const { key } of this.list(prefix)) {
        await this.deleteOne(key);
        n++;
      }
      return n;
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const drained = await this.gate.shut(this.clock, this.closeDeadlineMs);
      if (!drained) log.warn('closed with calls still in flight', { dir: this.dir, deadlineMs: this.closeDeadlineMs });
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ internals

  private pathOf(key: string): string {
    return key === '' ? this.dir : path.join(this.dir, ...key.split('/'));
  }

  private async writeTemp(key: string, write: (fd: number) => Promise<void>): Promise<string> {
    const name = `${process.pid}-${++this.tmpSeq}-${this.random.int(2 ** 31).toString(36)}`;
    const tmp = path.join(this.tmpDir, name);
    try {
      const fd = await openFd(tmp, 'wx');
      try {
        await write(fd);
        if (this.fsync) await fdatasync(fd);
      } finally {
        await closeFd(fd);
      }
    } catch (e) {
      await unlinkIfExists(tmp).catch(() => false);
      throw mapFsError('put', key, e);
    }
    return tmp;
  }

  /** Moves (or, for ifAbsent, links) the complete temporary file to the key's path. */
  private async install(key: string, tmp: string, ifAbsent: boolean): Promise<void> {
    const target = this.pathOf(key);
    const parent = path.dirname(target);
    for (let attempt = 1; ; attempt++) {
      const mayRetry = attempt < MAX_INSTALL_ATTEMPTS;
      try {
        await this.ensureDir(parent);
      } catch (e) {
        const code = errnoCode(e);
        // mkdir -p racing with a delete that prunes the same directories fails with ENOENT, EEXIST
        // or ENOTDIR; only a file on the path is a real conflict.
        if (code === 'EEXIST' || code === 'ENOTDIR') {
          if (await this.fileOnPath(parent)) throw keyUnderObject(key);
          if (mayRetry) continue;
        }
        if (code === 'ENOENT' && mayRetry) continue;
        throw mapFsError('put', key, e);
      }
      try {
        if (ifAbsent) await fs.promises.link(tmp, target);
        else await fs.promises.rename(tmp, target);
        break;
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT' && mayRetry) continue; // the parent was pruned after our mkdir
        if (await isDirectory(target)) throw keyIsDirectory(key);
        if (code === 'EEXIST' && ifAbsent) {
          if (await isFile(target)) throw new ObjectAlreadyExistsError(key, e);
          if (mayRetry) continue; // deleted in the meantime: try to create it again
        }
        if (code === 'ENOTDIR' && (await this.fileOnPath(parent))) throw keyUnderObject(key);
        if (code === 'ENOTDIR' && mayRetry) continue;
        throw mapFsError('put', key, e);
      }
    }
    if (this.fsync) {
      try {
        await fsyncDir(parent);
      } catch (e) {
        // Only when a concurrent delete of this very key emptied and pruned the directory: the put did happen.
        if (errnoCode(e) !== 'ENOENT') throw mapFsError('put', key, e);
      }
    }
  }

  /** True when a component of `dir` below the root exists and is not a directory (an object). */
  private async fileOnPath(dir: string): Promise<boolean> {
    const parts = path.relative(this.dir, dir).split(path.sep);
    let p = this.dir;
    for (const part of parts) {
      p = path.join(p, part);
      try {
        if (!(await fs.promises.lstat(p)).isDirectory()) return true;
      } catch {
        return false; // missing from here on
      }
    }
    return false;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (dir === this.dir) return;
    if (this.fsync) await mkdirDurable(dir);
    else await fs.promises.mkdir(dir, { recursive: true });
  }

  private async deleteOne(key: string): Promise<void> {
    const target = this.pathOf(key);
    try {
      await fs.promises.unlink(target);
    } catch (e) {
      const code = errnoCode(e);
      // Missing, or a "directory" of other keys (which is no object): nothing to delete.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EPERM') return;
      throw mapFsError('delete', key, e);
    }
    await this.prune(path.dirname(target));
  }

  /** Removes empty directories from `dir` up to (not including) the root. */
  private async prune(dir: string): Promise<void> {
    while (dir !== this.dir && dir.startsWith(this.dir + path.sep)) {
      try {
        await fs.promises.rmdir(dir);
      } catch {
        return; // not empty (ENOTEMPTY/EEXIST), already gone, or anything else: stop quietly
      }
      dir = path.dirname(dir);
    }
  }

  /** Depth-first walk in UTF-8 byte order of keys (a directory sorts as its name + "/"). */
  private async *walk(dirKey: string, namePrefix: string): AsyncGenerator<ObjectEntry> {
    this.gate.check();
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(this.pathOf(dirKey), { withFileTypes: true });
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw mapFsError('list', dirKey, e);
    }
    const items = entries
      .filter((d) => (d.isFile() || d.isDirectory()) && d.name.startsWith(namePrefix))
      .filter((d) => !(dirKey === '' && d.name === RESERVED_SEGMENT))
      .map((d) => ({ name: d.name, isDir: d.isDirectory(), sortKey: Buffer.from(d.isDirectory() ? `${d.name}/` : d.name, 'utf8') }))
      .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const item of items) {
      const key = dirKey === '' ? item.name : `${dirKey}/${item.name}`;
      if (item.isDir) {
        yield* this.walk(key, '');
        continue;
      }
      let size: number;
      try {
        size = (await fs.promises.stat(this.pathOf(key))).size;
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue; // deleted while listing
        throw mapFsError('list', key, e);
      }
      yield { key, size };
    }
  }

  private async removeStaleTemps(staleMs: number): Promise<void> {
    const now = this.clock.now();
    for (const name of await fs.promises.readdir(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      try {
        const st = await fs.promises.stat(file);
        if (now - st.mtimeMs > staleMs) await unlinkIfExists(file);
      } catch {
        // raced with its owner or another cleaner: fine
      }
    }
  }
}

/** Parts an iovec array of one writev(2) holds at most (IOV_MAX on Linux). */
const MAX_IOVECS = 1024;

/** Writes the parts back to back from offset 0 of a new file, a writev per up to MAX_IOVECS parts (loops over short writes). */
async function writevAll(fd: number, parts: readonly Uint8Array[]): Promise<void> {
  let position = 0;
  let i = 0;
  let skip = 0; // bytes of parts[i] already written
  while (i < parts.length) {
    const batch: Uint8Array[] = [];
    for (let k = i; k < parts.length && batch.length < MAX_IOVECS; k++) {
      const p = k === i ? parts[k]!.subarray(skip) : parts[k]!;
      if (p.byteLength > 0) batch.push(p);
    }
    if (batch.length === 0) return;
    let n = await new Promise<number>((resolve, reject) => fs.writev(fd, batch, position, (err, written) => (err ? reject(err) : resolve(written))));
    if (n <= 0) throw new Error(`writev returned ${n}`);
    position += n;
    // Move past what was written: whole parts, then into the first part not done.
    while (i < parts.length && n >= parts[i]!.byteLength - skip) {
      n -= parts[i]!.byteLength - skip;
      i++;
      skip = 0;
    }
    skip += n;
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isFile();
  } catch {
    return false;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

function keyIsDirectory(key: string): StreamingError {
  return invalidArgument(`object key ${JSON.stringify(key)} is a prefix directory of other keys`, { key, reason: 'key is a directory' });
}

function keyUnderObject(key: string): StreamingError {
  return invalidArgument(`object key ${JSON.stringify(key)} lies under an existing object`, { key, reason: 'parent is an object' });
}

function mapFsError(op: string, key: string, e: unknown): StreamingError {
  switch (errnoCode(e)) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EMFILE':
    case 'ENFILE':
      return exhaustedStoreError('local', op, key, e);
    case 'EAGAIN':
    case 'EBUSY':
    case 'EINTR':
      return transientStoreError('local', op, key, e);
    case 'ENAMETOOLONG':
      return invalidArgument(`object key ${JSON.stringify(key)}: a path segment is too long for the file system`, { key, reason: 'name too long' });
    default:
      return permanentStoreError('local', op, key, e);
  }
}
