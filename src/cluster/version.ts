/** This sipctl's version (package.json), as nodes report it in the registry. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findPackageRoot } from '../store/index.js';

let cached: string | undefined;

export function sipctlVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(join(findPackageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
