import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { DEFAULT_WAL_OPTIONS } from '../../actors/wal/options';
import {
  CONFIG_FIELDS,
  CONFIG_SCHEMA,
  ConfigError,
  defaultConfig,
  describeConfig,
  describeConfigMarkdown,
  envNameOf,
  loadConfig,
  parseFlags,
  pchannelNames,
  redactConfig,
  type ConfigIssue,
  type LoadConfigOptions,
  type WalstreamConfig,
} from '../../config';
import { getAtPath } from '../../config/fields';
import { ErrorCode, StreamingError } from '../../runtime/errors';

const HOST = { hostname: 'box', pid: 42 };

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-config-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let fileSeq = 0;
function writeFile(content: unknown): string {
  const p = path.join(tmp, `config-${fileSeq++}.json`);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

function load(opts: LoadConfigOptions = {}): WalstreamConfig {
  return loadConfig({ ...HOST, ...opts });
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

function issuesOf(opts: LoadConfigOptions): ConfigIssue[] {
  return [...configError(() => load(opts)).issues];
}

describe('defaults', () => {
  it('gives a complete, valid configuration with no source at all', () => {
    const c = load();
    expect(c.mode).toBe('standalone');
    expect(c.dataDir).toBe('./.walstream-data');
    expect(c.nodeId).toBe('standalone');
    expect(c.logLevel).toBe('info');
    expect(c.pchannels).toEqual({ count: 4, namePrefix: 'walstream-dml' });
    expect(c.standalone).toEqual({ streamingNodes: 2 });
    expect(c.http).toEqual({ host: '127.0.0.1', port: 8480, bodyLimitBytes: 8 * 1024 * 1024 });
    expect(c.wal).toMatchObject({ backend: 'local', local: { fsync: 'always', fsyncIntervalMs: 100, segmentBytes: 64 * 1024 * 1024 } });
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379', keyPrefix: 'walstream' });
    expect(c.lease).toEqual({ ttlMs: 3000, renewIntervalMs: 1000 });
    expect(c.objectStore.kind).toBe('local');
    expect(c.objectStore.local.dir).toBe(path.join('./.walstream-data', 'objects'));
    expect(c.objectStore.s3.pathStyle).toBe(true);
    expect(c.flush.queue).toBe('inline');
    expect(c.recovery).toEqual({ persistIntervalMs: 10_000, maxDirtyMessages: 100, minPersistGapMs: 100, gracefulCloseTimeoutMs: 3_000 });
  });

  it('takes the WAL defaults from actors/wal/options.ts, and cfg.wal is usable as WalOptions', () => {
    const { backend: _b, local: _l, ...walOptions } = load().wal;
    expect(walOptions).toEqual(DEFAULT_WAL_OPTIONS);
  });

  it('has a value for every field and nothing else', () => {
    const c = load() as unknown as Record<string, unknown>;
    for (const f of CONFIG_FIELDS) expect([f.path, getAtPath(c, f.path)]).not.toEqual([f.path, undefined]);
    const leafCount = (o: unknown): number =>
      typeof o === 'object' && o !== null ? Object.values(o).reduce<number>((n, v) => n + leafCount(v), 0) : 1;
    expect(leafCount(c)).toBe(CONFIG_FIELDS.length);
  });

  it.each<[string, Partial<LoadConfigOptions>, string]>([
    ['standalone', {}, 'standalone'],
    ['node', { flags: { mode: 'node' } }, 'node-box-42'],
    ['coordinator', { flags: { mode: 'coordinator' } }, 'coordinator-box-42'],
    ['node on an odd host name', { flags: { mode: 'node' }, hostname: 'my host{1}' }, 'node-my-host-1--42'],
  ])('derives nodeId for %s', (_name, opts, nodeId) => {
    expect(load(opts).nodeId).toBe(nodeId);
  });

  it('derives the local object-store directory from dataDir, unless it is set', () => {
    expect(load({ env: { WALSTREAM_DATA_DIR: '/var/ws' } }).objectStore.local.dir).toBe(path.join('/var/ws', 'objects'));
    expect(load({ env: { WALSTREAM_DATA_DIR: '/var/ws', WALSTREAM_OBJECT_STORE__LOCAL__DIR: '/mnt/o' } }).objectStore.local.dir).toBe('/mnt/o');
  });

  it('derives the flush queue from mode', () => {
    expect(load({ flags: { mode: 'node', 'wal.backend': 'redis' } }).flush.queue).toBe('bullmq');
    expect(load({ flags: { mode: 'node', 'flush.queue': 'inline' } }).flush.queue).toBe('inline');
  });

  it('does not read process.env unless given it', () => {
    const saved = process.env.WALSTREAM_HTTP__PORT;
    process.env.WALSTREAM_HTTP__PORT = '1234';
    try {
      expect(load().http.port).toBe(8480);
      expect(load({ env: process.env }).http.port).toBe(1234);
    } finally {
      if (saved === undefined) delete process.env.WALSTREAM_HTTP__PORT;
      else process.env.WALSTREAM_HTTP__PORT = saved;
    }
  });

  it('returns a fresh object every time', () => {
    const a = defaultConfig(HOST);
    a.wal.local.fsync = 'interval';
    a.http.port = 1;
    expect(defaultConfig(HOST).wal.local.fsync).toBe('always');
    expect(defaultConfig(HOST).http.port).toBe(8480);
  });

  it('names pchannels prefix_i', () => {
    expect(pchannelNames(load({ flags: { 'pchannels.count': '3', 'pchannels.namePrefix': 'dml' } }))).toEqual(['dml_0', 'dml_1', 'dml_2']);
  });
});

describe('precedence: built-in < defaults < file < env < flags', () => {
  type Sources = { defaults?: boolean; file?: boolean; env?: boolean; flag?: boolean };
  const build = (s: Sources): LoadConfigOptions => ({
    ...(s.defaults ? { defaults: { http: { port: 1001 } } } : {}),
    ...(s.file ? { file: writeFile({ http: { port: 1002 } }) } : {}),
    ...(s.env ? { env: { WALSTREAM_HTTP__PORT: '1003' } } : {}),
    ...(s.flag ? { flags: { 'http.port': '1004' } } : {}),
  });

  it.each<[string, Sources, number]>([
    ['nothing', {}, 8480],
    ['defaults', { defaults: true }, 1001],
    ['defaults + file', { defaults: true, file: true }, 1002],
    ['defaults + file + env', { defaults: true, file: true, env: true }, 1003],
    ['defaults + file + env + flag', { defaults: true, file: true, env: true, flag: true }, 1004],
    ['file + flag', { file: true, flag: true }, 1004],
    ['env + flag', { env: true, flag: true }, 1004],
    ['file + env', { file: true, env: true }, 1003],
  ])('%s → http.port %d', (_name, sources, port) => {
    expect(load(build(sources)).http.port).toBe(port);
  });

  it('merges sections field by field across sources', () => {
    const c = load({
      file: writeFile({ wal: { local: { fsync: 'interval', fsyncIntervalMs: 50 } }, http: { host: '0.0.0.0' } }),
      env: { WALSTREAM_WAL__LOCAL__SEGMENT_BYTES: '1048576' },
      flags: { 'wal.local.fsyncIntervalMs': '25' },
    });
    expect(c.wal.local).toEqual({ fsync: 'interval', fsyncIntervalMs: 25, segmentBytes: 1048576 });
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8480, bodyLimitBytes: 8 * 1024 * 1024 });
  });

  it('finds the file from the option, else --config, else WALSTREAM_CONFIG', () => {
    const a = writeFile({ http: { port: 1 } });
    const b = writeFile({ http: { port: 2 } });
    const c = writeFile({ http: { port: 3 } });
    expect(load({ file: a, flags: { config: b }, env: { WALSTREAM_CONFIG: c } }).http.port).toBe(1);
    expect(load({ flags: { config: b }, env: { WALSTREAM_CONFIG: c } }).http.port).toBe(2);
    expect(load({ env: { WALSTREAM_CONFIG: c } }).http.port).toBe(3);
    expect(load({ flags: parseFlags(['--config', b]) }).http.port).toBe(2);
  });
});

