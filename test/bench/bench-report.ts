/**
 * `make bench`, second half: read the raw figures lines that bench.sh collected (one per run of
 * loadtest.sh, for sipctl and for Kamailio, alternating) and summarise them per offered rate.
 *
 *   node dist-bench/test/bench/bench-report.js RESULTS_FILE [--markdown OUT]
 *
 * RESULTS_FILE holds, among header and comment lines, one line per run:
 *   run round=1 rate=1000 proxy=sipctl offered_cps=1000 ok=8000 failed=0 ... sipp_rc=0
 *   run round=1 rate=1000 proxy=kamailio error=proxy exited at start
 * Prints a table to stdout; with --markdown also writes the same table in Markdown.
 *
 * Medians, not means: the machine is shared and one disturbed run should not move the figure
 * (DESIGN.md, "Measuring"). The CPU ratio is the ratio of the two medians; the paired per-round
 * ratios are listed as well, since both proxies of one round saw the same machine conditions.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import Table from 'cli-table3';

type Proxy = 'sipctl' | 'kamailio' | 'floor';
const PROXIES: readonly Proxy[] = ['sipctl', 'kamailio', 'floor'];
const LABEL: Record<Proxy, string> = { sipctl: 'sipctl', kamailio: 'Kamailio', floor: 'floor (bare Node relay)' };

/** One run of loadtest.sh; `figures` is undefined when the run printed no figures line. */
interface Run {
  round: number;
  rate: number;
  proxy: Proxy;
  figures?: Figures;
}

interface Figures {
  ok: number;
  failed: number;
  pbxFailed: number;
  cpuMsPer1k: number;
  inviteRtMs: number;
  rssKb: number;
}

function parseFields(line: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const word of line.split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return fields;
}

function numberField(fields: Map<string, string>, name: string): number {
  const v = Number(fields.get(name));
  if (!Number.isFinite(v)) throw new Error(`figures line has no numeric ${name}=`);
  return v;
}

function parseRuns(text: string): Run[] {
  const runs: Run[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('run ')) continue;
    const f = parseFields(line);
    const proxy = f.get('proxy');
    if (proxy !== 'sipctl' && proxy !== 'kamailio' && proxy !== 'floor') throw new Error(`unknown proxy in: ${line}`);
    const run: Run = { round: numberField(f, 'round'), rate: numberField(f, 'rate'), proxy };
    if (f.has('offered_cps')) {
      run.figures = {
        ok: numberField(f, 'ok'),
        failed: numberField(f, 'failed'),
        pbxFailed: numberField(f, 'pbx_failed'),
        cpuMsPer1k: numberField(f, 'cpu_ms_per_1k_calls'),
        inviteRtMs: numberField(f, 'invite_rt_ms'),
        rssKb: numberField(f, 'proxy_rss_kb'),
      };
    }
    runs.push(run);
  }
  return runs;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const fixed = (v: number | undefined, digits: number): string => (v === undefined ? '–' : v.toFixed(digits));

interface Summary {
  runs: number;
  measured: number;
  cpu?: number;
  cpuMin?: number;
  cpuMax?: number;
  failed?: number;
  failedSum: number;
  pbxFailed?: number;
  pbxFailedSum: number;
  calls: number;
  rtMs?: number;
  rssMb?: number;
}

function summarise(runs: Run[]): Summary {
  const measured = runs.flatMap((r) => (r.figures ? [r.figures] : []));
  // loadtest.sh prints cpu_ms_per_1k_calls=-1 when no call succeeded: no cost per call to speak of.
  const cpu = measured.map((m) => m.cpuMsPer1k).filter((v) => v >= 0);
  return {
    runs: runs.length,
    measured: measured.length,
    cpu: median(cpu),
    cpuMin: cpu.length ? Math.min(...cpu) : undefined,
    cpuMax: cpu.length ? Math.max(...cpu) : undefined,
    failed: median(measured.map((m) => m.failed)),
    failedSum: sum(measured.map((m) => m.failed)),
    pbxFailed: median(measured.map((m) => m.pbxFailed)),
    pbxFailedSum: sum(measured.map((m) => m.pbxFailed)),
    calls: sum(measured.map((m) => m.ok + m.failed)),
    rtMs: median(measured.map((m) => m.inviteRtMs)),
    rssMb: median(measured.map((m) => m.rssKb / 1024)),
  };
}

interface Row {
  rate: number;
  proxy: Proxy;
  s: Summary;
  ratio?: number;
  /** CPU over the floor's, when the floor ran. */
  overFloor?: number;
}

/** Per-round CPU ratios of proxy a over proxy b: both ran back to back in each round. */
function pairedRatios(runs: Run[], rate: number, a: Proxy = 'sipctl', b: Proxy = 'kamailio'): number[] {
  const ratios: number[] = [];
  const rounds = [...new Set(runs.filter((r) => r.rate === rate).map((r) => r.round))].sort((a, b) => a - b);
  for (const round of rounds) {
    const cpuOf = (proxy: Proxy): number | undefined =>
      runs.find((r) => r.rate === rate && r.round === round && r.proxy === proxy)?.figures?.cpuMsPer1k;
    const x = cpuOf(a);
    const y = cpuOf(b);
    if (x !== undefined && y !== undefined && x >= 0 && y > 0) ratios.push(x / y);
  }
  return ratios;
}

