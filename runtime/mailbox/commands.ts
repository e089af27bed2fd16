/**
 * The typed command set of the mailbox and its wire form.
 *
 * - Coordinator commands: the CoordinatorTransport calls (runtime/client/transport.ts).
 * - Node control commands: what the coordinator tells a streaming node (assign, remove, nodeStatus).
 * - Node data commands: append (the message travels as bytes of the binary codec) and subscribe
 *   (a streaming command: its reply is a stream of LogMessage items).
 *
 * Every command type name is unique across the set (the node's status is `nodeStatus`, the
 * coordinator's `status`), so a command names itself on the wire. A command crosses as a JSON
 * object of control fields (`type` first, bigints as decimal strings) plus, for `append`, one binary
 * part. `decodeCommand` is the edge check: anything malformed is INVALID_ARGUMENT with
 * `details.field` naming the offending field.
 */
import { ErrorCode, StreamingError } from '../errors';
import { decodeMessage, encodeMessage, DEFAULT_MAX_MESSAGE_BYTES } from '../message/codec';
import { MESSAGE_TYPES, SCALAR_TYPES, type CollectionSchema, type LogMessage, type Message, type NewMessage, type TxnBodyMessage, type TxnMessage } from '../message/types';
import type { AppendResult, ClusterStatus, CollectionInfo, CreateCollectionRequest, FlushResult, PartitionInfo, TransferResult } from '../client/api';
import type { Assignment } from '../client/transport';
import type { NodeStatus } from '../../actors/streaming-node/messages';
import type { SubscribeOptions } from '../../actors/wal/scanner/scanner';
import type { DeliverPolicy } from '../../storage/wal/backend';
import { array, bigintString, bool, fieldError, int, literal, object, oneOf, optional, str, tagged, type Check } from './schema';

// ---------------------------------------------------------------- the command set

export type CoordinatorCommand =
  | { type: 'getAssignment' }
  /** The coordinator answers with the first assignment above `afterVersion`, or the current one after `timeoutMs`. */
  | { type: 'watchAssignment'; afterVersion: number; timeoutMs: number }
  | { type: 'createCollection'; req: CreateCollectionRequest }
  | { type: 'dropCollection'; name: string }
  | { type: 'createPartition'; collection: string; partition: string }
  | { type: 'dropPartition'; collection: string; partition: string }
  | { type: 'describeCollection'; name: string }
  | { type: 'listCollections' }
  | { type: 'flushCollection'; name: string }
  | { type: 'status' }
  | { type: 'transfer'; pchannel: string; toNode?: string };

export type NodeControlCommand =
  | { type: 'assign'; pchannel: string; term: number }
  | { type: 'remove'; pchannel: string; term: number }
  | { type: 'nodeStatus' };

export type NodeDataCommand =
  | { type: 'append'; pchannel: string; term: number; message: NewMessage | Message }
  | { type: 'subscribe'; pchannel: string; term: number; options: SubscribeOptions };

export type NodeCommand = NodeControlCommand | NodeDataCommand;
export type Command = CoordinatorCommand | NodeCommand;
export type CommandType = Command['type'];
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

/** The result of every request/reply command. */
export interface CallResults {
  getAssignment: Assignment;
  watchAssignment: Assignment;
  createCollection: CollectionInfo;
  dropCollection: void;
  createPartition: PartitionInfo;
  dropPartition: void;
  describeCollection: CollectionInfo;
  listCollections: CollectionInfo[];
  flushCollection: FlushResult;
  status: ClusterStatus;
  transfer: TransferResult;
  assign: void;
  remove: void;
  nodeStatus: NodeStatus;
  append: AppendResult;
}

/** The item type of every streaming command. */
export interface StreamItems {
  subscribe: LogMessage;
}

export type CallCommandType = keyof CallResults;
export type StreamCommandType = keyof StreamItems;
export type CallCommand = CommandOf<CallCommandType>;
export type StreamCommand = CommandOf<StreamCommandType>;
export type ResultOf<T extends CallCommandType> = CallResults[T];
export type ItemOf<T extends StreamCommandType> = StreamItems[T];