describe('coercion of env and flag strings', () => {
  it.each<[string, string, unknown]>([
    ['http.port', '9000', 9000],
    ['http.port', '+9000', 9000],
    ['http.port', '0', 0],
    ['wal.groupCommitDelayMs', '0', 0],
    ['objectStore.s3.useSSL', 'true', true],
    ['objectStore.s3.useSSL', 'TRUE', true],
    ['objectStore.s3.useSSL', '1', true],
    ['objectStore.s3.pathStyle', 'false', false],
    ['objectStore.s3.pathStyle', '0', false],
    ['wal.local.fsync', 'interval', 'interval'],
    ['mode', 'node', 'node'],
    ['http.host', '0.0.0.0', '0.0.0.0'],
    ['objectStore.s3.accessKey', '', ''],
  ])('%s = %j → %j', (p, raw, value) => {
    const byFlag = load({ flags: { [p]: raw } }) as unknown as Record<string, unknown>;
    expect(getAtPath(byFlag, p)).toEqual(value);
    if (raw !== '') {
      // an empty env var counts as unset
      const byEnv = load({ env: { [envNameOf(p)]: raw } }) as unknown as Record<string, unknown>;
      expect(getAtPath(byEnv, p)).toEqual(value);
    }
  });

  it('treats an empty env var as unset', () => {
    expect(load({ env: { WALSTREAM_HTTP__PORT: '', WALSTREAM_DATA_DIR: '' } }).http.port).toBe(8480);
  });

  it('does not coerce file values: JSON types must match', () => {
    const file = writeFile({ http: { port: '9000' }, objectStore: { s3: { useSSL: 'true' } } });
    expect(issuesOf({ file })).toEqual([
      { path: 'http.port', expected: 'integer in [0, 65535] (0 = any free port)', got: '"9000"', source: `file ${file}` },
      { path: 'objectStore.s3.useSSL', expected: 'boolean (true|false)', got: '"true"', source: `file ${file}` },
    ]);
  });
});

