/**
 * The one conformance suite every Mailbox runs (runtime/mailbox/mailbox.ts). An implementation's test
 * file calls `describeMailboxConformance('redis', factory)`; the factory returns a fresh, empty
 * shared state on which `mailbox()` makes processes (each its own client id and connections), plus
 * a few inspection hooks on the underlying streams.
 *
 * What it checks: request/reply correlation under concurrency (several clients, hundreds of
 * requests in flight, replies out of order); errors cross with code, message, retriable and details;
 * deadlines (the client times out, the server drops the late request without running it); size
 * limits (oversize request → INVALID_ARGUMENT `request` from the server, oversize reply →
 * RESOURCE_EXHAUSTED, the server keeps serving); malformed entries → INVALID_ARGUMENT naming the
 * field; streams with credits (a stalled consumer keeps the server at most `credits` ahead, asserted
 * at every pull on the server side), in order with binary vectors exact, cancel stops the server's
 * iterator, errors end a stream after its items; consumer-group restart (requests a dead server had
 * read but not answered, and requests sent while no server ran, are served by its successor);
 * bounded stream lengths; reply streams refreshed while their client lives and expiring when it dies;
 * heartbeats; ordered, idempotent close. Waiting is always a poll against a deadline or an event.
 */
import { systemClock, type Clock } from '../../runtime/clock';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import { encodeMessage } from '../../runtime/message/codec';
import type { InsertMessage, LogMessage, TimeTickMessage, TxnMessage } from '../../runtime/message/types';
import type { CollectionInfo } from '../../runtime/client/api';
import { ReplyKind, RequestKind, parseReply, requestFields, WIRE_VERSION, type ReplyEnvelope } from '../../runtime/mailbox/envelope';
import type { HandlerTable, MailboxOptions, MailboxServer } from '../../runtime/mailbox/mailbox';
import type { WireMailbox } from '../../runtime/mailbox/wire-mailbox';
import type { ReplyReader, WireFields } from '../../runtime/mailbox/wire';

export interface MailboxFixture {
  /** A new mailbox ("process") on the shared state; `options` override the fixture's test defaults. */
  mailbox(options?: Partial<MailboxOptions>): Promise<WireMailbox>;
  inboxLength(address: string): Promise<number>;
  /** Entries of an address's inbox delivered to a server and not acknowledged. */
  pendingCount(address: string): Promise<number>;
  replyLength(clientId: string): Promise<number>;
  replyStreamExists(clientId: string): Promise<boolean>;
  /** Deletes a client's reply stream (its process "died" and the stream expired). */
  deleteReplyStream(clientId: string): Promise<void>;
  /** How far above MAXLEN a stream may be: Redis trims `~` by whole radix nodes; the memory hub exactly (0). */
  readonly trimSlack: number;
  cleanup(): Promise<void>;
}

/** Polls `cond` until it holds or `timeoutMs` passes (then fails naming `what`). */
export async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A promise the test opens. */
class Gate {
  private open!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.open = resolve));
  release(): void {
    this.open();
  }
}

function info(name: string, id: number): CollectionInfo {
  return {
    id,
    name,
    schema: { fields: [{ name: 'pk', type: 'int64', primaryKey: true }, { name: 'v', type: 'floatVector', dim: 3 }] },
    vchannels: [`dml_0_${id}v0`],
    partitions: [{ id: id * 10, name: '_default' }],
    state: 'normal',
  };
}

