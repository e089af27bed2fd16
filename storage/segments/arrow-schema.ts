/**
 * How a collection schema maps onto the Arrow schemas of a segment's two tables.
 *
 * inserts.arrow: the primary key (Int64 or Utf8), `_timetick` (Uint64), then every other schema
 *   field in schema order: floatVector → FixedSizeList<Float32>(dim), bool → Bool, int32 → Int32,
 *   int64 → Int64, float → Float32, double → Float64, varchar → Utf8, json → Utf8 (JSON text).
 * deletes.arrow: the primary key and `_timetick`.
 * No column is nullable. Field metadata `walstream.type` keeps the walstream type (so json and
 * varchar, both Utf8, stay apart) and `walstream.primaryKey` marks the key; schema metadata names the
 * table, format version and segment. Any Arrow reader sees plain typed columns.
 */
import * as arrow from 'apache-arrow';
import { assertNever, invalidArgument } from '../../runtime/errors';
import type { CollectionSchema, FieldSchema, FieldType } from '../../runtime/message/types';
import type { SegmentRef } from './layout';

/** Name of the per-row timetick column in both tables (reserved: no schema field may use it). */
export const TIMETICK_COLUMN = '_timetick';

/**
 * Version of the Arrow tables' layout, written as `walstream.formatVersion` in their schema
 * metadata. Segment format 2 changed the manifest's checksum only, not the tables: both formats
 * write these files byte for byte the same, so a format-1 manifest stands for format-2 files of the
 * same rows (see manifestInStore in segment-writer.ts).
 */
export const ARROW_LAYOUT_VERSION = 1;

export const ArrowMetadataKey = {
  TYPE: 'walstream.type',
  PRIMARY_KEY: 'walstream.primaryKey',
  TABLE: 'walstream.table',
  FORMAT_VERSION: 'walstream.formatVersion',
  COLLECTION_ID: 'walstream.collectionId',
  PARTITION_ID: 'walstream.partitionId',
  SEGMENT_ID: 'walstream.segmentId',
} as const;

export type SegmentTable = 'inserts' | 'deletes';
export type PrimaryKeyField = FieldSchema & { type: 'int64' | 'varchar' };

export function primaryKeyOf(schema: CollectionSchema): PrimaryKeyField {
  const pk = schema.fields.find((f) => f.primaryKey === true);
  if (pk === undefined || (pk.type !== 'int64' && pk.type !== 'varchar')) throw invalidArgument('segment: the schema has no int64 or varchar primary key');
  return pk as PrimaryKeyField;
}

/** Schema fields in table order: the primary key first, then the others in schema order. */
export function fieldsInTableOrder(schema: CollectionSchema): { primaryKey: PrimaryKeyField; others: FieldSchema[] } {
  const primaryKey = primaryKeyOf(schema);
  for (const f of schema.fields) {
    if (f.name === TIMETICK_COLUMN) throw invalidArgument(`segment: field name ${TIMETICK_COLUMN} is reserved in segment files`, { field: f.name });
  }
  return { primaryKey, others: schema.fields.filter((f) => f !== primaryKey) };
}

export function arrowTypeOf(type: FieldType, dim?: number): arrow.DataType {
  switch (type) {
    case 'floatVector':
      return new arrow.FixedSizeList(dim ?? 0, new arrow.Field('item', new arrow.Float32(), false));
    case 'bool':
      return new arrow.Bool();
    case 'int32':
      return new arrow.Int32();
    case 'int64':
      return new arrow.Int64();
    case 'float':
      return new arrow.Float32();
    case 'double':
      return new arrow.Float64();
    case 'varchar':
    case 'json':
      return new arrow.Utf8();
    default:
      return assertNever(type, 'field type');
  }
}

function arrowField(f: FieldSchema, primaryKey: boolean): arrow.Field {
  const meta = new Map<string, string>([[ArrowMetadataKey.TYPE, f.type]]);
  if (primaryKey) meta.set(ArrowMetadataKey.PRIMARY_KEY, 'true');
  return new arrow.Field(f.name, arrowTypeOf(f.type, f.dim), false, meta);
}

export function timetickField(): arrow.Field {
  return new arrow.Field(TIMETICK_COLUMN, new arrow.Uint64(), false);
}

export function arrowSchemaOf(table: SegmentTable, schema: CollectionSchema, ref: SegmentRef): arrow.Schema {
  const { primaryKey, others } = fieldsInTableOrder(schema);
  const fields = [arrowField(primaryKey, true), timetickField(), ...(table === 'inserts' ? others.map((f) => arrowField(f, false)) : [])];
  return new arrow.Schema(
    fields,
    new Map([
      [ArrowMetadataKey.TABLE, table],
      [ArrowMetadataKey.FORMAT_VERSION, String(ARROW_LAYOUT_VERSION)],
      [ArrowMetadataKey.COLLECTION_ID, String(ref.collectionId)],
      [ArrowMetadataKey.PARTITION_ID, String(ref.partitionId)],
      [ArrowMetadataKey.SEGMENT_ID, String(ref.segmentId)],
    ]),
  );
}
