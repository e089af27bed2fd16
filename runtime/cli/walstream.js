#!/usr/bin/env node
'use strict';
// Launcher of the `walstream` command: runs the compiled CLI (dist/, from `npm run build`) when it
// exists, else the TypeScript source through ts-node (transpile only). WALSTREAM_CLI_SOURCE=1
// forces the source (tests use it, so that a stale dist/ is never what they exercise).
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const compiled = path.join(root, 'dist', 'runtime', 'cli', 'main.js');

if (fs.existsSync(compiled) && process.env.WALSTREAM_CLI_SOURCE !== '1') {
  require(compiled).run();
} else {
  let tsNode;
  try {
    tsNode = require('ts-node');
  } catch {
    process.stderr.write('walstream: no compiled CLI in dist/ (run `npm run build`) and ts-node is not installed\n');
    process.exit(1);
  }
  tsNode.register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') });
  require(path.join(root, 'runtime', 'cli', 'main.ts')).run();
}
