/**
 * Where the numbered SQL migrations live. The folder sits at the package root (the folder
 * holding package.json), and this module runs from two depths: compiled as
 * dist/src/store/*.js (three levels down) and as src/store/*.ts under vitest (two levels
 * down). Walking up to package.json finds the root from either without hard-coding a depth.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SipctlError } from '../errors.js';

/** The package root: the nearest folder at or above `fromUrl` holding package.json. */
export function findPackageRoot(fromUrl: string = import.meta.url): string {
  const start = dirname(fileURLToPath(fromUrl));
  let dir = start;
  // Bounded: every step goes one folder up and stops at the filesystem root.
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new SipctlError(
        'E_STORE_NO_MIGRATIONS',
        `cannot find the sipctl package root (package.json) above ${start}; is the installation complete?`,
      );
    }
    dir = parent;
  }
}

/** The migrations folder shipped with this sipctl. */
export function defaultMigrationsDir(): string {
  const dir = join(findPackageRoot(), 'migrations');
  if (!existsSync(dir)) {
    throw new SipctlError(
      'E_STORE_NO_MIGRATIONS',
      `the migrations folder ${dir} is missing; reinstall sipctl`,
    );
  }
  return dir;
}
