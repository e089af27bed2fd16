/** What a CLI command may touch: its output streams, input, environment, clock and interruption. */
import type { Clock } from '../clock';

export interface CliOutput {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdout: CliOutput;
  stderr: CliOutput;
  /** For `insert --file -`. */
  stdin?: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** Aborted by the first Ctrl-C: `tail` ends cleanly, `demo` stops writing and reports. */
  interrupt?: AbortSignal;
  /**
   * `start` only: registers the shutdown handler; it is called with the signal name on every
   * SIGINT/SIGTERM (the first one shuts down gracefully, a second one exits at once).
   */
  onSignal?: (handler: (signal: string) => void) => void;
  /** `start` only: ends the process at once (second signal). */
  exit?: (code: number) => void;
}

export function println(out: CliOutput, s = ''): void {
  out.write(`${s}\n`);
}
