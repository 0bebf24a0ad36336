/**
 * Loading a user's routing script (README "Writing routes"): `sipctl serve --route FILE`,
 * `sipctl route reload`, `sipctl route check`.
 *
 * - `.js` / `.mjs` are imported as they are; `.ts` / `.mts` are compiled by esbuild (types
 *   stripped, no type check at start — `sipctl route check` does that) and bundled with the
 *   script's own relative imports into one temporary `.mjs`, which is imported and removed.
 * - `import { defineRoute } from 'sipctl'` resolves to this package's API entry wherever the
 *   script lives (an esbuild plugin for .ts, a module resolve hook for .js).
 * - Each load imports a new URL (`?v=N`): Node caches modules by URL, so a reload gets the
 *   file as it is now. The old module stays in memory with the transactions that use it.
 * - Whatever fails (missing file, syntax error, a throw at import, no default export) is a
 *   SipctlError saying why; the caller keeps the route it had.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SipctlError } from '../errors.js';
import type { Route } from './api.js';

/** The compiled API entry a script's `import 'sipctl'` resolves to. */
export const API_ENTRY = new URL('./index.js', import.meta.url);

export interface LoadedRoute {
  readonly route: Route;
  /** The script's absolute path. */
  readonly file: string;
  /** 1 for the first load in this process, then one more per reload. */
  readonly version: number;
  /** Compile and import time, ms. */
  readonly ms: number;
}

let version = 0;
let hookRegistered = false;

function registerHook(): void {
  if (hookRegistered) return;
  hookRegistered = true;
  register(new URL('./resolve-hook.js', import.meta.url));
}

/** Load (or load again) a routing script; throws SipctlError with what is wrong. */
export async function loadRoute(file: string): Promise<LoadedRoute> {
  const t0 = performance.now();
  const path = resolvePath(file);
  const ext = extname(path);
  if (!['.ts', '.mts', '.js', '.mjs'].includes(ext)) {
    throw new SipctlError('E_ROUTE_FILE', `route ${file}: expected a .ts, .mts, .js or .mjs file`, { usage: true });
  }
  if (!existsSync(path)) throw new SipctlError('E_ROUTE_FILE', `route ${file}: no such file`, { usage: true });
  const v = ++version;
  let url: string;
  let temp: string | undefined;
  if (ext === '.ts' || ext === '.mts') {
    const code = await compile(path);
    temp = mkdtempSync(`${tmpdir()}/sipctl-route-`);
    const out = `${temp}/${basename(path, ext)}.mjs`;
    writeFileSync(out, code);
    url = pathToFileURL(out).href;
    // Stack traces of the compiled module point into the .ts (its inline source map).
    process.setSourceMapsEnabled(true);
  } else {
    registerHook();
    url = `${pathToFileURL(path).href}?v=${v}`;
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new SipctlError('E_ROUTE_LOAD', `route ${file}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, { cause: err });
  } finally {
    if (temp !== undefined) rmSync(temp, { recursive: true, force: true });
  }
  const route = checkRoute(mod.default, file);
  return { route, file: path, version: v, ms: performance.now() - t0 };
}

/** The esbuild compile of a .ts script: one ES module, 'sipctl' pointing at our API entry. */
async function compile(path: string): Promise<string> {
  const esbuild = await import('esbuild');
  const cwd = dirname(path);
  try {
    const result = await esbuild.build({
      entryPoints: [path],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      // The map's sources are made absolute below: the compiled module runs from a temp dir,
      // and a stack trace must name the script itself (file:line of the .ts).
      sourcemap: 'external',
      outfile: join(cwd, 'route.mjs'),
      absWorkingDir: cwd,
      logLevel: 'silent',
      plugins: [
        {
          name: 'sipctl',
          setup(build) {
            build.onResolve({ filter: /^sipctl$/ }, () => ({ path: API_ENTRY.href, external: true }));
          },
        },
      ],
    });
    const js = result.outputFiles.find((f) => f.path.endsWith('.mjs'))!;
    const mapFile = result.outputFiles.find((f) => f.path.endsWith('.map'));
    if (mapFile === undefined) return js.text;
    const map = JSON.parse(mapFile.text) as { sources: string[] };
    map.sources = map.sources.map((src) => pathToFileURL(resolvePath(cwd, src)).href);
    const code = js.text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
    return `${code}//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}\n`;
  } catch (err) {
    const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } | null }> }).errors;
    if (errors !== undefined && errors.length > 0) {
      const e = errors[0]!;
      const where = e.location ? `${e.location.file}:${e.location.line}:${e.location.column + 1}: ` : '';
      throw new SipctlError('E_ROUTE_COMPILE', `route ${path}: ${where}${e.text}`);
    }
    throw new SipctlError('E_ROUTE_COMPILE', `route ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A default export that is a route: request is a function; the optional hooks are functions. */
export function checkRoute(value: unknown, file: string): Route {
  const bad = (why: string): never => {
    throw new SipctlError('E_ROUTE_EXPORT', `route ${file}: ${why} (export default defineRoute({ request(ctx) { ... } }))`);
  };
  if (typeof value !== 'object' || value === null) return bad('the module has no default export that is a route');
  const r = value as Record<string, unknown>;
  if (typeof r.request !== 'function') return bad('its default export has no request(ctx) function');
  for (const k of ['reply', 'failure', 'branch', 'asyncTimeout']) {
    if (r[k] !== undefined && typeof r[k] !== 'function') bad(`${k} must be a function`);
  }
  if (r.events !== undefined) {
    if (typeof r.events !== 'object' || r.events === null) bad('events must be an object');
    const e = r.events as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (k !== 'destinationDown' && k !== 'destinationUp') bad(`events.${k} is not an event (destinationDown, destinationUp)`);
      if (typeof e[k] !== 'function') bad(`events.${k} must be a function`);
    }
  }
  return value as Route;
}
