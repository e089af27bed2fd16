/**
 * The mailbox transports against a tiny in-process cluster built from the real actors
 * (spawnCoordinator + two spawnStreamingNode, MemoryWalBackend, the coordinator store over an
 * EmbeddedMetaStore in a temporary directory — the WALs fence on its terms — and a flush queue that
 * only records), where every
 * hop crosses a mailbox as it would between processes: the client's calls, the coordinator's
 * assign/remove/status to the nodes, and the coordinator's DDL broadcast (its Router runs over the
 * mailbox too). Each "process" has its own mailbox. Runs over the memory mailbox and over Redis
 * (127.0.0.1:6379, REDIS_URL overrides; no Redis → FAIL, never skip).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { dispatch, start, stop, type Ref } from 'nact';
import { Redis } from 'ioredis';
import { systemClock } from '../../runtime/clock';
import { ErrorCode, StreamingError } from '../../runtime/errors';
import { createLogger } from '../../runtime/logger';
import { MemoryTsoStore, TimestampOracle, TsoAllocator } from '../../runtime/tso';
import { Client } from '../../runtime/client/client';
import { Router } from '../../runtime/client/router';
import type { Assignment } from '../../runtime/client/transport';
import { pchannelOf, type InsertMessage, type LogMessage, type NewMessage } from '../../runtime/message/types';
import { spawnCoordinator } from '../../actors/coordinator/coordinator-actor';
import type { CoordinatorMsg } from '../../actors/coordinator/messages';
import { MetaCoordinatorStore } from '../../actors/coordinator/meta-coordinator-store';
import { spawnStreamingNode, type NodeWalDeps } from '../../actors/streaming-node/node-actor';
import { walOptions } from '../../actors/wal/options';
import { MemoryBudget } from '../../actors/wal/segments';
import { EmbeddedMetaStore } from '../../storage/meta/embedded/embedded-meta-store';
import { MemoryWalBackend } from '../../storage/wal/memory/memory-backend';
import { RecordingFlushQueue } from '../support/recording-flush-queue';
import type { Mailbox } from '../../runtime/mailbox/mailbox';
import { MemoryMailbox, MemoryMailboxHub } from '../../runtime/mailbox/memory/memory-mailbox';
import { RedisMailbox } from '../../runtime/mailbox/redis/redis-mailbox';
import {
  COORDINATOR_ADDRESS,
  MailboxCoordinatorTransport,
  MailboxNodeControl,
  MailboxNodeTransport,
  nodeAddress,
  serveCoordinator,
  serveNode,
} from '../../runtime/mailbox/transports';

const SCHEMA = {
  fields: [
    { name: 'id', type: 'int64' as const, primaryKey: true },
    { name: 'vec', type: 'floatVector' as const, dim: 4 },
    { name: 'tag', type: 'varchar' as const, maxLength: 64 },
  ],
};
const PCHANNELS = ['dml_0', 'dml_1'];
const NODES = ['n1', 'n2'];

interface Cluster {
  client: Client;
  coordinator: MailboxCoordinatorTransport;
  nodes: MailboxNodeTransport;
  control: MailboxNodeControl;
  ready(): Promise<Assignment>;
  close(): Promise<void>;
}

async function startCluster(newMailbox: () => Promise<Mailbox>): Promise<Cluster> {
  const clock = systemClock;
  const system = start() as Ref<never>;
  const oracle = await TimestampOracle.open({ store: new MemoryTsoStore(), clock });
  const backend = new MemoryWalBackend();
  const metaDir = await fs.mkdtemp(path.join(os.tmpdir(), 'walstream-mailbox-meta-'));
  const meta = await EmbeddedMetaStore.open({ dir: metaDir, clock });
  const flushQueue = new RecordingFlushQueue();
  const walShared: NodeWalDeps = { meta, flushQueue, segmentIds: { next: () => meta.nextId('segment') } };
  const mailboxes: Mailbox[] = [];
  const open = async (): Promise<Mailbox> => {
    const m = await newMailbox();
    mailboxes.push(m);
    return m;
  };
  // The coordinator process: serves the coordinator, reaches nodes and appends DDL over its mailbox.
  const coordMb = await open();
  const router = new Router(new MailboxCoordinatorTransport(coordMb), new MailboxNodeTransport(coordMb), clock, createLogger('test.router'));
  const coordinator: Ref<CoordinatorMsg> = spawnCoordinator(system, {
    pchannels: PCHANNELS,
    store: new MetaCoordinatorStore(meta),
    nodes: new MailboxNodeControl(coordMb),
    router: () => router,
    clock,
    options: { operationTimeoutMs: 10_000, backoffInitialMs: 20, backoffMaxMs: 500 },
  });
  await serveCoordinator(coordMb, COORDINATOR_ADDRESS, coordinator);
  // One process per streaming node.
  for (const nodeId of NODES) {
    const nodeMb = await open();
    const ref = spawnStreamingNode(system, {
      nodeId,
      backend,
      wal: walShared,
      memoryBudget: new MemoryBudget(256 * 1024 * 1024, 128 * 1024 * 1024),
      newTso: () => new TsoAllocator({ source: oracle, clock }),
      clock,
      walOptions: walOptions({ timetickIntervalMs: 50 }),
      onUnavailable: (pchannel, term, error) => dispatch(coordinator, { type: 'reportUnavailable', pchannel, term, nodeId, reason: `${error.code}: ${error.message}` }),
    });
    await serveNode(nodeMb, nodeAddress(nodeId), ref);
    dispatch(coordinator, { type: 'nodeUp', nodeId });
  }
  // The client process.
  const clientMb = await open();
  const coordinatorTransport = new MailboxCoordinatorTransport(clientMb);
  const nodes = new MailboxNodeTransport(clientMb);
  const client = new Client(coordinatorTransport, nodes, { clock, defaultTimeoutMs: 20_000 });
  return {
    client,
    coordinator: coordinatorTransport,
    nodes,
    control: new MailboxNodeControl(clientMb),
    async ready() {
      const deadline = Date.now() + 20_000;
      let a = await coordinatorTransport.getAssignment(5000);
      while (a.channels.some((c) => c.state !== 'ASSIGNED')) {
        if (Date.now() > deadline) throw new Error(`not ready: ${JSON.stringify(a.channels)}`);
        a = await coordinatorTransport.watchAssignment(a.version, 2000);
      }
      return a;
    },
    async close() {
      await client.close();
      router.close();
      for (const m of [...mailboxes].reverse()) await m.close();
      stop(system);
      await oracle.close();
      await backend.close();
      await flushQueue.close();
      await meta.close();
      await fs.rm(metaDir, { recursive: true, force: true });
    },
  };
}

function columns(ids: number[]): InsertMessage['body']['columns'] {
  const vec = new Float32Array(ids.length * 4);
  ids.forEach((id, i) => vec.set([id + 0.1, -id / 7, Math.fround(1e-7 * id), 65504.5 + id], i * 4));
  return [
    { name: 'id', type: 'int64', data: ids },
    { name: 'vec', type: 'floatVector', dim: 4, data: vec },
    { name: 'tag', type: 'varchar', data: ids.map((i) => `tag-${i}-ü`) },
  ];
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function describeTransports(name: string, setup: () => { newMailbox: () => Promise<Mailbox>; cleanup(): Promise<void> }): void {
  describe(`mailbox transports over ${name}`, () => {
    let cluster: Cluster;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      const s = setup();
      cleanup = s.cleanup;
      cluster = await startCluster(s.newMailbox);
      await cluster.ready();
    });

    afterAll(async () => {
      await cluster?.close();
      await cleanup?.();
    });

    it('creates, describes and lists collections through MailboxCoordinatorTransport', async () => {
      const info = await cluster.client.createCollection({ name: 'books', schema: SCHEMA, shards: 2 });
      expect(info).toMatchObject({ name: 'books', state: 'normal', schema: SCHEMA, partitions: [{ name: '_default' }] });
      expect(info.vchannels).toHaveLength(2);
      expect(await cluster.coordinator.describeCollection('books', 5000)).toEqual(info);
      expect((await cluster.coordinator.listCollections(5000)).map((c) => c.name)).toContain('books');
      await expect(cluster.coordinator.describeCollection('nope', 5000)).rejects.toBeInstanceOf(StreamingError);
      const status = await cluster.coordinator.status(5000);
      expect(status.pchannels.map((p) => p.name).sort()).toEqual(PCHANNELS);
      const nodeStatus = await cluster.control.status('n1', 5000);
      expect(nodeStatus.nodeId).toBe('n1');
    });

    it('appends through MailboxNodeTransport and subscribes through it: every message in order, vectors exact', async () => {
      const info = await cluster.coordinator.describeCollection('books', 5000);
      const vchannel = info.vchannels[0]!;
      const pchannel = pchannelOf(vchannel);
      const a = await cluster.ready();
      const owner = a.channels.find((c) => c.name === pchannel)!;
      const partitionId = info.partitions[0]!.id;

      const sub = await cluster.nodes.subscribe(owner.node!, pchannel, owner.term, { vchannel, policy: { type: 'latest' }, filters: { types: ['Insert'] }, credits: 3 }, 5000);
      const sent: NewMessage<InsertMessage>[] = [];
      for (let b = 0; b < 12; b++) {
        const ids = [b * 10 + 1, b * 10 + 2, b * 10 + 3];
        const message: NewMessage<InsertMessage> = {
          type: 'Insert',
          vchannel,
          idempotencyKey: `batch-${b}`,
          header: { collectionId: info.id, partitionId, rows: ids.length, bytes: 0, segmentId: 0 },
          body: { columns: columns(ids) },
        };
        const r = await cluster.nodes.append(owner.node!, pchannel, owner.term, message, 5000);
        expect(typeof r.id).toBe('string');
        expect(typeof r.timetick).toBe('bigint');
        expect(r.timetick).toBeGreaterThan(0n);
        sent.push(message);
      }
      const got: LogMessage[] = [];
      while (got.length < sent.length) {
        const r = await sub.next();
        if (r.done) throw new Error('subscription ended early');
        if (r.value.type === 'Insert') got.push(r.value);
      }
      sub.close();
      expect(got.map((m) => m.idempotencyKey)).toEqual(sent.map((m) => m.idempotencyKey));
      for (let i = 1; i < got.length; i++) expect(got[i]!.timetick).toBeGreaterThan(got[i - 1]!.timetick);
      got.forEach((m, i) => {
        const cols = (m as LogMessage<InsertMessage>).body.columns;
        const want = sent[i]!.body.columns;
        expect(cols.map((c) => c.name)).toEqual(['id', 'vec', 'tag']);
        expect(cols[0]!.data).toEqual(want[0]!.data);
        expect(cols[2]!.data).toEqual(want[2]!.data);
        const v = cols[1]!;
        const w = want[1]!;
        expect(v.type === 'floatVector' && w.type === 'floatVector' && bytesOf(v.data).equals(bytesOf(w.data))).toBe(true);
      });

      // Node errors cross with their code and details: a stale term, a node that does not own the pchannel.
      await expect(cluster.nodes.append(owner.node!, pchannel, owner.term + 7, sent[0]!, 5000)).rejects.toMatchObject({ code: ErrorCode.UNMATCHED_CHANNEL_TERM, retriable: true });
      const other = NODES.find((n) => n !== owner.node)!;
      const otherOwns = a.channels.some((c) => c.name === pchannel && c.node === other);
      if (!otherOwns) await expect(cluster.nodes.append(other, pchannel, owner.term, sent[0]!, 5000)).rejects.toMatchObject({ code: ErrorCode.CHANNEL_NOT_EXIST });
    });

    it('a client over the mailbox inserts and its subscription receives every row in order, across a pchannel transfer', async () => {
      const info = await cluster.client.createCollection({ name: 'moving', schema: SCHEMA, shards: 1 });
      const vchannel = info.vchannels[0]!;
      const pchannel = pchannelOf(vchannel);
      const sub = cluster.client.subscribe({ vchannel, policy: { type: 'all' }, filters: { types: ['Insert'] }, credits: 4 });
      const it = sub[Symbol.asyncIterator]();
      const ids: number[] = [];
      const vectors: Buffer[] = [];
      const expectIds: number[] = [];
      const expectVectors: Buffer[] = [];
      const insert = async (from: number): Promise<void> => {
        const batch = [from, from + 1];
        const cols = columns(batch);
        await cluster.client.insert({ collection: 'moving', columns: cols });
        expectIds.push(...batch);
        const v = cols[1]!;
        if (v.type === 'floatVector') expectVectors.push(bytesOf(v.data));
      };
      const readUntil = async (n: number): Promise<void> => {
        while (ids.length < n) {
          const r = await it.next();
          if (r.done) throw new Error('subscription ended');
          if (r.value.type !== 'Insert') continue; // system messages (TimeTick) always pass a type filter
          const m = r.value as LogMessage<InsertMessage>;
          ids.push(...(m.body.columns[0]!.data as number[]));
          const v = m.body.columns[1]!;
          if (v.type === 'floatVector') vectors.push(bytesOf(v.data));
        }
      };
      for (let i = 0; i < 5; i++) await insert(1000 + i * 2);
      await readUntil(10);
      const before = (await cluster.ready()).channels.find((c) => c.name === pchannel)!;
      const moved = await cluster.coordinator.transfer(pchannel, undefined, 20_000);
      expect(moved).toMatchObject({ pchannel, from: before.node, term: before.term + 1 });
      expect(moved.to).not.toBe(before.node);
      for (let i = 5; i < 10; i++) await insert(1000 + i * 2);
      await readUntil(20);
      sub.close();
      expect(ids).toEqual(expectIds);
      expect(vectors).toEqual(expectVectors);
      // The old owner ended the stream with a retriable error item; the subscription resumed on the new one.
      expect((sub as unknown as { resumes: number }).resumes).toBeGreaterThanOrEqual(1);
    });
  });
}

describeTransports('the memory mailbox', () => {
  const hub = new MemoryMailboxHub();
  return { newMailbox: async () => new MemoryMailbox(hub, { heartbeatMs: 1000 }), cleanup: async () => undefined };
});

const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const REDIS = { host: url.hostname, port: Number(url.port || 6379) };

describeTransports('the Redis mailbox', () => {
  const prefix = `walstream-test-transports-${process.pid}-${Date.now().toString(36)}`;
  return {
    newMailbox: () => RedisMailbox.connect({ redis: REDIS, prefix, blockMs: 1000, heartbeatMs: 1000 }),
    cleanup: async () => {
      const admin = new Redis({ ...REDIS, lazyConnect: true });
      await admin.connect();
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await admin.del(...keys);
      } while (cursor !== '0');
      await admin.quit();
    },
  };
});
