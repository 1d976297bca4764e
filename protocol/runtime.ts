/**
 * Where the running code came from: the compiled tree (`dist/**.js`, what a kiosk runs) or the TypeScript sources
 * through tsx (development). Entry points of worker threads and child processes differ between the two (a worker
 * or a child does not inherit the parent's TypeScript loader), and so does the path from a module to the package's
 * own files (models/manifest.json, the ONNX files, package.json), which stay at the package root in both.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when this module (and so the whole tree with it) runs compiled. */
export const COMPILED = import.meta.url.endsWith('.js');

/** The package's root: the nearest folder above this module whose package.json is biokiosk's. */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'biokiosk') return dir;
    if (dirname(dir) === dir) throw new Error(`no biokiosk package.json above ${from}`);
  }
}

let version: string | undefined;
/** The package's version, from its package.json (not from npm's environment, which only `npm run` sets). */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/**
 * A worker thread's entry module, a sibling of `fromUrl` named `name` (no extension): the compiled `name.js`, or in
 * development `name.mjs`, the small bootstrap that registers tsx and then imports `name.ts`.
 */
export function workerEntry(fromUrl: string, name: string): URL {
  return new URL(`./${name}${fromUrl.endsWith('.js') ? '.js' : '.mjs'}`, fromUrl);
}

/** node's arguments to run the sibling module `name` of `fromUrl` as a child process (tsx only in development). */
export function childProcessArgs(fromUrl: string, name: string): string[] {
  if (fromUrl.endsWith('.js')) return [fileURLToPath(new URL(`./${name}.js`, fromUrl))];
  return ['--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, fromUrl))];
}
