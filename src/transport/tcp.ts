/**
 * The TCP half of a transport: one node:net server per tcp listener and one table of
 * connections, found by id (a response goes back on the connection its request came in on,
 * RFC 3261 §18.2.2) or by remote address:port (a new request to a peer reuses an open
 * connection to it, RFC 3261 §18.1.1).
 *
 * Inbound and outbound connections have separate budgets, so that peers connecting to us,
 * whoever they are, can never take the slots we need to reach our next hops. Inbound
 * connections are also capped per source address and, when an admission check is given,
 * refused at accept unless the source is one we would take requests from: an unknown peer
 * costs one accept and one reset, nothing that lasts.
 */
import net from 'node:net';
import { SipctlError } from '../errors.js';
import { messageOf, type TransportContext } from './context.js';
import { formatListenSpec } from './listen-spec.js';
import { describeSystemError, hostPort } from './system-errors.js';
import { TcpConnection, type ConnectionSettings } from './tcp-connection.js';
import { bindError } from './udp.js';
import type { ListenSpec, Listener, Target } from './types.js';

export interface TcpSettings extends ConnectionSettings {
  /** Inbound (accepted) connections open at once. */
  readonly maxConnections: number;
  /** Outbound connections (opened by `send`) open at once. */
  readonly maxOutboundConnections: number;
  /** Inbound connections open at once from one source address. */
  readonly maxConnectionsPerSource: number;
  /** Asked at accept; false closes the connection before anything is allocated for it. */
  readonly admitConnection?: (address: string, port: number) => boolean;
}

type PeerMap = Map<string, Map<number, TcpConnection>>;

export class TcpConnectionTable {
  private readonly servers: net.Server[] = [];
  private readonly byId = new Map<number, TcpConnection>();
  /**
   * remote address → remote port → newest connection, one map per direction (no key
   * strings built on the send path). A response may be steered by address:port only onto
   * an outbound connection (Target.inboundByIdOnly), so the two are kept apart.
   */
  private readonly inboundByPeer: PeerMap = new Map();
  private readonly outboundByPeer: PeerMap = new Map();
  /** Open inbound connections per source address; an entry lives only while one is open. */
  private readonly inboundPerSource = new Map<string, number>();
  private inboundCount = 0;
  private outboundCount = 0;
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
   * open, else the newest open connection to the target's address:port — an outbound one
   * only, when `target.inboundByIdOnly` (a response must not land on a connection some
   * other peer opened from that address:port).
   */
  find(target: Target): TcpConnection | undefined {
    if (target.connectionId !== undefined) {
      const byId = this.byId.get(target.connectionId);
      if (byId !== undefined && byId.open) return byId;
    }
    let outbound = this.outboundByPeer.get(target.address)?.get(target.port);
    if (outbound !== undefined && !outbound.open) outbound = undefined;
    if (target.inboundByIdOnly === true) return outbound;
    const inbound = this.inboundByPeer.get(target.address)?.get(target.port);
    if (inbound === undefined || !inbound.open) return outbound;
    // Both directions have one: the newest wins (ids only grow).
    return outbound !== undefined && outbound.id > inbound.id ? outbound : inbound;
  }

  get inboundConnections(): number {
    return this.inboundCount;
  }

