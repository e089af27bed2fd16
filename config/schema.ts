/**
 * The configuration of a walstream process: one typed object, `WalstreamConfig`, and its schema
 * `CONFIG_SCHEMA` (type, constraint, default, doc of every field). `loadConfig` (load.ts) builds a
 * WalstreamConfig from defaults < file < env < flags and validates it once, at start.
 *
 * The interfaces below are what code reads; CONFIG_SCHEMA is what the loader and `describeConfig()`
 * read. The compiler keeps them in step (CONFIG_SCHEMA must have a spec of the right kind for every
 * field), and test/unit/config.test.ts checks that each doc comment here carries the schema's doc.
 * To add a setting: add the field with a doc comment (meaning, default, unit) to its interface, then
 * its spec to CONFIG_SCHEMA; its env name and flag follow from its path.
 */
import * as path from 'node:path';
import { DEFAULT_WAL_OPTIONS, type WalOptions } from '../actors/wal/options';
import type { AnySectionSpec, SectionSpec } from './spec';

export const MODES = ['standalone', 'coordinator', 'node'] as const;
export type Mode = (typeof MODES)[number];

/** winston's npm levels, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const WAL_BACKENDS = ['local', 'memory', 'redis'] as const;
export type WalBackendKind = (typeof WAL_BACKENDS)[number];

export const FSYNC_POLICIES = ['always', 'interval'] as const;
export type FsyncPolicy = (typeof FSYNC_POLICIES)[number];

export const OBJECT_STORE_KINDS = ['local', 's3'] as const;
export type ObjectStoreKind = (typeof OBJECT_STORE_KINDS)[number];

export const FLUSH_QUEUES = ['inline', 'bullmq'] as const;
export type FlushQueueKind = (typeof FLUSH_QUEUES)[number];

export interface WalstreamConfig {
  /**
   * Roles this process runs: `standalone` (coordinator, streaming nodes and query side in one
   * process, embedded storage), `coordinator` or `node` (one role of a cluster). Default `standalone`.
   */
  mode: Mode;
  /** Directory for everything this process keeps on local disk (WAL files, metadata, TSO bound). Default `./.walstream-data`. */
  dataDir: string;
  /**
   * Identity of this process in discovery, leases and mailboxes; unique within a cluster.
   * Default `standalone` in standalone mode, else `<mode>-<hostname>-<pid>`.
   */
  nodeId: string;
  /** Least severe log level printed. Default `info`. */
  logLevel: LogLevel;
  pchannels: PChannelsConfig;
  standalone: StandaloneConfig;
  http: HttpConfig;
  wal: WalConfig;
  redis: RedisConfig;
  lease: LeaseConfig;
  coordinator: CoordinatorConfig;
  objectStore: ObjectStoreConfig;
  flush: FlushConfig;
  segment: SegmentConfig;
  recovery: RecoveryConfig;
}

/** The physical channels of the cluster; their names are `${namePrefix}_${i}` for i in [0, count). */
export interface PChannelsConfig {
  /** Number of pchannels (logs) in the cluster. Fixed for the life of the data. Default 4. */
  count: number;
  /** Prefix of every pchannel name. Fixed for the life of the data. Default `walstream-dml`. */
  namePrefix: string;
}

export interface StandaloneConfig {
  /** Streaming nodes run inside a standalone process (pchannels are spread over them). Default 2. */
  streamingNodes: number;
}

export interface HttpConfig {
  /** Interface the HTTP gateway listens on. Default `127.0.0.1`. */
  host: string;
  /** TCP port of the HTTP gateway; 0 picks a free port. Default 8480. */
  port: number;
  /** Largest request body accepted, in bytes. Default 8 MiB. */
  bodyLimitBytes: number;
}

/** The WAL of every pchannel: the backend plus the WAL actor's options (see actors/wal/options.ts). */
export interface WalConfig extends WalOptions {
  /**
   * Where the logs live: `local` files (cluster: only when every node sees the same disk), `memory`
   * (one process, lost on exit; standalone and tests only) or `redis` streams. Default `local`.
   */
  backend: WalBackendKind;
  local: LocalWalConfig;
}

