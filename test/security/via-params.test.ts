/**
 * Findings 5 and 6 of the hardening issue, on the wire:
 * - received and rport are what the proxy observed, whatever the sender wrote (RFC 3261
 *   §18.2.1, RFC 3581 §4): a forged `received` cannot steer the responses;
 * - a local reply to a source that is not admitted goes to the packet's source address and
 *   port only, never to the Via's maddr or sent-by port (no reflection at a third party).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo, UdpPeer } from '../helpers/sip-peer.js';

let lab: Lab;
let victim: UdpPeer;
let victim2: UdpPeer;

beforeAll(async () => {
  lab = await startLab();
  victim = await UdpPeer.open();
  victim2 = await UdpPeer.open('127.0.0.2');
});

afterAll(async () => {
  await lab?.close();
  await Promise.all([victim?.close(), victim2?.close()]);
});

describe('received and rport are overwritten with what the proxy saw (finding 5)', () => {
  it('replaces a forged received and rport value, and the response goes back to the real sender', async () => {
    const { text, callId } = lab.request({ viaParams: `;rport=${victim.port};received=192.0.2.66` });
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    const callerVia = got.msg.vias[1]!;
    expect(callerVia.received).toBe('127.0.0.1');
    expect(callerVia.rport).toBe(lab.caller.port);
    expect(got.raw.toString('latin1')).not.toContain('192.0.2.66');
    got.pbx.send(responseTo(got.msg, 200, 'OK'), lab.port);
    expect((await lab.caller.next(byCallId(callId))).msg.status).toBe(200);
    expect(await victim.nothing(byCallId(callId), 300)).toBe(true);
  });

  it('replaces a forged received when there is no rport', async () => {
    const { text, callId } = lab.request({ viaParams: ';received=127.0.0.2' });
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    expect(got.msg.vias[1]!.received).toBe('127.0.0.1');
  });
});

describe('a reply to a source that is not admitted goes to the packet source only (finding 6)', () => {
  it('ignores maddr', async () => {
    const { text, callId } = lab.request({
      from: lab.stranger,
      sentBy: `127.0.0.1:${victim.port}`,
      viaParams: ';maddr=127.0.0.1',
    });
    lab.stranger.send(text, lab.port);
    const r = await lab.stranger.next(byCallId(callId));
    expect(r.msg.status).toBe(401);
    expect(await victim.nothing(byCallId(callId), 300)).toBe(true);
  });

  it('ignores the sent-by port when there is no rport', async () => {
    const { text, callId } = lab.request({ from: lab.stranger, sentBy: `127.0.0.2:${victim2.port}` });
    lab.stranger.send(text, lab.port);
    expect((await lab.stranger.next(byCallId(callId))).msg.status).toBe(401);
    expect(await victim2.nothing(byCallId(callId), 300)).toBe(true);
  });

  it('still honours the sent-by port for an admitted sender (RFC 3261 §18.2.2)', async () => {
    // The caller writes another of its own ports into the Via, without rport: the reply goes there.
    const { text, callId } = lab.request({ method: 'OPTIONS', uri: `sip:127.0.0.1:${lab.port}`, sentBy: `127.0.0.1:${victim.port}` });
    lab.caller.send(text, lab.port);
    expect((await victim.next(byCallId(callId))).msg.status).toBe(200);
  });
});
