/**
 * The kiosk runtime on the command line (the kiosk itself is device/kiosk.ts; this parses flags and prints):
 * - `biokiosk run`: one verification session per subject id read on standard input (the counter's card reader
 *   or keyboard); prints its events and its result. Attempts made offline wait in the outbox and are settled
 *   when their verdict comes.
 * - `biokiosk kiosk identity`: the device key's public half and kid, for registration with the verifiers (with
 *   the TPM store, also the TPM's Certify evidence that the key is TPM-resident).
 * - `biokiosk kiosk heads`: the audit-log checkpoints this kiosk accepted, for `verifier audit --known-heads`.
 *
 * Key store: `--tpm SETTING`, or the TPM at /dev/tpmrm0 when it exists; the software key file only with
 * `--keystore software`.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { SoftwareKeyStore } from '../device/keystore/software.ts';
import { ServiceNotifier } from '../protocol/service-notify.ts';
import { Kiosk, loadVerifierKeys, trustedFrom, type CaptureConfig, type KioskAlarm } from '../device/kiosk.ts';
import type { SessionEvent } from '../device/session/events.ts';
import type { NoncePolicy } from '../device/session/policy.ts';
import type { SessionResult } from '../device/session/session.ts';
import { CounterScreen } from '../device/ui/controller.ts';
import { serveScreen } from '../device/ui/server.ts';
import { DEFAULT_TPM_DEVICE, openKioskState, type KeyStoreChoice } from '../device/setup.ts';
import { openTreeHeads } from '../device/tree-heads.ts';
import { parseTpmUrl } from '../drivers/tpm/index.ts';
import type { Modality } from '../protocol/claims.ts';
import { UsageError } from '../protocol/errors.ts';
import { assertDeviceId } from '../protocol/topics.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { addBrokerCredentialOptions, brokerCredentialFiles, parseNumber, printJson, type BrokerCredentialOptions } from './options.ts';

const DEFAULT_DIR = 'biokiosk-kiosk';

interface RunOptions {
  dir: string;
  broker: string;
  witness?: string[];
  modality: string;
  camera?: string;
  fingerprintPort?: string;
  fingerprintBaud?: number;
  verifierKeys: string;
  ueid: string;
  site: string;
  mqttVersion: number;
  online?: boolean;
  requireNonce?: boolean;
  maxFrames: number;
  maxPlacements: number;
  verdictTimeout: number;
  events?: boolean;
  json?: boolean;
  screen?: string | true;
  siteKind: string;
  scenario?: string[];
  lang: string;
  wantEligibility?: boolean;
}

const DEFAULT_SCREEN_PORT = 7380;

/** A state folder or file that was looser than it should be and has been tightened: the operator is told. */
const notice = (m: string) => process.stderr.write(`biokiosk: ${m}\n`);

function describeAlarm(a: KioskAlarm): string {
  switch (a.kind) {
    case 'outbox':
      return `outbox ${a.level === 'full' ? 'FULL: no new attestations until verdicts drain it' : 'nearly full'} (${a.entries} attestations, ${a.bytes} bytes)`;
    case 'verdict_refused':
      return `${a.receipt ? `receipt refused (${a.receipt})` : 'verdict refused'}: ${a.reason}`;
    case 'offline':
      return `no broker for ${Math.round(a.sinceMs / 1000)} s: attempts are queued in the outbox`;
    case 'device':
      return `${a.modality} device: ${a.reason}`;
  }
}