export interface LocalWalConfig {
  /**
   * When an append is fsynced: `always` (before it is acknowledged) or `interval` (acknowledged once
   * written, fsynced within `fsyncIntervalMs`; a machine crash can lose that window). Default `always`.
   */
  fsync: FsyncPolicy;
  /** With `fsync: interval`, the longest time between a write and its fsync, in ms. Default 100 ms. */
  fsyncIntervalMs: number;
  /** A segment file is rolled once it holds this many bytes; truncation removes whole files. Default 64 MiB. */
  segmentBytes: number;
}

export interface RedisConfig {
  /** Redis server (cluster metadata, mailboxes, BullMQ, the redis WAL backend). Default `redis://127.0.0.1:6379`. */
  url: string;
  /** Prefix of every Redis key walstream writes. Default `walstream`. */
  keyPrefix: string;
}

export interface LeaseConfig {
  /** Lifetime of a node's (and the coordinator's) discovery lease, in ms. Default 3000 ms. */
  ttlMs: number;
  /** How often a lease is renewed, in ms; at most a third of `ttlMs`. Default 1000 ms. */
  renewIntervalMs: number;
}

export interface CoordinatorConfig {
  /** Period of the balancer's full check of node set and placement, in ms (events also trigger it). Default 60000 ms. */
  balanceIntervalMs: number;
  /** Longest a single channel operation (remove, open + recovery) may take before it is retried, in ms. Default 300000 ms. */
  operationTimeoutMs: number;
  /** First retry delay of a failed balancer operation, in ms; doubles up to `backoffMaxMs`. Default 10 ms. */
  backoffInitialMs: number;
  /** Largest retry delay of a failed balancer operation, in ms. Default 5000 ms. */
  backoffMaxMs: number;
}

export interface ObjectStoreConfig {
  /** Where flushed segments are stored: a `local` directory or an `s3` bucket (MinIO or any S3). Default `local`. */
  kind: ObjectStoreKind;
  /** Prefix of every object key (under the bucket or the local directory). Default `walstream`. */
  rootPath: string;
  local: LocalObjectStoreConfig;
  s3: S3Config;
}

export interface LocalObjectStoreConfig {
  /** Directory of the local object store. Default `<dataDir>/objects`. */
  dir: string;
}

export interface S3Config {
  /** Host name or IP of the S3 endpoint. Default `127.0.0.1`. */
  endPoint: string;
  /** TCP port of the S3 endpoint. Default 9000. */
  port: number;
  /** Use HTTPS. Default false. */
  useSSL: boolean;
  /** Access key id; empty for anonymous access (then `secretKey` must be empty too). Default empty. */
  accessKey: string;
  /** Secret access key; never logged. Default empty. */
  secretKey: string;
  /** Bucket holding the objects (S3 bucket naming rules). Default `walstream`. */
  bucket: string;
  /** Region of the bucket. Default `us-east-1`. */
  region: string;
  /** Path-style URLs (`host/bucket/key`), as MinIO needs; false for virtual-host style. Default true. */
  pathStyle: boolean;
}

export interface FlushConfig {
  /** How sealed segments reach the flush worker: `inline` (in-process) or `bullmq` (Redis queue). Default `inline` in standalone mode, else `bullmq`. */
  queue: FlushQueueKind;
  /**
   * Threads (node:worker_threads) that run the CPU-heavy part of flush jobs (read the WAL range,
   * encode the Arrow files, checksum and put them), off the event loop of the WALs; 0 runs it on
   * the main thread. With wal.backend memory it always runs on the main thread (that log exists
   * only there). Default 2 (one per core of a small machine); the flush queues run two jobs per
   * thread at a time (one encoding while the other's files are written), 2 on the main thread.
   */
  threads: number;
  /**
   * Bytes of the write buffer: each growing segment a node's WALs create is encoded in memory as
   * its messages are persisted, so that its flush only writes the files (otherwise it reads the
   * segment back from the WAL). Beyond this, segments leave the buffer and are flushed from the
   * WAL. 0 turns it off. In a cluster a flush job runs on whichever node's worker takes it from
   * the queue, so a node's buffer serves only the jobs it happens to run. Default 512 MiB in
   * standalone mode (as segment.memoryHighWaterBytes), else 0.
   */
  writeBufferBytes: number;
}

