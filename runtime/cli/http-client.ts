/**
 * A WalstreamClient over the HTTP gateway (runtime/server/http.ts), for the CLI and for tests that
 * drive a server as a user would. Requests are JSON (./../server/json.ts both ways); an error answer
 * is rethrown as the StreamingError the server sent (same code, details, retriable); a server that
 * cannot be reached is UNKNOWN with `details.unreachable`. Subscriptions read the NDJSON stream line
 * by line: nothing is read ahead of the consumer beyond the socket buffers, so a slow consumer slows
 * the server's subscription down (backpressure) instead of piling up lines here.
 */
import { ErrorCode, StreamingError } from '../errors';
import type { MessageId } from '../message/message-id';
import type { Timetick } from '../message/timetick';
import type { Column, LogMessage, PrimaryKeys } from '../message/types';
import type {
  AppendResult,
  CallOptions,
  ClientTxn,
  ClusterStatus,
  CollectionInfo,
  CreateCollectionRequest,
  DeleteRequest,
  FlushResult,
  InsertRequest,
  PartitionInfo,
  SubscribeRequest,
  Subscription,
  TransferResult,
  WalstreamClient,
  WriteResult,
} from '../client/api';
import { TIMEOUT_HEADER } from '../server/http-schemas';
import {
  decodeAppendResult,
  decodeLogMessage,
  decodeWriteResult,
  encodeColumns,
  encodeSubscribeParams,
  stringifyJson,
  type JsonAppendResult,
  type JsonLogMessage,
  type JsonWriteResult,
  type SubscribeTarget,
} from '../server/json';

export const DEFAULT_URL = 'http://127.0.0.1:8480';

export interface HttpClientOptions {
  /** Deadline of a call that names none (ms); sent to the server as `x-timeout-ms`. Default 30000. */
  defaultTimeoutMs?: number;
  /** Extra time the HTTP request is given beyond the call's deadline before it is aborted here (ms). Default 5000. */
  transportSlackMs?: number;
}

/** A subscription request by collection shard, vchannel or pchannel. */
export type HttpSubscribeRequest = { target: SubscribeTarget } & Omit<SubscribeRequest, 'vchannel' | 'pchannel'>;

export class HttpClient implements WalstreamClient {
  readonly baseUrl: string;
  private readonly defaultTimeoutMs: number;
  private readonly slackMs: number;
  private readonly subscriptions = new Set<HttpSubscription>();
  private closed = false;

  constructor(baseUrl: string = DEFAULT_URL, opts: HttpClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.slackMs = opts.transportSlackMs ?? 5_000;
  }

