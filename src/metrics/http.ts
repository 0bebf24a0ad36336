/**
 * The metrics listener (`--metrics 127.0.0.1:9090`, config `metrics.listen`):
 *   GET /metrics  the Prometheus text exposition;
 *   GET /healthz  200 while the process serves (liveness);
 *   GET /readyz   200 when listeners are bound, the tables loaded and every set the rules
 *                 use has an active destination, else 503 — each check on its own line.
 * Anything else is 404 (405 for another method). It is meant for a private address: it says
 * how busy the proxy is and which PBXs it uses, so bind it to loopback or a management network.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { SipctlError, usageError } from '../errors.js';
import type { Observability } from './observer.js';

export interface MetricsServer {
  /** "127.0.0.1:9090" as bound (the port filled in when 0 was asked for). */
  readonly listen: string;
  close(): Promise<void>;
}

/** `127.0.0.1:9090`, `[::1]:9090`, `localhost:9090` → host and port. */
export function parseMetricsListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|localhost)):([0-9]{1,5})$/.exec(spec.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port < 65536)) {
    throw usageError('E_CONFIG_BAD_VALUE', `--metrics: expected IP:PORT, e.g. 127.0.0.1:9090 or [::1]:9090, got ${JSON.stringify(spec)}`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

export async function startMetricsServer(spec: string, obs: Observability, registry: Registry): Promise<MetricsServer> {
  const { host, port } = parseMetricsListen(spec);
  const server: Server = createServer((req, res) => {
    handle(req, res, obs, registry).catch((err: unknown) => {
      // A collect callback that threw: say so to the scraper; the proxy goes on.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  // A scraper is a well-behaved client; anything slow or large is not one.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.maxHeadersCount = 50;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new SipctlError('E_METRICS_BIND', `cannot serve metrics on ${spec}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`, {
          cause: err,
        }),
      );
    });
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  server.on('error', () => {
    // After the bind, errors are per connection; Node closes that connection.
  });
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
  const listen = `${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  return {
    listen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, obs: Observability, registry: Registry): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed\n');
    return;
  }
  switch (path) {
    case '/metrics': {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok\n');
      return;
    case '/readyz': {
      const r = obs.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      const lines = r.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
      res.end(`${r.ready ? 'ready' : 'not ready'}\n${lines.join('\n')}\n`);
      return;
    }
    default:
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found: try /metrics, /healthz or /readyz\n');
  }
}
