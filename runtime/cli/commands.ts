/**
 * The client commands of `walstream` (they talk to a running server over HTTP, `--url`), plus
 * `demo` and `config`. Each returns its exit status: 0 done, 1 failed (the error is printed), 2 bad
 * usage (UsageError, thrown to main).
 */
import { promises as fs } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { describeConfig, describeConfigMarkdown, loadConfig, parseFlags, redactConfig } from '../../config';
import { StreamingError } from '../errors';
import type { CollectionSchema, FieldType } from '../message/types';
import type { DeliverFilters, DeliverPolicy, WriteResult } from '../client/api';
import { decodeSubscribeParams, rowsToColumns, stringifyJson, type SubscribeTarget } from '../server/json';
import { UsageError, boolOption, intOption, parseCommand, stringOption, urlOption, type OptionSpecs, type Parsed } from './args';
import { DEFAULT_DEMO_OPTIONS, runDemo } from './demo';
import { formatCollection, formatCollections, formatDemoSummary, formatMessage, formatStatus, formatTransfer } from './format';
import { DEFAULT_URL, HttpClient } from './http-client';
import type { WalstreamClient } from '../client/api';
import type { LogMessage } from '../message/types';
import { println, type CliIo } from './io';
import { Progress } from './progress';

const URL_OPTION: OptionSpecs = {
  url: { type: 'string' },
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
  'timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
};

/** A client of a standalone server over HTTP (--url), or of a cluster through its Redis mailbox (--redis). */
async function clientOf(p: Parsed): Promise<{ client: WalstreamClient; timeoutMs: number; close(): Promise<void> }> {
  const timeoutMs = intOption(p, 'timeout-ms', 30_000, 1, 24 * 3_600_000);
  const redis = stringOption(p, 'redis');
  if (redis !== undefined) {
    const { connectClusterClient } = await import('../server/cluster/cluster-coordinator');
    const { client, close } = await connectClusterClient({ redis: { url: redis, keyPrefix: stringOption(p, 'redis-prefix') ?? 'walstream' } });
    return { client, timeoutMs, close };
  }
  const client = new HttpClient(urlOption(p, DEFAULT_URL), { defaultTimeoutMs: timeoutMs });
  return { client, timeoutMs, close: () => client.close() };
}

async function withClient(p: Parsed, fn: (client: WalstreamClient, timeoutMs: number) => Promise<number>): Promise<number> {
  const { client, timeoutMs, close } = await clientOf(p);
  try {
    return await fn(client, timeoutMs);
  } finally {
    await close();
  }
}

// ------------------------------------------------------------------ status, transfer

export async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseCommand('status', args, URL_OPTION);
  return withClient(p, async (client) => {
    const s = await client.status();
    println(io.stdout, boolOption(p, 'json') ? stringifyJson(s) : formatStatus(s));
    return 0;
  });
}

export async function transferCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseCommand('transfer', args, { ...URL_OPTION, to: { type: 'string' } }, [1, 1]);
  return withClient(p, async (client) => {
    const t = await client.transfer(p.positionals[0] as string, stringOption(p, 'to'));
    println(io.stdout, boolOption(p, 'json') ? stringifyJson(t) : formatTransfer(t));
    return 0;
  });
}

// ------------------------------------------------------------------ collections

/** `--schema '{"fields":[…]}'`, `--schema @file.json`, or the shorthand `--dim N [--pk int64|varchar]`. */
async function schemaOption(p: Parsed): Promise<CollectionSchema> {
  const given = stringOption(p, 'schema');
  if (given !== undefined) {
    const text = given.startsWith('@') ? await fs.readFile(given.slice(1), 'utf8') : given;
    try {
      return JSON.parse(text) as CollectionSchema;
    } catch (e) {
      throw new UsageError(`--schema: not JSON (${(e as Error).message})`);
    }
  }
  const dim = intOption(p, 'dim', 0, 1, 32768);
  if (dim === 0) throw new UsageError('collections create: give --schema JSON|@file, or --dim N for {id, vector[N]}');
  const pk = stringOption(p, 'pk') ?? 'int64';
  if (pk !== 'int64' && pk !== 'varchar') throw new UsageError('--pk: expected int64 or varchar');
  return {
    fields: [
      { name: 'id', type: pk as FieldType, primaryKey: true, ...(pk === 'varchar' ? { maxLength: 256 } : {}) },
      { name: 'vector', type: 'floatVector', dim },
    ],
  };
}

