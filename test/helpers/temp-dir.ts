/**
 * A fresh temp folder per call, all removed after each test. Call at the top of a describe
 * block: `const tempDir = useTempDirs(); ... const dir = tempDir();`
 * Paths stay short (under /tmp) so Unix socket paths inside them fit the 107-byte limit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export function useTempDirs(prefix = 'sipctl-test-'): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}
