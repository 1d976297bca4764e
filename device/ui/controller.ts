/**
 * What the counter screen shows, as one view state derived from the kiosk's sessions (their typed events), its
 * verdicts and its health; the screen (server.ts serves it, static/ renders it) only sends the person's actions
 * back. The state carries codes, never sentences: the page words them in the person's language (English or
 * Simplified Chinese), so a language switch at any time changes every word at once.
 *
 * The flow: start (typed id, or a card number from the scanner) -> consent (for this purpose, in this language;
 * refusing goes to the counter, never to a capture) -> capture (prompt, live preview, progress) -> working ->
 * result (verified / not verified / locked / check the ID at the counter, with the reasons and eligibility) or
 * queued (confirmed later when the verdict comes). A step_up verdict goes on to the next modality. The counter
 * path is open from every screen. Screens waiting on the person warn before timing out and give at least 20 s to
 * continue. The pharmacist's view adds the receipt id and the override ("checked ID by hand", with a reason).
 */
import { EventEmitter } from 'node:events';
import type { Eligibility, Language, Modality, Override } from '../../protocol/claims.ts';
import { BiokioskError } from '../../protocol/errors.ts';
import type { Kiosk, KioskHealth } from '../kiosk.ts';
import type { SessionEvent } from '../session/events.ts';
import type { KioskSession, SessionResult } from '../session/session.ts';

export type Screen = 'start' | 'consent' | 'capture' | 'working' | 'result' | 'queued' | 'counter' | 'device_error';
export type Role = 'patient' | 'pharmacist';

/** The result as the screen shows it. */
export interface ResultView {
  /** verified / not_verified / locked / counter (check the ID at the counter) / override (checked by hand). */
  status: 'verified' | 'not_verified' | 'locked' | 'counter' | 'override';
  outcome: string;
  reasons: string[];
  eligibility: Eligibility | null;
  lockedUntil: number | null;
  attId: string | null;
  receipt: { leafIndex: number; treeSize: number } | null;
  /** A queued attempt whose verdict came later. */
  confirmedLater: boolean;
}

export interface ViewState {
  screen: Screen;
  lang: Language;
  role: Role;
  siteKind: 'pharmacy' | 'hospital';
  scenarios: string[];
  scenario: string | null;
  subject: string | null;
  consent: { purpose: string; text: string } | null;
  capture: { modality: Modality; prompt: string; attempt: number; of: number; factor: number; preview: boolean } | null;
  /** A step_up asked for this (shown above the next capture). */
  stepUp: { from: Modality; to: Modality | null; reasons: string[] } | null;
  working: 'extract' | 'attest' | 'awaiting_verdict' | 'challenge' | null;
  /** Why a capture was retried (quality too low, no face...). */
  retry: { modality: Modality; attempt: number } | null;
  result: ResultView | null;
  /** The device problem on the device_error screen. */
  device: { modality: Modality; reason: string } | null;
  /** Timeout warning: the screen resets at `deadline` (ms) unless the person continues. */
  warning: { deadline: number; seconds: number } | null;
  health: KioskHealth;
  /** An action that could not be taken (a code the page words). */
  error: string | null;
  /** Increases with every change (the page ignores stale copies). */
  version: number;
}

export interface ScreenOptions {
  siteKind?: 'pharmacy' | 'hospital';
  role?: Role;
  /** The services a pharmacist may pick (the first is the default); a hospital kiosk has one. */
  scenarios?: string[];
  lang?: Language;
  /** Idle time on a screen waiting for the person before the warning (default 60 s). */
  idleMs?: number;
  /** How long the warning gives to continue (at least 20 s: EN 301 549 / WCAG 2.2.1). */
  warnMs?: number;
  /** Ask for the eligibility answer in pharmacy sessions too. */
  wantEligibility?: boolean;
}

export const MIN_WARNING_MS = 20_000;

export class ScreenError extends BiokioskError {
  constructor(code: string, message: string) {
    super(code, message, { kind: 'input' });
  }
}

const OVERRIDE_REASONS: ReadonlyArray<Override['reason']> = ['id_document_checked', 'biometric_unusable', 'person_declined_biometric', 'device_fault'];

