#!/usr/bin/env node
/**
 * sipctl — one CLI for the proxy and its tables, the way kamailio + kamctl/kamcmd are.
 * Every command module registers itself on the program; errors are printed here, once,
 * as `sipctl: <message>`, with exit 1 (2 for usage errors).
 */
import { Command, CommanderError } from 'commander';
import { SipctlError } from '../src/errors.js';
import { registerServe } from './commands/serve.js';
import { registerMigrate } from './commands/migrate.js';
import { registerAddress } from './commands/address.js';
import { registerDispatcher } from './commands/dispatcher.js';
import { registerFlood } from './commands/flood.js';
import { registerCluster } from './commands/cluster.js';
import { registerStatus } from './commands/status.js';
import { registerTop } from './commands/top.js';
import { registerRoute } from './commands/route.js';
import { registerDialog } from './commands/dialog.js';

export function buildProgram(): Command {
  const program = new Command('sipctl')
    .description('SIP load-balancing dispatcher with IP access control')
    // commander's own usage errors (missing argument, unknown option) as one line in the
    // same `sipctl: ...` form as every other error; reportAndExit turns them into exit 2.
    .configureOutput({
      outputError: (str, write) => write(`sipctl: ${str.replace(/^error: /, '').trimEnd()} (run with --help for usage)\n`),
    })
    .exitOverride();
  registerServe(program);
  registerMigrate(program);
  registerAddress(program);
  registerDispatcher(program);
  registerFlood(program);
  registerCluster(program);
  registerStatus(program);
  registerTop(program);
  registerRoute(program);
  registerDialog(program);
  return program;
}

export function reportAndExit(err: unknown): never {
  if (err instanceof CommanderError) {
    // commander already printed its message; help and version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof SipctlError) {
    process.stderr.write(`sipctl: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`sipctl: ${message}\n`);
  process.exit(1);
}

buildProgram().parseAsync(process.argv).catch(reportAndExit);
