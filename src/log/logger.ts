/**
 * The proxy's log: one line per event on stderr, either text (`TIME LEVEL message key=value
 * ...`, the default) or JSON (`{"time":"...","level":"info","msg":"...","key":value,...}`,
 * `log.format: json`, for Loki, Elasticsearch and the like).
 *
 * The hot path may log (a rejected sender, a dropped response), so logging never blocks:
 * lines are buffered and written asynchronously in batches (process.stderr is synchronous
 * for pipes and files on Linux, which would put a syscall on every message). Per-message
 * events go through `limited()`, which lets through a bounded number of lines per second
 * per kind and then says how many it held back.
 */
import { write as fsWrite, writeSync } from 'node:fs';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface LoggerOptions {
  level?: LogLevel;
  /** text (default) or json: one JSON object per line with time, level, msg and the fields. */
  format?: LogFormat;
  /** File descriptor to write to (default 2, stderr). */
  fd?: number;
  /** Lines per second per kind that `limited()` lets through (default 20). */
  perKindPerSecond?: number;
  now?: () => number;
}

export class Logger {
  private readonly threshold: number;
  private readonly json: boolean;
  private readonly fd: number;
  private readonly perKind: number;
  private readonly now: () => number;
  private pending: string[] = [];
  private writing = false;
  private scheduled = false;
  private readonly windows = new Map<string, { second: number; count: number; held: number }>();

  constructor(opts: LoggerOptions = {}) {
    this.threshold = LEVELS[opts.level ?? 'info'];
    this.json = opts.format === 'json';
    this.fd = opts.fd ?? 2;
    this.perKind = opts.perKindPerSecond ?? 20;
    this.now = opts.now ?? Date.now;
  }

  enabled(level: LogLevel): boolean {
    return LEVELS[level] <= this.threshold;
  }

  error(message: string, fields?: LogFields): void { this.log('error', message, fields); }
  warn(message: string, fields?: LogFields): void { this.log('warn', message, fields); }
  info(message: string, fields?: LogFields): void { this.log('info', message, fields); }
  debug(message: string, fields?: LogFields): void { this.log('debug', message, fields); }

  log(level: LogLevel, message: string, fields?: LogFields): void {
    if (LEVELS[level] > this.threshold) return;
    if (this.json) {
      this.pending.push(jsonLine(new Date(this.now()).toISOString(), level, message, fields));
      this.schedule();
      return;
    }
    let line = `${new Date(this.now()).toISOString()} ${level.toUpperCase()} ${message}`;
    if (fields !== undefined) {
      for (const k in fields) {
        const v = fields[k];
        if (v === undefined) continue;
        const text = String(v);
        line += /[\s"=]/.test(text) || text.length === 0 ? ` ${k}=${JSON.stringify(text)}` : ` ${k}=${text}`;
      }
    }
    this.pending.push(line + '\n');
    this.schedule();
  }

  /**
   * A per-message event of some kind ('acl.reject', 'response.foreign-via'): logged at most
   * perKindPerSecond times a second; the lines held back are counted in the next line.
   */
  limited(level: LogLevel, kind: string, message: string, fields?: LogFields): void {
    if (LEVELS[level] > this.threshold) return;
    const second = Math.floor(this.now() / 1000);
    let w = this.windows.get(kind);
    if (w === undefined) {
      w = { second, count: 0, held: 0 };
      this.windows.set(kind, w);
    }
    if (w.second !== second) {
      if (w.held > 0) this.log(level, `${kind}: ${w.held} similar lines suppressed`);
      w.second = second;
      w.count = 0;
      w.held = 0;
    }
    if (w.count >= this.perKind) {
      w.held++;
      return;
    }
    w.count++;
    this.log(level, message, fields);
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.writing || this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.writing = true;
    fsWrite(this.fd, chunk, (err) => {
      this.writing = false;
      if (err) {
        // Nowhere better to report it; drop the batch rather than crash or spin.
      }
      if (this.pending.length > 0) this.schedule();
    });
  }

  /** Write what is buffered now, synchronously (at exit). */
  flushSync(): void {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    try {
      writeSync(this.fd, chunk);
    } catch {
      // stderr gone: nothing to do
    }
  }
}

/**
 * One JSON log line. Written by hand rather than JSON.stringify of a fresh object: the
 * fields are flat and typed, so only strings need escaping (JSON.stringify of the string), and
 * no intermediate object is built. A number that JSON cannot carry (NaN, Infinity) becomes null.
 */
export function jsonLine(time: string, level: LogLevel, message: string, fields: LogFields | undefined): string {
  let line = `{"time":"${time}","level":"${level}","msg":${JSON.stringify(message)}`;
  if (fields !== undefined) {
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined) continue;
      const key = k === 'time' || k === 'level' || k === 'msg' ? `field_${k}` : k;
      let value: string;
      if (typeof v === 'string') value = JSON.stringify(v);
      else if (typeof v === 'number') value = Number.isFinite(v) ? String(v) : 'null';
      else value = String(v); // boolean or null
      line += `,${JSON.stringify(key)}:${value}`;
    }
  }
  return line + '}\n';
}
