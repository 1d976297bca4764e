/**
 * `biokiosk demo`: the whole path on one machine with no set-up. An embedded MQTT broker (aedes, MQTT 3.1.1)
 * unless --broker is given; a verifier with a temporary store; a kiosk with the software key store and the
 * virtual camera. Enrols a subject from one photo, then verifies a genuine attempt (another capture of that face)
 * and an impostor attempt (someone else claiming to be them), printing verdicts and per-stage latencies.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import sharp from 'sharp';
import { Attester } from '../device/attester.ts';
import { Relay, type VerdictInfo } from '../device/relay.ts';
import { openKioskState } from '../device/setup.ts';
import { verdictChecker } from '../device/verdicts.ts';
import { createFrameSource } from '../drivers/camera/index.ts';
import { faceApiDir } from '../models/face/convert.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { decodeFaceTemplate } from '../models/face/template.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { UsageError } from '../protocol/errors.ts';
import { deviceTopics } from '../protocol/topics.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier } from '../verifier/setup.ts';
import { printJson } from './options.ts';

interface DemoOptions {
  json?: boolean;
  broker?: string;
  mqttVersion?: string;
  keep?: boolean;
  tpm?: string;
  /** A folder laid out as scripts/dev-pki.sh writes it: ca.pem, devices/demo-kiosk-1.*, verifiers/verifier-1.*. */
  pki?: string;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run the whole path locally: enrol a face, then verify a genuine and an impostor attempt through MQTT.')
    .option('--broker <url>', 'use this MQTT broker instead of the embedded one (e.g. mqtt://127.0.0.1:1883)')
    .option('--mqtt-version <4|5>', 'MQTT protocol version (default: 4 with the embedded broker, 5 with --broker)')
    .option('--keep', 'keep the temporary folder (keys, stores, audit log) and print where it is')
    .option('--tpm <setting>', "sign with a key in this TPM (e.g. swtpm:host=127.0.0.1,port=2321) instead of the development key file")
    .option('--pki <dir>', 'for an mqtts:// fleet broker: the CA and the two identities the demo needs, laid out as scripts/dev-pki.sh writes them (ca.pem, devices/demo-kiosk-1.pem/.key, verifiers/verifier-1.pem/.key)')
    .option('--json', 'print one JSON object')
    .action(async (o: DemoOptions) => {
      const result = await runDemo(o);
      if (o.json) printJson(result);
      else printHuman(result);
    });
}

interface Attempt {
  name: string;
  claimedSubject: string;
  photo: string;
  decision: string;
  reasons: string[];
  score: number | null;
  quality: number;
  latencyMs: { capture: number; extract: number; sign: number; relay: number; verify: number; total: number };
  receipt: { leafIndex: number; treeSize: number };
}

export interface DemoResult {
  ok: true;
  broker: string;
  mqttVersion: 4 | 5;
  camera: string;
  enrolled: { subject: string; photo: string; quality: number };
  attempts: Attempt[];
  auditLogEntries: number;
  folder: string | null;
  /** Which key store signed, where. */
  keyStore: string;
  keyStoreWarning: string | null;
}

async function startEmbeddedBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const { default: Aedes } = (await import('aedes')) as unknown as { default: new () => { handle: (s: unknown) => void; close: (cb: () => void) => void } };
  const aedes = new Aedes();
  const server: Server = createServer(aedes.handle as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close();
        aedes.close(() => r());
      }),
  };
}