describe('parseFlags', () => {
  it.each<[string[], Record<string, string | boolean>]>([
    [['--wal.local.fsync=interval'], { 'wal.local.fsync': 'interval' }],
    [['--http.port', '9000'], { 'http.port': '9000' }],
    [['--http.port=9000', '--http.host', '::1'], { 'http.port': '9000', 'http.host': '::1' }],
    [['--redis.url=redis://h:1/?a=b'], { 'redis.url': 'redis://h:1/?a=b' }],
    [['--objectStore.s3.useSSL'], { 'objectStore.s3.useSSL': true }],
    [['--objectStore.s3.useSSL', 'false'], { 'objectStore.s3.useSSL': 'false' }],
    [['--objectStore.s3.useSSL', '--http.port', '1'], { 'objectStore.s3.useSSL': true, 'http.port': '1' }],
    [['--no-objectStore.s3.pathStyle'], { 'objectStore.s3.pathStyle': false }],
    [['--help'], { help: true }],
    [['--http.port=1', '--http.port=2'], { 'http.port': '2' }],
    [['--wal.groupCommitDelayMs', '-1'], { 'wal.groupCommitDelayMs': '-1' }],
  ])('%j', (argv, flags) => {
    expect(parseFlags(argv)).toEqual(flags);
  });

  it('refuses positional and single-dash arguments, all at once', () => {
    const e = configError(() => parseFlags(['start', '--http.port=1', '-p', '--']));
    expect(e.issues.map((i) => [i.got, i.source])).toEqual([
      ['"start"', 'argv[0]'],
      ['"-p"', 'argv[2]'],
      ['"--"', 'argv[3]'],
    ]);
  });

  it('feeds loadConfig', () => {
    const c = load({ flags: parseFlags(['--wal.local.fsync', 'interval', '--http.port=9000', '--objectStore.s3.useSSL']) });
    expect([c.wal.local.fsync, c.http.port, c.objectStore.s3.useSSL]).toEqual(['interval', 9000, true]);
  });
});

