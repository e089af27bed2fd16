/**
 * Local-file WAL backend specifics: torn/corrupt tail recovery, segment rollover and whole-file
 * truncation, the term on disk, and fencing between two backend instances on one directory
 * (they share no memory, exactly like two processes).
 */
import * as fs from 'node:fs';
import nodeFs = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalWalBackend, pchannelDirName, type LocalWalBackendOptions, type LocalWalLogger } from '../../storage/wal/local/local-backend';
import { computeView, segmentFile } from '../../storage/wal/local/segment-files';
import { CORRUPT, INCOMPLETE, checkedRecordsEnd, encodeRecordsInto, encodedBytes, recordChecksOut, recordLength } from '../../storage/wal/local/record-format';
import type { DeliverPolicy, LogEntry, WalLog } from '../../storage/wal/backend';
import { type MessageId, sequenceId } from '../../runtime/message/message-id';
import { ChannelFencedError, ErrorCode } from '../../runtime/errors';
import * as fsIo from '../../storage/wal/local/fs-io';
import { seededRandom } from '../../runtime/clock';
import * as crc32Module from '../../runtime/crc32';

const DEADLINE_MS = 10_000;
const P = 'by-dml_0';

let root: string;
const backends: LocalWalBackend[] = [];
let warnings: { message: string; meta?: Record<string, unknown> }[];

const logger: LocalWalLogger = {
  warn: (message, meta) => warnings.push(meta ? { message, meta } : { message }),
  info: () => undefined,
};

function newBackend(opts: Partial<LocalWalBackendOptions> = {}): LocalWalBackend {
  const b = new LocalWalBackend({ dir: root, fsync: 'always', logger, ...opts });
  backends.push(b);
  return b;
}

beforeEach(async () => {
  root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-local-unit-'));
  warnings = [];
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await fs.promises.rm(root, { recursive: true, force: true });
});

/** Payload i: recognisable text plus a deterministic filler of varying length. */
function rec(i: number, size = 40 + ((i * 37) % 300)): Uint8Array {
  const out = Buffer.alloc(size);
  out.write(`record-${i}|`);
  for (let k = 12; k < size; k++) out[k] = (i * 31 + k) & 0xff;
  return out;
}

