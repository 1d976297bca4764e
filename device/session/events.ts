/**
 * What a verification session tells its screen (the CLI prints these; the counter screen renders them): one
 * `transition` per state change, with a payload typed by the state entered, and notices in between (each capture's
 * quality, a fallback to another modality, a device that went away or came back).
 */
import type { Modality, VerdictDetail } from '../../protocol/claims.ts';

export const SESSION_STATES = ['idle', 'identify', 'consent', 'challenge', 'capture', 'extract', 'attest', 'awaiting_verdict', 'result', 'cleared'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/** What the person should do now. */
export type Prompt = 'look_at_camera' | 'place_finger' | 'look_into_iris_camera';

/**
 * How a session ended: the verdict's decision; `queued` when no verdict came in time (the outbox delivers it
 * later); `no_capture` when no modality gave a usable capture; `failed` when the site requires an online check
 * and none could be made, or a device failed; `timed_out` when no subject id came; `cancelled`; `refused` when the
 * person did not consent (never a capture: the counter checks the ID); `step_up` when the verifier asked for one
 * more check this kiosk cannot make (the counter checks the ID); `locked` after too many failures.
 */
export type Outcome = 'match' | 'no_match' | 'rejected' | 'queued' | 'no_capture' | 'failed' | 'timed_out' | 'cancelled' | 'refused' | 'step_up' | 'locked';

export interface StatePayloads {
  idle: Record<string, never>;
  identify: Record<string, never>;
  /** What the person is asked to consent to: this purpose (the scenario), with this text version. */
  consent: { purpose: string; text: string };
  challenge: Record<string, never>;
  /** `factor`: 1 for the first check, 2 after a step_up, ... */
  capture: { modality: Modality; attempt: number; of: number; prompt: Prompt; factor: number };
  extract: { modality: Modality; attempt: number };
  attest: { modality: Modality; quality: number; withNonce: boolean };
  awaiting_verdict: { attId: string; seq: number };
  result: {
    outcome: Outcome;
    reasons: string[];
    modality: Modality | null;
    attId: string | null;
    receipt: { leafIndex: number; treeSize: number } | null;
    detail: string | null;
    /** What the verdict said besides its decision: scenario, policy version, eligibility, step_up, lock. */
    verdict: VerdictDetail | null;
  };
  cleared: { cancelled: boolean };
}

export type Transition = {
  [S in SessionState]: { type: 'transition'; from: SessionState; to: S; at: number; payload: StatePayloads[S] };
}[SessionState];

export type SessionNotice =
  | { type: 'quality'; modality: Modality; attempt: number; score: number | null; retryBelow: number | null; accepted: boolean; problem: string | null }
  | { type: 'fallback'; from: Modality; to: Modality | null; reason: string }
  | { type: 'device'; modality: Modality; status: 'vanished' | 'returned'; reason: string | null }
  /** The verifier asked for one more check: the next modality (null: none fitted here, the counter checks the ID). */
  | { type: 'step_up'; from: Modality; to: Modality | null; reasons: string[]; attId: string };

export type SessionEvent = Transition | SessionNotice;

export const PROMPTS: Record<Modality, Prompt> = { face: 'look_at_camera', fingerprint: 'place_finger', iris: 'look_into_iris_camera' };
