/**
 * `sipctl route check FILE`: what can be known about a routing script before it carries
 * calls. (1) A type check against sipctl's own types (the TypeScript compiler API; .ts and
 * .mts only). (2) The script loaded the way `serve` loads it and run, in a real proxy core
 * with a recording transport (no socket is opened), over sample requests — an initial INVITE
 * (and the PBX's 200 back through the reply hooks), a REGISTER, an in-dialog BYE and an
 * OPTIONS to the proxy — printing what the core did with each.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProxyConfig } from '../config/schema.js';
import { Logger, type LogFields, type LogLevel } from '../log/logger.js';
import { ProxyCore } from '../proxy/core.js';
import type { Dispatch } from '../proxy/services.js';
import type { SipMessage } from '../sip/message.js';
import { parseMessage } from '../sip/parse.js';
import type { Inbound, Listener, Target, Transport, TransportStats } from '../transport/types.js';
import { loadRoute } from './load.js';

/** The package root: the nearest directory above this file with sipctl's package.json (dist/src/route or src/route). */
const PACKAGE_ROOT = ((): string => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();

export interface CheckProblem {
  /** file:line:col, when known. */
  where: string | undefined;
  message: string;
}

export interface CheckReport {
  /** False for a .js script (not type-checked). */
  typeChecked: boolean;
  problems: CheckProblem[];
  /** One line per sample request and what became of it. */
  lines: string[];
}

// ---- the type check --------------------------------------------------------------------------

export async function typeCheck(file: string | readonly string[]): Promise<CheckProblem[]> {
  const files = typeof file === 'string' ? [file] : file;
  const require = createRequire(import.meta.url);
  const ts = require('typescript') as typeof import('typescript');
  const types = join(PACKAGE_ROOT, 'dist', 'src', 'route', 'index.d.ts');
  if (!existsSync(types)) throw new Error(`sipctl's types are missing (${types}): run 'make build'`);
  const typeRoots = join(PACKAGE_ROOT, 'node_modules', '@types');
  const options: import('typescript').CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    // As esbuild bundles it: ES modules, package-style resolution, no extensions needed.
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    skipLibCheck: true,
    allowImportingTsExtensions: true,
    paths: { sipctl: [types] },
    ...(existsSync(join(typeRoots, 'node')) ? { typeRoots: [typeRoots], types: ['node'] } : { types: [] }),
  };
  const program = ts.createProgram(files.map((f) => resolvePath(f)), options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  return diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file === undefined || d.start === undefined) return { where: undefined, message: `TS${d.code}: ${message}` };
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return { where: `${relative(process.cwd(), d.file.fileName) || d.file.fileName}:${line + 1}:${character + 1}`, message: `TS${d.code}: ${message}` };
  });
}

// ---- the run over sample requests ---------------------------------------------------------------

const PROXY: Listener = { id: 0, protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 };
const CALLER = { address: '198.51.100.10', port: 5060 };

/** A logger that keeps what the core logs (route errors, slow routes) instead of printing it. */
class RecordingLogger extends Logger {
  readonly records: Array<{ level: LogLevel; message: string; fields: LogFields | undefined }> = [];
  constructor() {
    super({ level: 'warn' });
  }
  override log(level: LogLevel, message: string, fields?: LogFields): void {
    if (level === 'error' || level === 'warn') this.records.push({ level, message, fields });
  }
}

/** A transport that records what would be sent. */
class RecordingTransport implements Transport {
  readonly listeners: readonly Listener[] = [PROXY];
  sent: Array<{ target: Target; bytes: Buffer }> = [];
  send(target: Target, bytes: Buffer): void {
    this.sent.push({ target, bytes });
  }
  listenerFor(): Listener {
    return PROXY;
  }
  stats(): TransportStats {
    return {} as TransportStats;
  }
  async close(): Promise<void> {}
}

