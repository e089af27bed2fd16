/**
 * The mailbox command set on the wire: every command type survives encode → JSON text + bytes →
 * decode (the edge check) unchanged; results with bigints and optional fields come back typed; the
 * validator names the offending field; errors keep code, retriable and details.
 */
import { ErrorCode, StreamingError } from '../../runtime/errors';
import {
  COMMAND_TYPES,
  decodeCommand,
  decodeLogMessage,
  decodeResult,
  encodeCommand,
  encodeLogMessage,
  encodeResult,
  jsonText,
  type Command,
  type CommandType,
  type Payload,
} from '../../runtime/mailbox/commands';
import { errorJson, parseError, parseRequest, requestFields, RequestKind } from '../../runtime/mailbox/envelope';
import type { InsertMessage, NewMessage } from '../../runtime/message/types';
import { logMessage } from '../conformance/mailbox.suite';

const ALL = new Set<string>(COMMAND_TYPES);

/** Through the wire as the server sees it: JSON text parsed back, the binary part as a Buffer. */
function roundTrip(cmd: Command): Command {
  const p = encodeCommand(cmd);
  return decodeCommand(JSON.parse(jsonText(p.json)), p.bin, ALL);
}

function wire(p: Payload): Payload {
  return { json: JSON.parse(jsonText(p.json)), ...(p.bin ? { bin: Buffer.from(p.bin) } : {}) };
}

const insert: NewMessage<InsertMessage> = {
  type: 'Insert',
  vchannel: 'dml_0_5v0',
  idempotencyKey: 'k1',
  header: { collectionId: 5, partitionId: 50, rows: 2, bytes: 0, segmentId: 0 },
  body: {
    columns: [
      { name: 'id', type: 'int64', data: [1, 2] },
      { name: 'vec', type: 'floatVector', dim: 2, data: new Float32Array([0.1, -2.5, 3e-39, 1e38]) },
      { name: 'doc', type: 'json', data: [{ a: 1 }, null] },
    ],
  },
};

const EXAMPLES: { [T in CommandType]: Extract<Command, { type: T }> } = {
  getAssignment: { type: 'getAssignment' },
  watchAssignment: { type: 'watchAssignment', afterVersion: -1, timeoutMs: 30_000 },
  createCollection: { type: 'createCollection', req: { name: 'books', shards: 2, schema: { fields: [{ name: 'id', type: 'int64', primaryKey: true, autoId: true }, { name: 'v', type: 'floatVector', dim: 8 }, { name: 't', type: 'varchar', maxLength: 20 }] } } },
  dropCollection: { type: 'dropCollection', name: 'books' },
  createPartition: { type: 'createPartition', collection: 'books', partition: 'p1' },
  dropPartition: { type: 'dropPartition', collection: 'books', partition: 'p1' },
  describeCollection: { type: 'describeCollection', name: 'books' },
  listCollections: { type: 'listCollections' },
  flushCollection: { type: 'flushCollection', name: 'books' },
  status: { type: 'status' },
  transfer: { type: 'transfer', pchannel: 'dml_0', toNode: 'n2' },
  assign: { type: 'assign', pchannel: 'dml_0', term: 4 },
  remove: { type: 'remove', pchannel: 'dml_0', term: 3 },
  nodeStatus: { type: 'nodeStatus' },
  append: { type: 'append', pchannel: 'dml_0', term: 4, message: insert },
  subscribe: { type: 'subscribe', pchannel: 'dml_0', term: 4, options: { vchannel: 'dml_0_5v0', policy: { type: 'startAfter', id: '0000000000000042' }, filters: { timetickGt: (1n << 60n) + 7n, timetickGte: 3n, types: ['Insert', 'Delete'] }, credits: 16 } },
};

