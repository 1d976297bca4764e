#!/usr/bin/env node
// `npm run build`: compiles the runtime to dist/ (tsconfig.build.json), then writes dist/BUILD.json, the stamp that
// bin/biokiosk.js looks for: the version and the sources compiled, so a development checkout whose sources changed
// since the build runs them through tsx instead of a stale dist/.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });

const sources = [];
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
  const file = join(entry.parentPath, entry.name);
  sources.push(relative(dist, file).replace(/\.js$/, '.ts'));
}
sources.sort();
// Files the runtime reads beside its modules (tsc copies none): the counter screen's page, served as they are.
const ASSETS = ['device/ui/static'];
for (const a of ASSETS) cpSync(join(root, a), join(dist, a), { recursive: true, filter: (f) => !f.endsWith('.d.ts') });
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(dist, 'BUILD.json'), JSON.stringify({ version, builtAt: new Date().toISOString(), sources }, null, 2) + '\n');
console.error(`build: ${sources.length} modules compiled to dist/ (biokiosk ${version})`);
