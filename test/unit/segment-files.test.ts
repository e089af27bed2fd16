/**
 * Segment files: encode → (store) → read, compared row by row with the input; the same files read
 * with the plain apache-arrow reader (any Arrow tool can read them); corruption is detected.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { type Random, seededRandom } from '../../runtime/clock';
import { ErrorCode } from '../../runtime/errors';
import type { CollectionSchema, Column, PrimaryKeys } from '../../runtime/message/types';
import { composeTimetick } from '../../runtime/message/timetick';
import { LocalObjectStore } from '../../storage/objects/local/local-object-store';
import type { ObjectStore } from '../../storage/objects/object-store';
import { ObjectNotFoundError } from '../../storage/objects/errors';
import { SegmentConflictError, SegmentCorruptError, SegmentCorruptReason } from '../../storage/segments/errors';
import { segmentFilePaths } from '../../storage/segments/layout';
import { type SegmentManifest, checksumOf, checksumYielding, decodeManifest, encodeManifest } from '../../storage/segments/manifest';
import { decodeSegment, insertRows, readSegment } from '../../storage/segments/segment-reader';
import { BatchBufferPool } from '../../storage/segments/table-builder';
import { type DeleteBatch, type InsertBatch, type SegmentInput, SegmentEncoder, encodeSegment, writeSegment, writeSegmentData } from '../../storage/segments/segment-writer';
import { MessageScanner, encodeMessage } from '../../runtime/message/codec';

const SEED = Number(process.env.SEGMENT_TEST_SEED ?? 20260103);
const REF = { collectionId: 101, partitionId: 7, segmentId: 4242 };

// The primary key is not the first field: the files put it first anyway.
const schema: CollectionSchema = {
  fields: [
    { name: 'title', type: 'varchar', maxLength: 200 },
    { name: 'id', type: 'int64', primaryKey: true },
    { name: 'embedding', type: 'floatVector', dim: 8 },
    { name: 'flag', type: 'bool' },
    { name: 'count', type: 'int32' },
    { name: 'big', type: 'int64' },
    { name: 'score', type: 'float' },
    { name: 'precise', type: 'double' },
    { name: 'meta', type: 'json' },
    { name: 'small_vec', type: 'floatVector', dim: 3 },
  ],
};

/** A finite float32 from random bits (every exponent and mantissa, incl. -0 and subnormals). */
function randomFloat32(random: Random): number {
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  do bits[0] = random.int(2 ** 32);
  while (!Number.isFinite(f[0]!));
  return f[0]!;
}

const TEXTS = ['', 'plain', 'héllo wörld', '日本語のテキスト', 'emoji 😀🎉', 'quote " and \\ and\nnewline', 'x'.repeat(200)];
const JSONS: unknown[] = [null, 0, -1.5, 'str', true, [], {}, { a: 1, b: [1, 2, { c: 'x' }] }, { 'ключ': ['значение', null] }, [[[]]]];
const EDGE_INT64 = [0, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
const EDGE_INT32 = [0, -1, 2 ** 31 - 1, -(2 ** 31)];
const EDGE_DOUBLE = [0, -0, 1e308, -1e308, 5e-324, Math.PI];

function makeInsert(random: Random, rows: number, firstId: number, timetick: bigint): InsertBatch {
  const pick = <T>(edge: readonly T[], i: number, gen: () => T): T => (random.int(4) === 0 ? edge[i % edge.length]! : gen());
  const columns: Column[] = [
    { name: 'title', type: 'varchar', data: Array.from({ length: rows }, () => TEXTS[random.int(TEXTS.length)]!) },
    { name: 'id', type: 'int64', data: Array.from({ length: rows }, (_, i) => (i % 2 === 0 ? 1 : -1) * (firstId + i)) },
    { name: 'embedding', type: 'floatVector', dim: 8, data: Float32Array.from({ length: rows * 8 }, () => randomFloat32(random)) },
    { name: 'flag', type: 'bool', data: Array.from({ length: rows }, () => random.int(2) === 1) },
    { name: 'count', type: 'int32', data: Array.from({ length: rows }, (_, i) => pick(EDGE_INT32, i, () => random.int(2 ** 32) - 2 ** 31)) },
    { name: 'big', type: 'int64', data: Array.from({ length: rows }, (_, i) => pick(EDGE_INT64, i, () => (random.int(2 ** 26) * 2 ** 26 + random.int(2 ** 26)) * (random.int(2) ? 1 : -1))) },
    { name: 'score', type: 'float', data: Array.from({ length: rows }, () => (random.next() - 0.5) * 1e6) },
    { name: 'precise', type: 'double', data: Array.from({ length: rows }, (_, i) => pick(EDGE_DOUBLE, i, () => (random.next() - 0.5) * 1e12)) },
    { name: 'meta', type: 'json', data: Array.from({ length: rows }, (_, i) => (random.int(3) === 0 ? { row: firstId + i, tags: ['a', 'b'] } : JSONS[random.int(JSONS.length)])) },
    { name: 'small_vec', type: 'floatVector', dim: 3, data: Float32Array.from({ length: rows * 3 }, () => randomFloat32(random)) },
  ];
  return { timetick, columns };
}

const BATCH_ROWS = [1, 17, 130, 0, 333, 64, 455]; // 1000 rows, one batch empty
const tt = (ms: number, logical: number): bigint => composeTimetick(1_767_225_600_000 + ms, logical);

function makeInput(random: Random): SegmentInput {
  let id = 1;
  const inserts = BATCH_ROWS.map((rows, b) => {
    const batch = makeInsert(random, rows, id, tt(b * 10, b));
    id += rows;
    return batch;
  });
  const deletes: DeleteBatch[] = [
    { timetick: tt(25, 1), primaryKeys: { type: 'int64', data: [1, -2, 3, -18] } },
    { timetick: tt(26, 0), primaryKeys: { type: 'int64', data: [] } },
    { timetick: tt(80, 7), primaryKeys: { type: 'int64', data: Array.from({ length: 40 }, (_, i) => 100 + i) } },
  ];
  return { ...REF, schema, inserts, deletes };
}

/** The input's rows, flattened in order: field → values (vectors as per-row Float32Arrays). */
function expectedRows(input: SegmentInput): { timetick: bigint; values: Record<string, unknown> }[] {
  const rows: { timetick: bigint; values: Record<string, unknown> }[] = [];
  for (const batch of input.inserts) {
    const n = batch.columns[1]!.data.length;
    for (let i = 0; i < n; i++) {
      const values: Record<string, unknown> = {};
      for (const c of batch.columns) values[c.name] = c.type === 'floatVector' ? c.data.subarray(i * c.dim, (i + 1) * c.dim) : c.data[i];
      rows.push({ timetick: batch.timetick, values });
    }
  }
  return rows;
}

function expectedDeletes(input: SegmentInput): { timetick: bigint; key: number | string }[] {
  return input.deletes.flatMap((d) => (d.primaryKeys.data as (number | string)[]).map((key) => ({ timetick: d.timetick, key })));
}

const bitsOf = (v: Float32Array): number[] => Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length));

