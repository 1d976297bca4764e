/** `biokiosk verifier ...`: run a verifier node, enrol subjects, manage devices, audit the log. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { jwkThumbprint, p256PublicJwk } from '../protocol/signer.ts';
import { assertDeviceId } from '../protocol/topics.ts';
import { readManifest } from '../models/face/models.ts';
import { fingerprintExtractorIdentity } from '../models/fingerprint/engine.ts';
import { TEMPLATE_FORMATS } from './extract.ts';
import { createEngine, parseModality } from '../models/engines.ts';
import { SqliteAuditStore } from '../verifier/audit/store.ts';
import { p256TreeHeadVerifier } from '../protocol/tree-head.ts';
import { auditLog } from '../verifier/audit/verify.ts';
import { openVerifierKeys } from '../verifier/keys.ts';
import { VerifierNode } from '../verifier/node.ts';
import { openVerifier } from '../verifier/setup.ts';
import { readInput } from './extract.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { ServiceNotifier } from '../protocol/service-notify.ts';
import { addBrokerCredentialOptions, brokerCredentialFiles, parseNumber, printJson, type BrokerCredentialOptions } from './options.ts';

/** A state folder or file that was looser than it should be and has been tightened: the operator is told. */
const notice = (m: string) => process.stderr.write(`biokiosk: ${m}\n`);

const DEFAULT_DIR = 'biokiosk-verifier';

/** The template makers of this build: the face embedding net, and the fingerprint extractor (its graphs' identity). */
async function defaultAllowedModels(): Promise<string[]> {
  const m = await readManifest();
  const face = Object.entries(m.models).filter(([, e]) => e.modality === 'face').map(([, e]) => e.sha256);
  const fp = Object.fromEntries(Object.entries(m.models).filter(([, e]) => e.modality === 'fingerprint').map(([n, e]) => [n, e.sha256]));
  return [...face, fingerprintExtractorIdentity(fp).sha256];
}

