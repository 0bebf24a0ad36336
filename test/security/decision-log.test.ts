/**
 * Finding 13 of the hardening issue: at `--log-level debug` every decision about a message —
 * a reply with its code and reason, a drop with its reason, a forward with its target — is
 * logged with the method, Call-ID and source. The cases the issue names: a 482, a dropped
 * ACK, a dropped response, a 503 for a name that does not resolve, a 421.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo, unique } from '../helpers/sip-peer.js';

let lab: Lab;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-log-'));
  writeFileSync(join(dir, 'debug.yaml'), 'log:\n  level: debug\ndispatcher:\n  path: true\n');
  lab = await startLab({ args: ['--config', join(dir, 'debug.yaml')] });
});
afterAll(async () => {
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The proxy's log lines that mention this Call-ID (waits for the asynchronous writer). */
async function linesFor(callId: string, pattern: RegExp): Promise<string[]> {
  for (let i = 0; i < 40; i++) {
    const lines = lab.proxy.stderr().split('\n').filter((l) => l.includes(callId));
    if (lines.some((l) => pattern.test(l))) return lines;
    await new Promise((r) => setTimeout(r, 50));
  }
  return lab.proxy.stderr().split('\n').filter((l) => l.includes(callId));
}

describe('--log-level debug explains every decision (finding 13)', () => {
  it('a forward, with its target', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    const lines = await linesFor(callId, /forwarded a request/);
    expect(lines.join('\n')).toMatch(new RegExp(`DEBUG forwarded a request method=INVITE callId=${callId} source=udp:127\\.0\\.0\\.1:${lab.caller.port} to=udp:127\\.0\\.0\\.1:${got.pbx.port}`));
  });

  it('a 482 Loop Detected', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    got.pbx.send(got.raw, lab.port);
    const lines = await linesFor(callId, /status=482/);
    expect(lines.join('\n')).toMatch(/DEBUG answered a request status=482 reason="Loop Detected" method=INVITE/);
  });

  it('a dropped ACK', async () => {
    const { text, callId } = lab.request({ method: 'ACK', toTag: 'nobody' });
    lab.caller.send(text, lab.port);
    const lines = await linesFor(callId, /dropped a request/);
    expect(lines.join('\n')).toMatch(/DEBUG dropped a request why="the route dropped it: ACK with no route set and no INVITE seen" method=ACK/);
  });

  it('a dropped response', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    // A response whose top Via is not ours.
    const foreign = responseTo(got.msg, 200, 'OK').replace(/Via: [^\r]*\r\n/, '');
    got.pbx.send(foreign, lab.port);
    const lines = await linesFor(callId, /dropped a response/);
    expect(lines.join('\n')).toMatch(/DEBUG dropped a response why="its top Via is not ours" status=200/);
  });

  it('a 503 for a next hop whose name does not resolve', async () => {
    const { text, callId } = lab.request({ method: 'BYE', toTag: 't1', extra: ['Route: <sip:nowhere.invalid;lr>'] });
    lab.caller.send(text, lab.port);
    const r = await lab.caller.next(byCallId(callId), 10_000);
    expect(r.msg.status).toBe(503);
    const lines = await linesFor(callId, /status=503/);
    expect(lines.join('\n')).toMatch(/INFO cannot resolve the next hop; answered 503 host=nowhere\.invalid method=BYE/);
    expect(lines.join('\n')).toMatch(/DEBUG answered a request status=503 reason="Service Unavailable" method=BYE/);
  });

  it('a 421 Extension Required', async () => {
    const callId = unique('reg-');
    const { text } = lab.request({ method: 'REGISTER', callId, uri: `sip:127.0.0.1:${lab.port}` });
    lab.caller.send(text, lab.port);
    expect((await lab.caller.next(byCallId(callId))).msg.status).toBe(421);
    const lines = await linesFor(callId, /status=421/);
    expect(lines.join('\n')).toMatch(new RegExp(`DEBUG answered a request status=421 reason="Extension Required" method=REGISTER callId=${callId} source=udp:127\\.0\\.0\\.1:${lab.caller.port}`));
  });
});
