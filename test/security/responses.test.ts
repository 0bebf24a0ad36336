/**
 * Finding 2 of the hardening issue, over UDP: a response is taken only from a source that is
 * admitted (an admitting address-table group or one of our next hops; acl.checkResponses,
 * default on). A stranger that copies our Via into a forged response cannot make the proxy
 * relay it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo } from '../helpers/sip-peer.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startLab();
});
afterAll(async () => {
  await lab?.close();
});

describe('responses from sources that are not admitted (finding 2)', () => {
  it('are dropped, while the PBX’s own response is relayed', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    // The stranger forges a final response with exactly the Vias the PBX received.
    lab.stranger.send(responseTo(got.msg, 486, 'Busy Here (forged)'), lab.port);
    expect(await lab.caller.nothing(byCallId(callId), 300)).toBe(true);
    got.pbx.send(responseTo(got.msg, 180, 'Ringing'), lab.port);
    expect((await lab.caller.next(byCallId(callId))).msg.status).toBe(180);
  });
});