/** Seal policies of growing segments. */
export interface SegmentConfig {
  /** A growing segment is sealed at this many rows. Default 1000000. */
  maxRows: number;
  /** A growing segment is sealed at this many bytes of rows. Default 128 MiB. */
  maxBytes: number;
  /** A growing segment that received nothing for this long is sealed, in ms. Default 600000 ms (10 min). */
  maxIdleMs: number;
  /** A growing segment older than this is sealed, in ms; bounds replay after a crash. Default 3600000 ms (1 h). */
  maxLifetimeMs: number;
  /** Above this many bytes of growing rows on a node, the largest segments are sealed. Default 512 MiB. */
  memoryHighWaterBytes: number;
  /** High-water sealing stops once growing rows are below this many bytes; less than the high-water mark. Default 256 MiB. */
  memoryLowWaterBytes: number;
}

/** Recovery storage: how often a pchannel's state and checkpoint are persisted. */
export interface RecoveryConfig {
  /** Dirty state is persisted at least this often, in ms. Default 10000 ms. */
  persistIntervalMs: number;
  /** Dirty state is persisted once this many messages changed it. Default 100. */
  maxDirtyMessages: number;
  /** Persists triggered by maxDirtyMessages start at most this often, in ms (bounds metadata writes under heavy traffic). Default 100 ms. */
  minPersistGapMs: number;
  /** On close, how long persisting the last dirty state may take, in ms. Default 3000 ms. */
  gracefulCloseTimeoutMs: number;
}

/** pchannel names of a configuration, in index order: `${namePrefix}_${i}`. */
export function pchannelNames(cfg: Pick<WalstreamConfig, 'pchannels'>): string[] {
  return Array.from({ length: cfg.pchannels.count }, (_v, i) => `${cfg.pchannels.namePrefix}_${i}`);
}

const MS = 'ms' as const;
const BYTES = 'bytes' as const;
const COUNT = 'count' as const;
const W = DEFAULT_WAL_OPTIONS;

/** Characters allowed in names that end up in Redis keys and mailbox names. */
const NAME = { re: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, describe: "letters, digits, '_', '.', '-' (at most 128, starting with a letter or digit)" };

/** Host names may hold characters a node id may not; they become '-'. */
function sanitizeName(s: string): string {
  const clean = s.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return clean.length > 0 ? clean : 'host';
}

