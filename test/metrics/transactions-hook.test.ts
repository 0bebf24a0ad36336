/**
 * The hook the transaction layer will use: until something registers a transaction source the
 * proxy reports itself stateless (no sipctl_transactions_* series, `transactions: null`); once
 * one is registered its counters are in /metrics and in `status`. The proxy is `startProxy` in
 * this process (so the test can register a source), with its metrics listener on loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { startProxy, type RunningProxy } from '../../src/serve/start.js';
import { fetchText, parseExposition, promtoolCheck, RUN_PROMTOOL, value } from './exposition.js';

let dir: string;
let proxy: RunningProxy;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-tx-hook-'));
  const config = applyConfig(defaultConfig(), {
    listen: ['udp:127.0.0.1:0'],
    db: join(dir, 'sipctl.db'),
    control: join(dir, 'sipctl.sock'),
    metrics: { listen: '127.0.0.1:0' },
    log: { level: 'error' },
  });
  proxy = await startProxy(config, { logger: new Logger({ level: 'error' }) });
  base = `http://${proxy.observability.proxy.metricsListen}`;
});

afterAll(async () => {
  await proxy?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('has no transaction series until a transaction source registers, then reports it', async () => {
  const before = parseExposition((await fetchText(`${base}/metrics`)).text);
  expect([...before.keys()].filter((k) => k.startsWith('sipctl_transactions'))).toEqual([]);
  expect(proxy.observability.status().transactions).toBeNull();
  // With no dispatcher rows, set 1 (the default rule's) has no destination: not ready.
  const ready = await fetchText(`${base}/readyz`);
  expect(ready.status).toBe(503);
  expect(ready.text).toContain('FAIL set 1: no such set loaded');

  let created = 10;
  proxy.observability.setTransactionSource(() => ({ inUse: 3, created, timedOut: 1 }));
  created = 12;
  const res = await fetchText(`${base}/metrics`);
  const after = parseExposition(res.text);
  expect(value(after, 'sipctl_transactions')).toBe(3);
  expect(value(after, 'sipctl_transactions_created_total')).toBe(12);
  expect(value(after, 'sipctl_transactions_timed_out_total')).toBe(1);
  expect(proxy.observability.status()).toMatchObject({ stateful: true, transactions: { inUse: 3, created: 12, timedOut: 1 } });
  if (RUN_PROMTOOL) expect(promtoolCheck(res.text)).toEqual({ code: 0, output: '' });
});
