/**
 * CRC-32 (IEEE 802.3, the one of zlib, gzip and S3's x-amz-checksum-crc32): the checksum of the
 * local WAL's records, of encoded messages and of flushed segment files.
 *
 * It runs over every byte the WAL writes and every byte a flush or a replay reads, so it is one of
 * the largest costs of both: node:zlib's table-driven crc32 does ~1.9 GB/s here, the SIMD one of
 * the native `@node-rs/crc32` (a prebuilt N-API binary per platform, no install script) ~5.8 GB/s
 * on a large buffer and about twice zlib's rate on a 560-byte record. The native one is used when
 * its binary loads on this platform and gives zlib's value on a probe; otherwise, or with
 * `WALSTREAM_CRC32=zlib`, zlib's. Both compute the same function, so files written with one are
 * read with the other.
 */
import * as zlib from 'node:zlib';
import { createLogger } from './logger';

/** CRC-32 of `data`, continuing from `value` (the CRC of the bytes before it; 0 to start). */
export type Crc32 = (data: Uint8Array, value?: number) => number;

export type Crc32Implementation = 'native' | 'zlib';

interface Loaded {
  crc32: Crc32;
  implementation: Crc32Implementation;
  /** Why the native one is not used (undefined when it is). */
  reason: string | undefined;
}

/** A few bytes whose CRC-32 both implementations must agree on before the native one is trusted. */
const PROBE = new Uint8Array([0x77, 0x61, 0x6c, 0x73, 0x74, 0x72, 0x65, 0x61, 0x6d, 0x00, 0xff, 0x80]);

function load(): Loaded {
  const fallback = (reason: string): Loaded => ({ crc32: zlib.crc32, implementation: 'zlib', reason });
  if (process.env['WALSTREAM_CRC32'] === 'zlib') return fallback('WALSTREAM_CRC32=zlib');
  let native: Crc32;
  try {
    native = (require('@node-rs/crc32') as { crc32: Crc32 }).crc32;
  } catch (e) {
    return fallback(`@node-rs/crc32 did not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    if (native(PROBE) !== zlib.crc32(PROBE) || native(PROBE, 0xdeadbeef) !== zlib.crc32(PROBE, 0xdeadbeef)) return fallback('@node-rs/crc32 disagrees with zlib on the probe');
  } catch (e) {
    return fallback(`@node-rs/crc32 failed on the probe: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { crc32: native, implementation: 'native', reason: undefined };
}

const loaded = load();
if (loaded.implementation === 'zlib' && process.env['WALSTREAM_CRC32'] !== 'zlib') {
  createLogger('crc32').warn("CRC-32 runs on node:zlib's implementation, about a third of the native one's speed on large buffers", { reason: loaded.reason });
}
const impl = loaded.crc32;

/**
 * CRC-32 of `data` continuing from `value`. Empty data leaves `value` as it is (zlib's crc32 of a
 * view without memory answers 0 whatever the value; the native one answers the value).
 */
export const crc32: Crc32 = (data, value = 0) => (data.byteLength === 0 ? value >>> 0 : impl(data, value));

/** Which implementation `crc32` is, and why not the native one (status and logs). */
export const crc32Implementation: { implementation: Crc32Implementation; reason: string | undefined } = {
  implementation: loaded.implementation,
  reason: loaded.reason,
};
