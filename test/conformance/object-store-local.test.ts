import * as fs from 'node:fs';
import nodeFs = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import { describeObjectStoreConformance } from './object-store.suite';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import { ErrorCode } from '../../runtime/errors';
import { ObjectAlreadyExistsError } from '../../storage/objects/errors';
import { seededRandom } from '../../runtime/clock';

async function tempDir(): Promise<string> {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-objects-'));
}

describeObjectStoreConformance(
  'local',
  async () => {
    const dir = await tempDir();
    return { store: await LocalObjectStore.open({ dir, random: seededRandom(7) }), cleanup: () => fs.promises.rm(dir, { recursive: true, force: true }) };
  },
  { hasEtag: false, atomicIfAbsent: true, manyKeys: 1100 },
);

// The same suite without fsync (a faster mode for tests and throwaway data): same semantics.
describeObjectStoreConformance(
  'local-no-fsync',
  async () => {
    const dir = await tempDir();
    return { store: await LocalObjectStore.open({ dir, fsync: false }), cleanup: () => fs.promises.rm(dir, { recursive: true, force: true }) };
  },
  { hasEtag: false, atomicIfAbsent: true, manyKeys: 1100 },
);

describe('LocalObjectStore specifics', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it('keeps a key as a plain file under the directory and prunes empty directories on delete', async () => {
    const store = await LocalObjectStore.open({ dir });
    await store.put('c/p/s/manifest.json', new TextEncoder().encode('{}'));
    expect(await fs.promises.readFile(path.join(dir, 'c', 'p', 's', 'manifest.json'), 'utf8')).toBe('{}');
    await store.delete('c/p/s/manifest.json');
    expect(fs.existsSync(path.join(dir, 'c'))).toBe(false);
    expect(await fs.promises.readdir(path.join(dir, '.walstream', 'tmp'))).toEqual([]); // no temp file left behind
    await store.close();
  });

  it('refuses a key that is the directory of other keys, or lies under an object', async () => {
    const store = await LocalObjectStore.open({ dir });
    await store.put('a/b/c', new Uint8Array([1]));
    await expect(store.put('a/b', new Uint8Array([2]))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(store.put('a/b', new Uint8Array([2]), { ifAbsent: true })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(store.put('a/b/c/d', new Uint8Array([3]))).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    expect([...(await store.get('a/b/c'))]).toEqual([1]);
    await store.close();
  });

  it('writes an object given in thousands of parts (more than one writev), leaving no temporary file', async () => {
    const store = await LocalObjectStore.open({ dir });
    const parts = Array.from({ length: 2500 }, (_, i) => new Uint8Array(i % 7).fill(i & 0xff)); // over IOV_MAX (1024)
    parts.push(new Uint8Array(3 << 20).fill(9));
    await store.put('a/b', parts);
    expect(Buffer.from(await store.get('a/b')).equals(Buffer.concat(parts))).toBe(true);
    await expect(store.put('a/b', [new Uint8Array([1])], { ifAbsent: true })).rejects.toBeInstanceOf(ObjectAlreadyExistsError);
    expect(await fs.promises.readdir(path.join(dir, '.walstream', 'tmp'))).toEqual([]);
    await store.close();
    await expect(store.put('a/d', [])).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
  });

  it('completes an object given in parts across short writes', async () => {
    const store = await LocalObjectStore.open({ dir, fsync: false });
    const writev = nodeFs.writev;
    // A writev that writes at most 5 bytes: every part is finished over several calls.
    const spy = jest.spyOn(nodeFs, 'writev').mockImplementation(((fd: number, bufs: NodeJS.ArrayBufferView[], pos: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void) =>
      writev(fd, [Buffer.from(bufs[0]!.buffer, bufs[0]!.byteOffset, Math.min(5, bufs[0]!.byteLength))], pos, cb)) as unknown as typeof nodeFs.writev);
    try {
      const parts = [Buffer.from('hello, '), Buffer.alloc(0), Buffer.from('parts'), Buffer.from(' written in pieces')];
      await store.put('k', parts);
      expect(spy.mock.calls.length).toBeGreaterThan(6);
      expect(Buffer.from(await store.get('k')).toString()).toBe('hello, parts written in pieces');
    } finally {
      spy.mockRestore();
      await store.close();
    }
  });

  it('removes stale temporary files of a crashed writer on open, and keeps fresh ones', async () => {
    const tmp = path.join(dir, '.walstream', 'tmp');
    await fs.promises.mkdir(tmp, { recursive: true });
    await fs.promises.writeFile(path.join(tmp, 'stale'), 'x');
    await fs.promises.writeFile(path.join(tmp, 'fresh'), 'x');
    const old = new Date(Date.now() - 2 * 3_600_000);
    await fs.promises.utimes(path.join(tmp, 'stale'), old, old);
    const store = await LocalObjectStore.open({ dir });
    expect(await fs.promises.readdir(tmp)).toEqual(['fresh']);
    await store.close();
  });

  it.each([true, false])('survives puts racing with deletes that prune the same directories (fsync %s)', async (fsync) => {
    const store = await LocalObjectStore.open({ dir, fsync });
    const rounds = fsync ? 40 : 200;
    for (let i = 0; i < rounds; i++) {
      // Each delete removes the only key of its directory and prunes x/y/z, x/y and x, while the
      // puts (re)create the same directories.
      await Promise.all([0, 1, 2].map((j) => store.put(`x/y/z${j}/old`, new Uint8Array([j]))));
      await Promise.all([
        ...[0, 1, 2].map((j) => store.delete(`x/y/z${j}/old`)),
        ...[0, 1, 2].map((j) => store.put(`x/y/z${j}/new-${i}`, new Uint8Array([i & 0xff, j]), { ifAbsent: j === 1 })),
      ]);
      for (const j of [0, 1, 2]) expect([...(await store.get(`x/y/z${j}/new-${i}`))]).toEqual([i & 0xff, j]);
      await Promise.all([0, 1, 2].map((j) => store.delete(`x/y/z${j}/new-${i}`)));
    }
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
    await store.close();
  });
});
