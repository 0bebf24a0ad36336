/**
 * A raw client for the control socket tests: writes bytes as given and reads reply lines,
 * every wait bounded so a broken server fails the test instead of hanging it.
 */
import { createConnection, type Socket } from 'node:net';
import { LineSplitter } from '../../src/control/line-splitter.js';

const WAIT_MS = 5000;

export interface RawSession {
  write(text: string | Buffer): void;
  /** The next reply line, parsed. */
  nextReply(): Promise<Record<string, unknown>>;
  /** Resolves when the server has closed the connection. */
  closed(): Promise<void>;
  destroy(): void;
}

export function openSession(path: string): Promise<RawSession> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ path });
    const splitter = new LineSplitter();
    const lines: string[] = [];
    const waiters: ((line: string | null) => void)[] = [];
    let ended = false;
    const closeWaiters: (() => void)[] = [];

    socket.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk).lines) {
        const w = waiters.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    socket.on('error', () => {
      // ECONNRESET / EPIPE after the server closed on us: reported through closed().
    });
    socket.on('close', () => {
      ended = true;
      for (const w of waiters.splice(0)) w(null);
      for (const c of closeWaiters.splice(0)) c();
    });
    socket.once('connect', () =>
      resolve({
        write: (text) => {
          socket.write(text);
        },
        nextReply: () =>
          new Promise((res, rej) => {
            const queued = lines.shift();
            if (queued !== undefined) return res(JSON.parse(queued) as Record<string, unknown>);
            if (ended) return rej(new Error('connection closed before a reply'));
            const timer = setTimeout(() => rej(new Error(`no reply within ${WAIT_MS} ms`)), WAIT_MS);
            waiters.push((line) => {
              clearTimeout(timer);
              if (line === null) rej(new Error('connection closed before a reply'));
              else res(JSON.parse(line) as Record<string, unknown>);
            });
          }),
        closed: () =>
          new Promise((res, rej) => {
            if (ended) return res();
            const timer = setTimeout(() => rej(new Error(`connection still open after ${WAIT_MS} ms`)), WAIT_MS);
            closeWaiters.push(() => {
              clearTimeout(timer);
              res();
            });
          }),
        destroy: () => socket.destroy(),
      }),
    );
    socket.once('error', reject);
  });
}
