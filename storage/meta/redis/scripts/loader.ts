/**
 * Loads the Lua scripts next to this file (`<name>-<numKeys>.lua`) and registers them on an ioredis
 * client with `defineCommand` (EVALSHA, falling back to EVAL once per connection).
 *
 * The scripts are found relative to `__dirname`, so the same code works from the source tree
 * (ts-jest, ts-node) and from a compiled `dist/storage/meta/redis/scripts/` — provided the build
 * copies the `.lua` files there (tsc does not; see storage/meta/README.md).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { unrecoverable } from '../../../../runtime/errors';

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

export interface ScriptSource {
  readonly name: MetaScriptName;
  readonly file: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

export type ScriptArg = string | number | Buffer;

/** Runs the registered scripts; checks the key count against the file name. */
export interface MetaScripts {
  run(name: MetaScriptName, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown>;
}

export const SCRIPTS_DIR = __dirname;
const FILE_RE = /^([a-z][a-z0-9-]*)-(\d+)\.lua$/;

let cached: { dir: string; sources: ReadonlyMap<MetaScriptName, ScriptSource> } | undefined;

/** Reads and checks the scripts once per process (per directory). */
export function loadScriptSources(dir: string = SCRIPTS_DIR): ReadonlyMap<MetaScriptName, ScriptSource> {
  if (cached?.dir === dir) return cached.sources;
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.lua'));
  } catch (e) {
    throw unrecoverable(`cannot read the Redis meta scripts directory ${dir}: ${String(e)}`, { dir });
  }
  const known = new Set<string>(META_SCRIPT_NAMES);
  const sources = new Map<MetaScriptName, ScriptSource>();
  for (const file of files) {
    const m = FILE_RE.exec(file);
    const name = m?.[1];
    if (!m || name === undefined || !known.has(name)) {
      throw unrecoverable(`unexpected Lua script ${file} in ${dir} (expected <name>-<numKeys>.lua with a known name)`, { dir, file });
    }
    const lua = readFileSync(join(dir, file), 'utf8');
    checkHeader(file, lua, Number(m[2]));
    if (sources.has(name as MetaScriptName)) throw unrecoverable(`two Lua scripts named ${name} in ${dir}`, { dir, file });
    sources.set(name as MetaScriptName, { name: name as MetaScriptName, file, numberOfKeys: Number(m[2]), lua });
  }
  const missing = META_SCRIPT_NAMES.filter((n) => !sources.has(n));
  if (missing.length > 0) {
    throw unrecoverable(
      `Redis meta Lua scripts missing in ${dir}: ${missing.join(', ')}. ` +
        `A compiled build must copy storage/meta/redis/scripts/*.lua next to the compiled loader (tsc does not copy them).`,
      { dir, missing },
    );
  }
  cached = { dir, sources };
  return sources;
}

/**
 * The header comment must describe the interface: `Input:` naming KEYS[1..numKeys] (and no more) and
 * `Output:` — so the file name, the header and the loader's key count cannot drift apart.
 */
function checkHeader(file: string, lua: string, numberOfKeys: number): void {
  const header = /^--\[\[([\s\S]*?)\]\]/.exec(lua)?.[1];
  if (header === undefined) throw unrecoverable(`Lua script ${file} does not start with a --[[ header ]] comment`, { file });
  for (const part of ['Input:', 'Output:']) {
    if (!header.includes(part)) throw unrecoverable(`Lua script ${file}: header has no "${part}" section`, { file });
  }
  for (let i = 1; i <= numberOfKeys + 1; i++) {
    const described = header.includes(`KEYS[${i}]`);
    if (described !== i <= numberOfKeys) {
      throw unrecoverable(`Lua script ${file}: header must describe exactly KEYS[1..${numberOfKeys}]`, { file });
    }
  }
}

/** ioredis command name of a script: `walstreamMeta` + PascalCase, so it never shadows a Redis command. */
export function commandName(name: MetaScriptName): string {
  return 'walstreamMeta' + name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
}

/** Registers every script on `client` (idempotent per client) and returns the runner. */
export function registerScripts(client: Redis, dir: string = SCRIPTS_DIR): MetaScripts {
  const sources = loadScriptSources(dir);
  const commands = client as unknown as Record<string, ((...args: ScriptArg[]) => Promise<unknown>) | undefined>;
  for (const s of sources.values()) {
    if (commands[commandName(s.name)] === undefined) client.defineCommand(commandName(s.name), { lua: s.lua, numberOfKeys: s.numberOfKeys });
  }
  return {
    run(name, keys, args) {
      const source = sources.get(name);
      const fn = commands[commandName(name)];
      if (!source || !fn) return Promise.reject(unrecoverable(`Lua script ${name} is not registered`, { name }));
      if (keys.length !== source.numberOfKeys) {
        return Promise.reject(unrecoverable(`Lua script ${source.file} takes ${source.numberOfKeys} keys, got ${keys.length}`, { name }));
      }
      return fn.call(client, ...keys, ...args);
    },
  };
}
