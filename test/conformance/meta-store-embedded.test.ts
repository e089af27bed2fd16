import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '../../runtime/errors';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { LOCK_FILE } from '../../storage/meta/embedded/dir-lock';
import { decodeSnapshot, SNAPSHOT_FILE } from '../../storage/meta/embedded/snapshot';
import { DataDirLockedError } from '../../storage/meta/errors';
import { pchannelKey } from '../../storage/meta/meta-store';
import { ManualClock } from './meta-store-clock';
import { describeMetaStoreConformance, eventually, Recorder } from './meta-store.suite';

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'walstream-meta-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describeMetaStoreConformance('embedded', async () => {
  const dir = await tempDir();
  const clock = new ManualClock();
  const store = await EmbeddedMetaStore.open({ dir: join(dir, 'meta'), clock });
  return {
    store,
    peers: [], // one process per data directory
    ttlMs: 3000,
    passTime: async (ms) => clock.advance(ms),
    settleMs: 5000,
    cleanup: async () => rm(dir, { recursive: true, force: true }),
  };
});

describe('EmbeddedMetaStore: persistence and the data-directory lock', () => {
  it('keeps terms, counters, versions, keys, epochs and the version sequence across a reopen; drops lease keys', async () => {
    const dir = join(await tempDir(), 'meta');
    const clock = new ManualClock();
    const a = await EmbeddedMetaStore.open({ dir, clock });
    expect(await a.bumpTerm('p-1', 0)).toBe(1);
    expect(await a.bumpTerm('p-1', 1)).toBe(2);
    const ownerVersion = await a.casOwnerWrite('p-1', 2, [{ key: pchannelKey('p-1', 'checkpoint'), value: 'cp' }]);
    expect(await a.nextId('segment', 10)).toBe(1);
    expect(await a.bumpVersion('assignment')).toBe(1);
    expect(await a.bumpVersion('assignment')).toBe(2);
    const plainVersion = await a.put('catalog/c1', '{"name":"c1"}');
    const lease = await a.grantLease('node-1', 10_000);
    await a.put('nodes/1', 'addr', { lease });
    const leadership = (await a.campaign('coord', 'c-1', 10_000))!;
    await a.casLeaderWrite('coord', leadership.epoch, [{ key: 'assign/p-1', value: 'node-1' }]);
    await a.close();

    const b = await EmbeddedMetaStore.open({ dir, clock });
    expect(await b.pchannelTerm('p-1')).toBe(2);
    expect(await b.get(pchannelKey('p-1', 'checkpoint'))).toEqual({ value: 'cp', version: ownerVersion });
    expect(await b.nextId('segment')).toBe(11);
    expect(await b.getVersion('assignment')).toBe(2);
    expect(await b.get('catalog/c1')).toEqual({ value: '{"name":"c1"}', version: plainVersion });
    expect(await b.get('assign/p-1')).toMatchObject({ value: 'node-1' });
    // Leases and leaders belonged to the previous process.
    expect(await b.get('nodes/1')).toBeUndefined();
    expect(await b.leader('coord')).toBeUndefined();
    const next = (await b.campaign('coord', 'c-2', 10_000))!;
    expect(next.epoch).toBe(leadership.epoch + 1);
    const newLease = await b.grantLease('node-1', 10_000);
    expect(newLease.id).not.toBe(lease.id);
    // Versions continue above everything written before.
    expect(await b.put('catalog/c2', 'x')).toBeGreaterThan(Math.max(ownerVersion, plainVersion));
    expect(await b.bumpTerm('p-1', 1)).toBeUndefined();
    await b.close();
  });

  it('resolves a write only once it is in the snapshot on disk (group commit keeps all of them)', async () => {
    const dir = join(await tempDir(), 'meta');
    const store = await EmbeddedMetaStore.open({ dir, clock: new ManualClock() });
    const versions = await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(`g/${i}`, `v${i}`)));
    expect(new Set(versions).size).toBe(200);
    const onDisk = decodeSnapshot(await readFile(join(dir, SNAPSHOT_FILE), 'utf8'), SNAPSHOT_FILE);
    for (let i = 0; i < 200; i++) expect(onDisk.kv.get(`g/${i}`)).toEqual({ value: `v${i}`, version: versions[i] });
    expect(await store.bumpTerm('p', 0)).toBe(1);
    expect(decodeSnapshot(await readFile(join(dir, SNAPSHOT_FILE), 'utf8'), SNAPSHOT_FILE).terms.get('p')).toBe(1);
    await store.close();
  });

  it('expires a lease on the clock alone, with no traffic, and tells watchers', async () => {
    const dir = join(await tempDir(), 'meta');
    const clock = new ManualClock();
    const store = await EmbeddedMetaStore.open({ dir, clock });
    const lease = await store.grantLease('node-9', 1000);
    const v = await store.put('nodes/9', 'addr', { lease });
    const rec = new Recorder();
    await store.watch('nodes/', rec.push);
    clock.advance(999);
    expect(rec.events).toHaveLength(0);
    clock.advance(1); // the expiry timer fires; no store call in between
    await rec.waitFor('delete of nodes/9', () => rec.events.length >= 1, 5000);
    expect(rec.events).toEqual([{ type: 'delete', key: 'nodes/9', version: v + 1 }]);
    expect(clock.pendingTimers).toBe(0);
    await store.close();
  });

  it('refuses a second store on the same directory in this process, and works again after close', async () => {
    const dir = join(await tempDir(), 'meta');
    const a = await EmbeddedMetaStore.open({ dir });
    const err = await EmbeddedMetaStore.open({ dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect(err).toMatchObject({ code: ErrorCode.UNRECOVERABLE, holderPid: process.pid });
    expect(String((err as Error).message)).toContain(join(dir, LOCK_FILE));
    await a.put('k', 'v');
    await a.close();
    await expect(readFile(join(dir, LOCK_FILE), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    const b = await EmbeddedMetaStore.open({ dir });
    expect(await b.get('k')).toMatchObject({ value: 'v' });
    await b.close();
  });

  it('fails clearly while another live process holds the lock, and takes over once it is dead', async () => {
    const dir = join(await tempDir(), 'meta');
    await (await EmbeddedMetaStore.open({ dir })).close(); // creates the directory
    const child = await startSleeper();
    try {
      await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: child.pid, nonce: 'other', acquiredAt: 'x' }) + '\n');
      const err = await EmbeddedMetaStore.open({ dir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataDirLockedError);
      expect(err).toMatchObject({ holderPid: child.pid });
      expect((err as Error).message).toMatch(new RegExp(`live process \\(pid ${child.pid}\\)`));
    } finally {
      await stop(child);
    }
    // The holder is dead now: its lock is stale and is taken over.
    const store = await EmbeddedMetaStore.open({ dir });
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    await store.close();
  });

  it('takes over a lock left with our own pid by an earlier incarnation; refuses an unreadable one', async () => {
    const dir = join(await tempDir(), 'meta');
    await (await EmbeddedMetaStore.open({ dir })).close();
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, nonce: 'earlier', acquiredAt: 'x' }) + '\n');
    const store = await EmbeddedMetaStore.open({ dir });
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).not.toMatchObject({ nonce: 'earlier' });
    await store.close();

    await writeFile(join(dir, LOCK_FILE), 'garbage');
    await expect(EmbeddedMetaStore.open({ dir })).rejects.toBeInstanceOf(DataDirLockedError);
  });

  it('removes temp files of crashed processes on open, not those of live ones', async () => {
    const dir = join(await tempDir(), 'meta');
    await (await EmbeddedMetaStore.open({ dir })).close();
    const dead = await startSleeper();
    await stop(dead);
    const leftovers = [`.${SNAPSHOT_FILE}.tmp-${dead.pid}-1`, `.${LOCK_FILE}.${dead.pid}.abc`];
    const live = `.${LOCK_FILE}.${process.pid}.other-opener`;
    for (const f of [...leftovers, live]) await writeFile(join(dir, f), 'x');
    const store = await EmbeddedMetaStore.open({ dir });
    const names = await readdir(dir);
    for (const f of leftovers) expect(names).not.toContain(f);
    expect(names).toContain(live);
    await store.close();
  });

  it('refuses to start from a damaged snapshot (and releases the lock)', async () => {
    const dir = join(await tempDir(), 'meta');
    const a = await EmbeddedMetaStore.open({ dir });
    await a.bumpTerm('p', 0);
    await a.close();
    const file = join(dir, SNAPSHOT_FILE);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('"terms":[["p",1]]', '"terms":[["p",7]]'));
    await expect(EmbeddedMetaStore.open({ dir })).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE, message: expect.stringContaining('checksum mismatch') });
    await writeFile(file, text);
    const b = await EmbeddedMetaStore.open({ dir });
    expect(await b.pchannelTerm('p')).toBe(1);
    await b.close();
  });
});

/** A child process that lives until killed; resolves once it runs. */
async function startSleeper(): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await eventually('the child process to start', () => out.includes('up'), 10_000);
  if (child.pid === undefined) throw new Error('child has no pid');
  return child as ChildProcess & { pid: number };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}
