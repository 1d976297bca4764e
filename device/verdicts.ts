/**
 * How a kiosk trusts a verdict: it opens it with the reply key of the outbox entry it answers (only that kiosk
 * and the verifiers know it), then requires a JWS from a verifier it knows, addressed to it, naming that exact
 * attestation: its att_id, the SHA-256 of its JWS and its seq. Anything else leaves the entry in the outbox.
 */
import type { JsonWebKey } from 'node:crypto';
import { attestationHash } from '../protocol/attestation.ts';
import type { VerdictClaims } from '../protocol/claims.ts';
import { decodeEnvelope, type EnvelopeOf } from '../protocol/envelope.ts';
import { BiokioskError } from '../protocol/errors.ts';
import { isSealedReply, openReply } from '../protocol/reply.ts';
import { jwkThumbprint, p256PublicJwk } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { parseVerdict } from '../protocol/verdict.ts';
import type { OutboxEntry } from './outbox.ts';

export interface TrustedVerifier {
  id: string;
  publicJwk: JsonWebKey;
}

export interface VerdictInfo {
  attId: string;
  attHash: string;
  decision: VerdictClaims['decision'];
  claims: VerdictClaims;
}

export type VerdictCheck = (env: EnvelopeOf<'verdict'>, entry: OutboxEntry) => Promise<VerdictInfo>;

function refuse(why: string): BiokioskError {
  return new BiokioskError('VerdictRefused', why);
}

export function verdictChecker(ueid: string, verifiers: TrustedVerifier[]): { checkVerdict: VerdictCheck } {
  const keys = new Map<string, TrustedKey>();
  for (const v of verifiers) keys.set(jwkThumbprint(p256PublicJwk(v.publicJwk as Record<string, unknown>)), { owner: v.id, key: v.publicJwk });
  return {
    async checkVerdict(env, entry) {
      const sealed = isSealedReply(env.body);
      if (sealed && !entry.replyKey) throw refuse(`verdict for ${entry.attId} is sealed but this attestation has no reply key`);
      const jws = sealed ? openReply(env.body, entry.replyKey!) : env.body;
      // A verdict is checked against the moment it was signed: the outbox may have been offline for hours.
      const { claims } = await parseVerdict(jws, (kid) => keys.get(kid), { expectedUeid: ueid, maxAgeSeconds: 7 * 24 * 3600 });
      if (claims.att_id !== env.corr || claims.att_id !== entry.attId) throw refuse(`verdict names attestation ${claims.att_id}, not ${entry.attId}`);
      const hash = attestationHash(decodeEnvelope(entry.payload, 'attestation').body);
      if (claims.att_hash !== hash) throw refuse(`verdict for ${entry.attId} names another attestation hash`);
      if (claims.seq !== entry.seq) throw refuse(`verdict for ${entry.attId} names seq ${claims.seq}, not ${entry.seq}`);
      // Only a verifier that could not open the sealed content answers in the clear, and then only with a rejection.
      if (!sealed && entry.replyKey && claims.decision !== 'rejected') throw refuse(`verdict for ${entry.attId} is a ${claims.decision} sent unsealed`);
      return { attId: claims.att_id, attHash: claims.att_hash, decision: claims.decision, claims };
    },
  };
}
