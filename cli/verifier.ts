/** `biokiosk verifier ...`: run a verifier node, enrol subjects, manage devices, migrate the store, audit and publish the log. */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { jwkThumbprint, p256PublicJwk } from '../protocol/signer.ts';
import { assertDeviceId } from '../protocol/topics.ts';
import { readManifest } from '../models/face/models.ts';
import { fingerprintExtractorIdentity } from '../models/fingerprint/engine.ts';
import { irisModelIdentity } from '../models/iris/engine.ts';
import { TEMPLATE_FORMATS } from './extract.ts';
import { createEngine, parseModality } from '../models/engines.ts';
import { auditLog, formatAuditReport } from '../verifier/audit/verify.ts';
import { loadDecisionPolicy } from '../verifier/decision-policy.ts';
import { CsvEligibilitySource } from '../verifier/eligibility.ts';
import { openVerifierKeys } from '../verifier/keys.ts';
import { openLogKeys, readLogKeys, retireLogKey, rotateLogKey, signerOf } from '../verifier/log-key.ts';
import { serveLog } from '../verifier/log-server.ts';
import { VerifierNode } from '../verifier/node.ts';
import { migrateStore } from '../verifier/open-store.ts';
import { redactUrl } from '../verifier/pg-store.ts';
import { fleetKeysOf, openVerifier, openVerifierStore, storeLocation } from '../verifier/setup.ts';
import { Witnessing } from '../verifier/witnessing.ts';
import { WitnessClient } from '../witness/client.ts';
import { formatVkey, parseVkey, type NoteVerifier } from '../protocol/note.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { BrokerAdmin } from '../verifier/registry/broker-admin.ts';
import { Quarantine, quarantinePolicy } from '../verifier/quarantine.ts';
import { loadTrustedCas } from '../verifier/registry/ek-ca.ts';
import { issueEnrollmentToken, Registry } from '../verifier/registry/registry.ts';
import { serveRegistry } from '../verifier/registry/server.ts';
import type { VerifierInstance } from '../verifier/setup.ts';
import { readInput } from './extract.ts';
import { brokerConnectOptions } from '../protocol/broker-credentials.ts';
import { ServiceNotifier } from '../protocol/service-notify.ts';
import { addBrokerCredentialOptions, brokerCredentialFiles, parseNumber, printJson, type BrokerCredentialOptions } from './options.ts';

/** A state folder or file that was looser than it should be and has been tightened: the operator is told. */
const notice = (m: string) => process.stderr.write(`biokiosk: ${m}\n`);

const DEFAULT_DIR = 'biokiosk-verifier';
const STORE_HELP = "the store: a postgres:// URL (a fleet's shared PostgreSQL) or a SQLite file (default: verifier.db in --dir)";
const LOG_KEY_HELP = 'the log\'s checkpoint key ring (default: log-key.json in --dir; keep it apart from the log in production)';

/** 30m, 24h, 7d: milliseconds. */
function parseDuration(option: string, v: string): number {
  const m = /^(\d+)\s*(m|h|d)$/.exec(v.trim());
  if (!m) throw new UsageError(`${option} takes a duration such as 30m, 24h or 7d, got "${v}"`);
  const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  if (ms <= 0 || ms > 90 * 86_400_000) throw new UsageError(`${option} must be between 1 minute and 90 days`);
  return ms;
}

/** A C2SP verifier key given on the command line, parsed, or a usage error naming the option. */
function vkeyOption(option: string, v: string): NoteVerifier {
  try {
    return parseVkey(v);
  } catch (e) {
    throw new UsageError(`${option}: ${(e as Error).message}`);
  }
}