function sample(method: string, opts: { uri?: string; toTag?: string; extra?: string[]; n: number }): string {
  const { address, port } = CALLER;
  return [
    `${method} ${opts.uri ?? 'sip:alice@example.com'} SIP/2.0`,
    `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bKcheck${opts.n};rport`,
    'Max-Forwards: 70',
    `From: "Bob" <sip:bob@example.com>;tag=from${opts.n}`,
    `To: <${method === 'REGISTER' ? 'sip:bob@example.com' : 'sip:alice@example.com'}>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: check-${opts.n}@sipctl`,
    `CSeq: ${opts.n} ${method}`,
    `Contact: <sip:bob@${address}:${port}>`,
    ...(opts.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Header lines of `out` that `input` did not have (Via and Max-Forwards are the core's). */
function added(input: string, out: SipMessage): string[] {
  const had = new Set(input.split('\r\n'));
  const lines = out.buffer.latin1Slice(0, out.buffer.indexOf('\r\n\r\n')).split('\r\n').slice(1);
  return lines.filter((l) => !had.has(l) && !/^(via|v|max-forwards|content-length|l|server|to|t)\s*:/i.test(l));
}

function describeSent(input: string, s: { target: Target; bytes: Buffer }): string {
  const m = parseMessage(s.bytes);
  const extra = added(input, m);
  const tail = extra.length > 0 ? ` [${extra.join(' | ')}]` : '';
  if (m.isRequest) return `forward ${m.method} ${m.currentUriText} to ${s.target.protocol}:${s.target.address}:${s.target.port}${tail}`;
  return `reply ${m.status} ${m.reason}${tail}`;
}

/** Where in the script a stack points (the first frame in `file`, mapped through its source map). */
function whereIn(stack: string, file: string): string | undefined {
  const abs = resolvePath(file);
  for (const line of stack.split('\n')) {
    const i = line.indexOf(abs);
    if (i < 0) continue;
    const m = /^(.*?):(\d+):(\d+)/.exec(line.slice(i));
    if (m) return `${relative(process.cwd(), m[1]!) || m[1]}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

export async function runSamples(file: string, config: ProxyConfig): Promise<{ lines: string[]; problems: CheckProblem[] }> {
  const lines: string[] = [];
  const problems: CheckProblem[] = [];
  const loaded = await loadRoute(file);
  const logger = new RecordingLogger();
  const dispatch: Dispatch = {
    // Set N is one destination, 192.0.2.N:5060 (TEST-NET-1: nothing is sent anywhere).
    select: (setid) => {
      const target: Target = { protocol: 'udp', address: `192.0.2.${setid % 250 || 250}`, port: 5060 };
      return { uri: `sip:${target.address}:5060`, targets: [target], setid };
    },
    // The sample PBXs (192.0.2.0/24) are our next hops: their responses are admitted.
    isNextHop: (address) => address.startsWith('192.0.2.'),
    handleProbeResponse: () => false,
  };
  // The sample caller is in group 1 of the address table (the example's 200 and 250 groups too).
  const core = new ProxyCore({
    config,
    route: loaded.route,
    acl: {
      match: (address, _port, groups) =>
        address === CALLER.address ? { id: 1, grp: groups?.[0] ?? 1, ipAddr: CALLER.address, mask: 32, port: 0, tag: null } : null,
    },
    dispatch,
    logger,
  });
  const transport = new RecordingTransport();
  core.attach(transport);

  const samples: Array<{ name: string; text: string }> = [
    { name: 'INVITE (initial)', text: sample('INVITE', { n: 1 }) },
    { name: 'REGISTER', text: sample('REGISTER', { n: 2, uri: 'sip:example.com' }) },
    { name: 'BYE (in dialog)', text: sample('BYE', { n: 3, toTag: 'pbx3', uri: 'sip:alice@192.0.2.1:5060', extra: ['Route: <sip:127.0.0.1:5060;lr>'] }) },
    { name: 'OPTIONS (to the proxy)', text: sample('OPTIONS', { n: 4, uri: 'sip:127.0.0.1:5060' }) },
  ];
  for (const s of samples) {
    transport.sent = [];
    const errorsBefore = logger.records.length;
    const inbound: Inbound = { bytes: Buffer.from(s.text, 'latin1'), protocol: 'udp', sourceAddress: CALLER.address, sourcePort: CALLER.port, listener: PROXY };
    core.onInbound(inbound);
    // An async route decides later: wait for a forward or a final reply, bounded by its timeout.
    const deadline = Date.now() + config.route.asyncTimeoutMs + 200;
    while (!transport.sent.some((x) => !isProvisional(x.bytes)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const out = transport.sent.map((x) => describeSent(s.text, x));
    lines.push(`${s.name}: ${out.length === 0 ? 'nothing sent (dropped)' : out.join('; ')}`);
    // The PBX's answer to a forwarded INVITE, back through the reply hooks.
    const fwd = transport.sent.find((x) => parseMessage(x.bytes).isRequest);
    if (fwd !== undefined && s.name.startsWith('INVITE')) {
      transport.sent = [];
      const ok = okFor(fwd.bytes);
      core.onInbound({ bytes: ok, protocol: 'udp', sourceAddress: fwd.target.address, sourcePort: fwd.target.port, listener: PROXY });
      await new Promise((r) => setTimeout(r, 5));
      const back = transport.sent.filter((x) => !parseMessage(x.bytes).isRequest).map((x) => `relayed ${describeSent(ok.toString('latin1'), x).replace(/^reply /, '')}`);
      lines.push(`  200 OK from the PBX: ${back.length === 0 ? 'not relayed (dropped by the reply hook)' : back.join('; ')}`);
    }
    for (const r of logger.records.slice(errorsBefore)) {
      const stack = typeof r.fields?.error === 'string' ? r.fields.error : undefined;
      const what = `${s.name}: ${r.message}${stack === undefined ? '' : `: ${stack.split('\n')[0]}`}`;
      if (r.level === 'error') problems.push({ where: stack === undefined ? undefined : whereIn(stack, file), message: what });
      else lines.push(`  warning: ${r.message}${r.fields?.ms !== undefined ? ` (${r.fields.ms} ms)` : ''}`);
    }
  }
  return { lines, problems };
}

function isProvisional(bytes: Buffer): boolean {
  return bytes.latin1Slice(0, 9) === 'SIP/2.0 1';
}

/** A 200 OK to a forwarded request, as the PBX would send it (its Vias, a To tag, a Contact). */
function okFor(request: Buffer): Buffer {
  const m = parseMessage(request);
  const vias = m.headerFields('via').map((v) => `Via: ${v}`);
  return Buffer.from(
    [
      'SIP/2.0 200 OK',
      ...vias,
      `From: ${m.header('from')}`,
      `To: ${m.header('to')};tag=pbx1`,
      `Call-ID: ${m.header('call-id')}`,
      `CSeq: ${m.header('cseq')}`,
      'Contact: <sip:alice@192.0.2.1:5060>',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

export function isTypeScript(file: string): boolean {
  const e = extname(file);
  return e === '.ts' || e === '.mts';
}