describe('mailbox commands on the wire', () => {
  it.each(Object.keys(EXAMPLES) as CommandType[])('%s survives the wire unchanged', (type) => {
    const cmd = EXAMPLES[type];
    const back = roundTrip(cmd);
    if (cmd.type === 'append') {
      // The fields the WAL fills arrive as the WAL defaults them.
      expect(back).toEqual({ ...cmd, message: { timetick: 0n, lastConfirmedId: '', term: 0, ...cmd.message } });
      const vec = (back as typeof cmd).message.body as InsertMessage['body'];
      const v = vec.columns[1]!;
      expect(v.type === 'floatVector' && [...v.data]).toEqual([...new Float32Array([0.1, -2.5, 3e-39, 1e38])]);
    } else {
      expect(back).toEqual(cmd);
    }
  });

  it('carries the message as codec bytes, never as a JSON number array', () => {
    const p = encodeCommand(EXAMPLES.append);
    expect(p.bin).toBeInstanceOf(Buffer);
    expect(jsonText(p.json)).toBe('{"type":"append","pchannel":"dml_0","term":4}');
  });

  it('names the offending field', () => {
    const field = (json: unknown, bin?: Buffer): unknown => {
      try {
        decodeCommand(json, bin, ALL);
      } catch (e) {
        expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        return (e as StreamingError).details?.['field'];
      }
      throw new Error('accepted');
    };
    expect(field({ type: 'watchAssignment', afterVersion: 1.5, timeoutMs: 1 })).toBe('afterVersion');
    expect(field({ type: 'assign', pchannel: '', term: 1 })).toBe('pchannel');
    expect(field({ type: 'assign', pchannel: 'p', term: 2 ** 32 })).toBe('term');
    expect(field({ type: 'createCollection', req: { name: 'x', schema: { fields: {} } } })).toBe('req.schema.fields');
    expect(field({ type: 'createCollection', req: { name: 'x', schema: { fields: [{ name: 'a', type: 'int64', dim: '8' }] } } })).toBe('req.schema.fields[0].dim');
    expect(field({ type: 'subscribe', pchannel: 'p', term: 1, options: { policy: { type: 'all' }, credits: 0 } })).toBe('options.credits');
    expect(field({ type: 'subscribe', pchannel: 'p', term: 1, options: { policy: { type: 'all' }, filters: { timetickGt: '-1' } } })).toBe('options.filters.timetickGt');
    expect(field({ type: 'subscribe', pchannel: 'p', term: 1, options: { policy: { type: 'all' }, filters: { timetickGt: '18446744073709551616' } } })).toBe('options.filters.timetickGt');
    expect(field({ type: 'status' }, Buffer.from('x'))).toBe('body');
    expect(field('status')).toBe('command');
    // A command of the set that this address does not serve.
    expect(() => decodeCommand({ type: 'status' }, undefined, new Set(['append']))).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: 'type' }) }));
  });

  it('refuses to encode what the codec cannot carry, naming the message', () => {
    const bad = { ...insert, header: { ...insert.header, collectionId: 2 ** 60 } };
    expect(() => encodeCommand({ type: 'append', pchannel: 'p', term: 1, message: bad })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, details: expect.objectContaining({ field: 'message.header.collectionId' }) }));
    const huge = { ...insert, body: { columns: [{ name: 'vec', type: 'floatVector' as const, dim: 1024, data: new Float32Array(1024 * 1100) }] } };
    expect(() => encodeCommand({ type: 'append', pchannel: 'p', term: 1, message: huge })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, details: expect.objectContaining({ field: 'message', limit: 4 * 1024 * 1024 }) }));
  });

  it('decodes results with bigints and optional fields typed', () => {
    const append = { id: '0000000000000009', timetick: (1n << 62n) + 5n, lastConfirmedId: '0000000000000001', txn: { id: 77n << 18n, keepaliveMs: 500 }, extra: { segmentIds: [3, 4] } };
    expect(decodeResult('append', wire(encodeResult('append', append)))).toEqual(append);
    const plain = { id: 'a', timetick: 1n, lastConfirmedId: '' };
    expect(decodeResult('append', wire(encodeResult('append', plain)))).toEqual(plain);
    const assignment = { version: 3, nodes: ['n1'], channels: [{ name: 'dml_0', term: 1, node: undefined, state: 'UNINITIALIZED' as const }] };
    const back = decodeResult('getAssignment', wire(encodeResult('getAssignment', assignment)));
    expect(back).toEqual(assignment);
    expect(Object.prototype.hasOwnProperty.call(back.channels[0], 'node')).toBe(true);
    expect(decodeResult('transfer', wire(encodeResult('transfer', { pchannel: 'p', from: undefined, to: 'n1', term: 2, tookMs: 5 })))).toEqual({ pchannel: 'p', from: undefined, to: 'n1', term: 2, tookMs: 5 });
    expect(decodeResult('dropCollection', wire(encodeResult('dropCollection', undefined)))).toBeUndefined();
  });

  it('carries log messages as stream items, transactions included, vectors bit-exact', () => {
    for (let i = 0; i < 21; i++) {
      const m = logMessage(i);
      expect(decodeLogMessage(wire(encodeLogMessage(m)))).toEqual(m);
    }
  });

  it('keeps an error intact across the envelope, and never crashes on unserializable details', () => {
    const e = new StreamingError(ErrorCode.CHANNEL_FENCED, 'fenced at 3', { details: { pchannel: 'p', term: 3, big: 5n } });
    expect(parseError(errorJson(e)).toJSON()).toEqual({ code: 'CHANNEL_FENCED', message: 'fenced at 3', retriable: false, details: { pchannel: 'p', term: 3, big: '5' } });
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    const c = new StreamingError(ErrorCode.INNER, 'loop', { details: circular });
    expect(parseError(errorJson(c)).toJSON()).toEqual({ code: 'INNER', message: 'loop', retriable: true, details: { unserializableDetails: true } });
    expect(parseError('{"code":"WHAT","message":"m","retriable":false}')).toMatchObject({ code: ErrorCode.UNKNOWN, retriable: false });
  });

  it('parses its own request envelope', () => {
    const f = requestFields({ kind: RequestKind.open, id: 'a.1', replyTo: 'client-1', deadline: 1700000000123, command: encodeCommand(EXAMPLES.subscribe), credits: 16 });
    const parsed = parseRequest(f);
    expect(parsed.ok && parsed.request).toMatchObject({ kind: 'open', id: 'a.1', replyTo: 'client-1', deadline: 1700000000123, credits: 16 });
  });
});
