/**
 * Whole calls through the proxy core, stateless and in transaction mode: CPU per message and
 * memory held per call while its transactions live (RFC 6026 Accepted, Timers J, K: up to
 * 32 s after the call, so at R calls/s about 32·R calls' worth).
 *
 *   npx tsc -p tsconfig.bench.json && node --expose-gc dist-bench/test/bench/transaction-calls.js [CALLS]
 *
 * The calls are the synthetic ones of test/bench/synthetic-call.ts (INVITE, 180, 200, ACK, BYE, 200: SIPp's
 * uac.xml), each with its own Call-ID and branches; the transport only records. CPU includes
 * building the synthetic messages (the same in both modes).
 */
import { syntheticCall, syntheticCore } from './synthetic-call.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const CALLS = Number(process.argv[2] ?? 20_000);

function run(mode: 'stateless' | 'transaction'): string {
  const { core, transport } = syntheticCore();
  (core.config as { mode: string }).mode = mode;
  let n = 0;
  const calls = (k: number): void => {
    for (let i = 0; i < k; i++) {
      n++;
      for (const m of syntheticCall(transport, n)) core.onInbound(m);
    }
  };
  calls(2_000); // compiled and warm
  gc!();
  gc!();
  const m0 = process.memoryUsage();
  const t0 = process.cpuUsage();
  calls(CALLS);
  const cpu = process.cpuUsage(t0);
  gc!();
  gc!();
  const m1 = process.memoryUsage();
  const kb = (a: number, b: number): string => ((b - a) / CALLS / 1024).toFixed(2);
  if (core.stats.replied > 0 || core.stats.dropped > 0) throw new Error(`the core replied ${core.stats.replied} / dropped ${core.stats.dropped}: the benchmark is broken`);
  return (
    `${mode.padEnd(11)} ${(((cpu.user + cpu.system) / (CALLS * 6))).toFixed(2).padStart(6)} µs/message   ` +
    `held per call: heap ${kb(m0.heapUsed, m1.heapUsed)} KB, buffers ${kb(m0.external + m0.arrayBuffers, m1.external + m1.arrayBuffers)} KB   ` +
    `live transactions ${core.stateful.live}`
  );
}

process.stdout.write(`${CALLS} calls through the core (Node ${process.version}, one core)\n`);
process.stdout.write(`${run('stateless')}\n`);
process.stdout.write(`${run('transaction')}\n`);
