/**
 * Hybrid timestamps: `physicalMs << 18 | logical`. They exceed 2^53, so they are bigints.
 */
export type Timetick = bigint;

export const LOGICAL_BITS = 18n;
export const LOGICAL_MASK = (1n << LOGICAL_BITS) - 1n;
export const MAX_LOGICAL = Number(LOGICAL_MASK);

export function composeTimetick(physicalMs: number, logical: number): Timetick {
  return (BigInt(physicalMs) << LOGICAL_BITS) | BigInt(logical);
}

export function physicalOf(tt: Timetick): number {
  return Number(tt >> LOGICAL_BITS);
}

export function logicalOf(tt: Timetick): number {
  return Number(tt & LOGICAL_MASK);
}

/** `tt` moved by `ms` of physical time (keeps the logical part). */
export function addPhysical(tt: Timetick, ms: number): Timetick {
  return tt + (BigInt(Math.trunc(ms)) << LOGICAL_BITS);
}

export function maxTimetick(a: Timetick, b: Timetick): Timetick {
  return a > b ? a : b;
}
