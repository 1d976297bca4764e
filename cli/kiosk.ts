/**
 * The kiosk runtime on the command line:
 * - `biokiosk run`: one attempt per subject id read on standard input (the counter's card reader or keyboard):
 *   capture until the quality is good enough, extract, attest, relay, print the verdict. Attestations made offline
 *   wait in the outbox and are delivered when the network returns.
 * - `biokiosk kiosk identity`: the device key's public half and kid, for registration with the verifiers (with
 *   the TPM store, also the TPM's Certify evidence that the key is TPM-resident).
 *
 * Key store: `--tpm SETTING`, or the TPM at /dev/tpmrm0 when it exists; the software key file only with
 * `--keystore software`.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { Attester } from '../device/attester.ts';
import { Relay, type VerdictInfo } from '../device/relay.ts';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { DEFAULT_TPM_DEVICE, openKioskState, type KeyStoreChoice } from '../device/setup.ts';
import { verdictChecker } from '../device/verdicts.ts';
import { openFrameSource } from '../drivers/camera/index.ts';
import { parseTpmUrl } from '../drivers/tpm/index.ts';
import { FaceEngine } from '../models/face/engine.ts';
import { decodeFaceTemplate } from '../models/face/template.ts';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { assertDeviceId, deviceTopics } from '../protocol/topics.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { NotARegularFileError, readRegularFile } from '../protocol/input-files.ts';
import { addBrokerCredentialOptions, brokerCredentialFiles, parseNumber, printJson, type BrokerCredentialOptions } from './options.ts';

const DEFAULT_DIR = 'biokiosk-kiosk';

interface RunOptions {
  dir: string;
  broker: string;
  camera: string;
  verifierKeys: string;
  ueid: string;
  site: string;
  mqttVersion: number;
  online?: boolean;
  maxFrames: number;
  verdictTimeout: number;
  json?: boolean;
}

interface VerifierKeysDoc {
  verifierId: string;
  verdictKey: Record<string, unknown>;
  fleetKey: Record<string, unknown>;
}

/** A state folder or file that was looser than it should be and has been tightened: the operator is told. */
const notice = (m: string) => process.stderr.write(`biokiosk: ${m}\n`);

async function readVerifierKeys(path: string): Promise<VerifierKeysDoc> {
  let doc: VerifierKeysDoc;
  try {
    doc = JSON.parse((await readRegularFile(path)).toString('utf8')) as VerifierKeysDoc;
  } catch (e) {
    if (e instanceof NotARegularFileError) throw e;
    throw new UsageError(`cannot read the verifier keys ${path} (write it with \`biokiosk verifier keys > ${path}\`)`);
  }
  if (typeof doc.verifierId !== 'string' || !doc.verdictKey || !doc.fleetKey) throw new UsageError(`${path} is not the output of \`biokiosk verifier keys\``);
  return doc;
}

