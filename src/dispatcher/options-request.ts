/**
 * The OPTIONS request a health probe sends (RFC 3261 §11: "querying for capabilities",
 * with the mandatory headers of §8.1.1). Built as bytes once per probe; retransmissions
 * reuse the same bytes, as a client transaction must (§17.1.2.2).
 */
import { randomBytes } from 'node:crypto';

/** Every probe branch starts with this: the RFC 3261 magic cookie plus sipctl's probe mark. */
export const PROBE_BRANCH_PREFIX = 'z9hG4bKsipctlp.';

export interface LocalVia {
  transport: 'UDP' | 'TCP';
  host: string;
  port: number;
}

export interface OptionsRequest {
  /** The destination URI (our Request-URI and To). */
  requestUri: string;
  via: LocalVia;
  branch: string;
  /** From URI; default sip:sipctl@<via host>. */
  fromUri?: string;
  userAgent: string;
}

let branchCounter = 0;

/** A branch unique in space and time (§8.1.1.7), recognisable as a probe's. */
export function newProbeBranch(): string {
  branchCounter = (branchCounter + 1) % 0x7fffffff;
  return `${PROBE_BRANCH_PREFIX}${branchCounter.toString(36)}.${randomBytes(6).toString('hex')}`;
}

/** True for a branch this module generated: a prefix compare, cheap enough per response. */
export function isProbeBranch(branch: string | undefined): boolean {
  return branch !== undefined && branch.startsWith(PROBE_BRANCH_PREFIX);
}

function hostForHeader(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function buildOptionsRequest(r: OptionsRequest): Buffer {
  const host = hostForHeader(r.via.host);
  const from = r.fromUri ?? `sip:sipctl@${host}`;
  const tag = randomBytes(6).toString('hex');
  const callId = `${randomBytes(10).toString('hex')}@${host}`;
  const lines = [
    `OPTIONS ${r.requestUri} SIP/2.0`,
    // rport (RFC 3581) so the answer comes back to the port we sent from, through NAT too.
    `Via: SIP/2.0/${r.via.transport} ${host}:${r.via.port};branch=${r.branch};rport`,
    'Max-Forwards: 70',
    `From: <${from}>;tag=${tag}`,
    `To: <${r.requestUri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    `User-Agent: ${r.userAgent}`,
    // §11.1: Accept says what body we would understand in the answer.
    'Accept: application/sdp',
    'Content-Length: 0',
    '',
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}
