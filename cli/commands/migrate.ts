import type { Command } from 'commander';
import { resolveDbPath } from '../../src/config/paths.js';
import { openStore } from '../../src/store/index.js';
import { DB_HELP } from '../common.js';
import { printJson, printLine } from '../output.js';

interface MigrateOptions {
  db?: string;
  json?: boolean;
}

/**
 * `sipctl migrate [--db PATH|URL]` — create the database when missing (a SQLite file; a
 * PostgreSQL database must exist) and apply the pending migrations (every other command does
 * this too on open; this one says what it did).
 */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade the database schema (applies migrations/NNN_*.sql not yet applied)')
    .option('--db <path|url>', DB_HELP)
    .option('--json', 'print what was applied as JSON')
    .action(async (opts: MigrateOptions) => {
      const store = await openStore(resolveDbPath(opts.db));
      try {
        const report = store.migration!;
        if (opts.json) {
          printJson({ db: store.location, applied: report.applied.map((m) => m.name), version: report.version });
          return;
        }
        if (report.applied.length === 0) {
          printLine(`database ${store.location} is up to date (version ${report.version})`);
          return;
        }
        for (const m of report.applied) printLine(`applied ${m.name}`);
        printLine(`database ${store.location} is at version ${report.version}`);
      } finally {
        await store.close();
      }
    });
}
