// Prints "N passed, N failed, N skipped" from vitest's JSON report, counting every way a run
// can fail: failed tests, files that failed to load or whose beforeAll/afterAll threw (a file
// whose status is failed counts once more when none of its tests failed), unhandled errors
// (vitest exits non-zero but the report shows nothing failed: the JSON report does not list
// errors raised outside a test), and exits non-zero when anything failed.
// usage: node .ci/summary.mjs REPORT.json VITEST_EXIT_CODE
import { readFileSync } from 'node:fs';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of r.testResults ?? []) {
  let failedHere = 0;
  for (const t of file.assertionResults ?? []) {
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') failedHere++;
    else skipped++; // skipped, pending, todo
  }
  // A file that failed to load, or whose beforeAll/afterAll threw, is failed even when no
  // test of it is (its tests may all be skipped, or be reported as passed before afterAll).
  if (file.status === 'failed' && failedHere === 0) failedHere = 1;
  failed += failedHere;
}
// Files that failed to run at all, and errors outside any test (unhandled rejections).
const suitesNotCounted = Math.max(0, (r.numFailedTestSuites ?? 0) - (r.testResults ?? []).filter((f) => f.status === 'failed').length);
failed += suitesNotCounted;
const exitCode = Number(process.argv[3] ?? 0);
if ((r.success === false || exitCode !== 0) && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
