/**
 * The machinery behind config/schema.ts: field specs (type, constraint, default, doc), the check
 * that turns a raw value (typed from a JSON file, a string from env or flags) into a field's value,
 * the text that says what a field expects, and the env/flag names of a field path.
 *
 * Nothing here knows a particular field; schema.ts declares them.
 */

/** What a number means, for documentation (`describeConfig`) only. */
export type Unit = 'ms' | 'bytes' | 'count';

/** A default computed at load time from other, already resolved fields (e.g. `nodeId` from `mode`). */
export interface DerivedDefault<T, C> {
  /** Paths the derivation reads; it runs only when all of them are valid. Must not be derived themselves. */
  readonly dependsOn: readonly string[];
  readonly derive: (ctx: DeriveContext<C>) => T;
  /** How the default reads in documentation, e.g. `<dataDir>/objects`. */
  readonly describe: string;
}

export interface DeriveContext<C> {
  /** The configuration with every non-derived field resolved (derived fields are not filled yet). */
  readonly config: C;
  readonly hostname: string;
  readonly pid: number;
}

interface LeafCommon<T, C> {
  /** Meaning of the field (and its unit when the name does not say it). Shown by describeConfig(). */
  readonly doc: string;
  readonly default: T | DerivedDefault<T, C>;
  readonly unit?: Unit;
  /** Never printed: describeConfig(), ConfigError and redactConfig() show `***`. */
  readonly secret?: boolean;
}

export interface IntSpec<C> extends LeafCommon<number, C> {
  readonly kind: 'int';
  readonly min: number;
  readonly max?: number;
  /** Extra words after the range, e.g. `0 = any free port`. */
  readonly note?: string;
}

export interface BoolSpec<C> extends LeafCommon<boolean, C> {
  readonly kind: 'bool';
}

export interface StringSpec<C> extends LeafCommon<string, C> {
  readonly kind: 'string';
  /** Empty strings are refused. */
  readonly nonEmpty?: boolean;
  /** The value must match; `describe` says what that means, e.g. `letters, digits, '-', '_'`. */
  readonly pattern?: { readonly re: RegExp; readonly describe: string };
  /** The value must be a URL with one of these protocols (e.g. `redis:`). */
  readonly urlProtocols?: readonly string[];
}

export interface EnumSpec<T extends string, C> extends LeafCommon<T, C> {
  readonly kind: 'enum';
  readonly values: readonly T[];
}

export interface SectionSpec<T, C> {
  readonly kind: 'section';
  readonly doc: string;
  readonly fields: FieldsOf<T, C>;
}

/**
 * The spec a field of type T must have. `[T]` stops distribution over unions, so a string-literal
 * union such as `'local' | 's3'` maps to one EnumSpec of that union.
 */
export type SpecOf<T, C> = [T] extends [boolean]
  ? BoolSpec<C>
  : [T] extends [number]
    ? IntSpec<C>
    : [T] extends [string]
      ? string extends T
        ? StringSpec<C>
        : EnumSpec<T, C>
      : [T] extends [object]
        ? SectionSpec<T, C>
        : never;

/** Every key of T, each with the spec its type calls for: the compiler checks the schema is complete. */
export type FieldsOf<T, C> = { readonly [K in keyof T]-?: SpecOf<T[K], C> };

// ---- runtime view (untyped walk over the schema) ----

export type AnyLeafSpec = IntSpec<unknown> | BoolSpec<unknown> | StringSpec<unknown> | EnumSpec<string, unknown>;
export type AnyFieldSpec = AnyLeafSpec | AnySectionSpec;
export interface AnySectionSpec {
  readonly kind: 'section';
  readonly doc: string;
  readonly fields: Readonly<Record<string, AnyFieldSpec>>;
}

export function isDerived(d: unknown): d is DerivedDefault<unknown, unknown> {
  return typeof d === 'object' && d !== null && 'derive' in d;
}

// ---- what a field expects ----

function fmtInt(n: number): string {
  return Number.isFinite(n) ? String(n) : '∞';
}

/** Text saying what a field accepts, e.g. `integer ≥ 1`, `one of always|interval`. Used in errors and docs. */
export function expectedOf(spec: AnyLeafSpec): string {
  switch (spec.kind) {
    case 'int': {
      const range = spec.max === undefined ? `integer ≥ ${fmtInt(spec.min)}` : `integer in [${fmtInt(spec.min)}, ${fmtInt(spec.max)}]`;
      return spec.note ? `${range} (${spec.note})` : range;
    }
    case 'bool':
      return 'boolean (true|false)';
    case 'enum':
      return `one of ${spec.values.join('|')}`;
    case 'string':
      if (spec.urlProtocols) return `URL with protocol ${spec.urlProtocols.map((p) => p.replace(/:$/, '')).join('|')}`;
      if (spec.pattern) return `string of ${spec.pattern.describe}`;
      return spec.nonEmpty ? 'non-empty string' : 'string';
  }
}

