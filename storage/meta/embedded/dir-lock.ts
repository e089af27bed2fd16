/**
 * Exclusive use of a data directory by one process: `<dir>/LOCK`, holding `{pid, nonce, acquiredAt}`,
 * written under a private name and published complete with link(2), which fails if LOCK exists.
 * An existing lock is taken over only when its holder is gone:
 * - its pid is not a live process (kill(pid, 0) → ESRCH), or
 * - its pid is our own pid but this process holds no lock on the directory (a restart that got the
 *   same pid, as PID 1 in a container does);
 * anything else fails with DataDirLockedError naming the pid. Like PostgreSQL's postmaster.pid, this
 * trusts pids: a dead holder's pid reused by an unrelated live process reads as "held" (fail safe: the
 * operator removes the file), and two processes taking over the same stale lock at the same instant
 * can race (the take-over re-checks the file's inode right before unlinking it, which narrows that to
 * microseconds; a data directory is normally started by one supervisor).
 */
import { randomBytes } from 'node:crypto';
import { link, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DataDirLockedError } from '../errors';
import { fsyncDir } from './snapshot';

export const LOCK_FILE = 'LOCK';
const MAX_ATTEMPTS = 5;

/** Directories locked by this process (resolved paths), to refuse a second open in one process. */
const heldByThisProcess = new Set<string>();

export interface DirLock {
  readonly file: string;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): Promise<void>;
}

interface LockRecord {
  pid: number;
  nonce: string;
  acquiredAt: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function parse(text: string): LockRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<LockRecord>;
    return typeof r.pid === 'number' && Number.isSafeInteger(r.pid) && typeof r.nonce === 'string' ? (r as LockRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** `now` only labels the record (diagnostics). */
export async function acquireDirLock(dir: string, now: Date): Promise<DirLock> {
  const key = resolve(dir);
  const file = join(dir, LOCK_FILE);
  if (heldByThisProcess.has(key)) throw new DataDirLockedError(file, process.pid, 'another meta store in this process');
  heldByThisProcess.add(key); // reserved now, so that two concurrent opens in this process cannot both pass
  try {
    const record: LockRecord = { pid: process.pid, nonce: randomBytes(8).toString('hex'), acquiredAt: now.toISOString() };
    await createLockFile(dir, file, record);
    let released = false;
    return {
      file,
      async release() {
        if (released) return;
        released = true;
        heldByThisProcess.delete(key);
        const current = parse(await readFile(file, 'utf8').catch(() => ''));
        if (current?.nonce === record.nonce) await unlink(file).catch(() => undefined);
      },
    };
  } catch (e) {
    heldByThisProcess.delete(key);
    throw e;
  }
}

/**
 * The lock file appears complete or not at all: it is written under a private name, fsynced, then
 * published with link(2), which fails when LOCK exists. So a reader never sees a half-written lock.
 */
async function createLockFile(dir: string, file: string, record: LockRecord): Promise<void> {
  const temp = join(dir, `.${LOCK_FILE}.${record.pid}.${record.nonce}`);
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(JSON.stringify(record) + '\n', 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await link(temp, file);
        await fsyncDir(dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= MAX_ATTEMPTS) throw e;
      }
      // LOCK exists: is its holder gone?
      let text: string;
      let ino: number;
      try {
        ino = (await stat(file)).ino;
        text = await readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw e;
      }
      const holder = parse(text);
      if (!holder) throw new DataDirLockedError(file, 0, 'an unreadable lock file (not written by walstream)');
      if (holder.pid !== process.pid && alive(holder.pid)) throw new DataDirLockedError(file, holder.pid, 'a live process');
      // Dead holder, or our own pid from an earlier incarnation: take over — only the file we judged.
      const again = await stat(file).catch(() => undefined);
      if (again && again.ino === ino) await unlink(file).catch(() => undefined);
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Removes temp files that crashed processes left behind: snapshot temps (only the lock holder writes
 * them, so any that exist are dead) and lock temps of processes that no longer run. Call with the lock held.
 */
export async function removeLeftovers(dir: string, snapshotFile: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const lockTemp = new RegExp(`^\\.${LOCK_FILE}\\.(\\d+)\\.`).exec(name);
    const stale = name.startsWith(`.${snapshotFile}.tmp-`) || (lockTemp !== null && !alive(Number(lockTemp[1])));
    if (stale) await unlink(join(dir, name)).catch(() => undefined);
  }
}
