/**
 * `sipctl top` — a live view of the running proxy, refreshed every second: calls/s and
 * messages/s, refusals and drops per second, and per destination its state, share of the
 * traffic, requests/s, probe latency (last / moving average) and probe failures.
 *
 * On a terminal it redraws in place until Ctrl-C; when stdout is not a terminal (a pipe, a
 * file, a test) it prints plain frames one after another. `--count N` stops after N frames
 * and `--once` after one, for scripts.
 *
 * Rates are differences between two polls of the control socket divided by the time between
 * them; the first frame uses the proxy's own last-10-s rates and last-minute counts.
 */
import type { Command } from 'commander';
import { resolveControlPath } from '../../src/config/paths.js';
import { CONTROL_COMMANDS, controlRequest } from '../../src/control/index.js';
import type { Dump } from '../../src/dispatcher/dump.js';
import { SipctlError, usageError } from '../../src/errors.js';
import { renderTable, type CellValue } from '../output.js';
import { CONTROL_HELP, type ControlOption } from '../common.js';
import { durationText, requestStatusView, timeText, type StatusView } from './status.js';

interface TopOptions extends ControlOption {
  interval?: string;
  count?: string;
  once?: boolean;
}

interface Poll {
  at: number;
  status: StatusView;
  dump: Dump;
}

function positiveNumber(text: string, what: string, min: number, max: number, integer: boolean): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw usageError('E_CLI_BAD_OPTION', `${what}: expected ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return v;
}

async function poll(path: string): Promise<Poll> {
  const status = await requestStatusView(path);
  const dump = (await controlRequest(path, CONTROL_COMMANDS.dispatcherDump, {})) as Dump;
  if (dump === null || typeof dump !== 'object' || !Array.isArray(dump.sets)) {
    throw new SipctlError('E_CONTROL_BAD_REPLY', `the proxy on ${path} answered 'dispatcher.dump' in a shape this sipctl does not know`);
  }
  return { at: Date.now(), status, dump };
}

const rate = (now: number, before: number, seconds: number): number => (seconds > 0 ? Math.max(0, now - before) / seconds : 0);
const fixed = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** One frame of text (no escape codes). */
export function renderFrame(cur: Poll, prev: Poll | undefined): string {
  const s = cur.status;
  const secs = prev === undefined ? 0 : (cur.at - prev.at) / 1000;
  const p = prev?.status;
  const calls = p === undefined ? s.rates.callsPerS.recent : rate(s.messages.calls, p.messages.calls, secs);
  const messages = p === undefined ? s.rates.messagesPerS.recent : rate(s.messages.received, p.messages.received, secs);
  const refused = p === undefined ? 0 : rate(s.messages.refused, p.messages.refused, secs);
  const dropped = p === undefined ? 0 : rate(s.messages.dropped, p.messages.dropped, secs);
  const head = [
    `sipctl top - pid ${s.pid}, ${s.mode}, up ${durationText(s.uptimeS)} - ${timeText(new Date(cur.at).toISOString())}`,
    `calls/s ${fixed(calls)}   messages/s ${fixed(messages)}   refused/s ${fixed(refused)}   dropped/s ${fixed(dropped)}   ` +
      `tcp ${s.tcp.inbound} in / ${s.tcp.outbound} out   transactions ${s.transactions === null ? '-' : s.transactions.inUse}   ` +
      `lag ${s.eventLoopLagMs} ms   rss ${(s.memory.rss / 1048576).toFixed(0)} MB`,
  ];
  // Per destination: requests/s from the two polls (or the proxy's last minute, first frame).
  const before = new Map<string, number>();
  if (prev !== undefined) for (const set of prev.dump.sets) for (const d of set.destinations) before.set(`${set.setid} ${d.uri}`, d.requestsSent);
  const rows: { cells: CellValue[]; perS: number; setid: number }[] = [];
  const setTotals = new Map<number, number>();
  for (const set of cur.dump.sets) {
    for (const d of set.destinations) {
      const was = before.get(`${set.setid} ${d.uri}`);
      const perS =
        prev === undefined || was === undefined ? (d.requestsLastMinute ?? 0) / 60 : rate(d.requestsSent, was, secs);
      setTotals.set(set.setid, (setTotals.get(set.setid) ?? 0) + perS);
      const lat = d.probeLatencyMs;
      rows.push({
        setid: set.setid,
        perS,
        cells: [
          set.setid,
          d.uri,
          d.state,
          '',
          fixed(perS),
          lat === null || lat === undefined ? '-' : `${lat.last ?? '-'} / ${lat.avg}`,
          d.probeFailures ?? 0,
          d.lastProbe === null ? '-' : d.lastProbe.ok ? 'ok' : 'FAIL',
        ],
      });
    }
  }
  for (const r of rows) {
    const total = setTotals.get(r.setid) ?? 0;
    r.cells[3] = total > 0 ? `${((100 * r.perS) / total).toFixed(1)}%` : '-';
  }
  const table =
    rows.length === 0
      ? s.mode === 'forward'
        ? '(forward mode: no dispatcher sets)'
        : '(no dispatcher sets loaded)'
      : renderTable(
          ['set', 'destination', 'state', 'share', 'req/s', 'probe ms last / avg', 'probe fails', 'last probe'],
          rows.map((r) => r.cells),
          { align: ['right', 'left', 'left', 'right', 'right', 'right', 'right', 'left'] },
        );
  return `${head.join('\n')}\n${table}\n`;
}

async function topCommand(opts: TopOptions): Promise<void> {
  const path = resolveControlPath(opts.control);
  const intervalMs = opts.interval === undefined ? 1000 : positiveNumber(opts.interval, '--interval', 0.1, 3600, false) * 1000;
  const count = opts.once ? 1 : opts.count === undefined ? Infinity : positiveNumber(opts.count, '--count', 1, 1_000_000, true);
  const tty = process.stdout.isTTY === true;
  let stop = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    stop = true;
    wake?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let prev: Poll | undefined;
  try {
    for (let frame = 0; frame < count && !stop; frame++) {
      if (frame > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, intervalMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        if (stop) break;
      }
      const cur = await poll(path);
      const text = renderFrame(cur, prev);
      // A terminal: home the cursor and clear, so the frame redraws in place. Otherwise frames
      // follow one another, separated by an empty line.
      process.stdout.write(tty ? `\x1b[H\x1b[2J${text}` : `${frame > 0 ? '\n' : ''}${text}`);
      prev = cur;
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

export function registerTop(program: Command): void {
  program
    .command('top')
    .description('live view of the running proxy, refreshed every second until Ctrl-C: calls/s, drops, per-destination share and probe latency')
    .option('--interval <seconds>', 'seconds between frames (default 1)')
    .option('--count <n>', 'stop after n frames (for scripts)')
    .option('--once', 'print one frame and exit (same as --count 1)')
    .option('--control <path>', CONTROL_HELP)
    .action(topCommand);
}
