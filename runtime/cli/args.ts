/**
 * Argument parsing of the CLI's client commands (node's util.parseArgs, strict): unknown options,
 * missing values and bad numbers are a UsageError (exit status 2) that names the option. `start`
 * and `config` read their setting flags with the config loader's parseFlags instead.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses `args` strictly; `positionals` is the [min, max] count allowed. */
export function parseCommand(command: string, args: readonly string[], options: OptionSpecs, positionals: [number, number] = [0, 0]): Parsed {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message.replace(/\. To specify a positional argument.*$/s, '')}`);
  }
  const [min, max] = positionals;
  if (parsed.positionals.length < min) throw new UsageError(`${command}: missing argument${min - parsed.positionals.length > 1 ? 's' : ''}`);
  if (parsed.positionals.length > max) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(parsed.positionals[max])}`);
  return { values: parsed.values as Parsed['values'], positionals: parsed.positionals };
}

export function stringOption(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function boolOption(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** An integer option in [min, max], or `dflt` when absent. */
export function intOption(p: Parsed, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = p.values[name];
  if (v === undefined) return dflt;
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return n;
}

/** The value of `--url`: an http(s) URL. */
export function urlOption(p: Parsed, dflt: string): string {
  const v = stringOption(p, 'url') ?? dflt;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`--url: expected an http(s) URL, got ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url: expected an http(s) URL, got ${JSON.stringify(v)}`);
  return v;
}