export const COORDINATOR_COMMANDS = [
  'getAssignment',
  'watchAssignment',
  'createCollection',
  'dropCollection',
  'createPartition',
  'dropPartition',
  'describeCollection',
  'listCollections',
  'flushCollection',
  'status',
  'transfer',
] as const satisfies readonly CoordinatorCommand['type'][];
export const NODE_CONTROL_COMMANDS = ['assign', 'remove', 'nodeStatus'] as const satisfies readonly NodeControlCommand['type'][];
export const NODE_DATA_COMMANDS = ['append', 'subscribe'] as const satisfies readonly NodeDataCommand['type'][];
export const STREAM_COMMANDS = ['subscribe'] as const satisfies readonly StreamCommandType[];

// Compile-time: the lists name every command of their union (adding a command without listing it fails here).
type Missing<U, L extends readonly unknown[]> = Exclude<U, L[number]>;
const LISTS_ARE_COMPLETE: [Missing<CoordinatorCommand['type'], typeof COORDINATOR_COMMANDS>, Missing<NodeControlCommand['type'], typeof NODE_CONTROL_COMMANDS>, Missing<NodeDataCommand['type'], typeof NODE_DATA_COMMANDS>] extends [never, never, never] ? true : false = true;
void LISTS_ARE_COMPLETE;
export const COMMAND_TYPES: readonly CommandType[] = [...COORDINATOR_COMMANDS, ...NODE_CONTROL_COMMANDS, ...NODE_DATA_COMMANDS];

const STREAMING = new Set<string>(STREAM_COMMANDS);
export function isStreamCommandType(type: string): type is StreamCommandType {
  return STREAMING.has(type);
}

// ---------------------------------------------------------------- wire payloads

/** A command, result or item on the wire: JSON-able control fields plus an optional binary part. */
export interface Payload {
  json: unknown;
  bin?: Buffer;
}

export interface CodecLimits {
  /** Largest encoded message in an append or a stream item. Default DEFAULT_MAX_MESSAGE_BYTES (4 MiB). */
  maxMessageBytes: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES };

/** JSON text of a payload's control fields; a stray bigint becomes its decimal string. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
}

// ---------------------------------------------------------------- field checks

const NAME = str({ min: 0, max: 1024 });
const PCHANNEL = str({ min: 1, max: 1024 });
const TERM = int({ min: 0, max: 0xffffffff });
const TIMEOUT = int({ min: 0, max: 24 * 3600 * 1000 });

const fieldSchema = object({
  name: str({ min: 0, max: 1024 }),
  type: oneOf([...SCALAR_TYPES, 'floatVector'] as const),
  dim: optional(int()),
  primaryKey: optional(bool),
  autoId: optional(bool),
  maxLength: optional(int()),
});
const collectionSchema: Check<CollectionSchema> = object({ fields: array(fieldSchema, { max: 4096 }) });
const createCollectionRequest: Check<CreateCollectionRequest> = object({ name: NAME, schema: collectionSchema, shards: optional(int()) });

const MESSAGE_ID = str({ min: 0, max: 1024 });
const deliverPolicy: Check<DeliverPolicy> = tagged<DeliverPolicy>({
  all: object({ type: literal('all') }),
  latest: object({ type: literal('latest') }),
  startFrom: object({ type: literal('startFrom'), id: MESSAGE_ID }),
  startAfter: object({ type: literal('startAfter'), id: MESSAGE_ID }),
});
const subscribeOptions: Check<SubscribeOptions> = object({
  vchannel: optional(str({ min: 1, max: 1024 })),
  policy: deliverPolicy,
  filters: optional(
    object({
      timetickGt: optional(bigintString()),
      timetickGte: optional(bigintString()),
      types: optional(array(oneOf(MESSAGE_TYPES), { max: 64 })),
    }),
  ),
  credits: optional(int({ min: 1, max: 1_000_000 })),
});

/** Control fields of each command (without the binary part), checked strictly. */
const COMMAND_CHECKS: { [T in CommandType]: Check<Omit<CommandOf<T>, 'message'>> } = {
  getAssignment: object({ type: literal('getAssignment') }),
  watchAssignment: object({ type: literal('watchAssignment'), afterVersion: int(), timeoutMs: TIMEOUT }),
  createCollection: object({ type: literal('createCollection'), req: createCollectionRequest }),
  dropCollection: object({ type: literal('dropCollection'), name: NAME }),
  createPartition: object({ type: literal('createPartition'), collection: NAME, partition: NAME }),
  dropPartition: object({ type: literal('dropPartition'), collection: NAME, partition: NAME }),
  describeCollection: object({ type: literal('describeCollection'), name: NAME }),
  listCollections: object({ type: literal('listCollections') }),
  flushCollection: object({ type: literal('flushCollection'), name: NAME }),
  status: object({ type: literal('status') }),
  transfer: object({ type: literal('transfer'), pchannel: PCHANNEL, toNode: optional(str({ min: 1, max: 1024 })) }),
  assign: object({ type: literal('assign'), pchannel: PCHANNEL, term: TERM }),
  remove: object({ type: literal('remove'), pchannel: PCHANNEL, term: TERM }),
  nodeStatus: object({ type: literal('nodeStatus') }),
  append: object({ type: literal('append'), pchannel: PCHANNEL, term: TERM }),
  subscribe: object({ type: literal('subscribe'), pchannel: PCHANNEL, term: TERM, options: subscribeOptions }),
};

