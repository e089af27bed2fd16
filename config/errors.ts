import { ErrorCode, StreamingError } from '../runtime/errors';

/** One bad setting. */
export interface ConfigIssue {
  /** Dotted field path, e.g. `wal.local.fsync`; '' for the file or argv as a whole. */
  readonly path: string;
  /** What the field accepts, e.g. `one of always|interval`, `integer ≥ 1`. */
  readonly expected: string;
  /** The value found, JSON-ish (`"sometimes"`, `12`), `***` for secrets, `nothing` when absent. */
  readonly got: string;
  /**
   * Where the value came from: `file <path>`, `env WALSTREAM_…`, `flag --…`, `defaults` (the
   * loader's `defaults` option), `built-in default`, `argv`; for a rule spanning fields, each field's.
   */
  readonly source: string;
}

/**
 * The configuration is invalid. Lists every bad setting at once (not only the first), one per line
 * in the message and structured in `details.issues` / `issues`. INVALID_ARGUMENT, never retriable.
 */
export class ConfigError extends StreamingError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(ErrorCode.INVALID_ARGUMENT, formatIssues(issues), { details: { issues }, retriable: false });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  const head = `invalid configuration (${issues.length} issue${issues.length === 1 ? '' : 's'}):`;
  const lines = issues.map((i) => `  ${i.path === '' ? '<root>' : i.path}: expected ${i.expected}, got ${i.got} (${i.source})`);
  return [head, ...lines].join('\n');
}