describe('bad values name the field, what was expected, and where the value came from', () => {
  type Via = 'env' | 'flag' | 'file';
  const NAME = "string of letters, digits, '_', '.', '-' (at most 128, starting with a letter or digit)";
  it.each<[Via, string, unknown, string]>([
    ['env', 'http.port', 'abc', 'integer in [0, 65535] (0 = any free port)'],
    ['flag', 'http.port', '70000', 'integer in [0, 65535] (0 = any free port)'],
    ['file', 'http.port', -1, 'integer in [0, 65535] (0 = any free port)'],
    ['flag', 'http.port', true, 'integer in [0, 65535] (0 = any free port)'],
    ['env', 'pchannels.count', '0', 'integer in [1, 1024]'],
    ['file', 'pchannels.count', 2.5, 'integer in [1, 1024]'],
    ['env', 'wal.groupCommitMaxMessages', '1.5', 'integer ≥ 1'],
    ['flag', 'wal.groupCommitDelayMs', '-1', 'integer ≥ 0'],
    ['env', 'wal.maxMessageBytes', '100', 'integer ≥ 1024'],
    ['env', 'wal.writeAheadBuffer.capacityBytes', '1e6', 'integer ≥ 1'],
    ['file', 'segment.maxRows', 1e300, 'integer ≥ 1'],
    ['file', 'segment.maxRows', null, 'integer ≥ 1'],
    ['env', 'wal.local.fsync', 'sometimes', 'one of always|interval'],
    ['flag', 'wal.local.fsync', 'ALWAYS', 'one of always|interval'],
    ['env', 'mode', 'cluster', 'one of standalone|coordinator|node'],
    ['env', 'wal.backend', 'kafka', 'one of local|memory|redis'],
    ['file', 'logLevel', 3, 'one of error|warn|info|http|verbose|debug|silly'],
    ['env', 'objectStore.s3.useSSL', 'yes', 'boolean (true|false)'],
    ['file', 'objectStore.s3.useSSL', 1, 'boolean (true|false)'],
    ['flag', 'dataDir', '', 'non-empty string'],
    ['file', 'http.host', 8, 'non-empty string'],
    ['env', 'redis.url', 'http://h:6379', 'URL with protocol redis|rediss'],
    ['env', 'redis.url', 'not a url', 'URL with protocol redis|rediss'],
    ['env', 'redis.keyPrefix', 'ws{0}', "string of letters, digits, ':', '.', '_', '-' (at most 64; no braces, keys carry {pchannel} hash tags)"],
    ['env', 'pchannels.namePrefix', 'a b', "string of letters, digits, '_', '-' (at most 64, starting with a letter or digit)"],
    ['flag', 'nodeId', 'node 1', NAME],
    ['env', 'objectStore.s3.bucket', 'My_Bucket', "string of 3-63 lower-case letters, digits, '.', '-' (S3 bucket naming)"],
    ['env', 'objectStore.rootPath', '/abs', "string of '/'-separated names of letters, digits, '_', '.', '-' (no leading or trailing '/')"],
  ])('%s %s = %j → expected %s', (via, p, raw, expected) => {
    let opts: LoadConfigOptions;
    let source: string;
    if (via === 'env') {
      opts = { env: { [envNameOf(p)]: raw as string } };
      source = `env ${envNameOf(p)}`;
    } else if (via === 'flag') {
      opts = { flags: { [p]: raw as string | boolean } };
      source = `flag --${p}`;
    } else {
      const obj: Record<string, unknown> = {};
      const segs = p.split('.');
      let cur = obj;
      segs.slice(0, -1).forEach((s) => {
        cur = (cur[s] = {}) as Record<string, unknown>;
      });
      cur[segs[segs.length - 1] as string] = raw;
      const file = writeFile(obj);
      opts = { file };
      source = `file ${file}`;
    }
    expect(issuesOf(opts)).toEqual([{ path: p, expected, got: JSON.stringify(raw), source }]);
  });

  it('a section given as a scalar is refused', () => {
    const file = writeFile({ wal: { local: 'fast' } });
    expect(issuesOf({ file })).toEqual([{ path: 'wal.local', expected: 'an object with keys fsync|fsyncIntervalMs|segmentBytes', got: '"fast"', source: `file ${file}` }]);
  });

  it('never prints a secret value', () => {
    const file = writeFile({ objectStore: { s3: { secretKey: 12345 } } });
    const [issue] = issuesOf({ file });
    expect(issue).toMatchObject({ path: 'objectStore.s3.secretKey', expected: 'string', got: '***' });
  });

  it.each<[string, LoadConfigOptions, string]>([
    ['missing', { file: '/nonexistent/walstream.json' }, 'a readable JSON file'],
    ['not JSON', { file: '' }, 'valid JSON'],
    ['an array', { file: '' }, 'a JSON object'],
  ])('a config file that is %s is refused', (what, opts, expected) => {
    const file = opts.file === '' ? writeFile(what === 'not JSON' ? '{ "http": ' : '[1]') : (opts.file as string);
    const issues = issuesOf({ file });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ path: '', expected, source: `file ${file}` });
  });
});

