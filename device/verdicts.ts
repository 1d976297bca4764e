/** How a kiosk trusts a verdict: a JWS from a verifier it knows, addressed to it, naming its attestation. */
import type { JsonWebKey } from 'node:crypto';
import { attestationHash } from '../protocol/attestation.ts';
import { decodeEnvelope } from '../protocol/envelope.ts';
import { jwkThumbprint, p256PublicJwk } from '../protocol/signer.ts';
import type { TrustedKey } from '../protocol/trust.ts';
import { parseVerdict } from '../protocol/verdict.ts';
import type { VerdictInfo } from './relay.ts';

export interface TrustedVerifier {
  id: string;
  publicJwk: JsonWebKey;
}

export function verdictChecker(ueid: string, verifiers: TrustedVerifier[]) {
  const keys = new Map<string, TrustedKey>();
  for (const v of verifiers) keys.set(jwkThumbprint(p256PublicJwk(v.publicJwk as Record<string, unknown>)), { owner: v.id, key: v.publicJwk });
  return {
    async verifyVerdict(payload: Buffer): Promise<VerdictInfo> {
      const env = decodeEnvelope(payload, 'verdict');
      // A verdict is checked against the moment it was signed: the outbox may have been offline for hours.
      const parsed = await parseVerdict(env.body, (kid) => keys.get(kid), { expectedUeid: ueid, maxAgeSeconds: 7 * 24 * 3600 });
      if (parsed.claims.att_id !== env.corr) throw new Error(`verdict envelope corr ${env.corr} is not its att_id ${parsed.claims.att_id}`);
      return { attId: parsed.claims.att_id, attHash: parsed.claims.att_hash, decision: parsed.claims.decision, claims: parsed.claims };
    },
    /** The hash a verdict must name for an outbox entry: that of the attestation JWS inside the envelope. */
    expectedHash(outboxPayload: Buffer): string {
      return attestationHash(decodeEnvelope(outboxPayload, 'attestation').body);
    },
  };
}
