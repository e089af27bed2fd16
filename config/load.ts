/**
 * Loading a WalstreamConfig: built-in defaults < `defaults` option < JSON file < env (`WALSTREAM_*`)
 * < flags (`--a.b=v`). Every source is checked against CONFIG_SCHEMA; all problems are gathered and
 * thrown together as one ConfigError.
 *
 * Naming (one rule, from the field path):
 * - env: `WALSTREAM_` + path segments in SCREAMING_SNAKE joined by `__`:
 *   `wal.local.fsync` → `WALSTREAM_WAL__LOCAL__FSYNC`, `http.bodyLimitBytes` → `WALSTREAM_HTTP__BODY_LIMIT_BYTES`.
 * - flags: the dotted path: `--wal.local.fsync=interval` or `--wal.local.fsync interval`; a boolean
 *   may be given bare (`--objectStore.s3.useSSL`) or negated (`--no-objectStore.s3.useSSL`).
 * - the config file comes from the `file` option, else `--config <path>`, else `WALSTREAM_CONFIG`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { ConfigError, type ConfigIssue } from './errors';
import {
  CONFIG_FIELDS,
  CONFIG_SECTIONS,
  FIELD_BY_ENV,
  FIELD_BY_PATH,
  TOP_LEVEL_ENV_SEGMENTS,
  getAtPath,
  setAtPath,
  type ConfigField,
} from './fields';
import { CROSS_CHECKS, SCHEMA_ROOT, type WalstreamConfig } from './schema';
import { ENV_PREFIX, checkLeaf, closest, expectedOf, formatGot, isDerived, type AnySectionSpec, type DeriveContext } from './spec';

/** Env var naming the config file (not a setting). */
export const CONFIG_FILE_ENV = `${ENV_PREFIX}CONFIG`;
/** Flag naming the config file (not a setting). */
export const CONFIG_FILE_FLAG = 'config';

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface LoadConfigOptions {
  /** JSON file. Default: `flags.config`, else `env.WALSTREAM_CONFIG`, else none. */
  file?: string;
  /** Environment to read `WALSTREAM_*` from. Not read when omitted: pass `process.env` explicitly. */
  env?: NodeJS.ProcessEnv;
  /** Dotted path → value, as returned by parseFlags(); a leading `--` is tolerated. */
  flags?: Record<string, string | boolean>;
  /** Values that replace the built-in defaults (below file, env and flags); checked like a file. */
  defaults?: DeepPartial<WalstreamConfig>;
  /** For derived defaults (`nodeId`). Default os.hostname(). */
  hostname?: string;
  /** For derived defaults (`nodeId`). Default process.pid. */
  pid?: number;
}

interface RawValue {
  readonly raw: unknown;
  readonly source: string;
  /** From env or flags: coerced by the field's type. */
  readonly fromString: boolean;
}

type Layer = Map<string, RawValue>;

const BUILT_IN = 'built-in default';
const DERIVED = 'derived default';

/**
 * Builds and validates the configuration. Throws ConfigError listing every bad setting (path, what
 * was expected, what was found, where it came from). The result is a fresh object.
 */