describe('all issues are reported together', () => {
  it('collects bad values from every source, unknown keys and rules in one error', () => {
    const file = writeFile({ wal: { local: { fsync: 'sometimes', fsynk: 'always' } }, pchannels: { count: 0 } });
    const e = configError(() =>
      load({
        file,
        env: { WALSTREAM_HTTP__PORT: 'abc', WALSTREAM_LEASE__RENEW_INTERVAL_MS: '2000' },
        flags: { 'objectStore.s3.useSSL': 'maybe', 'http.prot': '1' },
      }),
    );
    expect(e.issues.map((i) => i.path).sort()).toEqual(
      ['http.port', 'http.prot', 'lease.renewIntervalMs', 'objectStore.s3.useSSL', 'pchannels.count', 'wal.local.fsync', 'wal.local.fsynk'].sort(),
    );
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('invalid configuration (7 issues):');
    expect(lines).toHaveLength(8);
    expect(lines).toContain(`  wal.local.fsync: expected one of always|interval, got "sometimes" (file ${file})`);
    expect(lines).toContain('  http.port: expected integer in [0, 65535] (0 = any free port), got "abc" (env WALSTREAM_HTTP__PORT)');
  });

  it('is a non-retriable INVALID_ARGUMENT StreamingError with details.issues', () => {
    const e = configError(() => load({ env: { WALSTREAM_HTTP__PORT: 'x' } }));
    expect(e).toBeInstanceOf(StreamingError);
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(e.retriable).toBe(false);
    expect(e.details?.['issues']).toEqual(e.issues);
    expect(e.toJSON()).toMatchObject({ code: 'INVALID_ARGUMENT', details: { issues: [{ path: 'http.port' }] } });
  });
});

describe('unknown keys', () => {
  it('in a file: nested typo, with a suggestion', () => {
    const file = writeFile({ wal: { local: { fsynk: 'interval' } } });
    expect(issuesOf({ file })).toEqual([
      { path: 'wal.local.fsynk', expected: 'a known setting (did you mean wal.local.fsync?)', got: '"interval"', source: `file ${file}` },
    ]);
  });

  it('in a file: far from any key, listing the section', () => {
    const file = writeFile({ http: { tls: true } });
    expect(issuesOf({ file })).toEqual([
      { path: 'http.tls', expected: 'a known setting (http has host|port|bodyLimitBytes)', got: 'true', source: `file ${file}` },
    ]);
  });

  it('in a file: top level, including names of Object.prototype', () => {
    const file = writeFile('{"modes": "node", "constructor": 1, "__proto__": {"x": 1}}');
    const issues = issuesOf({ file });
    expect(issues.map((i) => i.path)).toEqual(['modes', 'constructor', '__proto__']);
    expect(issues[0]?.expected).toBe('a known setting (did you mean mode?)');
  });

  it('in the defaults option', () => {
    const defaults = { http: { prot: 1 } } as unknown as LoadConfigOptions['defaults'];
    expect(issuesOf({ defaults })).toEqual([{ path: 'http.prot', expected: 'a known setting (did you mean http.port?)', got: '1', source: 'defaults' }]);
  });

  it('in flags', () => {
    expect(issuesOf({ flags: { 'http.prot': '1', wal: 'x', help: true } })).toEqual([
      { path: 'http.prot', expected: 'a known setting (did you mean --http.port?)', got: '"1"', source: 'flag --http.prot' },
      { path: 'wal', expected: 'a setting, not a section (e.g. --wal.backend)', got: '"x"', source: 'flag --wal' },
      { path: 'help', expected: 'a known setting (--<dotted path>, see describeConfig())', got: 'true', source: 'flag --help' },
    ]);
  });
});

