/**
 * Third-party notices are generated from the installed production tree (scripts/notices.ts): NOTICES.md must be
 * what the script writes today, and the tree walk must follow Node's resolution (nested versions, optional
 * packages for other platforms, licence files or a README's licensing section).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { productionTree, renderNotices } from '../scripts/notices.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function pkg(dir: string, json: Record<string, unknown>, files: Record<string, string> = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify(json));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
}

describe('NOTICES.md', () => {
  it('is what scripts/notices.ts generates from the installed tree (run `npm run notices` after changing dependencies)', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'notices.ts'), '--check'], { cwd: ROOT }).then(
      () => 0,
      (e: { code?: number; stderr?: string }) => e.stderr ?? String(e.code),
    );
    expect(r).toBe(0);
  });

  it('lists the production dependencies with their licence texts, and no development-only package', () => {
    const tree = productionTree(ROOT);
    const names = new Set(tree.map((p) => p.name));
    for (const n of ['better-sqlite3', 'onnxruntime-node', 'sharp', 'mqtt', '@vladmandic/face-api']) expect(names, n).toContain(n);
    for (const n of ['vitest', 'typescript', 'tsx', 'esbuild', '@tensorflow/tfjs']) expect(names, n).not.toContain(n);
    const sqlite = tree.find((p) => p.name === 'better-sqlite3')!;
    expect(sqlite.license).toBe('MIT');
    expect(sqlite.texts[0]!.text).toMatch(/Permission is hereby granted/);
    const text = renderNotices(ROOT);
    expect(text).toMatch(/public domain/);
    expect(text).toMatch(/face_descriptor_resnet29/);
  });
});

describe('the tree walk', () => {
  it('follows nested versions, skips absent optional packages, and falls back to a README licensing section', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bk-notices-'));
    dirs.push(root);
    await pkg(root, { name: 'app', version: '1.0.0', dependencies: { a: '^1', b: '^1' }, optionalDependencies: { 'c-other-os': '1' }, devDependencies: { d: '1' } });
    await pkg(join(root, 'node_modules', 'a'), { name: 'a', version: '1.0.0', license: 'MIT', dependencies: { b: '^2' } }, { LICENSE: 'A licence' });
    await pkg(join(root, 'node_modules', 'a', 'node_modules', 'b'), { name: 'b', version: '2.0.0', license: 'ISC' }, { 'LICENSE.md': 'B2 licence' });
    await pkg(join(root, 'node_modules', 'b'), { name: 'b', version: '1.0.0', license: { type: 'BSD-2-Clause' } }, { 'README.md': '# b\n\nUse it.\n\n## Licensing\n\nBundles zlib (Zlib).\n\n## API\n\nnone\n' });
    await pkg(join(root, 'node_modules', 'd'), { name: 'd', version: '1.0.0', license: 'MIT' }, { LICENSE: 'dev only' });
    const tree = productionTree(root);
    expect(tree.map((p) => `${p.name}@${p.version} ${p.license}`)).toEqual(['a@1.0.0 MIT', 'b@1.0.0 BSD-2-Clause', 'b@2.0.0 ISC']);
    expect(tree[1]!.texts).toEqual([{ file: 'README.md (its licensing section)', text: '## Licensing\n\nBundles zlib (Zlib).' }]);
    expect(tree[2]!.texts).toEqual([{ file: 'LICENSE.md', text: 'B2 licence' }]);
  });

  it('fails on a required package that is not installed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bk-notices-'));
    dirs.push(root);
    await pkg(root, { name: 'app', version: '1.0.0', dependencies: { missing: '1' } });
    expect(() => productionTree(root)).toThrow(/missing .*is not installed/);
  });
});
