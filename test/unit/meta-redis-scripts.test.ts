/**
 * The Redis MetaStore's pieces that need no server: the script loader (files, headers, where they are
 * found — also from a compiled build), the error-code mapper, and the key builder.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChannelFencedError, ErrorCode } from '../../runtime/errors';
import { LeadershipLostError, LeaseLostError } from '../../storage/meta/errors';
import { expectResult, scriptError, ScriptErrorCode } from '../../storage/meta/redis/error-codes';
import { escapeGlob, META_GROUP, MetaKeys } from '../../storage/meta/redis/keys';
import { commandName, loadScriptSources, META_SCRIPT_NAMES, SCRIPTS_DIR } from '../../storage/meta/redis/scripts/loader';

const ROOT = resolve(__dirname, '../..');
const tempDirs: string[] = [];
afterAll(async () => {
  loadScriptSources(SCRIPTS_DIR); // leave the cache on the real directory
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function copyScripts(except?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'walstream-lua-'));
  tempDirs.push(dir);
  for (const f of await readdir(SCRIPTS_DIR)) if (f.endsWith('.lua') && f !== except) await copyFile(join(SCRIPTS_DIR, f), join(dir, f));
  return dir;
}

describe('Redis meta scripts loader', () => {
  it('finds every script next to the loader, named <name>-<numKeys>.lua with a matching header', async () => {
    expect(SCRIPTS_DIR).toBe(join(ROOT, 'storage/meta/redis/scripts'));
    const sources = loadScriptSources();
    expect([...sources.keys()].sort()).toEqual([...META_SCRIPT_NAMES].sort());
    const files = (await readdir(SCRIPTS_DIR)).filter((f) => f.endsWith('.lua')).sort();
    expect(files).toEqual([...sources.values()].map((s) => `${s.name}-${s.numberOfKeys}.lua`).sort());
    expect(sources.get('owner-write')?.numberOfKeys).toBe(3);
    expect(sources.get('bump-term')?.numberOfKeys).toBe(1);
    for (const s of sources.values()) expect(s.lua).toMatch(/^--\[\[[\s\S]*Input:[\s\S]*Output:[\s\S]*\]\]/);
  });

  it('names a missing script and the build step when a directory lacks one', async () => {
    const dir = await copyScripts('owner-write-3.lua');
    expect(() => loadScriptSources(dir)).toThrow(/missing in .*: owner-write\. A compiled build must copy storage\/meta\/redis\/scripts\/\*\.lua/);
  });

  it('refuses a script whose header does not describe exactly its KEYS', async () => {
    const dir = await copyScripts('bump-term-1.lua');
    const lua = (await readFile(join(SCRIPTS_DIR, 'bump-term-1.lua'), 'utf8')).replace('KEYS[1] term', 'KEYS[1] term\n    KEYS[2] extra');
    await writeFile(join(dir, 'bump-term-1.lua'), lua);
    expect(() => loadScriptSources(dir)).toThrow(/header must describe exactly KEYS\[1\.\.1\]/);
    await rm(join(dir, 'bump-term-1.lua'));
    await writeFile(join(dir, 'bump-term-2.lua'), lua);
    expect(() => loadScriptSources(dir)).not.toThrow();
    const other = await copyScripts();
    await writeFile(join(other, 'unknown-1.lua'), lua);
    expect(() => loadScriptSources(other)).toThrow(/unexpected Lua script unknown-1\.lua/);
  });

  it('registers commands under names that cannot shadow Redis commands', () => {
    expect(commandName('owner-write')).toBe('walstreamMetaOwnerWrite');
    expect(commandName('put')).toBe('walstreamMetaPut');
    expect(new Set(META_SCRIPT_NAMES.map(commandName)).size).toBe(META_SCRIPT_NAMES.length);
  });

  it('finds the scripts from a compiled build once the build copies *.lua next to the loader', async () => {
    const out = await mkdtemp(join(tmpdir(), 'walstream-dist-'));
    tempDirs.push(out);
    const tsc = spawnSync(
      process.execPath,
      [
        join(ROOT, 'node_modules/typescript/bin/tsc'),
        '--ignoreConfig', '--outDir', out, '--rootDir', ROOT, '--module', 'commonjs', '--target', 'ES2022', '--moduleResolution', 'node10',
        '--esModuleInterop', '--skipLibCheck', '--strict', '--types', 'node', '--ignoreDeprecations', '6.0',
        join(ROOT, 'storage/meta/redis/scripts/loader.ts'),
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    const compiledDir = join(out, 'storage/meta/redis/scripts');
    const probe = `const l = require(${JSON.stringify(join(compiledDir, 'loader.js'))}); console.log(JSON.stringify([l.SCRIPTS_DIR, l.loadScriptSources().size]))`;

    const before = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
    expect(before.status).not.toBe(0);
    expect(before.stderr).toContain('A compiled build must copy storage/meta/redis/scripts/*.lua');

    await mkdir(compiledDir, { recursive: true });
    for (const f of await readdir(SCRIPTS_DIR)) if (f.endsWith('.lua')) await copyFile(join(SCRIPTS_DIR, f), join(compiledDir, f));
    const after = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
    expect(after.stderr).toBe('');
    expect(JSON.parse(after.stdout)).toEqual([compiledDir, META_SCRIPT_NAMES.length]);
  }, 60_000);
});

describe('Redis meta error codes', () => {
  it('maps each negative script reply to its typed error', () => {
    const fenced = scriptError(ScriptErrorCode.STALE_TERM, { script: 'owner-write', pchannel: 'p', term: 2, currentTerm: 3 });
    expect(fenced).toBeInstanceOf(ChannelFencedError);
    expect(fenced).toMatchObject({ code: ErrorCode.CHANNEL_FENCED, retriable: false, details: { pchannel: 'p', term: 2, currentTerm: 3 } });
    expect(scriptError(ScriptErrorCode.NOT_LEADER, { script: 'leader-write', election: 'coord', epoch: 1, currentEpoch: 2 })).toBeInstanceOf(LeadershipLostError);
    expect(scriptError(ScriptErrorCode.LEASE_LOST, { script: 'put', leaseId: 'n.1' })).toBeInstanceOf(LeaseLostError);
    expect(scriptError(-99, { script: 'put' })).toMatchObject({ code: ErrorCode.UNKNOWN, retriable: false });
  });

  it('passes results through and rejects non-integers', () => {
    expect(expectResult(7, { script: 'put' })).toBe(7);
    expect(expectResult(0, { script: 'put' })).toBe(0);
    expect(() => expectResult(-3, { script: 'put', leaseId: 'x' })).toThrow(LeaseLostError);
    expect(() => expectResult('OK', { script: 'put' })).toThrow(/non-integer/);
  });
});

describe('Redis meta keys', () => {
  const keys = new MetaKeys('ws:');

  it('puts a pchannel\'s term and owner data in one hash-tag group, everything else in {m}', () => {
    expect(keys.term('dml_0')).toBe('ws:{p:dml_0}:term');
    expect(keys.entry('pchannel/dml_0/segments/7')).toBe('ws:{p:dml_0}:kv:pchannel/dml_0/segments/7');
    expect(keys.index(keys.pchannelGroup('dml_0'))).toBe('ws:{p:dml_0}:index');
    expect(keys.entry('nodes/{1}')).toBe('ws:{m}:kv:nodes/{1}'); // the first braces (ours) decide the slot
    expect(keys.lease('node.3')).toBe('ws:{m}:lease:node.3');
    expect(keys.leader('coord')).toBe('ws:{m}:leader:coord');
    expect(keys.revision(META_GROUP)).toBe('ws:{m}:rev');
  });

  it('escapes glob characters in watch patterns', () => {
    expect(escapeGlob('a*b?[c]\\')).toBe('a\\*b\\?\\[c\\]\\\\');
    expect(keys.watchPattern('w/*')).toBe('ws:watch:w/\\**');
  });

  it('chooses the groups a list prefix can reach', () => {
    const reg = ['dml_0', 'dml_1', 'other'];
    expect(keys.groupsForPrefix('nodes/', reg)).toEqual([META_GROUP]);
    expect(keys.groupsForPrefix('pchannel/dml_0/', reg)).toEqual([keys.pchannelGroup('dml_0')]);
    expect(keys.groupsForPrefix('pchannel/dml', reg)).toEqual([keys.pchannelGroup('dml_0'), keys.pchannelGroup('dml_1')]);
    expect(keys.groupsForPrefix('pch', reg)).toHaveLength(4);
    expect(keys.groupsForPrefix('', reg)).toHaveLength(4);
    expect(keys.prefixSpansPChannels('pchannel/dml_0/x')).toBe(false);
    expect(keys.prefixSpansPChannels('nodes/')).toBe(false);
    expect(keys.prefixSpansPChannels('')).toBe(true);
  });

  it('refuses prefixes that would break hash tags or patterns', () => {
    for (const bad of ['', 'a{b}', 'a*', 'a b']) expect(() => new MetaKeys(bad)).toThrow(/prefix/);
  });
});
