/**
 * One verification session: idle -> identify -> challenge -> capture <-> extract -> attest -> awaiting_verdict ->
 * result -> cleared, cancellable from any state.
 *
 * Why not xstate: the session is a handful of flat states walked in order, with one loop (capture, extract, try
 * again or fall back). Written as one async function over explicit states, it keeps the two guarantees that matter:
 * every wait takes the session's AbortSignal (cancel ends whatever is running, at once), and every timeout runs on
 * the injected clock. Each state change is a typed `transition` event (events.ts).
 *
 * Biometric data never outlives the session: each captured image is wiped as soon as its template is extracted,
 * each template once it is attested or discarded; nothing biometric is written anywhere but the sealed template
 * inside the outbox entry (the attester's).
 */
import { EventEmitter } from 'node:events';
import type { Consent, Language, Modality, VerdictDetail } from '../../protocol/claims.ts';
import { BiokioskError } from '../../protocol/errors.ts';
import type { Extraction, ModalityEngine } from '../../models/modality.ts';
import type { Attested, TemplateToAttest } from '../attester.ts';
import type { VerdictInfo } from '../verdicts.ts';
import { CaptureTimeoutError, DeviceGoneError, wipe, type CaptureDevice } from '../capture/types.ts';
import { PROMPTS, type Outcome, type SessionEvent, type SessionState, type StatePayloads } from './events.ts';
import type { ModalityStep, SitePolicy } from './policy.ts';

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }),
};

/** What a session needs from the kiosk around it (the factory, device/kiosk.ts, provides all of it). */
export interface SessionDeps {
  devices: ReadonlyMap<Modality, CaptureDevice>;
  engine(modality: Modality): Promise<ModalityEngine>;
  templateFormat(modality: Modality): string;
  attest(t: TemplateToAttest): Promise<Attested>;
  online(): boolean;
  /** A verifier's nonce, or null when none came within the timeout. */
  requestNonce(timeoutMs: number, signal: AbortSignal): Promise<string | null>;
  /** The verdict for an attestation, or null when none came within the timeout (it stays in the outbox). */
  awaitVerdict(attId: string, timeoutMs: number, signal: AbortSignal): Promise<VerdictInfo | null>;
  clock?: Clock;
}

export interface SessionResult {
  outcome: Outcome;
  subject: string | null;
  modality: Modality | null;
  attId: string | null;
  reasons: string[];
  verdict: VerdictInfo | null;
  /** Milliseconds spent in each state (entered more than once: summed). */
  timings: Partial<Record<SessionState, number>>;
  /** Each attestation of the session (more than one after a step_up), with its decision (null: queued). */
  attempts: Array<{ modality: Modality; attId: string; decision: string | null }>;
  consent: Consent | null;
}

/** What a session is for: the service (scenario) asked, and whether the verdict should answer eligibility. */
export interface SessionOptions {
  scenario?: string | null;
  wantEligibility?: boolean;
}

class Cancelled extends Error {
  constructor() {
    super('the session was cancelled');
  }
}

/** A session ended early with this outcome. */
class Ended extends Error {
  constructor(
    readonly outcome: Outcome,
    readonly reasons: string[],
    readonly detail: string | null,
  ) {
    super(detail ?? outcome);
  }
}

export class KioskSession extends EventEmitter<{ event: [SessionEvent] }> {
  private current: SessionState = 'idle';
  private enteredAt: number;
  private readonly abort = new AbortController();
  private readonly clock: Clock;
  private subjectWaiter: ((s: string) => void) | null = null;
  private consentWaiter: ((c: { accepted: boolean; lang: Language }) => void) | null = null;
  private readonly timings: Partial<Record<SessionState, number>> = {};
  private readonly held: Array<Uint8Array> = [];
  private started = false;
  /** Resolves when the session has cleared, whatever happened. */
  readonly done: Promise<SessionResult>;
  private finish!: (r: SessionResult) => void;

