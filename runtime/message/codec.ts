/**
 * The message codec: the only place that knows how a message looks as bytes.
 *
 * Envelope (all integers little-endian), version 1:
 *
 * | offset | size | field                                                                  |
 * |-------:|-----:|------------------------------------------------------------------------|
 * |      0 |    1 | magic 0x57 ('W')                                                       |
 * |      1 |    1 | codec version (CODEC_VERSION)                                          |
 * |      2 |    4 | CRC32 of bytes [6, 22 + headerLength): the envelope fields below and the header section |
 * |      6 |    2 | message type code (MessageTypeCode)                                    |
 * |      8 |    2 | flags: bit 0 = has txn, bit 1 = has idempotency key; others must be 0  |
 * |     10 |    4 | header length                                                          |
 * |     14 |    4 | body length                                                            |
 * |     18 |    4 | CRC32 of the body section                                              |
 * |     22 |    h | header section                                                         |
 * |   22+h |    b | body section                                                           |
 *
 * The checksum sits right after magic and version, so it covers the type, flags and lengths too:
 * every single-bit flip anywhere is detected (magic and version are compared exactly, CRC32 catches
 * every single-bit error in what it covers). The body has its own CRC (itself covered by the
 * header CRC) so that `decodeHeader` verifies everything it returns without reading the body: a
 * reader that filters by type or timetick does not checksum a 4 MiB insert it skips.
 *
 * Header section: vchannel (string), timetick (u64), lastConfirmedId (string), term (u32),
 * [txn id (u64), txn keepaliveMs (int64)], [idempotencyKey (string)], then the type-specific header
 * fields in declaration order, numbers as int64 (JS safe integers), timeticks as u64, number lists
 * as u32 count + int64 each. Strings are u32 byte length + UTF-8.
 *
 * Bodies:
 * - Insert: u32 column count; per column: name (string), field type code (u8, FieldTypeCode),
 *   row count (u32), then floatVector: dim (u32) + rows × dim raw float32; bool: one byte each;
 *   int32: int32 each; int64: int64 each; float: float32 each; double: float64 each;
 *   varchar: rows × u32 byte lengths, then the UTF-8 bytes; json: like varchar, JSON text per row.
 * - Delete: primary key type code (u8), count (u32), keys as an int64 or varchar column payload.
 * - CreateCollection: one string of JSON `{collectionName, schema, partitions}` (small, no bigints).
 * - CreatePartition: partitionName (string).
 * - every other type: empty.
 * Txn messages exist only on the consume side and are never encoded.
 */
import { crc32 } from '../crc32';
import { ErrorCode, invalidArgument, MessageDecodeError, StreamingError } from '../errors';
import type { LogEntry } from '../../storage/wal/backend';
import { ByteReader, ByteWriter, utf8Length } from './bytes';
import {
  MessageTypeCode,
  type CollectionSchema,
  type Column,
  type FieldType,
  type LogMessage,
  type Message,
  type MessageType,
  type PrimaryKeys,
  type TxnContext,
} from './types';

export const CODEC_VERSION = 1;
export const MESSAGE_MAGIC = 0x57;
/** Default largest encoded message: 4 MiB. Larger inserts are split into a transaction by the client. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Bytes of the fixed envelope before the header section. */
export const ENVELOPE_BYTES = 22;

/** Field type codes on the wire (the same numbers as Milvus's DataType). */
export const FieldTypeCode = {
  bool: 1,
  int32: 4,
  int64: 5,
  float: 10,
  double: 11,
  varchar: 21,
  json: 23,
  floatVector: 101,
} as const satisfies Record<FieldType, number>;

export interface EncodeOptions {
  /** Largest encoded size in bytes; a larger message is INVALID_ARGUMENT. Default DEFAULT_MAX_MESSAGE_BYTES (4 MiB). */
  maxMessageBytes?: number;
}

/** A message without its body: what `decodeHeader` returns. */
export type MessageHeader<M extends Message = Message> = M extends Message ? Omit<M, 'body'> : never;

const FLAG_TXN = 1;
const FLAG_IDEMPOTENCY_KEY = 2;
const KNOWN_FLAGS = FLAG_TXN | FLAG_IDEMPOTENCY_KEY;

const OFF_CRC = 2;
const OFF_TYPE = 6;
const OFF_HEADER_LEN = 10;
const OFF_BODY_LEN = 14;
const OFF_BODY_CRC = 18;

const TYPE_BY_CODE = new Map<number, MessageType>();
for (const [type, code] of Object.entries(MessageTypeCode) as [MessageType, number][]) {
  if (type !== 'Txn') TYPE_BY_CODE.set(code, type);
}

// ---------------------------------------------------------------- encode

/**
 * Encodes a message. Throws StreamingError INVALID_ARGUMENT when the message cannot be encoded
 * (a Txn message, a value out of range for its wire type, a non-safe int64) or when the encoded size
 * exceeds `maxMessageBytes` (details `{ size, limit }`).
 */
