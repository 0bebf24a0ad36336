/**
 * What the running proxy holds, as plain JSON (the control socket's `dispatcher.dump`,
 * shown by `sipctl dispatcher dump`). Kamailio's dispatcher.list shows a state as two
 * letters; they are given too, so a Kamailio user reads them the familiar way.
 */
import type { DispatcherSets } from './sets.js';
import type { Destination } from './types.js';
import type { Target } from '../transport/types.js';

export interface DumpProbe {
  at: string;
  ok: boolean;
  status?: number;
  latencyMs?: number;
  reason?: string;
}

export interface DumpDestination {
  id: number;
  uri: string;
  state: Destination['state'];
  /** Kamailio letters: A/I/D/T (active, inactive, disabled, trying) + P/X (probed or not). */
  flags: string;
  priority: number;
  attrs: string;
  description: string;
  targets: Target[];
  resolvedVia: string;
  requestsSent: number;
  /** Requests sent in the last 60 s (null when the proxy does not sample them). */
  requestsLastMinute: number | null;
  lastProbe: DumpProbe | null;
  /** Probe round-trip time: the last answered probe's and the moving average (RFC 6298 smoothing), ms; null before any answer. */
  probeLatencyMs: { last: number | null; avg: number } | null;
  /** Probes that failed since the destination was loaded. */
  probeFailures: number;
  /** Requests moved from it to another destination (failover; 0 while the proxy is stateless). */
  failovers: number;
  /** Branches to it that timed out (transaction mode). */
  timeouts: number;
  /** Calls (dialogs) on it now; 0 unless dialog tracking is on (call-load, algorithm 10). */
  activeCalls: number;
  stateSince: string;
  stateReason: string;
}

export interface Dump {
  sets: { setid: number; destinations: DumpDestination[] }[];
}

/**
 * Kamailio's letter pair. First letter: A active, T trying (active but its last probes
 * failed, short of the threshold), I inactive or probing (not picked), D disabled.
 * Second letter: P when probes run for it, X otherwise (disabled is never probed).
 */
export function kamailioStateLetters(d: Destination, probing: boolean): string {
  if (d.state === 'disabled') return 'DX';
  const p = probing ? 'P' : 'X';
  if (d.state === 'active') return (d.health.failures > 0 ? 'T' : 'A') + p;
  return 'I' + (d.state === 'probing' ? 'P' : p);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function dumpSets(
  sets: DispatcherSets,
  isProbed: (setid: number) => boolean = () => false,
  sentLastMinute?: (d: Destination) => number,
): Dump {
  return {
    sets: sets.setIds().map((setid) => {
      const probed = isProbed(setid);
      return {
        setid,
        destinations: sets.set(setid)!.destinations.map((d) => {
          const lp = d.stats.lastProbe;
          return {
            id: d.id,
            uri: d.uri,
            state: d.state,
            flags: kamailioStateLetters(d, probed),
            priority: d.priority,
            attrs: d.attrsText,
            description: d.description,
            targets: d.targets.map((t) => ({ protocol: t.protocol, address: t.address, port: t.port })),
            resolvedVia: d.resolvedVia,
            requestsSent: d.stats.requestsSent,
            requestsLastMinute: sentLastMinute === undefined ? null : sentLastMinute(d),
            lastProbe: lp === undefined ? null : { ...lp, at: iso(lp.at) },
            probeLatencyMs:
              d.stats.probeLatencyAvgMs === undefined
                ? null
                : { last: lp?.latencyMs ?? null, avg: Math.round(d.stats.probeLatencyAvgMs * 10) / 10 },
            probeFailures: d.stats.probeFailures,
            failovers: d.stats.failovers,
            timeouts: d.stats.timeouts,
            activeCalls: d.stats.calls.active,
            stateSince: iso(d.stats.stateSince),
            stateReason: d.stats.stateReason,
          };
        }),
      };
    }),
  };
}