  constructor(
    private readonly deps: SessionDeps,
    readonly policy: SitePolicy,
    readonly options: SessionOptions = {},
  ) {
    super();
    this.clock = deps.clock ?? realClock;
    this.enteredAt = performance.now();
    this.done = new Promise<SessionResult>((r) => (this.finish = r));
  }

  get state(): SessionState {
    return this.current;
  }

  /** Starts the session: it waits for the subject id (identify). */
  begin(): this {
    if (this.started) throw new BiokioskError('SessionStarted', 'this session has already begun', { kind: 'internal' });
    this.started = true;
    void this.run();
    return this;
  }

  /** The subject id, typed or scanned. */
  identify(subject: string): void {
    const s = subject.trim();
    if (this.current !== 'identify' || !this.subjectWaiter) throw new BiokioskError('NotIdentifying', `the session is in ${this.current}, not waiting for a subject id`);
    if (s.length === 0 || s.length > 128 || /[\u0000-\u001f\u007f]/.test(s)) throw new BiokioskError('BadSubject', 'a subject id is 1 to 128 characters without control characters');
    this.subjectWaiter(s);
  }

  /** The person's answer to the consent question (in the language it was asked in). */
  giveConsent(c: { accepted: boolean; lang: Language }): void {
    if (this.current !== 'consent' || !this.consentWaiter) throw new BiokioskError('NotAskingConsent', `the session is in ${this.current}, not asking for consent`);
    if (c.lang !== 'en' && c.lang !== 'zh-Hans') throw new BiokioskError('BadLanguage', `consent is asked in en or zh-Hans, not ${String(c.lang).slice(0, 20)}`);
    this.consentWaiter(c);
  }

  /** The purpose consent is asked for: the scenario, or a plain identity check. */
  get purpose(): string {
    return this.options.scenario ?? 'identity_check';
  }

  /** Ends the session from any state: whatever runs is aborted, the session clears. */
  cancel(): void {
    if (!this.abort.signal.aborted) this.abort.abort(new Cancelled());
  }

  private emitEvent(e: SessionEvent): void {
    this.emit('event', e);
  }