  get outboundConnections(): number {
    return this.outboundCount;
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

  /**
   * Three checks, in this order: admitted at all (so an unknown peer is counted as such,
   * whatever else it does), under its source's cap, under the inbound budget. A refused
   * connection is reset (no FIN handshake, no TIME_WAIT on our side) and counted; the
   * report goes to onError, whose logging must be rate-limited (start.ts's is).
   */
  private accept(socket: net.Socket, listener: Listener): void {
    const stats = this.context.stats;
    const remoteAddress = socket.remoteAddress;
    const remotePort = socket.remotePort;
    // A reset of a socket that is already gone emits 'error'; nothing to do about it.
    socket.on('error', ignore);
    if (this.closing || remoteAddress === undefined || remotePort === undefined) {
      // Closing, or the peer already went away: nothing to serve.
      socket.destroy();
      return;
    }
    const admit = this.settings.admitConnection;
    if (admit !== undefined && !this.admitted(admit, remoteAddress, remotePort, listener)) {
      stats.tcpConnectionsNotAdmitted++;
      refuse(socket);
      this.refused(
        'E_TRANSPORT_TCP_NOT_ADMITTED',
        `closed TCP connection from ${hostPort(remoteAddress, remotePort)} at accept: the peer is not admitted`,
        listener,
        remoteAddress,
        remotePort,
      );
      return;
    }
    const fromSource = this.inboundPerSource.get(remoteAddress) ?? 0;
    if (fromSource >= this.settings.maxConnectionsPerSource) {
      stats.tcpConnectionsPerSourceRefused++;
      refuse(socket);
      this.refused(
        'E_TRANSPORT_TCP_SOURCE_LIMIT',
        `refused TCP connection from ${hostPort(remoteAddress, remotePort)}: ${fromSource} connections from this address ` +
          `are open (raise tcp.maxConnectionsPerSource if that is normal for it)`,
        listener,
        remoteAddress,
        remotePort,
      );
      return;
    }
    if (this.inboundCount >= this.settings.maxConnections) {
      stats.tcpConnectionsRefused++;
      refuse(socket);
      this.refused(
        'E_TRANSPORT_TCP_LIMIT',
        `refused TCP connection from ${hostPort(remoteAddress, remotePort)}: ${this.settings.maxConnections} inbound connections ` +
          `are open (raise tcp.maxConnections if that is normal load)`,
        listener,
        remoteAddress,
        remotePort,
      );
      return;
    }
    socket.removeListener('error', ignore);
    stats.tcpConnectionsAccepted++;
    this.inboundPerSource.set(remoteAddress, fromSource + 1);
    this.add(new TcpConnection(this.nextId++, socket, listener, remoteAddress, remotePort, false, this.settings, this.context, this.removeConnection));
  }

  /** The admission hook, guarded: one that throws is reported and refuses (fail closed). */
  private admitted(admit: (address: string, port: number) => boolean, address: string, port: number, listener: Listener): boolean {
    try {
      return admit(address, port);
    } catch (cause) {
      this.context.stats.handlerErrors++;
      this.refused('E_TRANSPORT_HANDLER', `the TCP admission check threw: ${messageOf(cause)}`, listener, address, port);
      return false;
    }
  }

  private refused(code: string, message: string, listener: Listener, remoteAddress: string, remotePort: number): void {
    this.context.report(new SipctlError(code, message), { operation: 'accept', protocol: 'tcp', listener, remoteAddress, remotePort });
  }

  private connect(target: Target, listener: Listener): TcpConnection | undefined {
    const stats = this.context.stats;
    if (this.closing) {
      this.sendFailed(target, 'E_TRANSPORT_CLOSED', 'the transport is closed');
      return undefined;
    }
    if (this.outboundCount >= this.settings.maxOutboundConnections) {
      stats.tcpConnectionsRefused++;
      this.sendFailed(
        target,
        'E_TRANSPORT_TCP_LIMIT',
        `${this.settings.maxOutboundConnections} outbound connections are open (raise tcp.maxOutboundConnections if that is normal load)`,
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
    const peers = connection.outbound ? this.outboundByPeer : this.inboundByPeer;
    let ports = peers.get(connection.remoteAddress);
    if (ports === undefined) {
      ports = new Map();
      peers.set(connection.remoteAddress, ports);
    }
    // The newest connection to a peer wins; the older one still serves its own id.
    ports.set(connection.remotePort, connection);
    if (connection.outbound) this.outboundCount++;
    else this.inboundCount++;
    this.updateGauges();
  }

  private readonly removeConnection = (connection: TcpConnection): void => {
    this.byId.delete(connection.id);
    const peers = connection.outbound ? this.outboundByPeer : this.inboundByPeer;
    const ports = peers.get(connection.remoteAddress);
    if (ports !== undefined && ports.get(connection.remotePort) === connection) {
      ports.delete(connection.remotePort);
      if (ports.size === 0) peers.delete(connection.remoteAddress);
    }
    if (connection.outbound) {
      this.outboundCount--;
    } else {
      this.inboundCount--;
      const fromSource = (this.inboundPerSource.get(connection.remoteAddress) ?? 1) - 1;
      if (fromSource <= 0) this.inboundPerSource.delete(connection.remoteAddress);
      else this.inboundPerSource.set(connection.remoteAddress, fromSource);
    }
    this.updateGauges();
  };

  private updateGauges(): void {
    const stats = this.context.stats;
    stats.tcpConnectionsOpen = this.byId.size;
    stats.tcpConnectionsInbound = this.inboundCount;
    stats.tcpConnectionsOutbound = this.outboundCount;
  }

  private sendFailed(target: Target, code: string, why: string): void {
    this.context.stats.sendErrors++;
    this.context.report(
      new SipctlError(code, `cannot send to tcp:${hostPort(target.address, target.port)}: ${why}`),
      { operation: 'send', protocol: 'tcp', remoteAddress: target.address, remotePort: target.port },
    );
  }
}

function ignore(): void {
  // See accept(): errors of a socket being refused.
}

/** Close a refused connection with a reset where the socket still has one to send. */
function refuse(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.resetAndDestroy();
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}
