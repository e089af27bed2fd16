/**
 * The one module that builds object paths of flushed segments. Nothing else concatenates them.
 *
 *   {root}/{collectionId}/{partitionId}/{segmentId}/inserts.arrow
 *   {root}/{collectionId}/{partitionId}/{segmentId}/deletes.arrow
 *   {root}/{collectionId}/{partitionId}/{segmentId}/manifest.json
 *
 * `root` is a key prefix inside the ObjectStore ('' = the store's root). Ids are decimal,
 * non-negative safe integers. Prefixes end with '/', so collection 1 never matches collection 10.
 * The manifest is written last: a segment whose manifest.json exists is complete.
 */
import { invalidArgument } from '../../runtime/errors';

export const SEGMENT_FILES = {
  inserts: 'inserts.arrow',
  deletes: 'deletes.arrow',
  manifest: 'manifest.json',
} as const;
export type SegmentFile = keyof typeof SEGMENT_FILES;
export type SegmentFileName = (typeof SEGMENT_FILES)[SegmentFile];

export interface SegmentRef {
  collectionId: number;
  partitionId: number;
  segmentId: number;
}

function checkId(field: keyof SegmentRef, v: number): string {
  if (!Number.isSafeInteger(v) || v < 0) throw invalidArgument(`segment layout: ${field} must be a non-negative safe integer, got ${String(v)}`, { field, value: v });
  return String(v);
}

function checkRoot(root: string): string {
  if (typeof root !== 'string') throw invalidArgument('segment layout: root must be a string', { field: 'root' });
  if (root === '') return '';
  if (root.startsWith('/') || root.endsWith('/') || root.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw invalidArgument(`segment layout: invalid root ${JSON.stringify(root)} (a '/'-separated path without leading or trailing '/')`, { field: 'root', root });
  }
  return `${root}/`;
}

/** `{root}/{collectionId}/` */
export function collectionPrefix(root: string, collectionId: number): string {
  return `${checkRoot(root)}${checkId('collectionId', collectionId)}/`;
}

/** `{root}/{collectionId}/{partitionId}/` */
export function partitionPrefix(root: string, collectionId: number, partitionId: number): string {
  return `${collectionPrefix(root, collectionId)}${checkId('partitionId', partitionId)}/`;
}

/** `{root}/{collectionId}/{partitionId}/{segmentId}/` */
export function segmentPrefix(root: string, ref: SegmentRef): string {
  return `${partitionPrefix(root, ref.collectionId, ref.partitionId)}${checkId('segmentId', ref.segmentId)}/`;
}

/** The object key of one file of a segment. */
export function segmentFilePath(root: string, ref: SegmentRef, file: SegmentFile): string {
  return `${segmentPrefix(root, ref)}${SEGMENT_FILES[file]}`;
}

/** All three keys of a segment. */
export function segmentFilePaths(root: string, ref: SegmentRef): Record<SegmentFile, string> {
  const prefix = segmentPrefix(root, ref);
  return { inserts: `${prefix}${SEGMENT_FILES.inserts}`, deletes: `${prefix}${SEGMENT_FILES.deletes}`, manifest: `${prefix}${SEGMENT_FILES.manifest}` };
}

const ID = '(0|[1-9][0-9]*)';
const FILE_BY_NAME = new Map<string, SegmentFile>(Object.entries(SEGMENT_FILES).map(([file, name]) => [name, file as SegmentFile]));

/** The segment and file a key names, or undefined for any other key (e.g. from a listing). */
export function parseSegmentPath(root: string, key: string): { ref: SegmentRef; file: SegmentFile } | undefined {
  const prefix = checkRoot(root);
  if (!key.startsWith(prefix)) return undefined;
  const m = new RegExp(`^${ID}/${ID}/${ID}/([^/]+)$`).exec(key.slice(prefix.length));
  if (!m) return undefined;
  const file = FILE_BY_NAME.get(m[4]!);
  const ids = [m[1], m[2], m[3]].map(Number);
  if (file === undefined || !ids.every((n) => Number.isSafeInteger(n))) return undefined;
  return { ref: { collectionId: ids[0]!, partitionId: ids[1]!, segmentId: ids[2]! }, file };
}
