/**
 * Opens a verifier node's state folder (0700): keys (verifier-keys.json, 0600), the store and the audit log (one
 * SQLite file, verifier.db, 0600, so a batch's decisions and log entries commit together), and the decision
 * pipeline.
 */
import { join } from 'node:path';
import { ensurePrivateDir, type NoticeSink } from '../protocol/private-files.ts';
import { AuditLog } from './audit/log.ts';
import { SqliteAuditStore } from './audit/store.ts';
import { treeHeadSignerFrom } from '../protocol/tree-head.ts';
import { galleryKeyOf, NodeCryptoSigner, openVerifierKeys, type VerifierKeyFile } from './keys.ts';
import { faceMatcher, fingerprintMatcher, irisMatcher, matcherRegistry } from './matchers.ts';
import { PrecheckPool } from './precheck-pool.ts';
import { SqliteVerifierStore } from './sqlite-store.ts';
import { Verifier, type VerifierConfig } from './verifier.ts';

export interface VerifierInstance {
  keys: VerifierKeyFile;
  signer: NodeCryptoSigner;
  store: SqliteVerifierStore;
  audit: AuditLog;
  verifier: Verifier;
  /** Closes the store now, and stops the precheck workers (if any) by the time the promise resolves. */
  close(): Promise<void>;
}

export interface OpenVerifierOptions extends Omit<VerifierConfig, 'id'> {
  id?: string;
  faceThreshold?: number;
  fingerprintThreshold?: number;
  irisThreshold?: number;
  /**
   * Worker threads for the stateless checks (signature, decryption): 0 (the default) runs them on the main
   * thread; `biokiosk verifier run` uses one per core.
   */
  precheckWorkers?: number;
  /** Told when a state folder or file was looser than it should be and has been tightened. */
  onNotice?: NoticeSink;
}

export async function openVerifier(dir: string, config: OpenVerifierOptions): Promise<VerifierInstance> {
  ensurePrivateDir(dir, config.onNotice);
  const keys = await openVerifierKeys(join(dir, 'verifier-keys.json'), config.id ?? 'verifier-1', config.onNotice);
  const signer = new NodeCryptoSigner(keys.signing);
  const store = new SqliteVerifierStore(join(dir, 'verifier.db'), { galleryKey: galleryKeyOf(keys), onNotice: config.onNotice });
  const audit = new AuditLog(new SqliteAuditStore(store.db), { sign: treeHeadSignerFrom(signer) });
  const matchers = matcherRegistry([faceMatcher(config.faceThreshold), fingerprintMatcher(config.fingerprintThreshold), irisMatcher(config.irisThreshold)]);
  const verifier = new Verifier({ ...config, id: keys.verifierId }, store, audit, signer, keys.fleet.privateJwk, matchers);
  if (config.precheckWorkers) {
    try {
      const pool = await PrecheckPool.start({ config: { allowedModels: [...config.allowedModels], maxAgeSeconds: config.maxAgeSeconds, maxFutureSeconds: config.maxFutureSeconds, requireNonce: config.requireNonce }, fleetKey: keys.fleet.privateJwk, formats: [...matchers.keys()] }, config.precheckWorkers);
      await verifier.usePrechecker(pool);
    } catch (e) {
      store.close();
      throw e;
    }
  }
  return {
    keys,
    signer,
    store,
    audit,
    verifier,
    close() {
      store.close();
      return verifier.close();
    },
  };
}