function seqs(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

async function readUntil(log: WalLog, policy: DeliverPolicy, stopId: MessageId): Promise<LogEntry[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), DEADLINE_MS);
  const out: LogEntry[] = [];
  try {
    for await (const e of log.read({ policy, signal: ac.signal })) {
      out.push(e);
      if (e.id >= stopId) return out;
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error(`read ended after ${out.length} entries without reaching ${stopId}`);
}

/** Asserts `entries` are exactly the records with these sequence numbers and payloads rec(payloadOf(seq)). */
function expectRecords(entries: readonly LogEntry[], expected: readonly { seq: number; data: Uint8Array }[]): void {
  expect(entries.map((e) => e.id)).toEqual(expected.map((x) => sequenceId(x.seq)));
  entries.forEach((e, i) => expect(Buffer.from(e.data).equals(Buffer.from(expected[i]!.data))).toBe(true));
}

function segFiles(backend: LocalWalBackend, pchannel = P): string[] {
  return fs
    .readdirSync(backend.channelDir(pchannel))
    .filter((n) => n.endsWith('.seg'))
    .sort();
}

function fileWithRecords(backend: LocalWalBackend, pchannel = P): string {
  const dir = backend.channelDir(pchannel);
  const withData = segFiles(backend, pchannel).filter((n) => fs.statSync(path.join(dir, n)).size > 0);
  expect(withData.length).toBeGreaterThan(0);
  return path.join(dir, withData[withData.length - 1]!);
}

async function writeRecords(backend: LocalWalBackend, term: number, payloads: Uint8Array[]): Promise<MessageId[]> {
  const log = await backend.open({ name: P, term, accessMode: 'rw' });
  const ids: MessageId[] = [];
  for (const p of payloads) ids.push(...(await log.append([p])));
  await log.close();
  return ids;
}

describe('local backend: recovery of the tail', () => {
  const payloads = seqs(1, 10).map((i) => rec(i));
  const expected9 = seqs(1, 9).map((s) => ({ seq: s, data: payloads[s - 1]! }));

  async function reopenAndCheck(expectedKept: { seq: number; data: Uint8Array }[]): Promise<void> {
    const b = newBackend();
    const log = await b.open({ name: P, term: 2, accessMode: 'rw' });
    const lastKept = expectedKept[expectedKept.length - 1]!.seq;
    expectRecords(await readUntil(log, { type: 'all' }, sequenceId(lastKept)), expectedKept);
    // Numbering continues right after the last good record.
    const fresh = rec(1000);
    expect(await log.append([fresh])).toEqual([sequenceId(lastKept + 1)]);
    expectRecords(await readUntil(log, { type: 'all' }, sequenceId(lastKept + 1)), [...expectedKept, { seq: lastKept + 1, data: fresh }]);
  }

  it('cuts a torn last record (file cut short) and continues numbering', async () => {
    const ids = await writeRecords(newBackend(), 1, payloads);
    expect(ids).toEqual(seqs(1, 10).map(sequenceId));
    const file = fileWithRecords(backends[0]!);
    const size = fs.statSync(file).size;
    const lastRecordBytes = 8 + payloads[9]!.length;
    fs.truncateSync(file, size - 3);
    await reopenAndCheck(expected9);
    expect(fs.statSync(file).size).toBe(size - lastRecordBytes); // cut at the last good record
    expect(warnings).toEqual([expect.objectContaining({ message: 'cutting the tail of a segment' })]);
    expect(warnings[0]!.meta).toMatchObject({ records: 9, cutBytes: lastRecordBytes - 3, reason: 'incomplete' });
  });

  it('cuts a last record whose payload is corrupt', async () => {
    await writeRecords(newBackend(), 1, payloads);
    const file = fileWithRecords(backends[0]!);
    const buf = fs.readFileSync(file);
    buf.writeUInt8(buf.readUInt8(buf.length - 5) ^ 0xff, buf.length - 5);
    fs.writeFileSync(file, buf);
    await reopenAndCheck(expected9);
    expect(warnings[0]!.meta).toMatchObject({ records: 9, reason: 'corrupt' });
  });

  it('cuts a torn header (only part of the length field written)', async () => {
    await writeRecords(newBackend(), 1, payloads.slice(0, 9));
    const file = fileWithRecords(backends[0]!);
    fs.appendFileSync(file, Buffer.from([0x10, 0x00]));
    await reopenAndCheck(expected9);
  });

  it('cuts a zero-filled tail and keeps every complete record', async () => {
    await writeRecords(newBackend(), 1, payloads);
    const file = fileWithRecords(backends[0]!);
    fs.appendFileSync(file, Buffer.alloc(4096));
    await reopenAndCheck(seqs(1, 10).map((s) => ({ seq: s, data: payloads[s - 1]! })));
    expect(warnings[0]!.meta).toMatchObject({ records: 10, cutBytes: 4096 });
  });

  it('a reader of an ro log stops at a torn tail (waits) instead of delivering garbage', async () => {
    await writeRecords(newBackend(), 1, payloads);
    const file = fileWithRecords(backends[0]!);
    fs.truncateSync(file, fs.statSync(file).size - 3);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    const reading = (async () => {
      for await (const e of ro.read({ policy: { type: 'all' }, signal: ac.signal })) got.push(e);
    })();
    const deadline = Date.now() + DEADLINE_MS;
    while (got.length < 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expectRecords(got, expected9);
    // Bounded observation: the torn record never shows up.
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toHaveLength(9);
    ac.abort();
    await reading;
    expect(fs.statSync(file).size).toBeGreaterThan(0); // ro never repairs files
  });
});

describe('local backend: segments and truncation', () => {
  // 500-byte payloads take 508 bytes on disk: 8 records fit in 4096 bytes, the 9th rolls over.
  const SEGMENT = 4096;
  const payload = (i: number): Uint8Array => rec(i, 500);

  it('rolls over by size, reads across files, and truncates whole files only', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    for (let i = 1; i <= 100; i++) expect(await log.append([payload(i)])).toEqual([sequenceId(i)]);
    const files = segFiles(b);
    expect(files.map((n) => parseInt(n.slice(0, 16), 16))).toEqual(seqs(0, 12).map((k) => 1 + 8 * k));
    for (const n of files.slice(0, -1)) expect(fs.statSync(path.join(b.channelDir(P), n)).size).toBe(8 * 508);

    const all = seqs(1, 100).map((s) => ({ seq: s, data: payload(s) }));
    const read = await readUntil(log, { type: 'all' }, sequenceId(100));
    expectRecords(read, all);
    // Every entry passed its record CRC (length and payload): decoders may skip the message's own checksums.
    expect(read.every((e) => e.verified === true)).toBe(true);
    expectRecords(await readUntil(log, { type: 'startFrom', id: sequenceId(42) }, sequenceId(100)), all.slice(41));

    // upTo 20: files [1..8] and [9..16] hold only records < 20; [17..24] is kept whole.
    await log.truncate(sequenceId(20));
    expect(segFiles(b)).toEqual(files.slice(2));
    expect(await log.oldestId()).toBe(sequenceId(17));
    expectRecords(await readUntil(log, { type: 'all' }, sequenceId(100)), all.slice(16));
    // StartFrom below the retained range starts at the oldest retained record.
    expectRecords(await readUntil(log, { type: 'startFrom', id: sequenceId(3) }, sequenceId(100)), all.slice(16));

    await log.truncate(sequenceId(17)); // nothing below 17 left
    expect(segFiles(b)).toEqual(files.slice(2));
    await log.truncate(sequenceId(1000)); // beyond the end: the last file always stays
    expect(segFiles(b)).toEqual(files.slice(-1));
    expect(await log.oldestId()).toBe(sequenceId(97));
    await log.close();

    const reopened = await newBackend({ segmentBytes: SEGMENT }).open({ name: P, term: 2, accessMode: 'rw' });
    expect(await reopened.oldestId()).toBe(sequenceId(97));
    expectRecords(await readUntil(reopened, { type: 'all' }, sequenceId(100)), all.slice(96));
    expect(await reopened.append([payload(101)])).toEqual([sequenceId(101)]);
  });

  it('keeps a batch in one file (rolls before it) and a reader tails across a rollover', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    const tail = (async () => {
      for await (const e of log.read({ policy: { type: 'latest' }, signal: ac.signal })) got.push(e);
    })();
    const batches = [seqs(1, 5), seqs(6, 10), seqs(11, 13), seqs(14, 20)];
    for (const batch of batches) {
      const ids = await log.append(batch.map(payload));
      expect(ids).toEqual(batch.map(sequenceId));
    }
    // 5 + 5 > 8 records: each batch of 5 starts a new file; 3 fit after the second batch.
    expect(segFiles(b).map((n) => parseInt(n.slice(0, 16), 16))).toEqual([1, 6, 14]);
    const deadline = Date.now() + DEADLINE_MS;
    while (got.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expectRecords(got, seqs(1, 20).map((s) => ({ seq: s, data: payload(s) })));
    ac.abort();
    await tail;
  });
});

describe('local backend: the term on disk', () => {
  it('persists the term across backend instances and refuses lower-term rw opens', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 5, accessMode: 'rw' });
    await la.append([rec(1), rec(2)]);
    await a.close();

    const b = newBackend();
    const err = await b.open({ name: P, term: 4, accessMode: 'rw' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChannelFencedError);
    expect(err).toMatchObject({ code: ErrorCode.CHANNEL_FENCED, details: { pchannel: P, term: 4, currentTerm: 5 } });
    const lb = await b.open({ name: P, term: 5, accessMode: 'rw' }); // same term: allowed
    expect(await lb.append([rec(3)])).toEqual([sequenceId(3)]);
    const lb7 = await b.open({ name: P, term: 7, accessMode: 'rw' });
    await expect(lb.append([rec(99)])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED, details: { currentTerm: 7 } });
    expect(await lb7.append([rec(4)])).toEqual([sequenceId(4)]);
    await b.close();

    const c = newBackend();
    await expect(c.open({ name: P, term: 6, accessMode: 'rw' })).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    const ro = await c.open({ name: P, term: 1, accessMode: 'ro' }); // ro never checks or changes the term
    expectRecords(await readUntil(ro, { type: 'all' }, sequenceId(4)), [1, 2, 3, 4].map((s) => ({ seq: s, data: rec(s) })));

    // One immutable term record per rw open, highest epoch = current term.
    const termsDir = path.join(c.channelDir(P), 'terms');
    const records = fs
      .readdirSync(termsDir)
      .sort()
      .map((n) => JSON.parse(fs.readFileSync(path.join(termsDir, n), 'utf8')) as { term: number; epoch: number });
    expect(records.map((r) => [r.epoch, r.term])).toEqual([
      [1, 5],
      [2, 5],
      [3, 7],
    ]);
  });

  it('a re-open at the same term supersedes the earlier handle', async () => {
    const b = newBackend();
    const first = await b.open({ name: P, term: 3, accessMode: 'rw' });
    await first.append([rec(1)]);
    const second = await b.open({ name: P, term: 3, accessMode: 'rw' });
    await expect(first.append([rec(2)])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    expect(await second.append([rec(3)])).toEqual([sequenceId(2)]);
  });

  it('encodes pchannel names into safe, distinct directory names', () => {
    expect(pchannelDirName('by-dml_0')).toBe('by-dml_0');
    expect(pchannelDirName('../x')).toBe('%2E%2E%2Fx');
    expect(pchannelDirName('a.b')).not.toBe(pchannelDirName('a%2Eb'));
    expect(pchannelDirName('ü')).toBe('%C3%BC');
  });
});