const HEAD = [
  'calls/s',
  'proxy',
  'runs',
  'CPU ms/1k calls (min–max)',
  'CPU ratio sipctl/Kam.',
  'CPU / floor',
  'failed (all runs)',
  'PBX failed (all runs)',
  'INVITE rt ms',
  'RSS MB',
];

function cells(row: Row): string[] {
  const s = row.s;
  const range = s.cpuMin === undefined ? '' : ` (${s.cpuMin.toFixed(1)}–${s.cpuMax!.toFixed(1)})`;
  return [
    String(row.rate),
    LABEL[row.proxy],
    s.measured === s.runs ? String(s.runs) : `${s.measured} of ${s.runs}`,
    `${fixed(s.cpu, 1)}${range}`,
    row.proxy === 'sipctl' ? (row.ratio === undefined ? '–' : `${row.ratio.toFixed(2)}×`) : '',
    row.overFloor === undefined ? '' : `${row.overFloor.toFixed(2)}×`,
    s.failed === undefined ? '–' : `${fixed(s.failed, 0)} (${s.failedSum}/${s.calls})`,
    s.pbxFailed === undefined ? '–' : `${fixed(s.pbxFailed, 0)} (${s.pbxFailedSum})`,
    fixed(s.rtMs, 2),
    fixed(s.rssMb, 1),
  ];
}

function buildRows(runs: Run[]): Row[] {
  const rows: Row[] = [];
  const rates = [...new Set(runs.map((r) => r.rate))].sort((a, b) => a - b);
  for (const rate of rates) {
    const [sip, kam, floor] = PROXIES.map((p) => summarise(runs.filter((r) => r.rate === rate && r.proxy === p)));
    const ratio = sip!.cpu !== undefined && kam!.cpu ? sip!.cpu / kam!.cpu : undefined;
    const over = (x: Summary): number | undefined => (x.cpu !== undefined && floor!.cpu ? x.cpu / floor!.cpu : undefined);
    rows.push({ rate, proxy: 'sipctl', s: sip!, ratio, overFloor: over(sip!) }, { rate, proxy: 'kamailio', s: kam!, overFloor: over(kam!) });
    if (floor!.runs > 0) rows.push({ rate, proxy: 'floor', s: floor!, overFloor: floor!.cpu ? 1 : undefined });
  }
  return rows;
}

function notes(runs: Run[], rows: Row[]): string[] {
  const lines: string[] = [];
  for (const rate of [...new Set(rows.map((r) => r.rate))]) {
    const ratios = pairedRatios(runs, rate);
    if (ratios.length) lines.push(`${rate} calls/s, CPU ratio per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
    const sf = pairedRatios(runs, rate, 'sipctl', 'floor');
    const kf = pairedRatios(runs, rate, 'kamailio', 'floor');
    if (sf.length) lines.push(`${rate} calls/s, per round: sipctl / floor ${sf.map((r) => r.toFixed(2)).join(', ')}; Kamailio / floor ${kf.map((r) => r.toFixed(2)).join(', ')}`);
  }
  return lines;
}

function markdown(runs: Run[]): string {
  const rows = buildRows(runs);
  const out = [`| ${HEAD.join(' | ')} |`, `| ${HEAD.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`];
  for (const row of rows) out.push(`| ${cells(row).join(' | ')} |`);
  out.push(
    '',
    'Medians over the runs. CPU: user + system time of the proxy\'s process group per 1,000 calls.',
    'failed: calls SIPp\'s caller counted as failed; PBX failed: calls a SIPp PBX failed or never completed.',
    'INVITE rt: SIPp\'s mean INVITE-to-200 time, in whole milliseconds (0 means under 1 ms). RSS: at the end of the run.',
  );
  for (const n of notes(runs, rows)) out.push(`- ${n}`);
  return `${out.join('\n')}\n`;
}

function consoleTable(runs: Run[]): string {
  const rows = buildRows(runs);
  const t = new Table({
    head: HEAD,
    style: { head: [], border: [] },
    colAligns: ['right', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  });
  for (const row of rows) t.push(cells(row));
  return `${t.toString()}\n${notes(runs, rows).join('\n')}\n`;
}

function main(argv: string[]): void {
  const file = argv[0];
  const mdAt = argv.indexOf('--markdown');
  const mdOut = mdAt >= 0 ? argv[mdAt + 1] : undefined;
  if (!file || (mdAt >= 0 && !mdOut)) {
    process.stderr.write('usage: bench-report.js RESULTS_FILE [--markdown OUT]\n');
    process.exit(2);
  }
  const runs = parseRuns(readFileSync(file, 'utf8'));
  if (runs.length === 0) throw new Error(`${file} holds no "run ..." lines`);
  process.stdout.write(consoleTable(runs));
  if (mdOut) writeFileSync(mdOut, markdown(runs));
}

main(process.argv.slice(2));