describe('rules across fields', () => {
  it.each<[number, number, boolean]>([
    [3000, 1000, true],
    [3000, 1001, false],
    [3001, 1000, true],
    [2999, 1000, false],
    [30, 10, true],
    [3000, 3000, false],
  ])('lease ttl %d, renew %d → accepted %s', (ttl, renew, ok) => {
    const opts = { flags: { 'lease.ttlMs': String(ttl), 'lease.renewIntervalMs': String(renew) } };
    if (ok) {
      expect(load(opts).lease).toEqual({ ttlMs: ttl, renewIntervalMs: renew });
    } else {
      expect(issuesOf(opts)).toEqual([
        {
          path: 'lease.renewIntervalMs',
          expected: `≤ lease.ttlMs / 3 (${Math.floor(ttl / 3)} with lease.ttlMs ${ttl})`,
          got: String(renew),
          source: 'lease.renewIntervalMs from flag --lease.renewIntervalMs, lease.ttlMs from flag --lease.ttlMs',
        },
      ]);
    }
  });

  it('names the source of each field of a broken rule, defaults included', () => {
    expect(issuesOf({ env: { WALSTREAM_LEASE__TTL_MS: '1500' } })).toEqual([
      {
        path: 'lease.renewIntervalMs',
        expected: '≤ lease.ttlMs / 3 (500 with lease.ttlMs 1500)',
        got: '1000',
        source: 'lease.renewIntervalMs from built-in default, lease.ttlMs from env WALSTREAM_LEASE__TTL_MS',
      },
    ]);
  });

  it('skips a rule whose fields are already invalid', () => {
    expect(issuesOf({ env: { WALSTREAM_LEASE__TTL_MS: 'soon' } }).map((i) => i.path)).toEqual(['lease.ttlMs']);
  });

  it.each<[string, Record<string, string>, string | undefined, string]>([
    ['backoff initial > max', { 'coordinator.backoffInitialMs': '6000' }, 'coordinator.backoffInitialMs', '≤ coordinator.backoffMaxMs (5000)'],
    ['low water = high water', { 'segment.memoryLowWaterBytes': '536870912' }, 'segment.memoryLowWaterBytes', '< segment.memoryHighWaterBytes (536870912)'],
    ['memory WAL in a node', { mode: 'node', 'wal.backend': 'memory' }, 'wal.backend', 'one of local|redis when mode is node (a memory WAL is not shared between processes)'],
    ['memory WAL standalone', { 'wal.backend': 'memory' }, undefined, ''],
    ['s3 secret without access key', { 'objectStore.kind': 's3', 'objectStore.s3.secretKey': 's' }, 'objectStore.s3.secretKey', 'empty when objectStore.s3.accessKey is empty (anonymous access)'],
    ['s3 access key without secret', { 'objectStore.kind': 's3', 'objectStore.s3.accessKey': 'a' }, 'objectStore.s3.secretKey', 'non-empty string when objectStore.s3.accessKey is set'],
    ['s3 keys on a local store', { 'objectStore.s3.accessKey': 'a' }, undefined, ''],
    ['s3 with both keys', { 'objectStore.kind': 's3', 'objectStore.s3.accessKey': 'a', 'objectStore.s3.secretKey': 's' }, undefined, ''],
  ])('%s', (_name, flags, p, expected) => {
    if (p === undefined) {
      expect(() => load({ flags })).not.toThrow();
    } else {
      expect(issuesOf({ flags }).map((i) => [i.path, i.expected])).toEqual([[p, expected]]);
    }
  });
});

