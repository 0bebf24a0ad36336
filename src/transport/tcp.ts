/**
 * The TCP half of a transport: one node:net server per tcp listener and one table of
 * connections, inbound and outbound alike, found by id (a response goes back on the
 * connection its request came in on, RFC 3261 §18.2.2) or by remote address:port (a new
 * request to a peer reuses an open connection to it, RFC 3261 §18.1.1).
 */
import net from 'node:net';
import { SipctlError } from '../errors.js';
import type { TransportContext } from './context.js';
import { formatListenSpec } from './listen-spec.js';
import { describeSystemError, hostPort } from './system-errors.js';
import { TcpConnection, type ConnectionSettings } from './tcp-connection.js';
import { bindError } from './udp.js';
import type { ListenSpec, Listener, Target } from './types.js';

export interface TcpSettings extends ConnectionSettings {
  readonly maxConnections: number;
}

export class TcpConnectionTable {
  private readonly servers: net.Server[] = [];
  private readonly byId = new Map<number, TcpConnection>();
  /** remote address → remote port → connection: no key strings built on the send path. */
  private readonly byPeer = new Map<string, Map<number, TcpConnection>>();
  private nextId = 1;
  private closing = false;

  constructor(
    private readonly settings: TcpSettings,
    private readonly context: TransportContext,
  ) {}

  get openConnections(): number {
    return this.byId.size;
  }

