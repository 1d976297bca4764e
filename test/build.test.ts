/**
 * The production build: `npm pack` carries the compiled tree and the model files and nothing of the tests, the
 * benchmarks or the TypeScript sources; unpacked beside node_modules without tsx, the package runs the CLI, the
 * verifier's worker threads, the virtual fingerprint module's process and the dataset workers from dist/.
 * `npm test` builds dist/ before vitest starts (scripts/build.mjs).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FACE_API_DIR } from './helpers/fixtures.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

// The packages a kiosk does not get: the TypeScript loader and its compiler.
const DEV_ONLY = new Set(['tsx', 'esbuild', '@esbuild', 'typescript', 'vitest']);

let dir: string;
let packed: string[];
let app: string;

async function node(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  try {
    const r = await run(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: 120_000, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

beforeAll(async () => {
  expect(existsSync(join(ROOT, 'dist', 'BUILD.json')), 'dist/ is built by `npm test` (npm run build)').toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'bk-build-'));
  // --ignore-scripts: prepack would rebuild dist/ while other test files may be running the CLI from it.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 1 << 24 });
  const info = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info[0]!.files.map((f) => f.path);
  await run('tar', ['-xzf', join(dir, info[0]!.filename), '-C', dir]);
  app = join(dir, 'package');
  // The dependencies, minus what only development has.
  await mkdir(join(app, 'node_modules'));
  for (const name of await readdir(join(ROOT, 'node_modules'))) {
    if (DEV_ONLY.has(name) || name.startsWith('.')) continue;
    await symlink(join(ROOT, 'node_modules', name), join(app, 'node_modules', name));
  }
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('carries the compiled CLI, the counter screen page, the models, the notices, the service and policy files, and no tests, benchmarks or sources', () => {
    for (const f of ['bin/biokiosk.js', 'dist/cli/main.js', 'dist/verifier/precheck-worker.js', 'dist/BUILD.json', 'models/manifest.json', 'models/face/face_detector_tiny.onnx', 'models/fingerprint/fp_gabor.onnx', 'models/iris/iris_loggabor.onnx', 'dist/witness/witness.js', 'dist/verifier/pg-store.js', 'dist/drivers/hid/node-hid.js', 'dist/device/ui/static/index.html', 'dist/device/ui/static/app.js', 'dist/provisioning/provision.js', 'dist/verifier/registry/server.js', 'LICENSE', 'NOTICES.md', 'CHANGELOG.md', 'package.json']) {
      expect(packed, f).toContain(f);
    }
    expect(packed.filter((f) => f.startsWith('test/') || f.startsWith('bench/'))).toEqual([]);
    expect(packed.filter((f) => f.endsWith('.ts'))).toEqual([]);
    for (const f of ['deploy/systemd/biokiosk-kiosk.service', 'deploy/udev/60-biokiosk.rules', 'deploy/biokiosk-update.sh', 'deploy/install.sh', 'deploy/kiosk.conf.example', 'deploy/policy/decision-policy.json', 'deploy/policy/eligibility.csv']) expect(packed, f).toContain(f);
  });
});

describe('the unpacked package, without tsx', () => {
  it('has no TypeScript loader to fall back on', async () => {
    const r = await node(['--input-type=module', '-e', "await import('tsx/esm/api')"], { cwd: app });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Cannot find package 'tsx'/);
  });

  it('prints its version from package.json, outside npm', async () => {
    const r = await node([join(app, 'bin', 'biokiosk.js'), '--version'], { cwd: dir, env: { npm_package_version: '' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('loads onnxruntime only for a command that runs a model', async () => {
    // Every native library the process loads, recorded at process.dlopen.
    const probe = (args: string[]) =>
      node(['--input-type=module', '-e', `const seen = []; const dlopen = process.dlopen; process.dlopen = function (m, f, ...r) { seen.push(f); return dlopen.call(this, m, f, ...r); };
        const { main } = await import('./dist/cli/main.js'); await main(${JSON.stringify(args)}); console.log(JSON.stringify(seen));`], { cwd: app });
    const help = await probe(['--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(JSON.parse(help.stdout.trim().split('\n').pop()!).filter((f: string) => /onnxruntime/.test(f))).toEqual([]);
    const extract = await probe(['extract', '--modality', 'fingerprint', '--image', join(FACE_API_DIR, 'demo', 'sample2.jpg'), '--json']);
    expect(JSON.parse(extract.stdout.trim().split('\n').pop()!).filter((f: string) => /onnxruntime/.test(f)).length).toBe(1);
  });

  it('extracts a face template with the shipped models', async () => {
    const r = await node([join(app, 'bin', 'biokiosk.js'), 'extract', '--modality', 'face', '--image', join(FACE_API_DIR, 'demo', 'sample2.jpg'), '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.faceCount).toBe(1);
    expect(typeof out.template).toBe('string');
  });

  it('synthesizes fingerprints on worker threads and extracts one', async () => {
    const out = join(dir, 'fp');
    const s = await node([join(app, 'bin', 'biokiosk.js'), 'synth', 'fingerprint', '--out', out, '--fingers', '2', '--impressions', '2', '--seed', '3'], { cwd: dir });
    expect(s.code, s.stderr).toBe(0);
    const images = (await readdir(out)).filter((f) => f.endsWith('.png'));
    expect(images.length).toBe(4);
    const x = await node([join(app, 'bin', 'biokiosk.js'), 'extract', '--modality', 'fingerprint', '--image', join(out, images[0]!), '--json'], { cwd: dir });
    expect(x.code, x.stderr).toBe(0);
    expect(JSON.parse(x.stdout).minutiae).toBeGreaterThan(10);
  });

  it('synthesizes irises and extracts one with the shipped iris graph; the witness command loads', async () => {
    const out = join(dir, 'iris');
    const s = await node([join(app, 'bin', 'biokiosk.js'), 'synth', 'iris', '--out', out, '--eyes', '2', '--samples', '2', '--seed', '3'], { cwd: dir });
    expect(s.code, s.stderr).toBe(0);
    const images = (await readdir(out)).filter((f) => f.endsWith('.png'));
    expect(images.length).toBe(4);
    const x = await node([join(app, 'bin', 'biokiosk.js'), 'extract', '--modality', 'iris', '--image', join(out, images[0]!), '--json'], { cwd: dir });
    expect(x.code, x.stderr).toBe(0);
    expect(JSON.parse(x.stdout).format).toBe('biokiosk-iris/1');
    const w = await node([join(app, 'bin', 'biokiosk.js'), 'witness', 'serve', '--help'], { cwd: dir });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toMatch(/add-checkpoint/);
  });

  it("starts the verifier's precheck worker threads from dist/ and has them refuse a forged attestation", async () => {
    const script = join(app, 'pool-check.mjs');
    await writeFile(script, `
      import { PrecheckPool } from './dist/verifier/precheck-pool.js';
      import { generateFleetKeyPair } from './dist/protocol/jwe.js';
      const fleet = generateFleetKeyPair();
      const config = { allowedModels: [], maxAgeSeconds: 300, maxFutureSeconds: 30, requireNonce: false };
      const pool = await PrecheckPool.start({ config, fleetKey: fleet.privateJwk, formats: [] }, 2);
      const task = { topic: 'biokiosk/v1/kiosk-1/attestations', payload: new TextEncoder().encode('{"jws":"a.b.c"}'), kid: undefined, trusted: undefined };
      const [r] = await pool.run([task]);
      await pool.close();
      console.log(JSON.stringify({ size: pool.size, authenticated: r.authenticated, rejection: r.rejection?.code ?? null }));
    `);
    const r = await node([script], { cwd: app });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ size: 2, authenticated: false });
    expect(typeof out.rejection).toBe('string');
  });

  it("runs the fingerprint demo: the virtual module's process from dist/", async () => {
    const r = await node([join(app, 'bin', 'biokiosk.js'), 'demo', '--modality', 'fingerprint', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.attempts.map((a: { decision: string }) => a.decision)).toEqual(['match', 'no_match']);
  });
});

describe('bin/biokiosk.js in a checkout', () => {
  it('runs the sources, not a stale dist/, once a source is newer than the build', async () => {
    // A checkout in miniature: the real entry point, a compiled main and a source main that say which ran.
    const co = join(dir, 'checkout');
    await mkdir(join(co, 'bin'), { recursive: true });
    await mkdir(join(co, 'dist', 'cli'), { recursive: true });
    await mkdir(join(co, 'cli'), { recursive: true });
    await copyFile(join(ROOT, 'bin', 'biokiosk.js'), join(co, 'bin', 'biokiosk.js'));
    await writeFile(join(co, 'dist', 'cli', 'main.js'), "export async function main() { console.log('compiled'); return 0; }\n");
    await writeFile(join(co, 'cli', 'main.ts'), "export async function main(): Promise<number> { console.log('source'); return 0; }\n");
    await writeFile(join(co, 'package.json'), JSON.stringify({ name: 'biokiosk', type: 'module' }));
    await writeFile(join(co, 'dist', 'BUILD.json'), JSON.stringify({ version: '0', sources: ['cli/main.ts'] }));
    await symlink(join(ROOT, 'node_modules'), join(co, 'node_modules'));
    const past = new Date(Date.now() - 60_000);
    await utimes(join(co, 'cli', 'main.ts'), past, past);
    const current = await node([join(co, 'bin', 'biokiosk.js')]);
    expect(current.stdout.trim(), current.stderr).toBe('compiled');
    const forced = await node([join(co, 'bin', 'biokiosk.js')], { env: { BIOKIOSK_FROM_SOURCE: '1' } });
    expect(forced.stdout.trim(), forced.stderr).toBe('source');
    const future = new Date(Date.now() + 60_000);
    await utimes(join(co, 'cli', 'main.ts'), future, future);
    const stale = await node([join(co, 'bin', 'biokiosk.js')]);
    expect(stale.stdout.trim(), stale.stderr).toBe('source');
  });
});