export function encodeMessage(msg: Message, opts?: EncodeOptions): Uint8Array {
  const limit = opts?.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(limit) || limit < ENVELOPE_BYTES) throw invalidArgument('maxMessageBytes must be an integer of at least 22', { maxMessageBytes: limit });
  try {
    return encode(msg, limit);
  } catch (e) {
    if (e instanceof StreamingError) throw e;
    // A value of the wrong runtime type (the static types forbid it) surfaced as a TypeError or RangeError.
    throw new StreamingError(ErrorCode.INVALID_ARGUMENT, `cannot encode ${String(msg?.type)} message: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
      details: { type: msg?.type },
    });
  }
}

function encode(msg: Message, limit: number): Buffer {
  if (msg.type === 'Txn') throw invalidArgument('Txn messages exist only on the consume side and are never encoded', { type: msg.type });
  const code = MessageTypeCode[msg.type];
  if (code === undefined) throw invalidArgument(`unknown message type ${String(msg.type)}`, { type: msg.type });
  if (typeof msg.vchannel !== 'string') throw invalidArgument('vchannel must be a string', { field: 'vchannel' });
  if (typeof msg.lastConfirmedId !== 'string') throw invalidArgument('lastConfirmedId must be a string', { field: 'lastConfirmedId' });
  if (msg.term !== msg.term >>> 0) throw invalidArgument('term must be an integer in [0, 2^32)', { field: 'term', value: msg.term });

  const txn = msg.txn;
  const idempotencyKey = msg.idempotencyKey;
  let flags = 0;
  let headerLength = 4 + utf8Length(msg.vchannel) + 8 + 4 + utf8Length(msg.lastConfirmedId) + 4;
  if (txn !== undefined) {
    flags |= FLAG_TXN;
    headerLength += 16;
  }
  if (idempotencyKey !== undefined) {
    if (typeof idempotencyKey !== 'string') throw invalidArgument('idempotencyKey must be a string', { field: 'idempotencyKey' });
    flags |= FLAG_IDEMPOTENCY_KEY;
    headerLength += 4 + utf8Length(idempotencyKey);
  }
  headerLength += typeHeaderLength(msg);

  const texts: string[] = [];
  const bodyLength = bodyLengthOf(msg, texts);
  const size = ENVELOPE_BYTES + headerLength + bodyLength;
  if (!Number.isSafeInteger(size)) throw invalidArgument('message size is not computable', { type: msg.type });
  if (size > limit) {
    throw invalidArgument(`${msg.type} message of ${size} bytes exceeds the limit of ${limit} bytes`, { size, limit, type: msg.type });
  }

  const w = new ByteWriter(size);
  w.u8(MESSAGE_MAGIC);
  w.u8(CODEC_VERSION);
  w.u32(0); // header CRC, below
  w.u16(code);
  w.u16(flags);
  w.u32(headerLength);
  w.u32(bodyLength);
  w.u32(0); // body CRC, below

  w.string(msg.vchannel);
  w.u64(msg.timetick, 'timetick');
  w.string(msg.lastConfirmedId);
  w.u32(msg.term);
  if (txn !== undefined) writeTxn(w, txn);
  if (idempotencyKey !== undefined) w.string(idempotencyKey);
  writeTypeHeader(w, msg);
  if (w.pos !== ENVELOPE_BYTES + headerLength) throw sizeMismatch(msg.type, ENVELOPE_BYTES + headerLength, w.pos);
  writeBody(w, msg, texts);
  if (w.pos !== size) throw sizeMismatch(msg.type, size, w.pos);
  const buf = w.buf;

  const bodyStart = ENVELOPE_BYTES + headerLength;
  w.view.setUint32(OFF_BODY_CRC, bodyLength === 0 ? 0 : crc32(sliceView(buf, bodyStart, bodyLength)), true);
  w.view.setUint32(OFF_CRC, crc32(sliceView(buf, OFF_TYPE, bodyStart - OFF_TYPE)), true);
  return buf;
}

/** A codec bug (measured and written sizes differ): never leak the unwritten bytes of the buffer. */
function sizeMismatch(type: string, measured: number, written: number): StreamingError {
  return new StreamingError(ErrorCode.INNER, `codec bug: ${type} message measured ${measured} bytes, wrote ${written}`, {
    retriable: false,
    details: { type, measured, written },
  });
}

/** A plain Uint8Array view (cheaper to make than a Buffer subarray). */
function sliceView(buf: Uint8Array, start: number, length: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + start, length);
}

function writeTxn(w: ByteWriter, txn: TxnContext): void {
  w.u64(txn.id, 'txn.id');
  w.safeInt(txn.keepaliveMs, 'txn.keepaliveMs');
}

function idListLength(ids: readonly number[]): number {
  if (!Array.isArray(ids)) throw invalidArgument('id list must be an array');
  return 4 + 8 * ids.length;
}

function writeIdList(w: ByteWriter, ids: readonly number[], what: string): void {
  w.u32(ids.length);
  for (let i = 0; i < ids.length; i++) w.safeInt(ids[i] as number, what);
}

function typeHeaderLength(msg: Exclude<Message, { type: 'Txn' }>): number {
  switch (msg.type) {
    case 'TimeTick':
    case 'CommitTxn':
    case 'RollbackTxn':
      return 0;
    case 'DropCollection':
    case 'BeginTxn':
      return 8;
    case 'CreatePartition':
    case 'DropPartition':
      return 16;
    case 'Delete':
    case 'Flush':
      return 24;
    case 'Insert':
    case 'CreateSegment':
      return 40;
    case 'CreateCollection':
      return 8 + idListLength(msg.header.partitionIds);
    case 'ManualFlush':
      return 16 + idListLength(msg.header.segmentIds);
    default:
      throw invalidArgument(`unknown message type ${String((msg as { type: unknown }).type)}`);
  }
}

function writeTypeHeader(w: ByteWriter, msg: Exclude<Message, { type: 'Txn' }>): void {
  switch (msg.type) {
    case 'TimeTick':
    case 'CommitTxn':
    case 'RollbackTxn':
      return;
    case 'Insert': {
      const h = msg.header;
      w.safeInt(h.collectionId, 'header.collectionId');
      w.safeInt(h.partitionId, 'header.partitionId');
      w.safeInt(h.rows, 'header.rows');
      w.safeInt(h.bytes, 'header.bytes');
      w.safeInt(h.segmentId, 'header.segmentId');
      return;
    }
    case 'Delete': {
      const h = msg.header;
      w.safeInt(h.collectionId, 'header.collectionId');
      w.safeInt(h.partitionId, 'header.partitionId');
      w.safeInt(h.rows, 'header.rows');
      return;
    }
    case 'Flush': {
      const h = msg.header;
      w.safeInt(h.collectionId, 'header.collectionId');
      w.safeInt(h.partitionId, 'header.partitionId');
      w.safeInt(h.segmentId, 'header.segmentId');
      return;
    }
    case 'CreateCollection':
      w.safeInt(msg.header.collectionId, 'header.collectionId');
      writeIdList(w, msg.header.partitionIds, 'header.partitionIds');
      return;
    case 'DropCollection':
      w.safeInt(msg.header.collectionId, 'header.collectionId');
      return;
    case 'CreatePartition':
    case 'DropPartition':
      w.safeInt(msg.header.collectionId, 'header.collectionId');
      w.safeInt(msg.header.partitionId, 'header.partitionId');
      return;
    case 'ManualFlush':
      w.safeInt(msg.header.collectionId, 'header.collectionId');
      w.u64(msg.header.flushTs, 'header.flushTs');
      writeIdList(w, msg.header.segmentIds, 'header.segmentIds');
      return;
    case 'CreateSegment': {
      const h = msg.header;
      w.safeInt(h.collectionId, 'header.collectionId');
      w.safeInt(h.partitionId, 'header.partitionId');
      w.safeInt(h.segmentId, 'header.segmentId');
      w.safeInt(h.maxRows, 'header.maxRows');
      w.safeInt(h.maxBytes, 'header.maxBytes');
      return;
    }
    case 'BeginTxn':
      w.safeInt(msg.header.keepaliveMs, 'header.keepaliveMs');
      return;
    default:
      throw invalidArgument(`unknown message type ${String((msg as { type: unknown }).type)}`);
  }
}

/** Encoded body length; texts that must be produced to be measured (JSON) are pushed to `texts`, in write order. */
function bodyLengthOf(msg: Exclude<Message, { type: 'Txn' }>, texts: string[]): number {
  switch (msg.type) {
    case 'Insert':
      return columnsLength(msg.body.columns, texts);
    case 'Delete':
      return primaryKeysLength(msg.body.primaryKeys);
    case 'CreateCollection': {
      const b = msg.body;
      const json = JSON.stringify({ collectionName: b.collectionName, schema: b.schema, partitions: b.partitions });
      texts.push(json);
      return 4 + utf8Length(json);
    }
    case 'CreatePartition':
      if (typeof msg.body.partitionName !== 'string') throw invalidArgument('partitionName must be a string', { field: 'body.partitionName' });
      return 4 + utf8Length(msg.body.partitionName);
    default:
      return 0;
  }
}

function writeBody(w: ByteWriter, msg: Exclude<Message, { type: 'Txn' }>, texts: string[]): void {
  switch (msg.type) {
    case 'Insert':
      writeColumns(w, msg.body.columns, texts);
      return;
    case 'Delete':
      writePrimaryKeys(w, msg.body.primaryKeys);
      return;
    case 'CreateCollection':
      w.string(texts[0] as string);
      return;
    case 'CreatePartition':
      w.string(msg.body.partitionName);
      return;
    default:
      return;
  }
}

function stringsLength(data: readonly string[], field: string): number {
  let n = 4 * data.length;
  for (let i = 0; i < data.length; i++) {
    const s = data[i];
    if (typeof s !== 'string') throw invalidArgument(`${field}[${i}] is not a string`, { field, index: i });
    n += utf8Length(s);
  }
  return n;
}

function writeStrings(w: ByteWriter, data: readonly string[]): void {
  let lenPos = w.pos;
  w.pos += 4 * data.length;
  for (let i = 0; i < data.length; i++) {
    w.view.setUint32(lenPos, w.utf8(data[i] as string), true);
    lenPos += 4;
  }
}

function checkArray(data: unknown, field: string): void {
  if (!Array.isArray(data)) throw invalidArgument(`column ${field} data must be an array`, { field });
}

function columnsLength(columns: readonly Column[], texts: string[]): number {
  if (!Array.isArray(columns)) throw invalidArgument('insert columns must be an array', { field: 'body.columns' });
  let n = 4;
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i] as Column;
    if (typeof c.name !== 'string') throw invalidArgument('column name must be a string', { field: 'body.columns', index: i });
    n += 4 + utf8Length(c.name) + 1 + 4;
    switch (c.type) {
      case 'floatVector': {
        const dim = c.dim;
        if (!(c.data instanceof Float32Array)) throw invalidArgument(`column ${c.name} must be a Float32Array`, { field: c.name });
        if (dim !== dim >>> 0 || dim === 0 || c.data.length % dim !== 0) {
          throw invalidArgument(`column ${c.name}: length ${c.data.length} is not a multiple of dim ${dim}`, { field: c.name, dim });
        }
        n += 4 + c.data.byteLength;
        break;
      }
      case 'bool':
        checkArray(c.data, c.name);
        n += c.data.length;
        break;
      case 'int32':
      case 'float':
        checkArray(c.data, c.name);
        n += 4 * c.data.length;
        break;
      case 'int64':
      case 'double':
        checkArray(c.data, c.name);
        n += 8 * c.data.length;
        break;
      case 'varchar':
        checkArray(c.data, c.name);
        n += stringsLength(c.data, c.name);
        break;
      case 'json': {
        checkArray(c.data, c.name);
        const data = c.data;
        let len = 4 * data.length;
        for (let r = 0; r < data.length; r++) {
          let text: string | undefined;
          try {
            text = JSON.stringify(data[r]) as string | undefined;
          } catch {
            text = undefined; // a bigint or a cycle
          }
          if (typeof text !== 'string') throw invalidArgument(`column ${c.name}[${r}] is not JSON-serializable`, { field: c.name, index: r });
          texts.push(text);
          len += utf8Length(text);
        }
        n += len;
        break;
      }
      default:
        throw invalidArgument(`column ${String((c as { name: unknown }).name)} has an unknown type`, {
          field: (c as { name: unknown }).name,
          type: (c as { type: unknown }).type,
        });
    }
  }
  return n;
}

function writeColumns(w: ByteWriter, columns: readonly Column[], texts: string[]): void {
  w.u32(columns.length);
  let t = 0;
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i] as Column;
    w.string(c.name);
    w.u8(FieldTypeCode[c.type]);
    switch (c.type) {
      case 'floatVector':
        w.u32(c.data.length / c.dim);
        w.u32(c.dim);
        w.float32s(c.data);
        break;
      case 'json': {
        const rows = c.data.length;
        w.u32(rows);
        let lenPos = w.pos;
        w.pos += 4 * rows;
        for (let r = 0; r < rows; r++) {
          w.view.setUint32(lenPos, w.utf8(texts[t++] as string), true);
          lenPos += 4;
        }
        break;
      }
      default:
        w.u32(c.data.length);
        writeScalars(w, c, c.name);
    }
  }
}

/** Payload of a scalar column (the row count is already written). */
function writeScalars(w: ByteWriter, c: Exclude<Column, { type: 'floatVector' | 'json' }> | (PrimaryKeys & { name?: string }), field: string): void {
  const view = w.view;
  switch (c.type) {
    case 'bool': {
      const data = c.data;
      for (let r = 0; r < data.length; r++) {
        const v = data[r];
        if (typeof v !== 'boolean') throw invalidArgument(`${field}[${r}] is not a boolean`, { field, index: r });
        w.buf[w.pos++] = v ? 1 : 0;
      }
      return;
    }
    case 'int32': {
      const data = c.data;
      let p = w.pos;
      for (let r = 0; r < data.length; r++) {
        const v = data[r] as number;
        if ((v | 0) !== v) throw invalidArgument(`${field}[${r}] is not an int32`, { field, index: r, value: v });
        view.setInt32(p, v, true);
        p += 4;
      }
      w.pos = p;
      return;
    }
    case 'int64': {
      const data = c.data;
      let p = w.pos;
      for (let r = 0; r < data.length; r++) {
        const v = data[r] as number;
        if (!Number.isSafeInteger(v)) throw invalidArgument(`${field}[${r}] is not a safe integer`, { field, index: r, value: v });
        w.int64At(p, v);
        p += 8;
      }
      w.pos = p;
      return;
    }
    case 'float': {
      const data = c.data;
      let p = w.pos;
      for (let r = 0; r < data.length; r++) {
        const v = data[r];
        if (typeof v !== 'number') throw invalidArgument(`${field}[${r}] is not a number`, { field, index: r });
        view.setFloat32(p, v, true);
        p += 4;
      }
      w.pos = p;
      return;
    }
    case 'double': {
      const data = c.data;
      let p = w.pos;
      for (let r = 0; r < data.length; r++) {
        const v = data[r];
        if (typeof v !== 'number') throw invalidArgument(`${field}[${r}] is not a number`, { field, index: r });
        view.setFloat64(p, v, true);
        p += 8;
      }
      w.pos = p;
      return;
    }
    case 'varchar':
      writeStrings(w, c.data);
      return;
    default:
      throw invalidArgument(`${field} has an unknown type`, { field });
  }
}

function primaryKeysLength(pks: PrimaryKeys): number {
  const field = 'body.primaryKeys';
  if (pks === null || typeof pks !== 'object') throw invalidArgument('primaryKeys must be an object', { field });
  checkArray(pks.data, field);
  if (pks.type === 'int64') return 5 + 8 * pks.data.length;
  if (pks.type === 'varchar') return 5 + stringsLength(pks.data, field);
  throw invalidArgument('primary keys must be int64 or varchar', { field, type: (pks as { type: unknown }).type });
}

function writePrimaryKeys(w: ByteWriter, pks: PrimaryKeys): void {
  w.u8(FieldTypeCode[pks.type]);
  w.u32(pks.data.length);
  writeScalars(w, pks, 'body.primaryKeys');
}

// ---------------------------------------------------------------- decode

function decodeError(reason: string, details?: Record<string, unknown>): MessageDecodeError {
  return new MessageDecodeError(reason, details);
}

/** The checked envelope of an encoded message. */
interface Opened {
  buf: Buffer;
  view: DataView;
  type: MessageType;
  flags: number;
  headerEnd: number;
  bodyLength: number;
  /** The bytes came with a checksum over all of them that was already checked: skip both CRCs. */
  verified: boolean;
}

/** How the bytes to decode were obtained. */
export interface DecodeOptions {
  /**
   * A checksum covering all of the bytes was already checked (LogEntry.verified): the header and
   * body checksums are not computed again. Structure, lengths and values are still checked.
   */
  verified?: boolean;
}

function open(bytes: Uint8Array, verified = false): Opened {
  // Not `instanceof Uint8Array`: that fails for arrays from another realm (vm context, worker).
  if (!ArrayBuffer.isView(bytes) || (bytes as Partial<Uint8Array>).BYTES_PER_ELEMENT !== 1) throw decodeError('not a byte array');
  const len = bytes.length;
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, len);
  const view = new DataView(buf.buffer, buf.byteOffset, len);
  const code = checkEnvelope(buf, view, 0, len, verified);
  return { buf, view, type: TYPE_BY_CODE.get(code)!, flags: view.getUint16(OFF_TYPE + 2, true), headerEnd: ENVELOPE_BYTES + view.getUint32(OFF_HEADER_LEN, true), bodyLength: view.getUint32(OFF_BODY_LEN, true), verified };
}

/**
 * Checks the envelope of the message in the `len` bytes at `at` of `buf` (`view` covers all of
 * `buf`): magic, version, lengths, the header checksum (unless `verified`), a known type and known
 * flags. Returns the type code. Used by open and MessageScanner alike.
 */
function checkEnvelope(buf: Buffer, view: DataView, at: number, len: number, verified: boolean): number {
  if (len < 2) throw decodeError('truncated', { size: len });
  if (buf[at] !== MESSAGE_MAGIC) throw decodeError('bad magic', { magic: buf[at] });
  if (buf[at + 1] !== CODEC_VERSION) throw decodeError('unsupported version', { version: buf[at + 1], supported: CODEC_VERSION });
  if (len < ENVELOPE_BYTES) throw decodeError('truncated', { size: len });
  const headerLength = view.getUint32(at + OFF_HEADER_LEN, true);
  const bodyLength = view.getUint32(at + OFF_BODY_LEN, true);
  const expected = ENVELOPE_BYTES + headerLength + bodyLength;
  if (expected !== len) throw decodeError(expected > len ? 'truncated' : 'trailing bytes', { size: len, expected });
  const headerEnd = ENVELOPE_BYTES + headerLength;
  if (!verified && crc32(sliceView(buf, at + OFF_TYPE, headerEnd - OFF_TYPE)) !== view.getUint32(at + OFF_CRC, true)) throw decodeError('header checksum mismatch');
  const code = view.getUint16(at + OFF_TYPE, true);
  if (!TYPE_BY_CODE.has(code)) throw decodeError('unknown message type', { code });
  const flags = view.getUint16(at + OFF_TYPE + 2, true);
  if ((flags & ~KNOWN_FLAGS) !== 0) throw decodeError('unknown flags', { flags });
  return code;
}

/**
 * Reads the header section (and, with `withBody`, the body) into a message. Every decoded message
 * has the same property order: type, vchannel, timetick, lastConfirmedId, term, header, body, then
 * txn and idempotencyKey when present.
 */
function readMessage(o: Opened, withBody: true): Message;
function readMessage(o: Opened, withBody: false): MessageHeader;
function readMessage(o: Opened, withBody: boolean): Message | MessageHeader {
  const r = new ByteReader(o.buf, o.view, ENVELOPE_BYTES, o.headerEnd);
  const vchannel = r.string();
  const timetick = r.u64();
  const lastConfirmedId = r.string();
  const term = r.u32();
  const txn: TxnContext | undefined = (o.flags & FLAG_TXN) !== 0 ? { id: r.u64(), keepaliveMs: r.safeInt() } : undefined;
  const idempotencyKey = (o.flags & FLAG_IDEMPOTENCY_KEY) !== 0 ? r.string() : undefined;
  const header = readTypeHeader(r, o.type);
  if (r.remaining !== 0) throw decodeError('malformed header', { trailing: r.remaining });
  // The pairing of `type` with `header` and `body` is made by the switches in readTypeHeader and readBody.
  const msg = (
    withBody
      ? { type: o.type, vchannel, timetick, lastConfirmedId, term, header, body: readBody(o) }
      : { type: o.type, vchannel, timetick, lastConfirmedId, term, header }
  ) as Message;
  if (txn !== undefined) msg.txn = txn;
  if (idempotencyKey !== undefined) msg.idempotencyKey = idempotencyKey;
  return msg;
}

function readIdList(r: ByteReader): number[] {
  const n = r.u32();
  r.need(8 * n);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.safeInt());
  return ids;
}

function readTypeHeader(r: ByteReader, type: MessageType): Message['header'] {
  switch (type) {
    case 'TimeTick':
    case 'CommitTxn':
    case 'RollbackTxn':
    case 'Txn':
      return {};
    case 'Insert':
      return { collectionId: r.safeInt(), partitionId: r.safeInt(), rows: r.safeInt(), bytes: r.safeInt(), segmentId: r.safeInt() };
    case 'Delete':
      return { collectionId: r.safeInt(), partitionId: r.safeInt(), rows: r.safeInt() };
    case 'Flush':
      return { collectionId: r.safeInt(), partitionId: r.safeInt(), segmentId: r.safeInt() };
    case 'CreateCollection':
      return { collectionId: r.safeInt(), partitionIds: readIdList(r) };
    case 'DropCollection':
      return { collectionId: r.safeInt() };
    case 'CreatePartition':
    case 'DropPartition':
      return { collectionId: r.safeInt(), partitionId: r.safeInt() };
    case 'ManualFlush':
      return { collectionId: r.safeInt(), flushTs: r.u64(), segmentIds: readIdList(r) };
    case 'CreateSegment':
      return { collectionId: r.safeInt(), partitionId: r.safeInt(), segmentId: r.safeInt(), maxRows: r.safeInt(), maxBytes: r.safeInt() };
    case 'BeginTxn':
      return { keepaliveMs: r.safeInt() };
  }
}

/** Throws unless the body section matches its checksum (0 for an empty body). */
function verifyBody(o: Opened): void {
  if (o.verified) return;
  const expected = o.view.getUint32(OFF_BODY_CRC, true);
  const actual = o.bodyLength === 0 ? 0 : crc32(sliceView(o.buf, o.headerEnd, o.bodyLength));
  if (actual !== expected) throw decodeError('body checksum mismatch');
}

function readBody(o: Opened): Message['body'] {
  const start = o.headerEnd;
  const end = start + o.bodyLength;
  verifyBody(o);
  const r = new ByteReader(o.buf, o.view, start, end);
  let body: Message['body'];
  switch (o.type) {
    case 'Insert':
      body = { columns: readColumns(r) };
      break;
    case 'Delete':
      body = { primaryKeys: readPrimaryKeys(r) };
      break;
    case 'CreateCollection':
      body = readCreateCollectionBody(r);
      break;
    case 'CreatePartition':
      body = { partitionName: r.string() };
      break;
    default:
      body = {};
  }
  if (r.remaining !== 0) throw decodeError('malformed body', { trailing: r.remaining });
  return body;
}

function readColumns(r: ByteReader): Column[] {
  const count = r.u32();
  const columns: Column[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.string();
    const code = r.u8();
    const rows = r.u32();
    switch (code) {
      case FieldTypeCode.floatVector: {
        const dim = r.u32();
        if (dim === 0) throw decodeError('malformed body', { column: name, dim });
        columns.push({ name, type: 'floatVector', dim, data: r.float32s(rows * dim) });
        break;
      }
      case FieldTypeCode.json: {
        const texts = readStrings(r, rows);
        const data: unknown[] = [];
        for (let t = 0; t < texts.length; t++) data.push(parseJson(texts[t] as string));
        columns.push({ name, type: 'json', data });
        break;
      }
      case FieldTypeCode.bool:
        columns.push({ name, type: 'bool', data: readBools(r, rows) });
        break;
      case FieldTypeCode.int32:
        columns.push({ name, type: 'int32', data: readNumbers(r, rows, code) });
        break;
      case FieldTypeCode.int64:
        columns.push({ name, type: 'int64', data: readNumbers(r, rows, code) });
        break;
      case FieldTypeCode.float:
        columns.push({ name, type: 'float', data: readNumbers(r, rows, code) });
        break;
      case FieldTypeCode.double:
        columns.push({ name, type: 'double', data: readNumbers(r, rows, code) });
        break;
      case FieldTypeCode.varchar:
        columns.push({ name, type: 'varchar', data: readStrings(r, rows) });
        break;
      default:
        throw decodeError('unknown field type', { column: name, code });
    }
  }
  return columns;
}

function readBools(r: ByteReader, n: number): boolean[] {
  r.need(n);
  const b = r.buf;
  const out: boolean[] = [];
  for (let i = r.pos, end = r.pos + n; i < end; i++) {
    const v = b[i];
    if (v !== 0 && v !== 1) throw decodeError('malformed body', { offset: i, bool: v });
    out.push(v === 1);
  }
  r.pos += n;
  return out;
}

function readNumbers(r: ByteReader, n: number, code: number): number[] {
  const width = code === FieldTypeCode.int32 || code === FieldTypeCode.float ? 4 : 8;
  r.need(width * n);
  const view = r.view;
  const out: number[] = [];
  let p = r.pos;
  const end = p + width * n;
  switch (code) {
    case FieldTypeCode.int32:
      for (; p < end; p += 4) out.push(view.getInt32(p, true));
      break;
    case FieldTypeCode.int64:
      for (; p < end; p += 8) out.push(r.int64At(p));
      break;
    case FieldTypeCode.float:
      for (; p < end; p += 4) out.push(view.getFloat32(p, true));
      break;
    default:
      for (; p < end; p += 8) out.push(view.getFloat64(p, true));
  }
  r.pos = end;
  return out;
}

function readStrings(r: ByteReader, n: number): string[] {
  r.need(4 * n);
  const view = r.view;
  let lenPos = r.pos;
  const lenEnd = lenPos + 4 * n;
  let total = 0;
  for (let p = lenPos; p < lenEnd; p += 4) total += view.getUint32(p, true);
  r.pos = lenEnd;
  r.need(total);
  const out: string[] = [];
  let p = lenEnd;
  for (; lenPos < lenEnd; lenPos += 4) {
    const len = view.getUint32(lenPos, true);
    out.push(r.utf8At(p, len));
    p += len;
  }
  r.pos = p;
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw decodeError('malformed body', { json: text.slice(0, 64) });
  }
}

function readPrimaryKeys(r: ByteReader): PrimaryKeys {
  const code = r.u8();
  const n = r.u32();
  if (code === FieldTypeCode.int64) return { type: 'int64', data: readNumbers(r, n, code) };
  if (code === FieldTypeCode.varchar) return { type: 'varchar', data: readStrings(r, n) };
  throw decodeError('malformed body', { primaryKeyType: code });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readCreateCollectionBody(r: ByteReader): { collectionName: string; schema: CollectionSchema; partitions: { id: number; name: string }[] } {
  const v = parseJson(r.string());
  if (!isObject(v) || typeof v['collectionName'] !== 'string' || !isObject(v['schema']) || !Array.isArray(v['schema']['fields']) || !Array.isArray(v['partitions'])) {
    throw decodeError('malformed body', { type: 'CreateCollection' });
  }
  return { collectionName: v['collectionName'], schema: v['schema'] as unknown as CollectionSchema, partitions: v['partitions'] as { id: number; name: string }[] };
}

/** Any exception that is not already a MessageDecodeError becomes one: no input throws anything else. */
function asDecodeError(e: unknown): MessageDecodeError {
  if (e instanceof MessageDecodeError) return e;
  return decodeError('malformed', { error: e instanceof Error ? e.message : String(e) });
}

/**
 * Decodes a whole message. Verifies magic, version, lengths and both checksums; any bad input
 * throws MessageDecodeError (reason 'unsupported version' for another codec version).
 * Nothing in the result aliases `bytes`. Vector columns are aligned Float32Array copies; small
 * ones live in Node's Buffer pool (as Buffer.allocUnsafe), so their `.buffer` may be shared:
 * always pair it with `byteOffset` and `byteLength`.
 */
export function decodeMessage(bytes: Uint8Array, opts?: DecodeOptions): Message {
  try {
    return readMessage(open(bytes, opts?.verified === true), true);
  } catch (e) {
    throw asDecodeError(e);
  }
}

/**
 * Decodes the common fields, the type and the type-specific header without reading the body: the
 * body is only bounds-checked (the lengths must add up), neither checksummed nor parsed. What it
 * returns is covered by the header checksum.
 */
export function decodeHeader(bytes: Uint8Array, opts?: DecodeOptions): MessageHeader {
  try {
    return readMessage(open(bytes, opts?.verified === true), false);
  } catch (e) {
    throw asDecodeError(e);
  }
}

/** A log entry as a message: decoded (checksums skipped when the backend verified the entry), with its id and encoded size. */
export function toLogMessage(entry: LogEntry): LogMessage {
  try {
    const msg = readMessage(open(entry.data, entry.verified === true), true) as LogMessage;
    msg.id = entry.id;
    msg.size = entry.data.length;
    return msg;
  } catch (e) {
    throw asDecodeError(e);
  }
}

// ---------------------------------------------------------------- lazy bodies

/**
 * A message whose envelope and header are checked and decoded and whose body is not read yet:
 * a reader that looks at every header but needs few bodies pays for the body (its checksum
 * included) only when it asks for it.
 */
export interface LazyMessage {
  /** What decodeHeader returns. */
  readonly header: MessageHeader;
  /** Verifies the body's checksum and decodes it: `{ ...header, body: body() }` is what decodeMessage returns. */
  body(): Message['body'];
}

class OpenedLazyMessage implements LazyMessage {
  constructor(
    private readonly opened: Opened,
    readonly header: MessageHeader,
  ) {}

  body(): Message['body'] {
    try {
      return readBody(this.opened);
    } catch (e) {
      throw asDecodeError(e);
    }
  }
}

/** Decodes the header now and the body on demand (see LazyMessage). Throws what decodeHeader throws. */
export function decodeLazily(bytes: Uint8Array, opts?: DecodeOptions): LazyMessage {
  try {
    const o = open(bytes, opts?.verified === true);
    return new OpenedLazyMessage(o, readMessage(o, false));
  } catch (e) {
    throw asDecodeError(e);
  }
}

// ---------------------------------------------------------------- scanning

const FIELD_TYPE_BY_CODE = new Map<number, FieldType>(Object.entries(FieldTypeCode).map(([type, code]) => [code, type as FieldType]));
const NO_BUFFER = Buffer.alloc(0);

/** Whether the `n` bytes at `at` of `b` are `want` (a name or a channel, a few bytes: a loop beats a call). */
function bytesAre(b: Uint8Array, at: number, n: number, want: Uint8Array): boolean {
  if (n !== want.length) return false;
  for (let k = 0; k < n; k++) if (b[at + k] !== want[k]) return false;
  return true;
}

/**
 * Where the columns of one Insert body lie in its message's bytes (MessageScanner.scanInsertColumns):
 * nothing is decoded or copied, for readers that move rows elsewhere without looking at them (the
 * flush worker copies them into Arrow buffers). Column i's values are `bytes[valuesAt[i],
 * valuesAt[i] + valuesLength[i])`, in the wire layout, which is also Arrow's: little-endian int32,
 * int64, float32 and float64 values; one byte 0 or 1 per bool; rows × dim float32 for a vector;
 * for varchar and json every row's UTF-8 bytes back to back (json: the JSON text), each row's byte
 * length a u32 LE at `lengthsAt[i] + 4 × row`. Offsets are into `bytes`, which is the whole memory
 * the scanned message lies in: valid while that memory is unchanged, and until the next scan.
 */
export class InsertColumns {
  bytes: Buffer = NO_BUFFER;
  /** Columns of the insert. */
  count = 0;
  readonly type: FieldType[] = [];
  readonly rows: number[] = [];
  /** floatVector: the dimension; 0 for the other types. */
  readonly dim: number[] = [];
  readonly nameAt: number[] = [];
  readonly nameLength: number[] = [];
  readonly valuesAt: number[] = [];
  readonly valuesLength: number[] = [];
  /** varchar and json: where the rows' u32 LE byte lengths start; -1 for the other types. */
  readonly lengthsAt: number[] = [];
  /**
   * Changes whenever an insert's columns are not laid out as the last one's; the same value means
   * the same names, types, row counts and dimensions in the same order (a reader may keep what it
   * worked out from them, as SegmentEncoder keeps the columns' fields).
   */
  shape = 0;
  /** The last layout relative to its body, to recognise the next insert of the same shape. */
  private last: { bodyLength: number; textual: boolean; count: number; ranges: number[]; signature: Uint8Array; nameAt: number[]; valuesAt: number[] } = {
    bodyLength: -1,
    count: 0,
    textual: true,
    ranges: [],
    signature: new Uint8Array(0),
    nameAt: [],
    valuesAt: [],
  };

  /** Whether column i's name is `utf8` (its UTF-8 bytes), without decoding it. */
  nameIs(i: number, utf8: Uint8Array): boolean {
    return bytesAre(this.bytes, this.nameAt[i]!, this.nameLength[i]!, utf8);
  }

  /** Column i's name. */
  name(i: number): string {
    return this.bytes.toString('utf8', this.nameAt[i]!, this.nameAt[i]! + this.nameLength[i]!);
  }

  /**
   * Keeps the layout just made of the body at `bodyStart` (`ranges`: pairs of offset from the body
   * and length of the bytes that describe the columns: count, names, types, rows, dimensions).
   */
  remember(bodyStart: number, bodyLength: number, textual: boolean, ranges: number[]): void {
    let total = 0;
    for (let k = 1; k < ranges.length; k += 2) total += ranges[k]!;
    const signature = new Uint8Array(total);
    for (let k = 0, o = 0; k < ranges.length; k += 2) {
      signature.set(this.bytes.subarray(bodyStart + ranges[k]!, bodyStart + ranges[k]! + ranges[k + 1]!), o);
      o += ranges[k + 1]!;
    }
    this.last = {
      bodyLength,
      textual,
      count: this.count,
      ranges: [...ranges],
      signature,
      nameAt: this.nameAt.slice(0, this.count).map((a) => a - bodyStart),
      valuesAt: this.valuesAt.slice(0, this.count).map((a) => a - bodyStart),
    };
  }

  /**
   * Nothing to recognise until the next layout is remembered (one is being made afresh, or the
   * last was of a refused message); the shape changes, so nothing worked out from the last one is
   * used again.
   */
  forget(): void {
    this.last.bodyLength = -1;
    this.shape++;
  }

  /**
   * Lays out the body of `bodyLength` bytes at `bodyStart` of `bytes` as the last one, when it has
   * the same length and the same bytes where the columns are described (fixed-width columns only:
   * there everything else lies where it lay). False when it does not: lay it out afresh.
   */
  sameAsLast(bytes: Buffer, bodyStart: number, bodyLength: number): boolean {
    const last = this.last;
    if (last.textual || bodyLength !== last.bodyLength) return false;
    const { ranges, signature } = last;
    for (let k = 0, o = 0; k < ranges.length; k += 2) {
      const at = bodyStart + ranges[k]!;
      const n = ranges[k + 1]!;
      for (let i = 0; i < n; i++) if (bytes[at + i] !== signature[o + i]) return false;
      o += n;
    }
    this.bytes = bytes;
    this.count = last.count;
    for (let i = 0; i < this.count; i++) {
      this.nameAt[i] = bodyStart + last.nameAt[i]!;
      this.valuesAt[i] = bodyStart + last.valuesAt[i]!;
    }
    return true;
  }
}

/**
 * Reads messages one after another without allocating per message, for readers that go through
 * hundreds of thousands of them and use little of each (the flush worker): `scan` checks a
 * message's envelope and header exactly as decodeHeader does and notes where its common header
 * fields are (an Insert's collection, partition and segment too); on `scanInsertColumns` it checks
 * an Insert's body exactly as decodeMessage would and lays out its columns in `columns`. Anything else is decoded
 * with decodeLazily or decodeMessage. Everything describes the last scanned message only.
 * Errors are MessageDecodeError, as from the decoders.
 */
export class MessageScanner {
  type: MessageType = 'TimeTick';
  /** The message is part of a transaction (see txnId). */
  hasTxn = false;
  /** An Insert's header fields (0 for other types). */
  collectionId = 0;
  partitionId = 0;
  segmentId = 0;
  /** An Insert's columns, after scanInsertColumns. */
  readonly columns = new InsertColumns();
  private memory: ArrayBufferLike | undefined;
  private bytes: Buffer = NO_BUFFER;
  private view: DataView = new DataView(new ArrayBuffer(0));
  private reader = new ByteReader(NO_BUFFER, this.view, 0, 0);
  private verified = false;
  private at = 0;
  private headerEnd = 0;
  private bodyLength = 0;
  private vchannelAt = 0;
  private vchannelLength = 0;
  private timetickAt = 0;
  private txnAt = 0;

  /** Scans the message in `data` (see the class). */
  scan(data: Uint8Array, opts?: DecodeOptions): void {
    try {
      if (!ArrayBuffer.isView(data) || (data as Partial<Uint8Array>).BYTES_PER_ELEMENT !== 1) throw decodeError('not a byte array');
      if (data.buffer !== this.memory) {
        // One Buffer and DataView per memory block (a WAL chunk holds thousands of messages).
        this.memory = data.buffer;
        this.bytes = Buffer.from(data.buffer, 0, data.buffer.byteLength);
        this.view = new DataView(data.buffer);
        this.reader = new ByteReader(this.bytes, this.view, 0, 0);
      }
      const at = data.byteOffset;
      const verified = opts?.verified === true;
      const code = checkEnvelope(this.bytes, this.view, at, data.length, verified);
      const type = TYPE_BY_CODE.get(code)!;
      const flags = this.view.getUint16(at + OFF_TYPE + 2, true);
      this.type = type;
      this.verified = verified;
      this.at = at;
      this.headerEnd = at + ENVELOPE_BYTES + this.view.getUint32(at + OFF_HEADER_LEN, true);
      this.bodyLength = this.view.getUint32(at + OFF_BODY_LEN, true);
      this.columns.count = 0;
      const r = this.reader;
      r.pos = at + ENVELOPE_BYTES;
      r.end = this.headerEnd;
      this.vchannelLength = r.u32();
      this.vchannelAt = r.pos;
      skip(r, this.vchannelLength);
      this.timetickAt = r.pos;
      skip(r, 8);
      skip(r, r.u32()); // lastConfirmedId
      skip(r, 4); // term
      this.hasTxn = (flags & FLAG_TXN) !== 0;
      if (this.hasTxn) {
        this.txnAt = r.pos;
        skip(r, 8);
        r.safeInt(); // keepaliveMs, checked as decodeHeader checks it
      }
      if ((flags & FLAG_IDEMPOTENCY_KEY) !== 0) skip(r, r.u32());
      if (type === 'Insert') {
        this.collectionId = r.safeInt();
        this.partitionId = r.safeInt();
        r.safeInt(); // rows
        r.safeInt(); // bytes
        this.segmentId = r.safeInt();
      } else {
        this.collectionId = this.partitionId = this.segmentId = 0;
        checkTypeHeader(r, type);
      }
      if (r.remaining !== 0) throw decodeError('malformed header', { trailing: r.remaining });
    } catch (e) {
      throw asDecodeError(e);
    }
  }

  /** Whether the vchannel is `utf8` (its UTF-8 bytes), without decoding it. */
  vchannelIs(utf8: Uint8Array): boolean {
    return bytesAre(this.bytes, this.vchannelAt, this.vchannelLength, utf8);
  }

  /** Whether the vchannel is empty (a pchannel-wide message). */
  get pchannelWide(): boolean {
    return this.vchannelLength === 0;
  }

  timetick(): bigint {
    return this.view.getBigUint64(this.timetickAt, true);
  }

  /** The transaction's id (hasTxn only). */
  txnId(): bigint {
    if (!this.hasTxn) throw decodeError('not in a transaction', { type: this.type });
    return this.view.getBigUint64(this.txnAt, true);
  }

  /**
   * Checks an Insert's body (its checksum unless verified, structure, bool bytes, int64 range, JSON
   * text: exactly what decodeMessage accepts) and lays out its columns in `columns`.
   */
  scanInsertColumns(): void {
    try {
      if (this.type !== 'Insert') throw decodeError('not an Insert', { type: this.type });
      const start = this.headerEnd;
      if (!this.verified) {
        const expected = this.view.getUint32(this.at + OFF_BODY_CRC, true);
        const actual = this.bodyLength === 0 ? 0 : crc32(sliceView(this.bytes, start, this.bodyLength));
        if (actual !== expected) throw decodeError('body checksum mismatch');
      }
      const r = this.reader;
      const columns = this.columns;
      if (columns.sameAsLast(this.bytes, start, this.bodyLength)) {
        // Described as the last one: only the values are left to check, as layOutColumns checks them.
        for (let i = 0; i < columns.count; i++) checkValues(r, columns.type[i]!, columns.valuesAt[i]!, columns.rows[i]!);
        return;
      }
      r.pos = start;
      r.end = start + this.bodyLength;
      layOutColumns(r, columns);
      if (r.remaining !== 0) throw decodeError('malformed body', { trailing: r.remaining });
    } catch (e) {
      this.columns.forget(); // what is laid out is of a message that was refused: nothing to go on
      throw asDecodeError(e);
    }
  }
}

/** Reads over the type-specific header of a type other than Insert, checking it as readTypeHeader does. */
function checkTypeHeader(r: ByteReader, type: Exclude<MessageType, 'Insert'>): void {
  const ints = (n: number): void => {
    for (let i = 0; i < n; i++) r.safeInt();
  };
  const idList = (): void => {
    const n = r.u32();
    r.need(8 * n);
    ints(n);
  };
  switch (type) {
    case 'TimeTick':
    case 'CommitTxn':
    case 'RollbackTxn':
    case 'Txn':
      return;
    case 'Delete':
    case 'Flush':
      return ints(3);
    case 'CreateCollection':
      ints(1);
      return idList();
    case 'DropCollection':
    case 'BeginTxn':
      return ints(1);
    case 'CreatePartition':
    case 'DropPartition':
      return ints(2);
    case 'ManualFlush':
      ints(1);
      skip(r, 8); // flushTs, a u64
      return idList();
    case 'CreateSegment':
      return ints(5);
  }
}

function skip(r: ByteReader, n: number): void {
  r.need(n);
  r.pos += n;
}

/** Walks an Insert body's columns (at `r`), checking them as readColumns does, into `out`. */
function layOutColumns(r: ByteReader, out: InsertColumns): void {
  out.forget();
  out.bytes = r.buf;
  out.count = 0;
  const bodyStart = r.pos;
  /** Where the columns are described, relative to the body: pairs of offset and length. */
  const ranges = [0, 4];
  let textual = false;
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const columnStart = r.pos;
    const nameLength = r.u32();
    const nameAt = r.pos;
    skip(r, nameLength);
    const code = r.u8();
    const rows = r.u32();
    const type = FIELD_TYPE_BY_CODE.get(code);
    if (type === undefined) throw decodeError('unknown field type', { column: r.buf.toString('utf8', nameAt, nameAt + nameLength), code });
    let dim = 0;
    let lengthsAt = -1;
    let size: number;
    switch (type) {
      case 'floatVector':
        dim = r.u32();
        if (dim === 0) throw decodeError('malformed body', { column: r.buf.toString('utf8', nameAt, nameAt + nameLength), dim });
        size = 4 * rows * dim;
        break;
      case 'bool':
        r.need(rows);
        checkValues(r, type, r.pos, rows);
        size = rows;
        break;
      case 'int64':
        r.need(8 * rows);
        checkValues(r, type, r.pos, rows);
        size = 8 * rows;
        break;
      case 'int32':
      case 'float':
        size = 4 * rows;
        break;
      case 'double':
        size = 8 * rows;
        break;
      case 'varchar':
      case 'json': {
        lengthsAt = r.pos;
        r.need(4 * rows);
        let total = 0;
        for (let p = lengthsAt; p < lengthsAt + 4 * rows; p += 4) total += r.view.getUint32(p, true);
        if (type === 'json') {
          for (const text of readStrings(r, rows)) parseJson(text);
          r.pos -= total;
        } else {
          r.pos += 4 * rows;
        }
        size = total;
        break;
      }
    }
    const valuesAt = r.pos;
    skip(r, size);
    if (lengthsAt >= 0) textual = true;
    else ranges.push(columnStart - bodyStart, valuesAt - columnStart);
    out.type[i] = type;
    out.rows[i] = rows;
    out.dim[i] = dim;
    out.nameAt[i] = nameAt;
    out.nameLength[i] = nameLength;
    out.valuesAt[i] = valuesAt;
    out.valuesLength[i] = size;
    out.lengthsAt[i] = lengthsAt;
    out.count = i + 1;
  }
  if (r.remaining === 0) out.remember(bodyStart, r.pos - bodyStart, textual, ranges);
}

/** The checks of an encoded column's values beyond its bounds: bools are 0 or 1, int64 values safe integers. */
function checkValues(r: ByteReader, type: FieldType, at: number, rows: number): void {
  if (type === 'int64') checkSafeInts(r, at, rows);
  else if (type === 'bool') checkBools(r.buf, at, rows);
}

function checkBools(buf: Uint8Array, at: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = buf[at + i];
    if (v !== 0 && v !== 1) throw decodeError('malformed body', { offset: i, bool: v });
  }
}

/** Throws unless the `n` int64 values at `pos` are safe integers (as readNumbers requires). */
function checkSafeInts(r: ByteReader, pos: number, n: number): void {
  for (let i = 0; i < n; i++) r.int64At(pos + 8 * i);
}
