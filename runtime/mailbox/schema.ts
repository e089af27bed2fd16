/**
 * A small runtime schema validator for what arrives from the wire. A check takes an unknown value
 * and its path (`req.schema.fields[0].dim`) and returns the typed value or throws INVALID_ARGUMENT
 * with `details.field` = the path and `details.expected`. Objects are strict: an unknown field is
 * refused (a typo must not be silently ignored). Optional fields that are absent stay absent.
 */
import { invalidArgument } from '../errors';

export type Check<T> = (value: unknown, path: string) => T;

/** Longest string accepted where no other limit is given. */
export const DEFAULT_MAX_STRING = 4096;
/** Longest array accepted where no other limit is given. */
export const DEFAULT_MAX_ARRAY = 65_536;

export function fieldError(path: string, expected: string, value: unknown): never {
  throw invalidArgument(`invalid command field ${path}: expected ${expected}, got ${describe(value)}`, { field: path, expected });
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

export function str(opts: { min?: number; max?: number; pattern?: RegExp } = {}): Check<string> {
  const min = opts.min ?? 0;
  const max = opts.max ?? DEFAULT_MAX_STRING;
  const what = `a string of ${min}..${max} characters${opts.pattern ? ` matching ${String(opts.pattern)}` : ''}`;
  return (v, path) => {
    if (typeof v !== 'string' || v.length < min || v.length > max || (opts.pattern && !opts.pattern.test(v))) fieldError(path, what, v);
    return v;
  };
}

export function int(opts: { min?: number; max?: number } = {}): Check<number> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  const what = `an integer in [${min}, ${max}]`;
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fieldError(path, what, v);
    return v;
  };
}

export const bool: Check<boolean> = (v, path) => {
  if (typeof v !== 'boolean') fieldError(path, 'a boolean', v);
  return v;
};

/** A non-negative bigint carried as a decimal string (JSON has no bigints). */
export function bigintString(max: bigint = (1n << 64n) - 1n): Check<bigint> {
  return (v, path) => {
    if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v)) fieldError(path, 'a decimal string of a non-negative integer', v);
    const n = BigInt(v);
    if (n > max) fieldError(path, `a decimal string of at most ${max}`, v);
    return n;
  };
}

export function oneOf<L extends string>(values: readonly L[]): Check<L> {
  const set = new Set<string>(values);
  const what = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  return (v, path) => {
    if (typeof v !== 'string' || !set.has(v)) fieldError(path, what, v);
    return v as L;
  };
}

export function array<T>(item: Check<T>, opts: { max?: number } = {}): Check<T[]> {
  const max = opts.max ?? DEFAULT_MAX_ARRAY;
  return (v, path) => {
    if (!Array.isArray(v) || v.length > max) fieldError(path, `an array of at most ${max} items`, v);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
}

const OPTIONAL = Symbol('optional');
export type OptionalCheck<T> = Check<T | undefined> & { readonly [OPTIONAL]: true };

/** Absent (or undefined) is accepted and stays absent in the result. */
export function optional<T>(check: Check<T>): OptionalCheck<T> {
  const c = ((v: unknown, path: string) => (v === undefined ? undefined : check(v, path))) as OptionalCheck<T>;
  (c as { [OPTIONAL]: true })[OPTIONAL] = true;
  return c;
}

type Shape = Record<string, Check<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends OptionalCheck<unknown> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
type CheckedOf<C> = C extends Check<infer T> ? T : never;
export type ObjectOf<S extends Shape> = { [K in RequiredKeys<S>]: CheckedOf<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<CheckedOf<S[K]>, undefined> };

/** A plain object with exactly these fields (optional ones may be absent); unknown fields are refused. */
export function object<S extends Shape>(shape: S): Check<ObjectOf<S>> {
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fieldError(path || 'command', 'an object', v);
    const src = v as Record<string, unknown>;
    for (const key of Object.keys(src)) {
      if (!Object.prototype.hasOwnProperty.call(shape, key)) fieldError(join(path, key), 'no such field', src[key]);
    }
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(shape)) {
      const value = check(Object.prototype.hasOwnProperty.call(src, key) ? src[key] : undefined, join(path, key));
      if (value !== undefined) out[key] = value;
    }
    return out as ObjectOf<S>;
  };
}

/** A union discriminated by `type`: the variant named by the value's `type` checks the rest. */
export function tagged<T extends { type: string }>(variants: { [K in T['type']]: Check<Extract<T, { type: K }>> }): Check<T> {
  const names = Object.keys(variants);
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fieldError(path, 'an object', v);
    const type = (v as { type?: unknown }).type;
    const typePath = join(path, 'type');
    if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(variants, type)) fieldError(typePath, `one of ${names.map((n) => JSON.stringify(n)).join(', ')}`, type);
    return (variants as Record<string, Check<T>>)[type]!(v, path);
  };
}

export function literal<L extends string>(value: L): Check<L> {
  return (v, path) => {
    if (v !== value) fieldError(path, JSON.stringify(value), v);
    return value;
  };
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}
