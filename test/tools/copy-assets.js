// Copies the non-TypeScript files the runtime loads (Lua scripts) next to the compiled JavaScript in dist/.
const fs = require('node:fs');
const path = require('node:path');
const root = path.resolve(__dirname, '../..');
let copied = 0;
function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.lua')) {
      const out = path.join(root, 'dist', path.relative(root, p));
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.copyFileSync(p, out);
      copied++;
    }
  }
}
for (const d of ['actors', 'runtime', 'storage', 'config']) if (fs.existsSync(path.join(root, d))) walk(path.join(root, d));
console.log(`copied ${copied} asset file(s) into dist/`);