/** One line for a person watching the terminal (the counter screen renders the same events). */
function describeEvent(e: SessionEvent): string | null {
  if (e.type === 'transition') {
    const p = e.payload as Record<string, unknown>;
    if (e.to === 'identify') return 'waiting for a subject id';
    if (e.to === 'challenge') return 'asking a verifier for a nonce';
    if (e.to === 'capture') return `${e.payload.prompt.replaceAll('_', ' ')} (${e.payload.modality}, capture ${e.payload.attempt} of ${e.payload.of})`;
    if (e.to === 'attest') return `attesting the ${p['modality']} template (quality ${p['quality']})`;
    if (e.to === 'awaiting_verdict') return `waiting for the verdict on ${p['attId']}`;
    return null;
  }
  if (e.type === 'quality') return `  ${e.modality} capture ${e.attempt}: ${e.accepted ? 'good' : 'retry'}${e.score !== null ? ` (quality ${e.score}, retry below ${e.retryBelow})` : ''}${e.problem && !e.accepted ? `: ${e.problem}` : ''}`;
  if (e.type === 'fallback') return `  ${e.reason}${e.to ? `: trying ${e.to}` : ''}`;
  if (e.type === 'step_up') return `  the verifier asks for one more check (${e.reasons.join(', ')})${e.to ? `: ${e.to}` : ': none fitted here, check the ID at the counter'}`;
  return `  ${e.modality} device ${e.status}${e.reason ? `: ${e.reason}` : ''}`;
}

