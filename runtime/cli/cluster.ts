/**
 * `walstream coordinator` and `walstream node`: the cluster roles, configured by file, env and
 * flags (Redis URL, node id, WAL backend, data directory …). They run until SIGINT/SIGTERM, then
 * leave the cluster gracefully (a node unregisters so its pchannels move at once; a leading
 * coordinator resigns so a standby takes over) and exit 0; a second signal exits 1 at once.
 */
import { loadConfig, parseFlags } from '../../config';
import { UsageError } from './args';
import { println, type CliIo } from './io';

export const CLUSTER_USAGE = `usage: walstream coordinator|node [--config FILE] [--redis.url URL] [--nodeId ID] [--wal.backend redis|local] [--<setting> VALUE ...]`;

export async function clusterRoleCommand(role: 'coordinator' | 'node', args: string[], io: CliIo): Promise<number> {
  const flags = parseFlags(args);
  if (flags['help'] === true) {
    println(io.stdout, CLUSTER_USAGE);
    return 0;
  }
  const config = loadConfig({ env: io.env, flags: { ...flags, mode: role } });
  if (!io.onSignal) throw new UsageError(`${role}: needs signal handling (run it as a process)`);
  if (io.env === process.env) process.env['WALSTREAM_LOG_LEVEL'] = config.logLevel;
  let stopping = false;
  let requestStop: (signal: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => (requestStop = resolve));
  io.onSignal((signal) => {
    if (stopping) {
      println(io.stderr, `walstream: ${signal} again; exiting now`);
      (io.exit ?? process.exit)(1);
      return;
    }
    stopping = true;
    requestStop(signal);
  });
  const proc =
    role === 'node'
      ? await (await import('../server/cluster/cluster-node')).ClusterNode.start(config)
      : await (await import('../server/cluster/cluster-coordinator')).ClusterCoordinator.start(config);
  println(io.stdout, `walstream ${role} ${config.nodeId} running (redis ${config.redis.url}, prefix ${config.redis.keyPrefix})`);
  const signal = await stopRequested;
  println(io.stdout, `walstream ${role} shutting down (${signal})`);
  await proc.close();
  println(io.stdout, `walstream ${role} stopped`);
  return 0;
}
