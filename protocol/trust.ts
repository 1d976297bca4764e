/**
 * Who may sign what, and when a message is too old or too new. Shared by attestations (signed by devices) and
 * verdicts (signed by verifiers).
 */
import type { KeyObject, JsonWebKey } from 'node:crypto';
import { Rejection } from './rejections.ts';

/**
 * A registered signing key and who it belongs to. Binding key to owner here (rather than trusting whatever
 * key a kid finds) is what stops device A's valid key from vouching for claims that say `ueid: B`.
 */
export interface TrustedKey {
  /** The device id (for attestations) or verifier id (for verdicts) this key belongs to. */
  owner: string;
  key: KeyObject | JsonWebKey;
  /** A revoked key still verifies, but its messages are refused with `revoked_device`. */
  revoked?: boolean;
}

export type TrustedKeyResolver = (kid: string) => TrustedKey | undefined | Promise<TrustedKey | undefined>;

export interface FreshnessOptions {
  /** Current time, NumericDate seconds. Default: the clock. */
  now?: number;
  /** Older than this (by `iat`) is `expired`. */
  maxAgeSeconds?: number;
  /** Further in the future than this (clock skew) is `not_yet_valid`. */
  maxFutureSeconds?: number;
}

/**
 * Default age window: a kiosk's durable outbox may hold attestations through a long broker outage, so
 * a day, not minutes. Online checks get their freshness from the challenge nonce's own expiry instead.
 */
export const DEFAULT_MAX_AGE_SECONDS = 24 * 3600;
export const DEFAULT_MAX_FUTURE_SECONDS = 300;

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function checkFreshness(iat: number, opts: FreshnessOptions = {}): void {
  const now = opts.now ?? nowSeconds();
  const maxAge = opts.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  const maxFuture = opts.maxFutureSeconds ?? DEFAULT_MAX_FUTURE_SECONDS;
  if (iat < now - maxAge) throw new Rejection('expired', `Issued at ${iat}, ${Math.round(now - iat)} s ago; at most ${maxAge} s allowed.`);
  if (iat > now + maxFuture) throw new Rejection('not_yet_valid', `Issued at ${iat}, ${Math.round(iat - now)} s ahead; at most ${maxFuture} s of clock skew allowed.`);
}

/** Runs a key resolver and remembers which TrustedKey it found, for the owner and revocation checks after. */
export function capturingResolver(resolve: TrustedKeyResolver): { resolveKey: (kid: string) => Promise<KeyObject | JsonWebKey | undefined>; found: () => TrustedKey | undefined } {
  let found: TrustedKey | undefined;
  return {
    resolveKey: async (kid) => {
      found = await resolve(kid);
      return found?.key;
    },
    found: () => found,
  };
}
