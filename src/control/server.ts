/**
 * The control socket server, the proxy's side of `sipctl address reload` and friends (what
 * Kamailio's ctl module + kamcmd are for Kamailio). Every line is untrusted input: a
 * malformed line, an unknown command or a handler that throws gets an error reply and the
 * server goes on serving; only a line over the size limit closes that one connection.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { SipctlError } from '../errors.js';
import { LineSplitter } from './line-splitter.js';
import {
  MAX_REQUEST_LINE_BYTES,
  errorReplyLine,
  isPlainObject,
  type ControlHandlers,
  type RequestId,
} from './protocol.js';
import { prepareSocketPath } from './socket-path.js';

export interface ControlServer {
  readonly path: string;
  /** Stop listening, drop open connections, remove the socket file. Safe to call twice. */
  close(): Promise<void>;
}

export interface ControlServerOptions {
  /** Request lines longer than this close the connection (default 1 MiB). */
  maxLineBytes?: number;
  /**
   * Called when a handler throws something that is not a SipctlError (a bug, not a refusal),
   * so the proxy can log the stack; the client gets E_CONTROL_HANDLER_FAILED either way.
   */
  onHandlerError?: (cmd: string, err: unknown) => void;
}

/** Owner read/write only: whoever can connect can reload tables and change routing. */
const SOCKET_MODE = 0o600;
const OWNER_ONLY_UMASK = 0o177;

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** Turn one request line into one reply line. Never throws, never rejects. */
async function answer(line: string, handlers: ControlHandlers, opts: ControlServerOptions): Promise<string> {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch (err) {
    return errorReplyLine(null, { code: 'E_CONTROL_BAD_REQUEST', message: `request is not valid JSON: ${messageOf(err)}` });
  }
  if (!isPlainObject(request)) {
    return errorReplyLine(null, {
      code: 'E_CONTROL_BAD_REQUEST',
      message: 'request must be a JSON object like {"id":1,"cmd":"status","args":{}}',
    });
  }
  const rawId = request.id;
  if (rawId !== undefined && rawId !== null && typeof rawId !== 'number' && typeof rawId !== 'string') {
    return errorReplyLine(null, { code: 'E_CONTROL_BAD_REQUEST', message: 'request "id" must be a number or a string' });
  }
  const id: RequestId = rawId ?? null;
  const { cmd, args } = request;
  if (typeof cmd !== 'string' || cmd === '') {
    return errorReplyLine(id, { code: 'E_CONTROL_BAD_REQUEST', message: 'request "cmd" must be a non-empty string' });
  }
  if (args !== undefined && args !== null && !isPlainObject(args)) {
    return errorReplyLine(id, { code: 'E_CONTROL_BAD_REQUEST', message: `"args" of ${clip(cmd)} must be a JSON object` });
  }
  // Own properties only: "constructor" or "__proto__" are not commands.
  const handler = Object.hasOwn(handlers, cmd) ? handlers[cmd] : undefined;
  if (handler === undefined) {
    const known = Object.keys(handlers).sort().join(', ') || '(none)';
    return errorReplyLine(id, {
      code: 'E_CONTROL_UNKNOWN_COMMAND',
      message: `unknown command '${clip(cmd)}'; this proxy knows: ${known}`,
    });
  }

  let result: unknown;
  try {
    result = await handler(args ?? {});
  } catch (err) {
    if (err instanceof SipctlError) {
      return errorReplyLine(id, { code: err.code, message: err.message, usage: err.exitCode === 2 });
    }
    try {
      opts.onHandlerError?.(cmd, err);
    } catch {
      // A failing logger must not take the reply down with it.
    }
    return errorReplyLine(id, { code: 'E_CONTROL_HANDLER_FAILED', message: `${cmd} failed: ${messageOf(err)}` });
  }
  try {
    return JSON.stringify({ id, ok: true, result: result === undefined ? null : result }) + '\n';
  } catch (err) {
    return errorReplyLine(id, {
      code: 'E_CONTROL_BAD_RESULT',
      message: `${cmd} produced a result that cannot be sent as JSON: ${messageOf(err)}`,
    });
  }
}