  /** One JSON request; the answer body decoded as JSON, or the server's error thrown. */
  async request<T>(method: string, path: string, body?: unknown, o?: CallOptions): Promise<T> {
    if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'client closed');
    const timeoutMs = o?.timeoutMs ?? this.defaultTimeoutMs;
    const headers: Record<string, string> = { [TIMEOUT_HEADER]: String(Math.max(1, Math.ceil(timeoutMs))) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: stringifyJson(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs + this.slackMs),
      });
    } catch (e) {
      throw transportError(e, method, `${this.baseUrl}${path}`, timeoutMs + this.slackMs);
    }
    const text = await res.text().catch((e: unknown) => {
      throw transportError(e, method, `${this.baseUrl}${path}`, timeoutMs + this.slackMs);
    });
    if (!res.ok) throw errorFromAnswer(res.status, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  // ------------------------------------------------------------------ catalog

  createCollection(req: CreateCollectionRequest, o?: CallOptions): Promise<CollectionInfo> {
    return this.request('POST', '/collections', req, o);
  }

  async dropCollection(name: string, o?: CallOptions): Promise<void> {
    await this.request('DELETE', `/collections/${enc(name)}`, undefined, o);
  }

  createPartition(collection: string, partition: string, o?: CallOptions): Promise<PartitionInfo> {
    return this.request('POST', `/collections/${enc(collection)}/partitions`, { name: partition }, o);
  }

  async dropPartition(collection: string, partition: string, o?: CallOptions): Promise<void> {
    await this.request('DELETE', `/collections/${enc(collection)}/partitions/${enc(partition)}`, undefined, o);
  }

  describeCollection(name: string, o?: CallOptions): Promise<CollectionInfo> {
    return this.request('GET', `/collections/${enc(name)}`, undefined, o);
  }

  async listCollections(o?: CallOptions): Promise<CollectionInfo[]> {
    return (await this.request<{ collections: CollectionInfo[] }>('GET', '/collections', undefined, o)).collections;
  }

  flush(collection: string, o?: CallOptions): Promise<FlushResult> {
    return this.request('POST', `/collections/${enc(collection)}/flush`, undefined, o);
  }

  // ------------------------------------------------------------------ writes

  async insert(req: InsertRequest, o?: CallOptions): Promise<WriteResult> {
    const body = { columns: encodeColumns(req.columns), ...(req.partition !== undefined ? { partition: req.partition } : {}), ...(req.idempotencyKey !== undefined ? { idempotencyKey: req.idempotencyKey } : {}) };
    return decodeWriteResult(await this.request<JsonWriteResult>('POST', `/collections/${enc(req.collection)}/insert`, body, o));
  }

  async delete(req: DeleteRequest, o?: CallOptions): Promise<WriteResult> {
    const body = { primaryKeys: req.primaryKeys, ...(req.partition !== undefined ? { partition: req.partition } : {}), ...(req.idempotencyKey !== undefined ? { idempotencyKey: req.idempotencyKey } : {}) };
    return decodeWriteResult(await this.request<JsonWriteResult>('POST', `/collections/${enc(req.collection)}/delete`, body, o));
  }

  async beginTxn(collection: string, opts: { shard?: number; keepaliveMs?: number } & CallOptions = {}): Promise<ClientTxn> {
    const { shard, keepaliveMs, ...o } = opts;
    const r = await this.request<{ txnId: string; vchannel: string }>(
      'POST',
      `/collections/${enc(collection)}/txns`,
      { ...(shard !== undefined ? { shard } : {}), ...(keepaliveMs !== undefined ? { keepaliveMs } : {}) },
      o,
    );
    return new HttpTxn(this, BigInt(r.txnId), r.vchannel);
  }

  // ------------------------------------------------------------------ reads and admin

  subscribe(req: SubscribeRequest): Subscription {
    const target: SubscribeTarget | undefined = req.vchannel !== undefined ? { vchannel: req.vchannel } : req.pchannel !== undefined ? { pchannel: req.pchannel } : undefined;
    if (target === undefined || (req.vchannel !== undefined && req.pchannel !== undefined)) {
      throw new StreamingError(ErrorCode.INVALID_ARGUMENT, 'subscribe needs exactly one of vchannel or pchannel', { details: { field: 'vchannel' } });
    }
    const { vchannel: _v, pchannel: _p, ...rest } = req;
    return this.subscribeTo({ target, ...rest });
  }

  /** subscribe() that may also name a collection shard. */
  subscribeTo(req: HttpSubscribeRequest): HttpSubscription {
    if (this.closed) throw new StreamingError(ErrorCode.ON_SHUTDOWN, 'client closed');
    const query = new URLSearchParams(encodeSubscribeParams(req)).toString();
    const sub = new HttpSubscription(`${this.baseUrl}/subscribe?${query}`, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    return sub;
  }

  status(o?: CallOptions): Promise<ClusterStatus> {
    return this.request('GET', '/status', undefined, o);
  }

  transfer(pchannel: string, toNode?: string, o?: CallOptions): Promise<TransferResult> {
    return this.request('POST', '/transfer', { pchannel, ...(toNode !== undefined ? { toNode } : {}) }, o);
  }

  /** GET /healthz: true when the server answers 200. */
  async healthy(timeoutMs = 2_000): Promise<boolean> {
    try {
      const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.subscriptions]) s.close();
    return Promise.resolve();
  }
}

class HttpTxn implements ClientTxn {
  constructor(
    private readonly client: HttpClient,
    readonly id: bigint,
    readonly vchannel: string,
  ) {}

  private async post(op: string, body: unknown, o?: CallOptions): Promise<AppendResult> {
    return decodeAppendResult(await this.client.request<JsonAppendResult>('POST', `/txns/${this.id}/${op}`, body, o));
  }

  insert(columns: Column[], partition?: string, o?: CallOptions): Promise<AppendResult> {
    return this.post('insert', { columns: encodeColumns(columns), ...(partition !== undefined ? { partition } : {}) }, o);
  }

  delete(primaryKeys: PrimaryKeys, partition?: string, o?: CallOptions): Promise<AppendResult> {
    return this.post('delete', { primaryKeys, ...(partition !== undefined ? { partition } : {}) }, o);
  }