/** Compares one decoded value with the input value for a field of the test schema. */
function expectSameValue(field: string, got: unknown, want: unknown, where: string): void {
  if (want instanceof Float32Array) {
    expect({ where, field, bits: bitsOf(got as Float32Array) }).toEqual({ where, field, bits: bitsOf(want) });
  } else if (field === 'score') {
    expect({ where, field, v: got }).toEqual({ where, field, v: Math.fround(want as number) });
  } else {
    expect({ where, field, v: got }).toEqual({ where, field, v: want });
  }
}

function fileOf(encoded: ReturnType<typeof encodeSegment>, which: 'inserts' | 'deletes' | 'manifest'): Uint8Array {
  return encoded.files.get(encoded.paths[which])!;
}

function flipByte(bytes: Uint8Array, at: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

async function caught(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe(`segment files (seed ${SEED})`, () => {
  const input = makeInput(seededRandom(SEED));
  const rows = expectedRows(input);
  const deletes = expectedDeletes(input);
  // small record batches, so that the files hold several (and rows cross batch boundaries)
  const encoded = encodeSegment(input, { root: 'segments', maxRowsPerBatch: 128 });

  it('writes the three files under the layout paths, with a manifest that describes them', () => {
    expect([...encoded.files.keys()]).toEqual([
      'segments/101/7/4242/inserts.arrow',
      'segments/101/7/4242/deletes.arrow',
      'segments/101/7/4242/manifest.json',
    ]);
    const m = decodeManifest(fileOf(encoded, 'manifest'));
    expect(m).toEqual(encoded.manifest);
    expect(m).toMatchObject({ formatVersion: 2, ...REF, schema });
    expect(m.files.inserts).toMatchObject({ name: 'inserts.arrow', rows: 1000, bytes: fileOf(encoded, 'inserts').byteLength });
    expect(m.files.deletes).toMatchObject({ name: 'deletes.arrow', rows: 44, bytes: fileOf(encoded, 'deletes').byteLength });
    const text = Buffer.from(fileOf(encoded, 'manifest')).toString('utf8');
    for (const which of ['inserts', 'deletes'] as const) {
      const crc = crc32(fileOf(encoded, which)).toString(16).padStart(8, '0');
      expect(m.files[which].checksum).toEqual({ algorithm: 'crc32', value: crc });
      expect(text).toContain(`"crc32": "${crc}"`); // what any CRC-32 tool (zlib, gzip's) checks the file with
    }
    expect(text).not.toContain('sha256');
    // inserts span tt(0,0)..tt(60,6); deletes tt(25,1)..tt(80,7); the empty delete batch's tt(26,0) does not count
    expect(m.timetick).toEqual({ min: tt(0, 0), max: tt(80, 7) });
    expect(m.timetick!.max > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true); // timeticks really need 64 bits
  });

  it('round-trips every row of every field type exactly (vectors bit for bit)', () => {
    const decoded = decodeSegment(encoded.manifest, { inserts: fileOf(encoded, 'inserts'), deletes: fileOf(encoded, 'deletes') });
    expect(decoded.inserts.rows).toBe(1000);
    expect(decoded.inserts.columns.map((c) => [c.name, c.type])).toEqual(schema.fields.map((f) => [f.name, f.type]));
    const got = [...insertRows(decoded.inserts)];
    expect(got).toHaveLength(rows.length);
    got.forEach((row, i) => {
      expect(row.timetick).toBe(rows[i]!.timetick);
      for (const f of schema.fields) expectSameValue(f.name, row.values[f.name], rows[i]!.values[f.name], `row ${i}`);
    });
    expect(decoded.inserts.primaryKeys).toEqual({ type: 'int64', data: rows.map((r) => r.values['id']) });

    expect(decoded.deletes.rows).toBe(deletes.length);
    expect(decoded.deletes.primaryKeys).toEqual({ type: 'int64', data: deletes.map((d) => d.key) });
    expect([...decoded.deletes.timeticks]).toEqual(deletes.map((d) => d.timetick));
  });

  it('is readable by the plain apache-arrow reader, row by row', () => {
    const table: Table = tableFromIPC(fileOf(encoded, 'inserts'));
    expect(table.batches.length).toBe(8); // 1000 rows / 128
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}:${f.nullable}`)).toEqual([
      'id:Int64:false',
      '_timetick:Uint64:false',
      'title:Utf8:false',
      'embedding:FixedSizeList[8]<Float32>:false',
      'flag:Bool:false',
      'count:Int32:false',
      'big:Int64:false',
      'score:Float32:false',
      'precise:Float64:false',
      'meta:Utf8:false',
      'small_vec:FixedSizeList[3]<Float32>:false',
    ]);
    expect(table.schema.metadata.get('walstream.table')).toBe('inserts');
    expect(table.schema.fields.find((f) => f.name === 'meta')!.metadata.get('walstream.type')).toBe('json');
    expect(table.schema.fields[0]!.metadata.get('walstream.primaryKey')).toBe('true');
    expect(table.numRows).toBe(rows.length);
    for (let i = 0; i < table.numRows; i++) {
      const row = table.get(i)!;
      const want = rows[i]!.values;
      const where = `arrow row ${i}`;
      expect({ where, id: row['id'] }).toEqual({ where, id: BigInt(want['id'] as number) });
      expect({ where, tt: row['_timetick'] }).toEqual({ where, tt: rows[i]!.timetick });
      expectSameValue('title', row['title'], want['title'], where);
      expectSameValue('embedding', row['embedding'].toArray(), want['embedding'], where);
      expectSameValue('flag', row['flag'], want['flag'], where);
      expectSameValue('count', row['count'], want['count'], where);
      expect({ where, big: row['big'] }).toEqual({ where, big: BigInt(want['big'] as number) });
      expectSameValue('score', row['score'], want['score'], where);
      expectSameValue('precise', row['precise'], want['precise'], where);
      expectSameValue('meta', JSON.parse(row['meta'] as string), want['meta'], where);
      expectSameValue('small_vec', row['small_vec'].toArray(), want['small_vec'], where);
    }

    const del: Table = tableFromIPC(fileOf(encoded, 'deletes'));
    expect(del.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(['id:Int64', '_timetick:Uint64']);
    expect(del.toArray().map((r) => [r['id'], r['_timetick']])).toEqual(deletes.map((d) => [BigInt(d.key), d.timetick]));
  });

  it('encodes deterministically (a retried flush writes the same bytes)', () => {
    const again = encodeSegment(makeInput(seededRandom(SEED)), { root: 'segments', maxRowsPerBatch: 128 });
    for (const [k, v] of encoded.files) expect(Buffer.from(again.files.get(k)!).equals(Buffer.from(v))).toBe(true);
  });

  it('splits record batches by text bytes too, without changing the rows', () => {
    const bytesBound = encodeSegment(input, { maxBatchBytes: 2_000 });
    const table = tableFromIPC(fileOf(bytesBound, 'inserts'));
    expect(table.batches.length).toBeGreaterThan(10);
    const decoded = decodeSegment(bytesBound.manifest, { inserts: fileOf(bytesBound, 'inserts'), deletes: fileOf(bytesBound, 'deletes') });
    expect(decoded.inserts.columns.find((c) => c.name === 'title')!.data).toEqual(rows.map((r) => r.values['title']));
    expect(decoded.inserts.columns.find((c) => c.name === 'meta')!.data).toEqual(rows.map((r) => r.values['meta']));
  });

  describe('corruption', () => {
    const files = { inserts: fileOf(encoded, 'inserts'), deletes: fileOf(encoded, 'deletes') };

    it('detects a flipped byte in either data file by its checksum', async () => {
      for (const which of ['inserts', 'deletes'] as const) {
        for (const at of [0, Math.floor(files[which].byteLength / 2), files[which].byteLength - 1]) {
          const err = await caught(() => decodeSegment(encoded.manifest, { ...files, [which]: flipByte(files[which], at) }));
          expect(err).toBeInstanceOf(SegmentCorruptError);
          expect(err).toMatchObject({
            code: ErrorCode.UNRECOVERABLE,
            retriable: false,
            reason: SegmentCorruptReason.CHECKSUM_MISMATCH,
            details: { file: `${which}.arrow`, algorithm: 'crc32', expected: encoded.manifest.files[which].checksum.value },
          });
        }
      }
    });

    it('detects a truncated or extended file by its size', async () => {
      const err = await caught(() => decodeSegment(encoded.manifest, { ...files, inserts: files.inserts.subarray(0, files.inserts.byteLength - 8) }));
      expect(err).toMatchObject({ reason: SegmentCorruptReason.SIZE_MISMATCH, details: { file: 'inserts.arrow', actual: files.inserts.byteLength - 8 } });
      const longer = new Uint8Array(files.deletes.byteLength + 1);
      longer.set(files.deletes);
      expect(await caught(() => decodeSegment(encoded.manifest, { ...files, deletes: longer }))).toMatchObject({ reason: SegmentCorruptReason.SIZE_MISMATCH });
    });

    it('refuses a swapped file even when the manifest checksums were forged to match', async () => {
      const forged = { ...encoded.manifest, files: { ...encoded.manifest.files, inserts: { ...encoded.manifest.files.deletes, name: 'inserts.arrow' } } };
      const err = await caught(() => decodeSegment(forged, { inserts: files.deletes, deletes: files.deletes }));
      expect(err).toMatchObject({ reason: SegmentCorruptReason.SCHEMA_MISMATCH, details: { file: 'inserts.arrow' } });
    });

    it('refuses a malformed or unknown-version manifest', async () => {
      const text = Buffer.from(fileOf(encoded, 'manifest')).toString('utf8');
      expect(await caught(() => decodeManifest(new TextEncoder().encode(text.slice(0, 40))))).toMatchObject({ reason: SegmentCorruptReason.BAD_MANIFEST });
      for (const version of ['3', '0', '"2"']) {
        expect(await caught(() => decodeManifest(new TextEncoder().encode(text.replace('"formatVersion": 2', `"formatVersion": ${version}`))))).toMatchObject({
          reason: SegmentCorruptReason.UNSUPPORTED_VERSION,
        });
      }
      for (const bad of ['"crc32": "xyz"', '"crc32": "0123456789"', '"crc32": "ABCDEF01"', '"sha256": "0123abcd"']) {
        expect(await caught(() => decodeManifest(new TextEncoder().encode(text.replace(/"crc32": "[0-9a-f]+"/, bad))))).toMatchObject({
          reason: SegmentCorruptReason.BAD_MANIFEST,
        });
      }
      // Format 1 checksums with SHA-256: a crc32 in a format 1 manifest is not a checksum it knows.
      expect(await caught(() => decodeManifest(new TextEncoder().encode(text.replace('"formatVersion": 2', '"formatVersion": 1'))))).toMatchObject({
        reason: SegmentCorruptReason.BAD_MANIFEST,
      });
      expect(await caught(() => decodeManifest(new Uint8Array([0xff, 0xfe, 0x7b])))).toMatchObject({ reason: SegmentCorruptReason.BAD_MANIFEST });
    });
  });

  it('writes an empty deletes file that any Arrow reader opens', () => {
    const noDeletes = encodeSegment({ ...input, deletes: [] });
    const bytes = fileOf(noDeletes, 'deletes');
    expect(noDeletes.manifest.files.deletes).toMatchObject({ rows: 0, bytes: bytes.byteLength });
    const table = tableFromIPC(bytes);
    expect(table.numRows).toBe(0);
    expect(table.schema.fields.map((f) => f.name)).toEqual(['id', '_timetick']);
    const decoded = decodeSegment(noDeletes.manifest, { inserts: fileOf(noDeletes, 'inserts'), deletes: bytes });
    expect(decoded.deletes).toEqual({ rows: 0, primaryKeys: { type: 'int64', data: [] }, timeticks: new BigUint64Array(0) });
    expect(noDeletes.manifest.timetick).toEqual({ min: tt(0, 0), max: tt(60, 6) }); // from the inserts alone
  });

  it('encodes a segment with no rows at all (min/max timetick absent)', () => {
    const empty = encodeSegment({ ...REF, schema, inserts: [], deletes: [] });
    expect(empty.manifest.timetick).toBeUndefined();
    expect(decodeManifest(fileOf(empty, 'manifest')).timetick).toBeUndefined();
    const decoded = decodeSegment(empty.manifest, { inserts: fileOf(empty, 'inserts'), deletes: fileOf(empty, 'deletes') });
    expect(decoded.inserts.rows).toBe(0);
    expect(decoded.inserts.columns.every((c) => c.data.length === 0)).toBe(true);
    expect(tableFromIPC(fileOf(empty, 'inserts')).schema.fields).toHaveLength(11);
  });

  it('round-trips a varchar primary key, in inserts and deletes', () => {
    const vSchema: CollectionSchema = {
      fields: [
        { name: 'pk', type: 'varchar', primaryKey: true, maxLength: 64 },
        { name: 'v', type: 'floatVector', dim: 2 },
      ],
    };
    const keys = ['a', 'ß', '😀', '', 'key with spaces'];
    const enc = encodeSegment({
      ...REF,
      schema: vSchema,
      inserts: [{ timetick: 5n, columns: [{ name: 'v', type: 'floatVector', dim: 2, data: new Float32Array(10).map((_, i) => i / 3) }, { name: 'pk', type: 'varchar', data: keys }] }],
      deletes: [{ timetick: 9n, primaryKeys: { type: 'varchar', data: ['ß', 'gone'] } }],
    });
    const decoded = decodeSegment(enc.manifest, { inserts: fileOf(enc, 'inserts'), deletes: fileOf(enc, 'deletes') });
    expect(decoded.inserts.primaryKeys).toEqual({ type: 'varchar', data: keys });
    expect(bitsOf(decoded.inserts.columns[1]!.data as Float32Array)).toEqual(bitsOf(new Float32Array(10).map((_, i) => i / 3)));
    expect(decoded.deletes.primaryKeys).toEqual<PrimaryKeys>({ type: 'varchar', data: ['ß', 'gone'] });
    expect(tableFromIPC(fileOf(enc, 'deletes')).toArray().map((r) => r['pk'])).toEqual(['ß', 'gone']);
  });

  it('rejects input that does not match the schema with INVALID_ARGUMENT', async () => {
    const one = makeInsert(seededRandom(1), 2, 1, 1n);
    const withColumns = (f: (cs: Column[]) => Column[]): SegmentInput => ({ ...REF, schema, inserts: [{ timetick: 1n, columns: f([...one.columns]) }], deletes: [] });
    const replace = (name: string, c: Column) => (cs: Column[]) => cs.map((x) => (x.name === name ? c : x));
    const cases: [string, SegmentInput][] = [
      ['missing column', withColumns((cs) => cs.filter((c) => c.name !== 'flag'))],
      ['unknown column', withColumns((cs) => [...cs, { name: 'extra', type: 'bool', data: [true, false] }])],
      ['type mismatch', withColumns(replace('count', { name: 'count', type: 'int64', data: [1, 2] }))],
      ['row count mismatch', withColumns(replace('flag', { name: 'flag', type: 'bool', data: [true] }))],
      ['vector length', withColumns(replace('embedding', { name: 'embedding', type: 'floatVector', dim: 8, data: new Float32Array(15) }))],
      ['int32 out of range', withColumns(replace('count', { name: 'count', type: 'int32', data: [1, 2 ** 31] }))],
      ['unsafe int64', withColumns(replace('big', { name: 'big', type: 'int64', data: [1, 2 ** 60] }))],
      ['negative timetick', { ...withColumns((cs) => cs), inserts: [{ ...one, timetick: -1n }] }],
      ['delete key type', { ...REF, schema, inserts: [], deletes: [{ timetick: 1n, primaryKeys: { type: 'varchar', data: ['x'] } }] }],
      ['reserved field name', { ...REF, schema: { fields: [...schema.fields, { name: '_timetick', type: 'int64' }] }, inserts: [], deletes: [] }],
      ['bad segment id', { ...withColumns((cs) => cs), segmentId: -1 }],
    ];
    for (const [what, bad] of cases) {
      expect({ what, err: await caught(() => encodeSegment(bad)) }).toMatchObject({ what, err: { code: ErrorCode.INVALID_ARGUMENT } });
    }
  });

  describe('from encoded WAL inserts', () => {
    /** The insert as the flush worker sees it: its WAL message, scanned (the scanner's columns lay it out). */
    const scanner = new MessageScanner();
    const scannedColumnsOf = (columns: readonly Column[]) => {
      scanner.scan(encodeMessage({ type: 'Insert', vchannel: 'v', timetick: 1n, lastConfirmedId: '', term: 1, header: { ...REF, rows: 0, bytes: 0 }, body: { columns: [...columns] } }));
      scanner.scanInsertColumns();
      return scanner.columns;
    };

    it.each([
      ['default batches', {}],
      ['128-row batches', { maxRowsPerBatch: 128 }],
      ['7-row batches', { maxRowsPerBatch: 7 }],
      ['batches split by text bytes', { maxBatchBytes: 2_000 }],
    ])('gives the bytes encodeSegment gives (%s), mixed with decoded inserts', (_name, opts) => {
      const segment = new SegmentEncoder(input, { root: 'segments', ...opts });
      input.inserts.forEach((batch, i) => (i % 3 === 2 ? segment.addInsert(batch) : segment.addScannedInsert(scannedColumnsOf(batch.columns), batch.timetick)));
      for (const d of input.deletes) segment.addDelete(d);
      const got = segment.finish();
      const want = encodeSegment(input, { root: 'segments', ...opts });
      expect(got.manifest).toEqual(want.manifest);
      for (const [k, v] of want.files) expect({ k, same: Buffer.from(got.files.get(k)!).equals(Buffer.from(v)) }).toEqual({ k, same: true });
    });

    it('knows the primary keys inserted so far', () => {
      const segment = new SegmentEncoder(input, { maxRowsPerBatch: 100 });
      for (const batch of input.inserts) segment.addScannedInsert(scannedColumnsOf(batch.columns), batch.timetick);
      expect(segment.insertedKeys()).toEqual(rows.map((r) => r.values['id']));
    });

    it('rejects encoded columns that do not match the schema with INVALID_ARGUMENT', async () => {
      const columns = makeInsert(seededRandom(2), 3, 1, 1n).columns;
      const count = columns.find((c) => c.name === 'count')!;
      const cases: [string, Column[]][] = [
        ['missing column', columns.filter((c) => c.name !== 'flag')],
        ['unknown column', [...columns, { ...count, name: 'extra' } as Column]],
        ['duplicate column', [...columns.filter((c) => c.name !== 'flag'), count]],
        ['type mismatch', columns.map((c) => (c.name === 'count' ? ({ name: 'count', type: 'float', data: [1, 2, 3] } as Column) : c))],
        ['dimension mismatch', columns.map((c) => (c.type === 'floatVector' ? ({ ...c, dim: c.dim / 2 } as Column) : c))],
        ['row count mismatch', columns.map((c) => (c.name === 'flag' ? ({ name: 'flag', type: 'bool', data: [true, false] } as Column) : c))],
      ];
      for (const [what, bad] of cases) {
        const segment = new SegmentEncoder(input);
        expect({ what, err: await caught(() => segment.addScannedInsert(scannedColumnsOf(bad), 1n)) }).toMatchObject({ what, err: { code: ErrorCode.INVALID_ARGUMENT } });
      }
    });

    it('gives the bytes encodeSegment gives for a long run of inserts of one shape, read from one block as the WAL hands them out', () => {
      const fixed: CollectionSchema = {
        fields: [
          { name: 'id', type: 'int64', primaryKey: true },
          { name: 'flag', type: 'bool' },
          { name: 'n', type: 'int32' },
          { name: 'x', type: 'double' },
          { name: 'vec', type: 'floatVector', dim: 4 },
        ],
      };
      const random = seededRandom(99);
      // Single-row inserts (one shape), then a few of 3 rows (another), then single rows again.
      const inserts: InsertBatch[] = Array.from({ length: 600 }, (_, i) => {
        const rows = i >= 300 && i < 310 ? 3 : 1;
        return {
          timetick: BigInt(1000 + i),
          columns: [
            { name: 'id', type: 'int64', data: Array.from({ length: rows }, (_, k) => 10 * i + k) },
            { name: 'flag', type: 'bool', data: Array.from({ length: rows }, () => random.int(2) === 1) },
            { name: 'n', type: 'int32', data: Array.from({ length: rows }, () => random.int(1000)) },
            { name: 'x', type: 'double', data: Array.from({ length: rows }, () => random.int(10_000) / 7) },
            { name: 'vec', type: 'floatVector', dim: 4, data: Float32Array.from({ length: 4 * rows }, () => random.int(100) / 3) },
          ],
        };
      });
      const fixedInput: SegmentInput = { ...REF, schema: fixed, inserts, deletes: [] };
      const messages = inserts.map((b) => encodeMessage({ type: 'Insert', vchannel: 'v', timetick: b.timetick, lastConfirmedId: '', term: 1, header: { ...REF, rows: 0, bytes: 0 }, body: { columns: [...b.columns] } }));
      const block = Buffer.concat(messages);
      const segment = new SegmentEncoder(fixedInput, { maxRowsPerBatch: 128 });
      const scan = new MessageScanner();
      let at = 0;
      for (const m of messages) {
        scan.scan(block.subarray(at, at + m.length));
        at += m.length;
        scan.scanInsertColumns();
        segment.addScannedInsert(scan.columns, scan.timetick());
      }
      const got = segment.finish();
      const want = encodeSegment(fixedInput, { maxRowsPerBatch: 128 });
      expect(got.manifest).toEqual(want.manifest);
      for (const [k, v] of want.files) expect({ k, same: Buffer.from(got.files.get(k)!).equals(Buffer.from(v)) }).toEqual({ k, same: true });
    });

    it('finds columns in any order, and by name when the order changes between inserts', () => {
      const segment = new SegmentEncoder(input, { maxRowsPerBatch: 100 });
      const want = new SegmentEncoder(input, { maxRowsPerBatch: 100 });
      input.inserts.forEach((batch, i) => {
        const columns = i % 2 === 0 ? [...batch.columns].reverse() : [...batch.columns];
        segment.addScannedInsert(scannedColumnsOf(columns), batch.timetick);
        want.addInsert(batch);
      });
      const got = segment.finish();
      for (const [k, v] of want.finish().files) expect({ k, same: Buffer.from(got.files.get(k)!).equals(Buffer.from(v)) }).toEqual({ k, same: true });
    });
  });

  describe('in an object store', () => {
    let dir: string;
    let store: LocalObjectStore;
    beforeEach(async () => {
      dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'walstream-segments-'));
      store = await LocalObjectStore.open({ dir, fsync: false });
    });
    afterEach(async () => {
      await store.close();
      await fs.promises.rm(dir, { recursive: true, force: true });
    });

    const keysOf = async (): Promise<string[]> => {
      const keys: string[] = [];
      for await (const e of store.list('')) keys.push(e.key);
      return keys;
    };

    it('finishData gives the bytes of finish() in parts, and hashes them as one file', async () => {
      const segment = new SegmentEncoder(input, { root: 'segments', maxRowsPerBatch: 128 });
      for (const batch of input.inserts) segment.addInsert(batch);
      for (const d of input.deletes) segment.addDelete(d);
      const data = await segment.finishData();
      const whole = encodeSegment(input, { root: 'segments', maxRowsPerBatch: 128 });
      expect(data.inserts.length).toBeGreaterThan(1);
      for (const file of ['inserts', 'deletes'] as const) {
        const joined = Buffer.concat(data[file]);
        expect(joined.equals(Buffer.from(fileOf(whole, file)))).toBe(true);
        expect(await checksumYielding('crc32', data[file])).toEqual(whole.manifest.files[file].checksum);
      }
    });

    it('reuses recycled batch buffers for the next segment and still writes exactly its bytes', async () => {
      const pool = new BatchBufferPool(64 * 1024 * 1024, 60_000);
      const heldBeforeRecycle: number[] = [];
      const encodeWith = async (segmentInput: SegmentInput): Promise<Buffer[]> => {
        const segment = new SegmentEncoder(segmentInput, { root: 'segments', maxRowsPerBatch: 128, buffers: pool });
        for (const batch of segmentInput.inserts) segment.addInsert(batch);
        for (const d of segmentInput.deletes) segment.addDelete(d);
        const data = await segment.finishData();
        const files = [Buffer.concat(data.inserts), Buffer.concat(data.deletes)];
        heldBeforeRecycle.push(pool.size);
        segment.recycle();
        return files;
      };
      const first = await encodeWith(input);
      expect(first[0]!.equals(Buffer.from(fileOf(encoded, 'inserts')))).toBe(true);
      const held = pool.size;
      expect(held).toBeGreaterThan(0); // full 128-row batches came back
      // Another segment (other rows, fewer of them) fills the stale buffers: only its own rows are written.
      const other = makeInput(seededRandom(SEED + 7));
      const second = await encodeWith({ ...other, inserts: other.inserts.slice(0, Math.ceil(other.inserts.length / 2)) });
      const expected = encodeSegment({ ...other, inserts: other.inserts.slice(0, Math.ceil(other.inserts.length / 2)) }, { root: 'segments', maxRowsPerBatch: 128 });
      expect(second[0]!.equals(Buffer.from(fileOf(expected, 'inserts')))).toBe(true);
      expect(second[1]!.equals(Buffer.from(fileOf(expected, 'deletes')))).toBe(true);
      expect(heldBeforeRecycle[1]).toBeLessThan(held); // the second segment took buffers from the pool
      pool.clear();
      expect(pool.size).toBe(0);
      // The bound: a pool too small for a buffer keeps none.
      const tiny = new BatchBufferPool(16, 60_000);
      const segment = new SegmentEncoder(input, { root: 'segments', maxRowsPerBatch: 128, buffers: tiny });
      for (const batch of input.inserts) segment.addInsert(batch);
      await segment.finishData();
      segment.recycle();
      expect(tiny.size).toBe(0);
    });

    it('checksums parts across its slices as their concatenation (empty parts change nothing)', async () => {
      const MiB = 1 << 20;
      const parts = [0, 1, 8 * MiB - 1, 3, 8 * MiB + 5, 0, 17].map((n, i) => new Uint8Array(n).fill(i + 1));
      const whole = Buffer.concat(parts);
      const crc = crc32(whole).toString(16).padStart(8, '0');
      expect(await checksumYielding('crc32', parts)).toEqual({ algorithm: 'crc32', value: crc });
      expect(checksumOf('crc32', parts)).toEqual({ algorithm: 'crc32', value: crc });
      expect(checksumOf('crc32', whole)).toEqual({ algorithm: 'crc32', value: crc });
      expect((await checksumYielding('sha256', parts)).value).toBe(createHash('sha256').update(whole).digest('hex'));
      expect(await checksumYielding('crc32', [])).toEqual({ algorithm: 'crc32', value: '00000000' });
      expect((await checksumYielding('sha256', [])).value).toBe(createHash('sha256').digest('hex'));
      // A value with a high bit set still prints as 8 unsigned hex digits.
      const high = [...Array(64).keys()].map((i) => new Uint8Array([i])).find((b) => crc32(b) >= 2 ** 31)!;
      expect(checksumOf('crc32', high).value).toBe(crc32(high).toString(16).padStart(8, '0'));
    });

    it('writes, reads back the same rows, and rewrites idempotently', async () => {
      await writeSegment(store, encoded);
      expect(await keysOf()).toEqual([...encoded.files.keys()].sort());
      const decoded = await readSegment(store, REF, { root: 'segments' });
      expect(decoded).toEqual(decodeSegment(encoded.manifest, { inserts: fileOf(encoded, 'inserts'), deletes: fileOf(encoded, 'deletes') }));
      await writeSegment(store, encoded); // a retried flush
      expect(await keysOf()).toEqual([...encoded.files.keys()].sort());
    });

    it('refuses to replace a stored segment with different content, and writes nothing', async () => {
      await writeSegment(store, encoded);
      const other = encodeSegment({ ...input, deletes: [] }, { root: 'segments' });
      expect(await caught(writeSegment(store, other))).toBeInstanceOf(SegmentConflictError);
      const stored = await store.get(encoded.paths.deletes);
      expect(Buffer.from(stored).equals(Buffer.from(fileOf(encoded, 'deletes')))).toBe(true);
    });

    it('reports a corrupted, a missing data file and a missing segment', async () => {
      await writeSegment(store, encoded);
      await store.put(encoded.paths.inserts, flipByte(fileOf(encoded, 'inserts'), 100));
      expect(await caught(readSegment(store, REF, { root: 'segments' }))).toMatchObject({ reason: SegmentCorruptReason.CHECKSUM_MISMATCH, details: { file: 'inserts.arrow' } });
      await store.delete(encoded.paths.deletes);
      expect(await caught(readSegment(store, REF, { root: 'segments' }))).toMatchObject({ reason: SegmentCorruptReason.MISSING_FILE });
      expect(await caught(readSegment(store, { ...REF, segmentId: 1 }, { root: 'segments' }))).toBeInstanceOf(ObjectNotFoundError);
    });

    it('writeSegmentData hashes while it writes: the same files and manifest as writeSegment, idempotent, conflicts refused', async () => {
      const data = () => {
        const segment = new SegmentEncoder(input, { root: 'segments', maxRowsPerBatch: 128 });
        for (const batch of input.inserts) segment.addInsert(batch);
        for (const d of input.deletes) segment.addDelete(d);
        return segment.finishData();
      };
      const written = await writeSegmentData(store, await data());
      expect(written.manifest).toEqual(encoded.manifest);
      for (const [k, v] of encoded.files) expect({ k, same: Buffer.from(await store.get(k)).equals(Buffer.from(v)) }).toEqual({ k, same: true });
      await writeSegmentData(store, await data()); // a retried flush
      expect(await keysOf()).toEqual([...encoded.files.keys()].sort());
      const other = new SegmentEncoder({ ...input }, { root: 'segments' });
      expect(await caught(writeSegmentData(store, await other.finishData()))).toBeInstanceOf(SegmentConflictError);
    });

    it('reads a segment of format 1 (SHA-256 checksums), and a flush retried over it keeps it', async () => {
      const v1: SegmentManifest = {
        ...encoded.manifest,
        formatVersion: 1,
        files: {
          inserts: { ...encoded.manifest.files.inserts, checksum: checksumOf('sha256', fileOf(encoded, 'inserts')) },
          deletes: { ...encoded.manifest.files.deletes, checksum: checksumOf('sha256', fileOf(encoded, 'deletes')) },
        },
      };
      const v1Bytes = encodeManifest(v1);
      const text = Buffer.from(v1Bytes).toString('utf8');
      expect(text).toContain('"formatVersion": 1');
      expect(text).toContain(`"sha256": "${createHash('sha256').update(fileOf(encoded, 'inserts')).digest('hex')}"`);
      expect(text).not.toContain('crc32');
      expect(decodeManifest(v1Bytes)).toEqual(v1);
      const files = { inserts: fileOf(encoded, 'inserts'), deletes: fileOf(encoded, 'deletes') };
      const read = decodeSegment(v1, files);
      const current = decodeSegment(encoded.manifest, files);
      expect(read.manifest).toEqual(v1);
      expect({ inserts: read.inserts, deletes: read.deletes }).toEqual({ inserts: current.inserts, deletes: current.deletes });
      expect(read.inserts.rows).toBe(1000);
      expect(await caught(() => decodeSegment(v1, { ...files, inserts: flipByte(files.inserts, 10) }))).toMatchObject({
        reason: SegmentCorruptReason.CHECKSUM_MISMATCH,
        details: { file: 'inserts.arrow', algorithm: 'sha256', expected: v1.files.inserts.checksum.value },
      });

      // Both formats write the same data files (the Arrow layout version stays 1) …
      expect(tableFromIPC(files.inserts).schema.metadata.get('walstream.formatVersion')).toBe('1');
      const data = async () => {
        const segment = new SegmentEncoder(input, { root: 'segments', maxRowsPerBatch: 128 }); // as `encoded`
        for (const batch of input.inserts) segment.addInsert(batch);
        for (const d of input.deletes) segment.addDelete(d);
        return segment.finishData();
      };
      const storeWith = (overrides: Partial<ObjectStore>): ObjectStore => Object.assign(Object.create(store) as ObjectStore, overrides);
      const putKeys: string[] = [];
      const counting = storeWith({ put: (key, bytes, opts) => (putKeys.push(key), store.put(key, bytes, opts)) });
      // … so a retried flush of the same rows over a complete format-1 segment keeps it and writes nothing,
      for (const [k, v] of encoded.files) await store.put(k, k === encoded.paths.manifest ? v1Bytes : v);
      expect((await writeSegmentData(counting, await data())).manifest).toEqual(v1);
      expect(putKeys).toEqual([]);
      expect((await readSegment(store, REF, { root: 'segments' })).manifest).toEqual(v1);
      // and one that wrote its files before the format-1 manifest appeared (an older writer that
      // finished in between) keeps that manifest, which describes the files now in the store.
      const late = storeWith({ head: () => Promise.resolve(undefined) });
      expect((await writeSegmentData(late, await data())).manifest).toEqual(v1);
      const afterLate = await readSegment(store, REF, { root: 'segments' });
      expect(afterLate.manifest).toEqual(v1);
      expect(afterLate.inserts.rows).toBe(1000);
      // A format-1 manifest of other rows, or whose checksums are not those of these files, is a conflict.
      await store.put(encoded.paths.manifest, encodeManifest({ ...v1, files: { ...v1.files, deletes: { ...v1.files.deletes, rows: 43 } } }));
      expect(await caught(writeSegmentData(store, await data()))).toBeInstanceOf(SegmentConflictError);
      const otherSum = { algorithm: 'sha256' as const, value: 'ab'.repeat(32) };
      await store.put(encoded.paths.manifest, encodeManifest({ ...v1, files: { ...v1.files, inserts: { ...v1.files.inserts, checksum: otherSum } } }));
      expect(await caught(writeSegmentData(store, await data()))).toBeInstanceOf(SegmentConflictError);
      expect(await caught(writeSegmentData(late, await data()))).toBeInstanceOf(SegmentConflictError);
    });

    it('refuses a manifest stored under another segment', async () => {
      await writeSegment(store, encoded);
      const moved = segmentFilePaths('segments', { ...REF, segmentId: 9 });
      await store.put(moved.manifest, encodeManifest(encoded.manifest));
      expect(await caught(readSegment(store, { ...REF, segmentId: 9 }, { root: 'segments' }))).toMatchObject({ reason: SegmentCorruptReason.BAD_MANIFEST });
    });
  });
});
