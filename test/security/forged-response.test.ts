/**
 * Finding 2 of the hardening issue, end to end over TCP: a response goes into an inbound TCP
 * connection only when our Via names that connection with a real MAC. An admitted peer (a
 * PBX) that saw our Via in one caller's request tries to push a forged response into another
 * caller's TCP connection: by naming that connection's id with its own seal, with random
 * seals, with malformed seals, and with no connection id at all (the old address fallback).
 * None of them reaches the victim; the genuine response does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo, TcpClient, unique, type Received } from '../helpers/sip-peer.js';
import { randomBytes } from 'node:crypto';

let lab: Lab;
let victim: TcpClient;
let other: TcpClient;

beforeAll(async () => {
  lab = await startLab({
    tcp: true,
    setup: [
      ['address', 'add', '1', '127.0.0.3', '32'],
      ['address', 'add', '1', '127.0.0.5', '32'],
    ],
  });
  victim = await TcpClient.open(lab.tcpPort!, '127.0.0.1', '127.0.0.3');
  other = await TcpClient.open(lab.tcpPort!, '127.0.0.1', '127.0.0.5');
});
afterAll(async () => {
  victim?.close();
  other?.close();
  await lab?.close();
});

function invite(from: TcpClient, address: string): { text: string; callId: string } {
  const callId = unique('tcp-');
  const text = [
    `INVITE sip:service@127.0.0.1:${lab.tcpPort};transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP ${address}:${from.localPort};branch=${unique('z9hG4bK')};rport`,
    `From: <sip:caller@${address}>;tag=${unique('f')}`,
    `To: <sip:service@127.0.0.1>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:caller@${address}:${from.localPort};transport=tcp>`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return { text, callId };
}

/** The connection parameter of our Via: `sipctl-cid=ID.SEAL`. */
function cid(r: Received): { id: string; seal: string } {
  const m = /;sipctl-cid=([0-9]+)\.([^;,\s]*)/.exec(r.msg.headerFields('via')[0]!)!;
  return { id: m[1]!, seal: m[2]! };
}

describe('a forged response cannot be written into another caller’s TCP connection (finding 2)', () => {
  it('tries seals of its own, random, malformed and none; only the genuine response arrives', async () => {
    const a = invite(victim, '127.0.0.3');
    victim.send(a.text);
    const atPbxA = await lab.atPbx(byCallId(a.callId));
    const b = invite(other, '127.0.0.5');
    other.send(b.text);
    const atPbxB = await lab.atPbx(byCallId(b.callId));
    const victimCid = cid(atPbxA);
    const ownCid = cid(atPbxB);
    expect(victimCid.seal.length).toBeGreaterThanOrEqual(16); // at least 96 bits of base64url

    const genuine = responseTo(atPbxA.msg, 180, 'Ringing');
    const forge = (param: string | undefined): string => {
      const replaced = param === undefined ? genuine.replace(/;sipctl-cid=[^;,\r]*/, '') : genuine.replace(/;sipctl-cid=[^;,\r]*/, `;sipctl-cid=${param}`);
      return replaced.replace('SIP/2.0 180 Ringing', 'SIP/2.0 486 Forged');
    };
    const attempts = [
      forge(`${victimCid.id}.${ownCid.seal}`), // the attacker's own (valid) seal, on the victim's id
      forge(`${ownCid.id}.${ownCid.seal}`), // a valid id and seal, but for another address
      forge(`${victimCid.id}.`),
      forge(`${victimCid.id}.${victimCid.seal.slice(0, 8)}`),
      forge(`${victimCid.id}.${victimCid.seal}x`),
      forge(`${victimCid.id}`),
      forge(undefined), // no connection id: the address fallback
    ];
    for (let i = 0; i < 2000; i++) attempts.push(forge(`${victimCid.id}.${randomBytes(12).toString('base64url')}`));
    for (const forged of attempts) atPbxA.pbx.send(forged, lab.port);
    expect(await victim.nothing((r) => r.msg.status === 486, 1000)).toBe(true);

    // The genuine response, with the seal the proxy wrote, reaches the victim.
    atPbxA.pbx.send(genuine, lab.port);
    expect((await victim.next(byCallId(a.callId))).msg.status).toBe(180);
  });
});
