/**
 * examples/01–08, each run in the real `sipctl serve --route examples/NN-*.ts` process and
 * checked on the wire with raw UDP peers: what the PBX receives, what the caller gets back.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { typeCheck } from '../../src/route/check.js';
import { responseTo, UdpPeer, type Received } from '../helpers/sip-peer.js';

const example = (name: string): string => join(REPO_ROOT, 'examples', name);
const EXAMPLES = [
  '01-stateless-x-proxied.ts',
  '02-caller-id.ts',
  '03-groups.ts',
  '04-register-local.ts',
  '05-prefix.ts',
  '06-transaction-state.ts',
  '07-failover.ts',
  '08-async-lookup.ts',
];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-examples-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, lines: string[]): string {
  const f = join(dir, name);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

/** The caller's final (non-1xx) response for a Call-ID. */
const finalFor = (callId: string) => (r: Received): boolean => byCallId(callId)(r) && r.msg.status >= 200;

describe('the examples type-check against sipctl\'s types', () => {
  it('all eight, in one program (what `sipctl route check` runs per file)', async () => {
    expect(await typeCheck(EXAMPLES.map(example))).toEqual([]);
  });

  it('`sipctl route check` runs one over the sample requests', async () => {
    const r = await runCli(['route', 'check', example('05-prefix.ts')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('types OK');
    expect(r.stdout).toMatch(/INVITE \(initial\): forward INVITE sip:alice@example.com to udp:192\.0\.2\.1:5060/);
  });
});

/** Wait (bounded) until the proxy has logged `text` (its log is written asynchronously). */
async function logged(lab: Lab, text: string, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  while (!lab.proxy.stderr().includes(text) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  return lab.proxy.stderr();
}

describe('01 stateless forward with X-Proxied on requests and replies', () => {
  let lab: Lab | undefined;
  let pbx: UdpPeer | undefined;
  afterEach(async () => {
    await lab?.close();
    await pbx?.close();
    delete process.env.SIPCTL_EXAMPLE_PBX;
  });

  it('the PBX gets X-Proxied, the caller gets the reply with X-Proxied, and no 100 Trying (stateless)', async () => {
    pbx = await UdpPeer.open();
    process.env.SIPCTL_EXAMPLE_PBX = `sip:127.0.0.1:${pbx.port}`;
    lab = await startLab({ args: ['--route', example('01-stateless-x-proxied.ts')] });
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await pbx.next(byCallId(callId));
    expect(got.msg.headerFields('x-proxied')).toEqual(['You betcha']);
    pbx.send(responseTo(got.msg, 200, 'OK'), lab.port);
    const back = await lab.caller.next(byCallId(callId));
    expect(back.msg.status).toBe(200);
    expect(back.msg.headerFields('x-proxied')).toEqual(['For the reply']);
    expect(await logged(lab, 'route loaded')).toContain('route loaded');
  });
});

describe('02 caller-ID rewrite on initial INVITEs', () => {
  let lab: Lab | undefined;
  afterEach(async () => lab?.close());

  it('the PBX sees From user "Nick Blog Example" with the caller display name and tag kept; the caller sees its own From', async () => {
    lab = await startLab({ args: ['--route', example('02-caller-id.ts')] });
    const { text, callId } = lab.request();
    const sentFrom = /^From: (.*)$/m.exec(text)![1]!.trim();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    expect(got.msg.from.uri.user).toBe('Nick Blog Example');
    expect(got.msg.from.displayName).toBe('Caller');
    expect(got.msg.from.tag).toBe(/tag=([^;\s]+)/.exec(sentFrom)![1]);
    got.pbx.send(responseTo(got.msg, 200, 'OK'), lab.port);
    const back = await lab.caller.next(byCallId(callId));
    // Stateless: the response goes back as the PBX wrote it, with the rewritten From.
    expect(back.msg.from.uri.user).toBe('Nick Blog Example');
    // A REGISTER is not rewritten.
    const reg = lab.request({ method: 'REGISTER', uri: `sip:127.0.0.1:${lab.port}` });
    lab.caller.send(reg.text, lab.port);
    const r = await lab.atPbx(byCallId(reg.callId));
    expect(r.msg.from.uri.user).toBe('caller');
  });
});

describe('03 groups 200 and 250 to their own sets, 401 for the rest', () => {
  let lab: Lab | undefined;
  let pbx3: UdpPeer | undefined;
  let caller250: UdpPeer | undefined;
  afterEach(async () => {
    await lab?.close();
    await pbx3?.close();
    await caller250?.close();
  });

  it('group 200 → set 1, group 250 → set 2, a source in no group → 401 from the route', async () => {
    pbx3 = await UdpPeer.open();
    caller250 = await UdpPeer.open('127.0.0.3');
    const cfg = config('03.yaml', ['acl:', '  checkRequests: false']);
    lab = await startLab({
      args: ['--route', example('03-groups.ts'), '--config', cfg],
      setup: [
        ['address', 'add', '200', '127.0.0.1', '32'],
        ['address', 'add', '250', '127.0.0.3', '32'],
        ['dispatcher', 'add', '2', `sip:127.0.0.1:${pbx3.port}`],
      ],
    });
    const a = lab.request();
    lab.caller.send(a.text, lab.port);
    const atSet1 = await lab.atPbx(byCallId(a.callId));
    expect([lab.pbx1, lab.pbx2]).toContain(atSet1.pbx);

    const b = lab.request({ from: caller250 });
    caller250.send(b.text, lab.port);
    const atSet2 = await pbx3.next(byCallId(b.callId));
    expect(atSet2.msg.method).toBe('INVITE');

    const c = lab.request({ from: lab.stranger });
    lab.stranger.send(c.text, lab.port);
    const refused = await lab.stranger.next(byCallId(c.callId));
    expect(refused.msg.status).toBe(401);
    expect(await lab.pbx1.nothing(byCallId(c.callId), 200)).toBe(true);
    expect(await lab.pbx2.nothing(byCallId(c.callId), 50)).toBe(true);
  });
});

describe('04 REGISTER answered locally, INVITE dispatched', () => {
  let lab: Lab | undefined;
  afterEach(async () => lab?.close());

  it('REGISTER → 200 with the Contact and its expiry, never at a PBX; INVITE → a PBX', async () => {
    lab = await startLab({ args: ['--route', example('04-register-local.ts')] });
    const reg = lab.request({ method: 'REGISTER', uri: `sip:127.0.0.1:${lab.port}`, extra: ['Expires: 600'] });
    lab.caller.send(reg.text, lab.port);
    const ok = await lab.caller.next(byCallId(reg.callId));
    expect(ok.msg.status).toBe(200);
    expect(ok.msg.header('contact')).toBe(`<sip:caller@127.0.0.1:${lab.caller.port}>;expires=600`);
    const inv = lab.request();
    lab.caller.send(inv.text, lab.port);
    const got = await lab.atPbx(byCallId(inv.callId));
    expect(got.msg.method).toBe('INVITE');
    expect(await lab.pbx1.nothing(byCallId(reg.callId), 100)).toBe(true);
    expect(await lab.pbx2.nothing(byCallId(reg.callId), 50)).toBe(true);
  });
});

describe('05 prefix routing', () => {
  let lab: Lab | undefined;
  let intl: UdpPeer | undefined;
  afterEach(async () => {
    await lab?.close();
    await intl?.close();
  });

  it('Request-URI users starting 00 go to set 2, the rest to set 1', async () => {
    intl = await UdpPeer.open();
    lab = await startLab({ args: ['--route', example('05-prefix.ts')], setup: [['dispatcher', 'add', '2', `sip:127.0.0.1:${intl.port}`]] });
    const a = lab.request({ uri: `sip:0044123456@127.0.0.1:${lab.port}` });
    lab.caller.send(a.text, lab.port);
    const international = await intl.next(byCallId(a.callId));
    expect(international.msg.uri.user).toBe('0044123456');
    const b = lab.request({ uri: `sip:2001@127.0.0.1:${lab.port}` });
    lab.caller.send(b.text, lab.port);
    const national = await lab.atPbx(byCallId(b.callId));
    expect(national.msg.uri.user).toBe('2001');
    expect(await intl.nothing(byCallId(b.callId), 100)).toBe(true);
  });
});

describe('06 per-transaction state (state_test_var)', () => {
  let lab: Lab | undefined;
  afterEach(async () => lab?.close());

  it('the INVITE\'s 200 carries X-State-Test-Var (set in the request route); the BYE\'s 200 does not', async () => {
    lab = await startLab({ args: ['--route', example('06-transaction-state.ts')] });
    const inv = lab.request();
    lab.caller.send(inv.text, lab.port);
    const trying = await lab.caller.next(byCallId(inv.callId));
    expect(trying.msg.status).toBe(100); // a transaction: 100 Trying at once
    const got = await lab.atPbx(byCallId(inv.callId));
    got.pbx.send(responseTo(got.msg, 200, 'OK', [`Contact: <sip:pbx@127.0.0.1:${got.pbx.port}>`], 'pbxtag'), lab.port);
    const ok = await lab.caller.next(finalFor(inv.callId));
    expect(ok.msg.status).toBe(200);
    expect(ok.msg.headerFields('x-state-test-var')).toEqual(['set by the INVITE']);

    // The BYE: in dialog, along the Record-Route, a transaction of its own.
    const rr = got.msg.header('record-route')!;
    const bye = lab.request({ method: 'BYE', callId: inv.callId, toTag: 'pbxtag', uri: `sip:pbx@127.0.0.1:${got.pbx.port}`, extra: [`Route: ${rr}`] });
    lab.caller.send(bye.text, lab.port);
    const byeAt = await got.pbx.next((r) => byCallId(inv.callId)(r) && r.msg.method === 'BYE');
    got.pbx.send(responseTo(byeAt.msg, 200, 'OK'), lab.port);
    const byeOk = await lab.caller.next((r) => finalFor(inv.callId)(r) && r.msg.cseq.method === 'BYE');
    expect(byeOk.msg.status).toBe(200);
    expect(byeOk.msg.header('x-state-test-var')).toBeUndefined();
  });
});

describe('07 failover in a failure hook', () => {
  let lab: Lab | undefined;
  let pbx3: UdpPeer | undefined;
  afterEach(async () => {
    await lab?.close();
    await pbx3?.close();
  });

  it('503 from the first destination → the next one answers 200', async () => {
    lab = await startLab({ args: ['--route', example('07-failover.ts')] });
    const inv = lab.request();
    lab.caller.send(inv.text, lab.port);
    const first = await lab.atPbx(byCallId(inv.callId));
    first.pbx.send(responseTo(first.msg, 503, 'Service Unavailable'), lab.port);
    const other = first.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    const second = await other.next((r) => byCallId(inv.callId)(r) && r.msg.method === 'INVITE');
    other.send(responseTo(second.msg, 200, 'OK'), lab.port);
    const ok = await lab.caller.next(finalFor(inv.callId));
    expect(ok.msg.status).toBe(200);
  });

  it('two destinations at most: after two 5xx the caller gets the best response and the third PBX nothing', async () => {
    pbx3 = await UdpPeer.open();
    lab = await startLab({ args: ['--route', example('07-failover.ts')], setup: [['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx3.port}`]] });
    const inv = lab.request();
    const peers = [lab.pbx1, lab.pbx2, pbx3];
    const isInvite = (r: Received): boolean => byCallId(inv.callId)(r) && r.msg.method === 'INVITE';
    const anyPbx = (): Promise<Received & { pbx: UdpPeer }> =>
      Promise.any(peers.map((p) => p.next(isInvite, 3000).then((r) => ({ ...r, pbx: p })))).finally(() => peers.forEach((p) => p.cancelWaits()));
    lab.caller.send(inv.text, lab.port);
    const a = await anyPbx();
    a.pbx.send(responseTo(a.msg, 500, 'Server Internal Error'), lab.port);
    const b = await anyPbx();
    expect(b.pbx).not.toBe(a.pbx);
    b.pbx.send(responseTo(b.msg, 502, 'Bad Gateway'), lab.port);
    const final = await lab.caller.next(finalFor(inv.callId));
    expect(final.msg.status).toBe(500); // §16.7 step 6: the lowest class, 5xx; the first of them
    const third = peers.find((p) => p !== a.pbx && p !== b.pbx)!;
    expect(await third.nothing(isInvite, 300)).toBe(true);
  });
});

describe('08 async lookup against a local HTTP service', () => {
  let lab: Lab | undefined;
  let intl: UdpPeer | undefined;
  let server: Server | undefined;
  const stalled: Array<() => void> = [];
  afterEach(async () => {
    for (const s of stalled.splice(0)) s();
    await lab?.close();
    await intl?.close();
    await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
    delete process.env.SIPCTL_EXAMPLE_NP;
  });

  it('100 Trying at once, a retransmission absorbed, the answer rewrites the R-URI and picks the set; a stalled lookup falls back after route.asyncTimeoutMs', async () => {
    let lookups = 0;
    server = createServer((req, res) => {
      lookups++;
      const number = new URL(req.url!, 'http://x').searchParams.get('number');
      if (number === '5551234') {
        // Answer late: after the caller's retransmission has reached the proxy.
        setTimeout(() => res.end(JSON.stringify({ rn: 'D042', set: 2 })), 300);
        return;
      }
      stalled.push(() => res.end('{}')); // never answers in time
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    process.env.SIPCTL_EXAMPLE_NP = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    intl = await UdpPeer.open();
    const cfg = config('08.yaml', ['route:', '  asyncTimeoutMs: 1000']);
    lab = await startLab({ args: ['--route', example('08-async-lookup.ts'), '--config', cfg], setup: [['dispatcher', 'add', '2', `sip:127.0.0.1:${intl.port}`]] });

    const a = lab.request({ uri: `sip:5551234@127.0.0.1:${lab.port}` });
    lab.caller.send(a.text, lab.port);
    const trying = await lab.caller.next(byCallId(a.callId), 1000);
    expect(trying.msg.status).toBe(100);
    lab.caller.send(a.text, lab.port); // retransmission while the route waits
    const got = await intl.next(byCallId(a.callId), 3000);
    expect(got.msg.uri.user).toBe('D0425551234');
    expect(await intl.nothing(byCallId(a.callId), 300)).toBe(true); // the retransmission was absorbed
    expect(lookups).toBe(1);
    intl.send(responseTo(got.msg, 200, 'OK'), lab.port);
    expect((await lab.caller.next(finalFor(a.callId))).msg.status).toBe(200);

    const b = lab.request({ uri: `sip:5559999@127.0.0.1:${lab.port}` });
    const t0 = Date.now();
    lab.caller.send(b.text, lab.port);
    expect((await lab.caller.next(byCallId(b.callId), 1000)).msg.status).toBe(100);
    const fallback = await lab.atPbx(byCallId(b.callId), 4000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900); // not before route.asyncTimeoutMs
    expect(fallback.msg.uri.user).toBe('5559999'); // set 1, number unchanged
    expect(await logged(lab, 'did not decide within route.asyncTimeoutMs')).toContain('did not decide within route.asyncTimeoutMs');
  });
});
