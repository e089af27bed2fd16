/**
 * Redo interceptor (outermost): an inner step that must wait for something (a new growing segment)
 * throws `Redo` instead of waiting with a timetick in hand; the message then runs through the
 * chain again once that is done, with a fresh timetick. Locks are released while it waits.
 */
import type { Message } from '../../../runtime/message/types';
import type { AppendNext, AppendResult, Interceptor } from './interceptor';

export class Redo extends Error {
  constructor(readonly until: Promise<void>) {
    super('redo');
    this.name = 'Redo';
  }
}

/** Most redos of one message before giving up (a segment that keeps filling up under it). */
const MAX_REDOS = 100;

export class RedoInterceptor implements Interceptor {
  readonly name = 'redo';

  doAppend(msg: Message, next: AppendNext): Promise<AppendResult> {
    return this.attempt(msg, next, 0);
  }

  /** No async frame on the way: the result is next's, with a rejection handler for Redo. */
  private attempt(msg: Message, next: AppendNext, attempt: number): Promise<AppendResult> {
    let p: Promise<AppendResult>;
    try {
      p = next(msg);
    } catch (e) {
      p = Promise.reject(e);
    }
    return p.catch((e: unknown) => {
      if (!(e instanceof Redo) || attempt >= MAX_REDOS) throw e;
      return e.until.then(() => this.attempt(msg, next, attempt + 1));
    });
  }
}
