/**
 * The envelope of a mailbox entry: the stream fields of a request (client → inbox) and of a reply
 * (server → the client's reply stream). Control fields are short ASCII/JSON fields, binary parts
 * are raw Buffers; numbers are decimal text. See README.md for the table.
 *
 * Request fields: v (wire version), k (call | open | credit | cancel), id (correlation id),
 * r (reply-to client id), d (deadline, epoch ms), c (command JSON), b (binary part), n (credits).
 * Reply fields: k (ok | err | open | item | end | hb | hello), id, v (result/item JSON), b (binary part),
 * e (error JSON: {code, message, retriable, details?}).
 */
import { ErrorCode, StreamingError, invalidArgument } from '../errors';
import { jsonText, type Payload } from './commands';
import { validateClientId } from './mailbox';
import type { WireFields } from './wire';

export const WIRE_VERSION = '1';

export const RequestKind = {
  /** A request/reply command. */
  call: 'call',
  /** A streaming command: opens a stream of reply items under the request id; `n` = initial credits. */
  open: 'open',
  /** More credits for an open stream (`n`). */
  credit: 'credit',
  /** The client ends an open stream. */
  cancel: 'cancel',
} as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];

export const ReplyKind = {
  /** Result of a call. */
  ok: 'ok',
  /** Error of a call, of a stream's open, or the error that ends an open stream. */
  err: 'err',
  /** The stream is open (the handler accepted it). */
  open: 'open',
  /** One stream item (consumes one credit). */
  item: 'item',
  /** The stream ended normally. */
  end: 'end',
  /** Heartbeat of an open stream that has been quiet (no credit used). */
  hb: 'hb',
  /** First entry of a reply stream (creates it); ignored. */
  hello: 'hello',
} as const;
export type ReplyKind = (typeof ReplyKind)[keyof typeof ReplyKind];

const REQUEST_KINDS = new Set<string>(Object.values(RequestKind));
const REPLY_KINDS = new Set<string>(Object.values(ReplyKind));
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
const ID_RE = /^[A-Za-z0-9_.:-]{1,256}$/;

export interface RequestEnvelope {
  kind: RequestKind;
  id: string;
  replyTo: string;
  /** Epoch ms after which the server drops the request unread. */
  deadline: number;
  command?: Payload;
  credits?: number;
}

export interface ReplyEnvelope {
  kind: ReplyKind;
  id: string;
  payload?: Payload;
  error?: StreamingError;
}

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');

export function requestFields(r: RequestEnvelope): WireFields {
  const f: WireFields = new Map();
  f.set('v', buf(WIRE_VERSION));
  f.set('k', buf(r.kind));
  f.set('id', buf(r.id));
  f.set('r', buf(r.replyTo));
  f.set('d', buf(String(Math.floor(r.deadline))));
  if (r.command) {
    f.set('c', buf(jsonText(r.command.json)));
    if (r.command.bin !== undefined) f.set('b', r.command.bin);
  }
  if (r.credits !== undefined) f.set('n', buf(String(r.credits)));
  return f;
}

export function replyFields(r: ReplyEnvelope): WireFields {
  const f: WireFields = new Map();
  f.set('k', buf(r.kind));
  f.set('id', buf(r.id));
  if (r.payload) {
    f.set('v', buf(jsonText(r.payload.json)));
    if (r.payload.bin !== undefined) f.set('b', r.payload.bin);
  }
  if (r.error) f.set('e', buf(errorJson(r.error)));
  return f;
}

/**
 * A parsed request. When the entry is malformed, `error` says why; `id` and `replyTo` are set when
 * they could be read (then the sender gets the error as a reply), otherwise the entry can only be dropped.
 */
export type ParsedRequest =
  | { ok: true; request: RequestEnvelope & { commandJson?: unknown } }
  | { ok: false; error: StreamingError; id?: string; replyTo?: string; kind?: string };

