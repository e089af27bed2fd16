'use strict';
// Script of a flush thread when walstream runs from its TypeScript sources (jest, ts-node, the
// benchmarks). Compiled (dist/), FlushThreadPool starts dist/storage/flush/flush-thread.js instead.
//
// A worker thread starts with a fresh module loader that knows nothing of the main thread's
// ts-node or ts-jest, so this installs a TypeScript loader, then runs flush-thread.ts. The loader
// transpiles like ts-node with transpileOnly (runtime/cli/walstream.js): TypeScript's
// transpileModule with the options of tsconfig.json, no type check. Unlike ts-node, it keeps what
// it transpiled in node_modules/.cache/walstream-ts/, keyed by the SHA-256 of the TypeScript
// version, tsconfig.json, the file name and its source: a thread that starts from the sources then
// loads in a few hundred milliseconds instead of the ~3 s of CPU that loading the compiler and
// transpiling its ~60 modules costs (every flush thread of every test server and benchmark run
// would pay that). The compiler is loaded only on a cache miss. A cache that cannot be written is
// only slower. Stack traces map to the .ts lines (inline source maps).
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const tsconfigPath = path.join(root, 'tsconfig.json');
const cacheDir = path.join(root, 'node_modules', '.cache', 'walstream-ts');

/** Everything the output depends on besides the file: the compiler's version and the project options. */
const salt = `${require('typescript/package.json').version}\0${fs.readFileSync(tsconfigPath, 'utf8')}\0`;

let compilerOptions;
function transpile(source, file) {
  const ts = require('typescript');
  if (compilerOptions === undefined) {
    const { config, error } = ts.readConfigFile(tsconfigPath, ts.sys.readFile);
    if (error) throw new Error(`flush thread: cannot read ${tsconfigPath}: ${ts.flattenDiagnosticMessageText(error.messageText, '\n')}`);
    const parsed = ts.parseJsonConfigFileContent(config, ts.sys, root);
    compilerOptions = { ...parsed.options, sourceMap: false, inlineSourceMap: true, inlineSources: false, declaration: false, noEmit: false };
  }
  return ts.transpileModule(source, { fileName: file, compilerOptions, reportDiagnostics: false }).outputText;
}

function load(module, file) {
  const source = fs.readFileSync(file, 'utf8');
  const key = crypto.createHash('sha256').update(salt).update(file).update('\0').update(source).digest('hex');
  const cached = path.join(cacheDir, `${key}.js`);
  let code;
  try {
    code = fs.readFileSync(cached, 'utf8');
  } catch {
    code = transpile(source, file);
    try {
      fs.mkdirSync(cacheDir, { recursive: true });
      const tmp = `${cached}.${process.pid}.${require('node:worker_threads').threadId}.tmp`;
      fs.writeFileSync(tmp, code);
      fs.renameSync(tmp, cached); // whole files only: a concurrent reader sees all of it or nothing
    } catch {
      // read-only tree: no cache
    }
  }
  module._compile(code, file);
}

process.setSourceMapsEnabled(true);
require.extensions['.ts'] = load;
require(path.join(__dirname, 'flush-thread.ts')).runFlushThread();