/**
 * Holds the next call of nodeFs[fn] (the backend's fd I/O goes through it) until release(): a
 * writer paused between its fence check and its I/O, deterministically. Later calls pass through.
 */
function holdNext(fn: 'write' | 'fdatasync'): { captured: Promise<void>; release(): void } {
  const original = nodeFs[fn] as unknown as (...args: unknown[]) => void;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let onCaptured!: () => void;
  const captured = new Promise<void>((r) => (onCaptured = r));
  let held = false;
  const spy = jest.spyOn(nodeFs, fn).mockImplementation(((...args: unknown[]) => {
    if (held) return original.apply(nodeFs, args);
    held = true;
    onCaptured();
    void released.then(() => original.apply(nodeFs, args));
  }) as never);
  return {
    captured,
    release: () => {
      spy.mockRestore();
      release();
    },
  };
}

function rawRecords(payloads: Uint8Array[]): Buffer {
  const buf = Buffer.alloc(encodedBytes(payloads));
  encodeRecordsInto(buf, 0, payloads);
  return buf;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('local backend: fencing between two instances (two processes)', () => {
  it('a write held until after a newer open is refused and never becomes readable (fence after write)', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    await la.append([rec(1), rec(2)]);
    const gate = holdNext('write');
    const pending = la.append([rec(3)]).then(
      (ids) => ({ ids }),
      (e: unknown) => ({ e }),
    );
    await gate.captured; // A passed its fence check and is about to write
    const lb = await newBackend().open({ name: P, term: 2, accessMode: 'rw' });
    gate.release(); // A's bytes land after B's cut
    expect(await pending).toMatchObject({ e: { code: ErrorCode.CHANNEL_FENCED } });
    expect(await lb.append([rec(4)])).toEqual([sequenceId(3)]);
    const expected = [
      { seq: 1, data: rec(1) },
      { seq: 2, data: rec(2) },
      { seq: 3, data: rec(4) },
    ];
    expectRecords(await readUntil(lb, { type: 'all' }, sequenceId(3)), expected);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    expectRecords(await readUntil(ro, { type: 'all' }, sequenceId(3)), expected);
  });

  it('an append racing a newer open may be refused yet counted, and then it sits before the new term', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    await la.append([rec(1)]);
    const gate = holdNext('fdatasync');
    const pending = la.append([rec(2)]).then(
      (ids) => ({ ids }),
      (e: unknown) => ({ e }),
    );
    await gate.captured; // written, not yet synced or acknowledged
    const lb = await newBackend().open({ name: P, term: 2, accessMode: 'rw' });
    gate.release();
    expect(await pending).toMatchObject({ e: { code: ErrorCode.CHANNEL_FENCED } });
    expect(await lb.append([rec(3)])).toEqual([sequenceId(3)]);
    expectRecords(
      await readUntil(lb, { type: 'all' }, sequenceId(3)),
      [1, 2, 3].map((s) => ({ seq: s, data: rec(s) })),
    );
  });

  it('a reader in another process holds back records read after a newer fence point until the cut decides', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    await la.append([rec(1), rec(2)]);
    const aFile = fileWithRecords(a);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    const reading = (async () => {
      for await (const e of ro.read({ policy: { type: 'all' }, signal: ac.signal })) got.push(e);
    })();
    await waitFor(() => got.length === 2, 'the first two records');

    // A newer open reached its fence point (its term record) and has not cut the log yet ...
    const termsDir = path.join(a.channelDir(P), 'terms');
    fs.writeFileSync(path.join(termsDir, (2).toString(16).padStart(16, '0')), JSON.stringify({ term: 2, epoch: 2 }) + '\n');
    // ... while a term-1 write lands.
    fs.appendFileSync(aFile, rawRecords([rec(3)]));
    await new Promise((r) => setTimeout(r, 150)); // bounded observation, many poll periods
    expect(got).toHaveLength(2);

    // That open died; the next one (term 3) scans the file, counts the complete record and cuts after it.
    const lc = await newBackend().open({ name: P, term: 3, accessMode: 'rw' });
    expect(await lc.append([rec(4)])).toEqual([sequenceId(4)]);
    const expected = [1, 2, 3, 4].map((s) => ({ seq: s, data: rec(s) }));
    await waitFor(() => got.length === 4, 'the reader to follow the cut');
    expectRecords(got, expected);
    expectRecords(await readUntil(lc, { type: 'all' }, sequenceId(4)), expected);
    ac.abort();
    await reading;
  });

  it('a reader in another process that entered a stray file of a fenced writer moves to the live files', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    await la.append([rec(1), rec(2), rec(3)]);
    await la.close();
    const dir = a.channelDir(P);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    const reading = (async () => {
      for await (const e of ro.read({ policy: { type: 'all' }, signal: ac.signal })) got.push(e);
    })();
    await waitFor(() => got.length === 3, 'the first three records');

    // Interleaving (each step is what the named party does to the directory):
    // 1. opener O (epoch 2) claims its term: the fence point;
    fs.writeFileSync(path.join(dir, 'terms', (2).toString(16).padStart(16, '0')), JSON.stringify({ term: 2, epoch: 2 }) + '\n');
    // 2. the fenced writer (epoch 1) rolls over after it, O's listing having missed that file;
    fs.writeFileSync(path.join(dir, segmentFile(4, 1).name), rawRecords([Buffer.from('stray-4'), Buffer.from('stray-5')]));
    await new Promise((r) => setTimeout(r, 100)); // the reader enters the stray file and must hold back
    expect(got).toHaveLength(3);
    // 3. O cuts at 4 and writes; then it rolls over.
    fs.writeFileSync(path.join(dir, segmentFile(4, 2).name), rawRecords([rec(4), rec(5)]));
    fs.writeFileSync(path.join(dir, segmentFile(6, 2).name), rawRecords([rec(6)]));
    const expected = [1, 2, 3, 4, 5, 6].map((s) => ({ seq: s, data: rec(s) }));
    await waitFor(() => got.length >= 6, 'the reader to follow the live files');
    expectRecords(got, expected);

    // A real rw open agrees, and removes the stray.
    const lc = await newBackend().open({ name: P, term: 3, accessMode: 'rw' });
    expectRecords(await readUntil(lc, { type: 'all' }, sequenceId(6)), expected);
    expect(fs.existsSync(path.join(dir, segmentFile(4, 1).name))).toBe(false);
    expect(got).toHaveLength(6);
    ac.abort();
    await reading;
  });

  it('refuses the term-1 writer once term 2 opened through another instance', async () => {
    const a = newBackend();
    const b = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    expect(await la.append(seqs(1, 5).map((i) => rec(i)))).toEqual(seqs(1, 5).map(sequenceId));

    // A reader tailing A's own (in-process) writer.
    const ac = new AbortController();
    const tailA: LogEntry[] = [];
    const tailing = (async () => {
      for await (const e of la.read({ policy: { type: 'latest' }, signal: ac.signal })) tailA.push(e);
    })();

    const lb = await b.open({ name: P, term: 2, accessMode: 'rw' });
    const aFile = fileWithRecords(a);
    const aBytes = fs.statSync(aFile).size;
    await expect(la.append([rec(100)])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED, details: { term: 1, currentTerm: 2 } });
    await expect(la.append([rec(101), rec(102)])).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    await expect(la.truncate(sequenceId(2))).rejects.toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
    expect(fs.statSync(aFile).size).toBe(aBytes); // a writer that knows it is fenced writes no byte

    expect(await lb.append([rec(6), rec(7)])).toEqual([sequenceId(6), sequenceId(7)]);
    const expected = seqs(1, 7).map((s) => ({ seq: s, data: rec(s) }));
    expectRecords(await readUntil(lb, { type: 'all' }, sequenceId(7)), expected);

    // Cross-instance readers: an ro log on A, and A's fenced rw log, both see B's records.
    const roA = await a.open({ name: P, term: 1, accessMode: 'ro' });
    expectRecords(await readUntil(roA, { type: 'all' }, sequenceId(7)), expected);
    expectRecords(await readUntil(la, { type: 'all' }, sequenceId(7)), expected);
    // The reader that was tailing A's writer notices the takeover and follows B.
    const deadline = Date.now() + DEADLINE_MS;
    while (tailA.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expectRecords(tailA, expected.slice(5));
    ac.abort();
    await tailing;
  });

  it('never delivers records a fenced writer lands after the cut, nor a stray segment it creates', async () => {
    const a = newBackend();
    const la = await a.open({ name: P, term: 1, accessMode: 'rw' });
    await la.append(seqs(1, 3).map((i) => rec(i)));
    const aFile = fileWithRecords(a);
    const lb = await newBackend().open({ name: P, term: 2, accessMode: 'rw' });

    // What a paused term-1 writer could still do: its write lands after B's cut, and it rolls
    // over into a new file of its own epoch beyond the cut.
    const late = [rec(500), rec(501)];
    const buf = Buffer.alloc(encodedBytes(late));
    encodeRecordsInto(buf, 0, late);
    fs.appendFileSync(aFile, buf);
    const stray = segmentFile(6, 1);
    fs.writeFileSync(path.join(a.channelDir(P), stray.name), buf);

    expect(await lb.append([rec(4), rec(5), rec(6)])).toEqual(seqs(4, 6).map(sequenceId));
    const expected = seqs(1, 6).map((s) => ({ seq: s, data: rec(s) }));
    expectRecords(await readUntil(lb, { type: 'all' }, sequenceId(6)), expected);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    expectRecords(await readUntil(ro, { type: 'all' }, sequenceId(6)), expected);

    // The next rw open removes the stray and still sees exactly the same log.
    await lb.close();
    const c = newBackend();
    const lc = await c.open({ name: P, term: 3, accessMode: 'rw' });
    expect(fs.existsSync(path.join(c.channelDir(P), stray.name))).toBe(false);
    expectRecords(await readUntil(lc, { type: 'all' }, sequenceId(6)), expected);
    expect(await lc.append([rec(7)])).toEqual([sequenceId(7)]);
  });

  it('racing appends and a newer open: every acknowledged record survives, nothing lands after the new term', async () => {
    for (let round = 0; round < 5; round++) {
      const name = `race-${round}`;
      const a = newBackend();
      const b = newBackend();
      const la = await a.open({ name, term: 1, accessMode: 'rw' });
      const acked = new Map<string, Uint8Array>();
      const refused: Uint8Array[] = [];
      let stop = false;
      const writers = [0, 1, 2].map(async (w) => {
        for (let i = 0; !stop; i++) {
          const batch = [Buffer.from(`A|w${w}|${i}|x`), Buffer.from(`A|w${w}|${i}|y`)];
          try {
            const ids = await la.append(batch);
            ids.forEach((id, k) => acked.set(id, batch[k]!));
          } catch (e) {
            expect(e).toMatchObject({ code: ErrorCode.CHANNEL_FENCED });
            refused.push(...batch);
            return;
          }
        }
      });
      // Let term 1 write for a moment (a bounded number of acks), then open term 2 in the other instance.
      const deadline = Date.now() + DEADLINE_MS;
      while (acked.size < 20 * (round + 1) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      const lb = await b.open({ name, term: 2, accessMode: 'rw' });
      await Promise.all(writers);
      stop = true;
      const marker = Buffer.from('B|marker');
      const [markerId] = await lb.append([marker]);
      const log = await readUntil(lb, { type: 'all' }, markerId!);
      expect(log[log.length - 1]!.id).toBe(markerId);
      const ids = log.map((e) => e.id);
      expect(ids).toEqual(seqs(1, log.length).map(sequenceId)); // dense, in order
      // Every acknowledged record is there with its bytes.
      const byId = new Map(log.map((e) => [e.id, Buffer.from(e.data)]));
      for (const [id, data] of acked) expect(byId.get(id)?.equals(Buffer.from(data))).toBe(true);
      // Anything else before the marker is a complete record a refused append tried to write
      // (an append racing the open may be counted by it); nothing of term 1 comes after the marker.
      const refusedSet = new Set(refused.map((r) => Buffer.from(r).toString()));
      for (const e of log.slice(0, -1)) {
        if (!acked.has(e.id)) expect(refusedSet.has(Buffer.from(e.data).toString())).toBe(true);
      }
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('local backend: liveness rule of segment files', () => {
  const names = (files: { firstSeq: number; epoch: number }[]): string[] => files.map((f) => segmentFile(f.firstSeq, f.epoch).name);
  const live = (ns: string[]): [number, number][] => computeView(ns).live.map((f) => [f.firstSeq, f.epoch]);

  it('a higher epoch at or below a file kills it; the low-water mark kills files below it', () => {
    // e1 wrote 1.., e2 cut at 11, a stale e1 created 13 (stray), e3 cut at 20.
    const ns = names([
      { firstSeq: 1, epoch: 1 },
      { firstSeq: 11, epoch: 2 },
      { firstSeq: 13, epoch: 1 },
      { firstSeq: 20, epoch: 3 },
    ]);
    expect(live(ns)).toEqual([
      [1, 1],
      [11, 2],
      [20, 3],
    ]);
    // An empty file superseded at the same firstSeq by a newer open.
    expect(live(names([{ firstSeq: 5, epoch: 1 }, { firstSeq: 5, epoch: 2 }]))).toEqual([[5, 2]]);
    // After truncation removed [1] and [11] (and their evidence), the mark keeps the stray dead.
    const truncated = [...names([{ firstSeq: 13, epoch: 1 }, { firstSeq: 20, epoch: 3 }]), 'low-' + (20).toString(16).padStart(16, '0')];
    expect(live(truncated)).toEqual([[20, 3]]);
    expect(computeView(truncated).dead.map((f) => f.name)).toEqual(names([{ firstSeq: 13, epoch: 1 }]));
    // Unrelated names are ignored.
    expect(live(['terms', 'README', '.tmp-1'])).toEqual([]);
  });
});

describe('local backend: record format, read side', () => {
  it('recordLength and recordChecksOut accept what encodeRecordsInto wrote and reject any changed byte', () => {
    const records = [0, 1, 4, 37, 1000].map((n) => rec(n + 1, n));
    const buf = Buffer.alloc(encodedBytes(records));
    expect(encodeRecordsInto(buf, 0, records)).toBe(buf.length);
    let at = 0;
    for (const r of records) {
      const length = recordLength(buf, at, buf.length);
      expect(length).toBe(r.length);
      const payload = buf.subarray(at + 8, at + 8 + length);
      expect(recordChecksOut(buf, at, payload)).toBe(true);
      expect(recordLength(buf, at, at + 8 + length - 1)).toBe(INCOMPLETE);
      for (const k of [0, 3, 4, 7, 8, 8 + length - 1]) {
        if (k >= 8 + length) continue;
        const bad = Buffer.from(buf);
        bad[at + k] = bad[at + k]! ^ 0x40;
        const l = recordLength(bad, at, bad.length);
        expect(l === CORRUPT || l !== length || !recordChecksOut(bad, at, bad.subarray(at + 8, at + 8 + l))).toBe(true);
      }
      at += 8 + length;
    }
    expect(recordLength(buf, at, buf.length)).toBe(INCOMPLETE);
    const huge = Buffer.alloc(8);
    huge.writeUInt32LE(0xffffffff, 0);
    expect(recordLength(huge, 0, 8)).toBe(CORRUPT);
  });
});

describe('local backend: records checked together', () => {
  /** The reference: record by record, the offset of the first one that is incomplete or does not check out. */
  function oneByOne(buf: Buffer, at: number, end: number): number {
    for (;;) {
      const n = recordLength(buf, at, end);
      if (n < 0 || !recordChecksOut(buf, at, buf.subarray(at + 8, at + 8 + n))) return at;
      at += 8 + n;
    }
  }

  it('end where checking one by one ends, whatever byte is changed, from any first record (seeded)', () => {
    const random = seededRandom(20261206);
    // Lengths that repeat (as a log's records do), an empty payload and a few that do not.
    const records = Array.from({ length: 400 }, (_, i) => rec(i + 1, i % 5 === 0 ? 566 : i % 7 === 0 ? 0 : i % 31 === 0 ? 1 + random.int(900) : 120 + (i % 3)));
    const buf = Buffer.alloc(encodedBytes(records));
    encodeRecordsInto(buf, 0, records);
    const starts = recordStarts(buf);
    // Intact: all of them with one CRC computation (the run adds up; no record is checked alone).
    const spy = jest.spyOn(crc32Module, 'crc32');
    try {
      expect(checkedRecordsEnd(buf, 0, buf.length)).toBe(buf.length);
      expect(checkedRecordsEnd(buf, starts[123]!, buf.length - 1)).toBe(starts[starts.length - 1]);
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
    // Lengths that keep changing: checked record by record, to the same end.
    const varied = Array.from({ length: 100 }, (_, i) => rec(i + 1, 1 + random.int(900)));
    const variedBuf = Buffer.alloc(encodedBytes(varied));
    encodeRecordsInto(variedBuf, 0, varied);
    expect(checkedRecordsEnd(variedBuf, 0, variedBuf.length)).toBe(variedBuf.length);
    const failures: string[] = [];
    for (let n = 0; n < 3_000; n++) {
      const bad = Buffer.from(n % 10 === 9 ? variedBuf : buf);
      const changes = 1 + random.int(2);
      for (let k = 0; k < changes; k++) {
        const i = random.int(bad.length);
        bad[i] = random.int(2) === 0 ? bad[i]! ^ (1 << random.int(8)) : random.int(256);
      }
      const from = n % 10 === 9 ? recordStarts(variedBuf)[random.int(100)]! : starts[random.int(starts.length)]!;
      const end = random.int(4) === 0 ? from + random.int(bad.length - from + 1) : bad.length; // sometimes a partial last record
      const got = checkedRecordsEnd(bad, from, end);
      const want = oneByOne(bad, from, end);
      if (got !== want) failures.push(`#${n} from ${from} end ${end}: ${got}, one by one ${want}`);
    }
    expect(failures).toEqual([]);
  });

  function recordStarts(buf: Buffer): number[] {
    const out: number[] = [];
    for (let at = 0; at < buf.length; at += 8 + buf.readUInt32LE(at)) out.push(at);
    return out;
  }
});

describe('local backend: reads that start inside a file', () => {
  // Payloads of varying sizes (40..339 bytes) in 2 KiB files: a start lands at any offset of a file.
  const SEGMENT = 2048;
  const N = 60;
  const payloads = seqs(1, N).map((i) => rec(i));
  const all = seqs(1, N).map((s) => ({ seq: s, data: payloads[s - 1]! }));

  async function readBatchesUntil(log: WalLog, policy: DeliverPolicy, stopId: MessageId): Promise<LogEntry[]> {
    const batched = log as WalLog & { readBatches(o: { policy: DeliverPolicy; signal: AbortSignal }): AsyncIterable<LogEntry[]> };
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), DEADLINE_MS);
    const out: LogEntry[] = [];
    try {
      for await (const batch of batched.readBatches({ policy, signal: ac.signal })) {
        expect(batch.length).toBeGreaterThan(0);
        out.push(...batch);
        if (out[out.length - 1]!.id >= stopId) return out;
      }
    } finally {
      clearTimeout(timer);
    }
    throw new Error(`read ended after ${out.length} entries without reaching ${stopId}`);
  }

  /** File offsets of the records of a segment file, walking its length fields. */
  function recordOffsets(file: string): number[] {
    const buf = fs.readFileSync(file);
    const out: number[] = [];
    for (let at = 0; at + 8 <= buf.length; at += 8 + buf.readUInt32LE(at)) out.push(at);
    return out;
  }

  /** Path and byte offset of record `seq` (its header). */
  function locateRecord(b: LocalWalBackend, seq: number): { file: string; at: number } {
    const names = segFiles(b);
    const name = names.filter((n) => parseInt(n.slice(0, 16), 16) <= seq).pop()!;
    const file = path.join(b.channelDir(P), name);
    return { file, at: recordOffsets(file)[seq - parseInt(name.slice(0, 16), 16)]! };
  }

  function flipPayloadByte(b: LocalWalBackend, seq: number): void {
    const { file, at } = locateRecord(b, seq);
    const buf = fs.readFileSync(file);
    buf[at + 8 + 5] = buf[at + 8 + 5]! ^ 0xff;
    fs.writeFileSync(file, buf);
  }

  async function expectCorruptAt(read: Promise<unknown>, seq: number): Promise<void> {
    await expect(read).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE, details: { id: sequenceId(seq) } });
  }

  it('StartFrom and StartAfter land on the exact record at every position, in sealed files and in the last one', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    for (const p of payloads) await log.append([p]);
    const files = segFiles(b);
    expect(files.length).toBeGreaterThan(5);
    // The same instance (in-process writer) and another one (a reader in another process).
    const other = await newBackend({ segmentBytes: SEGMENT }).open({ name: P, term: 0, accessMode: 'ro' });
    for (const reader of [log, other]) {
      for (let s = 1; s <= N; s++) {
        expectRecords(await readUntil(reader, { type: 'startFrom', id: sequenceId(s) }, sequenceId(N)), all.slice(s - 1));
        if (s < N) expectRecords(await readUntil(reader, { type: 'startAfter', id: sequenceId(s) }, sequenceId(N)), all.slice(s));
        expectRecords(await readBatchesUntil(reader, { type: 'startFrom', id: sequenceId(s) }, sequenceId(N)), all.slice(s - 1));
      }
    }
  });

  it('lands exactly when the skip spans many read chunks (records across chunk boundaries)', async () => {
    const opts = { segmentBytes: 1 << 16, readChunkBytes: 4096 };
    const b = newBackend(opts);
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    const many = seqs(1, 700).map((i) => rec(i));
    for (let i = 0; i < many.length; i += 50) await log.append(many.slice(i, i + 50));
    expect(segFiles(b).length).toBeGreaterThan(1);
    const expected = many.map((data, k) => ({ seq: k + 1, data }));
    const other = await newBackend(opts).open({ name: P, term: 0, accessMode: 'ro' });
    for (const reader of [log, other]) {
      for (let s = 1; s <= 700; s += 37) expectRecords(await readUntil(reader, { type: 'startFrom', id: sequenceId(s) }, sequenceId(700)), expected.slice(s - 1));
    }
  });

  it('a read started beyond the tail delivers the next record appended, not one passed over', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    for (const p of payloads.slice(0, 10)) await log.append([p]);
    const reading = readUntil(log, { type: 'startFrom', id: sequenceId(12) }, sequenceId(12));
    await log.append([payloads[10]!]);
    await log.append([payloads[11]!]);
    expectRecords(await reading, [all[11]!]);
  });

  it('a corrupt record inside the range read is still detected, in a sealed file and after a skip', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    await writeRecords(b, 1, payloads);
    const sealed = parseInt(segFiles(b)[2]!.slice(0, 16), 16); // the first record of the third file
    const bad = sealed + 3;
    flipPayloadByte(b, bad);
    const ro = await newBackend({ segmentBytes: SEGMENT }).open({ name: P, term: 0, accessMode: 'ro' });
    // From the file's start, from inside it before the bad record, and from the bad record itself.
    for (const start of [sealed, sealed + 1, bad]) await expectCorruptAt(readUntil(ro, { type: 'startFrom', id: sequenceId(start) }, sequenceId(N)), bad);
    await expectCorruptAt(readBatchesUntil(ro, { type: 'startFrom', id: sequenceId(sealed + 2) }, sequenceId(N)), bad);
    // A read that starts after it only passes over it (its bytes are not part of what is read).
    expectRecords(await readUntil(ro, { type: 'startFrom', id: sequenceId(bad + 1) }, sequenceId(N)), all.slice(bad));
  });

  it('a sealed file that ends before the start of a read is reported, not read past', async () => {
    const b = newBackend({ segmentBytes: SEGMENT });
    await writeRecords(b, 1, payloads);
    const [first, second] = segFiles(b);
    const next = parseInt(second!.slice(0, 16), 16);
    const file = path.join(b.channelDir(P), first!);
    const offsets = recordOffsets(file);
    fs.truncateSync(file, offsets[offsets.length - 2]! + 10); // cut inside its second-to-last record
    const ro = await newBackend({ segmentBytes: SEGMENT }).open({ name: P, term: 0, accessMode: 'ro' });
    await expectCorruptAt(readUntil(ro, { type: 'startFrom', id: sequenceId(next - 1) }, sequenceId(N)), next - 2);
  });

  it('in the last file the skip checks every record: a read starting beyond a corrupt one delivers nothing', async () => {
    const b = newBackend({ segmentBytes: 1 << 20 }); // one file: it is the last one
    await writeRecords(b, 1, payloads);
    expect(segFiles(b)).toHaveLength(1);
    flipPayloadByte(b, 20);
    const ro = await newBackend().open({ name: P, term: 0, accessMode: 'ro' });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    const reading = (async () => {
      for await (const e of ro.read({ policy: { type: 'startFrom', id: sequenceId(30) }, signal: ac.signal })) got.push(e);
    })();
    // Bounded observation: a reader of another process waits at a record that does not check out.
    await new Promise((r) => setTimeout(r, 150));
    expect(got).toEqual([]);
    ac.abort();
    await reading;
  });
});

