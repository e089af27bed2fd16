/**
 * Multi-process cluster harness: a Redis server of the test's own (free port, optional AOF, in a
 * temp dir) and walstream coordinator/node processes started as a user starts them. Everything
 * is ended by pid when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

const PROCESS = path.join(__dirname, '..', 'cluster', 'fixtures', 'cluster-process.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Flags every test cluster shares: the Redis WAL and MetaStore on `redisUrl` under `prefix`,
 * 4 pchannels, 3 s leases renewed every second, 50 ms TimeTicks, rebalancing every second.
 */
export function testClusterFlags(redisUrl: string, prefix: string): Record<string, string> {
  return {
    'redis.url': redisUrl,
    'redis.keyPrefix': prefix,
    'wal.backend': 'redis',
    'wal.timetickIntervalMs': '50',
    'lease.ttlMs': '3000',
    'lease.renewIntervalMs': '1000',
    'pchannels.count': '4',
    'coordinator.balanceIntervalMs': '1000',
  };
}

export interface RedisProcess {
  port: number;
  url: string;
  child: ChildProcess;
  kill9(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(dir: string, opts: { aof?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...(opts.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])];
  const launch = async (): Promise<ChildProcess> => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    await waitForPort(port, 10_000);
    return child;
  };
  const r: RedisProcess = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: await launch(),
    async kill9() {
      await killAndWait(r.child, 'SIGKILL');
    },
    async restart() {
      r.child = await launch();
    },
    async stop() {
      await killAndWait(r.child, 'SIGKILL');
    },
  };
  return r;
}

function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export interface WalstreamProcess {
  role: 'coordinator' | 'node';
  id: string;
  child: ChildProcess;
  output(): string;
  signal(sig: NodeJS.Signals): void;
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** Writes a line to the process's stdin (only when started with `script`). */
  send(line: string): void;
}

export interface StartWalstreamOptions {
  /**
   * A fixture to run instead of test/cluster/fixtures/cluster-process.js; it gets the flags only
   * (no role argument), its stdin is a pipe (`send`), and it must print `ready` like the default one.
   */
  script?: string;
}

export async function startWalstream(role: 'coordinator' | 'node', id: string, flags: Record<string, string>, timeoutMs = 30_000, options: StartWalstreamOptions = {}): Promise<WalstreamProcess> {
  const flagArgs = ['--nodeId', id, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
  const argv = options.script !== undefined ? [options.script, ...flagArgs] : [PROCESS, role, ...flagArgs];
  const child = spawn(process.execPath, argv, {
    stdio: [options.script !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, WALSTREAM_LOG_LEVEL: process.env.WALSTREAM_LOG_LEVEL ?? 'warn' },
  });
  // A write to the stdin of a process that just died fails with EPIPE; that is no test failure.
  child.stdin?.on('error', () => undefined);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} ${id} not ready after ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const check = (): void => {
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} ${id} exited ${code}:\n${out}`));
    });
  });
  child.removeAllListeners('exit');
  return {
    role,
    id,
    child,
    output: () => out,
    signal: (sig) => child.kill(sig),
    kill9: () => killAndWait(child, 'SIGKILL'),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
    send: (line) => {
      if (!child.stdin) throw new Error(`${role} ${id} has no stdin pipe (started without a script)`);
      child.stdin.write(`${line}\n`);
    },
  };
}
