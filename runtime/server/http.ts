/**
 * The HTTP gateway: a JSON face of a WalstreamClient (fastify). Routes, each body checked against
 * its JSON schema (./http-schemas.ts) and decoded by ./json.ts before the client sees it:
 *
 * | route | body / query | answer |
 * |---|---|---|
 * | GET /healthz | | `{ok:true}`; 503 once closing |
 * | GET /status | | ClusterStatus |
 * | POST /collections | `{name, schema:{fields}, shards?}` | CollectionInfo (201) |
 * | GET /collections | | `{collections: CollectionInfo[]}` |
 * | GET /collections/:name | | CollectionInfo |
 * | DELETE /collections/:name | | `{ok:true}` |
 * | POST /collections/:name/partitions | `{name}` | PartitionInfo (201) |
 * | DELETE /collections/:name/partitions/:partition | | `{ok:true}` |
 * | POST /collections/:name/flush | none | FlushResult (the sealed segments per vchannel) |
 * | POST /collections/:name/insert | `{partition?, columns:[{name,type,data,dim?}], idempotencyKey?}` | WriteResult |
 * | POST /collections/:name/delete | `{partition?, primaryKeys:{type,data}, idempotencyKey?}` | WriteResult |
 * | POST /collections/:name/txns | `{shard?, keepaliveMs?}` | `{txnId, vchannel}` (201) |
 * | POST /txns/:id/insert, /txns/:id/delete | as insert / delete without idempotencyKey | AppendResult |
 * | POST /txns/:id/commit, /txns/:id/rollback | none | AppendResult |
 * | POST /transfer | `{pchannel, toNode?}` | TransferResult |
 * | GET /subscribe?… , POST /subscribe | vchannel / pchannel / collection(+shard), policy, id, timetickGt, timetickGte, types, credits | NDJSON stream |
 *
 * Any request may carry `x-timeout-ms` (its deadline). Errors: ./http-errors.ts. Bigints are
 * decimal strings and vectors number arrays in every answer.
 */
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../clock';
import { ErrorCode, StreamingError, invalidArgument } from '../errors';
import { createLogger, type Logger } from '../logger';
import type { CallOptions, CollectionInfo, SubscribeRequest, WalstreamClient } from '../client/api';
import type { Column, PrimaryKeys } from '../message/types';
import { pchannelOf } from '../message/types';
import { validateInsert } from '../message/validate';
import { HttpEdgeError, NOT_FOUND, httpStatusOf, normalizeError } from './http-errors';
import { SCHEMAS, SUBSCRIBE_BODY, SUBSCRIBE_QUERY, TIMEOUT_HEADER } from './http-schemas';
import { SubscriptionStream, type HttpEvents } from './http-subscribe';
import { TxnRegistry } from './http-txns';
import { decodeColumns, decodePrimaryKeys, decodeSubscribeParams, stringifyJson, type JsonColumn, type JsonPrimaryKeys, type SubscribeParams } from './json';

export interface HttpServerOptions {
  /** Interface to listen on (config `http.host`). */
  host: string;
  /** TCP port; 0 picks a free one (config `http.port`). */
  port: number;
  /** Largest request body accepted (config `http.bodyLimitBytes`); larger ones get 413. */
  bodyLimitBytes: number;
  /** Requests at debug, errors at warn. Default: the `http` logger. */
  logger?: Logger;
  clock?: Clock;
  /** Most transactions the gateway holds open. Default 1024. */
  maxOpenTxns?: number;
  /** Idle time after which the gateway forgets a transaction that named no keepalive (ms). Default 10000. */
  txnKeepaliveMs?: number;
  /** A heartbeat line on a subscription stream after this long without a line (ms). Default 5000. */
  heartbeatMs?: number;
  /**
   * How long a subscription's 200 waits for its first message (ms): long enough that, once the
   * caller sees the 200, the subscription is in place (a `latest` subscriber misses nothing written
   * after it) and a subscription that cannot start is a plain error answer. Default 2000.
   */
  firstMessageWaitMs?: number;
  /** How long close() waits for in-flight requests before cutting their connections (ms). Default 5000. */
  closeTimeoutMs?: number;
  /** Instrumentation events (see HttpEvents). */
  events?: HttpEvents;
}

