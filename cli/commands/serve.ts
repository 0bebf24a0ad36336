import type { Command } from 'commander';
import { loadConfigFile } from '../../src/config/load.js';
import { applyConfig, defaultConfig, type ProxyConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { describeLocation } from '../../src/store/location.js';

interface ServeFlags {
  config?: string;
  listen?: string[];
  forward?: string;
  db?: string;
  control?: string;
  logLevel?: string;
  logFormat?: string;
  metrics?: string;
  alias?: string[];
  advertise?: string;
  node?: string;
  route?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Flags over the config file over the environment's paths over the defaults. */
export function resolveServeConfig(flags: ServeFlags): ProxyConfig {
  let config = defaultConfig();
  const env: Record<string, unknown> = {};
  if (process.env.SIPCTL_DB) env.db = process.env.SIPCTL_DB;
  if (process.env.SIPCTL_CONTROL) env.control = process.env.SIPCTL_CONTROL;
  config = applyConfig(config, env, 'environment');
  if (flags.config !== undefined) config = loadConfigFile(flags.config, config);
  const over: Record<string, unknown> = {};
  if (flags.listen !== undefined) over.listen = flags.listen;
  if (flags.forward !== undefined) over.forward = flags.forward;
  if (flags.db !== undefined) over.db = flags.db;
  if (flags.control !== undefined) over.control = flags.control;
  if (flags.alias !== undefined) over.aliases = flags.alias;
  if (flags.advertise !== undefined) over.advertise = flags.advertise;
  if (flags.logLevel !== undefined || flags.logFormat !== undefined) {
    over.log = {
      ...(flags.logLevel !== undefined ? { level: flags.logLevel } : {}),
      ...(flags.logFormat !== undefined ? { format: flags.logFormat } : {}),
    };
  }
  if (flags.metrics !== undefined) over.metrics = { listen: flags.metrics };
  if (flags.node !== undefined) over.cluster = { node: flags.node };
  if (flags.route !== undefined) over.route = { file: flags.route };
  return applyConfig(config, over, 'flags');
}

/** `sipctl serve` — run the proxy in the foreground until SIGINT / SIGTERM. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the proxy in the foreground')
    .option('--config <file>', 'config file (YAML); flags override it')
    .option('--listen <spec>', 'listen on PROTO:IP:PORT, e.g. udp:127.0.0.1:5060 or tcp:[::1]:5060 (repeatable)', collect)
    .option('--forward <uri>', 'send every initial request to this next hop, e.g. sip:10.0.0.21:5060')
    .option('--db <path|url>', 'SQLite database file, or postgres://USER@HOST:PORT/DB shared by several nodes (default ./data/sipctl.db, env SIPCTL_DB)')
    .option('--control <path>', 'control socket (default ./data/sipctl.sock, env SIPCTL_CONTROL)')
    .option('--alias <host>', 'another name or address[:port] that means this proxy (repeatable)', collect)
    .option('--advertise <host[:port]>', 'the address peers reach this proxy at, for Via and Record-Route (needed with 0.0.0.0 / [::] listeners or NAT)')
    .option('--log-level <level>', 'error, warn, info or debug')
    .option('--node <name>', 'this node\'s name in the shared database\'s node table (default HOST:PORT)')
    .option('--log-format <format>', 'text (default) or json: one JSON object per line')
    .option('--route <file>', 'a routing script of your own (.ts, .mts, .js, .mjs) instead of the default route (README "Writing routes")')
    .option('--metrics <ip:port>', 'serve Prometheus /metrics, /healthz and /readyz here, e.g. 127.0.0.1:9090 (default off)')
    .action(async (flags: ServeFlags) => {
      const config = resolveServeConfig(flags);
      const logger = new Logger({ level: config.log.level, format: config.log.format });
      // Never crash on a stray rejection or exception: log it and go on (DESIGN.md invariant).
      process.on('unhandledRejection', (reason) => logger.error('unhandled rejection', { error: String(reason) }));
      process.on('uncaughtException', (err) => logger.error('uncaught exception', { error: err.stack ?? err.message }));
      // Loaded here, not at the top: the table commands need none of the proxy.
      const { startProxy } = await import('../../src/serve/start.js');
      const proxy = await startProxy(config, { logger });
      process.stdout.write(
        `sipctl serving on ${proxy.listeners.join(', ')} (control ${config.control}, db ${describeLocation(config.db)}` +
          `${proxy.observability.proxy.metricsListen === undefined ? '' : `, metrics ${proxy.observability.proxy.metricsListen}`}, pid ${process.pid})\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          logger.info('stopping', { signal });
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      await proxy.close();
      process.exit(0);
    });
}
