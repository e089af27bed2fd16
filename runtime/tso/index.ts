export {
  TimestampOracle,
  MAX_ALLOCATE_COUNT,
  DEFAULT_SAVE_WINDOW_MS,
  type TimestampOracleOptions,
  type TimestampRange,
  type TimestampSource,
} from './oracle';
export { TsoAllocator, DEFAULT_BATCH_SIZE, type TsoAllocatorOptions } from './allocator';
export { FileTsoStore, MemoryTsoStore, encodeTsoFile, decodeTsoFile, type TsoStore } from './tso-store';