function serveConnection(conn: Socket, handlers: ControlHandlers, opts: ControlServerOptions): void {
  const maxLineBytes = opts.maxLineBytes ?? MAX_REQUEST_LINE_BYTES;
  const splitter = new LineSplitter(maxLineBytes);
  // Replies go out in request order: each request waits for the one before it.
  let queue: Promise<void> = Promise.resolve();
  let closing = false;

  // A client that goes away mid-reply (EPIPE, ECONNRESET) is no concern of the proxy's.
  conn.on('error', () => {});
  conn.on('data', (chunk: Buffer) => {
    if (closing) return;
    const { lines, overflow } = splitter.push(chunk);
    for (const line of lines) {
      if (line.trim() === '') continue; // blank lines: harmless when typing into socat
      queue = queue
        .then(() => answer(line, handlers, opts))
        .then((reply) => {
          if (!conn.destroyed) conn.write(reply);
        })
        .catch(() => {});
    }
    if (overflow) {
      closing = true;
      queue = queue.then(() => {
        if (conn.destroyed) return;
        conn.end(
          errorReplyLine(null, {
            code: 'E_CONTROL_LINE_TOO_LONG',
            message: `request line longer than ${maxLineBytes} bytes; closing the connection`,
          }),
        );
        conn.once('finish', () => conn.destroy());
      });
    }
  });
}

/** Run `fn` with an owner-only umask when this thread may change it (worker threads may not). */
function withOwnerOnlyUmask<T>(fn: () => T): T {
  let previous: number | undefined;
  try {
    previous = process.umask(OWNER_ONLY_UMASK);
  } catch {
    previous = undefined;
  }
  try {
    return fn();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        err.code === 'EADDRINUSE'
          ? new SipctlError('E_CONTROL_IN_USE', `control socket ${path} was taken by another process while starting; pass --control PATH`)
          : new SipctlError('E_CONTROL_LISTEN', `cannot listen on control socket ${path}: ${err.message}`),
      );
    };
    server.once('error', onError);
    // For a Unix path, listen() binds synchronously, so the socket file is created under
    // the owner-only umask: nobody else can connect even for an instant.
    withOwnerOnlyUmask(() => server.listen(path, () => {
      server.off('error', onError);
      resolve();
    }));
    // Where the umask could not be set (a worker thread), chmod before the event loop turns
    // and any connection is accepted. Only when the bind succeeded: never chmod a file we
    // did not create.
    if (server.listening) {
      try {
        chmodSync(path, SOCKET_MODE);
      } catch (err) {
        server.close();
        server.off('error', onError);
        reject(new SipctlError('E_CONTROL_LISTEN', `cannot restrict control socket ${path} to its owner: ${messageOf(err)}`));
      }
    }
  });
}

/**
 * Listen on the Unix socket `path` and answer requests with `handlers` (command name →
 * function of the request's args; its return value, awaited, is the result).
 */
export async function startControlServer(
  path: string,
  handlers: ControlHandlers,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  await prepareSocketPath(path);
  const connections = new Set<Socket>();
  const server = createServer((conn) => {
    connections.add(conn);
    conn.once('close', () => connections.delete(conn));
    serveConnection(conn, handlers, opts);
  });
  await listen(server, path);
  const ownInode = lstatSync(path).ino;

  let closed: Promise<void> | undefined;
  return {
    path,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => {
          // libuv removes the file itself on close; remove it here only when it is still
          // ours (a new proxy may have taken the path after us).
          try {
            if (lstatSync(path).ino === ownInode) unlinkSync(path);
          } catch {
            // already gone
          }
          resolve();
        });
        for (const conn of connections) conn.destroy();
      });
      return closed;
    },
  };
}
