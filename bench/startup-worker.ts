/**
 * Start-up time, compiled (dist/) against the sources through tsx (BIOKIOSK_FROM_SOURCE=1), alternating, in fresh
 * processes: `biokiosk --help` to its exit, and `biokiosk run` (face, software key, a local mosquitto, the camera a
 * folder of photos) from spawn to the first capture prompt and to the first capture extracted (its quality line:
 * the face models are loaded by then). Prints one JSON line. `npm run build` first.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FACE_API_DIR } from '../test/helpers/fixtures.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'biokiosk.js');
const runs = Number(process.env['BENCH_STARTUP_RUNS'] ?? 10);
type Mode = 'compiled' | 'tsx';
const env = (mode: Mode) => ({ ...process.env, BIOKIOSK_FROM_SOURCE: mode === 'tsx' ? '1' : '0' });

if (!existsSync(join(ROOT, 'dist', 'BUILD.json'))) throw new Error('run `npm run build` first');

function helpMs(mode: Mode): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, '--help'], { env: env(mode), stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`--help exited ${r.status}`);
  return performance.now() - t0;
}

/** Milliseconds from spawn to the first capture prompt and to the first extracted capture. */
function runMs(mode: Mode, args: string[]): Promise<{ prompt: number; extracted: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, 'run', ...args], { env: env(mode), stdio: ['pipe', 'ignore', 'pipe'] });
    let prompt = 0;
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no capture within 60 s: ${buf.slice(-500)}`));
    }, 60_000);
    child.stdin.write('subject-1\n');
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!prompt && /capture 1 of/.test(buf)) prompt = performance.now() - t0;
      if (prompt && /face capture 1: /.test(buf)) {
        clearTimeout(timer);
        const extracted = performance.now() - t0;
        child.kill('SIGKILL');
        resolve({ prompt, extracted });
      }
    });
    child.on('exit', (code) => {
      if (!prompt) {
        clearTimeout(timer);
        reject(new Error(`run exited ${code} before a capture: ${buf.slice(-500)}`));
      }
    });
  });
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const dir = await mkdtemp(join(tmpdir(), 'bk-startup-'));
const photos = join(dir, 'photos');
await mkdir(photos);
await copyFile(join(FACE_API_DIR, 'demo', 'sample2.jpg'), join(photos, 'a.jpg'));
const keys = spawnSync(process.execPath, [BIN, 'verifier', 'keys', '--dir', join(dir, 'verifier')], { encoding: 'utf8' });
await writeFile(join(dir, 'verifier-keys.json'), keys.stdout);
const broker = await Mosquitto.start();
const result: Record<Mode, { help: number[]; prompt: number[]; extracted: number[] }> = { compiled: { help: [], prompt: [], extracted: [] }, tsx: { help: [], prompt: [], extracted: [] } };
try {
  for (let i = 0; i < runs + 1; i++) {
    for (const mode of ['compiled', 'tsx'] as const) {
      const h = helpMs(mode);
      const args = ['--broker', broker.url, '--keystore', 'software', '--dir', join(dir, `kiosk-${mode}`), '--modality', 'face', '--camera', `dir:${photos}`, '--verifier-keys', join(dir, 'verifier-keys.json'), '--ueid', 'kiosk-1', '--verdict-timeout', '1'];
      const r = await runMs(mode, args);
      // The first round warms the disk cache for both; it is not counted.
      if (i === 0) continue;
      result[mode].help.push(h);
      result[mode].prompt.push(r.prompt);
      result[mode].extracted.push(r.extracted);
    }
  }
} finally {
  await broker.stop();
}
const summary = (m: Mode) => ({ helpMs: median(result[m].help), toCapturePromptMs: median(result[m].prompt), toFirstExtractedMs: median(result[m].extracted) });
process.stdout.write(JSON.stringify({ runs, compiled: summary('compiled'), tsx: summary('tsx') }) + '\n');
