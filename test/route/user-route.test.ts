/**
 * User routes in the real `sipctl serve --route FILE` process: loading from outside the
 * package (a temp dir: `import ... from 'sipctl'` still resolves), safety (a throw is 500 and
 * a log line with the Call-ID and the stack; a slow route is logged with its duration; the
 * context has no way to the core; the core's headers cannot be edited; a Promise without a
 * transaction is refused), replies with headers and a body, `sipctl route reload` (a new
 * version swapped in; a broken one refused and the old kept; a transaction finishes with the
 * hooks it started with), destination events, and `sipctl route init / check`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { startProxyProcess } from '../helpers/proxy.js';
import { responseTo, type Received } from '../helpers/sip-peer.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-user-route-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

async function logged(lab: Lab, text: string | RegExp, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  const has = (): boolean => (typeof text === 'string' ? lab.proxy.stderr().includes(text) : text.test(lab.proxy.stderr()));
  while (!has() && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  return lab.proxy.stderr();
}

const finalFor = (callId: string) => (r: Received): boolean => byCallId(callId)(r) && r.msg.status >= 200;

const SAFETY_ROUTE = `import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    const u = ctx.msg.uri.user;
    if (u === 'throw') {
      throw new Error('boom from the route');
    }
    if (u === 'slow') {
      const end = Date.now() + 150;
      while (Date.now() < end) {}
      return ctx.reply(200, 'Slow');
    }
    if (u === 'core') {
      const c = ctx as unknown as Record<string, unknown>;
      return ctx.reply(200, 'Core', [\`X-Core: \${typeof c.core}\`, \`X-Transport: \${typeof c.transport}\`, \`X-Own: \${Object.getOwnPropertyNames(ctx).filter((k) => /core|transport|socket/i.test(k)).join(',') || 'none'}\`]);
    }
    if (u === 'callid') {
      ctx.msg.setHeader('Call-ID', 'someone-elses-call');
      return ctx.relay();
    }
    if (u === 'via') {
      ctx.msg.removeHeader('Via');
      return ctx.relay();
    }
    if (u === 'promise') return Promise.resolve(ctx.reply(200, 'Async'));
    if (u === 'body') return ctx.reply(200, 'OK', { headers: ['X-A: 1'], body: 'hello there', contentType: 'text/plain' });
    if (u === 'inject') return ctx.reply(200, 'OK', ['X-A: 1\\r\\nVia: SIP/2.0/UDP 10.0.0.1']);
    return ctx.reply(200, 'Fine');
  },
});
`;

describe('safety: a route from a temp dir, in a real proxy', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ args: ['--route', file('safety.ts', SAFETY_ROUTE)] });
  });
  afterAll(async () => lab?.close());

  async function ask(user: string): Promise<Received> {
    const { text, callId } = lab.request({ uri: `sip:${user}@127.0.0.1:${lab.port}` });
    lab.caller.send(text, lab.port);
    return lab.caller.next(byCallId(callId));
  }

  it('a route that throws: 500, one log line with the Call-ID and the stack (file:line of the .ts), and the proxy goes on', async () => {
    const { text, callId } = lab.request({ uri: `sip:throw@127.0.0.1:${lab.port}` });
    lab.caller.send(text, lab.port);
    const r = await lab.caller.next(byCallId(callId));
    expect(r.msg.status).toBe(500);
    const log = await logged(lab, 'boom from the route');
    const line = log.split('\n').find((l) => l.includes('the request route threw'))!;
    expect(line).toContain(callId);
    expect(line).toContain('boom from the route');
    expect(line).toMatch(/safety\.ts:7:\d+/);
    expect((await ask('fine')).msg.status).toBe(200);
  });

  it('a route that holds the event loop past route.slowMs is logged with its duration', async () => {
    expect((await ask('slow')).msg.reason).toBe('Slow');
    const log = await logged(lab, 'longer than route.slowMs');
    const line = log.split('\n').find((l) => l.includes('longer than route.slowMs'))!;
    const ms = Number(/ms=([0-9.]+)/.exec(line)![1]);
    expect(ms).toBeGreaterThanOrEqual(100); // the route spun 150 ms; route.slowMs is 50
  });

  it('the context has no core, transport or socket to reach', async () => {
    const r = await ask('core');
    expect(r.msg.header('x-core')).toBe('undefined');
    expect(r.msg.header('x-transport')).toBe('undefined');
    expect(r.msg.header('x-own')).toBe('none');
  });

  it('the core\'s headers cannot be edited: Call-ID and Via edits throw (500), nothing is forwarded', async () => {
    expect((await ask('callid')).msg.status).toBe(500);
    expect((await ask('via')).msg.status).toBe(500);
    // The log is written asynchronously: wait for the later line, then both are there.
    expect(await logged(lab, "the via header is the proxy core's")).toContain("the call-id header is the proxy core's");
    expect(await lab.pbx1.nothing(() => true, 100)).toBe(true);
    expect(await lab.pbx2.nothing(() => true, 50)).toBe(true);
  });

  it('a Promise in stateless mode is refused: 500 and a log line saying why', async () => {
    expect((await ask('promise')).msg.status).toBe(500);
    expect(await logged(lab, 'returned a Promise without a transaction')).toContain('mode: transaction');
  });

  it('a reply with headers and a body; a header line with CR LF is refused', async () => {
    const r = await ask('body');
    expect(r.msg.status).toBe(200);
    expect(r.msg.header('x-a')).toBe('1');
    expect(r.msg.header('content-type')).toBe('text/plain');
    expect(r.msg.body.toString()).toBe('hello there');
    const bad = await ask('inject');
    expect(bad.msg.status).toBe(500);
    expect(bad.msg.headerFields('via')).toHaveLength(1);
  });
});

const versioned = (v: string): string => `import { defineRoute } from 'sipctl';
export default defineRoute({
  request(ctx) {
    ctx.stateful = true;
    ctx.appendHeader('X-Version', '${v}');
    return ctx.dispatch(1, 'round-robin');
  },
  reply(ctx) {
    ctx.appendHeader('X-Reply-Version', '${v}');
  },
});
`;

describe('sipctl route reload (a .mjs route, imported as it is)', () => {
  it('swaps in the new version; a transaction started before finishes with its old hooks; a broken file is refused and the old version kept', async () => {
    const f = file('versioned.mjs', versioned('1'));
    const lab = await startLab({ args: ['--route', f] });
    try {
      const a = lab.request();
      lab.caller.send(a.text, lab.port);
      const atA = await lab.atPbx((r) => byCallId(a.callId)(r) && r.msg.method === 'INVITE');
      expect(atA.msg.header('x-version')).toBe('1');

      writeFileSync(f, versioned('2'));
      const ok = await lab.proxy.cli(['route', 'reload']);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/version 2/);

      const b = lab.request();
      lab.caller.send(b.text, lab.port);
      const atB = await lab.atPbx((r) => byCallId(b.callId)(r) && r.msg.method === 'INVITE');
      expect(atB.msg.header('x-version')).toBe('2');

      // A's transaction began under version 1: its reply hook is version 1's.
      atA.pbx.send(responseTo(atA.msg, 200, 'OK'), lab.port);
      expect((await lab.caller.next(finalFor(a.callId))).msg.header('x-reply-version')).toBe('1');
      atB.pbx.send(responseTo(atB.msg, 200, 'OK'), lab.port);
      expect((await lab.caller.next(finalFor(b.callId))).msg.header('x-reply-version')).toBe('2');

      writeFileSync(f, 'export default {{ broken');
      const bad = await lab.proxy.cli(['route', 'reload']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/SyntaxError/);
      expect(bad.stderr).toContain('the proxy keeps the route it had, version 2');
      const c = lab.request();
      lab.caller.send(c.text, lab.port);
      expect((await lab.atPbx((r) => byCallId(c.callId)(r) && r.msg.method === 'INVITE')).msg.header('x-version')).toBe('2');
    } finally {
      await lab.close();
    }
  });

  it('a .ts route reloads too, and a proxy on the default route says there is nothing to reload', async () => {
    const f = file('v.ts', versioned('1'));
    const lab = await startLab({ args: ['--route', f] });
    try {
      writeFileSync(f, versioned('3'));
      const ok = await lab.proxy.cli(['route', 'reload', '--json']);
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ file: f, version: 2 });
      const c = lab.request();
      lab.caller.send(c.text, lab.port);
      expect((await lab.atPbx((r) => byCallId(c.callId)(r) && r.msg.method === 'INVITE')).msg.header('x-version')).toBe('3');
    } finally {
      await lab.close();
    }
    const plain = await startProxyProcess({ args: ['--listen', 'udp:127.0.0.1:0'] });
    try {
      const r = await plain.cli(['route', 'reload']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('runs the default route');
    } finally {
      await plain.stop();
    }
  });
});

const EVENTS_ROUTE = `import { defineRoute } from 'sipctl';
const down = new Set<string>();
const log: string[] = [];
export default defineRoute({
  request(ctx) {
    if (ctx.msg.method === 'OPTIONS') return ctx.reply(200, 'OK', [\`X-Down: \${[...down].join(' ') || 'none'}\`, \`X-Events: \${log.join(' ') || 'none'}\`]);
    return ctx.dispatch(1, 'round-robin');
  },
  events: {
    destinationDown(d) { down.add(d.uri); log.push(\`down:\${d.setid}:\${d.reason}\`); },
    destinationUp(d) { down.delete(d.uri); log.push(\`up:\${d.setid}\`); },
  },
});
`;

describe('events: destinationDown / destinationUp (event_route[dispatcher:dst-down|dst-up])', () => {
  it('follow the dispatcher\'s state changes', async () => {
    const lab = await startLab({ args: ['--route', file('events.ts', EVENTS_ROUTE)] });
    try {
      const options = async (): Promise<Received> => {
        const { text, callId } = lab.request({ method: 'OPTIONS', uri: `sip:127.0.0.1:${lab.port}` });
        lab.caller.send(text, lab.port);
        return lab.caller.next(byCallId(callId));
      };
      expect((await options()).msg.header('x-down')).toBe('none');
      const uri = `sip:127.0.0.1:${lab.pbx1.port}`;
      const r = await lab.proxy.cli(['dispatcher', 'set-state', 'inactive', '1', uri]);
      expect(r.code).toBe(0);
      const after = await options();
      expect(after.msg.header('x-down')).toBe(uri);
      expect(after.msg.header('x-events')).toMatch(/^down:1:/);
      expect((await lab.proxy.cli(['dispatcher', 'set-state', 'active', '1', uri])).code).toBe(0);
      const back = await options();
      expect(back.msg.header('x-down')).toBe('none');
      expect(back.msg.header('x-events')).toMatch(/ up:1$/);
    } finally {
      await lab.close();
    }
  });
});

describe('sipctl route init / check, and loading errors', () => {
  it('init writes the starter; it passes check (types and the sample requests)', async () => {
    const f = join(dir, 'starter.ts');
    const init = await runCli(['route', 'init', f]);
    expect(init.code).toBe(0);
    const again = await runCli(['route', 'init', f]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists already');
    const check = await runCli(['route', 'check', f]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('types OK');
    expect(check.stdout).toMatch(/INVITE \(initial\): forward INVITE .* to udp:192\.0\.2\.1:5060 \[Record-Route: /);
    expect(check.stdout).toMatch(/REGISTER: forward REGISTER/);
    expect(check.stdout).toMatch(/BYE \(in dialog\): forward BYE/);
    expect(check.stdout).toMatch(/OPTIONS \(to the proxy\): reply 200 OK/);
  });

  it('check: a type error → exit 1 with file:line:col', async () => {
    const f = file('typo.ts', `import { defineRoute } from 'sipctl';\nexport default defineRoute({\n  request(ctx) {\n    return ctx.dispatch('one', 'round-robin');\n  },\n});\n`);
    const r = await runCli(['route', 'check', f, '--types-only']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/typo\.ts:4:\d+: error TS2345/);
  });

  it('check: a route that throws on a sample request → exit 1 with file:line', async () => {
    const f = file('throws.ts', `import { defineRoute } from 'sipctl';\nexport default defineRoute({\n  request(ctx) {\n    if (ctx.msg.method === 'BYE') throw new Error('no BYE please');\n    return ctx.reply(200, 'OK');\n  },\n});\n`);
    const r = await runCli(['route', 'check', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/throws\.ts:4:\d+: error BYE \(in dialog\): the request route threw; answered 500: Error: no BYE please/);
    expect(r.stdout).toMatch(/BYE \(in dialog\): reply 500/);
  });

  it('serve refuses a route that does not load, and a bad route setting, with one clear line', async () => {
    const missing = await runCli(['serve', '--listen', 'udp:127.0.0.1:0', '--db', join(dir, 'x.db'), '--control', join(dir, 'x.sock'), '--route', join(dir, 'nope.ts')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.ts: no such file');
    const noExport = file('noexport.mjs', 'export const x = 1;\n');
    const r = await runCli(['serve', '--listen', 'udp:127.0.0.1:0', '--db', join(dir, 'y.db'), '--control', join(dir, 'y.sock'), '--route', noExport]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no default export that is a route');
    const cfg = file('bad.yaml', 'route:\n  slowMs: -1\n');
    const b = await runCli(['serve', '--config', cfg, '--db', join(dir, 'z.db')]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('config route.slowMs');
  });
});

const EDITS_ROUTE = `import { defineRoute } from 'sipctl';
export default defineRoute({
  request(ctx) {
    if (ctx.msg.uri.user === 'slow') {
      // An async decision that takes a while: a CANCEL arrives meanwhile.
      ctx.stateful = true;
      return new Promise((resolve) => setTimeout(() => resolve(ctx.dispatch(1, 'round-robin')), 600));
    }
    ctx.setFromUser('first');
    ctx.setFromUser('second'); // last write wins
    ctx.setFromDisplay('Front Desk');
    ctx.setRequestUser('4711');
    ctx.insertHeader('X-Top', 'on top');
    ctx.removeHeader('X-Secret');
    ctx.setHeader('X-Set', 'route');
    ctx.appendHeader('X-Seen-From', ctx.msg.from.uri.user ?? '');
    return ctx.dispatch(1, 'round-robin');
  },
  reply(ctx) {
    if (ctx.msg.status === 183) return ctx.drop('no early media here');
    ctx.removeHeader('X-Internal');
    ctx.setHeader('Server', 'front');
    ctx.appendHeader('X-Reply', 'seen');
  },
});
`;

describe('edits through the edit list, reply-hook edits and drop, CANCEL during an async decision', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ args: ['--route', file('edits.ts', EDITS_ROUTE)] });
  });
  afterAll(async () => lab?.close());

  it('From, Request-URI and header edits: last write wins, and what the route read back is what went out', async () => {
    const { text, callId } = lab.request({ extra: ['X-Secret: 42', 'X-Set: caller'] });
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    expect(got.msg.from.uri.user).toBe('second');
    expect(got.msg.from.displayName).toBe('Front Desk');
    expect(got.msg.from.tag).toBeDefined();
    expect(got.msg.header('x-seen-from')).toBe('second');
    expect(got.msg.uri.user).toBe('4711');
    expect(got.msg.header('x-secret')).toBeUndefined();
    expect(got.msg.headerFields('x-set')).toEqual(['route']);
    expect(got.msg.headerNames.indexOf('x-top')).toBeLessThan(got.msg.headerNames.indexOf('via'));

    // The reply hook: a 183 dropped; the 200 with a header removed, one changed, one added.
    got.pbx.send(responseTo(got.msg, 183, 'Session Progress'), lab.port);
    got.pbx.send(responseTo(got.msg, 200, 'OK', ['X-Internal: pbx7', 'Server: pbx-9000']), lab.port);
    const first = await lab.caller.next(byCallId(callId));
    expect(first.msg.status).toBe(200);
    expect(first.msg.header('x-internal')).toBeUndefined();
    expect(first.msg.headerFields('server')).toEqual(['front']);
    expect(first.msg.header('x-reply')).toBe('seen');
  });

  it('a CANCEL while an async route decides: 200 for the CANCEL at once, 487 for the INVITE, nothing at the PBXs', async () => {
    const branch = `z9hG4bK${Date.now()}c`;
    const inv = lab.request({ uri: `sip:slow@127.0.0.1:${lab.port}`, branch });
    lab.caller.send(inv.text, lab.port);
    expect((await lab.caller.next(byCallId(inv.callId))).msg.status).toBe(100);
    const cancel = inv.text
      .replace(/^INVITE /, 'CANCEL ')
      .replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL')
      .replace(/^Contact: .*\r\n/m, '');
    lab.caller.send(cancel, lab.port);
    const c200 = await lab.caller.next((r) => byCallId(inv.callId)(r) && r.msg.cseq.method === 'CANCEL');
    expect(c200.msg.status).toBe(200);
    const final = await lab.caller.next((r) => finalFor(inv.callId)(r) && r.msg.cseq.method === 'INVITE', 3000);
    expect(final.msg.status).toBe(487);
    expect(await lab.pbx1.nothing(byCallId(inv.callId), 200)).toBe(true);
    expect(await lab.pbx2.nothing(byCallId(inv.callId), 50)).toBe(true);
  });
});
