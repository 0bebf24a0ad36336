/**
 * Per-transaction state (Kamailio's AVPs), the seed walk-through's `state_test_var`: set in
 * the request route of an INVITE, it is there in the reply route and the failure route of
 * that transaction, and gone for the dialog's BYE, which is a transaction of its own.
 *
 * The proxy is `startProxy` in this process in transaction mode with a route of the test's
 * own (the default route plus the state), real UDP sockets on loopback; two raw UDP PBXs:
 * the first answers 500 (so the failure route runs and fails over), the second 200.
 * What the route saw goes onto the wire as an X-State-Test header on each relayed response.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { defineRoute } from '../../src/route/api.js';
import { createDefaultRoute } from '../../src/route/default.js';
import { startProxy, type RunningProxy } from '../../src/serve/start.js';
import { openStore } from '../../src/store/index.js';
import { responseTo, UdpPeer, unique } from '../helpers/sip-peer.js';

let dir: string;
let proxy: RunningProxy;
let port: number;
let pbxA: UdpPeer;
let pbxB: UdpPeer;
let caller: UdpPeer;
/** What the failure route saw of the state, per Call-ID. */
const seenInFailure = new Map<string, unknown>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-tx-state-'));
  [pbxA, pbxB, caller] = await Promise.all([UdpPeer.open(), UdpPeer.open(), UdpPeer.open()]);
  const db = join(dir, 'sipctl.db');
  const store = await openStore(db);
  await store.address.add({ grp: 1, ipAddr: '127.0.0.1', mask: 32, port: 0 });
  // Priority order: A first, B on failover.
  await store.dispatcher.add({ setid: 1, destination: `sip:127.0.0.1:${pbxA.port}`, priority: 10 });
  await store.dispatcher.add({ setid: 1, destination: `sip:127.0.0.1:${pbxB.port}`, priority: 5 });
  await store.close();
  const config = applyConfig(defaultConfig(), {
    listen: ['udp:127.0.0.1:0'],
    db,
    control: join(dir, 'sipctl.sock'),
    log: { level: 'error' },
    mode: 'transaction',
    dispatcher: { rules: [{ set: 1, algorithm: 'priority' }] },
  });
  proxy = await startProxy(config, {
    logger: new Logger({ level: 'error' }),
    route: ({ config: c, logger }) => {
      const base = createDefaultRoute({ config: c, logger });
      return defineRoute({
        request(ctx) {
          // Kamailio: $avp(state_test_var) = "..." in request_route, for initial INVITEs only.
          if (ctx.msg.method === 'INVITE' && !ctx.inDialog) ctx.tx.set('state_test_var', `set-for-${ctx.msg.header('call-id')}`);
          return base.request(ctx);
        },
        reply(ctx) {
          const v = ctx.tx?.get('state_test_var');
          ctx.appendHeader('X-State-Test', v === undefined ? 'absent' : String(v));
        },
        failure(ctx) {
          seenInFailure.set(String(ctx.msg.header('call-id')), ctx.tx.get('state_test_var'));
          return base.failure!(ctx);
        },
      });
    },
  });
  port = Number(proxy.listeners[0]!.split(':').pop());
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([pbxA?.close(), pbxB?.close(), caller?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

it('state set for an INVITE is seen by its reply and failure routes, and not by the BYE', async () => {
  const callId = unique('state-');
  const fromTag = unique('f');
  const invite = [
    `INVITE sip:bob@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=${unique('z9hG4bK')};rport`,
    `From: <sip:alice@127.0.0.1>;tag=${fromTag}`,
    'To: <sip:bob@127.0.0.1>',
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:alice@127.0.0.1:${caller.port}>`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  caller.send(invite, port);

  // A fails the branch: the failure route runs (and sees the state), then fails over to B.
  const atA = await pbxA.next((r) => r.msg.method === 'INVITE' && r.msg.header('call-id') === callId);
  pbxA.send(responseTo(atA.msg, 500, 'Server Internal Error', [], 'a1'), atA.port);
  await pbxA.next((r) => r.msg.method === 'ACK' && r.msg.header('call-id') === callId); // hop-by-hop ACK (§17.1.1.3)
  const atB = await pbxB.next((r) => r.msg.method === 'INVITE' && r.msg.header('call-id') === callId);
  expect(seenInFailure.get(callId)).toBe(`set-for-${callId}`);

  pbxB.send(responseTo(atB.msg, 180, 'Ringing', [`Contact: <sip:bob@127.0.0.1:${pbxB.port}>`], 'b1'), atB.port);
  pbxB.send(responseTo(atB.msg, 200, 'OK', [`Contact: <sip:bob@127.0.0.1:${pbxB.port}>`], 'b1'), atB.port);
  const ringing = await caller.next((r) => r.msg.status === 180 && r.msg.header('call-id') === callId);
  const ok = await caller.next((r) => r.msg.status === 200 && r.msg.header('call-id') === callId);
  // The reply route of the INVITE's transaction sees the state, for the provisional and the 2xx.
  expect(ringing.msg.header('x-state-test')).toBe(`set-for-${callId}`);
  expect(ok.msg.header('x-state-test')).toBe(`set-for-${callId}`);
  // The 500 from A never reaches the caller: failover answered it.
  expect(await caller.nothing((r) => r.msg.status === 500 && r.msg.header('call-id') === callId, 200)).toBe(true);

  // The dialog's BYE, along the route set the 200 recorded: a new transaction, no state.
  const routes = ok.msg.headerFields('record-route').slice().reverse(); // §12.1.2: the UAC reverses it
  expect(routes.length).toBeGreaterThan(0);
  const bye = [
    `BYE sip:bob@127.0.0.1:${pbxB.port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=${unique('z9hG4bK')};rport`,
    ...routes.map((r) => `Route: ${r}`),
    `From: <sip:alice@127.0.0.1>;tag=${fromTag}`,
    'To: <sip:bob@127.0.0.1>;tag=b1',
    `Call-ID: ${callId}`,
    'CSeq: 2 BYE',
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  caller.send(bye, port);
  const byeAtB = await pbxB.next((r) => r.msg.method === 'BYE' && r.msg.header('call-id') === callId);
  pbxB.send(responseTo(byeAtB.msg, 200, 'OK'), byeAtB.port);
  const byeOk = await caller.next((r) => r.msg.status === 200 && r.msg.header('cseq') === '2 BYE');
  expect(byeOk.msg.header('x-state-test')).toBe('absent');
});