export async function collectionsCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  const json = (p: Parsed): boolean => boolOption(p, 'json');
  switch (sub) {
    case undefined:
    case 'list': {
      const p = parseCommand('collections list', rest, URL_OPTION);
      return withClient(p, async (client) => {
        const cs = await client.listCollections();
        println(io.stdout, json(p) ? stringifyJson(cs) : formatCollections(cs));
        return 0;
      });
    }
    case 'create': {
      const p = parseCommand('collections create', rest, { ...URL_OPTION, schema: { type: 'string' }, dim: { type: 'string' }, pk: { type: 'string' }, shards: { type: 'string' } }, [1, 1]);
      const schema = await schemaOption(p);
      const shards = intOption(p, 'shards', 1, 1, 1024);
      return withClient(p, async (client) => {
        const info = await client.createCollection({ name: p.positionals[0] as string, schema, shards });
        println(io.stdout, json(p) ? stringifyJson(info) : `created ${formatCollection(info)}`);
        return 0;
      });
    }
    case 'describe': {
      const p = parseCommand('collections describe', rest, URL_OPTION, [1, 1]);
      return withClient(p, async (client) => {
        const info = await client.describeCollection(p.positionals[0] as string);
        println(io.stdout, json(p) ? stringifyJson(info) : formatCollection(info));
        return 0;
      });
    }
    case 'drop': {
      const p = parseCommand('collections drop', rest, URL_OPTION, [1, 1]);
      return withClient(p, async (client) => {
        await client.dropCollection(p.positionals[0] as string);
        println(io.stdout, json(p) ? stringifyJson({ dropped: p.positionals[0] }) : `dropped ${p.positionals[0]}`);
        return 0;
      });
    }
    case 'flush': {
      const p = parseCommand('collections flush', rest, URL_OPTION, [1, 1]);
      return withClient(p, async (client) => {
        const r = await client.flush(p.positionals[0] as string);
        println(io.stdout, json(p) ? stringifyJson(r) : `flushed ${r.collection}: ${r.segments.map((x) => `${x.vchannel} [${x.segmentIds.join(',')}]`).join(', ') || 'no growing segments'}`);
        return 0;
      });
    }
    default:
      throw new UsageError(`collections: unknown subcommand ${JSON.stringify(sub)} (list|create|describe|drop|flush)`);
  }
}

// ------------------------------------------------------------------ insert

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON array of row objects, or NDJSON (one row object per line). */
export function parseRows(text: string, source: string): unknown[] {
  const t = text.trim();
  if (t === '') throw new UsageError(`${source}: no rows`);
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t) as unknown[];
    } catch (e) {
      throw new UsageError(`${source}: not a JSON array (${(e as Error).message})`);
    }
  }
  return t
    .split('\n')
    .map((l, i) => ({ l: l.trim(), i }))
    .filter(({ l }) => l !== '')
    .map(({ l, i }) => {
      try {
        return JSON.parse(l) as unknown;
      } catch (e) {
        throw new UsageError(`${source}:${i + 1}: not JSON (${(e as Error).message})`);
      }
    });
}

