/**
 * The technician's commands (provisioning/ does the work; this parses flags and prints):
 * - `biokiosk provision --fleet URL --token TOKEN --site NAME [--config PATH]` (and `--offline` in three runs);
 * - `biokiosk selftest [--config PATH]`;
 * - `biokiosk rotate-key --fleet URL [--config PATH]`;
 * - `biokiosk decommission --fleet URL [--config PATH] [--export FILE]`.
 */
import type { Command } from 'commander';
import { UsageError } from '../protocol/errors.ts';
import { decommission, readProvisionedConfig, rotateKey, selftest } from '../provisioning/lifecycle.ts';
import { provision, type StepEvent } from '../provisioning/provision.ts';
import { parseNumber, printJson } from './options.ts';

const DEFAULT_CONFIG = '/etc/biokiosk/kiosk.conf';
const DEFAULT_DIR = '/var/lib/biokiosk';

const STEP_LABELS: Record<string, string> = {
  preflight: 'preflight (TPM, sensors, models, clock, disk, registry)',
  key: 'attestation key',
  evidence: 'TPM evidence (EK certificate, identity key)',
  request: 'enrolment request',
  activate: "the registry's challenge (ActivateCredential, Certify)",
  proof: 'proof and registration',
  answer: "the registry's answer",
  broker: 'broker login',
  config: 'configuration',
  qr: 'asset QR code',
};

/** One line per step on stderr, as it happens. */
function progress(json: boolean): (e: StepEvent) => void {
  return (e) => {
    if (json) return;
    const label = STEP_LABELS[e.step] ?? e.step;
    if (e.state === 'start') process.stderr.write(`  ... ${label}\n`);
    else if (e.state === 'done') process.stderr.write(`  ok  ${label}${e.detail ? `: ${e.detail}` : ''} (${(e.ms ?? 0).toFixed(0)} ms)\n`);
    else if (e.state === 'retry') process.stderr.write(`  ..  ${label}: retrying (${e.detail})\n`);
    else process.stderr.write(`  XX  ${label}: ${e.detail}\n`);
  };
}

function parseHandle(v: string): number {
  const n = Number(v);
  if (!/^0x81[0-9a-fA-F]{6}$/.test(v) || !Number.isInteger(n)) throw new UsageError(`--tpm-handle takes a persistent handle 0x81xxxxxx, got "${v}"`);
  return n;
}

