/**
 * Test helpers for the Prometheus exposition: fetch it over real HTTP, parse the samples,
 * and validate it with `promtool check metrics` (Debian package prometheus).
 */
import { execFileSync, spawnSync } from 'node:child_process';

/** A sample's value by its series text, e.g. `sipctl_requests_received_total{method="INVITE"}`. */
export type Samples = Map<string, number>;

export function parseExposition(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)(?: \d+)?$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The value of a series; throws when the series is missing (a missing metric must fail a test). */
export function value(samples: Samples, series: string): number {
  const v = samples.get(series);
  if (v === undefined) throw new Error(`no sample ${series} in the exposition`);
  return v;
}

export async function fetchText(url: string): Promise<{ status: number; text: string; contentType: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

export function hasPromtool(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const CI = process.env.CI === 'true' || process.env.CI === '1';
/** Run promtool checks always in CI (where a missing promtool must fail), else only when installed. */
export const RUN_PROMTOOL = CI || hasPromtool();

/** `promtool check metrics` on the text: its exit code and what it said. */
export function promtoolCheck(text: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined) throw new Error(`cannot run promtool (${r.error.message}); install it: apt-get install -y prometheus`);
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
