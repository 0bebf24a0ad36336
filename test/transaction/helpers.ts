/**
 * Helpers for the transaction tests: real SIP text parsed with our parser, a transaction
 * layer on a fake clock, and a log of every message the layer sent (parsed back).
 */
import { FakeClock } from '../dispatcher/helpers.js';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { TransactionLayer, type TransactionLayerOptions } from '../../src/transaction/layer.js';
import type { Listener, Protocol, Target } from '../../src/transport/types.js';

export { FakeClock };

/** Parse SIP text written with \n line ends. */
export function sip(text: string): SipMessage {
  return parseMessage(Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1'));
}

export interface Sent {
  /** ms since the harness started */
  at: number;
  target: Target;
  via: Listener | undefined;
  bytes: Buffer;
  msg: SipMessage;
}

export const UPSTREAM_UDP: Target = { protocol: 'udp', address: '192.0.2.1', port: 5062 };
export const UPSTREAM_TCP: Target = { protocol: 'tcp', address: '192.0.2.1', port: 40123, connectionId: 7 };
export const PBX_A: Target = { protocol: 'udp', address: '10.0.0.21', port: 5060 };
export const PBX_B: Target = { protocol: 'udp', address: '10.0.0.22', port: 5060 };
export const PBX_TCP: Target = { protocol: 'tcp', address: '10.0.0.23', port: 5060 };

export function target(protocol: Protocol, address = '10.0.0.21', port = 5060): Target {
  return { protocol, address, port };
}

export class Harness {
  readonly clock = new FakeClock();
  readonly sent: Sent[] = [];
  readonly errors: unknown[] = [];
  readonly layer: TransactionLayer;
  private readonly start: number;

  constructor(opts: Partial<Omit<TransactionLayerOptions, 'send' | 'clock'>> = {}) {
    this.start = this.clock.now();
    this.layer = new TransactionLayer({
      ...opts,
      clock: this.clock,
      send: (t, bytes, via) => this.sent.push({ at: this.clock.now() - this.start, target: t, via, bytes, msg: parseMessage(bytes) }),
      onError: (err) => this.errors.push(err),
    });
  }

  /** ms since the harness started */
  get now(): number {
    return this.clock.now() - this.start;
  }

  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Messages sent so far, then forget them. */
  take(): Sent[] {
    return this.sent.splice(0, this.sent.length);
  }

  /** Start lines of what was sent ("INVITE", "ACK", "100", "487", ...), then forget them. */
  takeLines(): string[] {
    return this.take().map((s) => (s.msg.isRequest ? s.msg.method : String(s.msg.status)));
  }

  /**
   * Transaction timers armed (the layer's queue). When it is 0 the fake clock must hold no
   * timer either: checked here, so that every assertion on it checks both.
   */
  get pendingTimers(): number {
    const n = this.layer.timerCount;
    if (n === 0 && this.clock.pending !== 0) throw new Error(`the timer queue is empty but the clock still holds ${this.clock.pending} timer(s)`);
    return n;
  }
}

export interface RequestOpts {
  method?: string;
  uri?: string;
  branch?: string;
  sentBy?: string;
  transport?: string;
  callId?: string;
  fromTag?: string;
  toTag?: string;
  cseq?: number;
  routes?: string[];
  /** extra Via lines below the top one */
  lowerVias?: string[];
  body?: string;
}

/** A request as a caller (upstream) sends it. */
export function request(o: RequestOpts = {}): SipMessage {
  const method = o.method ?? 'INVITE';
  const body = o.body ?? '';
  const lines = [
    `${method} ${o.uri ?? 'sip:bob@example.com'} SIP/2.0`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} ${o.sentBy ?? '192.0.2.1:5062'}${o.branch === '' ? '' : `;branch=${o.branch ?? 'z9hG4bKcaller1'}`};rport`,
    ...(o.lowerVias ?? []).map((v) => `Via: ${v}`),
    'Max-Forwards: 70',
    ...(o.routes ?? []).map((r) => `Route: ${r}`),
    `From: "Alice" <sip:alice@example.com>;tag=${o.fromTag ?? 'fromtag1'}`,
    `To: <sip:bob@example.com>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId ?? 'call-1@192.0.2.1'}`,
    `CSeq: ${o.cseq ?? 1} ${method === 'ACK' ? 'ACK' : method}`,
    'Contact: <sip:alice@192.0.2.1:5062>',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ];
  return sip(lines.join('\n'));
}

/**
 * The request as our proxy sends it on a branch: our Via on top (branch `branch`), the
 * caller's Via below, Max-Forwards decremented, optional Route set.
 */
export function outgoing(o: RequestOpts & { ourBranch: string; ourTransport?: string }): { bytes: Buffer; msg: SipMessage } {
  const method = o.method ?? 'INVITE';
  const lines = [
    `${method} ${o.uri ?? 'sip:bob@10.0.0.21:5060'} SIP/2.0`,
    `Via: SIP/2.0/${o.ourTransport ?? 'UDP'} 192.0.2.10:5060;branch=${o.ourBranch}`,
    `Via: SIP/2.0/UDP 192.0.2.1:5062;branch=${o.branch ?? 'z9hG4bKcaller1'};rport=5062;received=192.0.2.1`,
    'Max-Forwards: 69',
    ...(o.routes ?? []).map((r) => `Route: ${r}`),
    `From: "Alice" <sip:alice@example.com>;tag=${o.fromTag ?? 'fromtag1'}`,
    `To: <sip:bob@example.com>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId ?? 'call-1@192.0.2.1'}`,
    `CSeq: ${o.cseq ?? 1} ${method}`,
    'Contact: <sip:alice@192.0.2.1:5062>',
    'Content-Length: 0',
    '',
    '',
  ];
  const bytes = Buffer.from(lines.join('\r\n'), 'latin1');
  return { bytes, msg: parseMessage(bytes) };
}

/**
 * A response to `req` as its recipient writes it: every Via of the request, From, To (with
 * `toTag` added when given and the request's To has none), Call-ID, CSeq.
 */
export function responseTo(req: SipMessage, status: number, o: { toTag?: string; reason?: string; method?: string; extra?: string[] } = {}): SipMessage {
  const vias = req.headerFields('via').map((v) => `Via: ${v}`);
  const to = req.header('to')!;
  const toValue = o.toTag !== undefined && req.to.tag === undefined ? `${to};tag=${o.toTag}` : to;
  const lines = [
    `SIP/2.0 ${status} ${o.reason ?? 'Reason'}`,
    ...vias,
    `From: ${req.header('from')}`,
    `To: ${toValue}`,
    `Call-ID: ${req.callId}`,
    `CSeq: ${req.cseq.seq} ${o.method ?? req.method}`,
    ...(o.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ];
  return sip(lines.join('\n'));
}
