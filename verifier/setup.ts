/**
 * Opens a verifier node: its state folder (0700) with the keys (verifier-keys.json, 0600), the log's checkpoint
 * keys (log-key.json there, or a key file elsewhere: `logKey`), the store (the folder's SQLite file verifier.db,
 * or a fleet's PostgreSQL: `store: 'postgres://...'`), and the decision pipeline.
 */
import { join } from 'node:path';
import type { FleetKeys } from '../protocol/enrollment.ts';
import { formatVkey } from '../protocol/note.ts';
import { ensurePrivateDir, type NoticeSink } from '../protocol/private-files.ts';
import { p256PublicJwk } from '../protocol/signer.ts';
import { galleryKeyOf, NodeCryptoSigner, openVerifierKeys, type VerifierKeyFile } from './keys.ts';
import { openLogKeys, signerOf, type LogSigner } from './log-key.ts';
import { faceMatcher, fingerprintMatcher, irisMatcher, matcherRegistry } from './matchers.ts';
import { PrecheckPool } from './precheck-pool.ts';
import { openStore } from './open-store.ts';
import type { VerifierStore } from './store.ts';
import type { EligibilitySource } from './eligibility.ts';
import { Verifier, type VerifierConfig } from './verifier.ts';

export interface VerifierInstance {
  keys: VerifierKeyFile;
  signer: NodeCryptoSigner;
  logSigner: LogSigner;
  store: VerifierStore;
  verifier: Verifier;
  /** Closes the store, and stops the precheck workers (if any). */
  close(): Promise<void>;
}

export interface OpenVerifierOptions extends Omit<VerifierConfig, 'id'> {
  id?: string;
  faceThreshold?: number;
  fingerprintThreshold?: number;
  irisThreshold?: number;
  /** `postgres://...` for a fleet's shared store; a path or undefined for the folder's SQLite file. */
  store?: string;
  /** The checkpoint key ring (default: log-key.json in the state folder). */
  logKey?: string;
  /** The log's origin, when the key ring is created (default `biokiosk/<verifier id>`). */
  origin?: string;
  /**
   * Worker threads for the stateless checks (signature, decryption): 0 (the default) runs them on the main
   * thread; `biokiosk verifier run` uses one per core.
   */
  precheckWorkers?: number;
  /** Told when a state folder or file was looser than it should be and has been tightened. */
  onNotice?: NoticeSink;
  /** Insurance eligibility for the scenarios that answer it (eligibility.ts). */
  eligibility?: EligibilitySource;
}

/** The store's location: PostgreSQL when given a postgres:// URL, else the SQLite file (default in the folder). */
export function storeLocation(dir: string, store: string | undefined): string {
  return store ?? join(dir, 'verifier.db');
}

export async function openVerifier(dir: string, config: OpenVerifierOptions): Promise<VerifierInstance> {
  ensurePrivateDir(dir, config.onNotice);
  const keys = await openVerifierKeys(join(dir, 'verifier-keys.json'), config.id ?? 'verifier-1', config.onNotice);
  const signer = new NodeCryptoSigner(keys.signing);
  const ring = await openLogKeys(config.logKey ?? join(dir, 'log-key.json'), config.origin ?? `biokiosk/${keys.verifierId}`, config.onNotice);
  const logSigner = signerOf(ring);
  const store = await openStore(storeLocation(dir, config.store), { galleryKey: galleryKeyOf(keys), onNotice: config.onNotice });
  const matchers = matcherRegistry([faceMatcher(config.faceThreshold), fingerprintMatcher(config.fingerprintThreshold), irisMatcher(config.irisThreshold)]);
  const verifier = new Verifier({ ...config, id: keys.verifierId }, { store, signer, logSigner, fleetKey: keys.fleet.privateJwk, matchers, eligibility: config.eligibility });
  if (config.precheckWorkers) {
    try {
      const pool = await PrecheckPool.start({ config: { allowedModels: [...config.allowedModels], maxAgeSeconds: config.maxAgeSeconds, maxFutureSeconds: config.maxFutureSeconds, requireNonce: config.requireNonce }, fleetKey: keys.fleet.privateJwk, formats: [...matchers.keys()] }, config.precheckWorkers);
      await verifier.usePrechecker(pool);
    } catch (e) {
      await store.close();
      throw e;
    }
  }
  return {
    keys,
    signer,
    logSigner,
    store,
    verifier,
    async close() {
      await verifier.close();
      await store.close();
      config.eligibility?.close();
    },
  };
}

/** What the administrative commands need: the keys (the gallery's) and the store, without the log key. */
export async function openVerifierStore(dir: string, options: { id?: string; store?: string; onNotice?: NoticeSink; migrate?: boolean }): Promise<{ keys: VerifierKeyFile; store: VerifierStore; close(): Promise<void> }> {
  ensurePrivateDir(dir, options.onNotice);
  const keys = await openVerifierKeys(join(dir, 'verifier-keys.json'), options.id ?? 'verifier-1', options.onNotice);
  const store = await openStore(storeLocation(dir, options.store), { galleryKey: galleryKeyOf(keys), onNotice: options.onNotice, migrate: options.migrate });
  return { keys, store, close: () => store.close() };
}

/** The public keys kiosks are given (`verifier keys`, and the registry's answers): verdict key, fleet key, log keys. */
export function fleetKeysOf(keys: VerifierKeyFile, log: LogSigner): FleetKeys {
  return {
    verifierId: keys.verifierId,
    verdictKey: p256PublicJwk(keys.signing as Record<string, unknown>) as unknown as Record<string, unknown>,
    fleetKey: keys.fleet.publicJwk as unknown as Record<string, unknown>,
    log: { origin: log.origin, keys: log.verifiers.map(formatVkey) },
  };
}
