/**
 * Reading the config file: YAML (a superset of JSON), whose keys are those of ProxyConfig
 * (src/config/schema.ts). Flags are applied over it by the caller.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { usageError } from '../errors.js';
import { applyConfig, defaultConfig, type ProxyConfig } from './schema.js';

export function loadConfigFile(path: string, base: ProxyConfig = defaultConfig()): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw usageError('E_CONFIG_READ', `config file ${path}: ${code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0];
    throw usageError('E_CONFIG_SYNTAX', `config file ${path}: ${first}`);
  }
  return applyConfig(base, doc, path);
}