describe('env naming', () => {
  it.each<[string, string]>([
    ['wal.local.fsync', 'WALSTREAM_WAL__LOCAL__FSYNC'],
    ['http.port', 'WALSTREAM_HTTP__PORT'],
    ['http.bodyLimitBytes', 'WALSTREAM_HTTP__BODY_LIMIT_BYTES'],
    ['logLevel', 'WALSTREAM_LOG_LEVEL'],
    ['dataDir', 'WALSTREAM_DATA_DIR'],
    ['wal.writeAheadBuffer.keepaliveMs', 'WALSTREAM_WAL__WRITE_AHEAD_BUFFER__KEEPALIVE_MS'],
    ['objectStore.s3.useSSL', 'WALSTREAM_OBJECT_STORE__S3__USE_SSL'],
    ['objectStore.s3.endPoint', 'WALSTREAM_OBJECT_STORE__S3__END_POINT'],
    ['standalone.streamingNodes', 'WALSTREAM_STANDALONE__STREAMING_NODES'],
  ])('%s ↔ %s', (p, env) => {
    expect(envNameOf(p)).toBe(env);
    expect(describeConfig().find((r) => r.path === p)?.env).toBe(env);
  });

  it('gives every field a distinct env name', () => {
    const names = CONFIG_FIELDS.map((f) => f.env);
    expect(new Set(names).size).toBe(names.length);
  });

  it('maps every env name to its own field (non-strings refused as that field, strings set on it)', () => {
    for (const f of CONFIG_FIELDS) {
      if (f.spec.kind === 'string') {
        const v = f.spec.urlProtocols ? 'redis://h:1' : 'abc';
        const c = load({ env: { [f.env]: v } }) as unknown as Record<string, unknown>;
        expect([f.path, getAtPath(c, f.path)]).toEqual([f.path, v]);
      } else {
        expect(issuesOf({ env: { [f.env]: '!bad' } }).map((i) => [i.path, i.source])).toEqual([[f.path, `env ${f.env}`]]);
      }
    }
  });

  it('reports WALSTREAM_ variables that look like settings (in name order), ignores the rest', () => {
    const issues = issuesOf({
      env: {
        WALSTREAM_HTTP__PROT: '1',
        WALSTREAM_HTTP_PORT: '2',
        WALSTREAM_LOG_LEVELS: 'debug',
        WALSTREAM_TEST_REDIS: 'redis://x',
        PATH: '/bin',
        HTTP__PORT: '3',
      },
    });
    expect(issues).toEqual([
      { path: 'httpPort', expected: 'a known setting (did you mean WALSTREAM_HTTP__PORT?)', got: '"2"', source: 'env WALSTREAM_HTTP_PORT' },
      { path: 'http.prot', expected: 'a known setting (did you mean WALSTREAM_HTTP__PORT?)', got: '"1"', source: 'env WALSTREAM_HTTP__PROT' },
      { path: 'logLevels', expected: 'a known setting (did you mean WALSTREAM_LOG_LEVEL?)', got: '"debug"', source: 'env WALSTREAM_LOG_LEVELS' },
    ]);
  });
});