export function parseRequest(fields: WireFields): ParsedRequest {
  const text = (k: string): string | undefined => fields.get(k)?.toString('utf8');
  const id = text('id');
  const replyTo = text('r');
  const kind = text('k');
  const addressable = id !== undefined && ID_RE.test(id) && replyTo !== undefined && isClientId(replyTo);
  const bad = (field: string, message: string): ParsedRequest => ({
    ok: false,
    error: invalidArgument(message, { field }),
    ...(addressable ? { id, replyTo } : {}),
    ...(kind !== undefined ? { kind } : {}),
  });
  if (id === undefined || !ID_RE.test(id)) return bad('id', 'request without a valid correlation id');
  if (replyTo === undefined || !isClientId(replyTo)) return bad('replyTo', 'request without a valid reply-to client id');
  if (text('v') !== WIRE_VERSION) return bad('version', `unsupported mailbox wire version ${JSON.stringify(text('v') ?? null)} (this server speaks ${WIRE_VERSION})`);
  if (kind === undefined || !REQUEST_KINDS.has(kind)) return bad('kind', `unknown request kind ${JSON.stringify(kind ?? null)}`);
  const d = text('d');
  if (d === undefined || !/^[0-9]{1,16}$/.test(d)) return bad('deadline', 'request without a valid deadline (epoch ms)');
  const request: RequestEnvelope & { commandJson?: unknown } = { kind: kind as RequestKind, id, replyTo, deadline: Number(d) };
  const n = text('n');
  if (n !== undefined) {
    if (!/^[0-9]{1,9}$/.test(n)) return bad('credits', `invalid credits ${JSON.stringify(n)}`);
    request.credits = Number(n);
  }
  const c = fields.get('c');
  if (c !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(c.toString('utf8'));
    } catch {
      return bad('command', 'the command is not valid JSON');
    }
    const b = fields.get('b');
    request.command = b === undefined ? { json } : { json, bin: b };
  } else if (kind === RequestKind.call || kind === RequestKind.open) {
    return bad('command', `a ${kind} request without a command`);
  }
  return { ok: true, request };
}

export function parseReply(fields: WireFields): ReplyEnvelope | undefined {
  const kind = fields.get('k')?.toString('utf8');
  const id = fields.get('id')?.toString('utf8');
  if (kind === undefined || !REPLY_KINDS.has(kind) || id === undefined) return undefined;
  const out: ReplyEnvelope = { kind: kind as ReplyKind, id };
  const v = fields.get('v');
  if (v !== undefined) {
    const b = fields.get('b');
    const json: unknown = JSON.parse(v.toString('utf8'));
    out.payload = b === undefined ? { json } : { json, bin: b };
  }
  const e = fields.get('e');
  if (e !== undefined) out.error = parseError(e.toString('utf8'));
  return out;
}

/** `StreamingError.toJSON()` as text; details that do not serialize are replaced by a note (never a crash). */
export function errorJson(e: StreamingError): string {
  try {
    return jsonText(e.toJSON());
  } catch {
    return jsonText({ code: e.code, message: e.message, retriable: e.retriable, details: { unserializableDetails: true } });
  }
}

/** The error as the server raised it: code, message, retriable and details intact. */
export function parseError(text: string): StreamingError {
  let j: { code?: unknown; message?: unknown; retriable?: unknown; details?: unknown };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    return new StreamingError(ErrorCode.UNKNOWN, 'malformed error reply on the wire', { retriable: false, details: { raw: text.slice(0, 200) } });
  }
  const code = typeof j.code === 'string' && ERROR_CODES.has(j.code) ? (j.code as ErrorCode) : ErrorCode.UNKNOWN;
  const message = typeof j.message === 'string' ? j.message : String(j.message);
  const details = typeof j.details === 'object' && j.details !== null && !Array.isArray(j.details) ? (j.details as Record<string, unknown>) : undefined;
  return new StreamingError(code, message, { ...(typeof j.retriable === 'boolean' ? { retriable: j.retriable } : {}), ...(details ? { details } : {}) });
}

function isClientId(s: string): boolean {
  try {
    validateClientId(s);
    return true;
  } catch {
    return false;
  }
}
