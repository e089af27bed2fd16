/**
 * The embedded store's durable state: one checksummed JSON file (`meta.json`) rewritten as a whole
 * by temp file + fsync + rename + fsync of the directory, so a crash leaves the old or the new state,
 * never a mix. A missing file is an empty store; a damaged one is UNRECOVERABLE (never silently reset:
 * terms and counters going back would break fencing and id uniqueness).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ErrorCode, StreamingError, unrecoverable } from '../../../runtime/errors';

export interface StoredEntry {
  value: string;
  version: number;
  /** Lease id; such entries are dropped on open (their leases died with the previous process). */
  lease?: string;
}

/** Everything that must survive a restart. Leases and leader holders do not (they die with the process). */
export interface MetaState {
  /** Last version handed out; every write takes the next one, so versions never repeat. */
  revision: number;
  /** Last lease sequence number handed out. */
  leaseSeq: number;
  kv: Map<string, StoredEntry>;
  terms: Map<string, number>;
  counters: Map<string, number>;
  versions: Map<string, number>;
  /** Last leader epoch per election. */
  epochs: Map<string, number>;
}

export const SNAPSHOT_FILE = 'meta.json';
const FORMAT = 1;

export function emptyState(): MetaState {
  return { revision: 0, leaseSeq: 0, kv: new Map(), terms: new Map(), counters: new Map(), versions: new Map(), epochs: new Map() };
}

interface Body {
  revision: number;
  leaseSeq: number;
  /** [key, value, version, lease?] — arrays, not objects, so any key string is safe. */
  kv: Array<[string, string, number] | [string, string, number, string]>;
  terms: Array<[string, number]>;
  counters: Array<[string, number]>;
  versions: Array<[string, number]>;
  epochs: Array<[string, number]>;
}

function checksum(bodyJson: string): string {
  return createHash('sha256').update(`walstream-meta:${FORMAT}:`).update(bodyJson).digest('hex').slice(0, 32);
}

export function encodeSnapshot(s: MetaState): string {
  const body: Body = {
    revision: s.revision,
    leaseSeq: s.leaseSeq,
    kv: [...s.kv].map(([k, e]) => (e.lease === undefined ? [k, e.value, e.version] : [k, e.value, e.version, e.lease])),
    terms: [...s.terms],
    counters: [...s.counters],
    versions: [...s.versions],
    epochs: [...s.epochs],
  };
  const bodyJson = JSON.stringify(body);
  // Hand-assembled so that the checksummed bytes are exactly the stored body.
  return `{"format":${FORMAT},"checksum":"${checksum(bodyJson)}","body":${bodyJson}}\n`;
}

export function decodeSnapshot(text: string, file: string): MetaState {
  const corrupt = (reason: string): StreamingError =>
    unrecoverable(`meta store file ${file} is corrupt: ${reason}; refusing to start from an empty state (restore it from a backup)`, {
      file,
      reason,
    });
  const m = /^\{"format":(\d+),"checksum":"([0-9a-f]+)","body":(.*)\}\n?$/s.exec(text);
  if (!m) throw corrupt(text.length === 0 ? 'empty file' : 'unexpected layout');
  if (Number(m[1]) !== FORMAT) throw corrupt(`unsupported format ${m[1] ?? ''}`);
  const bodyJson = m[3] ?? '';
  if (checksum(bodyJson) !== m[2]) throw corrupt('checksum mismatch');
  let body: Body;
  try {
    body = JSON.parse(bodyJson) as Body;
  } catch {
    throw corrupt('body is not valid JSON');
  }
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw corrupt(`${what} is not a non-negative integer`);
    return v;
  };
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw corrupt(`${what} is not a string`);
    return v;
  };
  const pairs = (v: unknown, what: string): Map<string, number> => {
    if (!Array.isArray(v)) throw corrupt(`${what} is not an array`);
    return new Map(v.map((p: unknown) => {
      if (!Array.isArray(p)) throw corrupt(`${what} entry is not a pair`);
      return [str(p[0], what), int(p[1], what)] as [string, number];
    }));
  };
  if (!Array.isArray(body.kv)) throw corrupt('kv is not an array');
  const kv = new Map<string, StoredEntry>();
  for (const row of body.kv as unknown[]) {
    if (!Array.isArray(row)) throw corrupt('kv row is not an array');
    const entry: StoredEntry = { value: str(row[1], 'kv value'), version: int(row[2], 'kv version') };
    if (row[3] !== undefined) entry.lease = str(row[3], 'kv lease');
    kv.set(str(row[0], 'kv key'), entry);
  }
  return {
    revision: int(body.revision, 'revision'),
    leaseSeq: int(body.leaseSeq, 'leaseSeq'),
    kv,
    terms: pairs(body.terms, 'terms'),
    counters: pairs(body.counters, 'counters'),
    versions: pairs(body.versions, 'versions'),
    epochs: pairs(body.epochs, 'epochs'),
  };
}

function ioError(op: string, path: string, e: unknown): StreamingError {
  if (e instanceof StreamingError) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? ErrorCode.RESOURCE_EXHAUSTED : ErrorCode.INNER;
  const message = e instanceof Error ? e.message : String(e);
  return new StreamingError(code, `meta store: cannot ${op} ${path}: ${message}`, { cause: e, details: { path, errno } });
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p, fsyncing the parent of each created directory so the new entries survive a crash. */
export async function mkdirDurable(dir: string): Promise<void> {
  const firstCreated = await mkdir(dir, { recursive: true });
  if (firstCreated === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === firstCreated || dirname(d) === d) break;
  }
}

/** Loads `<dir>/meta.json`; an absent file is an empty state. */
export async function loadSnapshot(dir: string): Promise<MetaState> {
  const file = join(dir, SNAPSHOT_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw ioError('read', file, e);
  }
  return decodeSnapshot(text, file);
}

let tempSeq = 0;

/** Replaces `<dir>/meta.json` with `text` atomically and durably. */
export async function writeSnapshot(dir: string, text: string): Promise<void> {
  const file = join(dir, SNAPSHOT_FILE);
  const temp = join(dir, `.${SNAPSHOT_FILE}.tmp-${process.pid}-${++tempSeq}`);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    await fsyncDir(dir);
  } catch (e) {
    await unlink(temp).catch(() => undefined);
    throw ioError('write', file, e);
  }
}
