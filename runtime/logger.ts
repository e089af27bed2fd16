/**
 * Namespaced winston loggers. `WALSTREAM_LOG_LEVEL` sets the level (default "info"; tests run at
 * "warn" unless told otherwise). Every line carries the namespace, e.g. `wal`, `tso`, `backend.local`.
 */
import winston from 'winston';

export type Logger = winston.Logger;

function defaultLevel(): string {
  if (process.env.WALSTREAM_LOG_LEVEL) return process.env.WALSTREAM_LOG_LEVEL;
  return process.env.JEST_WORKER_ID !== undefined ? 'warn' : 'info';
}

let root: winston.Logger | undefined;

function rootLogger(): winston.Logger {
  if (!root) {
    root = winston.createLogger({
      level: defaultLevel(),
      format: winston.format.combine(
        winston.format.timestamp(),
        winston.format.printf((info) => {
          const { timestamp, level, message, ns, ...rest } = info as Record<string, unknown>;
          const extra = Object.keys(rest).length
            ? ' ' + JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
            : '';
          return `${String(timestamp)} ${String(level)} [${String(ns ?? 'walstream')}] ${String(message)}${extra}`;
        }),
      ),
      transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
    });
  }
  return root;
}

export function createLogger(ns: string): Logger {
  return rootLogger().child({ ns });
}