describe('local backend: read-ahead', () => {
  /** Positions of the read(2) calls of segment files, in the order they are started. */
  function spyReads(): { positions: number[]; restore(): void } {
    const real = fsIo.readAt;
    const positions: number[] = [];
    (fsIo as { readAt: typeof fsIo.readAt }).readAt = (fd, buf, off, len, position) => {
      positions.push(position);
      return real(fd, buf, off, len, position);
    };
    return { positions, restore: () => ((fsIo as { readAt: typeof fsIo.readAt }).readAt = real) };
  }

  it('starts reading the next chunk, at its first whole record, before the reader has the last one', async () => {
    const opts = { segmentBytes: 1 << 20, readChunkBytes: 4096 };
    const b = newBackend(opts);
    const many = seqs(1, 400).map((i) => rec(i));
    await writeRecords(b, 1, many);
    const file = fileWithRecords(b);
    const starts = new Set(fs.readFileSync(file).length > 0 ? recordStarts(file) : []);
    const ro = await newBackend(opts).open({ name: P, term: 0, accessMode: 'ro' });
    const spy = spyReads();
    try {
      const ac = new AbortController();
      const got: LogEntry[] = [];
      const readsWhenDelivered: number[] = [];
      for await (const e of ro.read({ policy: { type: 'all' }, signal: ac.signal })) {
        readsWhenDelivered.push(spy.positions.length);
        got.push(e);
        if (got.length === many.length) break;
      }
      ac.abort();
      expectRecords(got, many.map((data, k) => ({ seq: k + 1, data })));
      // The first entry came out of the first chunk; by then the second chunk was being read.
      expect(readsWhenDelivered[0]).toBeGreaterThanOrEqual(2);
      // Every read starts at a record (none re-reads a chunk from a position inside a record).
      expect(spy.positions.filter((p) => !starts.has(p))).toEqual([]);
      // Each chunk is read once, but the last: its read-ahead came back short (the end of the file
      // at the time) and is read again when needed, as a live tail may have grown since.
      const last = Math.max(...spy.positions);
      expect(spy.positions.filter((p) => p !== last)).toEqual([...new Set(spy.positions.filter((p) => p !== last))]);
      expect(spy.positions.filter((p) => p === last)).toHaveLength(2);
    } finally {
      spy.restore();
    }
  });

  it('a transient batch reader reads into a few buffers again and again; a plain one keeps every entry as it was', async () => {
    const opts = { segmentBytes: 1 << 20, readChunkBytes: 4096 };
    const b = newBackend(opts);
    const many = seqs(1, 600).map((i) => rec(i));
    await writeRecords(b, 1, many);
    const expected = many.map((data, k) => ({ seq: k + 1, data }));
    const ro = await newBackend(opts).open({ name: P, term: 0, accessMode: 'ro' });
    const read = async (transient: boolean): Promise<{ copies: LogEntry[]; kept: LogEntry[]; memories: Set<ArrayBufferLike>; batches: number }> => {
      const ac = new AbortController();
      const copies: LogEntry[] = [];
      const kept: LogEntry[] = [];
      const memories = new Set<ArrayBufferLike>();
      let batches = 0;
      for await (const batch of ro.readBatches!({ policy: { type: 'all' }, signal: ac.signal, transient })) {
        batches++;
        for (const e of batch) {
          memories.add(e.data.buffer);
          copies.push({ id: e.id, data: Buffer.from(e.data) });
          kept.push(e);
        }
        if (copies.length === many.length) break;
      }
      ac.abort();
      return { copies, kept, memories, batches };
    };
    const transient = await read(true);
    expectRecords(transient.copies, expected); // right when taken batch by batch
    expect(transient.batches).toBeGreaterThan(20); // ~120 KB of records in 4 KiB chunks
    expect(transient.memories.size).toBeLessThanOrEqual(4); // the chunk read, the one read ahead, spares
    const plain = await read(false);
    expectRecords(plain.copies, expected);
    expectRecords(plain.kept, expected); // entries held on to are still what they were
    expect(plain.memories.size).toBeGreaterThan(20);
  });

  it('a tail that grows while it is read ahead: every record once, in order, in this instance and another', async () => {
    const opts = { segmentBytes: 1 << 20, readChunkBytes: 4096 };
    const b = newBackend(opts);
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    const total = 1_500;
    const many = seqs(1, total).map((i) => rec(i));
    const other = await newBackend(opts).open({ name: P, term: 0, accessMode: 'ro' });
    const readers = [readUntil(log, { type: 'all' }, sequenceId(total)), readUntil(other, { type: 'all' }, sequenceId(total))];
    for (let i = 0; i < total; i += 25) await log.append(many.slice(i, i + 25));
    const expected = many.map((data, k) => ({ seq: k + 1, data }));
    for (const got of await Promise.all(readers)) expectRecords(got, expected);
  });
});

