/**
 * How a kiosk trusts a verdict: it opens it with the reply key of the outbox entry it answers (only that kiosk
 * and the verifiers know it), then requires a JWS from a verifier it knows, addressed to it, naming that exact
 * attestation: its att_id, the SHA-256 of its JWS and its seq; and a receipt that holds (receipts.ts: the log
 * entry is this attestation's, it is in the log's signed checkpoint, and that tree extends the one this kiosk
 * accepted before). Anything else leaves the entry in the outbox. An accepted receipt's checkpoint is kept
 * (tree-heads.ts).
 */
import type { JsonWebKey } from 'node:crypto';
import { attestationHash } from '../protocol/attestation.ts';
import type { VerdictClaims } from '../protocol/claims.ts';
import type { EnvelopeOf } from '../protocol/envelope.ts';
import { BiokioskError } from '../protocol/errors.ts';
import { isSealedReply, openReply } from '../protocol/reply.ts';
import { jwkThumbprint, p256PublicJwk } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { parseVerdict } from '../protocol/verdict.ts';
import type { OutboxEntry } from './outbox.ts';
import type { LogTrust } from '../protocol/receipt.ts';
import { checkReceipt } from './receipts.ts';
import type { TreeHeadStore } from './tree-heads.ts';

export interface TrustedVerifier {
  id: string;
  publicJwk: JsonWebKey;
}

export interface VerdictInfo {
  attId: string;
  attHash: string;
  decision: VerdictClaims['decision'];
  claims: VerdictClaims;
  /** What to record with the acknowledgement (the receipt's tree head), in the outbox's transaction. */
  keep?: () => void;
}

export type VerdictCheck = (env: EnvelopeOf<'verdict'>, entry: OutboxEntry) => Promise<VerdictInfo>;

/** Why a verdict was not taken: a receipt that does not hold is `ReceiptRefused` (an alarm for the operator). */
export class VerdictRefusedError extends BiokioskError {
  constructor(
    message: string,
    readonly receipt: 'mismatch' | 'forged' | 'inconsistent' | null = null,
  ) {
    super(receipt ? 'ReceiptRefused' : 'VerdictRefused', message);
  }
}

function refuse(why: string): VerdictRefusedError {
  return new VerdictRefusedError(why);
}

/** The claims of our own attestation in an outbox entry (no schema check needed: we signed and stored them). */
function ownClaims(entryPayload: Buffer): { jws: string; logSize: number } {
  const jws = (JSON.parse(entryPayload.toString('utf8')) as { body: string }).body;
  const claims = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { log_size?: number };
  return { jws, logSize: claims.log_size ?? 0 };
}

export function verdictChecker(ueid: string, verifiers: TrustedVerifier[], heads: TreeHeadStore, log: LogTrust): { checkVerdict: VerdictCheck } {
  const keys = new Map<string, TrustedKey>();
  for (const v of verifiers) {
    const kid = jwkThumbprint(p256PublicJwk(v.publicJwk as Record<string, unknown>));
    keys.set(kid, { owner: v.id, key: v.publicJwk });
  }
  return {
    async checkVerdict(env, entry) {
      const sealed = isSealedReply(env.body);
      if (sealed && !entry.replyKey) throw refuse(`verdict for ${entry.attId} is sealed but this attestation has no reply key`);
      const jws = sealed ? openReply(env.body, entry.replyKey!) : env.body;
      // A verdict is checked against the moment it was signed: the outbox may have been offline for hours.
      const { claims } = await parseVerdict(jws, (k) => keys.get(k), { expectedUeid: ueid, maxAgeSeconds: 7 * 24 * 3600 });
      if (claims.att_id !== env.corr || claims.att_id !== entry.attId) throw refuse(`verdict names attestation ${claims.att_id}, not ${entry.attId}`);
      const own = ownClaims(entry.payload);
      const hash = attestationHash(own.jws);
      if (claims.att_hash !== hash) throw refuse(`verdict for ${entry.attId} names another attestation hash`);
      if (claims.seq !== entry.seq) throw refuse(`verdict for ${entry.attId} names seq ${claims.seq}, not ${entry.seq}`);
      // Only a verifier that could not open the sealed content answers in the clear, and then only with a rejection.
      if (!sealed && entry.replyKey && claims.decision !== 'rejected') throw refuse(`verdict for ${entry.attId} is a ${claims.decision} sent unsealed`);
      const outcome = checkReceipt(claims, { ueid, attId: entry.attId, hash, seq: entry.seq, logSize: own.logSize }, heads, log);
      if (!outcome.ok) throw new VerdictRefusedError(`receipt of the verdict for ${entry.attId} refused: ${outcome.reason}`, outcome.kind);
      return { attId: claims.att_id, attHash: claims.att_hash, decision: claims.decision, claims, keep: () => heads.accept(outcome.head, outcome.advances) };
    },
  };
}
