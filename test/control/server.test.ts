import { spawn } from 'node:child_process';
import { lstatSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SipctlError, usageError } from '../../src/errors.js';
import { controlRequest, startControlServer, type ControlHandlers, type ControlServer } from '../../src/control/index.js';
import { openSession, type RawSession } from './session.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

/** Leave a socket file behind the way a crashed proxy does: bind in a child, SIGKILL it. */
async function leaveStaleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', "require('net').createServer().listen(process.argv[1], () => process.stdout.write('ready\\n'))", path],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child did not start listening within 10 s')), 10_000);
      child.stdout.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

describe('control server', () => {
  const tempDir = useTempDirs();
  const servers: ControlServer[] = [];
  const sessions: RawSession[] = [];

  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await s.close();
  });

  async function start(handlers: ControlHandlers, path = join(tempDir(), 'sipctl.sock'), opts = {}): Promise<ControlServer> {
    const server = await startControlServer(path, handlers, opts);
    servers.push(server);
    return server;
  }

  async function session(path: string): Promise<RawSession> {
    const s = await openSession(path);
    sessions.push(s);
    return s;
  }

  const echo: ControlHandlers = {
    echo: (args) => ({ got: args }),
    later: async (args) => {
      await new Promise((r) => setImmediate(r));
      return { later: args.n };
    },
  };

  it('creates the socket owner-only (0600) and leaves the process umask as it was', async () => {
    const before = process.umask();
    const server = await start(echo);
    expect(lstatSync(server.path).isSocket()).toBe(true);
    expect(statSync(server.path).mode & 0o777).toBe(0o600);
    expect(process.umask()).toBe(before);
  });

  it('creates a missing parent folder', async () => {
    const path = join(tempDir(), 'data', 'sipctl.sock');
    await start(echo, path);
    expect(await controlRequest(path, 'echo', { a: 1 })).toEqual({ got: { a: 1 } });
  });

  it('answers several requests on one connection, in order, with their ids', async () => {
    const server = await start(echo);
    const s = await session(server.path);
    // Three requests in one write, the slow one first: replies still come back in order.
    s.write(
      '{"id":1,"cmd":"later","args":{"n":1}}\n{"id":"two","cmd":"echo","args":{"x":[1,2]}}\n\n{"id":3,"cmd":"echo"}\n',
    );
    expect(await s.nextReply()).toEqual({ id: 1, ok: true, result: { later: 1 } });
    expect(await s.nextReply()).toEqual({ id: 'two', ok: true, result: { got: { x: [1, 2] } } });
    expect(await s.nextReply()).toEqual({ id: 3, ok: true, result: { got: {} } });
  });

  it('answers malformed lines with an error reply and keeps serving the connection', async () => {
    const server = await start(echo);
    const s = await session(server.path);
    const bad = ['{"id":1,"cmd":', '[1,2,3]', '42', '{"id":{"x":1},"cmd":"echo"}', '{"id":5}', '{"id":6,"cmd":"echo","args":[1]}'];
    for (const line of bad) s.write(line + '\n');
    const replies = [];
    for (let i = 0; i < bad.length; i++) replies.push(await s.nextReply());
    for (const r of replies) {
      expect(r.ok).toBe(false);
      expect((r.error as { code: string }).code).toBe('E_CONTROL_BAD_REQUEST');
    }
    expect(replies.map((r) => r.id)).toEqual([null, null, null, null, 5, 6]);
    expect((replies[0]!.error as { message: string }).message).toMatch(/not valid JSON/);
    s.write('{"id":7,"cmd":"echo","args":{"still":"here"}}\n');
    expect(await s.nextReply()).toEqual({ id: 7, ok: true, result: { got: { still: 'here' } } });
  });

  it('answers an unknown command with the list of known ones; prototype names are not commands', async () => {
    const server = await start(echo);
    const s = await session(server.path);
    for (const cmd of ['address.frob', '__proto__', 'constructor', 'toString']) {
      s.write(JSON.stringify({ id: cmd, cmd }) + '\n');
      const r = await s.nextReply();
      expect(r).toMatchObject({ id: cmd, ok: false, error: { code: 'E_CONTROL_UNKNOWN_COMMAND' } });
      expect((r.error as { message: string }).message).toContain('this proxy knows: echo, later');
    }
  });

  it('turns throwing handlers into error replies and goes on', async () => {
    const reported: string[] = [];
    const server = await start(
      {
        bug: () => {
          throw new TypeError('cannot read properties of undefined');
        },
        rejects: () => Promise.reject(new Error('disk on fire')),
        refuses: () => {
          throw usageError('E_ACL_BAD_ADDRESS', "'10.0.0.300' is not an IP address");
        },
        fails: () => {
          throw new SipctlError('E_ACL_RELOAD_FAILED', 'row 7: bad mask');
        },
        bigint: () => ({ n: 1n }),
        ok: () => 'fine',
      },
      undefined,
      { onHandlerError: (cmd: string) => reported.push(cmd) },
    );
    const s = await session(server.path);
    for (const cmd of ['bug', 'rejects', 'refuses', 'fails', 'bigint', 'ok']) s.write(JSON.stringify({ id: cmd, cmd }) + '\n');
    expect(await s.nextReply()).toEqual({
      id: 'bug',
      ok: false,
      error: { code: 'E_CONTROL_HANDLER_FAILED', message: 'bug failed: cannot read properties of undefined' },
    });
    expect(await s.nextReply()).toMatchObject({ id: 'rejects', error: { code: 'E_CONTROL_HANDLER_FAILED', message: 'rejects failed: disk on fire' } });
    expect(await s.nextReply()).toEqual({
      id: 'refuses',
      ok: false,
      error: { code: 'E_ACL_BAD_ADDRESS', message: "'10.0.0.300' is not an IP address", usage: true },
    });
    expect(await s.nextReply()).toEqual({
      id: 'fails',
      ok: false,
      error: { code: 'E_ACL_RELOAD_FAILED', message: 'row 7: bad mask', usage: false },
    });
    expect(await s.nextReply()).toMatchObject({ id: 'bigint', ok: false, error: { code: 'E_CONTROL_BAD_RESULT' } });
    expect(await s.nextReply()).toEqual({ id: 'ok', ok: true, result: 'fine' });
    // Only the bugs are reported for logging; refusals are expected answers.
    expect(reported).toEqual(['bug', 'rejects']);
  });

  it('answers a request line just under 1 MiB', async () => {
    const server = await start(echo);
    const s = await session(server.path);
    const pad = 'x'.repeat(MiB - 100);
    s.write(JSON.stringify({ id: 1, cmd: 'echo', args: { pad } }) + '\n');
    const r = await s.nextReply();
    expect(r.ok).toBe(true);
    expect(((r.result as { got: { pad: string } }).got.pad).length).toBe(pad.length);
  });

  it('closes a connection whose line passes 1 MiB, and keeps serving others', async () => {
    const server = await start(echo);
    const s = await session(server.path);
    s.write(Buffer.alloc(MiB + 4096, 0x61)); // no newline: the server must not buffer forever
    const r = await s.nextReply();
    expect(r).toMatchObject({ id: null, ok: false, error: { code: 'E_CONTROL_LINE_TOO_LONG' } });
    await s.closed();
    expect(await controlRequest(server.path, 'echo', { after: true })).toEqual({ got: { after: true } });
  });

  it('replaces a stale socket left by a dead process', async () => {
    const path = join(tempDir(), 'sipctl.sock');
    await leaveStaleSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    await expect(controlRequest(path, 'echo')).rejects.toMatchObject({ code: 'E_CONTROL_UNREACHABLE' });
    await start(echo, path);
    expect(await controlRequest(path, 'echo', { fresh: 1 })).toEqual({ got: { fresh: 1 } });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('refuses to start on a socket a live process answers on, and the live one keeps serving', async () => {
    const first = await start(echo);
    await expect(startControlServer(first.path, echo)).rejects.toMatchObject({
      code: 'E_CONTROL_IN_USE',
      message: expect.stringContaining(first.path),
    });
    expect(await controlRequest(first.path, 'echo', { still: 'first' })).toEqual({ got: { still: 'first' } });
  });

  it('refuses to replace a file that is not a socket', async () => {
    const path = join(tempDir(), 'important.txt');
    writeFileSync(path, 'keep me');
    await expect(startControlServer(path, echo)).rejects.toMatchObject({ code: 'E_CONTROL_NOT_SOCKET' });
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('removes its socket on close, drops open connections, and can be closed twice', async () => {
    const server = await startControlServer(join(tempDir(), 'sipctl.sock'), echo);
    const s = await session(server.path);
    await server.close();
    await s.closed();
    expect(existsSync(server.path)).toBe(false);
    await server.close();
  });
});
