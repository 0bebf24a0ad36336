import type { Command } from 'commander';

/** `sipctl address` — not built yet. */
export function registerAddress(program: Command): void {
  void program;
}
