import type { ObjectBytes } from './object-store';

/** The object's bytes in one array: `data` itself, or its parts joined. */
export function joinedBytes(data: ObjectBytes): Uint8Array {
  if (ArrayBuffer.isView(data)) return data;
  return data.length === 1 ? data[0]! : Buffer.concat(data);
}

/**
 * Returns a Uint8Array that owns exactly its bytes. Node Buffers may be views into a shared pool
 * (Buffer.concat and small allocations): handing such a view out would expose (and let a caller
 * overwrite) unrelated memory through `.buffer`, so those are copied; a Buffer that already spans
 * its whole ArrayBuffer is re-wrapped without a copy.
 */
export function ownedBytes(buf: Uint8Array): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return new Uint8Array(buf.buffer, 0, buf.byteLength);
  return new Uint8Array(buf);
}