export interface ScreenEvents {
  view: [ViewState];
  preview: [Uint8Array | null];
  /** Each session's result as it ends (with its timings), for whoever runs the kiosk (the CLI prints it). */
  result: [{ subject: string | null; result: SessionResult }];
}

export class CounterScreen extends EventEmitter<ScreenEvents> {
  private view: ViewState;
  private session: KioskSession | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private resetTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout;
  /** Queued attempts waiting for their verdict, to confirm on screen. */
  private queued = new Set<string>();
  private readonly idleMs: number;
  private readonly warnMs: number;
  private lastAttId: string | null = null;
  private readonly onVerdict: (v: { attId: string; decision: string; claims: { reasons: Array<{ code: string }>; detail?: { eligibility?: Eligibility; locked_until?: number }; receipt: { leafIndex: number; treeSize: number } } }) => void;
  private readonly onPreview = (bytes: Uint8Array) => this.emit('preview', bytes);

  constructor(
    readonly kiosk: Kiosk,
    private readonly o: ScreenOptions = {},
  ) {
    super();
    this.idleMs = o.idleMs ?? 60_000;
    this.warnMs = Math.max(MIN_WARNING_MS, o.warnMs ?? 30_000);
    const siteKind = o.siteKind ?? 'pharmacy';
    const scenarios = o.scenarios ?? (siteKind === 'hospital' ? ['hospital_admission'] : ['otc_pickup', 'prescription', 'controlled_substance']);
    if (scenarios.length === 0) throw new ScreenError('BadScreenConfig', 'the screen needs at least one scenario');
    this.view = {
      screen: 'start',
      lang: o.lang ?? 'en',
      role: o.role ?? (siteKind === 'pharmacy' ? 'pharmacist' : 'patient'),
      siteKind,
      scenarios,
      scenario: scenarios[0]!,
      subject: null,
      consent: null,
      capture: null,
      stepUp: null,
      working: null,
      retry: null,
      result: null,
      device: null,
      warning: null,
      health: kiosk.health(),
      error: null,
      version: 0,
    };
    this.onVerdict = (v) => {
      if (!this.queued.delete(v.attId)) return;
      // A queued attempt's verdict: the screen confirms it if it is still showing that attempt.
      if (this.view.screen === 'queued' && this.view.result?.attId === v.attId) {
        const decision = v.decision as SessionResult['outcome'];
        this.update({ screen: 'result', result: { ...this.resultOf(decision, v.claims.reasons.map((r) => r.code), v.claims.detail ?? null, v.attId, v.claims.receipt), confirmedLater: true } });
      }
    };
    kiosk.on('verdict', this.onVerdict as never);
    for (const d of kiosk.devices.values()) d.on('preview', this.onPreview);
    this.healthTimer = setInterval(() => this.refreshHealth(), 500);
    this.healthTimer.unref();
  }

  get state(): ViewState {
    return this.view;
  }

  private update(patch: Partial<ViewState>): void {
    this.view = { ...this.view, ...patch, error: patch.error ?? null, version: this.view.version + 1 };
    this.emit('view', this.view);
    this.armIdle();
  }

  private refreshHealth(): void {
    const h = this.kiosk.health();
    if (JSON.stringify(h) !== JSON.stringify(this.view.health)) {
      this.view = { ...this.view, health: h, version: this.view.version + 1 };
      this.emit('view', this.view);
    }
  }

