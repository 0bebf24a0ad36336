import type { Command } from 'commander';

/** `sipctl migrate` — not built yet. */
export function registerMigrate(program: Command): void {
  void program;
}
