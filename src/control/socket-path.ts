/**
 * Making the socket path ready for listening. A Unix socket file outlives the process that
 * bound it when that process dies without closing (kill -9, a crash): such a stale file
 * makes bind() fail with EADDRINUSE although nobody listens. We tell the two cases apart the
 * only reliable way — by connecting: a refused connection means stale (remove it), an
 * accepted one means a live proxy owns the path (refuse to start a second one).
 */
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import { SipctlError } from '../errors.js';

/** How long to wait for a live owner to accept the probe connection. */
const PROBE_TIMEOUT_MS = 2000;

type ProbeResult = 'live' | 'stale' | 'gone';

function probe(path: string): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      // Accepted by the kernel's backlog but never served would also land here; a socket
      // that does not refuse is somebody's, so treat it as live.
      resolve('live');
    }, PROBE_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') resolve('stale');
      else if (err.code === 'ENOENT') resolve('gone');
      else reject(err);
    });
  });
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Create the parent folder, and remove a stale socket at `path`. Refuses (E_CONTROL_IN_USE)
 * when a live process answers there, and (E_CONTROL_NOT_SOCKET) when the path is some
 * other kind of file: that is never ours to delete.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw new SipctlError('E_CONTROL_LISTEN', `cannot use control socket path ${path}: ${(err as Error).message}`);
  }
  if (!isSocket) {
    throw new SipctlError(
      'E_CONTROL_NOT_SOCKET',
      `${path} exists and is not a socket; refusing to replace it (move it away, or pass --control PATH)`,
    );
  }
  let state: ProbeResult;
  try {
    state = await probe(path);
  } catch (err) {
    throw new SipctlError('E_CONTROL_LISTEN', `cannot check control socket ${path}: ${(err as Error).message}`);
  }
  if (state === 'live') {
    throw new SipctlError(
      'E_CONTROL_IN_USE',
      `another process is already listening on control socket ${path} (is a sipctl proxy running? stop it, or pass --control PATH)`,
    );
  }
  if (state === 'stale') {
    try {
      unlinkSync(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') {
        throw new SipctlError('E_CONTROL_LISTEN', `cannot remove stale control socket ${path}: ${(err as Error).message}`);
      }
    }
  }
}