  /** Screens that wait on the person warn before they reset (capture has its own timeouts; start resets nothing). */
  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.view.warning) return;
    if (!['consent', 'result', 'counter', 'device_error', 'queued'].includes(this.view.screen)) return;
    this.idleTimer = setTimeout(() => this.warn(), this.idleMs);
    this.idleTimer.unref();
  }

  private warn(): void {
    const deadline = Date.now() + this.warnMs;
    this.update({ warning: { deadline, seconds: Math.round(this.warnMs / 1000) } });
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = setTimeout(() => void this.reset(), this.warnMs);
    this.resetTimer.unref();
  }

  /** "I need more time": the warning goes, the screen stays. */
  continue(): void {
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = null;
    this.update({ warning: null });
  }

  setLanguage(lang: string): void {
    if (lang !== 'en' && lang !== 'zh-Hans') throw new ScreenError('BadLanguage', `the screen speaks en and zh-Hans, not ${lang.slice(0, 20)}`);
    this.update({ lang });
  }

  setScenario(scenario: string): void {
    if (!this.view.scenarios.includes(scenario)) throw new ScreenError('BadScenario', `this kiosk offers ${this.view.scenarios.join(', ')}, not ${scenario.slice(0, 40)}`);
    if (this.view.screen !== 'start') throw new ScreenError('Busy', 'the service is chosen on the start screen');
    this.update({ scenario });
  }

  /** A subject id typed on the screen or read by the card scanner: starts a session. */
  start(subject: string): void {
    const id = subject.trim();
    if (this.view.screen !== 'start') throw new ScreenError('Busy', `the screen shows ${this.view.screen}, not the start screen`);
    if (id.length === 0 || id.length > 128 || /[\u0000-\u001f\u007f]/.test(id)) {
      this.update({ error: 'bad_subject' });
      throw new ScreenError('BadSubject', 'an id or card number is 1 to 128 characters without control characters');
    }
    // Devices may have been replaced since (a swapped sensor): the preview follows the ones in use now.
    for (const d of this.kiosk.devices.values()) {
      d.off('preview', this.onPreview);
      d.on('preview', this.onPreview);
    }
    const s = this.kiosk.session({ scenario: this.view.scenario, wantEligibility: this.o.wantEligibility ?? false });
    this.session = s;
    this.lastAttId = null;
    s.on('event', (e) => this.onEvent(s, e));
    void s.done.then((r) => this.onDone(s, r));
    s.begin();
    this.update({ subject: id, result: null, stepUp: null, retry: null, device: null, warning: null });
    s.identify(id);
  }

  /** The card scanner's lines start sessions from the start screen (elsewhere they are ignored). */
  scanned(line: string): void {
    if (this.view.screen === 'start') {
      try {
        this.start(line);
      } catch {
        // Named on the screen (error: bad_subject).
      }
    }
  }

  consent(accepted: boolean): void {
    if (!this.session || this.view.screen !== 'consent') throw new ScreenError('NotAskingConsent', 'no consent question is on the screen');
    this.session.giveConsent({ accepted, lang: this.view.lang });
  }

  /** The counter path, from any screen: whatever runs is cancelled; the ID is checked at the counter. */
  counter(): void {
    const s = this.session;
    this.session = null;
    s?.cancel();
    this.update({ screen: 'counter', capture: null, working: null, warning: null, result: this.view.result ?? { status: 'counter', outcome: 'counter_requested', reasons: [], eligibility: null, lockedUntil: null, attId: this.lastAttId, receipt: null, confirmedLater: false } });
  }

  /** The pharmacist checked the ID by hand: attested and logged like any attempt. */
  async override(o: { reason: string; staff: string }): Promise<void> {
    if (this.view.role !== 'pharmacist') throw new ScreenError('NotAllowed', 'the override is on the pharmacist view only');
    if (!['result', 'counter', 'device_error', 'queued'].includes(this.view.screen) || !this.view.subject) throw new ScreenError('NothingToOverride', 'an override follows an attempt (a result or the counter screen)');
    if (!OVERRIDE_REASONS.includes(o.reason as Override['reason'])) throw new ScreenError('BadReason', `the reason is one of ${OVERRIDE_REASONS.join(', ')}`);
    const staff = o.staff.trim();
    if (staff.length === 0 || staff.length > 64 || /[\u0000-\u001f\u007f]/.test(staff)) {
      this.update({ error: 'bad_staff' });
      throw new ScreenError('BadStaff', 'the staff id is 1 to 64 characters');
    }
    this.update({ screen: 'working', working: 'awaiting_verdict' });
    const { attId, verdict } = await this.kiosk.override({ subject: this.view.subject, of: this.lastAttId, reason: o.reason as Override['reason'], staff, scenario: this.view.scenario, wantEligibility: this.o.wantEligibility });
    if (!verdict) {
      this.queued.add(attId);
      this.update({ screen: 'queued', result: { status: 'override', outcome: 'queued', reasons: [], eligibility: null, lockedUntil: null, attId, receipt: null, confirmedLater: false } });
      return;
    }
    const d = verdict.claims.detail;
    const status = verdict.decision === 'match' ? 'override' : 'counter';
    this.update({ screen: 'result', result: { status, outcome: verdict.decision, reasons: verdict.claims.reasons.map((r) => r.code), eligibility: d?.eligibility ?? null, lockedUntil: null, attId, receipt: { leafIndex: verdict.claims.receipt.leafIndex, treeSize: verdict.claims.receipt.treeSize }, confirmedLater: false } });
  }

  /** Back to the start screen (the "done" button, or a timeout without an answer). */
  async reset(): Promise<void> {
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = null;
    const s = this.session;
    this.session = null;
    s?.cancel();
    this.emit('preview', null);
    this.update({ screen: 'start', subject: null, consent: null, capture: null, stepUp: null, working: null, retry: null, result: null, device: null, warning: null, scenario: this.view.scenarios[0]! });
  }

  private onEvent(s: KioskSession, e: SessionEvent): void {
    if (s !== this.session) return;
    if (e.type === 'transition') {
      if (e.to !== 'capture') this.emit('preview', null);
      switch (e.to) {
        case 'consent':
          return this.update({ screen: 'consent', consent: e.payload });
        case 'challenge':
          return this.update({ screen: 'working', working: 'challenge', consent: null });
        case 'capture':
          return this.update({ screen: 'capture', consent: null, working: null, capture: { ...e.payload, preview: e.payload.modality === 'face' } });
        case 'extract':
          // Reading a frame is part of the capture: the screen stays (no flashing "please wait" between frames).
          if (this.view.screen === 'capture') return this.update({ working: 'extract' });
          return this.update({ screen: 'working', working: 'extract', capture: this.view.capture });
        case 'attest':
        case 'awaiting_verdict':
          if (e.to === 'awaiting_verdict') this.lastAttId = e.payload.attId;
          return this.update({ screen: 'working', working: e.to, capture: this.view.capture });
        default:
          return;
      }
    }
    if (e.type === 'quality' && !e.accepted) this.update({ retry: { modality: e.modality, attempt: e.attempt } });
    if (e.type === 'step_up') this.update({ stepUp: { from: e.from, to: e.to, reasons: e.reasons }, retry: null });
    if (e.type === 'device' && e.status === 'vanished') this.update({ device: { modality: e.modality, reason: e.reason ?? 'gone' } });
  }

  private resultOf(outcome: SessionResult['outcome'], reasons: string[], detail: { eligibility?: Eligibility; locked_until?: number } | null, attId: string | null, receipt: { leafIndex: number; treeSize: number } | null): ResultView {
    const status: ResultView['status'] = outcome === 'match' ? 'verified' : outcome === 'no_match' ? 'not_verified' : outcome === 'locked' ? 'locked' : 'counter';
    return { status, outcome, reasons, eligibility: detail?.eligibility ?? null, lockedUntil: detail?.locked_until ?? null, attId, receipt: receipt ? { leafIndex: receipt.leafIndex, treeSize: receipt.treeSize } : null, confirmedLater: false };
  }

  private onDone(s: KioskSession, r: SessionResult): void {
    if (s !== this.session) return;
    this.session = null;
    this.emit('preview', null);
    this.emit('result', { subject: this.view.subject, result: r });
    if (r.outcome === 'cancelled') return;
    const receipt = r.verdict ? r.verdict.claims.receipt : null;
    const result = this.resultOf(r.outcome, r.reasons, r.verdict?.claims.detail ?? null, r.attId, receipt);
    if (r.outcome === 'queued') {
      if (r.attId) this.queued.add(r.attId);
      return this.update({ screen: 'queued', capture: null, working: null, result });
    }
    if (r.reasons.includes('device_gone')) return this.update({ screen: 'device_error', capture: null, working: null, result, device: this.view.device ?? { modality: r.modality ?? 'fingerprint', reason: 'gone' } });
    if (result.status === 'counter') return this.update({ screen: 'counter', capture: null, working: null, result });
    this.update({ screen: 'result', capture: null, working: null, result });
  }

  async close(): Promise<void> {
    clearInterval(this.healthTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.kiosk.off('verdict', this.onVerdict as never);
    for (const d of this.kiosk.devices.values()) d.off('preview', this.onPreview);
    const s = this.session;
    this.session = null;
    s?.cancel();
    if (s) await s.done;
  }
}
