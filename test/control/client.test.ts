import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SipctlError, usageError } from '../../src/errors.js';
import {
  controlRequest,
  requestAddressDump,
  requestAddressReload,
  requestAddressTest,
  requestStatus,
  startControlServer,
  type ControlServer,
} from '../../src/control/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { rejection } from '../helpers/errors.js';

describe('control client', () => {
  const tempDir = useTempDirs();
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(handlers: Parameters<typeof startControlServer>[1]): Promise<ControlServer> {
    const server = await startControlServer(join(tempDir(), 'sipctl.sock'), handlers);
    cleanups.push(() => server.close());
    return server;
  }

  it('names the path when nothing listens there', async () => {
    const path = join(tempDir(), 'nobody.sock');
    const err = await rejection(controlRequest(path, 'status'));
    expect(err.code).toBe('E_CONTROL_UNREACHABLE');
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(
      `no sipctl proxy is listening on ${path} (start one with 'sipctl serve', or pass --control PATH)`,
    );
  });

  it("turns an error reply into a SipctlError with the reply's code, message and usage flag", async () => {
    const server = await start({
      'address.test': () => {
        throw usageError('E_ACL_BAD_ADDRESS', "'nope' is not an IP address");
      },
      'address.reload': () => {
        throw new SipctlError('E_ACL_RELOAD_FAILED', 'cannot read address table: no such table: address');
      },
    });
    const usage = await rejection(controlRequest(server.path, 'address.test', { ip: 'nope', port: 0 }));
    expect([usage.code, usage.message, usage.exitCode]).toEqual(['E_ACL_BAD_ADDRESS', "'nope' is not an IP address", 2]);
    const failed = await rejection(controlRequest(server.path, 'address.reload'));
    expect([failed.code, failed.exitCode]).toEqual(['E_ACL_RELOAD_FAILED', 1]);
    expect(failed.message).toContain('no such table');
  });

  it('gives up after the timeout when no reply comes', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    cleanups.push(() => release());
    const server = await start({ 'address.reload': () => held });
    const err = await rejection(controlRequest(server.path, 'address.reload', {}, { timeoutMs: 200 }));
    expect(err.code).toBe('E_CONTROL_TIMEOUT');
    expect(err.message).toContain(server.path);
    expect(err.message).toContain("'address.reload'");
  });

  it('reports a peer that hangs up without answering', async () => {
    const path = join(tempDir(), 'rude.sock');
    const rude: Server = createServer((conn) => conn.once('data', () => conn.destroy()));
    await new Promise<void>((r) => rude.listen(path, r));
    cleanups.push(() => new Promise<void>((r) => rude.close(() => r())));
    const err = await rejection(controlRequest(path, 'status'));
    expect(err.code).toBe('E_CONTROL_CLOSED');
  });

  it('handles many concurrent requests from separate connections', async () => {
    const server = await start({ square: (args) => (args.n as number) ** 2 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, n) => controlRequest(server.path, 'square', { n })));
    expect(results).toEqual(Array.from({ length: 50 }, (_, n) => n * n));
  });

  it('typed calls return checked results and send the arguments through', async () => {
    const seen: Record<string, unknown>[] = [];
    const entry = { id: 7, grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' };
    const server = await start({
      'address.reload': () => ({ groups: [{ grp: 250, count: 1 }], total: 1, ms: 3.2 }),
      'address.dump': () => ({ groups: [{ grp: 250, count: 1 }], total: 1, entries: [entry] }),
      'address.test': (args) => {
        seen.push(args);
        return { match: args.ip === '10.8.203.139' ? entry : null };
      },
      status: () => ({ pid: 42, uptimeS: 5, listeners: ['udp:127.0.0.1:5060'] }),
    });
    expect(await requestAddressReload(server.path)).toEqual({ groups: [{ grp: 250, count: 1 }], total: 1, ms: 3.2 });
    expect((await requestAddressDump(server.path)).entries).toEqual([entry]);
    expect(await requestAddressTest(server.path, { ip: '10.8.203.139', port: 5060, group: 250 })).toEqual({ match: entry });
    expect(await requestAddressTest(server.path, { ip: '10.9.9.9', port: 0 })).toEqual({ match: null });
    expect(seen).toEqual([
      { ip: '10.8.203.139', port: 5060, group: 250 },
      { ip: '10.9.9.9', port: 0 },
    ]);
    expect(await requestStatus(server.path)).toEqual({ pid: 42, uptimeS: 5, listeners: ['udp:127.0.0.1:5060'] });
  });

  it('refuses a result of the wrong shape instead of passing it on', async () => {
    const server = await start({ 'address.reload': () => ({ groups: 'all of them', total: 1, ms: 1 }) });
    const err = await rejection(requestAddressReload(server.path));
    expect(err.code).toBe('E_CONTROL_BAD_REPLY');
    expect(err.message).toContain('"groups" is not a list');
  });
});
