/**
 * Progress of a long CLI task: a bar redrawn in place on a terminal, periodic plain lines
 * elsewhere (logs, CI, pipes). Small on purpose: one line of state, no dependency.
 */
import type { Clock } from '../clock';

export interface ProgressOutput {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  clock: Clock;
  /** Shortest time between two redraws on a terminal (ms). Default 100. */
  redrawMs?: number;
  /** A plain line at least every this many ms off a terminal (and at each 10 %). Default 2000. */
  lineMs?: number;
}

export class Progress {
  private done = 0;
  private note = '';
  private lastDraw = -Infinity;
  private lastLine = -Infinity;
  private lastDecile = -1;
  private finished = false;
  private readonly tty: boolean;

  constructor(
    private readonly out: ProgressOutput,
    private readonly label: string,
    private readonly total: number,
    private readonly opts: ProgressOptions,
  ) {
    this.tty = out.isTTY === true;
  }

  /** Sets the count done and an optional note (e.g. "seen 480, transfers 1/2"). */
  update(done: number, note = this.note): void {
    this.done = Math.min(done, this.total);
    this.note = note;
    const now = this.opts.clock.monotonic();
    if (this.tty) {
      if (now - this.lastDraw >= (this.opts.redrawMs ?? 100) || this.done === this.total) {
        this.lastDraw = now;
        this.out.write(`\r${this.bar()}\x1b[K`);
      }
      return;
    }
    const decile = this.total === 0 ? 10 : Math.floor((this.done * 10) / this.total);
    if (decile > this.lastDecile || now - this.lastLine >= (this.opts.lineMs ?? 2_000)) {
      this.lastDecile = decile;
      this.lastLine = now;
      this.out.write(`${this.label}: ${this.done}/${this.total} (${this.percent()}%)${this.note ? ` ${this.note}` : ''}\n`);
    }
  }

  /** Last draw, and the terminal line ended. */
  finish(note = this.note): void {
    if (this.finished) return;
    this.finished = true;
    this.note = note;
    if (this.tty) this.out.write(`\r${this.bar()}\x1b[K\n`);
    else this.out.write(`${this.label}: ${this.done}/${this.total} (${this.percent()}%)${this.note ? ` ${this.note}` : ''}\n`);
  }

  private percent(): number {
    return this.total === 0 ? 100 : Math.floor((this.done * 100) / this.total);
  }

  private bar(): string {
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60));
    const filled = this.total === 0 ? width : Math.round((this.done * width) / this.total);
    return `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(this.percent()).padStart(3)}% ${this.done}/${this.total}${this.note ? ` ${this.note}` : ''}`;
  }
}
