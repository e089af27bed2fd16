/**
 * The `walstream` command. `main(argv, io)` runs one command and resolves with its exit status
 * (0 done, 1 failed, 2 bad usage); `run()` is the process entry (runtime/cli/walstream.js) that wires
 * stdout, signals and the exit status.
 */
import { ConfigError } from '../../config';
import { systemClock } from '../clock';
import { UsageError } from './args';
import { collectionsCommand, configCommand, demoCommand, describeError, insertCommand, statusCommand, tailCommand, transferCommand } from './commands';
import { DEFAULT_URL } from './http-client';
import { println, type CliIo } from './io';
import { startCommand } from './start';
import { clusterRoleCommand } from './cluster';

export const USAGE = `usage: walstream <command> [options]

Server:
  start [--config FILE] [--<setting> VALUE ...]   run standalone with the HTTP gateway
  config [--json|--markdown]                      the settings: path, type, default, env, flag
  config --effective [--config FILE] [--<setting> VALUE ...]
                                                  the configuration start would run with
  coordinator [--redis.url URL] [--nodeId ID] [--<setting> VALUE ...]
                                                  a cluster coordinator candidate (leader-elected)
  node [--redis.url URL] [--nodeId ID] [--wal.backend redis|local] [--<setting> VALUE ...]
                                                  a cluster streaming node

Client (talks to a running standalone server over HTTP: --url URL, default ${DEFAULT_URL}; or to a
cluster through Redis: --redis URL [--redis-prefix P]; --json for JSON output; --timeout-ms MS
deadline of each call):
  status                                          nodes and pchannels (owner, term, state, last timetick, buffer)
  collections list | describe NAME | drop NAME | flush NAME
  collections create NAME (--schema JSON|@FILE | --dim N [--pk int64|varchar]) [--shards N]
  insert COLLECTION (--rows JSON | --file PATH|-) [--partition P] [--batch N] [--idempotency-key K]
                                                  rows: a JSON array of row objects, or NDJSON (one per line)
  append ...                                      same as insert
  tail VCHANNEL | --collection NAME [--shard N] | --pchannel NAME
       [--policy all|latest|startFrom|startAfter] [--id MESSAGE_ID] [--types Insert,Delete]
       [--timetick-gt T] [--timetick-gte T] [--timeticks] [--limit N]
                                                  follow the log (Ctrl-C ends); --json prints NDJSON
  transfer PCHANNEL [--to NODE]                   move a pchannel to another streaming node
  demo [--rows N] [--batch N] [--shards N] [--dim N] [--writers N] [--transfers N] [--collection NAME] [--keep]
                                                  scripted workload + exactly-once/order check; exit 1 if it fails
  help                                            this text`;

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'start':
        return await startCommand(args, io);
      case 'coordinator':
      case 'node':
        return await clusterRoleCommand(command, args, io);
      case 'status':
        return await statusCommand(args, io);
      case 'insert':
      case 'append':
        return await insertCommand(args, io);
      case 'tail':
        return await tailCommand(args, io);
      case 'transfer':
        return await transferCommand(args, io);
      case 'collections':
        return await collectionsCommand(args, io);
      case 'demo':
        return await demoCommand(args, io);
      case 'config':
        return configCommand(args, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        println(command === undefined ? io.stderr : io.stdout, USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      println(io.stderr, `walstream: ${e.message}`);
      println(io.stderr, `run 'walstream help' for usage`);
      return 2;
    }
    println(io.stderr, `walstream: ${describeError(e)}`);
    return 1;
  }
}

/** Process entry: real streams and signals; exits with the command's status. */
export function run(argv: readonly string[] = process.argv.slice(2)): void {
  const interrupt = new AbortController();
  const isStart = argv[0] === 'start';
  if (!isStart) {
    // First Ctrl-C: the command ends cleanly (tail stops, demo reports); a second one exits.
    process.on('SIGINT', () => {
      if (interrupt.signal.aborted) process.exit(130);
      interrupt.abort();
    });
  }
  const io: CliIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    clock: systemClock,
    interrupt: interrupt.signal,
    onSignal: (handler) => {
      process.on('SIGINT', () => handler('SIGINT'));
      process.on('SIGTERM', () => handler('SIGTERM'));
    },
    exit: (code) => process.exit(code),
  };
  main(argv, io).then(
    (code) => {
      // Let stdout drain before exiting (a pipe may still hold the last lines).
      process.stdout.write('', () => process.exit(code));
    },
    (e: unknown) => {
      process.stderr.write(`walstream: ${describeError(e)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) run();
