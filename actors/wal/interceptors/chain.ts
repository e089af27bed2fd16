import type { AppendNext, Interceptor } from './interceptor';

/** Composes interceptors, outermost first, around the innermost append. */
export function buildChain(interceptors: readonly Interceptor[], innermost: AppendNext): AppendNext {
  return interceptors.reduceRight<AppendNext>((next, ic) => (msg) => ic.doAppend(msg, next), innermost);
}
