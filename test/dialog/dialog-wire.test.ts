/**
 * Dialog tracking on the wire, with hand-written messages (issue 12): with dialogs on, every
 * INVITE is record-routed even with recordRoute off; a BYE for a dialog nobody knows is still
 * relayed; dialog.max answers 503 to a new call and lets the live ones finish; rows queued
 * when the proxy is stopped gracefully are written before it exits.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { startProxyProcess } from '../helpers/proxy.js';
import { responseTo, UdpPeer, unique } from '../helpers/sip-peer.js';
import { withTestStore } from '../helpers/stores.js';

let dir: string;
let lab: Lab | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-dlgwire-'));
});
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withConfig(yaml: string): Promise<Lab> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  lab = await startLab({ args: ['--config', file] });
  return lab;
}

describe('dialogs on the wire', () => {
  it('record-routes every INVITE when dialogs are on, even with recordRoute: false', async () => {
    const l = await withConfig('recordRoute: false\ndialog:\n  enabled: true\n');
    const { text, callId } = l.request();
    l.caller.send(text, l.port);
    const got = await l.atPbx(byCallId(callId));
    expect(got.msg.header('record-route')).toMatch(new RegExp(`^<sip:127\\.0\\.0\\.1:${l.port};transport=udp;lr>$`));
  });

  it('without dialogs (the default) recordRoute: false adds none: nothing changes for current users', async () => {
    const l = await withConfig('recordRoute: false\n');
    const { text, callId } = l.request();
    l.caller.send(text, l.port);
    const got = await l.atPbx(byCallId(callId));
    expect(got.msg.header('record-route')).toBeUndefined();
    await expect(controlRequest(l.proxy.control, 'dialog.list', {})).rejects.toThrow(/dialog tracking is off/);
  });

  it('relays a BYE for a dialog it does not know', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n');
    const pbx = l.pbx1;
    const { text, callId } = l.request({
      method: 'BYE',
      uri: `sip:pbx@127.0.0.1:${pbx.port}`,
      toTag: 'unknown',
      extra: [`Route: <sip:127.0.0.1:${l.port};transport=udp;lr>`],
    });
    l.caller.send(text, l.port);
    const got = await pbx.next(byCallId(callId));
    expect(got.msg.method).toBe('BYE');
  });

  it('dialog.max: the call beyond it gets 503 with Retry-After; the live ones are untouched', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n  max: 2\n');
    const live: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { text, callId } = l.request();
      l.caller.send(text, l.port);
      const got = await l.atPbx(byCallId(callId));
      got.pbx.send(responseTo(got.msg, 200, 'OK'), l.port);
      await l.caller.next((r) => byCallId(callId)(r) && r.msg.status === 200);
      live.push(callId);
    }
    const third = l.request();
    l.caller.send(third.text, l.port);
    const refused = await l.caller.next((r) => byCallId(third.callId)(r) && r.msg.status >= 300);
    expect(refused.msg.status).toBe(503);
    expect(refused.msg.header('retry-after')).toBe('5');
    const list = (await controlRequest(l.proxy.control, 'dialog.list', {})) as { total: number };
    expect(list.total).toBe(2);
  });

  it('rows still queued at SIGTERM are written before the proxy exits (cdr.flushMs 60 s)', async () => {
    const file = join(dir, 'late.yaml');
    writeFileSync(file, 'dialog:\n  enabled: true\ncdr:\n  flushMs: 60000\n');
    const db = join(dir, 'late.db');
    const caller = await UdpPeer.open();
    const pbx = await UdpPeer.open();
    const proxy = await startProxyProcess({
      db,
      args: ['--listen', 'udp:127.0.0.1:0', '--config', file],
      setup: [['address', 'add', '1', '127.0.0.1', '32'], ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx.port}`]],
    });
    try {
      const port = proxy.ports.udp!;
      const callId = unique('late-');
      caller.send(
        [`INVITE sip:svc@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=${unique('z9hG4bK')}`, `From: <sip:a@127.0.0.1>;tag=f1`,
          `To: <sip:svc@127.0.0.1>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE', 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n'),
        port,
      );
      const got = await pbx.next(byCallId(callId));
      pbx.send(responseTo(got.msg, 486, 'Busy Here'), port);
      await caller.next((r) => byCallId(callId)(r) && r.msg.status === 486);
      expect(await proxy.stop()).toBe(0);
      const rows = await withTestStore(db, (s) => s.cdr.list(), { readonly: true });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ call_id: callId, code: 486, ended_by: 'failed' });
    } finally {
      await proxy.stop();
      await Promise.all([caller.close(), pbx.close()]);
    }
  });
});
