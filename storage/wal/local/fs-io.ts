/**
 * Promise wrappers over fd-based fs calls (the callback API: cheaper than FileHandle on the hot
 * path) and the durable-file helpers the local backend needs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function openFd(file: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, 0o644, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** One read(2) at `position`; resolves with the bytes read (0 at end of file). */
export function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** Writes all of `buf` at `position` (loops over short writes). */
export async function writeAllAt(fd: number, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.write(fd, buf, done, buf.length - done, position + done, (err, written) => (err ? reject(err) : resolve(written))),
    );
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

export function fstatSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))));
}

/** fsync of a directory, so that created, renamed, linked or removed names in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openFd(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    await closeFd(fd);
  }
}

/** mkdir -p that fsyncs the parent of every directory it created. */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await fs.promises.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // `first` is the top-most directory created; fsync its parent and every created level.
  let d = path.resolve(dir);
  const created: string[] = [];
  const top = path.resolve(first);
  for (;;) {
    created.push(d);
    if (d === top) break;
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const c of created) await fsyncDir(path.dirname(c));
}

/** Writes a complete file durably under a name nobody reads yet (write + fsync + close). */
export async function writeFileDurably(file: string, data: string | Buffer): Promise<void> {
  const fd = await openFd(file, 'wx');
  try {
    await writeAllAt(fd, typeof data === 'string' ? Buffer.from(data) : data, 0);
    await fdatasync(fd);
  } finally {
    await closeFd(fd);
  }
}

export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}

/** unlink that ignores a missing file. */
export async function unlinkIfExists(file: string): Promise<boolean> {
  try {
    await fs.promises.unlink(file);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}
