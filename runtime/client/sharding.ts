/**
 * Which shard a row goes to (hash of its primary key), and cutting columns by rows.
 */
import type { Column, PrimaryKeys } from '../message/types';

/** FNV-1a over the UTF-16 code units of a string. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes the 64 bits of a safe integer (murmur3 finalizer over both halves). */
function hashInt(n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 4294967296) >>> 0;
  let h = lo ^ Math.imul(hi, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function shardOf(pk: number | string, shards: number): number {
  return (typeof pk === 'number' ? hashInt(pk) : hashString(pk)) % shards;
}

/** Row indexes per shard. */
export function splitRows(pks: readonly (number | string)[], shards: number): number[][] {
  const out: number[][] = Array.from({ length: shards }, () => []);
  pks.forEach((pk, i) => out[shardOf(pk, shards)]!.push(i));
  return out;
}

export function selectRows(columns: readonly Column[], rows: readonly number[]): Column[] {
  return columns.map((c): Column => {
    if (c.type === 'floatVector') {
      const out = new Float32Array(rows.length * c.dim);
      rows.forEach((r, i) => out.set(c.data.subarray(r * c.dim, (r + 1) * c.dim), i * c.dim));
      return { ...c, data: out };
    }
    const data = c.data as unknown[];
    return { ...c, data: rows.map((r) => data[r]) } as Column;
  });
}

export function selectKeys(keys: PrimaryKeys, rows: readonly number[]): PrimaryKeys {
  return keys.type === 'int64' ? { type: 'int64', data: rows.map((r) => keys.data[r]!) } : { type: 'varchar', data: rows.map((r) => keys.data[r]!) };
}
