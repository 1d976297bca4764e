/**
 * Issue 14 benchmark, run by bench/run.ts in its own process (prints one JSON line last): a fresh kiosk
 * provisioned end to end, as the technician runs it: `biokiosk provision --json` (its own process) against a
 * fresh swtpm with an EK certificate, the fleet broker (mosquitto, TLS, dynamic-security rules changed live), the
 * registry over HTTPS (in this process), the virtual camera and the virtual serial fingerprint module. Each run a
 * new TPM, a new token and a new state folder; the wall time of the command and the time of each of its steps.
 * swtpm_setup (manufacturing the TPM) is not counted: a real kiosk's TPM comes made.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { VirtualFingerprintSensor } from '../drivers/virtual/fingerprint-sensor.ts';
import { synthesizeFingerprintDataset } from '../models/fingerprint/synth/index.ts';
import { BrokerAdmin } from '../verifier/registry/broker-admin.ts';
import { loadTrustedCas } from '../verifier/registry/ek-ca.ts';
import { Registry } from '../verifier/registry/registry.ts';
import { serveRegistry } from '../verifier/registry/server.ts';
import { fleetKeysOf, openVerifier } from '../verifier/setup.ts';
import { BIN } from '../test/helpers/cli.ts';
import { tempDir } from '../test/helpers/e2e.ts';
import { samplePath } from '../test/helpers/fixtures.ts';
import { FleetBroker } from '../test/helpers/fleet-broker.ts';
import { Swtpm } from '../test/helpers/swtpm.ts';

const RUNS = Number(process.env['BENCH_PROVISION_RUNS'] ?? 10);
const SITE = 'bench-pharmacy';
const ADMIN_PASSWORD = 'bench-admin-password-0123456789';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 1 << 24, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) }));
  });
}

const work = await tempDir('bk-bench-provision-');
const broker = await FleetBroker.start({ devices: [], verifiers: ['verifier-1'], admins: [{ id: 'registry', password: ADMIN_PASSWORD }] });
const v = await openVerifier(join(work, 'verifier'), { allowedModels: [] });
const first = await Swtpm.start();
const cas = join(work, 'tpm-cas');
await mkdir(cas);
for (const f of ['issuercert.pem', 'swtpm-localca-rootca-cert.pem']) copyFileSync(join('/var/lib/swtpm-localca', f), join(cas, f));
await first.stop();
const admin = new BrokerAdmin(broker.passwordUrl, { username: 'admin:registry', password: ADMIN_PASSWORD, ca: readFileSync(broker.caPath), rejectUnauthorized: true });
const fleet = fleetKeysOf(v.keys, v.logSigner);
const registry = new Registry({ store: v.store, signer: v.signer, logSigner: v.logSigner, fleet, cas: await loadTrustedCas(cas), broker: { admin, url: broker.passwordUrl } });
const pki = join(broker.dir, 'pki');
const server = await serveRegistry(registry, { tls: { cert: await readFile(join(pki, 'server.pem')), key: await readFile(join(pki, 'server.key')) } });
const fingers = await synthesizeFingerprintDataset({ out: join(work, 'fingers'), fingers: 1, impressions: 1, seed: 3, workers: 0 });
const sensor = await VirtualFingerprintSensor.start({ images: fingers.files, baud: 115_200, pacing: false, finger: true });
const photo = join(work, 'face.jpg');
await sharp(samplePath(2)).rotate().extract({ left: 960, top: 40, width: 900, height: 900 }).jpeg().toFile(photo);

const runs: Array<{ wallMs: number; stepsMs: Record<string, number> }> = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const tpm = await Swtpm.start();
    try {
      const { token } = await registry.issueToken(SITE, 3_600_000);
      const kdir = join(work, `kiosk-${i}`);
      await mkdir(kdir);
      await writeFile(join(kdir, 'kiosk.conf'), `camera = virtual:${photo}?fps=10\nfingerprint-port = ${sensor.path}\nfingerprint-baud = 115200\n`);
      const t0 = performance.now();
      const r = await cli(['provision', '--fleet', server.url, '--token', token, '--site', SITE, '--config', join(kdir, 'kiosk.conf'), '--dir', join(kdir, 'state'), '--tpm', tpm.url, '--ca', broker.caPath, '--json']);
      const wallMs = performance.now() - t0;
      if (r.code !== 0) throw new Error(`provision failed: ${r.stderr}`);
      runs.push({ wallMs, stepsMs: (JSON.parse(r.stdout) as { stepsMs: Record<string, number> }).stepsMs });
    } finally {
      await tpm.stop();
    }
  }
} finally {
  await server.close();
  await admin.close();
  await v.close();
  await sensor.stop();
  await broker.stop();
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const steps = Object.keys(runs[0]!.stepsMs);
process.stdout.write(
  `${JSON.stringify({
    runs: RUNS,
    wallMs: runs.map((r) => Math.round(r.wallMs)),
    medianWallMs: median(runs.map((r) => r.wallMs)),
    maxWallMs: Math.max(...runs.map((r) => r.wallMs)),
    stepMedians: Object.fromEntries(steps.map((s) => [s, median(runs.map((r) => r.stepsMs[s] ?? 0))])),
    medianStepsTotalMs: median(runs.map((r) => Object.values(r.stepsMs).reduce((a, b) => a + b, 0))),
  })}\n`,
);