export async function insertCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseCommand(
    'insert',
    args,
    { ...URL_OPTION, rows: { type: 'string' }, file: { type: 'string' }, partition: { type: 'string' }, batch: { type: 'string' }, 'idempotency-key': { type: 'string' } },
    [1, 1],
  );
  const collection = p.positionals[0] as string;
  const rowsArg = stringOption(p, 'rows');
  const file = stringOption(p, 'file');
  if ((rowsArg === undefined) === (file === undefined)) throw new UsageError('insert: give exactly one of --rows JSON or --file PATH (- for stdin)');
  let text: string;
  if (rowsArg !== undefined) text = rowsArg;
  else if (file === '-') {
    if (!io.stdin) throw new UsageError('insert: no standard input');
    text = await readAll(io.stdin);
  } else text = await fs.readFile(file as string, 'utf8');
  const rows = parseRows(text, file ?? '--rows');
  const batch = intOption(p, 'batch', 1000, 1, 1_000_000);
  const partition = stringOption(p, 'partition');
  const key = stringOption(p, 'idempotency-key') ?? randomUUID();
  return withClient(p, async (client) => {
    const info = await client.describeCollection(collection);
    let total = 0;
    for (let i = 0; i < rows.length; i += batch) {
      const columns = rowsToColumns(info.schema, rows.slice(i, i + batch), 'rows', i);
      const r: WriteResult = await client.insert({ collection, columns, idempotencyKey: `${key}:${i / batch}`, ...(partition !== undefined ? { partition } : {}) });
      total += r.rows;
      if (boolOption(p, 'json')) println(io.stdout, stringifyJson(r));
      else println(io.stdout, `inserted ${r.rows} row(s): ${r.appends.map((a) => `${a.vchannel}@${a.result.timetick} (${a.rows})`).join(', ')}`);
    }
    if (!boolOption(p, 'json') && rows.length > batch) println(io.stdout, `inserted ${total} row(s) into ${collection}`);
    return 0;
  });
}

// ------------------------------------------------------------------ tail

export async function tailCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseCommand(
    'tail',
    args,
    {
      ...URL_OPTION,
      collection: { type: 'string' },
      shard: { type: 'string' },
      pchannel: { type: 'string' },
      policy: { type: 'string' },
      id: { type: 'string' },
      types: { type: 'string' },
      'timetick-gt': { type: 'string' },
      'timetick-gte': { type: 'string' },
      timeticks: { type: 'boolean' },
      limit: { type: 'string' },
    },
    [0, 1],
  );
  const vchannel = p.positionals[0];
  let decoded: { target: SubscribeTarget; policy: DeliverPolicy; filters?: DeliverFilters };
  try {
    decoded = decodeSubscribeParams({
      ...(vchannel !== undefined ? { vchannel } : {}),
      ...(stringOption(p, 'collection') !== undefined ? { collection: stringOption(p, 'collection') } : {}),
      ...(stringOption(p, 'shard') !== undefined ? { shard: stringOption(p, 'shard') } : {}),
      ...(stringOption(p, 'pchannel') !== undefined ? { pchannel: stringOption(p, 'pchannel') } : {}),
      ...(stringOption(p, 'policy') !== undefined ? { policy: stringOption(p, 'policy') } : {}),
      ...(stringOption(p, 'id') !== undefined ? { id: stringOption(p, 'id') } : {}),
      ...(stringOption(p, 'types') !== undefined ? { types: stringOption(p, 'types') } : {}),
      ...(stringOption(p, 'timetick-gt') !== undefined ? { timetickGt: stringOption(p, 'timetick-gt') } : {}),
      ...(stringOption(p, 'timetick-gte') !== undefined ? { timetickGte: stringOption(p, 'timetick-gte') } : {}),
    });
  } catch (e) {
    throw new UsageError(`tail: ${(e as Error).message} (give a vchannel, --collection NAME [--shard N] or --pchannel NAME)`);
  }
  const limit = intOption(p, 'limit', 0, 0);
  const showTimeticks = boolOption(p, 'timeticks');
  const json = boolOption(p, 'json');
  return withClient(p, async (client) => {
    const filters = decoded.filters ? { filters: decoded.filters } : {};
    let sub: { close(): void } & AsyncIterable<LogMessage>;
    if (client instanceof HttpClient) sub = client.subscribeTo({ target: decoded.target, policy: decoded.policy, ...filters });
    else {
      const t = decoded.target;
      const channel = 'collection' in t ? { vchannel: (await client.describeCollection(t.collection)).vchannels[t.shard] ?? '' } : t;
      sub = client.subscribe({ ...channel, policy: decoded.policy, ...filters });
    }
    const onInterrupt = (): void => sub.close();
    io.interrupt?.addEventListener('abort', onInterrupt, { once: true });
    if (io.interrupt?.aborted) sub.close();
    let printed = 0;
    try {
      for await (const m of sub) {
        if (m.type === 'TimeTick' && !showTimeticks) continue;
        println(io.stdout, json ? stringifyJson(m) : formatMessage(m));
        if (limit > 0 && ++printed >= limit) break;
      }
    } finally {
      io.interrupt?.removeEventListener('abort', onInterrupt);
      sub.close();
    }
    return 0;
  });
}

