/**
 * `sipctl route ...` — routing scripts of your own (README "Writing routes"):
 *
 *   route init [FILE]    write a starter script (the default route, commented); FILE default route.ts
 *   route check FILE     type-check it against sipctl's types, run it over sample requests
 *   route reload         make the running proxy load its script again (kamcmd cfg.reload's job)
 *
 * Exit codes: 0 done; 1 a type error, a route that throws, a reload that failed (the proxy
 * keeps the route it had); 2 a usage mistake (the file exists already, a bad extension).
 */
import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfigFile } from '../../src/config/load.js';
import { resolveControlPath } from '../../src/config/paths.js';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { requestRouteReload } from '../../src/control/index.js';
import { SipctlError, usageError } from '../../src/errors.js';
import { STARTER_ROUTE } from '../../src/route/starter.js';
import { CONTROL_HELP, type ControlOption, type JsonOption } from '../common.js';
import { printJson, printLine } from '../output.js';

function checkExtension(file: string): void {
  if (!/\.(ts|mts|js|mjs)$/.test(file)) {
    throw usageError('E_ROUTE_FILE', `${JSON.stringify(file)}: a route is a .ts, .mts, .js or .mjs file`);
  }
}

function initCommand(file: string | undefined, opts: { force?: boolean }): void {
  const path = file ?? 'route.ts';
  checkExtension(path);
  if (existsSync(path) && !opts.force) throw usageError('E_ROUTE_EXISTS', `${path} exists already (pass --force to overwrite it)`);
  writeFileSync(path, STARTER_ROUTE);
  printLine(`wrote ${path}: the default route as a script of your own; next: sipctl route check ${path}`);
}

interface CheckOptions {
  config?: string;
  mode?: string;
  typesOnly?: boolean;
}

async function checkCommand(file: string, opts: CheckOptions): Promise<void> {
  checkExtension(file);
  if (!existsSync(file)) throw usageError('E_ROUTE_FILE', `${file}: no such file`);
  let config = defaultConfig();
  if (opts.config !== undefined) config = loadConfigFile(opts.config, config);
  if (opts.mode !== undefined) config = applyConfig(config, { mode: opts.mode }, 'flags');
  // Loaded here: typescript and the proxy core are needed by this command only.
  const { isTypeScript, runSamples, typeCheck } = await import('../../src/route/check.js');
  let failed = false;
  if (isTypeScript(file)) {
    const problems = await typeCheck(file);
    for (const p of problems) process.stderr.write(`${p.where === undefined ? '' : `${p.where}: `}error ${p.message}\n`);
    if (problems.length > 0) {
      failed = true;
      process.stderr.write(`sipctl: ${file}: ${problems.length} type error${problems.length === 1 ? '' : 's'}\n`);
    } else printLine(`${file}: types OK`);
  } else printLine(`${file}: JavaScript, not type-checked`);
  if (!opts.typesOnly) {
    let run;
    try {
      run = await runSamples(file, config);
    } catch (err) {
      if (err instanceof SipctlError) throw new SipctlError(err.code, err.message);
      throw err;
    }
    printLine(`sample requests (mode ${config.mode}; the caller 198.51.100.10 is in the address table; set N is 192.0.2.N):`);
    for (const l of run.lines) printLine(`  ${l}`);
    for (const p of run.problems) process.stderr.write(`${p.where === undefined ? '' : `${p.where}: `}error ${p.message}\n`);
    if (run.problems.length > 0) {
      failed = true;
      process.stderr.write(`sipctl: ${file}: the route threw on ${run.problems.length} sample request${run.problems.length === 1 ? '' : 's'}\n`);
    }
  }
  // Transactions of the sample run hold timers: exit now, with the verdict.
  process.exit(failed ? 1 : 0);
}

async function reloadCommand(opts: ControlOption & JsonOption): Promise<void> {
  const r = await requestRouteReload(resolveControlPath(opts.control));
  if (opts.json) {
    printJson(r);
    return;
  }
  printLine(`route ${r.file} loaded (version ${r.version}, ${r.ms.toFixed(1)} ms); transactions already started finish with the hooks they began with`);
}

export function registerRoute(program: Command): void {
  const route = program.command('route').description('routing scripts of your own: init, check, reload');
  route
    .command('init')
    .description('write a starter routing script (the default route, commented)')
    .argument('[file]', 'where to write it (default route.ts)')
    .option('--force', 'overwrite the file if it exists')
    .action(initCommand);
  route
    .command('check')
    .description('type-check a routing script against sipctl\'s types and run it over sample requests (INVITE, REGISTER, in-dialog BYE, OPTIONS)')
    .argument('<file>', 'the script (.ts, .mts, .js, .mjs)')
    .option('--config <file>', 'the config file the proxy runs with (mode, acl, dispatcher settings)')
    .option('--mode <mode>', 'stateless or transaction (default: the config\'s)')
    .option('--types-only', 'only the type check')
    .action(checkCommand);
  route
    .command('reload')
    .description('make the running proxy load its routing script again; a script that fails keeps the old one')
    .option('--json', 'print {file, version, ms}')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', 'accepted like on every reload command; the proxy reloads the file it was started with')
    .action(reloadCommand);
}
