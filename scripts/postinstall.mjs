#!/usr/bin/env node
// npm's postinstall. A package or a release ships the ONNX files (models/**/*.onnx, pinned by models/manifest.json):
// this checks them and builds nothing, so a kiosk needs neither tsx nor the converter. A git checkout has none (they
// are not in git): it builds them from their sources (models/build.ts --install, which fails if the result is not
// what the manifest pins).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const manifest = JSON.parse(readFileSync(join(root, 'models', 'manifest.json'), 'utf8'));
const wrong = Object.values(manifest.models).filter(({ file, sha256 }) => {
  const path = join(root, 'models', file);
  return !existsSync(path) || createHash('sha256').update(readFileSync(path)).digest('hex') !== sha256;
});
if (wrong.length === 0) {
  console.error(`models: ${Object.keys(manifest.models).length} model files present and as models/manifest.json pins them`);
  process.exit(0);
}
if (!existsSync(join(root, 'models', 'build.ts'))) {
  console.error(`models: ${wrong.map((m) => m.file).join(', ')} missing or not as models/manifest.json pins them, and this package has no model sources to build them from`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'models', 'build.ts'), '--install'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
