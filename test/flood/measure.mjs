#!/usr/bin/env node
/**
 * The measurements behind flood control's defaults (README "Flood control"). After
 * `make build`:
 *
 *   node --expose-gc test/flood/measure.mjs            # all three
 *   node --expose-gc test/flood/measure.mjs guard      # 1 and 2 only (no sockets)
 *
 * 1. the guard's cost per message, on one core: a tracked source under its limit, a blocked
 *    source, and a spray of new addresses at the table's cap (each message takes over an entry);
 * 2. the table's memory per tracked source (heap, 100,000 sources);
 * 3. the real `sipctl serve` flooded from 127.0.0.9 at 20,000 OPTIONS/s for 5 s, with flood
 *    control off and on: the proxy's CPU time per flood message, and how many were answered.
 *
 * Not part of `make test`: the figures depend on the machine; nothing here asserts.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { FloodGuard } = await import(join(ROOT, 'dist', 'src', 'flood', 'guard.js'));

const quiet = { limited: () => undefined };

function guardFor(limits) {
  return new FloodGuard({ limits: { maxRequests: 100, windowS: 2, blockS: 120, maxTracked: 100_000, ...limits }, isExempt: () => false, log: quiet });
}

function nsPerOp(label, n, body) {
  body(Math.min(n, 200_000)); // warm up
  const t0 = process.hrtime.bigint();
  body(n);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`  ${label}: ${ns.toFixed(0)} ns per message (${(1e9 / ns / 1e6).toFixed(1)} M/s)`);
}

function measureGuard() {
  console.log('1. FloodGuard.allows, one core');
  const sources = Array.from({ length: 1000 }, (_, i) => `198.51.${i >> 8}.${i & 255}`);
  {
    // A real clock, 1,000 sources in turn: none reaches 100 messages in 2 s... unless the loop
    // is fast, so the limit is raised for this case.
    const g = guardFor({ maxRequests: 1e9 });
    nsPerOp('tracked source, under its limit (1,000 sources)', 5_000_000, (n) => {
      for (let i = 0; i < n; i++) g.allows(sources[i % 1000], 5060);
    });
  }
  {
    const g = guardFor({});
    for (let i = 0; i < 101; i++) g.allows('203.0.113.9', 5060);
    nsPerOp('blocked source (dropped)', 5_000_000, (n) => {
      for (let i = 0; i < n; i++) g.allows('203.0.113.9', 5060);
    });
  }
  {
    const g = guardFor({ maxTracked: 10_000 });
    const spray = Array.from({ length: 1 << 16 }, (_, i) => `10.${i >> 8}.${i & 255}.${i % 7}`);
    nsPerOp('spray of new addresses at the cap (10,000 tracked)', 2_000_000, (n) => {
      for (let i = 0; i < n; i++) g.allows(spray[i & 0xffff], 5060);
    });
  }

  console.log('2. memory per tracked source');
  const addresses = Array.from({ length: 100_000 }, (_, i) => `100.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  const g = guardFor({});
  for (const a of addresses) g.allows(a, 5060);
  globalThis.gc?.();
  const after = process.memoryUsage().heapUsed;
  console.log(`  100,000 sources: ${((after - before) / 1e6).toFixed(1)} MB heap, ${Math.round((after - before) / 100_000)} bytes each${globalThis.gc ? '' : ' (run with --expose-gc for a steadier figure)'}`);
  if (g.stats().tracked !== 100_000) throw new Error('the table lost sources');
}

function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in 1/100 s ticks
}

async function startProxy(dir, floodEnabled) {
  const config = join(dir, 'sipctl.yaml');
  writeFileSync(config, `flood:\n  enabled: ${floodEnabled}\n`);
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'sipctl.js'), 'serve', '--config', config, '--db', join(dir, 'db'), '--control', join(dir, 'sock'), '--listen', 'udp:127.0.0.1:0', '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /udp:127\.0\.0\.1:([0-9]+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
  return { child, port };
}

async function floodOnce(floodEnabled) {
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-measure-'));
  const { child, port } = await startProxy(dir, floodEnabled);
  await new Promise((r) => setTimeout(r, 1000)); // let start-up finish
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.9', r));
  let replies = 0;
  socket.on('message', () => replies++);
  const lp = socket.address().port;
  const bytes = Buffer.from(
    `OPTIONS sip:100@127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:${lp};branch=z9hG4bKflood1;rport\r\n` +
      `From: <sip:scanner@127.0.0.9>;tag=f1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: flood-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
  );
  const rate = 20_000;
  const total = rate * 5;
  const cpu0 = cpuMs(child.pid);
  const t0 = Date.now();
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.ceil(((Date.now() - t0) / 1000) * rate) + 200);
      while (sent < due) {
        sent++;
        socket.send(bytes, port, '127.0.0.1');
      }
      if (sent >= total || Date.now() - t0 > 20_000) resolve();
      else setTimeout(tick, 10);
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 500));
  const cpu = cpuMs(child.pid) - cpu0;
  const seconds = (Date.now() - t0) / 1000;
  socket.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `  flood control ${floodEnabled ? 'on ' : 'off'}: ${sent} sent in ${seconds.toFixed(1)} s, ${replies} answered; ` +
      `proxy CPU ${cpu.toFixed(0)} ms = ${((cpu * 1000) / sent).toFixed(1)} µs per flood message (${((cpu / 1000 / seconds) * 100).toFixed(0)} % of a core)`,
  );
}

const what = process.argv[2] ?? 'all';
measureGuard();
if (what !== 'guard') {
  console.log('3. sipctl serve flooded at 20,000 OPTIONS/s for 5 s from 127.0.0.9 (not admitted: 401 until blocked)');
  for (let round = 0; round < 2; round++) {
    await floodOnce(false);
    await floodOnce(true);
  }
}
