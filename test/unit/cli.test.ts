/**
 * The `walstream` CLI in process: argument parsing (exit status 2 and a message naming the
 * problem), the client commands and `demo` against an in-process standalone server behind the
 * HTTP gateway (exit status, summary, progress output).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import winston from 'winston';
import { loadConfig } from '../../config';
import { systemClock } from '../../runtime/clock';
import { main } from '../../runtime/cli/main';
import { parseRows } from '../../runtime/cli/commands';
import { Progress } from '../../runtime/cli/progress';
import type { CliIo } from '../../runtime/cli/io';
import { runDemo, type DemoSummary } from '../../runtime/cli/demo';
import type { WalstreamClient } from '../../runtime/client/api';
import { StandaloneServer } from '../../runtime/server/standalone';
import { startHttpServer, type HttpServer } from '../../runtime/server/http';
import { freePort } from '../support/cluster-harness';

jest.setTimeout(120_000);

interface Run {
  code: number;
  out: string;
  err: string;
}

function output(isTTY = false): { write(s: string): boolean; isTTY: boolean; text: () => string } {
  let text = '';
  return {
    isTTY,
    write(s: string) {
      text += s;
      return true;
    },
    text: () => text,
  };
}

async function cli(argv: string[], extra: Partial<CliIo> = {}): Promise<Run> {
  const stdout = output();
  const stderr = output();
  const code = await main(argv, { stdout, stderr, env: {}, clock: systemClock, ...extra });
  return { code, out: stdout.text(), err: stderr.text() };
}

describe('argument parsing', () => {
  test('no command → usage on stderr, 2; help → usage on stdout, 0', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('usage: walstream <command>');
    const help = await cli(['help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('demo [--rows N]');
  });

  test.each([
    [['bogus'], 'unknown command "bogus"'],
    [['status', '--bogus'], "status: Unknown option '--bogus'"],
    [['status', 'extra'], 'status: unexpected argument "extra"'],
    [['status', '--url', 'ftp://x'], '--url: expected an http(s) URL'],
    [['status', '--timeout-ms', '0'], '--timeout-ms: expected an integer in [1, '],
    [['transfer'], 'transfer: missing argument'],
    [['insert', 'c1'], 'insert: give exactly one of --rows JSON or --file PATH'],
    [['insert', 'c1', '--rows', '[{"id":1}]', '--file', 'x'], 'insert: give exactly one of --rows JSON or --file PATH'],
    [['tail'], 'tail: invalid vchannel: exactly one of vchannel, pchannel, collection is required'],
    [['tail', 'v', '--policy', 'startFrom'], 'tail: invalid id: a message id is required with policy startFrom'],
    [['tail', 'v', '--types', 'TimeTick'], 'system messages always pass'],
    [['demo', '--rows', 'abc'], '--rows: expected an integer in [1, 10000000], got "abc"'],
    [['demo', '--transfers=-1'], '--transfers: expected an integer in [0, 100]'],
    [['collections', 'rename'], 'collections: unknown subcommand "rename"'],
    [['collections', 'create', 'c'], 'collections create: give --schema JSON|@file, or --dim N'],
    [['config', '--http.port', '1'], 'config: settings (--http.port) are only read with --effective'],
    [['config', '--effective', '--http.port', 'abc'], 'http.port: expected integer'],
    [['start', '--http.port', 'abc'], 'http.port: expected integer'],
    [['start', '--no.such.setting', '1'], 'no.such.setting'],
  ])('%j → 2: %s', async (argv, message) => {
    const r = await cli(argv);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.out).toBe('');
  });

  test('config prints the settings, as text or JSON, and the effective configuration', async () => {
    const text = await cli(['config']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^http\.port {2}\(integer/m);
    expect(text.out).toContain('env WALSTREAM_HTTP__PORT, flag --http.port');
    const json = JSON.parse((await cli(['config', '--json'])).out) as { path: string }[];
    expect(json.map((r) => r.path)).toEqual(expect.arrayContaining(['dataDir', 'http.host', 'http.port', 'http.bodyLimitBytes']));
    const effective = JSON.parse((await cli(['config', '--effective', '--http.port', '1234', '--dataDir=/tmp/x'])).out) as { http: { port: number }; dataDir: string };
    expect(effective.http.port).toBe(1234);
    expect(effective.dataDir).toBe('/tmp/x');
    const md = await cli(['config', '--markdown']);
    expect(md.out).toContain('| `http.port` |');
  });

  test('start: prints where it listens, shuts down on a signal (0); a second signal exits at once (1)', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-cli-start-'));
    const stdout = output();
    let onSignal: ((signal: string) => void) | undefined;
    const exits: number[] = [];
    let listening: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (listening = resolve));
    const watched = { write: (s: string) => (stdout.write(s), /walstream data directory/.test(stdout.text()) && listening(), true), isTTY: false };
    const running = main(['start', '--dataDir', dataDir, '--http.port', '0', '--pchannels.count', '2'], {
      stdout: watched,
      stderr: output(),
      env: {},
      clock: systemClock,
      onSignal: (h) => (onSignal = h),
      exit: (code) => exits.push(code),
    });
    try {
      await started;
      const url = /^walstream listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout.text())?.[1];
      expect(url).toBeDefined();
      expect(stdout.text()).toContain(`walstream data directory ${dataDir}`);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      onSignal?.('SIGINT');
      onSignal?.('SIGTERM');
      expect(exits).toEqual([1]);
      expect(await running).toBe(0);
      expect(stdout.text()).toMatch(/walstream shutting down \(SIGINT\)\nwalstream stopped\n$/);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      await running.catch(() => undefined);
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  test('start --help prints its usage without starting anything', async () => {
    const r = await cli(['start', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('usage: walstream start');
  });

  test('a server that cannot be reached → 1 with the reason', async () => {
    const port = await freePort();
    const r = await cli(['status', '--url', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('cannot reach the walstream server (ECONNREFUSED)');
  });

  test('rows: a JSON array or NDJSON', () => {
    expect(parseRows(' [{"id":1},{"id":2}] ', 'x')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(parseRows('{"id":1}\n\n{"id":2}\n', 'x')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(() => parseRows('{"id":1}\n{oops}', 'rows.ndjson')).toThrow('rows.ndjson:2: not JSON');
  });

  test('progress: a redrawn bar on a terminal, plain lines elsewhere', () => {
    const tty = output(true);
    const p = new Progress(tty, 'writing', 10, { clock: systemClock, redrawMs: 0 });
    p.update(5, 'half');
    p.finish('done');
    expect(tty.text()).toContain('\rwriting [');
    expect(tty.text()).toContain(' 50% 5/10 half');
    expect(tty.text().endsWith(' 50% 5/10 done\x1b[K\n')).toBe(true);
    const plain = output(false);
    const q = new Progress(plain, 'writing', 10, { clock: systemClock, lineMs: 60_000 });
    for (let i = 1; i <= 10; i++) q.update(i);
    q.finish();
    const lines = plain.text().trim().split('\n');
    expect(lines[0]).toBe('writing: 1/10 (10%)');
    expect(lines).toContain('writing: 10/10 (100%)');
    expect(plain.text()).not.toContain('\r');
  });
});

describe('against a server', () => {
  let dir: string;
  let server: StandaloneServer;
  let gateway: HttpServer;
  let url: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-cli-'));
    server = await StandaloneServer.start(loadConfig({ flags: { dataDir: dir, 'pchannels.count': '4', 'wal.local.fsync': 'interval', 'wal.timetickIntervalMs': '50' } }));
    gateway = await startHttpServer(server.client, { host: '127.0.0.1', port: 0, bodyLimitBytes: 8 * 1024 * 1024, logger: winston.createLogger({ silent: true }) });
    url = gateway.address;
  });

  afterAll(async () => {
    await gateway?.close();
    await server?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('collections, insert, tail, transfer, status', async () => {
    const created = await cli(['collections', 'create', 'books', '--dim', '2', '--shards', '2', '--url', url]);
    expect(created).toMatchObject({ code: 0, err: '' });
    expect(created.out).toContain('created collection books');

    const list = await cli(['collections', 'list', '--json', '--url', url]);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.out) as { name: string }[]).map((c) => c.name)).toContain('books');

    const file = path.join(dir, 'rows.ndjson');
    await fs.writeFile(file, Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: i + 1, vector: [i, -i] })).join('\n'));
    const inserted = await cli(['insert', 'books', '--file', file, '--batch', '4', '--json', '--url', url]);
    expect(inserted.code).toBe(0);
    const results = inserted.out.trim().split('\n').map((l) => JSON.parse(l) as { rows: number; appends: { vchannel: string; rows: number; result: { timetick: string } }[] });
    expect(results.map((r) => r.rows)).toEqual([4, 4, 2]);
    const readableInsert = await cli(['insert', 'books', '--rows', '[{"id":11,"vector":[0,1]}]', '--url', url]);
    expect(readableInsert.out).toMatch(/^inserted 1 row\(s\): \S+@\d+ \(1\)\n$/);
    const appends = [...results, { appends: [] }].flatMap((r) => r.appends);

    const bad = await cli(['insert', 'books', '--rows', '[{"id":1,"vector":[1,2,3]}]', '--url', url]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('rows[0].vector');

    // Each shard from the start, inserts only: exactly the acknowledged appends, in timetick order.
    const info = JSON.parse((await cli(['collections', 'describe', 'books', '--json', '--url', url])).out) as { vchannels: string[] };
    let rows = 0;
    for (const [shard, vchannel] of info.vchannels.entries()) {
      const acked = appends.filter((a) => a.vchannel === vchannel);
      const extra = readableInsert.out.includes(`${vchannel}@`) ? 1 : 0;
      if (acked.length + extra === 0) continue;
      const tail = await cli(['tail', '--collection', 'books', '--shard', String(shard), '--policy', 'all', '--types', 'Insert', '--json', '--limit', String(acked.length + extra), '--url', url]);
      expect(tail.code).toBe(0);
      const lines = tail.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; timetick: string; header: { rows: number } });
      expect(lines.every((l) => l.type === 'Insert')).toBe(true);
      expect(lines.slice(0, acked.length).map((l) => [l.timetick, l.header.rows])).toEqual(acked.map((a) => [a.result.timetick, a.rows]));
      rows += lines.reduce((n, l) => n + l.header.rows, 0);
    }
    expect(rows).toBe(11);

    const readable = await cli(['tail', '--collection', 'books', '--policy', 'all', '--limit', '1', '--url', url]);
    expect(readable.out).toMatch(/^\d+ [0-9a-f]{16} \S+_\d+v0 CreateCollection books id=\d+ fields=id:int64,vector:floatVector\[2\]\n$/);

    const pchannel = (info.vchannels[0] as string).replace(/_\d+v\d+$/, '');
    const moved = await cli(['transfer', pchannel, '--json', '--url', url]);
    expect(moved.code).toBe(0);
    const t = JSON.parse(moved.out) as { pchannel: string; to: string; term: number };
    expect(t.pchannel).toBe(pchannel);

    const status = await cli(['status', '--url', url]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(new RegExp(`^${pchannel} +${t.to} +${t.term} +ASSIGNED`, 'm'));

    const dropped = await cli(['collections', 'drop', 'books', '--url', url]);
    expect(dropped).toMatchObject({ code: 0, out: 'dropped books\n' });
    const missing = await cli(['collections', 'describe', 'books', '--url', url]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('INVALID_ARGUMENT: collection "books" does not exist');
  });

  test('tail ends cleanly on interrupt', async () => {
    expect((await cli(['collections', 'create', 'quiet', '--dim', '2', '--url', url])).code).toBe(0);
    const interrupt = new AbortController();
    const stdout = output();
    let lines = 0;
    const watching = { write: (s: string) => (stdout.write(s), ++lines === 1 && interrupt.abort(), true), isTTY: false };
    const code = await main(['tail', '--collection', 'quiet', '--policy', 'all', '--url', url], { stdout: watching, stderr: output(), env: {}, clock: systemClock, interrupt: interrupt.signal });
    expect(code).toBe(0);
    expect(stdout.text()).toContain('CreateCollection quiet');
  });

  test('demo: writes, moves pchannels mid-stream, checks exactly-once and order; JSON summary', async () => {
    const r = await cli(['demo', '--rows', '600', '--batch', '25', '--writers', '3', '--transfers', '2', '--shards', '2', '--json', '--url', url]);
    expect(r.err).not.toContain('problem');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as DemoSummary;
    expect(s).toMatchObject({ ok: true, rows: 600, batches: 24, insertsAcked: 24, insertsFailed: 0, rowsAcked: 600, rowsSeen: 600, transfersFailed: 0, duplicates: 0, missing: 0, unexpected: 0, orderViolations: 0, problems: [] });
    expect(s.transfers).toHaveLength(2);
    expect(s.insertMessagesSeen).toBeGreaterThanOrEqual(24);
    // Progress and narration went to stderr (stdout holds the JSON); off a terminal: plain lines.
    expect(r.err).toMatch(/^writing: \d+\/600 \(\d+%\)/m);
    expect(r.err).toMatch(/^moved \S+ from \S+ to \S+ \(term \d+, \d+ ms\) after \d+\/24 batches$/m);
    // The demo drops its collection.
    expect((await server.client.listCollections()).map((c) => c.name)).not.toContain(s.collection);
  });

  test('demo: a subscriber that sees a message twice fails the check', async () => {
    // The in-process client, with every Insert delivered twice to the demo's subscribers.
    const doubled: WalstreamClient = Object.create(server.client) as WalstreamClient;
    doubled.subscribe = (req) => {
      const sub = server.client.subscribe(req);
      return {
        get lastTimetick() {
          return sub.lastTimetick;
        },
        get lastConfirmedId() {
          return sub.lastConfirmedId;
        },
        close: () => sub.close(),
        async *[Symbol.asyncIterator]() {
          for await (const m of sub) {
            yield m;
            if (m.type === 'Insert') yield m;
          }
        },
      };
    };
    const s = await runDemo(doubled, { rows: 40, batch: 10, transfers: 0, writers: 1 }, systemClock);
    expect(s.ok).toBe(false);
    expect(s.orderViolations).toBeGreaterThan(0);
    expect(s.duplicates).toBeGreaterThan(0);
    expect(s.problems.join('\n')).toContain('seen more than once');
  });

  test('demo: a readable summary; exit 1 when it cannot run', async () => {
    const ok = await cli(['demo', '--rows', '100', '--batch', '10', '--transfers', '1', '--collection', 'demo_readable', '--keep', '--url', url]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('demo PASSED: collection demo_readable, 2 shard(s)');
    expect(ok.out).toMatch(/exactly once: {2}0 missing, 0 duplicated, 0 unexpected/);
    expect((await server.client.listCollections()).map((c) => c.name)).toContain('demo_readable');
    // Same name again: creating the collection fails → exit 1 with the reason.
    const again = await cli(['demo', '--rows', '10', '--collection', 'demo_readable', '--url', url]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('already exists');
  });
});
