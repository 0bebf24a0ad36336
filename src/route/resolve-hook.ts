/**
 * A Node module resolve hook (registered by load.ts with module.register): the bare
 * specifier 'sipctl' in a routing script resolves to this package's own API entry, wherever
 * the script lives (/etc/sipctl/route.mjs has no node_modules with sipctl in it).
 */
const ENTRY = new URL('./index.js', import.meta.url).href;

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === 'sipctl') return { url: ENTRY, shortCircuit: true };
  return next(specifier, context);
}