  private enter<S extends SessionState>(to: S, payload: StatePayloads[S]): void {
    // Durations on the monotonic clock (sub-millisecond); `at` is wall time, from the injected clock.
    const mono = performance.now();
    this.timings[this.current] = (this.timings[this.current] ?? 0) + (mono - this.enteredAt);
    const from = this.current;
    this.current = to;
    this.enteredAt = mono;
    this.emitEvent({ type: 'transition', from, to, at: this.clock.now(), payload } as SessionEvent);
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  private hold<T extends Uint8Array>(b: T): T {
    this.held.push(b);
    return b;
  }

  private wipeAll(): void {
    wipe(...this.held.splice(0));
  }

  private async run(): Promise<void> {
    let subject: string | null = null;
    let modality: Modality | null = null;
    let attId: string | null = null;
    let verdict: VerdictInfo | null = null;
    let outcome: Outcome;
    let reasons: string[] = [];
    let detail: string | null = null;
    let consent: Consent | null = null;
    const attempts: SessionResult['attempts'] = [];
    try {
      this.enter('identify', {});
      subject = await this.waitForSubject();
      consent = await this.askConsent();
      // One check, or more when the verifier answers step_up: the next modality the verdict allows and this
      // kiosk has, each attempt naming the one it follows (step_of). No modality left: the counter checks the ID.
      let steps: ModalityStep[] = this.policy.steps;
      let stepOf: string | undefined;
      const used = new Set<Modality>();
      for (let factor = 1; ; factor++) {
        const nonce = await this.challenge();
        const chosen = await this.captureLoop(steps, factor);
        modality = chosen.modality;
        used.add(chosen.modality);
        this.enter('attest', { modality: chosen.modality, quality: chosen.x.quality.score, withNonce: nonce !== undefined });
        const model = chosen.x.info['model'] as { name: string; sha256: string };
        const a = await this.deps.attest({
          subject,
          modality: chosen.modality,
          template: chosen.x.template,
          templateFormat: this.deps.templateFormat(chosen.modality),
          quality: chosen.x.quality.score,
          model,
          nonce,
          ...(this.options.scenario ? { scenario: this.options.scenario } : {}),
          ...(consent ? { consent } : {}),
          ...(this.options.wantEligibility ? { wantEligibility: true } : {}),
          ...(stepOf ? { stepOf } : {}),
        });
        this.wipeAll();
        attId = a.attId;
        this.enter('awaiting_verdict', { attId: a.attId, seq: a.seq });
        verdict = await this.deps.awaitVerdict(a.attId, this.policy.verdictTimeoutMs, this.signal);
        attempts.push({ modality: chosen.modality, attId: a.attId, decision: verdict?.decision ?? null });
        if (!verdict) {
          outcome = 'queued';
          break;
        }
        reasons = verdict.claims.reasons.map((r) => r.code);
        if (verdict.decision !== 'step_up') {
          outcome = verdict.decision;
          break;
        }
        const allowed = verdict.claims.detail?.step_up?.modalities ?? [];
        steps = this.policy.steps.filter((st) => allowed.includes(st.modality) && !used.has(st.modality) && this.deps.devices.has(st.modality));
        this.emitEvent({ type: 'step_up', from: chosen.modality, to: steps[0]?.modality ?? null, reasons, attId: a.attId });
        if (steps.length === 0) {
          outcome = 'step_up';
          detail = 'one more check is needed and this kiosk has no other kind of sensor: check the ID at the counter';
          break;
        }
        stepOf = a.attId;
      }
    } catch (e) {
      this.wipeAll();
      if (e instanceof Cancelled || this.signal.aborted) outcome = 'cancelled';
      else if (e instanceof Ended) {
        outcome = e.outcome;
        reasons = e.reasons;
        detail = e.detail;
      } else {
        outcome = 'failed';
        detail = e instanceof Error ? e.message : String(e);
      }
    }
    if (outcome !== 'cancelled') {
      const vd: VerdictDetail | null = verdict?.claims.detail ?? null;
      this.enter('result', { outcome, reasons, modality, attId, receipt: verdict ? { leafIndex: verdict.claims.receipt.leafIndex, treeSize: verdict.claims.receipt.treeSize } : null, detail, verdict: vd });
      if (this.policy.resultMs > 0) await this.clock.sleep(this.policy.resultMs, this.signal).catch(() => {});
    }
    this.enter('cleared', { cancelled: outcome === 'cancelled' });
    this.finish({ outcome, subject, modality, attId, reasons, verdict, timings: { ...this.timings }, attempts, consent });
  }

  /** Consent before any capture, when the site asks for it: refused (or unanswered) goes to the counter. */
  private async askConsent(): Promise<Consent | null> {
    if (this.policy.consent !== 'required') return null;
    this.enter('consent', { purpose: this.purpose, text: this.policy.consentText });
    const wait = new AbortController();
    const onAbort = () => wait.abort(this.signal.reason);
    this.signal.addEventListener('abort', onAbort, { once: true });
    const answer = await new Promise<{ accepted: boolean; lang: Language }>((resolve, reject) => {
      this.clock.sleep(this.policy.consentTimeoutMs, wait.signal).then(
        () => reject(new Ended('timed_out', [], `no answer to the consent question within ${this.policy.consentTimeoutMs} ms`)),
        () => {
          if (this.signal.aborted) reject(this.signal.reason);
        },
      );
      this.consentWaiter = (c) => {
        this.consentWaiter = null;
        resolve(c);
      };
    }).finally(() => {
      this.consentWaiter = null;
      this.signal.removeEventListener('abort', onAbort);
      wait.abort();
    });
    if (!answer.accepted) throw new Ended('refused', ['consent_refused'], 'no consent to a biometric check: check the ID at the counter');
    return { purpose: this.purpose, at: Math.floor(this.clock.now() / 1000), text: this.policy.consentText, lang: answer.lang };
  }

  private waitForSubject(): Promise<string> {
    // The timeout's own signal: aborted by the session's, and when the id comes (so no timer outlives the wait).
    const wait = new AbortController();
    const onAbort = () => wait.abort(this.signal.reason);
    this.signal.addEventListener('abort', onAbort, { once: true });
    return new Promise<string>((resolve, reject) => {
      this.clock.sleep(this.policy.identifyTimeoutMs, wait.signal).then(
        () => reject(new Ended('timed_out', [], `no subject id within ${this.policy.identifyTimeoutMs} ms`)),
        () => {
          if (this.signal.aborted) reject(this.signal.reason);
        },
      );
      this.subjectWaiter = (s) => {
        this.subjectWaiter = null;
        this.signal.removeEventListener('abort', onAbort);
        wait.abort();
        resolve(s);
      };
    });
  }

  /** The online check, when the policy wants one: a nonce from a verifier, or why there is none. */
  private async challenge(): Promise<string | undefined> {
    const p = this.policy.nonce;
    if (p === 'never' || (p === 'when_online' && !this.deps.online())) return undefined;
    this.enter('challenge', {});
    const nonce = this.deps.online() ? await this.deps.requestNonce(this.policy.nonceTimeoutMs, this.signal) : null;
    if (nonce) return nonce;
    if (p === 'required') throw new Ended('failed', ['verifier_unreachable'], 'this site requires an online check and no verifier answered: check the ID at the counter');
    return undefined;
  }

  /** Captures and extracts, modality after modality, until one gives a template good enough to attest. */
  private async captureLoop(steps: readonly ModalityStep[], factor: number): Promise<{ modality: Modality; x: Extraction }> {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      const next = steps[i + 1]?.modality ?? null;
      const device = this.deps.devices.get(step.modality);
      const fallback = (reason: string) => this.emitEvent({ type: 'fallback', from: step.modality, to: next, reason });
      if (!device) {
        fallback(`no ${step.modality} capture device`);
        continue;
      }
      const onVanished = (reason: string) => this.emitEvent({ type: 'device', modality: step.modality, status: 'vanished', reason });
      const onReturned = () => this.emitEvent({ type: 'device', modality: step.modality, status: 'returned', reason: null });
      device.on('vanished', onVanished);
      device.on('returned', onReturned);
      try {
        const engine = await this.deps.engine(step.modality);
        for (let attempt = 1; attempt <= step.maxCaptures; attempt++) {
          this.enter('capture', { modality: step.modality, attempt, of: step.maxCaptures, prompt: PROMPTS[step.modality], factor });
          let image;
          try {
            image = await device.capture({ timeoutMs: step.captureTimeoutMs, signal: this.signal });
          } catch (e) {
            if (e instanceof CaptureTimeoutError) {
              this.emitEvent({ type: 'quality', modality: step.modality, attempt, score: null, retryBelow: null, accepted: false, problem: e.message });
              continue;
            }
            if (e instanceof DeviceGoneError) {
              onVanished(e.message);
              throw new Ended('failed', ['device_gone'], `${e.message}: check the ID at the counter`);
            }
            throw e;
          }
          this.hold(image.bytes);
          this.enter('extract', { modality: step.modality, attempt });
          let x: Extraction;
          try {
            x = await engine.extract(image.bytes);
          } catch (e) {
            if (!(e instanceof BiokioskError) || e.kind !== 'input') throw e;
            this.emitEvent({ type: 'quality', modality: step.modality, attempt, score: null, retryBelow: null, accepted: false, problem: e.message });
            continue;
          } finally {
            wipe(image.bytes);
          }
          this.hold(x.template);
          const accepted = x.quality.score >= x.quality.retryBelow;
          this.emitEvent({ type: 'quality', modality: step.modality, attempt, score: x.quality.score, retryBelow: x.quality.retryBelow, accepted, problem: accepted ? null : 'quality below the retry threshold' });
          if (accepted) return { modality: step.modality, x };
          wipe(x.template);
        }
        fallback(`no usable ${step.modality} capture after ${step.maxCaptures}`);
      } finally {
        device.off('vanished', onVanished);
        device.off('returned', onReturned);
      }
    }
    throw new Ended('no_capture', [], 'no modality gave a usable capture: check the ID at the counter');
  }
}
