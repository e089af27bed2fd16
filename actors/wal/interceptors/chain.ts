import type { AppendDone, AppendNext, Interceptor } from './interceptor';

/** Composes interceptors, outermost first, around the innermost append. */
export function buildChain(interceptors: readonly Interceptor[], innermost: AppendNext): AppendNext {
  return interceptors.reduceRight<AppendNext>((next, ic) => (msg: Parameters<AppendNext>[0], done: AppendDone) => ic.doAppend(msg, next, done), innermost);
}