export function registerKiosk(program: Command): void {
  addBrokerCredentialOptions(
    program
      .command('run')
      .description('Run the kiosk: for each subject id read on stdin, capture a face, attest, and print the verdict.')
      .requiredOption('--broker <url>', 'MQTT broker URL (mqtts://host:8883 for a fleet broker)'),
  )
    .requiredOption('--camera <spec>', 'frame source: v4l2:/dev/video0, http://..., dir:/path, virtual:/path')
    .requiredOption('--verifier-keys <file>', 'output of `biokiosk verifier keys` (verdict and fleet public keys)')
    .requiredOption('--ueid <id>', 'this device id')
    .option('--site <site>', 'where the kiosk stands', 'unknown-site')
    .option('--dir <dir>', 'state folder (key store, outbox)', DEFAULT_DIR)
    .option('--mqtt-version <n>', '5 or 4', parseNumber('--mqtt-version', 4, 5, true), 5)
    .option('--online', 'ask a verifier for a nonce before each attempt (when connected)')
    .option('--max-frames <n>', 'frames to try for a capture of good enough quality', parseNumber('--max-frames', 1, 100, true), 5)
    .option('--verdict-timeout <s>', 'seconds to wait for a verdict before reporting the attempt as queued', parseNumber('--verdict-timeout', 1, 3600), 10)
    .option('--json', 'one JSON object per attempt')
    .option('--tpm <setting>', 'the TPM holding the attestation key: device:/dev/tpmrm0, swtpm:host=H,port=P, swtpm:unix=PATH (default: /dev/tpmrm0 when it exists)')
    .option('--tpm-handle <handle>', 'persistent handle of the attestation key', parseHandle, undefined)
    .option('--keystore <kind>', 'software: the development key file, instead of a TPM')
    .action(async (o: RunOptions & KeyStoreOptions & BrokerCredentialOptions) => {
      assertDeviceId(o.ueid);
      const keys = await readVerifierKeys(o.verifierKeys);
      const mqttOptions = await brokerConnectOptions(o.broker, brokerCredentialFiles(o));
      const state = await openKioskState(o.dir, { keyStore: keyStoreChoice(o), onNotice: notice });
      process.stderr.write(state.keystore.developmentOnly ? `${SoftwareKeyStore.warning}\n` : `key store: ${state.keystore.description}\n`);
      const engine = await FaceEngine.create();
      const camera = await openFrameSource(o.camera);
      const t = deviceTopics(o.ueid);
      const relay = new Relay({
        brokerUrl: o.broker,
        clientId: o.ueid,
        ueid: o.ueid,
        version: '0.1.0',
        topics: { attestations: t.attestations, verdicts: t.verdicts, challengeRequest: t.challengeRequest, challengeResponse: t.challengeResponse },
        outbox: state.outbox,
        protocolVersion: o.mqttVersion as 4 | 5,
        mqtt: mqttOptions,
        ...verdictChecker(o.ueid, [{ id: keys.verifierId, publicJwk: keys.verdictKey as never }]),
      });
      const attester = new Attester({ ueid: o.ueid, site: o.site, sensor: { make: 'biokiosk', model: 'camera', serial: o.camera.slice(0, 120), firmware: '1' } }, state.keystore, keys.fleetKey as never, state.seq, state.outbox);
      const waiting = new Map<string, (v: VerdictInfo) => void>();
      relay.on('verdict', (v) => waiting.get(v.attId)?.(v));
      relay.start();
      const print = (r: Record<string, unknown>) =>
        o.json ? printJson(r) : process.stdout.write(`${r['subject']}: ${String(r['decision'] ?? r['status']).toUpperCase()}${r['reasons'] ? ` (${(r['reasons'] as string[]).join(', ')})` : ''}${r['error'] ? ` ${r['error']}` : ''}\n`);
      try {
        for await (const line of createInterface({ input: process.stdin })) {
          const subject = line.trim();
          if (!subject) continue;
          try {
            // Capture until a frame is good enough, keeping the best one.
            let best: Awaited<ReturnType<FaceEngine['extract']>> | null = null;
            let lastError: unknown = null;
            for (let i = 0; i < o.maxFrames && !(best && best.quality.score >= best.quality.retryBelow); i++) {
              try {
                const x = await engine.extract((await camera.nextFrame(5000)).data);
                if (!best || x.quality.score > best.quality.score) best = x;
              } catch (e) {
                if (!(e instanceof BiokioskError) || e.kind !== 'input') throw e;
                lastError = e;
              }
            }
            if (!best) throw lastError ?? new BiokioskError('NoCapture', 'no usable frame');
            const nonce = o.online && relay.connected ? (await relay.requestNonce().catch(() => null))?.nonce : undefined;
            const a = await attester.attest({ subject, modality: 'face', template: best.template, templateFormat: 'biokiosk-face/1', quality: best.quality.score, model: decodeFaceTemplate(best.template).model, nonce });
            relay.nudge();
            const verdict = await new Promise<VerdictInfo | null>((resolve) => {
              const timer = setTimeout(() => resolve(null), o.verdictTimeout * 1000);
              waiting.set(a.attId, (v) => {
                clearTimeout(timer);
                resolve(v);
              });
            });
            waiting.delete(a.attId);
            if (verdict) {
              print({ subject, attId: a.attId, quality: best.quality.score, decision: verdict.decision, reasons: verdict.claims.reasons.map((r) => r.code) });
            } else print({ subject, attId: a.attId, quality: best.quality.score, status: 'queued', error: '(no verdict yet: kept in the outbox, delivered when the network returns)' });
          } catch (e) {
            print({ subject, status: 'failed', error: e instanceof Error ? e.message : String(e) });
          }
        }
      } finally {
        await camera.close();
        await relay.stop();
        await engine.close();
        await state.close();
      }
    });

  program
    .command('kiosk')
    .description('Kiosk identity and state.')
    .command('identity')
    .description("Print this kiosk's public attestation key (JWK) and kid, creating the key on first use.")
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--tpm <setting>', 'the TPM holding the attestation key (default: /dev/tpmrm0 when it exists)')
    .option('--tpm-handle <handle>', 'persistent handle of the attestation key', parseHandle, undefined)
    .option('--keystore <kind>', 'software: the development key file, instead of a TPM')
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; json?: boolean } & KeyStoreOptions) => {
      const state = await openKioskState(o.dir, { keyStore: keyStoreChoice(o), onNotice: notice });
      try {
        const r: Record<string, unknown> = { kid: state.keystore.kid, publicJwk: state.keystore.publicJwk, keyStore: state.keystore.developmentOnly ? 'software' : 'tpm', description: state.keystore.description };
        if (state.tpm) {
          // The TPM vouches that the key is its own (fixedTPM, not exportable): evidence for registration.
          const ev = await state.tpm.certify();
          r['certify'] = {
            attest: Buffer.from(ev.attest).toString('base64url'),
            signature: Buffer.from(ev.signature).toString('base64url'),
            signerPublicJwk: ev.signerPublicJwk,
            keyPublicArea: Buffer.from(ev.keyPublicArea).toString('base64url'),
            keyName: Buffer.from(ev.keyName).toString('hex'),
          };
        }
        if (o.json) printJson(r);
        else process.stdout.write(`kid ${r['kid']}\n${JSON.stringify(r['publicJwk'])}\n${r['description']}\n`);
      } finally {
        await state.close();
      }
    });
}

