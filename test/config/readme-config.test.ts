/**
 * The README's Configuration block claims to be "the complete file, with every default". This
 * holds it to that: the block parses, every key in it is accepted by the schema, and applying
 * it to nothing gives exactly the built-in defaults (a default changed in one place but not
 * the other fails here).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';

it('the README Configuration block is the complete default configuration', () => {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  expect(block, 'a yaml block under ## Configuration').toBeDefined();
  const doc = parseYaml(block!) as Record<string, unknown>;
  const fromReadme = applyConfig(defaultConfig(), doc, 'README');
  expect(fromReadme).toEqual(defaultConfig());
  // Every top-level key of the defaults appears in the block.
  expect(Object.keys(doc).sort()).toEqual(Object.keys(defaultConfig()).sort());
});
