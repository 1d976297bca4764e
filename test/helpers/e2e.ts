/** Building blocks for end-to-end tests: a verifier and kiosks in this process, on a real broker. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attester } from '../../device/attester.ts';
import { Kiosk, type KioskAlarm, type KioskConfig } from '../../device/kiosk.ts';
import type { Relay, VerdictInfo } from '../../device/relay.ts';
import type { KeyStoreChoice, KioskState } from '../../device/setup.ts';
import { encodeFaceTemplate } from '../../models/face/template.ts';
import type { IClientOptions } from 'mqtt';
import { VerifierNode, type VerifierNodeOptions } from '../../verifier/node.ts';
import { openVerifier, type VerifierInstance } from '../../verifier/setup.ts';

export const MODEL = { name: 'face_descriptor_resnet29', sha256: 'ab'.repeat(32) };

/** A deterministic unit-length face embedding; `jitter` moves it a little (a second capture of the same face). */
export function embedding(seed: number, jitter = 0): Float32Array {
  const v = Float32Array.from({ length: 128 }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) + jitter * Math.cos(i * 3.1 + seed));
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

export function faceTemplate(seed: number, jitter = 0): Uint8Array {
  return encodeFaceTemplate({ model: MODEL, quality: 80, embedding: embedding(seed, jitter) });
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startVerifier(
  brokerUrl: string,
  dir: string,
  opts: { clientId?: string; version?: 4 | 5; allowedModels?: string[]; precheckWorkers?: number; mqtt?: Partial<IClientOptions>; node?: Partial<VerifierNodeOptions> } = {},
): Promise<{ v: VerifierInstance; node: VerifierNode }> {
  const v = await openVerifier(dir, { allowedModels: opts.allowedModels ?? [MODEL.sha256], precheckWorkers: opts.precheckWorkers });
  const node = new VerifierNode(v.verifier, v.store, { brokerUrl, clientId: opts.clientId ?? `verifier-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, protocolVersion: opts.version ?? 5, mqtt: opts.mqtt, ...opts.node });
  await node.start();
  return { v, node };
}

export interface TestKiosk {
  ueid: string;
  kiosk: Kiosk;
  state: KioskState;
  attester: Attester;
  relay: Relay;
  verdicts: VerdictInfo[];
  alarms: KioskAlarm[];
  stop(): Promise<void>;
}

/** A kiosk built by the one factory (device/kiosk.ts), registered with `v` unless told not to. */
export async function startKiosk(
  brokerUrl: string,
  v: VerifierInstance,
  ueid: string,
  opts: { version?: 4 | 5; dir?: string; register?: boolean; keyStore?: KeyStoreChoice; mqtt?: Partial<IClientOptions>; capture?: KioskConfig['capture']; policy?: KioskConfig['policy']; engines?: KioskConfig['engines'] } = {},
): Promise<TestKiosk> {
  const kiosk = await Kiosk.create({
    dir: opts.dir ?? (await tempDir('bk-kiosk-')),
    ueid,
    site: 'test-site',
    version: 'test',
    keyStore: opts.keyStore ?? { kind: 'software' },
    verifiers: { trusted: [{ id: v.keys.verifierId, publicJwk: v.signer.publicJwk as never }], fleetKey: v.keys.fleet.publicJwk },
    broker: { url: brokerUrl, protocolVersion: opts.version ?? 5, mqtt: opts.mqtt },
    capture: opts.capture,
    policy: opts.policy,
    engines: opts.engines,
  });
  if (opts.register !== false) v.store.registerDevice({ ueid, kid: kiosk.state.keystore.kid, publicJwk: kiosk.state.keystore.publicJwk as never, site: 'test-site' });
  const verdicts: VerdictInfo[] = [];
  const alarms: KioskAlarm[] = [];
  kiosk.on('verdict', (x) => verdicts.push(x));
  kiosk.on('alarm', (a) => alarms.push(a));
  return {
    ueid,
    kiosk,
    state: kiosk.state,
    attester: kiosk.attester,
    relay: kiosk.relay,
    verdicts,
    alarms,
    stop: () => kiosk.close(),
  };
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
