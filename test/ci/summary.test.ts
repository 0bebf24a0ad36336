/**
 * `.ci/run`'s closing line must be right however a run fails: vitest runs throwaway test
 * files here (in a temp folder, with their own config) and `.ci/summary.mjs` must count a
 * failing beforeAll, a failing afterAll, a file that does not load and an error outside any
 * test as failures, and report skipped tests.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('sipctl-ci-');

function runVitest(files: Record<string, string>): { line: string; summaryCode: number | null } {
  const dir = tempDir();
  writeFileSync(join(dir, 'vitest.config.mjs'), `export default { test: { include: ['*.t.ts'] } };\n`);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const report = join(dir, 'report.json');
  const vitest = spawnSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', dir, '--reporter=json', `--outputFile.json=${report}`],
    { cwd: dir, encoding: 'utf8', timeout: 60_000 },
  );
  const summary = spawnSync(process.execPath, [join(REPO_ROOT, '.ci', 'summary.mjs'), report, String(vitest.status)], { encoding: 'utf8' });
  return { line: summary.stdout.trim(), summaryCode: summary.status };
}

const pass = `import { it, expect } from 'vitest';\nit('passes', () => expect(1).toBe(1));\nit.skip('is skipped', () => {});\n`;

describe('.ci/summary.mjs', () => {
  it('counts passes and skips, and exits 0 when nothing failed', () => {
    expect(runVitest({ 'ok.t.ts': pass })).toEqual({ line: '1 passed, 0 failed, 1 skipped', summaryCode: 0 });
  });

  it('says failed for a failing beforeAll, even though its test never ran', () => {
    const r = runVitest({
      'ok.t.ts': pass,
      'before.t.ts': `import { beforeAll, it } from 'vitest';\nbeforeAll(() => { throw new Error('boom'); });\nit('never runs', () => {});\n`,
    });
    expect(r.line).toMatch(/^1 passed, 1 failed, \d+ skipped$/);
    expect(r.summaryCode).toBe(1);
  });

  it('says failed for a failing afterAll, a file that does not load, and an error outside any test', () => {
    const r = runVitest({
      'after.t.ts': `import { afterAll, it } from 'vitest';\nafterAll(() => { throw new Error('boom'); });\nit('passes', () => {});\n`,
      'load.t.ts': `import { it } from 'vitest';\nimport './missing.js';\nit('never runs', () => {});\n`,
    });
    expect(r.line).toMatch(/^1 passed, 2 failed, \d+ skipped$/);
    const unhandled = runVitest({
      'stray.t.ts': `import { it } from 'vitest';\nit('leaves a rejection behind', async () => { setTimeout(() => void Promise.reject(new Error('stray')), 0); await new Promise((r) => setTimeout(r, 50)); });\n`,
    });
    expect(unhandled.line).toBe('1 passed, 1 failed, 0 skipped');
    expect(unhandled.summaryCode).toBe(1);
  });
});
