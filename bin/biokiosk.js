#!/usr/bin/env node
// Entry point. An installed kiosk runs the compiled tree (dist/, made by `npm run build`). A development checkout
// runs the TypeScript sources through tsx when there is no build, when a source is newer than the build (an edit is
// never hidden by a stale dist/), or when BIOKIOSK_FROM_SOURCE=1.
import { existsSync, readFileSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const stamp = new URL('dist/BUILD.json', root);

function distIsCurrent() {
  if (process.env.BIOKIOSK_FROM_SOURCE === '1' || !existsSync(stamp)) return false;
  if (!existsSync(new URL('cli/main.ts', root))) return true; // a package: no sources to compare with
  const built = statSync(stamp).mtimeMs;
  const { sources } = JSON.parse(readFileSync(stamp, 'utf8'));
  return sources.every((file) => {
    try {
      return statSync(new URL(file, root)).mtimeMs <= built;
    } catch {
      return false; // a compiled module whose source is gone: the build is not of these sources
    }
  });
}

let main;
if (distIsCurrent()) {
  ({ main } = await import(new URL('dist/cli/main.js', root).href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
