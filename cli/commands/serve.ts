import type { Command } from 'commander';

/** `sipctl serve` — not built yet. */
export function registerServe(program: Command): void {
  void program;
}
