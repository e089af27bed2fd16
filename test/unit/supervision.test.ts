import { ChannelFencedError, ErrorCode, StreamingError } from '../../runtime/errors';
import { CrashWindow, decide } from '../../runtime/supervision';

describe('supervision verdicts', () => {
  test.each([
    ['fenced', new ChannelFencedError('p', 1, 2), 'stop'],
    ['unrecoverable', new StreamingError(ErrorCode.UNRECOVERABLE, 'x'), 'stop'],
    ['invalid argument', new StreamingError(ErrorCode.INVALID_ARGUMENT, 'x'), 'stop'],
    ['inner (I/O)', new StreamingError(ErrorCode.INNER, 'x'), 'reset'],
    ['on shutdown', new StreamingError(ErrorCode.ON_SHUTDOWN, 'x'), 'reset'],
    ['resource exhausted', new StreamingError(ErrorCode.RESOURCE_EXHAUSTED, 'x'), 'reset'],
    ['transaction expired (not retriable)', new StreamingError(ErrorCode.TRANSACTION_EXPIRED, 'x'), 'stop'],
    ['unknown code', new StreamingError(ErrorCode.UNKNOWN, 'x'), 'escalate'],
    ['a bug (plain Error)', new TypeError('undefined is not a function'), 'escalate'],
    ['a thrown string', 'boom', 'escalate'],
  ])('%s → %s', (_name, error, verdict) => {
    expect(decide(error)).toBe(verdict);
  });
});

describe('crash window', () => {
  test('backs off exponentially and gives up after maxRestarts in the window', () => {
    const w = new CrashWindow({ maxRestarts: 3, windowMs: 1000, backoffMs: 10, maxBackoffMs: 25 });
    expect(w.record(0)).toBe(10);
    expect(w.record(100)).toBe(20);
    expect(w.record(200)).toBe(25);
    expect(w.record(300)).toBeUndefined();
  });

  test('crashes older than the window are forgotten', () => {
    const w = new CrashWindow({ maxRestarts: 2, windowMs: 1000, backoffMs: 10, maxBackoffMs: 1000 });
    expect(w.record(0)).toBe(10);
    expect(w.record(500)).toBe(20);
    expect(w.record(1600)).toBe(10); // the first two fell out of the window
    expect(w.count).toBe(1);
  });
});