export function loadConfig(opts: LoadConfigOptions = {}): WalstreamConfig {
  const issues: ConfigIssue[] = [];
  const env = opts.env ?? {};
  const flags = normalizeFlags(opts.flags ?? {});

  const defaultsLayer: Layer = new Map();
  if (opts.defaults !== undefined) readObject(opts.defaults, 'defaults', defaultsLayer, issues);

  const fileLayer: Layer = new Map();
  const file = resolveFile(opts.file, flags, env, issues);
  if (file !== undefined) readFile(file, fileLayer, issues);

  const envLayer = readEnv(env, issues);
  const flagLayer = readFlags(flags, issues);

  const merged: Layer = new Map();
  for (const layer of [defaultsLayer, fileLayer, envLayer, flagLayer]) for (const [p, v] of layer) merged.set(p, v);

  // Fields: given values checked and coerced; missing ones take their built-in default.
  const values = new Map<string, unknown>();
  const sources = new Map<string, string>();
  const derived: ConfigField[] = [];
  for (const field of CONFIG_FIELDS) {
    const given = merged.get(field.path);
    if (given !== undefined) {
      const r = checkLeaf(field.spec, given.raw, given.fromString);
      if (r.ok) values.set(field.path, r.value);
      else issues.push({ path: field.path, expected: expectedOf(field.spec), got: formatGot(given.raw, field.spec.secret), source: given.source });
      sources.set(field.path, given.source);
    } else if (isDerived(field.spec.default)) {
      derived.push(field);
    } else {
      values.set(field.path, field.spec.default);
      sources.set(field.path, BUILT_IN);
    }
  }

  // Derived defaults read non-derived fields; they run only when those are valid.
  const base = build(values);
  const ctx: DeriveContext<unknown> = { config: base, hostname: opts.hostname ?? os.hostname(), pid: opts.pid ?? process.pid };
  for (const field of derived) {
    const d = field.spec.default;
    if (!isDerived(d) || !d.dependsOn.every((p) => values.has(p))) continue;
    const raw = d.derive(ctx);
    const r = checkLeaf(field.spec, raw, false);
    if (r.ok) values.set(field.path, r.value);
    else issues.push({ path: field.path, expected: expectedOf(field.spec), got: formatGot(raw, field.spec.secret), source: `${DERIVED} from ${d.dependsOn.join(', ')}` });
    sources.set(field.path, DERIVED);
  }

  const config = build(values) as unknown as WalstreamConfig;
  for (const rule of CROSS_CHECKS) {
    if (!rule.paths.every((p) => values.has(p))) continue;
    const expected = rule.check(config);
    if (expected === undefined) continue;
    const [p] = rule.paths;
    issues.push({
      path: p,
      expected,
      got: formatGot(values.get(p), FIELD_BY_PATH.get(p)?.spec.secret),
      source: rule.paths.map((q) => `${q} from ${sources.get(q) ?? BUILT_IN}`).join(', '),
    });
  }

  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** The configuration with nothing but built-in (and derived) defaults. */
export function defaultConfig(opts: Pick<LoadConfigOptions, 'hostname' | 'pid'> = {}): WalstreamConfig {
  return loadConfig(opts);
}

/**
 * Parses command-line arguments into dotted path → value (for loadConfig's `flags`).
 * Accepts `--path=value`, `--path value`, and for boolean settings a bare `--path` (true) or
 * `--no-path` (false). A bare unknown `--name` not followed by a value is `true` (e.g. `--help`);
 * the caller removes the subcommand first. Positional or single-dash arguments are a ConfigError.
 * Unknown names are kept and reported by loadConfig (so `--help` can be looked at first).
 */
export function parseFlags(argv: readonly string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  const issues: ConfigIssue[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--') || arg.length === 2 || arg[2] === '=') {
      issues.push({ path: '', expected: '--<setting path>=<value> or --<setting path> <value>', got: formatGot(arg), source: `argv[${i}]` });
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq > 0) {
      out[arg.slice(2, eq)] = arg.slice(eq + 1);
      continue;
    }
    const name = arg.slice(2);
    const next = argv[i + 1];
    const field = FIELD_BY_PATH.get(name);
    if (field?.spec.kind === 'bool') {
      if (next !== undefined && /^(true|false)$/i.test(next)) {
        out[name] = next;
        i++;
      } else {
        out[name] = true;
      }
      continue;
    }
    if (field === undefined && name.startsWith('no-') && FIELD_BY_PATH.get(name.slice(3))?.spec.kind === 'bool') {
      out[name.slice(3)] = false;
      continue;
    }
    if (next !== undefined && !next.startsWith('--')) {
      out[name] = next;
      i++;
    } else {
      out[name] = true;
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return out;
}

/**
 * A copy safe to log: secret settings become `***` (when set) and passwords inside URL settings
 * (`redis.url`) are masked.
 */
export function redactConfig(config: WalstreamConfig): WalstreamConfig {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const field of CONFIG_FIELDS) {
    const v = getAtPath(copy, field.path);
    if (typeof v !== 'string' || v === '') continue;
    if (field.spec.kind === 'string' && field.spec.secret) setAtPath(copy, field.path, '***');
    else if (field.spec.kind === 'string' && field.spec.urlProtocols) setAtPath(copy, field.path, maskUrlPassword(v));
  }
  return copy as unknown as WalstreamConfig;
}

function maskUrlPassword(s: string): string {
  try {
    const url = new URL(s);
    if (url.password === '') return s;
    url.password = '***';
    return url.toString();
  } catch {
    return s;
  }
}

// ---- sources ----

function normalizeFlags(flags: Record<string, string | boolean>): Map<string, string | boolean> {
  const out = new Map<string, string | boolean>();
  for (const [k, v] of Object.entries(flags)) out.set(k.replace(/^--/, ''), v);
  return out;
}

function resolveFile(file: string | undefined, flags: Map<string, string | boolean>, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): string | undefined {
  if (file !== undefined) return file;
  const flag = flags.get(CONFIG_FILE_FLAG);
  if (flag !== undefined) {
    if (typeof flag === 'string' && flag !== '') return flag;
    issues.push({ path: '', expected: 'a config file path', got: formatGot(flag), source: `flag --${CONFIG_FILE_FLAG}` });
    return undefined;
  }
  const fromEnv = env[CONFIG_FILE_ENV];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

function readFile(file: string, layer: Layer, issues: ConfigIssue[]): void {
  const source = `file ${file}`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    issues.push({ path: '', expected: 'a readable JSON file', got: code ?? String(e), source });
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    issues.push({ path: '', expected: 'valid JSON', got: e instanceof Error ? e.message : String(e), source });
    return;
  }
  readObject(parsed, source, layer, issues);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks a nested object (file or `defaults`) against the schema; unknown keys are issues. */
function readObject(obj: unknown, source: string, layer: Layer, issues: ConfigIssue[]): void {
  if (!isPlainObject(obj)) {
    issues.push({ path: '', expected: 'a JSON object', got: formatGot(obj), source });
    return;
  }
  const walk = (value: Record<string, unknown>, section: AnySectionSpec, prefix: string): void => {
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue; // `defaults` built with spreads
      const p = prefix === '' ? key : `${prefix}.${key}`;
      const spec = Object.prototype.hasOwnProperty.call(section.fields, key) ? section.fields[key] : undefined;
      if (spec === undefined) {
        issues.push({ path: p, expected: unknownKeyExpectation(key, section, prefix), got: formatGot(v), source });
      } else if (spec.kind === 'section') {
        if (isPlainObject(v)) walk(v, spec, p);
        else issues.push({ path: p, expected: `an object with keys ${Object.keys(spec.fields).join('|')}`, got: formatGot(v), source });
      } else {
        layer.set(p, { raw: v, source, fromString: false });
      }
    }
  };
  walk(obj, SCHEMA_ROOT, '');
}

function unknownKeyExpectation(key: string, section: AnySectionSpec, prefix: string): string {
  const keys = Object.keys(section.fields);
  const near = closest(key, keys);
  const where = prefix === '' ? 'the top level' : prefix;
  return near !== undefined
    ? `a known setting (did you mean ${prefix === '' ? near : `${prefix}.${near}`}?)`
    : `a known setting (${where} has ${keys.join('|')})`;
}

function readEnv(env: NodeJS.ProcessEnv, issues: ConfigIssue[]): Layer {
  const layer: Layer = new Map();
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith(ENV_PREFIX) || name === CONFIG_FILE_ENV || value === undefined || value === '') continue;
    const field = FIELD_BY_ENV.get(name);
    if (field !== undefined) {
      layer.set(field.path, { raw: value, source: `env ${name}`, fromString: true });
    } else if (looksLikeSetting(name)) {
      const near = closest(name, FIELD_BY_ENV.keys());
      issues.push({
        path: envNameToPath(name),
        expected: near !== undefined ? `a known setting (did you mean ${near}?)` : 'a known setting (WALSTREAM_ + path in SCREAMING_SNAKE, sections joined by __)',
        got: formatGot(value),
        source: `env ${name}`,
      });
    }
  }
  return layer;
}