/** The schema of WalstreamConfig. Section and field order here is the order of describeConfig(). */
export const CONFIG_SCHEMA: SectionSpec<WalstreamConfig, WalstreamConfig> = {
  kind: 'section',
  doc: 'walstream configuration',
  fields: {
    mode: {
      kind: 'enum',
      values: MODES,
      default: 'standalone',
      doc: 'Roles this process runs: standalone (coordinator, streaming nodes and query side in one process, embedded storage), coordinator or node (one role of a cluster).',
    },
    dataDir: {
      kind: 'string',
      nonEmpty: true,
      default: './.walstream-data',
      doc: 'Directory for everything this process keeps on local disk (WAL files, metadata, TSO bound).',
    },
    nodeId: {
      kind: 'string',
      pattern: NAME,
      default: {
        dependsOn: ['mode'],
        derive: ({ config, hostname, pid }) => (config.mode === 'standalone' ? 'standalone' : sanitizeName(`${config.mode}-${hostname}-${pid}`)),
        describe: 'standalone in standalone mode, else <mode>-<hostname>-<pid>',
      },
      doc: 'Identity of this process in discovery, leases and mailboxes; unique within a cluster.',
    },
    logLevel: { kind: 'enum', values: LOG_LEVELS, default: 'info', doc: 'Least severe log level printed.' },
    pchannels: {
      kind: 'section',
      doc: 'The physical channels of the cluster; their names are `${namePrefix}_${i}`.',
      fields: {
        count: { kind: 'int', min: 1, max: 1024, unit: COUNT, default: 4, doc: 'Number of pchannels (logs) in the cluster. Fixed for the life of the data.' },
        namePrefix: {
          kind: 'string',
          pattern: { re: /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, describe: "letters, digits, '_', '-' (at most 64, starting with a letter or digit)" },
          default: 'walstream-dml',
          doc: 'Prefix of every pchannel name. Fixed for the life of the data.',
        },
      },
    },
    standalone: {
      kind: 'section',
      doc: 'Standalone mode only.',
      fields: {
        streamingNodes: { kind: 'int', min: 1, max: 64, unit: COUNT, default: 2, doc: 'Streaming nodes run inside a standalone process (pchannels are spread over them).' },
      },
    },
    http: {
      kind: 'section',
      doc: 'The HTTP gateway.',
      fields: {
        host: { kind: 'string', nonEmpty: true, default: '127.0.0.1', doc: 'Interface the HTTP gateway listens on.' },
        port: { kind: 'int', min: 0, max: 65535, note: '0 = any free port', default: 8480, doc: 'TCP port of the HTTP gateway; 0 picks a free port.' },
        bodyLimitBytes: { kind: 'int', min: 1, unit: BYTES, default: 8 * 1024 * 1024, doc: 'Largest request body accepted, in bytes.' },
      },
    },
    wal: {
      kind: 'section',
      doc: 'The WAL of every pchannel: the backend plus the WAL actor options (actors/wal/options.ts).',
      fields: {
        backend: {
          kind: 'enum',
          values: WAL_BACKENDS,
          default: 'local',
          doc: 'Where the logs live: local files (cluster: only when every node sees the same disk), memory (one process, lost on exit; standalone and tests only) or redis streams.',
        },
        local: {
          kind: 'section',
          doc: 'The local-file WAL backend.',
          fields: {
            fsync: {
              kind: 'enum',
              values: FSYNC_POLICIES,
              default: 'always',
              doc: 'When an append is fsynced: always (before it is acknowledged) or interval (acknowledged once written, fsynced within fsyncIntervalMs; a machine crash can lose that window).',
            },
            fsyncIntervalMs: { kind: 'int', min: 1, unit: MS, default: 100, doc: 'With fsync: interval, the longest time between a write and its fsync, in ms.' },
            segmentBytes: { kind: 'int', min: 4096, unit: BYTES, default: 64 * 1024 * 1024, doc: 'A segment file is rolled once it holds this many bytes; truncation removes whole files.' },
          },
        },
        groupCommitMaxMessages: { kind: 'int', min: 1, unit: COUNT, default: W.groupCommitMaxMessages, doc: 'Most messages written by one group commit.' },
        groupCommitMaxBytes: { kind: 'int', min: 1, unit: BYTES, default: W.groupCommitMaxBytes, doc: 'Most bytes written by one group commit (a single larger message is still written alone).' },
        maxInFlightWrites: { kind: 'int', min: 1, max: 16, unit: COUNT, default: W.maxInFlightWrites, doc: 'Group commits handed to the backend at once (the backend keeps their order); 2 lets encoding overlap the previous write.' },
        groupCommitDelayMs: { kind: 'int', min: 0, unit: MS, default: W.groupCommitDelayMs, doc: 'Extra wait before a group commit starts, to gather more appends (0: gather only what queued meanwhile).' },
        timetickIntervalMs: { kind: 'int', min: 1, unit: MS, default: W.timetickIntervalMs, doc: 'TimeTick cadence: persisted when something was written since the last one, else an idle tick for readers.' },
        writeAheadBuffer: {
          kind: 'section',
          doc: 'The in-memory tail of each WAL that readers tail from.',
          fields: {
            capacityBytes: { kind: 'int', min: 1, unit: BYTES, default: W.writeAheadBuffer.capacityBytes, doc: 'Bytes of recent messages kept in memory per pchannel (the last entry is never evicted).' },
            keepaliveMs: { kind: 'int', min: 1, unit: MS, default: W.writeAheadBuffer.keepaliveMs, doc: 'Entries older than this are evicted (the last entry never is), in ms.' },
          },
        },
        defaultTxnKeepaliveMs: { kind: 'int', min: 1, unit: MS, default: W.defaultTxnKeepaliveMs, doc: 'Keepalive of a transaction that does not name one, in ms.' },
        maxMessageBytes: { kind: 'int', min: 1024, unit: BYTES, default: W.maxMessageBytes, doc: 'Largest encoded message accepted, in bytes; a larger insert is refused with INVALID_ARGUMENT (split it; a transaction keeps the parts atomic).' },
        maxPendingAppends: { kind: 'int', min: 1, unit: COUNT, default: W.maxPendingAppends, doc: 'Appends waiting (for a lock, the TSO or the write pipe) beyond this are refused with RESOURCE_EXHAUSTED.' },
        subscriberCredits: { kind: 'int', min: 1, unit: COUNT, default: W.subscriberCredits, doc: 'Messages a subscriber may have delivered but not consumed (its credit window).' },
        closeTimeoutMs: { kind: 'int', min: 0, unit: MS, default: W.closeTimeoutMs, doc: 'How long close() waits for in-flight writes before giving up on them, in ms.' },
        idempotencyWindow: {
          kind: 'int',
          min: 1,
          unit: COUNT,
          default: W.idempotencyWindow,
          doc: 'Most recent idempotency keys remembered per pchannel (a retried append with one of them is answered, not written).',
        },
      },
    },
    redis: {
      kind: 'section',
      doc: 'Redis (cluster mode, the redis WAL backend, BullMQ flush queue).',
      fields: {
        url: {
          kind: 'string',
          urlProtocols: ['redis:', 'rediss:'],
          default: 'redis://127.0.0.1:6379',
          doc: 'Redis server (cluster metadata, mailboxes, BullMQ, the redis WAL backend).',
        },
        keyPrefix: {
          kind: 'string',
          pattern: { re: /^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$/, describe: "letters, digits, ':', '.', '_', '-' (at most 64; no braces, keys carry {pchannel} hash tags)" },
          default: 'walstream',
          doc: 'Prefix of every Redis key walstream writes.',
        },
      },
    },
    lease: {
      kind: 'section',
      doc: 'Discovery leases of nodes and of the coordinator leader.',
      fields: {
        ttlMs: { kind: 'int', min: 3, unit: MS, default: 3000, doc: "Lifetime of a node's (and the coordinator's) discovery lease, in ms." },
        renewIntervalMs: { kind: 'int', min: 1, unit: MS, default: 1000, doc: 'How often a lease is renewed, in ms; at most a third of ttlMs.' },
      },
    },
    coordinator: {
      kind: 'section',
      doc: 'The streaming coordinator (balancer).',
      fields: {
        balanceIntervalMs: { kind: 'int', min: 1, unit: MS, default: 60_000, doc: "Period of the balancer's full check of node set and placement, in ms (events also trigger it)." },
        operationTimeoutMs: { kind: 'int', min: 1, unit: MS, default: 300_000, doc: 'Longest a single channel operation (remove, open + recovery) may take before it is retried, in ms.' },
        backoffInitialMs: { kind: 'int', min: 1, unit: MS, default: 10, doc: 'First retry delay of a failed balancer operation, in ms; doubles up to backoffMaxMs.' },
        backoffMaxMs: { kind: 'int', min: 1, unit: MS, default: 5_000, doc: 'Largest retry delay of a failed balancer operation, in ms.' },
      },
    },
    objectStore: {
      kind: 'section',
      doc: 'Object storage of flushed segments.',
      fields: {
        kind: { kind: 'enum', values: OBJECT_STORE_KINDS, default: 'local', doc: 'Where flushed segments are stored: a local directory or an s3 bucket (MinIO or any S3).' },
        rootPath: {
          kind: 'string',
          pattern: { re: /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, describe: "'/'-separated names of letters, digits, '_', '.', '-' (no leading or trailing '/')" },
          default: 'walstream',
          doc: 'Prefix of every object key (under the bucket or the local directory).',
        },
        local: {
          kind: 'section',
          doc: 'The local-directory object store.',
          fields: {
            dir: {
              kind: 'string',
              nonEmpty: true,
              default: { dependsOn: ['dataDir'], derive: ({ config }) => path.join(config.dataDir, 'objects'), describe: '<dataDir>/objects' },
              doc: 'Directory of the local object store.',
            },
          },
        },
        s3: {
          kind: 'section',
          doc: 'The S3 (MinIO) object store.',
          fields: {
            endPoint: { kind: 'string', nonEmpty: true, default: '127.0.0.1', doc: 'Host name or IP of the S3 endpoint.' },
            port: { kind: 'int', min: 1, max: 65535, default: 9000, doc: 'TCP port of the S3 endpoint.' },
            useSSL: { kind: 'bool', default: false, doc: 'Use HTTPS.' },
            accessKey: { kind: 'string', default: '', secret: true, doc: 'Access key id; empty for anonymous access (then secretKey must be empty too).' },
            secretKey: { kind: 'string', default: '', secret: true, doc: 'Secret access key; never logged.' },
            bucket: {
              kind: 'string',
              pattern: { re: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, describe: "3-63 lower-case letters, digits, '.', '-' (S3 bucket naming)" },
              default: 'walstream',
              doc: 'Bucket holding the objects (S3 bucket naming rules).',
            },
            region: { kind: 'string', nonEmpty: true, default: 'us-east-1', doc: 'Region of the bucket.' },
            pathStyle: { kind: 'bool', default: true, doc: 'Path-style URLs (host/bucket/key), as MinIO needs; false for virtual-host style.' },
          },
        },
      },
    },
    flush: {
      kind: 'section',
      doc: 'Flush of sealed segments to object storage.',
      fields: {
        queue: {
          kind: 'enum',
          values: FLUSH_QUEUES,
          default: { dependsOn: ['mode'], derive: ({ config }) => (config.mode === 'standalone' ? 'inline' : 'bullmq'), describe: 'inline in standalone mode, else bullmq' },
          doc: 'How sealed segments reach the flush worker: inline (in-process) or bullmq (Redis queue).',
        },
        threads: {
          kind: 'int',
          min: 0,
          max: 64,
          unit: COUNT,
          note: '0 = on the main thread',
          default: 2,
          doc: 'Threads (node:worker_threads) that run the CPU-heavy part of flush jobs (read the WAL range, encode the Arrow files, checksum and put them), off the event loop of the WALs; 0 runs it on the main thread. With wal.backend memory it always runs on the main thread (that log exists only there).',
        },
        writeBufferBytes: {
          kind: 'int',
          min: 0,
          unit: BYTES,
          note: '0 = off',
          default: { dependsOn: ['mode'], derive: ({ config }) => (config.mode === 'standalone' ? 512 * 1024 * 1024 : 0), describe: '512 MiB in standalone mode, else 0' },
          doc: "Bytes of the write buffer: each growing segment a node's WALs create is encoded in memory as its messages are persisted, so that its flush only writes the files (otherwise it reads the segment back from the WAL). Beyond this, segments leave the buffer and are flushed from the WAL. 0 turns it off. In a cluster a flush job runs on whichever node's worker takes it from the queue, so a node's buffer serves only the jobs it happens to run.",
        },
      },
    },
    segment: {
      kind: 'section',
      doc: 'Seal policies of growing segments.',
      fields: {
        maxRows: { kind: 'int', min: 1, unit: COUNT, default: 1_000_000, doc: 'A growing segment is sealed at this many rows.' },
        maxBytes: { kind: 'int', min: 1, unit: BYTES, default: 128 * 1024 * 1024, doc: 'A growing segment is sealed at this many bytes of rows.' },
        maxIdleMs: { kind: 'int', min: 1, unit: MS, default: 600_000, doc: 'A growing segment that received nothing for this long is sealed, in ms.' },
        maxLifetimeMs: { kind: 'int', min: 1, unit: MS, default: 3_600_000, doc: 'A growing segment older than this is sealed, in ms; bounds replay after a crash.' },
        memoryHighWaterBytes: { kind: 'int', min: 1, unit: BYTES, default: 512 * 1024 * 1024, doc: 'Above this many bytes of growing rows on a node, the largest segments are sealed.' },
        memoryLowWaterBytes: { kind: 'int', min: 0, unit: BYTES, default: 256 * 1024 * 1024, doc: 'High-water sealing stops once growing rows are below this many bytes; less than the high-water mark.' },
      },
    },
    recovery: {
      kind: 'section',
      doc: "Recovery storage: how often a pchannel's state and checkpoint are persisted.",
      fields: {
        persistIntervalMs: { kind: 'int', min: 1, unit: MS, default: 10_000, doc: 'Dirty state is persisted at least this often, in ms.' },
        maxDirtyMessages: { kind: 'int', min: 1, unit: COUNT, default: 100, doc: 'Dirty state is persisted once this many messages changed it.' },
        minPersistGapMs: { kind: 'int', min: 0, unit: MS, default: 100, doc: 'Persists triggered by maxDirtyMessages start at most this often, in ms (bounds metadata writes under heavy traffic).' },
        gracefulCloseTimeoutMs: { kind: 'int', min: 0, unit: MS, default: 3_000, doc: 'On close, how long persisting the last dirty state may take, in ms.' },
      },
    },
  },
};