export interface HttpServer {
  /** `http://host:port`, with the port actually bound. */
  readonly address: string;
  readonly port: number;
  /** Stops accepting, ends streaming responses, waits for in-flight requests (bounded). Idempotent. */
  close(): Promise<void>;
}

interface NameParams {
  name: string;
}

/** Collection schemas for checking inserts at the edge (a stale entry is refreshed before it rejects anything). */
class CatalogCache {
  private readonly byName = new Map<string, CollectionInfo>();
  constructor(private readonly client: WalstreamClient) {}

  async get(name: string, o: CallOptions, refresh = false): Promise<CollectionInfo> {
    const hit = refresh ? undefined : this.byName.get(name);
    if (hit) return hit;
    const info = await this.client.describeCollection(name, o);
    this.byName.set(name, info);
    return info;
  }

  forget(name: string): void {
    this.byName.delete(name);
  }

  /**
   * Checks `check` against the cached collection; when that fails, once more against a fresh
   * description if the name now means another collection (dropped and created again).
   */
  async check(name: string, o: CallOptions, check: (info: CollectionInfo) => void): Promise<void> {
    const cached = await this.get(name, o);
    try {
      check(cached);
    } catch (e) {
      const fresh = await this.get(name, o, true);
      if (fresh.id === cached.id) throw e; // a collection's schema never changes
      check(fresh);
    }
  }
}

function checkInsert(columns: Column[]): (info: CollectionInfo) => void {
  return (info) => void validateInsert(info.schema, columns);
}

function checkDelete(keys: PrimaryKeys): (info: CollectionInfo) => void {
  return (info) => {
    const pk = info.schema.fields.find((f) => f.primaryKey === true);
    if (pk && pk.type !== keys.type) {
      throw invalidArgument(`primaryKeys.type must be ${pk.type}, the type of ${info.name}'s primary key ${pk.name}`, { field: 'primaryKeys.type', reason: 'type mismatch', expected: pk.type });
    }
  };
}

