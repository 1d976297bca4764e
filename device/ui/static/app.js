// The counter screen: renders the kiosk's view state (server-sent events from /events) and posts the person's
// actions to /api/... Plain DOM, no framework and no build step. Everything is a real button, input or select, so
// the whole flow works with the keyboard alone (Tab, Enter, Space); focus moves to each new screen's heading.
import { reason, t } from './i18n.js';

const $ = (id) => document.getElementById(id);
let state = null;
let shownKey = '';
let countdown = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

async function act(action, body = {}) {
  try {
    const r = await fetch(`/api/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json();
    if (!j.ok) showError(j.error?.code === 'BadSubject' ? t(state.lang, 'bad_subject') : j.error?.code === 'BadStaff' ? t(state.lang, 'bad_staff') : t(state.lang, 'action_failed', { message: j.error?.message ?? r.status }));
  } catch (e) {
    showError(t(state.lang, 'action_failed', { message: String(e) }));
  }
}

function showError(msg) {
  $('error').textContent = msg;
}

const L = (k, v) => t(state.lang, k, v);
const modalityName = (m) => L(`modality_${m}`);
const scenarioName = (s) => L(`scenario_${s}`);

function button(label, onClick, cls = 'primary', attrs = {}) {
  return el('button', { type: 'button', class: cls, on: { click: onClick }, ...attrs }, label);
}

function counterButton() {
  return button(L(state.role === 'pharmacist' ? 'counter_button_staff' : 'counter_button'), () => act('counter'), 'secondary', { id: 'to-counter' });
}

function heading(key, vars) {
  return el('h1', { id: 'screen-title', tabindex: '-1' }, L(key, vars));
}

function startScreen() {
  const input = el('input', { id: 'subject', name: 'subject', type: 'text', autocomplete: 'off', inputmode: 'text', maxlength: '128', required: true, 'aria-describedby': 'start-intro' });
  const form = el(
    'form',
    { id: 'start-form', on: { submit: (e) => { e.preventDefault(); act('start', { subject: input.value }); } } },
    el('label', { for: 'subject' }, L('subject_label')),
    input,
    state.scenarios.length > 1
      ? el(
          'div',
          { class: 'field' },
          el('label', { for: 'scenario' }, L('scenario_label')),
          el('select', { id: 'scenario', on: { change: (e) => act('scenario', { scenario: e.target.value }) } }, state.scenarios.map((s) => el('option', { value: s, selected: s === state.scenario }, scenarioName(s)))),
        )
      : null,
    el('button', { type: 'submit', class: 'primary', id: 'start' }, L('start_button')),
  );
  return [heading('start_heading'), el('p', { id: 'start-intro', class: 'lead' }, L(state.siteKind === 'hospital' ? 'start_intro_hospital' : 'start_intro_pharmacy')), form, counterButton()];
}

function consentScreen() {
  const c = state.consent;
  return [
    heading('consent_heading'),
    el('p', { class: 'lead', id: 'consent-text' }, L('consent_text', { purpose: scenarioName(c.purpose) })),
    el('p', { class: 'small' }, L('consent_version', { version: c.text })),
    el('div', { class: 'actions' }, button(L('consent_accept'), () => act('consent', { accepted: true }), 'primary', { id: 'consent-yes' }), button(L('consent_refuse'), () => act('consent', { accepted: false }), 'secondary', { id: 'consent-no' })),
  ];
}

function captureScreen() {
  const c = state.capture;
  return [
    heading('capture_heading'),
    state.stepUp ? el('p', { class: 'banner', id: 'step-up' }, L('step_up_banner', { modality: modalityName(c.modality) }), ' ', state.stepUp.reasons.map((r) => reason(state.lang, r)).join(' ')) : null,
    el('p', { class: 'prompt', id: 'prompt' }, L(c.prompt)),
    c.preview ? el('img', { id: 'preview', src: '/preview.mjpg', alt: L('preview_alt'), width: '480', height: '360' }) : el('div', { class: `icon icon-${c.modality}`, 'aria-hidden': 'true' }),
    el('p', { id: 'progress' }, L('attempt', { attempt: c.attempt, of: c.of })),
    el('progress', { id: 'progress-bar', max: String(c.of), value: String(c.attempt - 1), 'aria-label': L('attempt', { attempt: c.attempt, of: c.of }) }),
    el('p', { class: 'hint', id: 'retry-hint', role: 'status' }, retrying(c) ? L('retry_hint') : ''),
    counterButton(),
  ];
}

const retrying = (c) => Boolean(state.retry && state.retry.modality === c.modality);

// What makes a capture screen another screen (rebuilt); the rest (attempt, hint) is patched in place, so the live
// preview keeps its one stream and a finger on the counter button is not lost to a rebuild between two frames.
const captureShape = (v) => (v.screen === 'capture' && v.capture ? JSON.stringify([v.lang, v.capture.modality, v.capture.prompt, v.capture.preview, v.capture.factor, v.stepUp, v.role, v.error, v.warning]) : null);

function patchCapture() {
  const c = state.capture;
  const words = L('attempt', { attempt: c.attempt, of: c.of });
  $('progress').textContent = words;
  $('progress-bar').setAttribute('max', String(c.of));
  $('progress-bar').setAttribute('value', String(c.attempt - 1));
  $('progress-bar').setAttribute('aria-label', words);
  const hint = retrying(c) ? L('retry_hint') : '';
  if ($('retry-hint').textContent !== hint) $('retry-hint').textContent = hint;
}

function workingScreen() {
  return [heading('working_heading'), el('p', { class: 'lead', id: 'working', role: 'status' }, L(`working_${state.working ?? 'awaiting_verdict'}`)), el('div', { class: 'spinner', 'aria-hidden': 'true' })];
}

function eligibilityPanel(e) {
  if (!e) return null;
  return el(
    'section',
    { class: `eligibility ${e.answer}`, id: 'eligibility', 'aria-labelledby': 'elig-h' },
    el('h2', { id: 'elig-h' }, L('eligibility_heading'), ': ', L(`eligibility_${e.answer}`)),
    el('p', {}, L(`elig_${e.code}`)),
    e.payer ? el('p', { class: 'small' }, L('payer_plan', { payer: e.payer, plan: e.plan ?? '' })) : null,
  );
}

function overrideForm() {
  if (state.role !== 'pharmacist' || !state.subject) return null;
  const reasonSel = el('select', { id: 'override-reason' }, ['id_document_checked', 'biometric_unusable', 'person_declined_biometric', 'device_fault'].map((r) => el('option', { value: r }, L(`override_${r}`))));
  const staff = el('input', { id: 'override-staff', type: 'text', autocomplete: 'off', maxlength: '64' });
  return el(
    'form',
    { class: 'override', id: 'override', 'aria-labelledby': 'override-h', on: { submit: (e) => { e.preventDefault(); act('override', { reason: reasonSel.value, staff: staff.value }); } } },
    el('h2', { id: 'override-h' }, L('override_heading')),
    el('label', { for: 'override-reason' }, L('override_reason')),
    reasonSel,
    el('label', { for: 'override-staff' }, L('override_staff')),
    staff,
    el('button', { type: 'submit', class: 'secondary', id: 'override-submit' }, L('override_button')),
  );
}

function receiptLine(r) {
  if (state.role !== 'pharmacist' || !r) return null;
  return el('div', { class: 'small', id: 'receipt' }, r.receipt ? el('p', {}, L('receipt', { leaf: r.receipt.leafIndex, size: r.receipt.treeSize })) : null, r.attId ? el('p', {}, L('att_id', { id: r.attId })) : null);
}

function resultScreen() {
  const r = state.result;
  const lockedTime = r.lockedUntil ? new Date(r.lockedUntil * 1000).toLocaleTimeString(state.lang) : null;
  // A plain no_match carries no reason code: the screen still says why in words.
  const reasons = r.reasons.length === 0 && r.status === 'not_verified' ? ['no_match'] : r.reasons;
  return [
    el('h1', { id: 'screen-title', tabindex: '-1', class: `status status-${r.status}` }, L(`result_${r.status}`)),
    r.confirmedLater ? el('p', { id: 'confirmed-later' }, L('confirmed_later')) : null,
    reasons.length ? el('ul', { id: 'reasons', class: 'reasons' }, reasons.map((c) => el('li', {}, reason(state.lang, c)))) : null,
    lockedTime ? el('p', { id: 'locked-until' }, L('locked_until', { time: lockedTime })) : null,
    eligibilityPanel(r.eligibility),
    receiptLine(r),
    r.status !== 'verified' && r.status !== 'override' ? overrideForm() : null,
    el('div', { class: 'actions' }, button(L('done_button'), () => act('reset'), 'primary', { id: 'done' }), r.status === 'verified' || r.status === 'override' ? null : counterButton()),
  ];
}

function queuedScreen() {
  return [heading('queued_heading'), el('p', { class: 'lead', id: 'queued-text' }, L('queued_text')), receiptLine(state.result), el('div', { class: 'actions' }, button(L('done_button'), () => act('reset'), 'primary', { id: 'done' }))];
}

function counterScreen() {
  const r = state.result;
  return [
    heading('counter_heading'),
    el('p', { class: 'lead' }, L('counter_text')),
    r && r.reasons.length ? el('ul', { id: 'reasons', class: 'reasons' }, r.reasons.map((c) => el('li', {}, reason(state.lang, c)))) : null,
    receiptLine(r),
    overrideForm(),
    el('div', { class: 'actions' }, button(L('done_button'), () => act('reset'), 'primary', { id: 'done' })),
  ];
}

function deviceErrorScreen() {
  const m = state.device?.modality ?? 'fingerprint';
  return [heading('device_error_heading'), el('p', { class: 'lead', id: 'device-error' }, L('device_error_text', { modality: modalityName(m) })), overrideForm(), el('div', { class: 'actions' }, button(L('done_button'), () => act('reset'), 'primary', { id: 'done' }), counterButton())];
}

const SCREENS = { start: startScreen, consent: consentScreen, capture: captureScreen, working: workingScreen, result: resultScreen, queued: queuedScreen, counter: counterScreen, device_error: deviceErrorScreen };

function renderHealth() {
  const h = state.health;
  const item = (label, value, good) => el('li', { class: good ? 'good' : 'bad' }, el('span', {}, label), L('sep'), el('strong', {}, value));
  const list = [
    ...h.sensors.map((s) => item(L('health_sensor', { modality: modalityName(s.modality) }), L(s.available ? 'ok' : 'missing'), s.available)),
    item(L('health_tpm'), L(h.keyStore), h.keyStore === 'tpm'),
    item(L('health_broker'), L(h.broker === 'connected' ? 'ok' : 'offline'), h.broker === 'connected'),
    item(L('health_verifier'), L(h.verifier), h.verifier === 'ok'),
    item(L('health_outbox'), String(h.outbox), h.outbox === 0),
  ];
  $('health').replaceChildren(...list);
  $('health').setAttribute('aria-label', L('health'));
}

function renderWarning() {
  const d = $('dialog');
  if (countdown) clearInterval(countdown);
  countdown = null;
  if (!state.warning) return d.replaceChildren();
  const left = () => Math.max(0, Math.round((state.warning.deadline - Date.now()) / 1000));
  const text = el('p', { id: 'warning-text' }, L('warning_text', { seconds: left() }));
  const cont = button(L('continue_button'), () => act('continue'), 'primary', { id: 'continue' });
  d.replaceChildren(el('div', { class: 'backdrop' }, el('div', { role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'warning-h', 'aria-describedby': 'warning-text', class: 'warning', id: 'warning' }, el('h2', { id: 'warning-h' }, L('warning_heading')), text, cont)));
  countdown = setInterval(() => (text.textContent = L('warning_text', { seconds: left() })), 1000);
  cont.focus();
}

function render() {
  document.documentElement.lang = state.lang;
  document.title = L('title');
  $('brand').textContent = L('title');
  $('lang').textContent = L('switch_lang');
  // The accessible name starts with the visible text (WCAG 2.5.3), then says what it does.
  $('lang').setAttribute('aria-label', `${L('switch_lang')}: ${L('switch_lang_label')}`);
  $('lang').setAttribute('lang', state.lang === 'en' ? 'zh-Hans' : 'en');
  renderHealth();
  const { health, version, ...rest } = state;
  const key = JSON.stringify(rest);
  if (key === shownKey) return;
  const shape = captureShape(state);
  if (shape !== null && shownKey && captureShape(JSON.parse(shownKey)) === shape) {
    shownKey = key;
    return patchCapture();
  }
  const screenChanged = !shownKey || JSON.parse(shownKey).screen !== state.screen || JSON.parse(shownKey).lang !== state.lang;
  const hadWarning = shownKey && JSON.parse(shownKey).warning;
  shownKey = key;
  if (!state.error) showError('');
  // Same screen, new details (an error, another service picked): keep what was typed and where the focus was.
  const typed = $('subject')?.value;
  const activeId = document.activeElement?.id;
  const main = $('main');
  main.dataset.screen = state.screen;
  document.body.dataset.screen = state.screen;
  main.replaceChildren(...SCREENS[state.screen]().flat().filter(Boolean));
  if (state.error) showError(L(state.error));
  renderWarning();
  if (state.warning) return;
  if (!screenChanged && typed && $('subject')) $('subject').value = typed;
  if (!screenChanged && activeId && $(activeId) && !hadWarning) $(activeId).focus();
  else if (state.screen === 'start') $('subject').focus();
  else if (screenChanged || hadWarning) $('screen-title')?.focus();
}

$('lang').addEventListener('click', () => act('lang', { lang: state.lang === 'en' ? 'zh-Hans' : 'en' }));

const events = new EventSource('/events');
events.onmessage = (m) => {
  const next = JSON.parse(m.data);
  if (state && next.version < state.version) return;
  state = next;
  render();
  document.body.dataset.version = String(state.version);
};
