/**
 * The replay check on a device's `seq`, as a pure function over the device's window state.
 *
 * Each seq is accepted once. The state is a floor (every seq at or below it has been accepted, or given up on)
 * and the set of seqs accepted above it. The floor rises only over seqs actually seen: a hole (a seq a verifier
 * held in flight when it died, redelivered by the kiosk's outbox later) keeps the floor below it, so the
 * redelivered attestation is accepted whenever it comes, however far the device's later attestations went on.
 * (The earlier window, "within 256 of the highest seq seen", turned such a late attestation into a replay.)
 *
 * A hole that never fills (a seq the kiosk took and never used: it crashed between counting and enqueueing) would
 * keep every later seq in the set; past `maxPending` seqs above the floor, the oldest hole is given up on. Replays
 * below the floor are also stopped by the attestation's age limit (`iat`), which is independent of this.
 */
import type { SeqCheck } from './store.ts';

export interface WindowState {
  floor: number;
  /** Seqs accepted above the floor. */
  seen: Set<number>;
}

/** Seqs accepted above the floor before the oldest hole is given up on. */
export const MAX_PENDING_SEQS = 4096;

/** Decides `seq` against the state and updates it; `changed` is set when the state must be written back. */
export function acceptSeq(state: WindowState, seq: number, maxPending = MAX_PENDING_SEQS): SeqCheck {
  if (seq <= state.floor) return 'too_old';
  if (state.seen.has(seq)) return 'replayed';
  state.seen.add(seq);
  compact(state, maxPending);
  return 'ok';
}

/** Raises the floor over the seqs seen right above it; gives up the oldest holes beyond `maxPending`. */
export function compact(state: WindowState, maxPending = MAX_PENDING_SEQS): void {
  while (state.seen.has(state.floor + 1)) state.seen.delete(++state.floor);
  while (state.seen.size > maxPending) {
    let min = Infinity;
    for (const s of state.seen) if (s < min) min = s;
    state.floor = min - 1;
    while (state.seen.has(state.floor + 1)) state.seen.delete(++state.floor);
  }
}