/** Byte offsets of the records of a segment file. */
function recordStarts(file: string): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  for (let at = 0; at + 8 <= buf.length; at += 8 + buf.readUInt32LE(at)) out.push(at);
  return out;
}

describe('local backend: records larger than a read chunk', () => {
  // readChunkBytes 4096 (its minimum): records of 10–20 KB need several reads each, in sealed
  // files (where an incomplete record is corruption) as well as in the tail, from a new cursor
  // (nothing buffered: the first record of a file) and after another large record.
  const big = (i: number): Uint8Array => rec(i, 10_000 + ((i * 997) % 10_000));

  it('reads them in sealed files and the tail, through read, StartFrom and another instance, and replays them', async () => {
    const b = newBackend({ segmentBytes: 50_000, readChunkBytes: 4096 });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    const all: { seq: number; data: Uint8Array }[] = [];
    for (let i = 1; i <= 30; i++) {
      expect(await log.append([big(i)])).toEqual([sequenceId(i)]);
      all.push({ seq: i, data: big(i) });
    }
    expect(segFiles(b).length).toBeGreaterThan(5); // several sealed files, each starting with a large record
    expectRecords(await readUntil(log, { type: 'all' }, sequenceId(30)), all);
    expectRecords(await readUntil(log, { type: 'startFrom', id: sequenceId(13) }, sequenceId(30)), all.slice(12));
    expectRecords(await readUntil(log, { type: 'startAfter', id: sequenceId(13) }, sequenceId(30)), all.slice(13));
    const other = await newBackend({ segmentBytes: 50_000, readChunkBytes: 4096 }).open({ name: P, term: 0, accessMode: 'ro' });
    expectRecords(await readUntil(other, { type: 'all' }, sequenceId(30)), all);
    await log.close();
    // A new owner cuts the tail with a scan over the same large records.
    const reopened = await newBackend({ segmentBytes: 50_000, readChunkBytes: 4096 }).open({ name: P, term: 2, accessMode: 'rw' });
    expectRecords(await readUntil(reopened, { type: 'all' }, sequenceId(30)), all);
    expect(await reopened.append([big(31)])).toEqual([sequenceId(31)]);
  });
});

