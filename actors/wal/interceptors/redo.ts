/**
 * Redo interceptor (outermost): an inner step that must wait for something (a new growing segment)
 * answers `Redo` instead of waiting with a timetick in hand; the message then runs through the
 * chain again once that is done, with a fresh timetick. Locks are released while it waits.
 */
import type { Message } from '../../../runtime/message/types';
import type { AppendDone, AppendNext, Interceptor } from './interceptor';

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

  doAppend(msg: Message, next: AppendNext, done: AppendDone): void {
    this.attempt(msg, next, done, 0);
  }

  private attempt(msg: Message, next: AppendNext, done: AppendDone, attempt: number): void {
    next(msg, (o) => {
      if (o.ok || !(o.error instanceof Redo) || attempt >= MAX_REDOS) {
        done(o);
        return;
      }
      o.error.until.then(
        () => this.attempt(msg, next, done, attempt + 1),
        (error: unknown) => done({ ok: false, error }),
      );
    });
  }
}