/** The i-th message of a test stream: TimeTicks, Inserts with vectors, and every 7th a committed transaction. */
export function logMessage(i: number): LogMessage {
  const common = { vchannel: 'dml_0_1v0', timetick: BigInt(1000 + i) << 18n, lastConfirmedId: `lc-${i}`, term: 3 };
  const insert = (j: number, txn?: { id: bigint; keepaliveMs: number }): LogMessage<InsertMessage> => {
    const vec = new Float32Array([j + 0.1, -j / 3, Math.PI * j, 1e-38, -0, Number.MAX_VALUE > 0 ? 3.4028234663852886e38 : 0]);
    const m: InsertMessage = {
      ...common,
      type: 'Insert',
      ...(txn ? { txn } : {}),
      idempotencyKey: `k-${j}`,
      header: { collectionId: 1, partitionId: 10, rows: 1, bytes: 24, segmentId: 7 },
      body: { columns: [{ name: 'pk', type: 'int64', data: [j] }, { name: 'v', type: 'floatVector', dim: 6, data: vec }] },
    };
    return { ...m, id: `id-${j}`, size: encodeMessage(m).length };
  };
  if (i % 7 === 6) {
    const txn = { id: BigInt(900 + i) << 18n, keepaliveMs: 5000 };
    const bodies = [insert(i * 100 + 1, txn), insert(i * 100 + 2, txn)];
    const t: LogMessage<TxnMessage> = { ...common, type: 'Txn', txn, header: { txnId: txn.id, count: 2 }, body: { messages: bodies }, id: `id-${i}`, size: 123 };
    return t;
  }
  if (i % 2 === 0) {
    const m: TimeTickMessage = { ...common, type: 'TimeTick', header: {}, body: {} };
    return { ...m, id: `id-${i}`, size: encodeMessage(m).length, ...(i % 4 === 0 ? { notPersisted: true } : {}) };
  }
  return insert(i);
}

interface CountingIterator {
  it: AsyncIterator<LogMessage>;
  pulled: number;
  returned: boolean;
  /** Largest pulled − consumer's next() calls seen at any pull. */
  maxAhead: number;
}

/** A server-side iterator that counts pulls (`limit` items, then done; Infinity = endless). */
function counting(limit: number, consumerCalls: () => number, failAt?: { index: number; error: StreamingError }): CountingIterator {
  const c: CountingIterator = {
    pulled: 0,
    returned: false,
    maxAhead: 0,
    it: {
      next: () => {
        if (c.returned) return Promise.resolve({ value: undefined, done: true });
        if (c.pulled >= limit) return Promise.resolve({ value: undefined, done: true });
        const i = c.pulled++;
        c.maxAhead = Math.max(c.maxAhead, c.pulled - consumerCalls());
        if (failAt && i === failAt.index) return Promise.reject(failAt.error);
        return Promise.resolve({ value: logMessage(i), done: false });
      },
      return: () => {
        c.returned = true;
        return Promise.resolve({ value: undefined, done: true });
      },
    },
  };
  return c;
}

/** A clock whose intervals never fire: a process frozen for the mailbox's periodic work (refresh, heartbeats). */
function frozenIntervals(base: Clock = systemClock): Clock {
  return { ...base, now: () => base.now(), monotonic: () => base.monotonic(), setTimeout: (fn, ms) => base.setTimeout(fn, ms), sleep: (ms) => base.sleep(ms), setInterval: () => ({ cancel: () => undefined }) };
}

/** Sends hand-built entries (as another implementation, or an attacker, might) and waits for their replies. */
class RawClient {
  private readonly waiting = new Map<string, (r: ReplyEnvelope) => void>();
  private reader: ReplyReader | undefined;
  private seq = 0;

  constructor(
    private readonly mailbox: WireMailbox,
    readonly clientId: string,
  ) {}

  async open(): Promise<void> {
    this.reader = await this.mailbox.wire.openReplies(this.clientId, (entries) => {
      for (const e of entries) {
        const r = e.fields && parseReply(e.fields);
        if (r && r.kind !== ReplyKind.hello) this.waiting.get(r.id)?.(r);
      }
    });
  }

  nextId(): string {
    return `raw.${++this.seq}`;
  }

  /** A well-formed request envelope for `command` (tests then tamper with it). */
  fields(command: unknown, opts: { kind?: string; id?: string; bin?: Buffer; deadline?: number } = {}): WireFields {
    const id = opts.id ?? this.nextId();
    const f = requestFields({ kind: RequestKind.call, id, replyTo: this.clientId, deadline: opts.deadline ?? Date.now() + 30_000, command: { json: command, ...(opts.bin ? { bin: opts.bin } : {}) } });
    if (opts.kind !== undefined) f.set('k', Buffer.from(opts.kind));
    return f;
  }

  async send(address: string, fields: WireFields, timeoutMs = 10_000): Promise<ReplyEnvelope> {
    const id = fields.get('id')!.toString();
    const reply = new Promise<ReplyEnvelope>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to raw request ${id} within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        this.waiting.delete(id);
        resolve(r);
      });
    });
    await this.mailbox.wire.sendRequest(address, fields);
    return reply;
  }

  async close(): Promise<void> {
    await this.reader?.close();
  }
}

