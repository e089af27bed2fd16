/**
 * `walstream start` as a child process, started the way a user starts it (runtime/cli/walstream.js), for
 * end-to-end tests. `startServerProcess` resolves once the process printed its listening line
 * (with a deadline; the process is killed and its output shown when it does not come).
 * `killAllServerProcesses()` in an afterEach/afterAll makes sure a failed test leaves none behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const LAUNCHER = path.join(ROOT, 'runtime', 'cli', 'walstream.js');
const LISTENING = /^walstream listening on (https?:\/\/\S+)$/m;
const DATA_DIR = /^walstream data directory (.+)$/m;

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly url: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ServerExit>;
  /** Sends `signal` and waits for the exit (at most `timeoutMs`, then SIGKILL and reject). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ServerExit>;
}

export interface StartServerOptions {
  dataDir: string;
  /** Extra `--setting value` arguments. `--dataDir` and `--http.port 0` are always given. */
  args?: string[];
  env?: Record<string, string>;
  /** How long to wait for the listening line (ms). Default 60000. */
  readyTimeoutMs?: number;
}

const running = new Set<ChildProcess>();

export async function startServerProcess(opts: StartServerOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, [LAUNCHER, 'start', '--dataDir', opts.dataDir, '--http.port', '0', ...(opts.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, WALSTREAM_CLI_SOURCE: '1', WALSTREAM_LOG_LEVEL: 'warn', ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<ServerExit>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );

  const describe = (): string => `--- stdout ---\n${out}\n--- stderr (last 4000 chars) ---\n${err.slice(-4000)}`;
  const ready = await new Promise<{ url: string; dataDir: string }>((resolve, reject) => {
    const check = (): void => {
      const m = LISTENING.exec(out);
      const d = DATA_DIR.exec(out);
      if (m && d) {
        cleanup();
        resolve({ url: m[1] as string, dataDir: (d[1] as string).trim() });
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`walstream start: no listening line within ${opts.readyTimeoutMs ?? 60_000} ms\n${describe()}`));
    }, opts.readyTimeoutMs ?? 60_000);
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`walstream start exited early (code ${code}, signal ${signal})\n${describe()}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout.off('data', check);
      child.off('exit', onExit);
    };
    child.stdout.on('data', check);
    child.once('exit', onExit);
    check();
  });

  return {
    url: ready.url,
    dataDir: ready.dataDir,
    pid: child.pid as number,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<ServerExit> {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const r = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (r === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`walstream did not exit within ${timeoutMs} ms of ${signal}\n${describe()}`);
      }
      return r;
    },
  };
}

/** Kills every server process still running (for afterEach/afterAll). */
export async function killAllServerProcesses(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}
