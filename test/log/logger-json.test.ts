/**
 * The logger's JSON format: one object per line with time, level, msg and the fields, written
 * to a real file; strings escaped, numbers as numbers; and the per-kind rate limit the same as
 * in text format.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Logger } from '../../src/log/logger.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function logTo(format: 'text' | 'json', now: () => number): { logger: Logger; lines: () => string[] } {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-log-'));
  const file = join(dir, 'log');
  const fd = openSync(file, 'w');
  const logger = new Logger({ level: 'info', format, fd, now, perKindPerSecond: 3 });
  return {
    logger,
    lines: () => {
      logger.flushSync();
      closeSync(fd);
      return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    },
  };
}

describe('Logger, log.format json', () => {
  it('writes time, level, msg and typed fields; escapes what needs it; skips undefined', () => {
    const t = Date.parse('2026-11-26T16:36:05.123Z');
    const { logger, lines } = logTo('json', () => t);
    logger.info('request from an address not in the address table', { method: 'INVITE', source: '203.0.113.9:5060', n: 3, ok: true, none: null, gone: undefined });
    logger.warn('a "quoted"\nmessage', { reason: 'tab\there', time: 'a field named time' });
    logger.debug('not at info');
    const out = lines();
    expect(out).toHaveLength(2);
    expect(JSON.parse(out[0]!)).toEqual({
      time: '2026-11-26T16:36:05.123Z',
      level: 'info',
      msg: 'request from an address not in the address table',
      method: 'INVITE',
      source: '203.0.113.9:5060',
      n: 3,
      ok: true,
      none: null,
    });
    expect(JSON.parse(out[1]!)).toEqual({
      time: '2026-11-26T16:36:05.123Z',
      level: 'warn',
      msg: 'a "quoted"\nmessage',
      reason: 'tab\there',
      field_time: 'a field named time',
    });
  });

  it('keeps the per-kind rate limit, and says how many lines it held back', () => {
    let t = Date.parse('2026-11-26T16:36:05.000Z');
    const { logger, lines } = logTo('json', () => t);
    for (let i = 0; i < 10; i++) logger.limited('info', 'acl.reject', 'refused', { i });
    t += 1000;
    logger.limited('info', 'acl.reject', 'refused', { i: 10 });
    const out = lines().map((l) => JSON.parse(l) as { msg: string; i?: number });
    expect(out.map((o) => o.i ?? o.msg)).toEqual([0, 1, 2, 'acl.reject: 7 similar lines suppressed', 10]);
  });

  it('text stays the default format', () => {
    const { logger, lines } = logTo('text', () => Date.parse('2026-11-26T16:36:05.123Z'));
    logger.info('hello', { a: 'b c' });
    expect(lines()).toEqual(['2026-11-26T16:36:05.123Z INFO hello a="b c"']);
  });
});