export function describeMailboxConformance(name: string, factory: () => Promise<MailboxFixture>): void {
  describe(`Mailbox conformance: ${name}`, () => {
    let fx: MailboxFixture;
    let opened: WireMailbox[];
    const cleanups: (() => void | Promise<void>)[] = [];

    const mailbox = async (options?: Partial<MailboxOptions>): Promise<WireMailbox> => {
      const m = await fx.mailbox(options);
      opened.push(m);
      return m;
    };

    beforeEach(async () => {
      opened = [];
      fx = await factory();
    });

    afterEach(async () => {
      for (const c of cleanups.splice(0)) await c();
      for (const m of opened) {
        await m.close();
        await m.close(); // idempotent
      }
      await fx?.cleanup();
    });

    const echo: HandlerTable = {
      describeCollection: async (c) => {
        // Finish out of order: later requests often answer first.
        const n = [...c.name].reduce((a, ch) => a + ch.charCodeAt(0), 0) % 5;
        for (let i = 0; i < n; i++) await tick();
        return info(c.name, c.name.length);
      },
    };

    it('matches replies to requests under concurrency: several clients, hundreds in flight, each its own answer', async () => {
      const server = await mailbox();
      const srv = await server.serve('srv', echo);
      const clients = await Promise.all([1, 2, 3, 4].map(() => mailbox()));
      const perClient = 150;
      const results = await Promise.all(
        clients.flatMap((c, ci) => Array.from({ length: perClient }, (_, i) => c.request('srv', { type: 'describeCollection', name: `c${ci}-r${i}` }, { timeoutMs: 30_000 }).then((r) => ({ asked: `c${ci}-r${i}`, r })))),
      );
      expect(results).toHaveLength(4 * perClient);
      for (const { asked, r } of results) expect(r).toEqual(info(asked, asked.length));
      expect(srv.stats()).toMatchObject({ handled: 4 * perClient, replied: 4 * perClient, failed: 0, expired: 0, invalid: 0 });
      await eventually('every request acknowledged', async () => (await fx.pendingCount('srv')) === 0);
    });

    it('carries errors with code, message, retriable and details intact', async () => {
      const server = await mailbox();
      await server.serve('srv', {
        describeCollection: async (c) => {
          switch (c.name) {
            case 'term':
              throw new StreamingError(ErrorCode.UNMATCHED_CHANNEL_TERM, 'term 3 is not 4', { details: { pchannel: 'dml_0', term: 3, nested: { list: [1, 'two', null], flag: true } } });
            case 'exhausted':
              throw new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, 'full', { retriable: false, details: { limit: 10 } });
            case 'fenced':
              throw new StreamingError(ErrorCode.CHANNEL_FENCED, 'fenced', { details: { currentTerm: 9 } });
            default:
              throw new Error(`plain failure of ${c.name}`);
          }
        },
      });
      const client = await mailbox();
      const ask = (n: string): Promise<unknown> => client.request('srv', { type: 'describeCollection', name: n }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
      const term = await ask('term');
      expect(term).toBeInstanceOf(StreamingError);
      expect((term as StreamingError).toJSON()).toEqual({ code: 'UNMATCHED_CHANNEL_TERM', message: 'term 3 is not 4', retriable: true, details: { pchannel: 'dml_0', term: 3, nested: { list: [1, 'two', null], flag: true } } });
      expect((await ask('exhausted')) as StreamingError).toMatchObject({ code: ErrorCode.RESOURCE_EXHAUSTED, retriable: false, details: { limit: 10 } });
      expect((await ask('fenced')) as StreamingError).toMatchObject({ code: ErrorCode.CHANNEL_FENCED, retriable: false, details: { currentTerm: 9 } });
      expect((await ask('other')) as StreamingError).toMatchObject({ code: ErrorCode.UNKNOWN, message: 'plain failure of other' });
    });

    it('times out at the client and drops the late request at the server without running it', async () => {
      const client = await mailbox();
      let runs = 0;
      const ran: string[] = [];
      const late = await client.request('srv', { type: 'describeCollection', name: 'late' }, { timeoutMs: 50 }).catch((e: unknown) => e);
      expect(late).toMatchObject({ code: ErrorCode.UNKNOWN, retriable: true, details: { deadlineExceeded: true, timeoutMs: 50 } });
      // The late request is in the inbox; a server starting now must drop it, and serve what follows.
      const server = await mailbox();
      const srv = await server.serve('srv', {
        describeCollection: async (c) => {
          runs++;
          ran.push(c.name);
          return info(c.name, 1);
        },
      });
      await expect(client.request('srv', { type: 'describeCollection', name: 'marker' }, { timeoutMs: 10_000 })).resolves.toMatchObject({ name: 'marker' });
      expect(ran).toEqual(['marker']);
      expect(runs).toBe(1);
      expect(srv.stats()).toMatchObject({ expired: 1, handled: 1 });
      await eventually('the expired request acknowledged too', async () => (await fx.pendingCount('srv')) === 0);
    });

    it('refuses an oversize request with INVALID_ARGUMENT (field "request") and keeps serving; the client refuses its own', async () => {
      const server = await mailbox({ maxRequestBytes: 2048, maxReplyBytes: 4096 });
      const srv = await server.serve('srv', {
        ...echo,
        append: async () => ({ id: 'x', timetick: 1n, lastConfirmedId: 'x' }),
        listCollections: async () => Array.from({ length: 200 }, (_, i) => info(`big-${i}`, i)),
      });
      const client = await mailbox(); // default limits: larger than the server's
      const big = logMessage(1) as LogMessage<InsertMessage>;
      const message: InsertMessage = { ...big, body: { columns: [{ name: 'pk', type: 'int64', data: [1] }, { name: 'v', type: 'floatVector', dim: 1024, data: new Float32Array(1024) }] } };
      const err = await client.request('srv', { type: 'append', pchannel: 'dml_0', term: 1, message }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, retriable: false, details: { field: 'request', limit: 2048 } });
      expect((err as StreamingError).details?.['size']).toBeGreaterThan(4096);
      // Oversize reply: RESOURCE_EXHAUSTED naming the reply.
      await expect(client.request('srv', { type: 'listCollections' }, { timeoutMs: 10_000 })).rejects.toMatchObject({ code: ErrorCode.RESOURCE_EXHAUSTED, retriable: false, details: { field: 'reply', limit: 4096 } });
      // Still serving.
      await expect(client.request('srv', { type: 'describeCollection', name: 'after' }, { timeoutMs: 10_000 })).resolves.toMatchObject({ name: 'after' });
      expect(srv.stats()).toMatchObject({ invalid: 1, handled: 2 });
      // A client with the small limit refuses before sending anything.
      const small = await mailbox({ maxRequestBytes: 2048 });
      await expect(small.request('srv', { type: 'append', pchannel: 'dml_0', term: 1, message }, { timeoutMs: 10_000 })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'request', limit: 2048 } });
      expect(srv.stats().received).toBe(3);
    });

    it('answers malformed entries with INVALID_ARGUMENT naming the field, and keeps serving', async () => {
      const server = await mailbox();
      const appended: unknown[] = [];
      const srv = await server.serve('srv', {
        ...echo,
        getAssignment: async () => ({ version: 1, nodes: [], channels: [] }),
        createCollection: async (c) => info(c.req.name, 1),
        append: async (c) => {
          appended.push(c.message);
          return { id: 'x', timetick: 1n, lastConfirmedId: 'x' };
        },
        subscribe: async () => counting(1, () => 0).it,
      });
      const raw = new RawClient(server, 'raw-client');
      await raw.open();
      cleanups.push(() => raw.close());
      const fieldOf = async (f: WireFields): Promise<unknown> => {
        const r = await raw.send('srv', f);
        expect(r.kind).toBe(ReplyKind.err);
        expect(r.error).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, retriable: false });
        return r.error?.details?.['field'];
      };
      const schema = { fields: [{ name: 'pk', type: 'int64', primaryKey: true }] };
      expect(await fieldOf(raw.fields({ type: 'describeCollection', name: 42 }))).toBe('name');
      expect(await fieldOf(raw.fields({ type: 'describeCollection' }))).toBe('name');
      expect(await fieldOf(raw.fields({ type: 'dropDatabase' }))).toBe('type');
      expect(await fieldOf(raw.fields({ type: 'transfer', pchannel: 'p' }))).toBe('type'); // a real command this address does not serve
      expect(await fieldOf(raw.fields({ name: 'no type' }))).toBe('type');
      expect(await fieldOf(raw.fields([1, 2]))).toBe('command');
      expect(await fieldOf(raw.fields({ type: 'getAssignment', extra: 1 }))).toBe('extra');
      expect(await fieldOf(raw.fields({ type: 'createCollection', req: { name: 'c', schema: { fields: [{ name: 'pk', type: 'float16' }] } } }))).toBe('req.schema.fields[0].type');
      expect(await fieldOf(raw.fields({ type: 'createCollection', req: { name: 'c', schema, shards: 1.5 } }))).toBe('req.shards');
      expect(await fieldOf(raw.fields({ type: 'append', pchannel: 'p', term: -1 }, { bin: Buffer.from(encodeMessage(logMessage(1))) }))).toBe('term');
      expect(await fieldOf(raw.fields({ type: 'append', pchannel: 'p', term: 1 }))).toBe('message');
      expect(await fieldOf(raw.fields({ type: 'append', pchannel: 'p', term: 1 }, { bin: Buffer.from('not a message') }))).toBe('message');
      expect(await fieldOf(raw.fields({ type: 'getAssignment' }, { bin: Buffer.from('x') }))).toBe('body');
      const sub = (options: unknown): WireFields => raw.fields({ type: 'subscribe', pchannel: 'p', term: 1, options }, { kind: RequestKind.open });
      expect(await fieldOf(sub({ policy: { type: 'sometimes' } }))).toBe('options.policy.type');
      expect(await fieldOf(sub({ policy: { type: 'startFrom' } }))).toBe('options.policy.id');
      expect(await fieldOf(sub({ policy: { type: 'all' }, filters: { timetickGt: 5 } }))).toBe('options.filters.timetickGt');
      expect(await fieldOf(sub({ policy: { type: 'all' }, filters: { types: ['Insert', 'Bogus'] } }))).toBe('options.filters.types[1]');
      expect(await fieldOf(raw.fields({ type: 'subscribe', pchannel: 'p', term: 1, options: { policy: { type: 'all' } } }))).toBe('kind'); // a stream sent as a call
      expect(await fieldOf(raw.fields({ type: 'getAssignment' }, { kind: RequestKind.open }))).toBe('kind');
      // Envelope damage.
      const noDeadline = raw.fields({ type: 'getAssignment' });
      noDeadline.delete('d');
      expect(await fieldOf(noDeadline)).toBe('deadline');
      const badVersion = raw.fields({ type: 'getAssignment' });
      badVersion.set('v', Buffer.from('99'));
      expect(await fieldOf(badVersion)).toBe('version');
      expect(await fieldOf(raw.fields({ type: 'getAssignment' }, { kind: 'shout' }))).toBe('kind');
      const notJson = raw.fields({ type: 'getAssignment' });
      notJson.set('c', Buffer.from('{"type": "getAss'));
      expect(await fieldOf(notJson)).toBe('command');
      // Entries nobody can be answered for are dropped (and acknowledged).
      const anonymous = raw.fields({ type: 'getAssignment' });
      anonymous.delete('r');
      await server.wire.sendRequest('srv', anonymous);
      // The server keeps serving: a good request from the raw client and from a real one.
      const ok = await raw.send('srv', raw.fields({ type: 'describeCollection', name: 'fine' }));
      expect(srv.stats().invalid).toBe(24); // the inbox is read in order: the anonymous entry came before 'fine'
      expect(ok.kind).toBe(ReplyKind.ok);
      expect(ok.payload?.json).toMatchObject({ name: 'fine' });
      const client = await mailbox();
      await expect(client.request('srv', { type: 'describeCollection', name: 'still' }, { timeoutMs: 10_000 })).resolves.toMatchObject({ name: 'still' });
      expect(appended).toEqual([]);
      expect(srv.stats().handled).toBe(2);
      await eventually('every entry acknowledged', async () => (await fx.pendingCount('srv')) === 0);
      expect(WIRE_VERSION).toBe('1');
    });

    it('streams in order with credits: a stalled consumer keeps the server at most `credits` ahead', async () => {
      const server = await mailbox();
      let calls = 0;
      const total = 60;
      const credits = 5;
      let source: CountingIterator | undefined;
      const srv = await server.serve('srv', {
        subscribe: async (c) => {
          expect(c).toEqual({ type: 'subscribe', pchannel: 'dml_0', term: 3, options: { vchannel: 'dml_0_1v0', policy: { type: 'startFrom', id: 'lc-1' }, filters: { timetickGt: 123n, types: ['Insert'] }, credits } });
          source = counting(total, () => calls);
          return source.it;
        },
      });
      const client = await mailbox();
      const stream = await client.openStream(
        'srv',
        { type: 'subscribe', pchannel: 'dml_0', term: 3, options: { vchannel: 'dml_0_1v0', policy: { type: 'startFrom', id: 'lc-1' }, filters: { timetickGt: 123n, types: ['Insert'] }, credits } },
        { timeoutMs: 10_000, credits },
      );
      // Stalled consumer: the server pulls exactly `credits` items and no more.
      await eventually('server used its credits', () => source?.pulled === credits);
      expect(srv.stats()).toMatchObject({ streams: 1 });
      const got: LogMessage[] = [];
      for (;;) {
        calls++;
        const r = await stream.next();
        if (r.done) break;
        got.push(r.value);
        await tick(); // a slow consumer
        await tick();
      }
      expect(got).toHaveLength(total);
      expect(got).toEqual(Array.from({ length: total }, (_, i) => logMessage(i)));
      const insert = got[1] as LogMessage<InsertMessage>;
      const vec = insert.body.columns[1]!;
      expect(vec.type === 'floatVector' && Buffer.from(vec.data.buffer, vec.data.byteOffset, vec.data.byteLength)).toEqual(Buffer.from(new Float32Array([1.1, -1 / 3, Math.PI, 1e-38, -0, 3.4028234663852886e38]).buffer));
      expect(got[6]).toMatchObject({ type: 'Txn', header: { count: 2 } });
      expect(source!.maxAhead).toBeLessThanOrEqual(credits);
      expect(source!.returned).toBe(false); // it ended by itself
      await eventually('stream gone at the server', () => srv.stats().streams === 0);
      expect(srv.stats().items).toBe(total);
    });

    it('cancel stops the server iterator; the consumer sees done', async () => {
      const server = await mailbox();
      let source: CountingIterator | undefined;
      let calls = 0;
      const srv = await server.serve('srv', {
        subscribe: async () => {
          source = counting(Infinity, () => calls);
          return source.it;
        },
      });
      const client = await mailbox();
      const stream = await client.openStream('srv', { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000, credits: 4 });
      for (let i = 0; i < 10; i++) {
        calls++;
        const r = await stream.next();
        expect(r).toEqual({ done: false, value: logMessage(i) });
      }
      stream.close();
      await expect(stream.next()).resolves.toEqual({ done: true, value: undefined });
      await eventually('server iterator returned', () => source?.returned === true);
      await eventually('stream gone at the server', () => srv.stats().streams === 0);
      expect(source!.maxAhead).toBeLessThanOrEqual(4);
    });

    it('ends a stream with the iterator error after its items; an open error rejects openStream', async () => {
      const server = await mailbox();
      await server.serve('srv', {
        subscribe: async (c) => {
          if (c.pchannel === 'nope') throw new StreamingError(ErrorCode.CHANNEL_NOT_EXIST, 'no such pchannel here', { details: { pchannel: 'nope' } });
          return counting(10, () => 0, { index: 3, error: new StreamingError(ErrorCode.ON_SHUTDOWN, 'wal closed', { details: { pchannel: c.pchannel } }) }).it;
        },
      });
      const client = await mailbox();
      await expect(client.openStream('srv', { type: 'subscribe', pchannel: 'nope', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000 })).rejects.toMatchObject({
        code: ErrorCode.CHANNEL_NOT_EXIST,
        retriable: true,
        details: { pchannel: 'nope' },
      });
      const stream = await client.openStream('srv', { type: 'subscribe', pchannel: 'dml_1', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000, credits: 100 });
      const got: LogMessage[] = [];
      const err = await (async () => {
        for await (const m of stream) got.push(m);
      })().catch((e: unknown) => e);
      expect(got).toEqual([0, 1, 2].map(logMessage));
      expect(err).toMatchObject({ code: ErrorCode.ON_SHUTDOWN, retriable: true, details: { pchannel: 'dml_1' } });
    });

    it('a restarted server serves what its predecessor had read but not answered, and what arrived meanwhile', async () => {
      const gate = new Gate();
      cleanups.push(() => gate.release());
      let startedA = 0;
      const a = await mailbox({ drainTimeoutMs: 50 });
      const srvA = await a.serve('srv', {
        describeCollection: async (c) => {
          startedA++;
          await gate.opened;
          return info(`A:${c.name}`, 1);
        },
      });
      const client = await mailbox();
      const first = Array.from({ length: 5 }, (_, i) => client.request('srv', { type: 'describeCollection', name: `r${i}` }, { timeoutMs: 30_000 }));
      await eventually('server A took every request', () => startedA === 5);
      await srvA.close(); // drain times out: the five stay unacknowledged
      expect(await fx.pendingCount('srv')).toBe(5);
      const second = Array.from({ length: 3 }, (_, i) => client.request('srv', { type: 'describeCollection', name: `s${i}` }, { timeoutMs: 30_000 }));
      const b = await mailbox();
      const srvB = await b.serve('srv', { describeCollection: async (c) => info(`B:${c.name}`, 2) });
      const results = await Promise.all([...first, ...second]);
      expect(results.map((r) => r.name)).toEqual(['B:r0', 'B:r1', 'B:r2', 'B:r3', 'B:r4', 'B:s0', 'B:s1', 'B:s2']);
      expect(srvB.stats()).toMatchObject({ handled: 8, replied: 8 });
      gate.release(); // A's abandoned handlers finish now: they neither answer nor acknowledge
      await eventually('all acknowledged', async () => (await fx.pendingCount('srv')) === 0);
      expect(srvA.stats().replied).toBe(0);
    });

    it('keeps inboxes and reply streams within their length bounds', async () => {
      const maxLen = 50;
      const client = await mailbox({ inboxMaxLen: maxLen });
      const sent = await Promise.allSettled(Array.from({ length: 400 }, (_, i) => client.request('nobody', { type: 'describeCollection', name: `n${i}` }, { timeoutMs: 300 })));
      expect(sent.every((s) => s.status === 'rejected')).toBe(true);
      const inbox = await fx.inboxLength('nobody');
      expect(inbox).toBeGreaterThanOrEqual(maxLen);
      expect(inbox).toBeLessThanOrEqual(maxLen + fx.trimSlack);

      // A reply stream is bounded by its servers; the bound must exceed the replies a client has in flight
      // (the client reads its stream as fast as replies come, so one at a time stays far below it).
      const server = await mailbox({ replyMaxLen: 20 });
      await server.serve('srv', echo);
      for (let i = 0; i < 300; i++) {
        await expect(client.request('srv', { type: 'describeCollection', name: `m${i}` }, { timeoutMs: 30_000 })).resolves.toMatchObject({ name: `m${i}` });
      }
      const replies = await fx.replyLength(client.clientId);
      expect(replies).toBeGreaterThan(0);
      expect(replies).toBeLessThanOrEqual(20 + fx.trimSlack);
    });

    it('keeps a live client reply stream (refreshed) and lets a dead one expire; a closed one is gone', async () => {
      const ttl = 900; // the live client refreshes every ttl/3: robust to event-loop stalls of several hundred ms
      const live = await mailbox({ replyTtlMs: ttl });
      const dead = await mailbox({ replyTtlMs: ttl, clock: frozenIntervals() }); // never refreshes: a dead process
      const server = await mailbox();
      await server.serve('srv', echo);
      const born = Date.now();
      await live.request('srv', { type: 'describeCollection', name: 'a' }, { timeoutMs: 10_000 });
      await dead.request('srv', { type: 'describeCollection', name: 'b' }, { timeoutMs: 10_000 });
      expect(await fx.replyStreamExists(dead.clientId)).toBe(true);
      await eventually('the dead client reply stream expired', async () => !(await fx.replyStreamExists(dead.clientId)), 10 * ttl);
      expect(Date.now() - born).toBeGreaterThanOrEqual(ttl - 100);
      await eventually('two TTLs passed', () => Date.now() - born > 2 * ttl, 10 * ttl);
      expect(await fx.replyStreamExists(live.clientId)).toBe(true);
      // A reply to the dead client is dropped, never re-creating its stream.
      expect(await server.wire.sendReply(dead.clientId, new Map([['k', Buffer.from('hb')], ['id', Buffer.from('x')]]))).toBe(false);
      expect(await fx.replyStreamExists(dead.clientId)).toBe(false);
      await live.close();
      expect(await fx.replyStreamExists(live.clientId)).toBe(false);
    });

    it('a server cancels a stream whose client is gone; a client fails a stream whose server went silent', async () => {
      let source: CountingIterator | undefined;
      const server = await mailbox({ heartbeatMs: 50 });
      const srv = await server.serve('srv', {
        subscribe: async () => {
          source = counting(Infinity, () => 0);
          return source.it;
        },
      });
      const client = await mailbox({ heartbeatMs: 50 });
      const stream = await client.openStream('srv', { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000, credits: 2 });
      await eventually('credits used', () => source?.pulled === 2);
      await fx.deleteReplyStream(client.clientId); // the client "died": its stream expired
      await eventually('server noticed on a heartbeat and ended the iterator', () => source?.returned === true && srv.stats().streams === 0);
      stream.close();

      // The other way round: a server that stops sending heartbeats (frozen) is given up by the client.
      const frozen = await mailbox({ heartbeatMs: 50, clock: frozenIntervals() });
      await frozen.serve('quiet', { subscribe: async () => ({ next: () => new Promise<never>(() => undefined) }) }); // never sends an item
      const watcher = await mailbox({ heartbeatMs: 50 });
      const quiet = await watcher.openStream('quiet', { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000 });
      await expect(quiet.next()).rejects.toMatchObject({ code: ErrorCode.UNKNOWN, retriable: true, details: { address: 'quiet' } });
    });

    it('serves several addresses on one mailbox, refuses a second server for one address, closes in order and idempotently', async () => {
      const server = await mailbox();
      const s1 = await server.serve('one', { describeCollection: async (c) => info(`one:${c.name}`, 1) });
      await server.serve('two', { describeCollection: async (c) => info(`two:${c.name}`, 2) });
      await expect(server.serve('one', echo)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'address' } });
      await expect(server.serve('bad:address', echo)).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'address' } });
      const client = await mailbox();
      await expect(client.request('one', { type: 'describeCollection', name: 'x' }, { timeoutMs: 10_000 })).resolves.toMatchObject({ name: 'one:x' });
      await expect(client.request('two', { type: 'describeCollection', name: 'x' }, { timeoutMs: 10_000 })).resolves.toMatchObject({ name: 'two:x' });

      // Closing a server ends its streams with a retriable ON_SHUTDOWN at the client.
      let calls = 0;
      const streamer = await mailbox();
      const ss: MailboxServer = await streamer.serve('streams', { subscribe: async () => counting(Infinity, () => calls).it });
      const stream = await client.openStream('streams', { type: 'subscribe', pchannel: 'dml_0', term: 1, options: { policy: { type: 'all' } } }, { timeoutMs: 10_000, credits: 3 });
      calls++;
      await expect(stream.next()).resolves.toMatchObject({ done: false });
      await ss.close();
      await ss.close();
      const ended = await (async () => {
        for (;;) {
          calls++;
          const r = await stream.next();
          if (r.done) return 'done';
        }
      })().catch((e: unknown) => e);
      expect(ended).toMatchObject({ code: ErrorCode.ON_SHUTDOWN, retriable: true });

      // A pending request fails with ON_SHUTDOWN when its mailbox closes; later calls are refused.
      const pending = client.request('nobody', { type: 'describeCollection', name: 'never' }, { timeoutMs: 30_000 });
      const closing = client.close();
      await expect(pending).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await closing;
      await expect(client.request('one', { type: 'describeCollection', name: 'x' }, { timeoutMs: 1000 })).rejects.toMatchObject({ code: ErrorCode.ON_SHUTDOWN });
      await server.close();
      await server.close();
      expect(s1.stats().handled).toBe(1);
    });
  });
}