export async function startHttpServer(client: WalstreamClient, options: HttpServerOptions): Promise<HttpServer> {
  const logger = options.logger ?? createLogger('http');
  const clock = options.clock ?? systemClock;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
  const txns = new TxnRegistry({ clock, ...(options.maxOpenTxns !== undefined ? { maxOpen: options.maxOpenTxns } : {}), ...(options.txnKeepaliveMs !== undefined ? { defaultKeepaliveMs: options.txnKeepaliveMs } : {}) });
  const catalog = new CatalogCache(client);
  const streams = new Set<SubscriptionStream>();
  let closing: Promise<void> | undefined;
  /** Set first thing in close(): intake stops. */
  let shuttingDown = false;

  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes,
    // Answers of our own during close (below) are clearer than fastify's.
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, allowUnionTypes: true } },
  });
  // Bodies: bigints and vectors by the model's rule.
  app.setReplySerializer((payload) => stringifyJson(payload));

  // Requests in flight per connection: close() ends the connections that have none (keep-alive
  // ones, and ones a client opened without sending anything), the others once their answer is out.
  const connections = new Map<Socket, number>();
  app.server.on('connection', (socket: Socket) => {
    connections.set(socket, 0);
    socket.once('close', () => connections.delete(socket));
  });
  const endIfIdle = (socket: Socket): void => {
    if (shuttingDown && (connections.get(socket) ?? 0) === 0) socket.destroySoon();
  };

  const startedAt = new WeakMap<FastifyRequest, number>();
  app.addHook('onRequest', async (req, reply) => {
    startedAt.set(req, clock.monotonic());
    const socket = req.raw.socket;
    connections.set(socket, (connections.get(socket) ?? 0) + 1);
    reply.raw.once('close', () => {
      if (connections.has(socket)) connections.set(socket, Math.max(0, (connections.get(socket) ?? 1) - 1));
      endIfIdle(socket);
    });
    if (shuttingDown && req.url !== '/healthz') throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'the server is shutting down');
  });
  // A POST without a body is checked as `{}` (so its schema names the missing fields).
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && req.method === 'POST') req.body = {};
  });
  app.addHook('onResponse', async (req, reply) => {
    const started = startedAt.get(req) ?? clock.monotonic();
    logger.debug('request', { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(clock.monotonic() - started) });
  });

  app.setErrorHandler((error, req, reply) => {
    const e = normalizeError(error, options.bodyLimitBytes);
    const status = httpStatusOf(e);
    logger.warn('request failed', { method: req.method, url: req.url, status, code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) });
    if (status === 429 || status === 503) void reply.header('retry-after', '1');
    void reply.code(status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new HttpEdgeError(404, `no route ${req.method} ${req.url.split('?')[0] ?? ''}`, { field: '', reason: NOT_FOUND });
    logger.warn('request failed', { method: req.method, url: req.url, status: 404, code: e.code, message: e.message });
    void reply.code(404).send(e.toJSON());
  });

  const callOptions = (req: FastifyRequest): CallOptions => {
    const h = req.headers[TIMEOUT_HEADER];
    return typeof h === 'string' ? { timeoutMs: Number(h) } : {};
  };

  // ---------------------------------------------------------------- health and admin

  app.get('/healthz', async (_req, reply) => {
    if (shuttingDown) return reply.code(503).send({ ok: false, code: ErrorCode.ON_SHUTDOWN });
    return { ok: true };
  });

  app.get('/status', { schema: { headers: SCHEMAS.headers } }, (req) => client.status(callOptions(req)));

  const knownPChannels = async (o: CallOptions): Promise<Set<string>> => new Set((await client.status(o)).pchannels.map((p) => p.name));
  const requirePChannel = async (pchannel: string, field: string, o: CallOptions): Promise<void> => {
    if (!(await knownPChannels(o)).has(pchannel)) throw invalidArgument(`no pchannel ${pchannel}`, { field, reason: NOT_FOUND });
  };

  app.post<{ Body: { pchannel: string; toNode?: string } }>('/transfer', { schema: { ...SCHEMAS.transfer, headers: SCHEMAS.headers } }, async (req) => {
    const o = callOptions(req);
    await requirePChannel(req.body.pchannel, 'pchannel', o);
    return client.transfer(req.body.pchannel, req.body.toNode, o);
  });

  // ---------------------------------------------------------------- catalog

  app.post<{ Body: { name: string; schema: CollectionInfo['schema']; shards?: number } }>(
    '/collections',
    { schema: { ...SCHEMAS.createCollection, headers: SCHEMAS.headers } },
    async (req, reply) => {
      catalog.forget(req.body.name);
      const info = await client.createCollection({ name: req.body.name, schema: req.body.schema, ...(req.body.shards !== undefined ? { shards: req.body.shards } : {}) }, callOptions(req));
      return reply.code(201).send(info);
    },
  );

  app.get('/collections', { schema: { headers: SCHEMAS.headers } }, async (req) => ({ collections: await client.listCollections(callOptions(req)) }));

  app.get<{ Params: NameParams }>('/collections/:name', { schema: { ...SCHEMAS.collection, headers: SCHEMAS.headers } }, (req) =>
    client.describeCollection(req.params.name, callOptions(req)),
  );

  app.delete<{ Params: NameParams }>('/collections/:name', { schema: { ...SCHEMAS.collection, headers: SCHEMAS.headers } }, async (req) => {
    catalog.forget(req.params.name);
    try {
      await client.dropCollection(req.params.name, callOptions(req));
    } finally {
      catalog.forget(req.params.name);
    }
    return { ok: true };
  });

  app.post<{ Params: NameParams; Body: { name: string } }>(
    '/collections/:name/partitions',
    { schema: { ...SCHEMAS.createPartition, headers: SCHEMAS.headers } },
    async (req, reply) => {
      const p = await client.createPartition(req.params.name, req.body.name, callOptions(req));
      catalog.forget(req.params.name);
      return reply.code(201).send(p);
    },
  );

  app.delete<{ Params: NameParams & { partition: string } }>(
    '/collections/:name/partitions/:partition',
    { schema: { ...SCHEMAS.dropPartition, headers: SCHEMAS.headers } },
    async (req) => {
      await client.dropPartition(req.params.name, req.params.partition, callOptions(req));
      catalog.forget(req.params.name);
      return { ok: true };
    },
  );

  app.post<{ Params: NameParams }>('/collections/:name/flush', { schema: { ...SCHEMAS.flush, headers: SCHEMAS.headers } }, (req) =>
    client.flush(req.params.name, callOptions(req)),
  );

  // ---------------------------------------------------------------- writes

  app.post<{ Params: NameParams; Body: { partition?: string; columns: JsonColumn[]; idempotencyKey?: string } }>(
    '/collections/:name/insert',
    { schema: { ...SCHEMAS.insert, headers: SCHEMAS.headers } },
    async (req) => {
      const o = callOptions(req);
      const columns = decodeColumns(req.body.columns);
      await catalog.check(req.params.name, o, checkInsert(columns));
      const { partition, idempotencyKey } = req.body;
      return client.insert({ collection: req.params.name, columns, ...(partition !== undefined ? { partition } : {}), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }, o);
    },
  );

  app.post<{ Params: NameParams; Body: { partition?: string; primaryKeys: JsonPrimaryKeys; idempotencyKey?: string } }>(
    '/collections/:name/delete',
    { schema: { ...SCHEMAS.delete, headers: SCHEMAS.headers } },
    async (req) => {
      const o = callOptions(req);
      const primaryKeys = decodePrimaryKeys(req.body.primaryKeys);
      await catalog.check(req.params.name, o, checkDelete(primaryKeys));
      const { partition, idempotencyKey } = req.body;
      return client.delete({ collection: req.params.name, primaryKeys, ...(partition !== undefined ? { partition } : {}), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }, o);
    },
  );

  // ---------------------------------------------------------------- transactions

  app.post<{ Params: NameParams; Body: { shard?: number; keepaliveMs?: number } }>(
    '/collections/:name/txns',
    { schema: { ...SCHEMAS.beginTxn, headers: SCHEMAS.headers } },
    async (req, reply) => {
      txns.reserve();
      const { shard, keepaliveMs } = req.body;
      const txn = await client.beginTxn(req.params.name, { ...callOptions(req), ...(shard !== undefined ? { shard } : {}), ...(keepaliveMs !== undefined ? { keepaliveMs } : {}) });
      const txnId = txns.add(txn, req.params.name, keepaliveMs);
      return reply.code(201).send({ txnId, vchannel: txn.vchannel });
    },
  );

  /** Runs `op` on an open transaction; a transaction the WAL reports as over is forgotten. */
  const onTxn = async <T>(id: string, op: (e: ReturnType<TxnRegistry['get']>) => Promise<T>, take = false): Promise<T> => {
    const entry = take ? txns.take(id) : txns.get(id);
    try {
      return await op(entry);
    } catch (e) {
      if (e instanceof StreamingError && (e.code === ErrorCode.TRANSACTION_EXPIRED || e.code === ErrorCode.INVALID_TRANSACTION_STATE) && !take) txns.forget(id);
      throw e;
    }
  };

  app.post<{ Params: { id: string }; Body: { partition?: string; columns: JsonColumn[] } }>(
    '/txns/:id/insert',
    { schema: { ...SCHEMAS.txnInsert, headers: SCHEMAS.headers } },
    (req) =>
      onTxn(req.params.id, async ({ txn, collection }) => {
        const o = callOptions(req);
        const columns = decodeColumns(req.body.columns);
        await catalog.check(collection, o, checkInsert(columns));
        return txn.insert(columns, req.body.partition, o);
      }),
  );

  app.post<{ Params: { id: string }; Body: { partition?: string; primaryKeys: JsonPrimaryKeys } }>(
    '/txns/:id/delete',
    { schema: { ...SCHEMAS.txnDelete, headers: SCHEMAS.headers } },
    (req) =>
      onTxn(req.params.id, async ({ txn, collection }) => {
        const o = callOptions(req);
        const primaryKeys = decodePrimaryKeys(req.body.primaryKeys);
        await catalog.check(collection, o, checkDelete(primaryKeys));
        return txn.delete(primaryKeys, req.body.partition, o);
      }),
  );

  app.post<{ Params: { id: string } }>('/txns/:id/commit', { schema: { ...SCHEMAS.txnFinish, headers: SCHEMAS.headers } }, (req) =>
    onTxn(req.params.id, ({ txn }) => txn.commit(callOptions(req)), true),
  );

  app.post<{ Params: { id: string } }>('/txns/:id/rollback', { schema: { ...SCHEMAS.txnFinish, headers: SCHEMAS.headers } }, (req) =>
    onTxn(req.params.id, ({ txn }) => txn.rollback(callOptions(req)), true),
  );

  // ---------------------------------------------------------------- subscriptions

  const subscribe = async (params: SubscribeParams, req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const decoded = decodeSubscribeParams(params);
    const o = callOptions(req);
    const t = decoded.target;
    let request: SubscribeRequest;
    if ('collection' in t) {
      const info = await client.describeCollection(t.collection, o);
      const vchannel = info.vchannels[t.shard];
      if (vchannel === undefined) throw invalidArgument(`collection ${t.collection} has ${info.vchannels.length} shards; no shard ${t.shard}`, { field: 'shard', reason: 'out of range' });
      request = { vchannel, policy: decoded.policy };
    } else {
      await requirePChannel('pchannel' in t ? t.pchannel : pchannelOf(t.vchannel), 'pchannel' in t ? 'pchannel' : 'vchannel', o);
      request = 'pchannel' in t ? { pchannel: t.pchannel, policy: decoded.policy } : { vchannel: t.vchannel, policy: decoded.policy };
    }
    if (decoded.filters) request.filters = decoded.filters;
    if (decoded.credits !== undefined) request.credits = decoded.credits;

    const sub = client.subscribe(request);
    const stream = new SubscriptionStream(sub, reply.raw, { clock, logger, heartbeatMs, firstMessageWaitMs: options.firstMessageWaitMs ?? 2_000, ...(options.events ? { events: options.events } : {}) });
    streams.add(stream);
    try {
      if (!(await stream.open())) {
        if (shuttingDown) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'the server is shutting down');
        reply.hijack(); // the caller went away
        return;
      }
      reply.hijack();
      await stream.run();
    } finally {
      streams.delete(stream);
    }
  };

  app.get<{ Querystring: SubscribeParams }>('/subscribe', { schema: { querystring: SUBSCRIBE_QUERY, headers: SCHEMAS.headers } }, (req, reply) => subscribe(req.query, req, reply));
  app.post<{ Body: SubscribeParams }>('/subscribe', { schema: { body: SUBSCRIBE_BODY, headers: SCHEMAS.headers } }, (req, reply) => subscribe(req.body, req, reply));

  // ---------------------------------------------------------------- lifecycle

  await app.listen({ host: options.host, port: options.port });
  const bound = app.server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const address = `http://${host}:${port}`;
  logger.info('http gateway listening', { address });

  const doClose = async (): Promise<void> => {
    shuttingDown = true;
    logger.info('http gateway closing', { address, streams: streams.size, openTxns: txns.size });
    // Stop intake first (new requests get 503 from the onRequest hook), then end the streams.
    const shutdown = new StreamingError(ErrorCode.ON_SHUTDOWN, 'the server is shutting down');
    for (const s of [...streams]) s.stop(shutdown);
    txns.close();
    let timer: { cancel(): void } | undefined;
    const deadline = new Promise<'timeout'>((resolve) => (timer = clock.setTimeout(() => resolve('timeout'), closeTimeoutMs)));
    const closed = app.close().then(() => 'closed' as const);
    // Idle connections would hold close() up: end them now; busy ones finish their request first.
    for (const socket of connections.keys()) endIfIdle(socket);
    const how = await Promise.race([closed, deadline]);
    timer?.cancel();
    if (how === 'timeout') {
      logger.warn('http gateway: in-flight requests did not finish in time; closing their connections', { closeTimeoutMs });
      app.server.closeAllConnections();
      await closed.catch((e: unknown) => logger.warn('http gateway close failed', { error: String(e) }));
    }
    logger.info('http gateway closed', { address });
  };

  return {
    address,
    port,
    close: () =>
      (closing ??= doClose().catch((e: unknown) => {
        logger.warn('http gateway close failed', { error: String(e) });
      })),
  };
}
