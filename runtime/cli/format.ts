/** Readable text for the CLI: one line per log message, status and collection tables, the demo summary. */
import type { ClusterStatus, CollectionInfo, TransferResult } from '../client/api';
import type { LogMessage } from '../message/types';
import type { DemoSummary } from './demo';

/** `<timetick> <id> <vchannel|-> <type> <what>`. */
export function formatMessage(m: LogMessage): string {
  const head = `${m.timetick} ${m.id || '-'} ${m.vchannel || '-'} ${m.type}`;
  const txn = m.txn ? ` txn=${m.txn.id}` : '';
  switch (m.type) {
    case 'Insert':
      return `${head} collection=${m.header.collectionId} partition=${m.header.partitionId} rows=${m.header.rows} segment=${m.header.segmentId}${txn}`;
    case 'Delete':
      return `${head} collection=${m.header.collectionId} rows=${m.header.rows} keys=${preview(m.body.primaryKeys.data)}${txn}`;
    case 'CreateCollection':
      return `${head} ${m.body.collectionName} id=${m.header.collectionId} fields=${m.body.schema.fields.map((f) => `${f.name}:${f.type}${f.dim ? `[${f.dim}]` : ''}`).join(',')}`;
    case 'DropCollection':
      return `${head} id=${m.header.collectionId}`;
    case 'CreatePartition':
      return `${head} ${m.body.partitionName} id=${m.header.partitionId} collection=${m.header.collectionId}`;
    case 'DropPartition':
      return `${head} id=${m.header.partitionId} collection=${m.header.collectionId}`;
    case 'Txn':
      return `${head} txn=${m.header.txnId} messages=${m.header.count} rows=${m.body.messages.reduce((n, x) => n + x.header.rows, 0)}`;
    case 'TimeTick':
      return `${head}${m.notPersisted ? ' (idle)' : ''}`;
    default:
      return `${head}${txn}`;
  }
}

function preview(xs: readonly (number | string)[]): string {
  return xs.length <= 5 ? xs.join(',') : `${xs.slice(0, 5).join(',')},… (${xs.length})`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function formatStatus(s: ClusterStatus): string {
  const nodes = table([['NODE', 'STATE', 'PCHANNELS'], ...s.nodes.map((n) => [n.id, n.state, n.pchannels.join(',') || '-'])]);
  const pchannels = table([
    ['PCHANNEL', 'OWNER', 'TERM', 'STATE', 'LAST TIMETICK', 'WAB BYTES', 'WAB ENTRIES', 'SUBSCRIBERS'],
    ...s.pchannels.map((p) => [
      p.name,
      p.node ?? '-',
      String(p.term),
      p.state,
      p.lastTimetick ?? '-',
      p.writeAheadBufferBytes === undefined ? '-' : String(p.writeAheadBufferBytes),
      p.writeAheadBufferEntries === undefined ? '-' : String(p.writeAheadBufferEntries),
      p.subscribers === undefined ? '-' : String(p.subscribers),
    ]),
  ]);
  return `assignment version ${s.assignmentVersion}\n\n${nodes}\n\n${pchannels}`;
}

export function formatCollections(cs: CollectionInfo[]): string {
  if (cs.length === 0) return 'no collections';
  return table([
    ['NAME', 'ID', 'STATE', 'SHARDS', 'PARTITIONS', 'FIELDS'],
    ...cs.map((c) => [
      c.name,
      String(c.id),
      c.state,
      String(c.vchannels.length),
      c.partitions.map((p) => p.name).join(','),
      c.schema.fields.map((f) => `${f.name}:${f.type}${f.dim ? `[${f.dim}]` : ''}${f.primaryKey ? '*' : ''}`).join(','),
    ]),
  ]);
}

export function formatCollection(c: CollectionInfo): string {
  return [
    `collection ${c.name} (id ${c.id}, ${c.state})`,
    `  fields:     ${c.schema.fields.map((f) => `${f.name}:${f.type}${f.dim ? `[${f.dim}]` : ''}${f.primaryKey ? ' (primary key)' : ''}${f.autoId ? ' (auto id)' : ''}`).join(', ')}`,
    `  vchannels:  ${c.vchannels.join(', ')}`,
    `  partitions: ${c.partitions.map((p) => `${p.name}(${p.id})`).join(', ')}`,
  ].join('\n');
}

export function formatTransfer(t: TransferResult): string {
  return `moved ${t.pchannel} from ${t.from ?? '(none)'} to ${t.to}: term ${t.term}, ready after ${Math.round(t.tookMs)} ms`;
}

export function formatDemoSummary(s: DemoSummary): string {
  const lines = [
    `demo ${s.ok ? 'PASSED' : 'FAILED'}: collection ${s.collection}, ${s.vchannels.length} shard(s)`,
    `  writes:        ${s.insertsAcked}/${s.batches} inserts acknowledged, ${s.rowsAcked}/${s.rows} rows, ${s.insertsFailed} failed (${s.rowsPerSecond} rows/s)`,
    `  transfers:     ${s.transfers.length} done, ${s.transfersFailed} failed${s.transfers.length ? ` (${s.transfers.map((t) => `${t.pchannel}→${t.to} ${Math.round(t.tookMs)} ms`).join(', ')})` : ''}`,
    `  seen:          ${s.insertMessagesSeen} insert messages, ${s.rowsSeen} rows`,
    `  exactly once:  ${s.missing} missing, ${s.duplicates} duplicated, ${s.unexpected} unexpected`,
    `  order:         ${s.orderViolations} timetick(s) out of order`,
    `  elapsed:       ${s.elapsedMs} ms`,
  ];
  for (const p of s.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}