export function registerVerifier(program: Command): void {
  const v = program.command('verifier').description('The verifier node: decide attestations, keep the gallery, the device registry and the audit log.');

  addBrokerCredentialOptions(
    v
      .command('run')
      .description('Run a verifier node on an MQTT broker (MQTT 5 shared subscription: start several to share the stream).')
      .requiredOption('--broker <url>', 'MQTT broker URL, e.g. mqtts://broker:8883 (a fleet broker) or mqtt://127.0.0.1:1883'),
  )
    .option('--dir <dir>', 'state folder (keys, store, audit log)', DEFAULT_DIR)
    .option('--id <id>', 'verifier id (used when the key file is first created)', 'verifier-1')
    .option('--mqtt-version <n>', '5 (shared subscriptions) or 4 (MQTT 3.1.1: one verifier)', parseNumber('--mqtt-version', 4, 5, true), 5)
    .option('--group <name>', 'shared subscription group', 'verifiers')
    .option('--allow-model <sha256...>', 'model hashes whose templates are accepted (default: the models in models/manifest.json)')
    .option('--face-threshold <d>', 'face match threshold (Euclidean distance)', parseNumber('--face-threshold', 0, 2))
    .option('--fingerprint-threshold <s>', 'fingerprint match threshold (minimum MCC score, 0-1)', parseNumber('--fingerprint-threshold', 0, 1))
    .option('--require-nonce', 'refuse attestations without a verifier nonce (online checks only)')
    // One core stays with the main thread, which decides, logs and signs verdicts.
    .option('--workers <n>', 'worker threads for signature checks and decryption (0: on the main thread; default: one per core but one)', parseNumber('--workers', 0, 64, true), Math.max(1, availableParallelism() - 1))
    .action(async (o: { broker: string; dir: string; id: string; mqttVersion: number; group: string; allowModel?: string[]; faceThreshold?: number; requireNonce?: boolean; workers: number; fingerprintThreshold?: number } & BrokerCredentialOptions) => {
      const allowed = o.allowModel ?? (await defaultAllowedModels());
      for (const h of allowed) if (!/^[0-9a-f]{64}$/.test(h)) throw new UsageError(`--allow-model takes sha256 hashes (64 hex digits), got "${h}"`);
      const mqttOptions = await brokerConnectOptions(o.broker, brokerCredentialFiles(o));
      const onError = (e: unknown, where?: string) => process.stderr.write(`verifier: ${where ? `${where}: ` : ''}${e instanceof Error ? e.message : String(e)}\n`);
      const inst = await openVerifier(o.dir, { id: o.id, allowedModels: allowed, faceThreshold: o.faceThreshold, fingerprintThreshold: o.fingerprintThreshold, requireNonce: o.requireNonce, precheckWorkers: o.workers, onNotice: notice, onInternalError: onError });
      const node = new VerifierNode(inst.verifier, inst.store, {
        brokerUrl: o.broker,
        clientId: `${inst.keys.verifierId}-${process.pid}`,
        protocolVersion: o.mqttVersion as 4 | 5,
        group: o.group,
        mqtt: mqttOptions,
        // Attestations a trusted device signed, one line each; what nobody trusted signed is counted (`verifier stats`).
        onVerdict: (r) => {
          if (r.authenticated) process.stdout.write(JSON.stringify({ ueid: r.ueid, att_id: r.attId, decision: r.decision, reasons: r.reasons.map((x) => x.code), duplicate: r.duplicate }) + '\n');
        },
        onError,
      });
      await node.start();
      const up = `verifier ${inst.keys.verifierId} running on ${o.broker} (MQTT ${o.mqttVersion === 5 ? '5' : '3.1.1'}), state in ${o.dir}`;
      process.stderr.write(`${up}\n`);
      // Under systemd (Type=notify): ready now, and watchdog pings while the event loop turns.
      const service = ServiceNotifier.fromEnvironment();
      await service?.ready(up);
      service?.startWatchdog();
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await service?.stopping();
      await node.stop();
      await inst.close();
    });

  v.command('enroll')
    .description('Enrol a subject in the gallery from an image (the template is extracted here).')
    .requiredOption('--subject <id>', 'subject id')
    .requiredOption('--modality <name>', 'face | fingerprint')
    .requiredOption('--image <file>', 'image of the subject')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--json', 'print one JSON object')
    .action(async (o: { subject: string; modality: string; image: string; dir: string; json?: boolean }) => {
      const modality = parseModality(o.modality);
      if (modality !== 'face' && modality !== 'fingerprint') throw new UsageError(`enrolment supports face and fingerprint (got ${modality})`);
      const bytes = await readInput(o.image);
      const engine = await createEngine(modality);
      try {
        const x = await engine.extract(bytes);
        if (x.quality.score < x.quality.retryBelow) throw new BiokioskError('LowQuality', `the enrolment image's quality is ${x.quality.score}, below ${x.quality.retryBelow}: take a better capture`);
        const model = x.info['model'] as { name: string; sha256: string };
        const inst = await openVerifier(o.dir, { allowedModels: [], onNotice: notice });
        inst.store.enroll({ subject: o.subject, modality, template: x.template, templateFormat: TEMPLATE_FORMATS[modality], modelSha256: model.sha256 });
        await inst.close();
        const r = { ok: true, subject: o.subject, modality, quality: x.quality.score, ...(modality === 'face' ? { faceCount: x.info['faceCount'] } : { minutiae: x.info['minutiae'] }), model };
        if (o.json) printJson(r);
        else process.stdout.write(`enrolled ${o.subject} (${modality}, quality ${x.quality.score}) in ${o.dir}\n`);
      } finally {
        await engine.close();
      }
    });

  v.command('register-device')
    .description("Register a kiosk's attestation key (a public JWK file, e.g. from `biokiosk kiosk identity --json`).")
    .requiredOption('--ueid <id>', 'device id')
    .requiredOption('--jwk <file>', 'public key, JWK JSON (or a JSON object with a publicJwk member)')
    .requiredOption('--site <site>', 'where the kiosk stands')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .action(async (o: { ueid: string; jwk: string; site: string; dir: string }) => {
      assertDeviceId(o.ueid);
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse((await readInput(o.jwk)).toString('utf8')) as Record<string, unknown>;
      } catch (e) {
        if (e instanceof BiokioskError) throw e;
        throw new UsageError(`${o.jwk} is not JSON`);
      }
      const jwk = p256PublicJwk((doc['publicJwk'] ?? doc) as Record<string, unknown>);
      const inst = await openVerifier(o.dir, { allowedModels: [], onNotice: notice });
      inst.store.registerDevice({ ueid: o.ueid, kid: jwkThumbprint(jwk), publicJwk: jwk as never, site: o.site });
      inst.close();
      process.stdout.write(`registered ${o.ueid} (kid ${jwkThumbprint(jwk)}) at ${o.site}\n`);
    });

  v.command('revoke-device')
    .description('Revoke a kiosk: its attestations are rejected from now on.')
    .requiredOption('--ueid <id>', 'device id')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .action(async (o: { ueid: string; dir: string }) => {
      const inst = await openVerifier(o.dir, { allowedModels: [], onNotice: notice });
      const done = inst.store.revokeDevice(o.ueid);
      inst.close();
      if (!done) throw new UsageError(`no active device ${o.ueid} in ${o.dir}`);
      process.stdout.write(`revoked ${o.ueid}\n`);
    });

  v.command('keys')
    .description("Print the public keys kiosks need: the verifier's verdict key and the fleet's template encryption key.")
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--id <id>', 'verifier id (used when the key file is first created)', 'verifier-1')
    .action(async (o: { dir: string; id: string }) => {
      const keys = await openVerifierKeys(join(o.dir, 'verifier-keys.json'), o.id, notice);
      printJson({ verifierId: keys.verifierId, verdictKey: p256PublicJwk(keys.signing as Record<string, unknown>), fleetKey: keys.fleet.publicJwk });
    });

  v.command('stats')
    .description('What the verifier refused without logging it: counts per reason of messages no trusted device signed, and recent samples.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--hours <n>', 'hours of counts', parseNumber('--hours', 1, 24 * 30, true), 24)
    .option('--samples <n>', 'recent samples to show', parseNumber('--samples', 0, 1000, true), 10)
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; hours: number; samples: number; json?: boolean }) => {
      const inst = await openVerifier(o.dir, { allowedModels: [], onNotice: notice });
      try {
        const report = { ...inst.store.rejectionReport(Date.now(), { hours: o.hours, samples: o.samples }), nonces: inst.store.nonceCount(), auditLogEntries: inst.audit.size };
        if (o.json) return printJson(report);
        const counts = Object.entries(report.counts);
        const lines = [`unauthenticated rejections in the last ${o.hours} h: ${counts.length ? counts.map(([c, n]) => `${c} ${n}`).join(', ') : 'none'}`, `outstanding nonces: ${report.nonces}; audit log: ${report.auditLogEntries} entries`];
        for (const x of report.samples) lines.push(`  ${new Date(x.at).toISOString()}  ${x.code.padEnd(16)} ${(x.ueid || '-').padEnd(20)} ${x.bytes} B  ${x.detail}`);
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        await inst.close();
      }
    });

  v.command('audit')
    .description('Check the whole audit log: every entry, every signed tree head, their consistency. Exit 2 if tampered.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--known-heads <file...>', 'tree heads kept outside the verifier (`biokiosk kiosk heads` output): the log must still have each one')
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; json?: boolean; knownHeads?: string[] }) => {
      const knownTreeHeads = [];
      for (const f of o.knownHeads ?? []) {
        let doc: { kind?: string; heads?: Array<{ treeSize: number; rootHash: string; timestamp: number; signature: string }> };
        try {
          doc = JSON.parse((await readInput(f)).toString('utf8')) as typeof doc;
        } catch (e) {
          if (e instanceof BiokioskError) throw e;
          throw new UsageError(`${f} is not JSON`);
        }
        if (doc.kind !== 'biokiosk-known-heads/1' || !Array.isArray(doc.heads)) throw new UsageError(`${f} is not the output of \`biokiosk kiosk heads\``);
        for (const h of doc.heads) knownTreeHeads.push({ tree_size: h.treeSize, root_hash: h.rootHash, timestamp: h.timestamp, signature: h.signature });
      }
      const keysDoc = JSON.parse(await readFile(join(o.dir, 'verifier-keys.json'), 'utf8').catch(() => {
        throw new UsageError(`no verifier state in ${o.dir} (verifier-keys.json missing)`);
      })) as { signing: Record<string, unknown> };
      const store = new SqliteAuditStore(join(o.dir, 'verifier.db'), { readonly: true });
      try {
        const report = await auditLog(store, p256TreeHeadVerifier(p256PublicJwk(keysDoc.signing) as never), { knownTreeHeads });
        if (o.json) printJson(report);
        else if (report.ok) process.stdout.write(`audit log OK: ${report.size} entries, ${report.checkedTreeHeads} signed tree heads consistent${knownTreeHeads.length ? `, ${knownTreeHeads.length} tree heads kept elsewhere all still in the log` : ''}\n`);
        if (!report.ok) {
          const first = report.firstTampered;
          const known = report.problems.find((p) => p.kind.startsWith('known_tree_head'));
          throw new BiokioskError('AuditFailed', first ? `entry ${first.index} was tampered with: ${first.reason}` : known ? `the log was rewritten: ${known.message}` : `the log does not verify: ${report.problems[0]?.message ?? 'see --json'}`);
        }
      } finally {
        store.close();
      }
    });
}
