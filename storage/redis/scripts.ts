/**
 * The one Lua script loader: a script set is a folder of `<name>-<numKeys>.lua` files, each with a
 * `--[[ … Input: KEYS[1..numKeys] … Output: … ]]` header; the loader checks names, key counts and
 * headers, and registers them on an ioredis client with `defineCommand` (EVALSHA, falling back to
 * EVAL). Used by the Redis MetaStore and the Redis Streams WAL backend, each with its own set.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { unrecoverable } from '../../runtime/errors';

export type ScriptArg = string | number | Buffer;

/** A directory of `<name>-<numKeys>.lua` files and the ioredis command prefix they are registered under. */
export interface ScriptSet<Name extends string> {
  readonly names: readonly Name[];
  readonly dir: string;
  /** Prefix of the ioredis command names (`walstreamWal` → `walstreamWalAppend`); never shadows a Redis command. */
  readonly commandPrefix: string;
  /** The source folder of the scripts, named when a build forgot to copy them. */
  readonly sourceDir: string;
}

export interface ScriptSource<Name extends string> {
  readonly name: Name;
  readonly file: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Runs the registered scripts; checks the key count against the file name. */
export interface ScriptRunner<Name extends string> {
  run(name: Name, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown>;
}

/** Every script the Redis WAL backend runs (the file is `<name>-<numKeys>.lua`). */
const FILE_RE = /^([a-z][a-z0-9-]*)-(\d+)\.lua$/;
const cache = new Map<string, ReadonlyMap<string, ScriptSource<string>>>();

/** Reads and checks a script set once per process. */
export function loadScriptSources<Name extends string>(set: ScriptSet<Name>): ReadonlyMap<Name, ScriptSource<Name>> {
  const cached = cache.get(set.dir);
  if (cached) return cached as ReadonlyMap<Name, ScriptSource<Name>>;
  let files: string[];
  try {
    files = readdirSync(set.dir).filter((f) => f.endsWith('.lua'));
  } catch (e) {
    throw unrecoverable(`cannot read the Lua scripts directory ${set.dir}: ${String(e)}`, { dir: set.dir });
  }
  const known = new Set<string>(set.names);
  const sources = new Map<Name, ScriptSource<Name>>();
  for (const file of files) {
    const m = FILE_RE.exec(file);
    const name = m?.[1];
    if (!m || name === undefined || !known.has(name)) {
      throw unrecoverable(`unexpected Lua script ${file} in ${set.dir} (expected <name>-<numKeys>.lua with a known name)`, { dir: set.dir, file });
    }
    const lua = readFileSync(join(set.dir, file), 'utf8');
    checkHeader(file, lua, Number(m[2]));
    if (sources.has(name as Name)) throw unrecoverable(`two Lua scripts named ${name} in ${set.dir}`, { dir: set.dir, file });
    sources.set(name as Name, { name: name as Name, file, numberOfKeys: Number(m[2]), lua });
  }
  const missing = set.names.filter((n) => !sources.has(n));
  if (missing.length > 0) {
    throw unrecoverable(
      `Lua scripts missing in ${set.dir}: ${missing.join(', ')}. ` +
        `A compiled build must copy ${set.sourceDir}/*.lua next to the compiled loader (tsc does not copy them; npm run build does).`,
      { dir: set.dir, missing },
    );
  }
  cache.set(set.dir, sources as ReadonlyMap<string, ScriptSource<string>>);
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
    if (header.includes(`KEYS[${i}]`) !== i <= numberOfKeys) {
      throw unrecoverable(`Lua script ${file}: header must describe exactly KEYS[1..${numberOfKeys}]`, { file });
    }
  }
}

/** ioredis command name of a script: prefix + PascalCase (`append` → `walstreamWalAppend`). */
export function commandName(set: ScriptSet<string>, name: string): string {
  return set.commandPrefix + name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
}

/** Registers every script of `set` on `client` (idempotent per client) and returns the runner. */
export function registerScripts<Name extends string>(client: Redis, set: ScriptSet<Name>): ScriptRunner<Name> {
  const sources = loadScriptSources(set);
  const commands = client as unknown as Record<string, ((...args: ScriptArg[]) => Promise<unknown>) | undefined>;
  for (const s of sources.values()) {
    const command = commandName(set, s.name);
    if (commands[command] === undefined) client.defineCommand(command, { lua: s.lua, numberOfKeys: s.numberOfKeys });
  }
  return {
    run(name, keys, args) {
      const source = sources.get(name);
      const fn = commands[commandName(set, name)];
      if (!source || !fn) return Promise.reject(unrecoverable(`Lua script ${name} is not registered`, { name }));
      if (keys.length !== source.numberOfKeys) {
        return Promise.reject(unrecoverable(`Lua script ${source.file} takes ${source.numberOfKeys} keys, got ${keys.length}`, { name }));
      }
      return fn.call(client, ...keys, ...args);
    },
  };
}