/** CONFIG_SCHEMA for untyped walks (loader, describe). */
export const SCHEMA_ROOT = CONFIG_SCHEMA as unknown as AnySectionSpec;

/** One rule that spans fields; it runs only when every field in `paths` is valid. */
export interface CrossCheck {
  /** Fields the rule reads; the first is the one an issue names. */
  readonly paths: readonly [string, ...string[]];
  /** Returns what was expected of `paths[0]` when the rule is broken, else undefined. */
  readonly check: (cfg: WalstreamConfig) => string | undefined;
}

export const CROSS_CHECKS: readonly CrossCheck[] = [
  {
    paths: ['lease.renewIntervalMs', 'lease.ttlMs'],
    check: (c) => (c.lease.renewIntervalMs * 3 <= c.lease.ttlMs ? undefined : `≤ lease.ttlMs / 3 (${Math.floor(c.lease.ttlMs / 3)} with lease.ttlMs ${c.lease.ttlMs})`),
  },
  {
    paths: ['coordinator.backoffInitialMs', 'coordinator.backoffMaxMs'],
    check: (c) =>
      c.coordinator.backoffInitialMs <= c.coordinator.backoffMaxMs ? undefined : `≤ coordinator.backoffMaxMs (${c.coordinator.backoffMaxMs})`,
  },
  {
    paths: ['segment.memoryLowWaterBytes', 'segment.memoryHighWaterBytes'],
    check: (c) =>
      c.segment.memoryLowWaterBytes < c.segment.memoryHighWaterBytes ? undefined : `< segment.memoryHighWaterBytes (${c.segment.memoryHighWaterBytes})`,
  },
  {
    paths: ['wal.backend', 'mode'],
    check: (c) => (c.mode !== 'standalone' && c.wal.backend === 'memory' ? `one of local|redis when mode is ${c.mode} (a memory WAL is not shared between processes)` : undefined),
  },
  {
    paths: ['objectStore.s3.secretKey', 'objectStore.s3.accessKey', 'objectStore.kind'],
    check: (c) =>
      c.objectStore.kind === 's3' && (c.objectStore.s3.accessKey === '') !== (c.objectStore.s3.secretKey === '')
        ? c.objectStore.s3.accessKey === ''
          ? 'empty when objectStore.s3.accessKey is empty (anonymous access)'
          : 'non-empty string when objectStore.s3.accessKey is set'
        : undefined,
  },
];