// ------------------------------------------------------------------ demo

export async function demoCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseCommand('demo', args, {
    ...URL_OPTION,
    collection: { type: 'string' },
    rows: { type: 'string' },
    batch: { type: 'string' },
    shards: { type: 'string' },
    dim: { type: 'string' },
    writers: { type: 'string' },
    transfers: { type: 'string' },
    keep: { type: 'boolean' },
  });
  const d = DEFAULT_DEMO_OPTIONS;
  const collection = stringOption(p, 'collection');
  const options = {
    ...(collection !== undefined ? { collection } : {}),
    rows: intOption(p, 'rows', d.rows, 1, 10_000_000),
    batch: intOption(p, 'batch', d.batch, 1, 100_000),
    shards: intOption(p, 'shards', d.shards, 1, 1024),
    dim: intOption(p, 'dim', d.dim, 1, 32768),
    writers: intOption(p, 'writers', d.writers, 1, 256),
    transfers: intOption(p, 'transfers', d.transfers, 0, 100),
    insertTimeoutMs: intOption(p, 'timeout-ms', d.insertTimeoutMs, 1),
    keep: boolOption(p, 'keep'),
  };
  const json = boolOption(p, 'json');
  // Narration and progress go to stderr when stdout carries the JSON summary.
  const out = json ? io.stderr : io.stdout;
  return withClient(p, async (client) => {
    const progress = new Progress(out, 'writing', options.rows, { clock: io.clock });
    const summary = await runDemo(client, { ...options, ...(io.interrupt ? { signal: io.interrupt } : {}) }, io.clock, {
      progress: (done, _total, note) => progress.update(done, note),
      log: (line) => {
        if (out.isTTY) out.write('\r\x1b[K');
        println(out, line);
      },
    });
    progress.finish();
    println(io.stdout, json ? stringifyJson(summary) : formatDemoSummary(summary));
    return summary.ok ? 0 : 1;
  });
}

// ------------------------------------------------------------------ config

export function configCommand(args: string[], io: CliIo): number {
  const own = new Set(['--effective', '--json', '--markdown']);
  const mine = args.filter((a) => own.has(a));
  const settings = args.filter((a) => !own.has(a));
  const effective = mine.includes('--effective');
  if (!effective && settings.length > 0) throw new UsageError(`config: settings (${settings[0]}) are only read with --effective`);
  if (effective) {
    const config = loadConfig({ env: io.env, flags: parseFlags(settings) });
    println(io.stdout, JSON.stringify(redactConfig(config), null, 2));
    return 0;
  }
  if (mine.includes('--json')) println(io.stdout, JSON.stringify(describeConfig(), null, 2));
  else if (mine.includes('--markdown')) println(io.stdout, describeConfigMarkdown());
  else {
    for (const r of describeConfig()) {
      println(io.stdout, `${r.path}  (${r.type}; default ${r.default})`);
      println(io.stdout, `    ${r.doc}`);
      println(io.stdout, `    env ${r.env}, flag ${r.flag}`);
    }
  }
  return 0;
}

/** An error of a command as one line for stderr. */
export function describeError(e: unknown): string {
  if (e instanceof StreamingError) {
    const details = e.details ? ` ${stringifyJson(e.details)}` : '';
    return `${e.code}: ${e.message}${details}`;
  }
  return e instanceof Error ? e.message : String(e);
}