export function registerProvision(program: Command): void {
  program
    .command('provision')
    .description('Enrol this kiosk with the fleet: preflight, a TPM-proven identity, broker credentials, configuration, an asset QR code.')
    .option('--fleet <url>', "the registry's URL, e.g. https://registry.example:7443 (online)")
    .option('--token <token>', 'the enrolment token for this site (`biokiosk verifier issue-token`)')
    .requiredOption('--site <name>', 'where the kiosk stands (must be the token\'s site)')
    .option('--config <file>', 'the kiosk configuration to read (sensors) and write', DEFAULT_CONFIG)
    .option('--dir <dir>', 'the kiosk state folder', DEFAULT_DIR)
    .option('--tpm <setting>', 'the TPM: device:/dev/tpmrm0, swtpm:host=H,port=P', '')
    .option('--tpm-handle <handle>', 'persistent handle of the attestation key', parseHandle)
    .option('--keystore <kind>', 'software: a development key file instead of a TPM (only fleets allowing development devices accept it)')
    .option('--ca <file>', "the fleet CA certificate (PEM): checks the registry's and the broker's certificates")
    .option('--camera <spec>', 'the face camera to check (default: the configuration\'s)')
    .option('--fingerprint-port <path>', 'the fingerprint module to check (default: the configuration\'s)')
    .option('--fingerprint-baud <n>', 'its baud rate', parseNumber('--fingerprint-baud', 1200, 921_600, true))
    .option('--models <dir>', 'the models folder to check against its manifest')
    .option('--qr <file>', 'where to write the asset QR code PNG (default: asset-qr.png in --dir)')
    .option('--offline', 'no network: exchange signed files with the registry (three runs: --out; --challenge FILE --out; --answer FILE)')
    .option('--out <file>', 'offline: where to write the request (first run) or the proof (second run)')
    .option('--challenge <file>', "offline: the registry's challenge file")
    .option('--answer <file>', "offline: the registry's answer file")
    .option('--fleet-keys <file>', "offline: the fleet's public keys (`verifier keys` output), to check the registry's files")
    .option('--resume', 'finish an enrolment the registry answered while the broker could not be reached')
    .option('--retry-for <s>', 'keep retrying the registry and the broker this long', parseNumber('--retry-for', 0, 3600), 120)
    .option('--json', 'print one JSON object')
    .action(async (o: { fleet?: string; token?: string; site: string; config: string; dir: string; tpm: string; tpmHandle?: number; keystore?: string; ca?: string; camera?: string; fingerprintPort?: string; fingerprintBaud?: number; models?: string; qr?: string; offline?: boolean; out?: string; challenge?: string; answer?: string; fleetKeys?: string; resume?: boolean; retryFor: number; json?: boolean }) => {
      if (o.keystore !== undefined && o.keystore !== 'software') throw new UsageError(`--keystore takes "software", got "${o.keystore}"`);
      const software = o.keystore === 'software';
      if (!software && !o.tpm) throw new UsageError('name the TPM (--tpm device:/dev/tpmrm0, --tpm swtpm:host=H,port=P) or, for a development kiosk, --keystore software');
      if (o.offline) {
        if (o.fleet) throw new UsageError('--offline exchanges files; --fleet is for online enrolment');
        if (!o.answer && !o.out) throw new UsageError('--offline needs --out FILE (the request, or with --challenge the proof) or --answer FILE');
        if (o.answer && !o.fleetKeys) throw new UsageError("--offline --answer needs --fleet-keys FILE to check the registry's signature");
      } else if (!o.fleet) throw new UsageError('--fleet URL (the registry), or --offline');
      if (!o.offline && !o.resume && !o.token) throw new UsageError('--token TOKEN (issued by `biokiosk verifier issue-token --site NAME`)');
      if (!o.json) process.stderr.write(`provisioning kiosk at ${o.site}\n`);
      const r = await provision({
        fleet: o.offline ? undefined : o.fleet,
        token: o.token,
        site: o.site,
        config: o.config,
        dir: o.dir,
        tpm: software ? undefined : o.tpm,
        tpmHandle: o.tpmHandle,
        software,
        ca: o.ca,
        camera: o.camera,
        fingerprint: o.fingerprintPort ? { port: o.fingerprintPort, baudRate: o.fingerprintBaud ?? 57_600 } : undefined,
        modelsDir: o.models,
        qrPng: o.qr,
        retryForMs: o.retryFor * 1000,
        offlineOut: o.offline ? o.out : undefined,
        offlineChallenge: o.offline ? o.challenge : undefined,
        offlineAnswer: o.offline ? o.answer : undefined,
        fleetKeys: o.fleetKeys,
        resume: o.resume,
        onStep: progress(o.json === true),
      });
      if ('wrote' in r) {
        if (o.json) return printJson({ ok: true, wrote: r.wrote, next: r.next });
        process.stdout.write(`wrote ${r.wrote}\nnext: ${r.next}\n`);
        return;
      }
      if (o.json) return printJson({ ok: true, ueid: r.ueid, site: r.site, kid: r.kid, evidence: r.evidence, broker: r.broker, config: r.config, qr: { text: r.qrText, png: r.qrPng }, stepsMs: r.stepsMs, preflight: r.preflight });
      const total = Object.values(r.stepsMs).reduce((a, b) => a + b, 0);
      process.stdout.write(
        [
          '',
          `kiosk ${r.ueid} provisioned at ${r.site} (${r.evidence === 'tpm' ? 'identity proven by its TPM' : 'DEVELOPMENT device: software key'})`,
          `  key thumbprint  ${r.kid}`,
          `  broker          ${r.broker} (login ${r.ueid})`,
          `  configuration   ${r.config}`,
          `  asset QR code   ${r.qrPng} (${r.qrText})`,
          `  took            ${(total / 1000).toFixed(1)} s`,
          '',
          r.qrTerminal,
        ].join('\n') + '\n',
      );
    });

  program
    .command('selftest')
    .description('Check this kiosk end to end: the preflight, a capture from each sensor, and a test attestation answered by the verifier (never matched). Exit 2 naming the part that failed.')
    .option('--config <file>', 'the kiosk configuration', DEFAULT_CONFIG)
    .option('--models <dir>', 'the models folder to check against its manifest')
    .option('--timeout <s>', 'seconds to wait for a capture and for the verdict', parseNumber('--timeout', 1, 600), 15)
    .option('--json', 'print one JSON object')
    .action(async (o: { config: string; models?: string; timeout: number; json?: boolean }) => {
      const r = await selftest(readProvisionedConfig(o.config), { modelsDir: o.models, timeoutMs: o.timeout * 1000 });
      if (o.json) printJson(r);
      else {
        for (const c of r.checks) process.stdout.write(`  ${c.ok ? 'ok' : 'XX'}  ${c.label}: ${c.detail}${c.fix && !c.ok ? ` (${c.fix})` : ''}\n`);
        for (const c of r.captures) process.stdout.write(`  ${c.ok ? 'ok' : 'XX'}  capture (${c.modality}): ${c.detail}\n`);
        if (r.captures.length > 0 || r.attestation.detail !== 'not run') process.stdout.write(`  ${r.attestation.ok ? 'ok' : 'XX'}  test attestation: ${r.attestation.detail}\n`);
      }
      if (!r.ok) throw new UsageError(`self-test failed: ${r.failed}`);
      if (!o.json) process.stdout.write('self-test passed\n');
    });

  program
    .command('rotate-key')
    .description('Replace the kiosk\'s TPM key with a new one certified by the same TPM and endorsed by the old key; the old one is removed once the registry confirms.')
    .requiredOption('--fleet <url>', "the registry's URL")
    .option('--config <file>', 'the kiosk configuration', DEFAULT_CONFIG)
    .option('--json', 'print one JSON object')
    .action(async (o: { fleet: string; config: string; json?: boolean }) => {
      const r = await rotateKey(readProvisionedConfig(o.config), { fleet: o.fleet });
      if (o.json) return printJson({ ok: true, ...r });
      process.stdout.write(`key rotated: ${r.oldKid} -> ${r.newKid} (TPM handle 0x${r.handle.toString(16)})\n`);
    });

  program
    .command('decommission')
    .description('Take the kiosk out of service: its outbox delivered (or exported), revoked by the registry, broker login deleted, TPM key and counter removed, local state wiped.')
    .requiredOption('--fleet <url>', "the registry's URL")
    .option('--config <file>', 'the kiosk configuration', DEFAULT_CONFIG)
    .option('--export <file>', 'write undelivered attestations here (for the technician to keep) instead of waiting for them')
    .option('--drain-timeout <s>', 'how long to wait for the outbox to be delivered', parseNumber('--drain-timeout', 1, 3600), 60)
    .option('--reason <text>', 'why, for the audit log', 'decommissioned by a technician')
    .option('--json', 'print one JSON object')
    .action(async (o: { fleet: string; config: string; export?: string; drainTimeout: number; reason: string; json?: boolean }) => {
      const c = readProvisionedConfig(o.config);
      const r = await decommission(c, { fleet: o.fleet, exportTo: o.export, drainTimeoutMs: o.drainTimeout * 1000, reason: o.reason });
      if (o.json) return printJson({ ok: true, ueid: c.ueid, ...r });
      process.stdout.write(`kiosk ${c.ueid} decommissioned at ${new Date(r.revokedAt).toISOString()}: ${r.delivered} attestations delivered, ${r.exported} exported${o.export && r.exported ? ` to ${o.export}` : ''}; TPM key and state removed\n`);
    });
}