function hasFfmpeg(): boolean {
  return spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const version = o.mqttVersion === undefined ? (o.broker ? 5 : 4) : Number(o.mqttVersion);
  if (version !== 4 && version !== 5) throw new UsageError(`--mqtt-version must be 4 or 5, got ${o.mqttVersion}`);
  const folder = await mkdtemp(join(tmpdir(), 'biokiosk-demo-'));
  if (o.pki !== undefined && o.broker === undefined) throw new UsageError('--pki is for a fleet broker given with --broker mqtts://...');
  if (o.pki === undefined && o.broker !== undefined && /^(mqtts|wss):/i.test(o.broker)) throw new UsageError(`${o.broker} is a TLS broker: give --pki DIR with its CA and the demo's identities (scripts/dev-pki.sh DIR --device demo-kiosk-1 --verifier verifier-1)`);
  const ueid = 'demo-kiosk-1';
  // The demo is two parties on the broker, a verifier and a kiosk: each connects under its own identity.
  const identity = (kind: 'devices' | 'verifiers', id: string) =>
    o.broker ? brokerConnectOptions(o.broker, o.pki === undefined ? {} : { ca: join(o.pki, 'ca.pem'), cert: join(o.pki, kind, `${id}.pem`), key: join(o.pki, kind, `${id}.key`) }) : Promise.resolve({});
  const verifierMqtt = await identity('verifiers', 'verifier-1');
  const kioskMqtt = await identity('devices', ueid);
  const embedded = o.broker ? null : await startEmbeddedBroker();
  const brokerUrl = o.broker ?? embedded!.url;
  const samples = join(faceApiDir(), 'demo');
  const engine = await FaceEngine.create();
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    // The verifier: keys, store, audit log; it trusts templates from our face model only.
    const v = await openVerifier(join(folder, 'verifier'), { allowedModels: [engine.pipeline.model.sha256] });
    cleanups.push(() => v.close());
    // How long the verifier took over each attestation's batch (for the latency table).
    const verifyMs = new Map<string, number>();
    // The verifier's own view of each decision's score (verdicts do not carry it).
    const scores = new Map<string, number | null>();
    const node = new VerifierNode(v.verifier, v.store, {
      brokerUrl,
      clientId: 'demo-verifier',
      mqtt: verifierMqtt,
      protocolVersion: version as 4 | 5,
      onVerdict: (r, _m, ms) => {
        if (!r.attId) return;
        verifyMs.set(r.attId, ms);
        scores.set(r.attId, r.score);
      },
    });
    await node.start();
    cleanups.push(() => node.stop());

    // Enrolment at the counter: one photo of alice.
    const enrolPhoto = join(samples, 'sample2.jpg');
    const enrol = await engine.extract(await sharp(enrolPhoto).toBuffer());
    v.store.enroll({ subject: 'alice', modality: 'face', template: enrol.template, templateFormat: 'biokiosk-face/1', modelSha256: engine.pipeline.model.sha256 });

    // The kiosk: key store (the software one, development only, unless --tpm), outbox, relay; registered with the
    // verifier.
    const state = await openKioskState(join(folder, 'kiosk'), { keyStore: o.tpm ? { kind: 'tpm', tpm: o.tpm } : { kind: 'software' } });
    cleanups.push(() => state.close());
    v.store.registerDevice({ ueid, kid: state.keystore.kid, publicJwk: state.keystore.publicJwk as never, site: 'demo-pharmacy' });
    const attester = new Attester({ ueid, site: 'demo-pharmacy', sensor: { make: 'biokiosk', model: 'virtual-camera', serial: 'vcam-0001', firmware: '1.0' } }, state.keystore, v.keys.fleet.publicJwk, state.seq, state.outbox);
    const t = deviceTopics(ueid);
    const relay = new Relay({ brokerUrl, clientId: ueid, ueid, version: '0.1.0', topics: { attestations: t.attestations, verdicts: t.verdicts }, outbox: state.outbox, protocolVersion: version as 4 | 5, mqtt: kioskMqtt, ...verdictChecker(ueid, [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }]) });
    const waiting = new Map<string, (v: VerdictInfo) => void>();
    relay.on('verdict', (x) => waiting.get(x.attId)?.(x));
    relay.start();
    cleanups.push(() => relay.stop());
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cannot connect to the MQTT broker at ${brokerUrl}`)), 10_000);
      relay.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
    });

    // The people at the camera: alice again (a new capture: reframed, other light), then someone else.
    const genuinePhoto = join(folder, 'alice-at-the-kiosk.jpg');
    const meta = await sharp(enrolPhoto).rotate().metadata();
    await writeFile(genuinePhoto, await sharp(enrolPhoto).rotate().extract({ left: 900, top: 0, width: (meta.autoOrient?.width ?? meta.width!) - 900, height: 1000 }).modulate({ brightness: 1.1 }).jpeg({ quality: 80 }).toBuffer());
    const useFfmpeg = hasFfmpeg();
    const attempts: Attempt[] = [];
    for (const [name, photo] of [['genuine', genuinePhoto], ['impostor', join(samples, 'sample6.jpg')]] as const) {
      // A person steps up: the camera starts (ffmpeg's start-up is part of "capture") and gives a frame.
      const camera = useFfmpeg ? createFrameSource(`virtual:${photo}?fps=10&width=1280&height=960`) : null;
      const t0 = performance.now();
      let frame: Buffer;
      if (camera) {
        await camera.open();
        frame = (await camera.nextFrame(5000)).data;
        await camera.close();
      } else {
        frame = await sharp(photo).jpeg().toBuffer();
      }
      const t1 = performance.now();
      const x = await engine.extract(frame);
      const t2 = performance.now();
      const model = decodeFaceTemplate(x.template).model;
      const a = await attester.attest({ subject: 'alice', modality: 'face', template: x.template, templateFormat: 'biokiosk-face/1', quality: x.quality.score, model });
      const t3 = performance.now();
      const verdict = await new Promise<VerdictInfo>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no verdict within 15 s')), 15_000);
        waiting.set(a.attId, (vv) => {
          clearTimeout(timer);
          resolve(vv);
        });
        relay.nudge();
      });
      const t4 = performance.now();
      const claims = verdict.claims;
      const verify = verifyMs.get(a.attId) ?? 0;
      attempts.push({
        name,
        claimedSubject: 'alice',
        photo,
        decision: verdict.decision,
        reasons: claims.reasons.map((r) => r.code),
        score: scores.get(a.attId) ?? null,
        quality: x.quality.score,
        latencyMs: { capture: t1 - t0, extract: t2 - t1, sign: t3 - t2, relay: Math.max(0, t4 - t3 - verify), verify, total: t4 - t0 },
        receipt: { leafIndex: claims.receipt.leafIndex, treeSize: claims.receipt.treeSize },
      });
    }
    return {
      ok: true,
      broker: o.broker ? brokerUrl : `embedded aedes at ${brokerUrl}`,
      mqttVersion: version as 4 | 5,
      camera: useFfmpeg ? 'virtual camera (ffmpeg MJPEG pipe)' : 'image files (ffmpeg not installed: the virtual camera needs it)',
      enrolled: { subject: 'alice', photo: enrolPhoto, quality: enrol.quality.score },
      attempts,
      auditLogEntries: v.audit.size,
      folder: o.keep ? folder : null,
      keyStore: state.keystore.description,
      keyStoreWarning: state.keystore.developmentOnly ? 'The kiosk used the SOFTWARE key store (a key file): development and demos only.' : null,
    };
  } finally {
    for (const c of cleanups.reverse()) await c();
    await engine.close();
    await embedded?.close();
    if (!o.keep) await rm(folder, { recursive: true, force: true });
  }
}

function printHuman(r: DemoResult): void {
  const f = (v: number) => `${v.toFixed(1)} ms`.padStart(9);
  const lines = [
    `broker    ${r.broker} (MQTT ${r.mqttVersion === 5 ? '5' : '3.1.1'})`,
    `camera    ${r.camera}`,
    `enrolled  ${r.enrolled.subject} from ${r.enrolled.photo} (quality ${r.enrolled.quality})`,
    '',
    'attempt   claims  decision  score   quality  capture    extract    sign       relay      verify     total',
  ];
  for (const a of r.attempts) {
    const l = a.latencyMs;
    lines.push(
      `${a.name.padEnd(9)} ${a.claimedSubject.padEnd(7)} ${a.decision.toUpperCase().padEnd(9)} ${(a.score === null ? '-' : a.score.toFixed(3)).padEnd(7)} ${String(a.quality).padEnd(8)}${f(l.capture)}${f(l.extract)}  ${f(l.sign)}  ${f(l.relay)}  ${f(l.verify)}  ${f(l.total)}` +
        (a.reasons.length ? `  reasons: ${a.reasons.join(', ')}` : ''),
    );
  }
  lines.push('', `audit log: ${r.auditLogEntries} entries; each verdict carries its inclusion proof`, `key store: ${r.keyStore}`);
  if (r.keyStoreWarning) lines.push(r.keyStoreWarning);
  if (r.folder) lines.push(`state kept in ${r.folder}`);
  process.stdout.write(lines.join('\n') + '\n');
}