// ---- checking one raw value ----

export type CheckResult = { ok: true; value: unknown } | { ok: false };

const INT_RE = /^[+-]?\d+$/;
const TRUE_WORDS: ReadonlySet<string> = new Set(['true', '1']);
const FALSE_WORDS: ReadonlySet<string> = new Set(['false', '0']);

/**
 * Checks a raw value against a leaf spec. `fromString` marks values from env or flags: those are
 * strings (or `true` for a bare flag) and are coerced by the field's type; values from a JSON file or
 * from code must already have the right JSON type.
 */
export function checkLeaf(spec: AnyLeafSpec, raw: unknown, fromString: boolean): CheckResult {
  switch (spec.kind) {
    case 'int': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (fromString && typeof raw === 'string' && INT_RE.test(raw)) n = Number(raw);
      else return { ok: false };
      if (!Number.isSafeInteger(n) || n < spec.min || (spec.max !== undefined && n > spec.max)) return { ok: false };
      return { ok: true, value: n };
    }
    case 'bool': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      if (fromString && typeof raw === 'string') {
        const w = raw.toLowerCase();
        if (TRUE_WORDS.has(w)) return { ok: true, value: true };
        if (FALSE_WORDS.has(w)) return { ok: true, value: false };
      }
      return { ok: false };
    }
    case 'enum':
      return typeof raw === 'string' && spec.values.includes(raw) ? { ok: true, value: raw } : { ok: false };
    case 'string': {
      if (typeof raw !== 'string') return { ok: false };
      if (spec.nonEmpty && raw.length === 0) return { ok: false };
      if (spec.pattern && !spec.pattern.re.test(raw)) return { ok: false };
      if (spec.urlProtocols) {
        let url: URL;
        try {
          url = new URL(raw);
        } catch {
          return { ok: false };
        }
        if (!spec.urlProtocols.includes(url.protocol)) return { ok: false };
      }
      return { ok: true, value: raw };
    }
  }
}

// ---- printing values ----

const MAX_GOT_CHARS = 80;

/** A raw value as it appears in an error: JSON-ish, shortened, `***` for secrets. */
export function formatGot(raw: unknown, secret = false): string {
  if (raw === undefined) return 'nothing';
  if (secret) return '***';
  let s: string;
  try {
    s = JSON.stringify(raw) ?? String(raw);
  } catch {
    s = String(raw);
  }
  return s.length > MAX_GOT_CHARS ? `${s.slice(0, MAX_GOT_CHARS - 1)}…` : s;
}

const MIB = 1024 * 1024;

/** A default as documentation shows it: `8388608 (8 MiB)`, `3000 (3 s)`, `"always"`. */
export function formatDefault(spec: AnyLeafSpec): string {
  const d = spec.default;
  if (isDerived(d)) return d.describe;
  if (spec.secret && d !== '') return '***';
  if (typeof d === 'number') {
    if (spec.unit === 'bytes' && d >= 1024) {
      const human = d % MIB === 0 ? `${d / MIB} MiB` : d % 1024 === 0 ? `${d / 1024} KiB` : '';
      return human ? `${d} (${human})` : String(d);
    }
    if (spec.unit === 'ms' && d >= 1000 && d % 1000 === 0) {
      const human = d % 3_600_000 === 0 ? `${d / 3_600_000} h` : d % 60_000 === 0 ? `${d / 60_000} min` : `${d / 1000} s`;
      return `${d} (${human})`;
    }
    return String(d);
  }
  return JSON.stringify(d);
}

// ---- names ----

/** The env-var prefix of every setting. */
export const ENV_PREFIX = 'WALSTREAM_';

/** One camelCase path segment in SCREAMING_SNAKE: `bodyLimitBytes` → `BODY_LIMIT_BYTES`, `useSSL` → `USE_SSL`. */
export function screamingSnake(segment: string): string {
  return segment
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toUpperCase();
}

/** `wal.local.fsync` → `WALSTREAM_WAL__LOCAL__FSYNC`. */
export function envNameOf(path: string): string {
  return ENV_PREFIX + path.split('.').map(screamingSnake).join('__');
}

/** `wal.local.fsync` → `--wal.local.fsync`. */
export function flagNameOf(path: string): string {
  return `--${path}`;
}

/** Levenshtein distance, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The candidate closest to `word` (case-insensitive), if it is close enough to be a plausible typo. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}
