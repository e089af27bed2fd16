/**
 * Flat index of CONFIG_SCHEMA: every setting (leaf) with its path, spec, env name and flag; every
 * section by path. Built once at import.
 */
import { SCHEMA_ROOT } from './schema';
import { envNameOf, flagNameOf, screamingSnake, type AnyLeafSpec, type AnySectionSpec } from './spec';

export interface ConfigField {
  /** Dotted path, e.g. `wal.local.fsync`. */
  readonly path: string;
  readonly spec: AnyLeafSpec;
  /** `WALSTREAM_WAL__LOCAL__FSYNC`. */
  readonly env: string;
  /** `--wal.local.fsync`. */
  readonly flag: string;
}

function index(): { fields: ConfigField[]; sections: Map<string, AnySectionSpec> } {
  const fields: ConfigField[] = [];
  const sections = new Map<string, AnySectionSpec>([['', SCHEMA_ROOT]]);
  const walk = (section: AnySectionSpec, prefix: string): void => {
    for (const [key, spec] of Object.entries(section.fields)) {
      const p = prefix === '' ? key : `${prefix}.${key}`;
      if (spec.kind === 'section') {
        sections.set(p, spec);
        walk(spec, p);
      } else {
        fields.push({ path: p, spec, env: envNameOf(p), flag: flagNameOf(p) });
      }
    }
  };
  walk(SCHEMA_ROOT, '');
  return { fields, sections };
}

const INDEX = index();

/** Every setting, in schema order. */
export const CONFIG_FIELDS: readonly ConfigField[] = INDEX.fields;
/** Every section by dotted path ('' = the root). */
export const CONFIG_SECTIONS: ReadonlyMap<string, AnySectionSpec> = INDEX.sections;
export const FIELD_BY_PATH: ReadonlyMap<string, ConfigField> = new Map(CONFIG_FIELDS.map((f) => [f.path, f]));
export const FIELD_BY_ENV: ReadonlyMap<string, ConfigField> = new Map(CONFIG_FIELDS.map((f) => [f.env, f]));
/** SCREAMING_SNAKE names of the top-level keys (`MODE`, `WAL`, `OBJECT_STORE` …). */
export const TOP_LEVEL_ENV_SEGMENTS: ReadonlySet<string> = new Set(Object.keys(SCHEMA_ROOT.fields).map(screamingSnake));

/** Reads `a.b.c` from a nested object; undefined when any step is missing. */
export function getAtPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/** Writes `a.b.c` into a nested object, creating plain objects on the way. */
export function setAtPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const segs = path.split('.');
  let cur = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i] as string;
    let next = cur[seg];
    if (typeof next !== 'object' || next === null) {
      next = {};
      cur[seg] = next;
    }
    cur = next as Record<string, unknown>;
  }
  cur[segs[segs.length - 1] as string] = value;
}
