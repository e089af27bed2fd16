/**
 * Fails when runtime imports form a cycle among the project's modules (type-only imports do not
 * count: they vanish at compile time). Run by `npm test` before jest.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const DIRS = ['actors', 'runtime', 'storage', 'config'];
const IMPORT = /^\s*(import|export)\s+(?!type\b)([^'"]*?from\s+)?['"](\.[^'"]+)['"]/gm;

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : files(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function resolve(from: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
  return undefined;
}

const graph = new Map<string, string[]>();
for (const f of DIRS.flatMap((d) => files(path.join(ROOT, d)))) {
  const src = fs.readFileSync(f, 'utf8');
  const deps: string[] = [];
  for (const m of src.matchAll(IMPORT)) {
    // `import { type A, type B } from` is type-only too.
    const clause = m[2] ?? '';
    if (/^\{\s*(type\s+\w+\s*,?\s*)+\}\s*from\s+$/.test(clause)) continue;
    const r = resolve(f, m[3]!);
    if (r) deps.push(r);
  }
  graph.set(f, deps);
}

// Tarjan's strongly connected components.
let index = 0;
const idx = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const on = new Set<string>();
const cycles: string[][] = [];
function visit(v: string): void {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!idx.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
  }
  if (low.get(v) === idx.get(v)) {
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) cycles.push(scc);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) visit(v);

if (cycles.length > 0) {
  console.error(`circular imports (${cycles.length}):`);
  for (const c of cycles) console.error('  ' + c.map((f) => path.relative(ROOT, f)).join(' → '));
  process.exit(1);
}
console.log(`no circular imports among ${graph.size} modules`);