export function registerKiosk(program: Command): void {
  addBrokerCredentialOptions(
    program
      .command('run')
      .description('Run the kiosk: one verification session per subject id read on stdin (capture, extract, attest, verdict).')
      .requiredOption('--broker <url>', 'MQTT broker URL (mqtts://host:8883 for a fleet broker)'),
  )
    // Read by cli/main.ts before these flags are parsed (device/config.ts); listed here for --help.
    .option('--config <file>', 'settings from a file (/etc/biokiosk/kiosk.conf: key = value, keys are these long flags); flags given here win')
    .option('--modality <m>', 'face | fingerprint | auto (every fitted device: face first, then fingerprint)', 'auto')
    .option('--camera <spec>', 'face: frame source v4l2:/dev/video0, http://..., dir:/path, virtual:/path')
    .option('--fingerprint-port <path>', 'fingerprint: serial port of a ZFM-family module (R307, R503, AS608)')
    .option('--fingerprint-baud <n>', 'its baud rate', parseNumber('--fingerprint-baud', 1200, 921_600, true))
    .requiredOption('--verifier-keys <file>', 'output of `biokiosk verifier keys` (verdict, fleet and audit-log public keys)')
    .option('--witness <vkey...>', "a witness whose cosignatures on the log's checkpoints this kiosk checks and keeps (C2SP vkey, `biokiosk witness vkey`)")
    .requiredOption('--ueid <id>', 'this device id')
    .option('--site <site>', 'where the kiosk stands', 'unknown-site')
    .option('--dir <dir>', 'state folder (key store, outbox, accepted checkpoints)', DEFAULT_DIR)
    .option('--mqtt-version <n>', '5 or 4', parseNumber('--mqtt-version', 4, 5, true), 5)
    .option('--online', 'ask a verifier for a nonce before each attempt when connected')
    .option('--require-nonce', 'no attempt without a verifier nonce (offline: "check the ID at the counter")')
    .option('--max-frames <n>', 'face: frames tried for a good enough capture before falling back', parseNumber('--max-frames', 1, 100, true), 5)
    .option('--max-placements <n>', 'fingerprint: placements tried', parseNumber('--max-placements', 1, 20, true), 3)
    .option('--verdict-timeout <s>', 'seconds to wait for a verdict before reporting the attempt as queued', parseNumber('--verdict-timeout', 1, 3600), 10)
    .option('--events', 'with --json: every session event too, one JSON object each')
    .option('--json', 'one JSON object per attempt')
    .option('--tpm <setting>', 'the TPM holding the attestation key: device:/dev/tpmrm0, swtpm:host=H,port=P, swtpm:unix=PATH (default: /dev/tpmrm0 when it exists)')
    .option('--tpm-handle <handle>', 'persistent handle of the attestation key', parseHandle, undefined)
    .option('--keystore <kind>', 'software: the development key file, instead of a TPM')
    .option('--screen [port]', 'serve the counter screen on http://127.0.0.1:PORT/ for this kiosk\'s browser (default port 7380; 0: any free port); sessions start there, and lines on stdin (a card scanner) go to its start screen')
    .option('--site-kind <kind>', 'with --screen: pharmacy (the pharmacist\'s view: services to pick, receipt, override) or hospital (the patient\'s own check-in, with eligibility)', 'pharmacy')
    .option('--scenario <id...>', 'the service asked for, as named in the verifier\'s decision policy; with --screen, the services offered (default: pharmacy otc_pickup prescription controlled_substance; hospital hospital_admission), without it the first is the scenario of each session')
    .option('--lang <lang>', 'with --screen: the language the screen starts in, en or zh-Hans', 'en')
    .option('--want-eligibility', 'with --screen: ask for the eligibility answer in pharmacy sessions too')
    .action(async (o: RunOptions & KeyStoreOptions & BrokerCredentialOptions) => {
      assertDeviceId(o.ueid);
      const screenPort = o.screen === undefined ? undefined : o.screen === true ? DEFAULT_SCREEN_PORT : parseNumber('--screen', 0, 65_535, true)(o.screen);
      if (o.siteKind !== 'pharmacy' && o.siteKind !== 'hospital') throw new UsageError(`--site-kind takes pharmacy or hospital, got "${o.siteKind}"`);
      if (o.lang !== 'en' && o.lang !== 'zh-Hans') throw new UsageError(`--lang takes en or zh-Hans, got "${o.lang}"`);
      const capture = captureConfig(o);
      const keys = await loadVerifierKeys(o.verifierKeys);
      const nonce: NoncePolicy = o.requireNonce ? 'required' : o.online ? 'when_online' : 'never';
      const kiosk = await Kiosk.create({
        dir: o.dir,
        ueid: o.ueid,
        site: o.site,
        keyStore: keyStoreChoice(o),
        verifiers: trustedFrom(keys, o.witness ?? []),
        broker: { url: o.broker, protocolVersion: o.mqttVersion as 4 | 5, mqtt: await brokerConnectOptions(o.broker, brokerCredentialFiles(o)) },
        capture,
        // On the screen the person is asked for consent before any capture; on the terminal the operator has asked.
        policy: { maxCaptures: { face: o.maxFrames, fingerprint: o.maxPlacements }, nonce, verdictTimeoutMs: o.verdictTimeout * 1000, consent: screenPort === undefined ? 'none' : 'required' },
        onNotice: notice,
      });
      const ks = kiosk.state.keystore;
      process.stderr.write(ks.developmentOnly ? `${SoftwareKeyStore.warning}\n` : `key store: ${ks.description}\n`);
      // Under systemd (Type=notify): ready once the kiosk is set up, then watchdog pings and a status per session.
      const service = ServiceNotifier.fromEnvironment();
      await service?.ready(`kiosk ${o.ueid} ready; key store: ${ks.description}`);
      service?.startWatchdog();
      kiosk.on('alarm', (a) => process.stderr.write(`biokiosk: ALARM ${describeAlarm(a)}\n`));
      const subjects = new Map<string, string>();
      // A verdict for an attempt reported "queued" settles it now.
      const queued = new Set<string>();
      kiosk.on('verdict', (v) => {
        if (!queued.delete(v.attId)) return;
        const r = { subject: subjects.get(v.attId), attId: v.attId, decision: v.decision, reasons: v.claims.reasons.map((x) => x.code), settled: 'later' };
        if (o.json) printJson(r);
        else process.stdout.write(`${r.subject}: ${r.decision.toUpperCase()} (verdict for the queued attempt ${v.attId})\n`);
      });
      const print = (subject: string, r: SessionResult) => {
        if (r.outcome === 'queued' && r.attId) queued.add(r.attId);
        if (r.attId) subjects.set(r.attId, subject);
        const out = { subject, outcome: r.outcome, ...(r.verdict ? { decision: r.verdict.decision } : { status: r.outcome }), reasons: r.reasons, modality: r.modality, attId: r.attId, receipt: r.verdict ? { leafIndex: r.verdict.claims.receipt.leafIndex, treeSize: r.verdict.claims.receipt.treeSize } : null };
        if (o.json) printJson(out);
        else process.stdout.write(`${subject}: ${r.outcome.toUpperCase()}${r.reasons.length ? ` (${r.reasons.join(', ')})` : ''}${r.outcome === 'queued' ? ' (no verdict yet: kept in the outbox, delivered when the network returns)' : ''}\n`);
      };
      if (screenPort !== undefined) {
        const screen = new CounterScreen(kiosk, { siteKind: o.siteKind, scenarios: o.scenario, lang: o.lang, wantEligibility: o.wantEligibility });
        const server = await serveScreen(screen, { port: screenPort });
        screen.on('result', ({ subject, result }) => {
          if (result.outcome !== 'cancelled') print(subject ?? '', result);
        });
        process.stderr.write(`counter screen on ${server.url} (open it in the kiosk's browser, e.g. chromium --kiosk --app=${server.url})\n`);
        // A card or barcode scanner types like a keyboard: its lines start a session from the start screen.
        const lines = createInterface({ input: process.stdin });
        lines.on('line', (line) => screen.scanned(line.trim()));
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        lines.close();
        await server.close();
        await screen.close();
        await kiosk.close();
        return;
      }
      try {
        for await (const line of createInterface({ input: process.stdin })) {
          const subject = line.trim();
          if (!subject) continue;
          const session = kiosk.session(o.scenario ? { scenario: o.scenario[0] } : {});
          session.on('event', (e) => {
            if (o.json && o.events) printJson({ event: e });
            else if (!o.json) {
              const d = describeEvent(e);
              if (d) process.stderr.write(`${d}\n`);
            }
          });
          session.begin();
          session.identify(subject);
          const r = await session.done;
          print(subject, r);
          void service?.status(`kiosk ${o.ueid}: last session ${r.outcome} at ${new Date().toISOString()}`);
        }
      } finally {
        await service?.stopping();
        await kiosk.close();
      }
    });

  const kioskCmd = program.command('kiosk').description('Kiosk identity and state.');
  kioskCmd
    .command('heads')
    .description('Export the audit-log checkpoints this kiosk accepted (for `biokiosk verifier audit --known-heads FILE`).')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--ueid <id>', 'this device id (recorded in the export)')
    .action((o: { dir: string; ueid?: string }) => {
      const heads = openTreeHeads(o.dir, notice);
      try {
        printJson({ kind: 'biokiosk-known-checkpoints/1', ueid: o.ueid ?? null, checkpoints: heads.store.all() });
      } finally {
        heads.close();
      }
    });
  kioskCmd
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

/** Which capture devices `run` fits, from --modality and the device options. */
function captureConfig(o: RunOptions): CaptureConfig[] {
  const want = o.modality === 'auto' ? (['face', 'fingerprint'] as Modality[]) : [o.modality as Modality];
  if (!['auto', 'face', 'fingerprint'].includes(o.modality)) throw new UsageError(`--modality takes face, fingerprint or auto, got "${o.modality}"`);
  const out: CaptureConfig[] = [];
  if (want.includes('face') && o.camera) out.push({ modality: 'face', camera: o.camera });
  if (want.includes('fingerprint') && o.fingerprintPort) out.push({ modality: 'fingerprint', port: o.fingerprintPort, baudRate: o.fingerprintBaud });
  if (o.modality === 'face' && !o.camera) throw new UsageError('--modality face needs --camera SPEC');
  if (o.modality === 'fingerprint' && !o.fingerprintPort) throw new UsageError('--modality fingerprint needs --fingerprint-port PATH');
  if (out.length === 0) throw new UsageError('no capture device: give --camera SPEC (face) and/or --fingerprint-port PATH (fingerprint)');
  return out;
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
