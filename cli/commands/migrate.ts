import type { Command } from 'commander';
import { resolveDbPath } from '../../src/config/paths.js';
import { openStore } from '../../src/store/index.js';
import { printJson, printLine } from '../output.js';

interface MigrateOptions {
  db?: string;
  json?: boolean;
}

/**
 * `sipctl migrate [--db PATH]` — create the database when missing and apply the pending
 * migrations (every other command does this too on open; this one says what it did).
 */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade the database schema (applies migrations/NNN_*.sql not yet applied)')
    .option('--db <path>', 'SQLite database (default: $SIPCTL_DB or ./data/sipctl.db)')
    .option('--json', 'print what was applied as JSON')
    .action((opts: MigrateOptions) => {
      const dbPath = resolveDbPath(opts.db);
      const store = openStore(dbPath);
      try {
        const report = store.migration!;
        if (opts.json) {
          printJson({ db: dbPath, applied: report.applied.map((m) => m.name), version: report.version });
          return;
        }
        if (report.applied.length === 0) {
          printLine(`database ${dbPath} is up to date (version ${report.version})`);
          return;
        }
        for (const m of report.applied) printLine(`applied ${m.name}`);
        printLine(`database ${dbPath} is at version ${report.version}`);
      } finally {
        store.close();
      }
    });
}
