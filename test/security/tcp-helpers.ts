/**
 * Shared by the TCP hardening tests (issue 8): the running proxy's transport counters and
 * memory over its control socket, and a config file in the proxy's temp dir.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlRequest } from '../../src/control/index.js';
import type { TransportStats } from '../../src/transport/types.js';
import type { ProxyProcess } from '../helpers/proxy.js';

export interface ProxyStatus {
  transport: TransportStats;
  /** Resident set size of the proxy process, bytes. */
  rss: number;
}

export async function proxyStatus(proxy: ProxyProcess): Promise<ProxyStatus> {
  const status = (await controlRequest(proxy.control, 'status', {}, { timeoutMs: 10_000 })) as {
    transport: TransportStats;
    memory: { rss: number };
  };
  return { transport: status.transport, rss: status.memory.rss };
}

/** `yaml` in a temp file, for `--config PATH`; remove() deletes it. */
export function configFile(yaml: string): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-tcp-sec-'));
  const path = join(dir, 'sipctl.yaml');
  writeFileSync(path, yaml);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const MB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
