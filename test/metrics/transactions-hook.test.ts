/**
 * Transaction metrics: the transaction layer registers itself as the observer's source, so
 * /metrics and `status` count live and created transactions — 0 while nothing is relayed
 * statefully, then what a stateful INVITE to a PBX that never answers leaves behind. The proxy
 * is `startProxy` in this process, with real sockets and its metrics listener on loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { startProxy, type RunningProxy } from '../../src/serve/start.js';
import { openStore } from '../../src/store/index.js';
import { UdpPeer, unique } from '../helpers/sip-peer.js';
import { fetchText, parseExposition, promtoolCheck, RUN_PROMTOOL, value } from './exposition.js';

let dir: string;
let proxy: RunningProxy;
let base: string;
let pbx: UdpPeer;
let caller: UdpPeer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-tx-hook-'));
  pbx = await UdpPeer.open();
  caller = await UdpPeer.open();
  const db = join(dir, 'sipctl.db');
  const store = await openStore(db);
  await store.address.add({ grp: 1, ipAddr: '127.0.0.1', mask: 32, port: 0 });
  await store.dispatcher.add({ setid: 1, destination: `sip:127.0.0.1:${pbx.port}` });
  await store.close();
  const config = applyConfig(defaultConfig(), {
    listen: ['udp:127.0.0.1:0'],
    db,
    control: join(dir, 'sipctl.sock'),
    metrics: { listen: '127.0.0.1:0' },
    log: { level: 'error' },
    mode: 'transaction',
  });
  proxy = await startProxy(config, { logger: new Logger({ level: 'error' }) });
  base = `http://${proxy.observability.proxy.metricsListen}`;
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([pbx?.close(), caller?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

it('counts live and created transactions, in /metrics (promtool-valid) and in status', async () => {
  const before = parseExposition((await fetchText(`${base}/metrics`)).text);
  expect(value(before, 'sipctl_transactions')).toBe(0);
  expect(value(before, 'sipctl_transactions_created_total')).toBe(0);
  expect(proxy.observability.status()).toMatchObject({ relay: 'transaction', transactions: { inUse: 0, created: 0, timedOut: 0 } });

  const port = Number(proxy.listeners[0]!.split(':').pop());
  const callId = unique('tx-');
  caller.send(
    [
      `INVITE sip:x@127.0.0.1:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=${unique('z9hG4bK')};rport`,
      `From: <sip:a@127.0.0.1>;tag=${unique('f')}`,
      'To: <sip:x@127.0.0.1>',
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:a@127.0.0.1:${caller.port}>`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    port,
  );
  await pbx.next((r) => r.msg.header('call-id') === callId);
  const res = await fetchText(`${base}/metrics`);
  const after = parseExposition(res.text);
  // One server transaction (the caller's INVITE) and one client transaction (the branch).
  expect(value(after, 'sipctl_transactions')).toBe(2);
  expect(value(after, 'sipctl_transactions_created_total')).toBe(2);
  expect(value(after, 'sipctl_transactions_timed_out_total')).toBe(0);
  expect(proxy.observability.status()).toMatchObject({ transactions: { inUse: 2, created: 2, timedOut: 0 } });
  if (RUN_PROMTOOL) expect(promtoolCheck(res.text)).toEqual({ code: 0, output: '' });
});
