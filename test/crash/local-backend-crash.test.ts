/**
 * Crash test of the local WAL backend: a child process appends with fsync 'always' and prints an
 * ack per resolved append; the parent SIGKILLs it at seeded moments, reopens the directory (which
 * runs recovery) and checks that
 * - every acknowledged record is present, at its id, with its bytes;
 * - ids are dense 1..N and every record on disk is a complete, valid record the child wrote
 *   (its bytes are recomputed from the (term, k) it carries), in write order: per term the k's
 *   are exactly 0, 1, 2, … (nothing missing in the middle, nothing duplicated);
 * - terms only increase along the log.
 * Child of round r writes at term 2r−1; the parent's check opens at term 2r.
 * Seed: WAL_CRASH_SEED (default 424242).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalWalBackend } from '../../storage/wal/local/local-backend';
import type { LogEntry, WalLog } from '../../storage/wal/backend';
import { type MessageId, sequenceId, sequenceOf } from '../../runtime/message/message-id';
import { seededRandom } from '../../runtime/clock';
import { batchDigest, crashPayload, parseCrashPayload } from './fixtures/crash-payload';

const SEED = Number(process.env.WAL_CRASH_SEED ?? 424242);
const ROUNDS = 5;
const P = 'crash-dml_0';
const FIXTURE = path.join(__dirname, 'fixtures', 'local-wal-writer.js');
const REPO = path.join(__dirname, '..', '..');
const CHILD_DEADLINE_MS = 20_000;
const READ_DEADLINE_MS = 10_000;

interface Ack {
  round: number;
  firstSeq: number;
  count: number;
  digest: string;
}

interface ChildRun {
  acks: Ack[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the writer until it has `killAfterAcks` acks, then SIGKILLs it `delayMs` later. */
function runChild(dir: string, round: number, term: number, seed: number, killAfterAcks: number, delayMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, dir, P, String(term), String(seed)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    let out = '';
    let stderr = '';
    let killScheduled = false;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`round ${round}: child did not reach ${killAfterAcks} acks in ${CHILD_DEADLINE_MS} ms (got ${acks.length}); stderr: ${stderr}`));
    }, CHILD_DEADLINE_MS);
    const onLine = (line: string): void => {
      const m = /^ack ([0-9a-f]{16}) (\d+) ([0-9a-f]{64})$/.exec(line);
      if (!m) return;
      acks.push({ round, firstSeq: sequenceOf(m[1]!), count: Number(m[2]), digest: m[3]! });
      if (!killScheduled && acks.length >= killAfterAcks) {
        killScheduled = true;
        if (delayMs === 0) child.kill('SIGKILL');
        else setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        onLine(out.slice(0, nl));
        out = out.slice(nl + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    // 'close' fires after stdout is drained: every ack the child printed before dying is counted.
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      resolve({ acks, signal, stderr });
    });
  });
}

async function readAll(log: WalLog, lastId: MessageId): Promise<LogEntry[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), READ_DEADLINE_MS);
  const out: LogEntry[] = [];
  try {
    for await (const e of log.read({ policy: { type: 'all' }, signal: ac.signal })) {
      out.push(e);
      if (e.id >= lastId) return out;
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error(`read ended after ${out.length} entries before ${lastId}`);
}

describe('local backend survives kill -9 of its writer', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-crash-'));
  });

  afterAll(async () => {
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it(`keeps every acknowledged record over ${ROUNDS} kills (seed ${SEED})`, async () => {
    const rnd = seededRandom(SEED);
    const allAcks: Ack[] = [];
    const sentinels = new Map<MessageId, string>();
    for (let round = 1; round <= ROUNDS; round++) {
      const killAfter = 3 + rnd.int(40);
      // Half the kills the instant an ack arrives (the next write is then usually in flight), half a little later.
      const delayMs = rnd.int(2) === 0 ? 0 : rnd.int(20);
      const run = await runChild(dir, round, 2 * round - 1, SEED + round, killAfter, delayMs);
      expect(run.signal).toBe('SIGKILL');
      expect(run.stderr).toBe('');
      expect(run.acks.length).toBeGreaterThanOrEqual(killAfter);
      allAcks.push(...run.acks);

      // Reopen (recovery) and read everything up to a sentinel written now.
      const backend = new LocalWalBackend({ dir, fsync: 'always', segmentBytes: 256 * 1024, logger: { warn: () => undefined, info: () => undefined } });
      try {
        const log = await backend.open({ name: P, term: 2 * round, accessMode: 'rw' });
        const sentinel = `sentinel-${round}`;
        const [sentinelId] = await log.append([Buffer.from(sentinel)]);
        sentinels.set(sentinelId!, sentinel);
        const entries = await readAll(log, sentinelId!);

        // Dense ids 1..N, the sentinel last.
        expect(entries.map((e) => e.id)).toEqual(entries.map((_, i) => sequenceId(i + 1)));
        expect(entries[entries.length - 1]!.id).toBe(sentinelId);

        // Every record is a sentinel or a complete record the child wrote, in write order.
        const nextK = new Map<number, number>();
        let lastTerm = 0;
        for (const e of entries) {
          const s = sentinels.get(e.id);
          if (s !== undefined) {
            expect(Buffer.from(e.data).toString()).toBe(s);
            continue;
          }
          const who = parseCrashPayload(e.data);
          if (!who) throw new Error(`record ${e.id} is neither a sentinel nor a payload of the writer`);
          if (!Buffer.from(e.data).equals(crashPayload(who.term, who.k))) throw new Error(`record ${e.id} (term ${who.term} k ${who.k}): wrong bytes`);
          if (who.term < lastTerm) throw new Error(`record ${e.id}: term ${who.term} after term ${lastTerm}`);
          lastTerm = who.term;
          const want = nextK.get(who.term) ?? 0;
          if (who.k !== want) throw new Error(`record ${e.id}: term ${who.term} k ${who.k}, expected k ${want} (hole or duplicate)`);
          nextK.set(who.term, want + 1);
        }

        // Every acknowledged append of every round so far is there, with its bytes.
        for (const ack of allAcks) {
          const batch = entries.slice(ack.firstSeq - 1, ack.firstSeq - 1 + ack.count);
          const where = `ack of round ${ack.round} at ${sequenceId(ack.firstSeq)} (${ack.count} records)`;
          if (batch.length !== ack.count || batch[0]!.id !== sequenceId(ack.firstSeq)) throw new Error(`${where}: missing`);
          if (batchDigest(batch.map((e) => e.data)) !== ack.digest) throw new Error(`${where}: different bytes`);
        }
        expect(allAcks.length).toBeGreaterThan(0);
        const acked = run.acks.reduce((n, a) => n + a.count, 0);
        const written = nextK.get(2 * round - 1) ?? 0;
        expect(written).toBeGreaterThanOrEqual(acked); // extra records beyond the acks are allowed, checked above
        await log.close();
      } finally {
        await backend.close();
      }
    }
    expect(allAcks.length).toBeGreaterThanOrEqual(ROUNDS * 3);
  });
});