// ---------------------------------------------------------------- commands

/** The wire form of a command. Throws INVALID_ARGUMENT (with `field`) when it cannot be encoded. */
export function encodeCommand(cmd: Command, limits: CodecLimits = DEFAULT_CODEC_LIMITS): Payload {
  switch (cmd.type) {
    case 'append': {
      const { message, ...rest } = cmd;
      return { json: rest, bin: Buffer.from(encodeWireMessage(message, limits.maxMessageBytes)) };
    }
    case 'subscribe':
      return { json: { ...cmd, options: subscribeOptionsJson(cmd.options) } };
    default:
      return { json: cmd };
  }
}

/**
 * The edge check: a command from the wire, validated. `accepted` is what the serving address handles;
 * any other type is INVALID_ARGUMENT on `type`. Every failure names its field in `details.field`.
 */
export function decodeCommand(json: unknown, bin: Buffer | undefined, accepted: ReadonlySet<string>): Command {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fieldError('command', 'an object', json);
  const type = (json as { type?: unknown }).type;
  if (typeof type !== 'string' || !accepted.has(type) || !Object.prototype.hasOwnProperty.call(COMMAND_CHECKS, type)) {
    fieldError('type', `one of ${[...accepted].map((t) => JSON.stringify(t)).join(', ')} (the commands this address serves)`, type);
  }
  const checked = COMMAND_CHECKS[type as CommandType](json, '') as Record<string, unknown>;
  if (type === 'append') {
    if (bin === undefined) fieldError('message', 'the message bytes (binary codec)', undefined);
    try {
      return { ...(checked as Omit<CommandOf<'append'>, 'message'>), message: decodeMessage(bin) };
    } catch (e) {
      throw withField(e, 'message');
    }
  }
  if (bin !== undefined) fieldError('body', `no binary part for a ${type} command`, `${bin.length} bytes`);
  return checked as unknown as Command;
}

/** A message for the wire: the fields the WAL fills default as the WAL defaults them. */
export function encodeWireMessage(message: NewMessage | Message, maxMessageBytes: number): Uint8Array {
  const full = { timetick: 0n, lastConfirmedId: '', term: 0, ...message } as Message;
  try {
    return encodeMessage(full, { maxMessageBytes });
  } catch (e) {
    throw withField(e, 'message');
  }
}

function subscribeOptionsJson(o: SubscribeOptions): unknown {
  if (!o.filters) return o;
  const { timetickGt, timetickGte, ...rest } = o.filters;
  return {
    ...o,
    filters: { ...rest, ...(timetickGt !== undefined ? { timetickGt: timetickGt.toString() } : {}), ...(timetickGte !== undefined ? { timetickGte: timetickGte.toString() } : {}) },
  };
}

