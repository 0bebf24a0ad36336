/**
 * Starting the load worker from either layout sipctl runs in:
 *  - compiled (dist/src/acl/): `load-worker.js` sits next to this file and is started as is;
 *  - TypeScript sources (vitest runs src/ directly, no dist needed): there is only
 *    `load-worker.ts`, which Node 20 cannot run. Its module graph is then compiled once per
 *    process with the project's own `typescript` (transpileModule: types stripped, nothing
 *    checked), and each worker starts from a small shim that registers module hooks
 *    (node:module register) serving those compiled sources for the `.ts` files and mapping the
 *    `.js` specifiers of NodeNext imports to them.
 * The second path exists for development only: a built sipctl never compiles at run time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as TypeScript from 'typescript';

const compiledEntry = new URL('./load-worker.js', import.meta.url);
const sourceEntry = new URL('./load-worker.ts', import.meta.url);

const SOURCE_HOOKS = `
let sources;
export function initialize(data) { sources = data.sources; }
export async function resolve(specifier, context, next) {
  if (context.parentURL && context.parentURL in sources && /^\\.\\.?\\//.test(specifier) && specifier.endsWith('.js')) {
    const ts = new URL(specifier.slice(0, -3) + '.ts', context.parentURL).href;
    if (ts in sources) return { url: ts, shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url in sources) return { format: 'module', source: sources[url], shortCircuit: true };
  return next(url, context);
}`;

const SOURCE_SHIM = `
const { register } = require('node:module');
const { workerData } = require('node:worker_threads');
register('data:text/javascript,' + encodeURIComponent(workerData.hooks), { data: { sources: workerData.sources } });
import(workerData.entry).catch((err) => { process.nextTick(() => { throw err; }); });
`;

let layout: 'compiled' | 'source' | undefined;
let compiledSources: Record<string, string> | undefined;

/**
 * Starts the load worker for `dbPath`; it posts one LoadWorkerReply and exits — or, `kept`,
 * answers every 'load' message it is sent with one (see load.ts).
 */
export function startLoadWorker(dbPath: string, opts: { kept?: boolean } = {}): Worker {
  const kept = opts.kept === true;
  layout ??= existsSync(fileURLToPath(compiledEntry)) ? 'compiled' : existsSync(fileURLToPath(sourceEntry)) ? 'source' : undefined;
  if (layout === 'compiled') return new Worker(compiledEntry, { workerData: { dbPath, kept } });
  if (layout === 'source') {
    compiledSources ??= compileGraph(sourceEntry);
    return new Worker(SOURCE_SHIM, {
      eval: true,
      workerData: { dbPath, kept, entry: sourceEntry.href, hooks: SOURCE_HOOKS, sources: compiledSources },
    });
  }
  throw new Error(`the address-table load worker is missing beside ${fileURLToPath(import.meta.url)} (rebuild with \`make build\`)`);
}

/** JavaScript for `entry` and every .ts module it imports at run time, by file URL. */
function compileGraph(entry: URL): Record<string, string> {
  const ts = createRequire(import.meta.url)('typescript') as typeof TypeScript;
  const sources: Record<string, string> = {};
  const pending = [entry.href];
  while (pending.length > 0) {
    const href = pending.pop() as string;
    if (href in sources) continue;
    const output = ts.transpileModule(readFileSync(new URL(href), 'utf8'), {
      fileName: fileURLToPath(href),
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    sources[href] = output;
    // Imports used only as types are gone from the output; what is left is loaded at run time.
    for (const m of output.matchAll(/(?:from|import)\s*\(?\s*['"](\.\.?\/[^'"]+)\.js['"]/g)) {
      const next = new URL(`${m[1]}.ts`, href);
      if (existsSync(fileURLToPath(next))) pending.push(next.href);
    }
  }
  return sources;
}