  /** Listen on one tcp spec; rejects with E_TRANSPORT_BIND naming it. */
  bind(id: number, spec: ListenSpec): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      const onBindError = (err: Error): void => {
        server.close();
        reject(bindError(spec, err));
      };
      server.once('error', onBindError);
      server.listen({ host: spec.address, port: spec.port, ipv6Only: spec.family === 6, exclusive: true }, () => {
        server.removeListener('error', onBindError);
        const bound = server.address() as net.AddressInfo;
        const listener: Listener = Object.freeze({
          id,
          protocol: 'tcp',
          address: spec.address,
          port: bound.port,
          family: spec.family,
        });
        server.on('connection', (socket) => this.accept(socket, listener));
        server.on('error', (err) => {
          this.context.stats.socketErrors++;
          this.context.report(
            new SipctlError('E_TRANSPORT_TCP_LISTENER', `TCP listener ${formatListenSpec(listener)}: ${describeSystemError(err)}`, {
              cause: err,
            }),
            { operation: 'accept', protocol: 'tcp', listener },
          );
        });
        this.servers.push(server);
        resolve(listener);
      });
    });
  }

  /**
   * The open connection a message to `target` goes on: `target.connectionId` if still
   * open, else the newest open connection to the target's address:port.
   */
  find(target: Target): TcpConnection | undefined {
    if (target.connectionId !== undefined) {
      const byId = this.byId.get(target.connectionId);
      if (byId !== undefined && byId.open) return byId;
    }
    const byPeer = this.byPeer.get(target.address)?.get(target.port);
    return byPeer !== undefined && byPeer.open ? byPeer : undefined;
  }

  /**
   * Send on the connection `find` picks, else on a new connection from `listener`
   * (undefined: no tcp listener of the target's family, so nothing to connect from).
   */
  send(target: Target, bytes: Buffer, listener: Listener | undefined): void {
    let connection = this.find(target);
    if (connection === undefined) {
      if (listener === undefined) {
        this.sendFailed(target, 'E_TRANSPORT_NO_LISTENER', `no tcp listener of the target's address family; add one with --listen`);
        return;
      }
      connection = this.connect(target, listener);
      if (connection === undefined) return;
    }
    connection.write(bytes);
  }

  /** Close every connection and server; resolves when all are closed. */
  async close(): Promise<void> {
    this.closing = true;
    const closed: Promise<void>[] = [];
    for (const connection of this.byId.values()) {
      closed.push(connection.closedPromise);
      connection.destroy();
    }
    for (const server of this.servers) {
      closed.push(new Promise((resolve) => server.close(() => resolve())));
    }
    this.servers.length = 0;
    await Promise.all(closed);
  }

  private accept(socket: net.Socket, listener: Listener): void {
    const stats = this.context.stats;
    const remoteAddress = socket.remoteAddress;
    const remotePort = socket.remotePort;
    if (this.closing || remoteAddress === undefined || remotePort === undefined) {
      // Closing, or the peer already went away: nothing to serve.
      socket.destroy();
      return;
    }
    if (this.byId.size >= this.settings.maxConnections) {
      stats.tcpConnectionsRefused++;
      socket.destroy();
      this.context.report(
        new SipctlError(
          'E_TRANSPORT_TCP_LIMIT',
          `refused TCP connection from ${hostPort(remoteAddress, remotePort)}: ${this.settings.maxConnections} connections ` +
            `are open (raise maxTcpConnections if that is normal load)`,
        ),
        { operation: 'accept', protocol: 'tcp', listener, remoteAddress, remotePort },
      );
      return;
    }
    stats.tcpConnectionsAccepted++;
    this.add(new TcpConnection(this.nextId++, socket, listener, remoteAddress, remotePort, false, this.settings, this.context, this.removeConnection));
  }

  private connect(target: Target, listener: Listener): TcpConnection | undefined {
    const stats = this.context.stats;
    if (this.closing) {
      this.sendFailed(target, 'E_TRANSPORT_CLOSED', 'the transport is closed');
      return undefined;
    }
    if (this.byId.size >= this.settings.maxConnections) {
      stats.tcpConnectionsRefused++;
      this.sendFailed(
        target,
        'E_TRANSPORT_TCP_LIMIT',
        `${this.settings.maxConnections} connections are open (raise maxTcpConnections if that is normal load)`,
      );
      return undefined;
    }
    let socket: net.Socket;
    try {
      // Bind the local side to the listener's address (not a wildcard) so the peer sees the
      // address our Via names; the port is ephemeral, as Kamailio's outbound TCP is by default.
      // The target is an IP literal, so net.connect does no DNS.
      socket = net.connect({
        host: target.address,
        port: target.port,
        family: listener.family,
        localAddress: isWildcard(listener.address) ? undefined : listener.address,
      });
    } catch (err) {
      // Synchronous refusals (a port out of range): the same report as a failed connect.
      stats.tcpConnectFailures++;
      this.sendFailed(target, 'E_TRANSPORT_TCP_CONNECT', describeSystemError(err));
      return undefined;
    }
    stats.tcpConnectionsOpened++;
    const connection = new TcpConnection(
      this.nextId++,
      socket,
      listener,
      target.address,
      target.port,
      true,
      this.settings,
      this.context,
      this.removeConnection,
    );
    this.add(connection);
    return connection;
  }

  private add(connection: TcpConnection): void {
    this.byId.set(connection.id, connection);
    let ports = this.byPeer.get(connection.remoteAddress);
    if (ports === undefined) {
      ports = new Map();
      this.byPeer.set(connection.remoteAddress, ports);
    }
    // The newest connection to a peer wins; the older one still serves its own id.
    ports.set(connection.remotePort, connection);
    this.context.stats.tcpConnectionsOpen = this.byId.size;
  }

  private readonly removeConnection = (connection: TcpConnection): void => {
    this.byId.delete(connection.id);
    const ports = this.byPeer.get(connection.remoteAddress);
    if (ports !== undefined && ports.get(connection.remotePort) === connection) {
      ports.delete(connection.remotePort);
      if (ports.size === 0) this.byPeer.delete(connection.remoteAddress);
    }
    this.context.stats.tcpConnectionsOpen = this.byId.size;
  };

  private sendFailed(target: Target, code: string, why: string): void {
    this.context.stats.sendErrors++;
    this.context.report(
      new SipctlError(code, `cannot send to tcp:${hostPort(target.address, target.port)}: ${why}`),
      { operation: 'send', protocol: 'tcp', remoteAddress: target.address, remotePort: target.port },
    );
  }
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}
