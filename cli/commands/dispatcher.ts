import type { Command } from 'commander';

/** `sipctl dispatcher` — not built yet. */
export function registerDispatcher(program: Command): void {
  void program;
}
