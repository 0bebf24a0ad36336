/**
 * The control socket client: one request, one reply, one connection — what every
 * `sipctl address reload|dump|test` and `sipctl dispatcher ...` call does.
 */
import { createConnection } from 'node:net';
import { SipctlError } from '../errors.js';
import { LineSplitter } from './line-splitter.js';
import { isPlainObject } from './protocol.js';

/** Reloading a million address entries takes seconds; 30 s leaves room on a busy machine. */
export const DEFAULT_CONTROL_TIMEOUT_MS = 30_000;

export interface ControlRequestOptions {
  timeoutMs?: number;
}

let nextId = 1;

function unreachable(path: string): SipctlError {
  return new SipctlError(
    'E_CONTROL_UNREACHABLE',
    `no sipctl proxy is listening on ${path} (start one with 'sipctl serve', or pass --control PATH)`,
  );
}

function connectError(path: string, err: NodeJS.ErrnoException): SipctlError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return unreachable(path);
    case 'EACCES':
    case 'EPERM':
      return new SipctlError(
        'E_CONTROL_DENIED',
        `permission denied on control socket ${path}; it is owner-only: run sipctl as the user running the proxy`,
      );
    default:
      return new SipctlError('E_CONTROL_IO', `control socket ${path}: ${err.message}`);
  }
}

function badReply(path: string, cmd: string, why: string): SipctlError {
  return new SipctlError('E_CONTROL_BAD_REPLY', `the process on ${path} sent a reply to '${cmd}' that sipctl cannot read: ${why}`);
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Send `cmd` with `args` to the proxy listening on `path` and return the reply's result.
 * Nobody listening → E_CONTROL_UNREACHABLE; an error reply → SipctlError with the reply's
 * code and message (usage errors keep exit code 2); no reply in time → E_CONTROL_TIMEOUT.
 */
export function controlRequest(
  path: string,
  cmd: string,
  args: Record<string, unknown> = {},
  opts: ControlRequestOptions = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    let settled = false;
    let connected = false;
    const socket = createConnection({ path });
    const finish = (err: SipctlError | null, result?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result);
    };
    const timer = setTimeout(() => {
      finish(
        new SipctlError(
          'E_CONTROL_TIMEOUT',
          `no reply to '${cmd}' from the sipctl proxy on ${path} within ${formatSeconds(timeoutMs)}`,
        ),
      );
    }, timeoutMs);

    const splitter = new LineSplitter();
    socket.on('connect', () => {
      connected = true;
      socket.write(JSON.stringify({ id, cmd, args }) + '\n');
    });
    socket.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk).lines) {
        if (line.trim() === '') continue;
        let reply: unknown;
        try {
          reply = JSON.parse(line);
        } catch (err) {
          finish(badReply(path, cmd, `not JSON (${(err as Error).message})`));
          return;
        }
        if (!isPlainObject(reply) || typeof reply.ok !== 'boolean') {
          finish(badReply(path, cmd, 'not a {"id","ok",...} object'));
          return;
        }
        // A server answering a line it could not read sends id null; that is still our reply.
        if (reply.id !== id && reply.id !== null) continue;
        if (reply.ok) {
          finish(null, reply.result);
          return;
        }
        const error = isPlainObject(reply.error) ? reply.error : {};
        const code = typeof error.code === 'string' ? error.code : 'E_CONTROL_FAILED';
        const message = typeof error.message === 'string' ? error.message : `'${cmd}' failed without a message`;
        finish(new SipctlError(code, message, { usage: error.usage === true }));
        return;
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      finish(connected ? new SipctlError('E_CONTROL_IO', `control socket ${path}: ${err.message}`) : connectError(path, err));
    });
    socket.on('close', () => {
      finish(
        new SipctlError(
          'E_CONTROL_CLOSED',
          `the sipctl proxy on ${path} closed the connection before answering '${cmd}'`,
        ),
      );
    });
  });
}