describe('describeConfig', () => {
  it('has one documented row per field', () => {
    const rows = describeConfig();
    expect(rows.map((r) => r.path)).toEqual(CONFIG_FIELDS.map((f) => f.path));
    for (const r of rows) {
      expect(r.doc.length).toBeGreaterThan(5);
      expect(r.type).not.toBe('');
      expect(r.default).not.toBe('');
      expect(r.flag).toBe(`--${r.path}`);
    }
  });

  it.each<[string, Partial<ReturnType<typeof describeConfig>[number]>]>([
    ['wal.local.fsync', { type: 'one of always|interval', default: '"always"', env: 'WALSTREAM_WAL__LOCAL__FSYNC' }],
    ['http.bodyLimitBytes', { type: 'integer ≥ 1', default: '8388608 (8 MiB)', unit: 'bytes' }],
    ['lease.ttlMs', { default: '3000 (3 s)', unit: 'ms' }],
    ['segment.maxIdleMs', { default: '600000 (10 min)' }],
    ['nodeId', { default: 'standalone in standalone mode, else <mode>-<hostname>-<pid>' }],
    ['objectStore.local.dir', { default: '<dataDir>/objects' }],
  ])('%s', (p, expected) => {
    expect(describeConfig().find((r) => r.path === p)).toMatchObject(expected);
  });

  it('renders a Markdown table', () => {
    const md = describeConfigMarkdown().split('\n');
    expect(md).toHaveLength(CONFIG_FIELDS.length + 2);
    expect(md[0]).toBe('| setting | type | default | env | meaning |');
    expect(md).toContain(
      '| `wal.local.fsync` | one of always\\|interval | "always" | `WALSTREAM_WAL__LOCAL__FSYNC` | When an append is fsynced: always (before it is acknowledged) or interval (acknowledged once written, fsynced within fsyncIntervalMs; a machine crash can lose that window). |',
    );
  });

  it('agrees with the doc comments of config/schema.ts (each says the same and states its default)', () => {
    const file = path.join(__dirname, '../../config/schema.ts');
    const src = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const interfaces = new Map<string, ts.InterfaceDeclaration>();
    src.forEachChild((n) => {
      if (ts.isInterfaceDeclaration(n)) interfaces.set(n.name.text, n);
    });
    const norm = (s: string): string => s.replace(/`/g, '').replace(/\s+/g, ' ').trim();
    const docs = new Map<string, string>();
    const walk = (decl: ts.InterfaceDeclaration, prefix: string): void => {
      for (const m of decl.members) {
        if (!ts.isPropertySignature(m) || m.type === undefined) continue;
        const p = prefix === '' ? m.name.getText(src) : `${prefix}.${m.name.getText(src)}`;
        const ref = ts.isTypeReferenceNode(m.type) ? interfaces.get(m.type.typeName.getText(src)) : undefined;
        if (ref !== undefined) {
          walk(ref, p);
          continue;
        }
        const jsdoc = ts.getJSDocCommentsAndTags(m).filter(ts.isJSDoc);
        docs.set(p, norm(jsdoc.map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ')));
      }
    };
    const root = interfaces.get('WalstreamConfig');
    expect(root).toBeDefined();
    walk(root as ts.InterfaceDeclaration, '');

    const walOptionKeys = new Set(Object.keys(DEFAULT_WAL_OPTIONS));
    for (const f of CONFIG_FIELDS) {
      const doc = docs.get(f.path);
      if (doc === undefined) {
        // inherited from WalOptions (documented in actors/wal/options.ts)
        expect([f.path, walOptionKeys.has(f.path.split('.')[1] ?? '')]).toEqual([f.path, true]);
        continue;
      }
      expect([f.path, doc]).toEqual([f.path, expect.stringContaining(norm(f.spec.doc))]);
      expect([f.path, doc]).toEqual([f.path, expect.stringMatching(/Default/)]);
    }
    const inherited = CONFIG_FIELDS.filter((f) => f.path.startsWith('wal.') && walOptionKeys.has(f.path.split('.')[1] ?? '')).length;
    expect(inherited).toBe(13);
    expect(docs.size).toBe(CONFIG_FIELDS.length - inherited);
    expect(CONFIG_SCHEMA.kind).toBe('section');
  });
});

describe('redactConfig', () => {
  it('masks secrets and URL passwords in a copy', () => {
    const c = load({
      flags: { 'objectStore.s3.accessKey': 'AKIA', 'objectStore.s3.secretKey': 'shh', 'redis.url': 'redis://user:pw@h:6379/0' },
    });
    const r = redactConfig(c);
    expect(r.objectStore.s3).toMatchObject({ accessKey: '***', secretKey: '***' });
    expect(r.redis.url).toBe('redis://user:***@h:6379/0');
    expect(c.objectStore.s3.secretKey).toBe('shh');
    expect(c.redis.url).toBe('redis://user:pw@h:6379/0');
    expect(redactConfig(load()).objectStore.s3.accessKey).toBe('');
  });
});