  commit(o?: CallOptions): Promise<AppendResult> {
    return this.post('commit', undefined, o);
  }

  rollback(o?: CallOptions): Promise<AppendResult> {
    return this.post('rollback', undefined, o);
  }
}

/**
 * One NDJSON subscription stream. The request starts on the first pull (the server answers once
 * the subscription is in place). Heartbeat lines are skipped; an error line is thrown as its
 * StreamingError; close() aborts the request and ends the iteration.
 */
export class HttpSubscription implements Subscription {
  private lastTt: Timetick = 0n;
  private lastLc: MessageId = '';
  private readonly abort = new AbortController();
  private closed = false;
  private started = false;
  /** Heartbeat lines seen (the server had nothing to send for a while). */
  heartbeats = 0;

  constructor(
    readonly url: string,
    private readonly onClose: () => void,
  ) {}

  get lastTimetick(): Timetick {
    return this.lastTt;
  }

  get lastConfirmedId(): MessageId {
    return this.lastLc;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.onClose();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LogMessage> {
    if (this.started) throw new StreamingError(ErrorCode.INVALID_ARGUMENT, 'a subscription can be iterated once');
    this.started = true;
    if (this.closed) return;
    let res: Response;
    try {
      res = await fetch(this.url, { signal: this.abort.signal });
    } catch (e) {
      if (this.closed) return;
      throw transportError(e, 'GET', this.url, undefined);
    }
    if (!res.ok) throw errorFromAnswer(res.status, await res.text().catch(() => ''));
    if (!res.body) return;
    try {
      for await (const line of ndjsonLines(res.body)) {
        const value = JSON.parse(line) as JsonLogMessage | { heartbeat: true } | { error: ReturnType<StreamingError['toJSON']> };
        if ('heartbeat' in value) {
          this.heartbeats++;
          continue;
        }
        if ('error' in value) throw errorFromJson(value.error);
        const m = decodeLogMessage(value);
        this.lastTt = m.timetick;
        this.lastLc = m.lastConfirmedId;
        yield m;
        if (this.closed) return;
      }
    } catch (e) {
      if (this.closed) return;
      if (e instanceof StreamingError) throw e;
      throw transportError(e, 'GET', this.url, undefined);
    } finally {
      this.close();
    }
  }
}

/** The lines of an NDJSON body, read as they arrive (a partial last line waits for its end). */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffered = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line !== '') yield line;
      }
    }
    buffered += decoder.decode();
    if (buffered.trim() !== '') yield buffered.trim();
  } finally {
    reader.releaseLock();
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function errorFromJson(j: { code?: unknown; message?: unknown; retriable?: unknown; details?: unknown }): StreamingError {
  const code = typeof j.code === 'string' && j.code in ErrorCode ? (j.code as ErrorCode) : ErrorCode.UNKNOWN;
  return new StreamingError(code, typeof j.message === 'string' ? j.message : 'error', {
    ...(typeof j.retriable === 'boolean' ? { retriable: j.retriable } : {}),
    ...(typeof j.details === 'object' && j.details !== null ? { details: j.details as Record<string, unknown> } : {}),
  });
}

function errorFromAnswer(status: number, text: string): StreamingError {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    if (typeof j['code'] === 'string') {
      const e = errorFromJson(j);
      return new StreamingError(e.code, e.message, { retriable: e.retriable, details: { ...(e.details ?? {}), httpStatus: status } });
    }
  } catch {
    // not JSON: fall through
  }
  return new StreamingError(ErrorCode.UNKNOWN, `HTTP ${status}: ${text.slice(0, 200)}`, { details: { httpStatus: status } });
}

function transportError(e: unknown, method: string, url: string, timeoutMs: number | undefined): StreamingError {
  const err = e as { name?: string; cause?: { code?: string; message?: string }; message?: string };
  if (err.name === 'TimeoutError') {
    return new StreamingError(ErrorCode.UNKNOWN, `${method} ${url}: no answer within ${timeoutMs} ms (the outcome is unknown)`, {
      cause: e,
      retriable: true,
      details: { deadlineExceeded: true, timeoutMs },
    });
  }
  const reason = err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
  return new StreamingError(ErrorCode.UNKNOWN, `${method} ${url}: cannot reach the walstream server (${reason})`, {
    cause: e,
    retriable: true,
    details: { unreachable: true, reason },
  });
}
