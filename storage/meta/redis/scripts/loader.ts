/**
 * The Lua scripts of the Redis MetaStore: the `<name>-<numKeys>.lua` files next to this file,
 * found relative to `__dirname` so the same code works from the source tree and from a compiled
 * `dist/` (whose build copies the `.lua` files; tsc does not). Loading and registration:
 * storage/redis/scripts.ts.
 */
import type { Redis } from 'ioredis';
import * as generic from '../../../redis/scripts';

export type { ScriptArg } from '../../../redis/scripts';

/** Every script the Redis MetaStore runs, by name (the file is `<name>-<numKeys>.lua`). */
export const META_SCRIPT_NAMES = [
  'put',
  'delete',
  'owner-write',
  'leader-write',
  'bump-term',
  'grant-lease',
  'renew-lease',
  'expire-leases',
  'campaign',
  'renew-leader',
  'resign-leader',
  'bump-version',
] as const;
export type MetaScriptName = (typeof META_SCRIPT_NAMES)[number];

export type ScriptSource = generic.ScriptSource<MetaScriptName>;
export type MetaScripts = generic.ScriptRunner<MetaScriptName>;

export const SCRIPTS_DIR = __dirname;

function setAt(dir: string): generic.ScriptSet<MetaScriptName> {
  return { names: META_SCRIPT_NAMES, dir, commandPrefix: 'walstreamMeta', sourceDir: 'storage/meta/redis/scripts' };
}

/** Reads and checks the scripts once per process (per directory). */
export function loadScriptSources(dir: string = SCRIPTS_DIR): ReadonlyMap<MetaScriptName, ScriptSource> {
  return generic.loadScriptSources(setAt(dir));
}

/** ioredis command name of a script: `walstreamMeta` + PascalCase, so it never shadows a Redis command. */
export function commandName(name: MetaScriptName): string {
  return generic.commandName(setAt(SCRIPTS_DIR), name);
}

/** Registers every script on `client` (idempotent per client) and returns the runner. */
export function registerScripts(client: Redis, dir: string = SCRIPTS_DIR): MetaScripts {
  return generic.registerScripts(client, setAt(dir));
}
