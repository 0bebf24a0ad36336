/**
 * `make bench-log`: CPU per log line, sipctl's own Logger (text and JSON) against pino (JSON,
 * asynchronous destination), both writing to /dev/null, with the fields a per-message event
 * carries (method, source, proto, callId). The cost measured is everything the process
 * spends: formatting, buffering and the write system calls, until every line is written.
 *
 * Rounds alternate the three so that a noisy machine hurts them alike; medians are printed.
 * This is what chose the logger (README "Observability", Logs): the cheaper per line is kept.
 */
import { closeSync, openSync } from 'node:fs';
import pino from 'pino';
import { Logger } from '../../src/log/logger.js';

const LINES = 200_000;
const BATCH = 500; // lines per event-loop turn, like a burst of refused requests
const ROUNDS = 5;

const fields = (i: number) => ({
  method: 'INVITE',
  source: `203.0.113.${i & 255}:5060`,
  proto: 'udp',
  callId: `a84b4c76e66710-${i}@pc33.example.com`,
});

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function measure(name: string, make: (fd: number) => { line(i: number): void; drain(): Promise<void> }): Promise<number> {
  const fd = openSync('/dev/null', 'w');
  const sink = make(fd);
  const before = process.cpuUsage();
  for (let i = 0; i < LINES; i += BATCH) {
    for (let j = i; j < i + BATCH; j++) sink.line(j);
    await turn();
  }
  await sink.drain();
  const used = process.cpuUsage(before);
  closeSync(fd);
  void name;
  return ((used.user + used.system) * 1000) / LINES; // ns per line
}

function ours(format: 'text' | 'json') {
  return (fd: number) => {
    const log = new Logger({ level: 'info', format, fd, perKindPerSecond: Number.MAX_SAFE_INTEGER });
    return {
      line: (i: number) => log.info('request from an address not in the address table', fields(i)),
      drain: async () => {
        for (let k = 0; k < 1000; k++) await turn();
        log.flushSync();
      },
    };
  };
}

function viaPino(fd: number) {
  const dest = pino.destination({ dest: fd, sync: false, minLength: 4096 });
  const log = pino({ level: 'info', base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  return {
    line: (i: number) => log.info(fields(i), 'request from an address not in the address table'),
    drain: async () => {
      // Let sonic-boom's asynchronous writes finish, then write whatever is still buffered.
      for (let k = 0; k < 1000; k++) await turn();
      dest.flushSync();
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const results: Record<string, number[]> = { 'sipctl text': [], 'sipctl json': [], 'pino json (async)': [] };
  // One warm-up round each, not counted.
  await measure('warm', ours('text'));
  await measure('warm', ours('json'));
  await measure('warm', viaPino);
  for (let r = 0; r < ROUNDS; r++) {
    results['sipctl text']!.push(await measure('text', ours('text')));
    results['sipctl json']!.push(await measure('json', ours('json')));
    results['pino json (async)']!.push(await measure('pino', viaPino));
  }
  console.log(`CPU per log line, ${LINES.toLocaleString('en-US')} lines in bursts of ${BATCH}, ${ROUNDS} rounds (Node ${process.version})`);
  for (const [name, xs] of Object.entries(results)) {
    console.log(`  ${name.padEnd(20)} median ${median(xs).toFixed(0).padStart(5)} ns/line   (${xs.map((x) => x.toFixed(0)).join(', ')})`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