/**
 * Whether an unknown WALSTREAM_ variable was meant as a setting (then it is an error) rather than
 * belonging to something else (then it is ignored): its first segment names a top-level key, starts
 * with a section's name followed by `_` (a missing `__`), or is a near-typo of a top-level key.
 */
function looksLikeSetting(name: string): boolean {
  const first = name.slice(ENV_PREFIX.length).split('__')[0] ?? '';
  if (TOP_LEVEL_ENV_SEGMENTS.has(first)) return true;
  for (const top of TOP_LEVEL_ENV_SEGMENTS) if (first.startsWith(`${top}_`)) return true;
  return closest(first, TOP_LEVEL_ENV_SEGMENTS) !== undefined;
}

/** `WALSTREAM_HTTP__BODY_LIMIT` → `http.bodyLimit` (for reporting an unknown variable). */
function envNameToPath(name: string): string {
  return name
    .slice(ENV_PREFIX.length)
    .split('__')
    .map((seg) => seg.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()))
    .join('.');
}

function readFlags(flags: Map<string, string | boolean>, issues: ConfigIssue[]): Layer {
  const layer: Layer = new Map();
  for (const [name, value] of flags) {
    if (name === CONFIG_FILE_FLAG) continue;
    const field = FIELD_BY_PATH.get(name);
    if (field !== undefined) {
      layer.set(field.path, { raw: value, source: `flag --${name}`, fromString: true });
      continue;
    }
    const section = CONFIG_SECTIONS.get(name);
    const firstKey = section === undefined ? undefined : Object.keys(section.fields)[0];
    const near = closest(name, FIELD_BY_PATH.keys());
    issues.push({
      path: name,
      expected:
        firstKey !== undefined
          ? `a setting, not a section (e.g. --${name}.${firstKey})`
          : near !== undefined
            ? `a known setting (did you mean --${near}?)`
            : 'a known setting (--<dotted path>, see describeConfig())',
      got: formatGot(value),
      source: `flag --${name}`,
    });
  }
  return layer;
}

/** Nested object from path → value, in schema order, with every section present. */
function build(values: ReadonlyMap<string, unknown>): Record<string, unknown> {
  const walk = (section: AnySectionSpec, prefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(section.fields)) {
      const p = prefix === '' ? key : `${prefix}.${key}`;
      if (spec.kind === 'section') out[key] = walk(spec, p);
      else if (values.has(p)) out[key] = values.get(p);
    }
    return out;
  };
  return walk(SCHEMA_ROOT, '');
}