/** The same error with `details.field` under `field` (`message`, or `message.header.collectionId` when the codec named one). */
function withField(e: unknown, field: string): StreamingError {
  if (e instanceof StreamingError) {
    const inner = e.details?.['field'];
    const path = typeof inner === 'string' && inner !== '' ? `${field}.${inner}` : field;
    return new StreamingError(e.code, e.message, { cause: e, retriable: e.retriable, details: { ...(e.details ?? {}), field: path } });
  }
  return new StreamingError(ErrorCode.INVALID_ARGUMENT, `invalid ${field}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, details: { field } });
}

// ---------------------------------------------------------------- results

interface ResultCodec<R> {
  encode(r: R): Payload;
  decode(p: Payload): R;
}

const plain = <R>(): ResultCodec<R> => ({ encode: (r) => ({ json: r }), decode: (p) => p.json as R });
const none: ResultCodec<void> = { encode: () => ({ json: null }), decode: () => undefined };

const assignment: ResultCodec<Assignment> = {
  encode: (a) => ({ json: a }),
  decode: (p) => {
    const a = asObject(p.json, 'assignment') as unknown as Assignment;
    return { ...a, channels: a.channels.map((c) => ({ ...c, node: c.node ?? undefined })) };
  },
};

const transferResult: ResultCodec<TransferResult> = {
  encode: (r) => ({ json: r }),
  decode: (p) => {
    const r = asObject(p.json, 'transfer result') as unknown as TransferResult;
    return { ...r, from: r.from ?? undefined };
  },
};

const appendResult: ResultCodec<AppendResult> = {
  encode: (r) => ({
    json: {
      id: r.id,
      timetick: r.timetick.toString(),
      lastConfirmedId: r.lastConfirmedId,
      ...(r.txn ? { txn: { id: r.txn.id.toString(), keepaliveMs: r.txn.keepaliveMs } } : {}),
      ...(r.extra ? { extra: r.extra } : {}),
    },
  }),
  decode: (p) => {
    const j = asObject(p.json, 'append result');
    const txn = j['txn'] as { id: string; keepaliveMs: number } | undefined;
    return {
      id: String(j['id']),
      timetick: BigInt(String(j['timetick'])),
      lastConfirmedId: String(j['lastConfirmedId']),
      ...(txn ? { txn: { id: BigInt(txn.id), keepaliveMs: txn.keepaliveMs } } : {}),
      ...(j['extra'] !== undefined ? { extra: j['extra'] as AppendResult['extra'] } : {}),
    } as AppendResult;
  },
};

const RESULT_CODECS: { [T in CallCommandType]: ResultCodec<ResultOf<T>> } = {
  getAssignment: assignment,
  watchAssignment: assignment,
  createCollection: plain(),
  dropCollection: none,
  createPartition: plain(),
  dropPartition: none,
  describeCollection: plain(),
  listCollections: plain(),
  flushCollection: plain(),
  status: plain(),
  transfer: transferResult,
  assign: none,
  remove: none,
  nodeStatus: plain(),
  append: appendResult,
};

export function encodeResult<T extends CallCommandType>(type: T, result: ResultOf<T>): Payload {
  return RESULT_CODECS[type].encode(result);
}

export function decodeResult<T extends CallCommandType>(type: T, payload: Payload): ResultOf<T> {
  return RESULT_CODECS[type].decode(payload);
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new StreamingError(ErrorCode.INNER, `malformed ${what} on the wire`, { retriable: false });
  return v as Record<string, unknown>;
}

// ---------------------------------------------------------------- stream items (LogMessage)

interface PartJson {
  id: string;
  size: number;
  np?: true;
}

/**
 * A LogMessage as a stream item. JSON: `{ m: [{id, size, np?}…], txn? }`; binary: one frame
 * (u32 LE length + codec bytes) per message. A plain message is one frame; a Txn (consume side
 * only, never encoded by the codec) carries its own fields in `txn` and one frame per body message.
 */
export function encodeLogMessage(msg: LogMessage, limits: CodecLimits = DEFAULT_CODEC_LIMITS): Payload {
  const parts: LogMessage[] = msg.type === 'Txn' ? (msg as LogMessage<TxnMessage>).body.messages : [msg];
  const frames = parts.map((m) => encodeMessage(m, { maxMessageBytes: limits.maxMessageBytes }));
  const json: Record<string, unknown> = { m: parts.map(partJson) };
  if (msg.type === 'Txn') {
    const t = msg as LogMessage<TxnMessage>;
    json['txn'] = {
      ...partJson(t),
      vchannel: t.vchannel,
      timetick: t.timetick.toString(),
      lastConfirmedId: t.lastConfirmedId,
      term: t.term,
      ...(t.txn ? { txn: { id: t.txn.id.toString(), keepaliveMs: t.txn.keepaliveMs } } : {}),
      ...(t.idempotencyKey !== undefined ? { idempotencyKey: t.idempotencyKey } : {}),
      txnId: t.header.txnId.toString(),
    };
  }
  return { json, bin: frameAll(frames) };
}

export function decodeLogMessage(p: Payload): LogMessage {
  const j = asObject(p.json, 'stream item');
  const metas = j['m'];
  if (!Array.isArray(metas) || p.bin === undefined) throw new StreamingError(ErrorCode.INNER, 'malformed stream item on the wire', { retriable: false });
  const frames = unframe(p.bin);
  if (frames.length !== metas.length) throw new StreamingError(ErrorCode.INNER, 'stream item frames do not match their metadata', { retriable: false });
  const messages = frames.map((f, i) => withPart(decodeMessage(f), metas[i] as PartJson));
  const txnJson = j['txn'] as (PartJson & { vchannel: string; timetick: string; lastConfirmedId: string; term: number; txn?: { id: string; keepaliveMs: number }; idempotencyKey?: string; txnId: string }) | undefined;
  if (txnJson === undefined) {
    const only = messages[0];
    if (messages.length !== 1 || only === undefined) throw new StreamingError(ErrorCode.INNER, 'a plain stream item carries exactly one message', { retriable: false });
    return only;
  }
  const txn: LogMessage<TxnMessage> = {
    type: 'Txn',
    vchannel: txnJson.vchannel,
    timetick: BigInt(txnJson.timetick),
    lastConfirmedId: txnJson.lastConfirmedId,
    term: txnJson.term,
    ...(txnJson.txn ? { txn: { id: BigInt(txnJson.txn.id), keepaliveMs: txnJson.txn.keepaliveMs } } : {}),
    ...(txnJson.idempotencyKey !== undefined ? { idempotencyKey: txnJson.idempotencyKey } : {}),
    header: { txnId: BigInt(txnJson.txnId), count: messages.length },
    body: { messages: messages as LogMessage<TxnBodyMessage>[] },
    id: txnJson.id,
    size: txnJson.size,
    ...(txnJson.np ? { notPersisted: true } : {}),
  };
  return txn;
}

function partJson(m: LogMessage): PartJson {
  return { id: m.id, size: m.size, ...(m.notPersisted ? { np: true as const } : {}) };
}

function withPart(m: Message, part: PartJson): LogMessage {
  const out = m as LogMessage;
  out.id = String(part.id);
  out.size = Number(part.size);
  if (part.np) out.notPersisted = true;
  return out;
}

function frameAll(frames: Uint8Array[]): Buffer {
  let total = 0;
  for (const f of frames) total += 4 + f.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const f of frames) {
    out.writeUInt32LE(f.length, at);
    out.set(f, at + 4);
    at += 4 + f.length;
  }
  return out;
}

function unframe(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw new StreamingError(ErrorCode.INNER, 'truncated stream item frame', { retriable: false });
    const len = buf.readUInt32LE(at);
    if (at + 4 + len > buf.length) throw new StreamingError(ErrorCode.INNER, 'truncated stream item frame', { retriable: false });
    out.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

export function encodeItem<T extends StreamCommandType>(_type: T, item: ItemOf<T>, limits: CodecLimits = DEFAULT_CODEC_LIMITS): Payload {
  return encodeLogMessage(item, limits);
}

export function decodeItem<T extends StreamCommandType>(_type: T, payload: Payload): ItemOf<T> {
  return decodeLogMessage(payload);
}