interface KeyStoreOptions {
  tpm?: string;
  tpmHandle?: number;
  keystore?: string;
}

/** --tpm / --keystore to a key store choice; neither: the TPM at /dev/tpmrm0 if present (openKioskState's default). */
export function keyStoreChoice(o: KeyStoreOptions): KeyStoreChoice | undefined {
  if (o.keystore !== undefined && o.keystore !== 'software' && o.keystore !== 'tpm') throw new UsageError(`--keystore takes software or tpm, got "${o.keystore}"`);
  if (o.keystore === 'software') {
    if (o.tpm !== undefined) throw new UsageError('--keystore software and --tpm exclude each other');
    return { kind: 'software' };
  }
  if (o.tpm !== undefined) {
    try {
      parseTpmUrl(o.tpm);
    } catch (e) {
      throw new UsageError(`--tpm: ${(e as Error).message}`);
    }
    return { kind: 'tpm', tpm: o.tpm, handle: o.tpmHandle };
  }
  if (o.keystore === 'tpm' || o.tpmHandle !== undefined) return { kind: 'tpm', tpm: `device:${DEFAULT_TPM_DEVICE}`, handle: o.tpmHandle };
  return undefined;
}

function parseHandle(v: string): number {
  const n = /^0x81[0-9a-f]{6}$/i.test(v) ? Number.parseInt(v, 16) : NaN;
  if (Number.isNaN(n)) throw new UsageError(`--tpm-handle takes a persistent handle 0x81000000-0x81ffffff, got "${v}"`);
  return n;
}
