/**
 * The settings as documentation rows: for the README, `walstream config`, and anyone wondering
 * which env var sets what. Rows follow schema order.
 */
import { CONFIG_FIELDS } from './fields';
import { expectedOf, formatDefault, type Unit } from './spec';

export interface ConfigRow {
  /** Dotted path, e.g. `wal.local.fsync`. */
  path: string;
  /** What the setting accepts, e.g. `one of always|interval`, `integer ≥ 1`. */
  type: string;
  /** Default as text, e.g. `"always"`, `8388608 (8 MiB)`, `<dataDir>/objects`. */
  default: string;
  /** Meaning of the setting. */
  doc: string;
  /** Environment variable, e.g. `WALSTREAM_WAL__LOCAL__FSYNC`. */
  env: string;
  /** Command-line flag, e.g. `--wal.local.fsync`. */
  flag: string;
  /** Unit of a number, when it has one. */
  unit?: Unit;
}

export function describeConfig(): ConfigRow[] {
  return CONFIG_FIELDS.map((f) => ({
    path: f.path,
    type: expectedOf(f.spec),
    default: formatDefault(f.spec),
    doc: f.spec.doc,
    env: f.env,
    flag: f.flag,
    ...(f.spec.unit !== undefined ? { unit: f.spec.unit } : {}),
  }));
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** describeConfig() as a Markdown table (path, type, default, env, meaning). */
export function describeConfigMarkdown(): string {
  const head = ['| setting | type | default | env | meaning |', '|---|---|---|---|---|'];
  const rows = describeConfig().map((r) => `| \`${r.path}\` | ${cell(r.type)} | ${cell(r.default)} | \`${r.env}\` | ${cell(r.doc)} |`);
  return [...head, ...rows].join('\n');
}
