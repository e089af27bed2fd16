/**
 * `walstream start`: the standalone server with its HTTP gateway. Configuration from
 * `--config FILE` < `WALSTREAM_*` env < `--<setting> value` flags (config/). Prints, on stdout,
 *
 *     walstream listening on http://127.0.0.1:8480
 *     walstream data directory /abs/path
 *
 * and runs until SIGINT/SIGTERM: then it stops intake (the HTTP gateway first: no new requests,
 * subscription streams ended), closes the server (drains and closes the WALs), prints
 * `walstream stopped` and exits 0. A second signal exits at once with status 1.
 */
import { loadConfig, parseFlags } from '../../config';
import { systemClock } from '../clock';
import { UsageError } from './args';
import { println, type CliIo } from './io';

export const START_USAGE = `usage: walstream start [--config FILE] [--<setting> VALUE ...]

Runs walstream standalone (coordinator, streaming nodes, embedded storage) with its HTTP gateway.
Settings: see \`walstream config\` (e.g. --dataDir ./data --http.port 0 --pchannels.count 4).`;

export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const flags = parseFlags(args);
  if (flags['help'] === true) {
    println(io.stdout, START_USAGE);
    return 0;
  }
  const config = loadConfig({ env: io.env, flags });
  if (config.mode !== 'standalone') throw new UsageError(`start: runs standalone; mode ${config.mode} is a cluster role`);
  if (!io.onSignal) throw new UsageError('start: needs signal handling (run it as a process)');

  // The configured log level applies to loggers made from here on (the logger reads it on first
  // use; runtime/logger.ts has no setter). Only for a real process: an embedding caller keeps its env.
  if (io.env === process.env) process.env['WALSTREAM_LOG_LEVEL'] = config.logLevel;
  const { StandaloneServer } = await import('../server/standalone');
  const { startHttpServer } = await import('../server/http');

  let stopping: string | undefined;
  let requestStop: (signal: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  io.onSignal((signal) => {
    if (stopping !== undefined) {
      println(io.stderr, `walstream: ${signal} again; exiting now`);
      (io.exit ?? process.exit)(1);
      return;
    }
    stopping = signal;
    requestStop(signal);
  });

  // Long replays (recovery after a crash) show a bar per pchannel on a terminal, lines elsewhere.
  const { Progress } = await import('./progress');
  const bars = new Map<string, InstanceType<typeof Progress>>();
  const server = await StandaloneServer.start(config, {
    readyTimeoutMs: 600_000,
    onReplayProgress: (p) => {
      let bar = bars.get(p.pchannel);
      if (!bar && p.total !== undefined) bars.set(p.pchannel, (bar = new Progress(io.stdout, `replaying ${p.pchannel}`, p.total, { clock: systemClock })));
      const note = `${p.ratePerSec} msg/s${p.etaSec !== undefined ? `, ETA ${Math.round(p.etaSec)} s` : ''}`;
      if (p.done) bar?.finish(note);
      else bar?.update(p.replayed, note);
    },
  });
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    http = await startHttpServer(server.client, { host: config.http.host, port: config.http.port, bodyLimitBytes: config.http.bodyLimitBytes });
  } catch (e) {
    await server.close();
    throw e;
  }
  println(io.stdout, `walstream listening on ${http.address}`);
  println(io.stdout, `walstream data directory ${server.dataDir}`);

  const signal = await stopRequested;
  println(io.stdout, `walstream shutting down (${signal})`);
  await http.close();
  await server.close();
  println(io.stdout, 'walstream stopped');
  return 0;
}
