/**
 * The hardening issue's closing check: tried against the proxy as an attacker would, from
 * loopback addresses that are not in the address table, while an admitted caller makes real
 * SIPp calls. Hundreds of attacker addresses send, for 15 s: the costliest 64 KB requests
 * (test/bench/crafted.ts), forged responses with our Via on top, seeded mutations of every
 * kind of message (test/helpers/mutate.ts), garbage, and TCP connection attempts. No call may
 * fail, the proxy must stay up, and its RSS must stay under 150 MB.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { craftedRequests } from '../bench/crafted.js';
import { mutationAt, type MutationContext, UDP_MAX_PAYLOAD } from '../helpers/mutate.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { UdpPeer } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

const ATTACKERS = 120; // UDP sources 127.0.1.1 ... (none of them in the address table)
const ATTACK_MS = 15_000;
const CALLS = 300;
const RATE = 20;

/** The process's CPU time so far, in ms (utime + stime, 100 ticks/s). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets). */
function udpReceiveErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const head = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[head.indexOf('RcvbufErrors')]);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

describe.skipIf(!RUN_SIPP)('an attacker from unadmitted addresses, while an admitted caller calls', () => {
  let proxy: ProxyProcess;
  let uas: Uas;
  const attackers: UdpPeer[] = [];

  beforeAll(async () => {
    const uasPort = await freePort();
    uas = await startUas(uasPort, 'u1');
    proxy = await startProxyProcess({
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${uasPort}`],
      ],
    });
    for (let i = 0; i < ATTACKERS; i++) attackers.push(await UdpPeer.open(`127.0.1.${i + 1}`));
  });

  afterAll(async () => {
    await proxy?.stop();
    await uas?.stop();
    await Promise.all(attackers.map((a) => a.close()));
  });

  it(`loses none of ${CALLS} calls, stays up, and stays under 150 MB`, async () => {
    const udpPort = proxy.ports.udp!;
    const tcpPort = proxy.ports.tcp!;
    const pid = proxy.child.pid!;
    const crafted = Object.values(craftedRequests(udpPort));
    const ctx: MutationContext = {
      transport: 'UDP',
      proxyUdpPort: udpPort,
      proxyPort: udpPort,
      senderPort: 5060,
      sinkPort: 5061,
      pbxPort: 5062,
      maxBytes: UDP_MAX_PAYLOAD,
    };
    // A forged final response: our Via on top (any branch), the caller's below.
    const forged = (n: number): string =>
      [
        'SIP/2.0 486 Busy Here',
        `Via: SIP/2.0/UDP 127.0.0.1:${udpPort};branch=z9hG4bKsc.forged${n}`,
        `Via: SIP/2.0/UDP 127.0.0.1:${5100 + (n % 50)};branch=z9hG4bK-${n};received=127.0.0.1;rport=${5100 + (n % 50)}`,
        `From: <sip:a@127.0.0.1>;tag=${n}`,
        'To: <sip:b@127.0.0.1>;tag=x',
        `Call-ID: forged-${n}`,
        'CSeq: 1 INVITE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');

    let maxRss = rssMb(pid);
    const sampler = setInterval(() => {
      try {
        maxRss = Math.max(maxRss, rssMb(pid));
      } catch {
        // the process is gone: the assertions below say so
      }
    }, 250);

    const calls = runUac({ proxyPort: udpPort, calls: CALLS, rate: RATE });
    let sent = 0;
    let tcpAttempts = 0;
    const attack = (async () => {
      const end = Date.now() + ATTACK_MS;
      let round = 0;
      while (Date.now() < end) {
        for (let i = 0; i < attackers.length; i++) {
          const a = attackers[i]!;
          const n = round * attackers.length + i;
          switch (n % 4) {
            case 0:
              a.send(crafted[n % crafted.length]!, udpPort);
              break;
            case 1:
              a.send(forged(n), udpPort);
              break;
            case 2:
              a.send(mutationAt(8, n, ctx).bytes, udpPort);
              break;
            default:
              a.send(Buffer.from(`garbage ${n} `.repeat(1 + (n % 200))), udpPort);
          }
          sent++;
        }
        // TCP from addresses not in the table: each is closed at accept.
        for (let k = 0; k < 10; k++) {
          const s = connect({ port: tcpPort, host: '127.0.0.1', localAddress: `127.0.2.${1 + ((round * 10 + k) % 250)}` });
          s.on('error', () => {});
          s.on('connect', () => s.write('INVITE sip:x@127.0.0.1 SIP/2.0\r\n'));
          setTimeout(() => s.destroy(), 2000);
          tcpAttempts++;
        }
        round++;
        await new Promise((r) => setTimeout(r, 100)); // ~1,200 datagrams/s
      }
    })();

    const cpuBefore = cpuMs(pid);
    const drops0 = udpReceiveErrors();
    const t0 = Date.now();
    const [r] = await Promise.all([calls, attack]);
    clearInterval(sampler);
    const cpuShare = (cpuMs(pid) - cpuBefore) / (Date.now() - t0);
    // For the record (and for diagnosis when a call fails): how busy the proxy was, and how
    // many datagrams the kernel dropped because a socket's buffer was full.
    console.log(`attack: ${sent} datagrams, ${tcpAttempts} TCP attempts; proxy CPU ${(cpuShare * 100).toFixed(0)} % of a core, peak RSS ${maxRss.toFixed(0)} MB, kernel UDP receive drops ${udpReceiveErrors() - drops0}`);
    expect(proxy.child.exitCode, proxy.stderr()).toBeNull();
    expect(sent).toBeGreaterThan(10_000);
    expect(tcpAttempts).toBeGreaterThan(500);
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(CALLS);
    expect(maxRss).toBeLessThan(150);
    expect(proxy.stderr()).not.toMatch(/uncaught|unhandled|internal error|the request route threw/i);
  }, 120_000);
});