/** `--witness VKEY@URL`: a witness to have checkpoints cosigned by. */
function witnessOption(v: string): { vkey: NoteVerifier; url: string } {
  const at = v.indexOf('@');
  if (at < 0) throw new UsageError(`--witness takes <vkey>@<url>, e.g. insurer.example/witness+1234abcd+AQ...@http://10.0.0.5:7380, got "${v.slice(0, 60)}"`);
  const url = v.slice(at + 1);
  if (!/^https?:\/\//.test(url)) throw new UsageError(`--witness: the witness URL must be http:// or https://, got "${url.slice(0, 60)}"`);
  return { vkey: vkeyOption('--witness', v.slice(0, at)), url };
}

/** Notes and kiosk exports given to `audit --known-heads`: the checkpoint notes in them. */
async function knownCheckpoints(files: readonly string[]): Promise<string[]> {
  const notes: string[] = [];
  for (const f of files) {
    const text = (await readInput(f)).toString('utf8');
    if (text.trimStart().startsWith('{')) {
      let doc: { kind?: string; checkpoints?: Array<{ note?: unknown }> };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch {
        throw new UsageError(`${f} is neither JSON nor a checkpoint note`);
      }
      if (doc.kind !== 'biokiosk-known-checkpoints/1' || !Array.isArray(doc.checkpoints)) throw new UsageError(`${f} is not the output of \`biokiosk kiosk heads\` (nor a checkpoint note)`);
      for (const c of doc.checkpoints) if (typeof c.note === 'string') notes.push(c.note);
    } else notes.push(text);
  }
  return notes;
}

/** The template makers of this build: the face embedding net, the fingerprint extractor (its graphs' identity), the iris coder. */
async function defaultAllowedModels(): Promise<string[]> {
  const m = await readManifest();
  const face = Object.entries(m.models).filter(([, e]) => e.modality === 'face').map(([, e]) => e.sha256);
  const fp = Object.fromEntries(Object.entries(m.models).filter(([, e]) => e.modality === 'fingerprint').map(([n, e]) => [n, e.sha256]));
  const iris = m.models['iris_loggabor'];
  return [...face, fingerprintExtractorIdentity(fp).sha256, ...(iris ? [irisModelIdentity(iris.sha256).sha256] : [])];
}

interface BrokerAdminCliOptions {
  brokerAdmin?: string;
  brokerAdminUrl?: string;
  brokerAdminPasswordFile?: string;
  ca?: string;
}

/** The admin login named by --broker-admin (undefined without it). */
async function brokerAdminOf(o: BrokerAdminCliOptions, defaultUrl: string | undefined): Promise<BrokerAdmin | undefined> {
  if (o.brokerAdmin === undefined) return undefined;
  const url = o.brokerAdminUrl ?? defaultUrl;
  if (!url) throw new UsageError('--broker-admin needs --broker-admin-url');
  if (!o.brokerAdminPasswordFile) throw new UsageError('--broker-admin needs --broker-admin-password-file');
  return new BrokerAdmin(url, await brokerConnectOptions(url, { ca: o.ca, username: `admin:${o.brokerAdmin}`, passwordFile: o.brokerAdminPasswordFile }));
}

export function registerVerifier(program: Command): void {
  const v = program.command('verifier').description('The verifier node: decide attestations, keep the gallery, the device registry and the audit log.');

  addBrokerCredentialOptions(
    v
      .command('run')
      .description('Run a verifier node on an MQTT broker (MQTT 5 shared subscription: start several to share the stream).')
      .requiredOption('--broker <url>', 'MQTT broker URL, e.g. mqtts://broker:8883 (a fleet broker) or mqtt://127.0.0.1:1883'),
  )
    .option('--dir <dir>', 'state folder (keys, and the SQLite store unless --store)', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--log-key <file>', LOG_KEY_HELP)
    .option('--witness <vkey@url...>', 'a witness to have each checkpoint cosigned by before answering (repeatable)')
    .option('--witness-timeout <ms>', 'how long a batch waits for cosignatures before answering without them', parseNumber('--witness-timeout', 0, 60_000, true), 2000)
    .option('--id <id>', 'verifier id (used when the key file is first created)', 'verifier-1')
    .option('--mqtt-version <n>', '5 (shared subscriptions) or 4 (MQTT 3.1.1: one verifier)', parseNumber('--mqtt-version', 4, 5, true), 5)
    .option('--group <name>', 'shared subscription group', 'verifiers')
    .option('--allow-model <sha256...>', 'model hashes whose templates are accepted (default: the models in models/manifest.json)')
    .option('--face-threshold <d>', 'face match threshold (Euclidean distance)', parseNumber('--face-threshold', 0, 2))
    .option('--fingerprint-threshold <s>', 'fingerprint match threshold (minimum MCC score, 0-1)', parseNumber('--fingerprint-threshold', 0, 1))
    .option('--iris-threshold <d>', 'iris match threshold (maximum normalised Hamming distance, 0-1)', parseNumber('--iris-threshold', 0, 1))
    .option('--require-nonce', 'refuse attestations without a verifier nonce (online checks only)')
    .option('--policy <file>', 'the decision policy (JSON: scenarios, who may ask, factors, thresholds, nonce and TPM requirements, lockout, travel, device rejection rate); without it the matcher decides alone')
    .option('--eligibility <file>', 'insurance eligibility table (CSV: subject,payer,plan,valid_from,valid_to,services), re-read when the file changes')
    // One core stays with the main thread, which decides, logs and signs verdicts.
    .option('--workers <n>', 'worker threads for signature checks and decryption (0: on the main thread; default: one per core but one)', parseNumber('--workers', 0, 64, true), Math.max(1, availableParallelism() - 1))
    .option('--broker-admin <id>', "quarantine kiosks that flood the stream, through this admin login on the fleet broker (username admin:<id>; one per node)")
    .option('--broker-admin-url <url>', "the broker's TLS password listener, for that login (default: --broker)")
    .option('--broker-admin-password-file <file>', 'its password (a 0600 file)')
    .option('--quarantine-minutes <n>', "a first quarantine's length; each one in a row doubles it, up to a day", parseNumber('--quarantine-minutes', 0.01, 24 * 60), 10)
    .action(async (o: { broker: string; dir: string; store?: string; logKey?: string; witness?: string[]; witnessTimeout: number; id: string; mqttVersion: number; group: string; allowModel?: string[]; faceThreshold?: number; requireNonce?: boolean; workers: number; fingerprintThreshold?: number; irisThreshold?: number; policy?: string; eligibility?: string; quarantineMinutes: number } & BrokerCredentialOptions & BrokerAdminCliOptions) => {
      const witnesses = (o.witness ?? []).map(witnessOption);
      const allowed = o.allowModel ?? (await defaultAllowedModels());
      for (const h of allowed) if (!/^[0-9a-f]{64}$/.test(h)) throw new UsageError(`--allow-model takes sha256 hashes (64 hex digits), got "${h}"`);
      const mqttOptions = await brokerConnectOptions(o.broker, brokerCredentialFiles(o));
      const onError = (e: unknown, where?: string) => process.stderr.write(`verifier: ${where ? `${where}: ` : ''}${e instanceof Error ? e.message : String(e)}\n`);
      const policy = o.policy === undefined ? undefined : await loadDecisionPolicy(o.policy);
      const eligibility =
        o.eligibility === undefined
          ? undefined
          : await CsvEligibilitySource.open(o.eligibility, {
              // A bad new file leaves the table in force: the operator is told which line.
              onReload: (r) => process.stderr.write('error' in r ? `verifier: eligibility table not reloaded (the previous one stays): ${r.error.message}\n` : `verifier: eligibility table loaded: ${r.rows} rows\n`),
            });
      const inst = await openVerifier(o.dir, { id: o.id, store: o.store, logKey: o.logKey, allowedModels: allowed, faceThreshold: o.faceThreshold, fingerprintThreshold: o.fingerprintThreshold, irisThreshold: o.irisThreshold, requireNonce: o.requireNonce, precheckWorkers: o.workers, onNotice: notice, onInternalError: onError, policy, eligibility });
      const witnessing =
        witnesses.length > 0
          ? new Witnessing(inst.store.audit, inst.verifier.proofs, witnesses.map((w) => new WitnessClient(w.url, w.vkey, { timeoutMs: o.witnessTimeout })), {
              onRefused: (name, status, message, size) => process.stderr.write(`verifier: ${status === 422 ? 'ALERT: ' : ''}witness ${name} did not cosign the checkpoint of size ${size}: ${status ? `${status} ` : ''}${message}\n`),
            })
          : undefined;
      const admin = await brokerAdminOf(o, o.broker);
      const quarantine = admin
        ? new Quarantine(inst.store, admin, quarantinePolicy(o.quarantineMinutes * 60_000), {
            onQuarantine: (q) => process.stderr.write(`verifier: ALERT: kiosk ${q.ueid} quarantined at the broker until ${new Date(q.until).toISOString()} (strike ${q.strikes}): ${q.reason}\n`),
            onRelease: (ueid) => process.stderr.write(`verifier: kiosk ${ueid} released from quarantine\n`),
            onError: (e) => onError(e, 'quarantine'),
          })
        : undefined;
      const node = new VerifierNode(inst.verifier, inst.store, {
        quarantine,
        witnessing,
        witnessTimeoutMs: o.witnessTimeout,
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
      quarantine?.start();
      const up = `verifier ${inst.keys.verifierId} running on ${o.broker} (MQTT ${o.mqttVersion === 5 ? '5' : '3.1.1'}), store ${inst.store.description}, log ${inst.logSigner.origin}${policy ? `, decision policy ${policy.version}` : ''}${witnesses.length ? `, witnesses ${witnesses.map((w) => w.vkey.name).join(', ')}` : ''}${quarantine ? `, quarantine through admin:${o.brokerAdmin}` : ''}`;
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
      await quarantine?.stop();
      await admin?.close();
      await inst.close();
    });

  v.command('quarantine')
    .description('Kiosks cut off at the broker for flooding the stream (by `verifier run --broker-admin`): list them, or release one now.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--release <ueid>', 'give this kiosk its broker login back now (needs --broker-admin)')
    .option('--broker-admin <id>', 'an admin login on the fleet broker (username admin:<id>)')
    .option('--broker-admin-url <url>', "the broker's TLS password listener, e.g. mqtts://broker:8884")
    .option('--broker-admin-password-file <file>', 'its password (a 0600 file)')
    .option('--ca <file>', "the fleet CA's certificate (PEM), to check the broker's")
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; store?: string; release?: string; ca?: string; json?: boolean } & BrokerAdminCliOptions) => {
      if (o.release !== undefined) assertDeviceId(o.release);
      const admin = o.release === undefined ? undefined : await brokerAdminOf(o, o.brokerAdminUrl);
      if (o.release !== undefined && !admin) throw new UsageError('--release needs --broker-admin, --broker-admin-url and --broker-admin-password-file');
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
      try {
        if (o.release !== undefined) {
          const released = await new Quarantine(inst.store, admin!).release(o.release);
          if (!released) throw new UsageError(`${o.release} is not quarantined`);
          if (!o.json) return void process.stdout.write(`released ${o.release}\n`);
        }
        const rows = await inst.store.quarantines();
        if (o.json) return printJson({ quarantined: rows.map((r) => ({ ...r, since: new Date(r.since).toISOString(), until: new Date(r.until).toISOString() })) });
        process.stdout.write(rows.length === 0 ? 'no kiosk is quarantined\n' : rows.map((r) => `${r.ueid}  until ${new Date(r.until).toISOString()}  strike ${r.strikes}  ${r.reason}`).join('\n') + '\n');
      } finally {
        await admin?.close();
        await inst.close();
      }
    });

  v.command('enroll')
    .description('Enrol a subject in the gallery from an image (the template is extracted here).')
    .requiredOption('--subject <id>', 'subject id')
    .requiredOption('--modality <name>', 'face | fingerprint | iris')
    .requiredOption('--image <file>', 'image of the subject')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--json', 'print one JSON object')
    .action(async (o: { subject: string; modality: string; image: string; dir: string; store?: string; json?: boolean }) => {
      const modality = parseModality(o.modality);
      const bytes = await readInput(o.image);
      const engine = await createEngine(modality);
      try {
        const x = await engine.extract(bytes);
        if (x.quality.score < x.quality.retryBelow) throw new BiokioskError('LowQuality', `the enrolment image's quality is ${x.quality.score}, below ${x.quality.retryBelow}: take a better capture`);
        const model = x.info['model'] as { name: string; sha256: string };
        const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
        try {
          await inst.store.enroll({ subject: o.subject, modality, template: x.template, templateFormat: TEMPLATE_FORMATS[modality], modelSha256: model.sha256 });
        } finally {
          await inst.close();
        }
        const r = { ok: true, subject: o.subject, modality, quality: x.quality.score, ...(modality === 'face' ? { faceCount: x.info['faceCount'] } : modality === 'fingerprint' ? { minutiae: x.info['minutiae'] } : { usableBits: x.info['usableBits'] }), model };
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
    .option('--store <url-or-file>', STORE_HELP)
    .action(async (o: { ueid: string; jwk: string; site: string; dir: string; store?: string }) => {
      assertDeviceId(o.ueid);
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse((await readInput(o.jwk)).toString('utf8')) as Record<string, unknown>;
      } catch (e) {
        if (e instanceof BiokioskError) throw e;
        throw new UsageError(`${o.jwk} is not JSON`);
      }
      const jwk = p256PublicJwk((doc['publicJwk'] ?? doc) as Record<string, unknown>);
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
      try {
        await inst.store.registerDevice({ ueid: o.ueid, kid: jwkThumbprint(jwk), publicJwk: jwk as never, site: o.site });
      } finally {
        await inst.close();
      }
      process.stdout.write(`registered ${o.ueid} (kid ${jwkThumbprint(jwk)}) at ${o.site}\n`);
    });

  v.command('revoke-device')
    .description('Revoke a kiosk: its attestations are rejected from now on.')
    .requiredOption('--ueid <id>', 'device id')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .action(async (o: { ueid: string; dir: string; store?: string }) => {
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
      let done: boolean;
      try {
        done = await inst.store.revokeDevice(o.ueid);
      } finally {
        await inst.close();
      }
      if (!done) throw new UsageError(`no active device ${o.ueid} in ${o.dir}`);
      process.stdout.write(`revoked ${o.ueid}\n`);
    });

  v.command('keys')
    .description("Print the public keys kiosks need: the verifier's verdict key, the fleet's template encryption key, and the audit log's checkpoint keys (C2SP vkeys, which witnesses need too).")
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--log-key <file>', LOG_KEY_HELP)
    .option('--origin <name>', 'the log\'s origin, when the log key ring is first created (default biokiosk/<verifier id>)')
    .option('--id <id>', 'verifier id (used when the key file is first created)', 'verifier-1')
    .action(async (o: { dir: string; id: string; logKey?: string; origin?: string }) => {
      const keys = await openVerifierKeys(join(o.dir, 'verifier-keys.json'), o.id, notice);
      const log = signerOf(await openLogKeys(o.logKey ?? join(o.dir, 'log-key.json'), o.origin ?? `biokiosk/${keys.verifierId}`, notice));
      printJson(fleetKeysOf(keys, log));
    });

  v.command('migrate')
    .description('Bring the store to the schema this build uses (run once per upgrade; nodes refuse a store that is behind).')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .action(async (o: { dir: string; store?: string }) => {
      const location = storeLocation(o.dir, o.store);
      const r = await migrateStore(location, notice);
      const where = o.store ? redactUrl(location) : location;
      process.stdout.write(r.applied.length === 0 ? `${where} is at schema version ${r.from}: nothing to do\n` : `${where}: schema version ${r.from} -> ${r.applied[r.applied.length - 1]} (applied ${r.applied.join(', ')})\n`);
    });

  v.command('stats')
    .description('What the verifier refused without logging it: counts per reason of messages no trusted device signed, and recent samples.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--hours <n>', 'hours of counts', parseNumber('--hours', 1, 24 * 30, true), 24)
    .option('--samples <n>', 'recent samples to show', parseNumber('--samples', 0, 1000, true), 10)
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; store?: string; hours: number; samples: number; json?: boolean }) => {
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
      try {
        const report = { ...(await inst.store.rejectionReport(Date.now(), { hours: o.hours, samples: o.samples })), nonces: await inst.store.nonceCount(), auditLogEntries: await inst.store.audit.size() };
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
    .description('Check the whole audit log: every entry against its commitment, every checkpoint, and the evidence others hold (witness cosignatures, checkpoints kiosks accepted). Exit 2 if tampered.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--log-key <file>', 'the log key ring, for its public keys (or give them with --log-vkey)')
    .option('--log-vkey <vkey...>', "the log's checkpoint keys (C2SP vkeys, as `verifier keys` prints them), retired ones too")
    .option('--witness-vkey <vkey...>', 'witnesses whose cosignatures count as independent evidence')
    .option('--known-heads <file...>', 'checkpoints kept outside the verifier: `biokiosk kiosk heads` output, or a note from `biokiosk witness latest`')
    .option('--json', 'print one JSON object')
    .action(async (o: { dir: string; store?: string; logKey?: string; logVkey?: string[]; witnessVkey?: string[]; knownHeads?: string[]; json?: boolean }) => {
      const known = await knownCheckpoints(o.knownHeads ?? []);
      let logKeys = (o.logVkey ?? []).map((k) => vkeyOption('--log-vkey', k));
      if (logKeys.length === 0) {
        const ring = await readLogKeys(o.logKey ?? join(o.dir, 'log-key.json'), notice);
        if (!ring) throw new UsageError(`no log key ring at ${o.logKey ?? join(o.dir, 'log-key.json')}: give the log's public keys with --log-vkey, or its key ring with --log-key`);
        logKeys = [...signerOf(ring).allVerifiers];
      }
      const witnesses = (o.witnessVkey ?? []).map((k) => vkeyOption('--witness-vkey', k));
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice, migrate: false });
      try {
        const report = await auditLog(inst.store.audit, { logKeys, witnesses }, { knownCheckpoints: known });
        if (o.json) printJson(report);
        else if (report.ok) process.stdout.write(`audit log OK: ${report.size} entries, ${report.checkedCheckpoints} checkpoints, ${report.independentCheckpoints} independent checkpoints (witnessed, or kept by kiosks) all match the entries\n`);
        else process.stderr.write(formatAuditReport(report) + '\n');
        if (!report.ok) {
          const first = report.firstTampered;
          throw new BiokioskError('AuditFailed', first ? `entry ${first.index} was tampered with: ${first.reason}` : `the log does not verify: ${report.problems[0]?.message ?? 'see --json'}`);
        }
      } finally {
        await inst.close();
      }
    });

  v.command('issue-token')
    .description('A single-use enrolment token for one site, for the technician who installs a kiosk there (shown once; only its hash is kept).')
    .requiredOption('--site <name>', 'the site the kiosk will stand at')
    .option('--ttl <duration>', 'how long it stays valid: 30m, 24h, 7d', '24h')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--json', 'print one JSON object')
    .action(async (o: { site: string; ttl: string; dir: string; store?: string; json?: boolean }) => {
      const ttl = parseDuration('--ttl', o.ttl);
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice });
      try {
        const t = await issueEnrollmentToken(inst.store, o.site, ttl);
        if (o.json) return printJson({ token: t.token, site: o.site, expiresAt: new Date(t.expiresAt).toISOString() });
        process.stdout.write(`${t.token}\n`);
        process.stderr.write(`enrolment token for ${o.site}, valid until ${new Date(t.expiresAt).toISOString()}, usable once\n`);
      } finally {
        await inst.close();
      }
    });

  const reg = v.command('registry').description('The registry kiosks enrol with (biokiosk provision), rotate keys with and are decommissioned through.');
  const registryOptions = (c: Command) =>
    c
      .option('--dir <dir>', 'state folder (the verifier keys: answers are signed with the verdict key)', DEFAULT_DIR)
      .option('--store <url-or-file>', STORE_HELP)
      .option('--log-key <file>', LOG_KEY_HELP)
      .option('--tpm-ca <dir>', 'folder of TPM manufacturer CA certificates (PEM) that EK certificates must chain to')
      .option('--allow-development-devices', 'accept kiosks with a software key store (development fleets only)')
      .requiredOption('--broker <url>', 'the fleet broker URL kiosks are given, e.g. mqtts://broker.example:8884 (TLS with username and password)')
      .option('--broker-admin-url <url>', 'where the registry reaches the broker to add logins (default: --broker)')
      .requiredOption('--broker-admin <id>', 'the registry\'s admin login on the broker (username admin:<id>)')
      .requiredOption('--broker-admin-password-file <file>', 'its password (a 0600 file)')
      .option('--broker-ca <file>', "the CA of the broker's certificate (mqtts://)")
      .option('--max-clock-skew <min>', "how far a kiosk's clock may be off, minutes", parseNumber('--max-clock-skew', 1, 24 * 60), 5);
  type RegistryCliOptions = { dir: string; store?: string; logKey?: string; tpmCa?: string; allowDevelopmentDevices?: boolean; broker: string; brokerAdminUrl?: string; brokerAdmin: string; brokerAdminPasswordFile: string; brokerCa?: string; maxClockSkew: number };
  const openRegistry = async (o: RegistryCliOptions): Promise<{ registry: Registry; inst: VerifierInstance; admin: BrokerAdmin }> => {
    const inst = await openVerifier(o.dir, { store: o.store, logKey: o.logKey, allowedModels: [], onNotice: notice });
    try {
      const adminUrl = o.brokerAdminUrl ?? o.broker;
      const mqttOptions = await brokerConnectOptions(adminUrl, { ca: o.brokerCa, username: `admin:${o.brokerAdmin}`, passwordFile: o.brokerAdminPasswordFile });
      const admin = new BrokerAdmin(adminUrl, mqttOptions);
      const cas = o.tpmCa ? await loadTrustedCas(o.tpmCa) : undefined;
      if (!cas && !o.allowDevelopmentDevices) throw new UsageError('give --tpm-ca DIR (the TPM manufacturer CAs), or --allow-development-devices for a development fleet');
      const fleet = fleetKeysOf(inst.keys, inst.logSigner);
      const registry = new Registry({ store: inst.store, signer: inst.signer, logSigner: inst.logSigner, fleet, cas, allowDevelopmentDevices: o.allowDevelopmentDevices, broker: { admin, url: o.broker }, maxClockSkewMs: o.maxClockSkew * 60_000 });
      return { registry, inst, admin };
    } catch (e) {
      await inst.close();
      throw e;
    }
  };
  registryOptions(
    reg
      .command('serve')
      .description('Serve the registry over HTTPS: POST /v1/enroll, /v1/enroll/proof, /v1/rotate, /v1/rotate/proof, /v1/decommission.')
      .option('--listen <host:port>', 'address to listen on', '0.0.0.0:7443')
      .option('--tls-cert <file>', "the registry's certificate (PEM), signed by the fleet CA kiosks are given")
      .option('--tls-key <file>', 'its private key (PEM, mode 0600)')
      .option('--insecure-http', 'plain HTTP (a test bench on loopback only, never a fleet)'),
  ).action(async (o: RegistryCliOptions & { listen: string; tlsCert?: string; tlsKey?: string; insecureHttp?: boolean }) => {
    const m = /^(.+):(\d{1,5})$/.exec(o.listen);
    if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen takes host:port, got "${o.listen}"`);
    if (!o.insecureHttp && (!o.tlsCert || !o.tlsKey)) throw new UsageError('give --tls-cert and --tls-key (kiosks check the registry against the fleet CA)');
    const tls = o.tlsCert && o.tlsKey ? { cert: await readFile(o.tlsCert), key: await readFile(o.tlsKey) } : undefined;
    const { registry, inst, admin } = await openRegistry(o);
    const server = await serveRegistry(registry, { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), tls, onError: (e) => process.stderr.write(`registry: ${(e as Error).message}\n`), onRequest: (path, status, code) => process.stderr.write(`registry: ${path} ${status}${code ? ` ${code}` : ''}\n`) });
    process.stderr.write(`registry for ${inst.keys.verifierId} at ${server.url} (store ${inst.store.description}, broker ${o.broker})\n`);
    process.stdout.write(`${server.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    await admin.close();
    await inst.close();
  });
  registryOptions(
    reg
      .command('answer')
      .description("Offline enrolment: answer a kiosk's request file with a challenge file, or its proof file with the answer file.")
      .requiredOption('--in <file>', "the kiosk's signed request or proof")
      .requiredOption('--out <file>', 'where to write the signed challenge or answer'),
  ).action(async (o: RegistryCliOptions & { in: string; out: string }) => {
    const body = (await readFile(o.in, 'utf8')).trim();
    let kind: unknown;
    try {
      kind = (JSON.parse(Buffer.from(body.split('.')[1] ?? '', 'base64url').toString('utf8')) as { kind?: unknown }).kind;
    } catch {
      throw new UsageError(`${o.in} is not a signed enrolment message`);
    }
    const { registry, inst, admin } = await openRegistry(o);
    try {
      const answer = kind === 'enroll_request' ? await registry.begin(body) : kind === 'enroll_proof' ? await registry.complete(body) : undefined;
      if (answer === undefined) throw new UsageError(`${o.in} is neither an enrolment request nor a proof (kind ${JSON.stringify(kind)})`);
      await writeFile(o.out, `${answer}\n`, { mode: 0o600 });
      process.stdout.write(`wrote the ${kind === 'enroll_request' ? 'challenge' : 'answer'} to ${o.out}\n`);
    } finally {
      await admin.close();
      await inst.close();
    }
  });

  const log = v.command('log').description('Publish the audit log, and manage its checkpoint keys.');
  log
    .command('serve')
    .description('Serve the audit log read-only as C2SP tlog-tiles over HTTP: /checkpoint, /tile/<L>/<N>, /tile/entries/<N> (entries are commitments, never records).')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--store <url-or-file>', STORE_HELP)
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7381')
    .action(async (o: { dir: string; store?: string; listen: string }) => {
      const m = /^(.+):(\d{1,5})$/.exec(o.listen);
      if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen takes host:port, got "${o.listen}"`);
      const inst = await openVerifierStore(o.dir, { store: o.store, onNotice: notice, migrate: false });
      const server = await serveLog(inst.store.audit, { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), onError: (e) => process.stderr.write(`log server: ${(e as Error).message}\n`) });
      process.stderr.write(`audit log of ${inst.store.description} published at ${server.url}/checkpoint\n`);
      process.stdout.write(`${server.url}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
      await inst.close();
    });
  log
    .command('rotate-key')
    .description('Add a new checkpoint key; both sign until the old one is retired (hand kiosks and witnesses the new vkey in between). Restart the nodes to pick it up; the first batch after logs the change.')
    .requiredOption('--log-key <file>', 'the log key ring')
    .action(async (o: { logKey: string }) => {
      const { added } = await rotateLogKey(o.logKey);
      process.stdout.write(`added ${formatVkey(added)}\n`);
    });
  log
    .command('retire-key')
    .description('Stop a checkpoint key signing (by its hex key ID, the second field of its vkey).')
    .requiredOption('--log-key <file>', 'the log key ring')
    .requiredOption('--key-id <hex>', 'the key ID, 8 hex digits')
    .action(async (o: { logKey: string; keyId: string }) => {
      if (!/^[0-9a-fA-F]{8}$/.test(o.keyId)) throw new UsageError(`--key-id takes 8 hex digits, got "${o.keyId}"`);
      const ring = await retireLogKey(o.logKey, o.keyId);
      process.stdout.write(`retired ${o.keyId}; signing with ${signerOf(ring).verifiers.map(formatVkey).join(', ')}\n`);
    });
}