describe('local backend: a new owner cutting a tail of large records', () => {
  it('keeps every record (a record larger than a read chunk is not a torn tail)', async () => {
    const big = (i: number): Uint8Array => rec(i, 9_000 + ((i * 1_303) % 9_000));
    const b = newBackend({ readChunkBytes: 4096 });
    const log = await b.open({ name: P, term: 1, accessMode: 'rw' });
    const all: { seq: number; data: Uint8Array }[] = [];
    for (let i = 1; i <= 20; i++) {
      expect(await log.append([big(i)])).toEqual([sequenceId(i)]);
      all.push({ seq: i, data: big(i) });
    }
    await log.close();
    const reopened = await newBackend({ readChunkBytes: 4096 }).open({ name: P, term: 2, accessMode: 'rw' });
    expect(await reopened.append([big(21)])).toEqual([sequenceId(21)]);
    all.push({ seq: 21, data: big(21) });
    expectRecords(await readUntil(reopened, { type: 'all' }, sequenceId(21)), all);
    expect(warnings.filter((w) => /torn|cut|truncat/i.test(w.message))).toEqual([]);
  });
});

describe('local backend: sync coalescing under fsync always', () => {
  /** Holds the fdatasync calls of appends until released; a held call can be made to fail. */
  function holdSyncs(): { calls: number; release(fail?: boolean): void; restore(): void } {
    const real = fsIo.fdatasync;
    const held: { go: () => void; fail: (e: Error) => void }[] = [];
    const spy = jest.spyOn(fsIo, 'fdatasync').mockImplementation(
      (fd: number) =>
        new Promise<void>((resolve, reject) => {
          state.calls++;
          held.push({ go: () => real(fd).then(resolve, reject), fail: reject });
        }),
    );
    const state = {
      calls: 0,
      release(fail = false): void {
        const h = held.shift();
        if (!h) throw new Error('no fdatasync is held');
        if (fail) h.fail(Object.assign(new Error('EIO: injected'), { code: 'EIO' }));
        else h.go();
      },
      restore: () => spy.mockRestore(),
    };
    return state;
  }

  it('writes the appends that arrive during a sync behind it and makes them durable with the next one', async () => {
    const backend = newBackend();
    const log = await backend.open({ name: P, term: 1, accessMode: 'rw' });
    const syncs = holdSyncs();
    try {
      const answered: string[] = [];
      const a = log.append([rec(1)]).then((ids) => (answered.push('a'), ids));
      await waitFor(() => syncs.calls === 1, 'the first sync');
      const b = log.append([rec(2), rec(3)]).then((ids) => (answered.push('b'), ids));
      const c = log.append([rec(4)]).then((ids) => (answered.push('c'), ids));
      // Both are written while the first sync is held, and wait for a sync of their own.
      await waitFor(() => backend.stats.records === 4, 'the writes behind the sync');
      expect(syncs.calls).toBe(1);
      expect(answered).toEqual([]);
      syncs.release();
      expect(await a).toEqual([sequenceId(1)]);
      // One more sync covers both later groups.
      await waitFor(() => syncs.calls === 2, 'the second sync');
      expect(answered).toEqual(['a']);
      syncs.release();
      expect(await b).toEqual([sequenceId(2), sequenceId(3)]);
      expect(await c).toEqual([sequenceId(4)]);
      expect(answered).toEqual(['a', 'b', 'c']);
      expect(syncs.calls).toBe(2);
    } finally {
      syncs.restore();
    }
    await log.close();
    const again = newBackend();
    const ro = await again.open({ name: P, term: 1, accessMode: 'ro' });
    expectRecords(await readUntil(ro, { type: 'all' }, sequenceId(4)), [1, 2, 3, 4].map((seq) => ({ seq, data: rec(seq) })));
    await ro.close();
  });

  /**
   * Appends records 1–3 to `log`, then rec(40) and rec(50) in a write that puts its bytes in the
   * file (whole, valid records) and then fails. Meanwhile `reader` reads from the start, so that it
   * has read the failing write's two records too. Once the write is undone, `appendAfter` writes
   * records 4 and 5. Returns the five records the reader delivered.
   */
  async function readAcrossUndoneWrite(log: WalLog, reader: WalLog, appendAfter: () => Promise<void>): Promise<LogEntry[]> {
    await log.append([rec(1), rec(2), rec(3)]);
    const realWrite = fsIo.writeAllAt;
    let releaseWrite: (() => void) | undefined;
    const writeSpy = jest.spyOn(fsIo, 'writeAllAt').mockImplementationOnce(async (fd, buf, position) => {
      await realWrite(fd, buf, position);
      await new Promise<void>((r) => (releaseWrite = r));
      throw new Error('injected: write failed');
    });
    const ac = new AbortController();
    const got: LogEntry[] = [];
    let reading: Promise<void> | undefined;
    try {
      const failed = log.append([rec(40), rec(50)]);
      await waitFor(() => releaseWrite !== undefined, 'the failing write to be held');
      reading = (async () => {
        for await (const e of reader.read({ policy: { type: 'all' }, signal: ac.signal })) {
          got.push({ id: e.id, data: Buffer.from(e.data) });
          if (got.length === 5) return;
        }
      })();
      await waitFor(() => got.length === 3, 'records 1-3');
      releaseWrite!();
      await expect(failed).rejects.toMatchObject({ code: ErrorCode.INNER });
      await appendAfter();
      await reading;
      return got;
    } finally {
      ac.abort();
      await reading?.catch(() => undefined);
      writeSpy.mockRestore();
    }
  }

  it('a reader that read the bytes of a write that was then undone delivers what was written after it, not them', async () => {
    const log = await newBackend().open({ name: P, term: 1, accessMode: 'rw' });
    const got = await readAcrossUndoneWrite(log, log, async () => {
      expect(await log.append([rec(4), rec(5)])).toEqual([sequenceId(4), sequenceId(5)]);
    });
    expectRecords(got, [1, 2, 3, 4, 5].map((seq) => ({ seq, data: rec(seq) })));
    await log.close();
  });

  it('a reader of another handle keeps no bytes of an undone write after the writer is gone', async () => {
    const backend = newBackend();
    const log = await backend.open({ name: P, term: 1, accessMode: 'rw' });
    const ro = await backend.open({ name: P, term: 0, accessMode: 'ro' });
    let next: WalLog | undefined;
    const got = await readAcrossUndoneWrite(log, ro, async () => {
      await log.close(); // the writer is gone: the reader is no longer bounded by it
      next = await backend.open({ name: P, term: 2, accessMode: 'rw' });
      expect(await next.append([rec(4), rec(5)])).toEqual([sequenceId(4), sequenceId(5)]);
    });
    expectRecords(got, [1, 2, 3, 4, 5].map((seq) => ({ seq, data: rec(seq) })));
    await next?.close();
  });

  it('a group whose write was still running when a sync failed is failed, not made durable by a later sync', async () => {
    const backend = newBackend();
    const log = await backend.open({ name: P, term: 1, accessMode: 'rw' });
    const syncs = holdSyncs();
    const realWrite = fsIo.writeAllAt;
    let releaseWrite: (() => void) | undefined;
    let writes = 0;
    const writeSpy = jest.spyOn(fsIo, 'writeAllAt').mockImplementation(async (fd, buf, position) => {
      if (++writes === 2) await new Promise<void>((r) => (releaseWrite = r));
      return realWrite(fd, buf, position);
    });
    try {
      const a = log.append([rec(1)]);
      await waitFor(() => syncs.calls === 1, 'the first sync');
      const b = log.append([rec(2)]);
      await waitFor(() => releaseWrite !== undefined, 'the second write to be held');
      syncs.release(true);
      await expect(a).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
      releaseWrite!();
      await expect(b).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
      // No sync was started for it on the broken handle.
      expect(syncs.calls).toBe(1);
    } finally {
      writeSpy.mockRestore();
      syncs.restore();
    }
    await log.close();
  });

  it('a failed sync fails the groups it covers and those written behind it; what an earlier sync made durable stays', async () => {
    const backend = newBackend();
    const log = await backend.open({ name: P, term: 1, accessMode: 'rw' });
    const syncs = holdSyncs();
    let b: Promise<unknown>;
    let c: Promise<unknown>;
    try {
      const a = log.append([rec(1)]);
      await waitFor(() => syncs.calls === 1, 'the first sync');
      syncs.release();
      expect(await a).toEqual([sequenceId(1)]);
      b = log.append([rec(2)]);
      await waitFor(() => syncs.calls === 2, 'the second sync');
      c = log.append([rec(3)]);
      await waitFor(() => backend.stats.records === 3, 'the write behind it');
      syncs.release(true);
      await expect(b).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
      await expect(c).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
      await expect(log.append([rec(4)])).rejects.toMatchObject({ code: ErrorCode.UNRECOVERABLE });
    } finally {
      syncs.restore();
    }
    await log.close();
    expect(warnings.some((w) => w.message === 'local wal writer broken')).toBe(true);
    const again = newBackend();
    const ro = await again.open({ name: P, term: 1, accessMode: 'ro' });
    expectRecords((await readUntil(ro, { type: 'all' }, sequenceId(1))).slice(0, 1), [{ seq: 1, data: rec(1) }]);
    await ro.close();
  });
});
