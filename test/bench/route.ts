/**
 * `make bench-route`: what a routing script loaded from a file costs, per call, against the
 * built-in default route — in the real proxy core, one core, no sockets (test/bench/synthetic-call.ts:
 * a recording transport and synthetic calls: INVITE, 180, 200, ACK, BYE, 200).
 *
 *   built-in      createDefaultRoute (src/route/default.ts), compiled with sipctl
 *   user .ts      the same route as a user module (`sipctl route init`'s starter), loaded
 *                 through src/route/load.ts (esbuild) like `serve --route`
 *   rewriting     that module plus, on every request, a From rewrite on initial INVITEs
 *                 ($fU = ...) and an added header (append_hf)
 *
 * CPU time (process.cpuUsage), rounds alternating between the variants, median per variant;
 * the ratios to built-in are what to read (the machine is shared and noisy).
 *   BENCH_ROUNDS (default 7), BENCH_CALLS per round and variant (default 20000)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Route } from '../../src/route/api.js';
import { loadRoute } from '../../src/route/load.js';
import { STARTER_ROUTE } from '../../src/route/starter.js';
import { syntheticCall, syntheticCore } from './synthetic-call.js';

const REWRITING = STARTER_ROUTE.replace(
  '    const method = ctx.msg.method; // $rm\n',
  "    const method = ctx.msg.method; // $rm\n    if (method === 'INVITE' && !ctx.inDialog) ctx.setFromUser('Nick Blog Example');\n    ctx.appendHeader('X-Proxied', 'You betcha');\n",
);

let callNo = 0;

function measure(route: Route | undefined, calls: number): number {
  const { core, transport } = syntheticCore();
  if (route !== undefined) core.route = route;
  const run = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const k = callNo++;
      for (const inbound of syntheticCall(transport, k)) core.onInbound(inbound);
    }
  };
  run(3000); // the JIT settles
  const forwarded = core.stats.forwarded + core.stats.responsesForwarded;
  const c0 = process.cpuUsage();
  run(calls);
  const c = process.cpuUsage(c0);
  const relayed = core.stats.forwarded + core.stats.responsesForwarded - forwarded;
  if (relayed !== calls * 6) throw new Error(`${relayed} of ${calls * 6} messages relayed: the benchmark is broken`);
  return (c.user + c.system) / calls; // µs per call
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
  const calls = Number(process.env.BENCH_CALLS ?? 20_000);
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-bench-route-'));
  try {
    writeFileSync(join(dir, 'default.ts'), STARTER_ROUTE);
    writeFileSync(join(dir, 'rewriting.ts'), REWRITING);
    if (REWRITING === STARTER_ROUTE) throw new Error('the rewriting route is the starter: the benchmark is broken');
    const variants: Array<{ name: string; route: Route | undefined; us: number[] }> = [
      { name: 'built-in default route', route: undefined, us: [] },
      { name: 'default route as a user .ts', route: (await loadRoute(join(dir, 'default.ts'))).route, us: [] },
      { name: 'user .ts: From rewrite + a header', route: (await loadRoute(join(dir, 'rewriting.ts'))).route, us: [] },
    ];
    for (let r = 0; r < rounds; r++) for (const v of variants) v.us.push(measure(v.route, calls));
    const base = median(variants[0]!.us);
    console.log(`route bench: ${rounds} rounds x ${calls} calls (6 messages each) per variant, CPU time, medians`);
    for (const v of variants) {
      const m = median(v.us);
      console.log(`  ${v.name.padEnd(36)} ${m.toFixed(2).padStart(7)} µs/call  ${((m / base - 1) * 100).toFixed(1).padStart(6)} % vs built-in   (rounds: ${v.us.map((x) => x.toFixed(1)).join(' ')})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
