/**
 * The Lua scripts of the Redis Streams WAL backend: the `.lua` files next to this file (the build
 * copies them next to the compiled loader). Loading and registration: storage/redis/scripts.ts.
 */
import type { ScriptSet } from '../../../redis/scripts';

export { commandName, loadScriptSources, registerScripts, type ScriptArg, type ScriptRunner, type ScriptSource } from '../../../redis/scripts';

export const WAL_SCRIPT_NAMES = ['open', 'append', 'truncate'] as const;
export type WalScriptName = (typeof WAL_SCRIPT_NAMES)[number];

export const WAL_SCRIPTS: ScriptSet<WalScriptName> = { names: WAL_SCRIPT_NAMES, dir: __dirname, commandPrefix: 'walstreamWal', sourceDir: 'storage/wal/redis/scripts' };
