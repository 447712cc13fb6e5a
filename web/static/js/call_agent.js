// @ts-check
/**
 * The employee's side panel on the call page: who is in the lobby and the call
 * (admit, remove), the citizen's progress (SSE), the join link (a new one that
 * replaces it, sent or copied), the interpreter's invitation, the waiting-room
 * message, ending the call (the control bar's button) and switching to phone,
 * and once the call is over the request closed in one step.
 */

import {chime, countInTitle, notify} from './alerts.js';
import {onJsonEvent} from './server_events.js';
import {CallError} from './protocol.js';
import {reportClientError} from './client_errors.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./protocol.js').Participant} Participant */
/** @typedef {import('./call_ui.js').CallPage} CallPage */

const EVENTS = ['progress', 'link_sent', 'link_failed', 'link_opened', 'ended'];
/** The outcome of a call whose media node stopped sending heartbeats. */
const MEDIA_LOST = 'media_lost';
/** The outcome of a call the employee moved to the phone (the page goes on). */
const SWITCHED = 'switched_to_phone';

/**
 * Whether a refused action hit the call's limit on e-mails and texts (429).
 * @param {unknown} error
 */
function limited(error) {
  return error instanceof CallError && error.status === 429;
}

export class AgentPanel {
  /**
   * @param {CallPage} page
   * @param {Connection} connection
   * @param {() => Promise<unknown>} beforeFinish  e.g. the last quality report
   */
  constructor(page, connection, beforeFinish) {
    this.page = page;
    this.connection = connection;
    this.beforeFinish = beforeFinish;
    /** @type {Set<string>} participants let in; let in again after a reconnect */
    this.admitted = new Set();
    /** Set while the page goes to the control plane's next page. */
    this.leaving = false;
    /** The page's own title, before a count goes in front. */
    this.title = page.doc.title;
  }

  setUp() {
    const {page} = this;
    for (const time of page.doc.querySelectorAll('#progress-list time')) {
      this.localTime(/** @type {HTMLTimeElement} */ (time));
    }
    if (page.data.eventsUrl) {
      const events = new EventSource(page.data.eventsUrl);
      for (const kind of EVENTS) {
        onJsonEvent(events, kind, (event) => {
          const lost = kind === 'ended' && event.outcome === MEDIA_LOST;
          this.addProgress(lost ? MEDIA_LOST : kind, event);
          // the control plane ended the call: stop reconnecting to a dead node
          if (lost) this.connection.finish(MEDIA_LOST, true);
          // however it ended (here, in another tab, the media node lost), the
          // request is closed next
          if (kind === 'ended' && event.outcome !== SWITCHED) this.offerClose();
        });
      }
    }
    for (const copy of page.doc.querySelectorAll('button[data-copy]')) {
      copy.addEventListener('click', () => this.copyFrom(/** @type {HTMLElement} */ (copy).dataset.copy || ''));
    }
    this.onSubmit('interpreter-form', () => this.inviteInterpreter());
    this.onSubmit('new-link-form', () => this.newLink());
    this.onSubmit('close-form', () => this.closeRequest());
    page.doc.getElementById('lobby-message-form')?.addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendLobbyMessage();
    });
    page.doc.getElementById('switch-form')?.addEventListener('submit', (event) => {
      event.preventDefault();
      const reason = /** @type {HTMLSelectElement} */ (page.$('switch-reason')).value;
      this.finishAs(page.data.switchUrl || '', {reason});
    });
  }

  /** @param {Participant[]} participants */
  render(participants) {
    const {page, connection} = this;
    const list = page.$('participants');
    list.replaceChildren();
    const others = participants.filter((p) => p.participant_id !== connection.participantId);
    for (const p of others) {
      if (p.state === 'lobby' && this.admitted.has(p.participant_id)) {
        connection.admit(p.participant_id); // back after a reconnect: let in again
      }
      list.append(this.participantItem(p));
    }
    if (!others.length) {
      const empty = page.doc.createElement('li');
      empty.className = 'hint';
      empty.textContent = page.text('no_one');
      list.append(empty);
    }
    const waiting = others.find((p) => p.state === 'lobby' && !this.admitted.has(p.participant_id));
    if (waiting) page.announce(page.text('waiting', {who: page.roleLabel(waiting.role)}));
  }

  /** @param {Participant} p */
  participantItem(p) {
    const {page, connection} = this;
    const item = page.doc.createElement('li');
    item.dataset.participant = p.participant_id;
    item.dataset.state = p.state;
    const who = page.roleLabel(p.role);
    const name = page.doc.createElement('span');
    name.textContent = `${who} (${page.text(p.state === 'lobby' ? 'progress_waiting' : 'progress_in_call')})`;
    item.append(name);
    if (p.state === 'lobby') {
      item.append(this.button('admit', page.text('admit'), who, () => {
        this.admitted.add(p.participant_id);
        connection.admit(p.participant_id);
        page.announce(page.text('admitted', {who}));
      }));
    }
    item.append(this.button('remove secondary', page.text('remove'), who, () => {
      this.admitted.delete(p.participant_id);
      connection.remove(p.participant_id);
    }));
    return item;
  }

  /**
   * A button whose accessible name says whom it acts on, e.g. "Binnenlaten Burger".
   * @param {string} className
   * @param {string} label
   * @param {string} who
   * @param {() => void} action
   */
  button(className, label, who, action) {
    const element = this.page.doc.createElement('button');
    element.type = 'button';
    element.className = className;
    const hidden = this.page.doc.createElement('span');
    hidden.className = 'visually-hidden';
    hidden.textContent = ` ${who}`;
    element.append(this.page.doc.createTextNode(label), hidden);
    element.addEventListener('click', action);
    return element;
  }

  /** @param {HTMLTimeElement} time */
  localTime(time) {
    const at = new Date(time.dateTime);
    if (!Number.isNaN(at.getTime())) {
      // the desk's clock (as the queue and the server-rendered times), not the browser's
      const timeZone = this.page.data.timeZone || undefined;
      time.textContent = at.toLocaleTimeString(this.page.data.lang || 'nl', {hour: '2-digit', minute: '2-digit', timeZone});
    }
  }

  /** @param {string} kind @param {any} event */
  addProgress(kind, event) {
    const {page} = this;
    const step = kind === 'progress' ? event.step : kind;
    const failed = (event.failed || []).map((/** @type {string} */ code) => page.text(`failed_${code}`)).join(', ');
    const item = page.doc.createElement('li');
    item.dataset.step = step;
    const time = page.doc.createElement('time');
    time.dateTime = event.at || new Date().toISOString();
    this.localTime(time);
    item.append(time, page.doc.createTextNode(` ${page.text(`progress_${step}`, {failed})}`));
    page.$('progress-list').append(item);
    // a citizen in the waiting room needs the employee, who may be in another window
    if (step === 'waiting') {
      countInTitle(1, this.title);
      notify(page.text('lobby_alert'), 'lobby');
      chime();
    } else if (['in_call', 'left', 'ended', MEDIA_LOST].includes(step)) {
      countInTitle(0, this.title);
    }
  }

  /** @param {string} id */
  async copyFrom(id) {
    const input = /** @type {HTMLInputElement} */ (this.page.$(id));
    try {
      await navigator.clipboard.writeText(input.value);
      this.page.announce(this.page.text('copied'));
    } catch {
      reportClientError('staff_call', 'action', 'copy_failed');
      input.focus();
      input.select();
      this.page.notice(this.page.text('copy_failed'));
    }
  }

  /** A new interpreter link, sent to the address or number typed, if any. */
  async inviteInterpreter() {
    const {page} = this;
    const panel = page.$('interpreter-panel');
    const field = (/** @type {string} */ id) => (/** @type {HTMLInputElement} */ (page.$(id))).value.trim();
    const body = {email: field('interpreter-email'), phone: field('interpreter-phone')};
    let reply;
    try {
      reply = await page.post(page.data.interpreterUrl || '', body);
    } catch (error) {
      const invalid = error instanceof CallError && error.status === 422;
      if (limited(error)) {
        page.notice(page.text('messages_limited'));
        return;
      }
      if (!invalid) reportClientError('staff_call', 'action', 'interpreter_failed');
      page.notice(invalid ? panel.dataset.tInvalid || '' : page.text('action_failed'));
      return;
    }
    const input = /** @type {HTMLInputElement} */ (page.$('interpreter-link'));
    input.value = reply.link;
    page.$('interpreter-box').hidden = false;
    if (reply.sent && reply.sent.length) page.announce(panel.dataset.tSent || '');
    this.tellFailed(panel, reply.failed);
    input.focus();
    input.select();
  }

  async sendLobbyMessage() {
    const {page} = this;
    const input = /** @type {HTMLTextAreaElement} */ (page.$('lobby-message-input'));
    try {
      await page.post(page.data.messageUrl || '', {text: input.value.trim()});
      page.announce(page.text('message_sent'));
    } catch {
      reportClientError('staff_call', 'action', 'lobby_message_failed');
      page.notice(page.text('action_failed'));
    }
  }

  /** @param {string} id @param {() => void} action */
  onSubmit(id, action) {
    this.page.doc.getElementById(id)?.addEventListener('submit', (event) => {
      event.preventDefault();
      action();
    });
  }

  /**
   * A new citizen link, sent the ways ticked; the previous one stops working.
   */
  async newLink() {
    const {page} = this;
    const panel = page.$('link-panel');
    const ticked = (/** @type {string} */ way) => (/** @type {HTMLInputElement | null} */ (
      page.doc.getElementById(`new-link-${way}`)))?.checked === true;
    let reply;
    try {
      reply = await page.post(page.data.linkUrl || '', {email: ticked('email'), sms: ticked('sms')});
    } catch (error) {
      if (limited(error)) {
        page.notice(page.text('messages_limited'));
        return;
      }
      reportClientError('staff_call', 'action', 'action_failed');
      page.notice(page.text('action_failed'));
      return;
    }
    const input = /** @type {HTMLInputElement} */ (page.$('join-link'));
    input.value = reply.link;
    page.$('join-link-box').hidden = false;
    page.announce(panel.dataset.tMade || '');
    this.tellFailed(panel, reply.failed);
  }

  /**
   * Say which deliveries failed, in the panel's words.
   * @param {HTMLElement} panel @param {string[]} failed
   */
  tellFailed(panel, failed) {
    if (!failed || !failed.length) return;
    const via = failed.map((way) => panel.dataset[way === 'sms' ? 'tSms' : 'tEmail'] || way).join(', ');
    this.page.notice((panel.dataset.tFailed || '').replace('{via}', via));
  }

  /** End the call for everyone; the page stays, to close the request. */
  async endCall() {
    const {page} = this;
    this.leaving = true;
    await this.beforeFinish();
    try {
      await page.post(page.data.endUrl || '', {});
    } catch {
      reportClientError('staff_call', 'action', 'end_failed');
      this.leaving = false;
      page.notice(page.text('action_failed'));
      return;
    }
    this.connection.finish('ended');
    this.offerClose();
  }

  /** Once the call is over: the one-step close, or the survey when there is none. */
  offerClose() {
    const panel = this.page.doc.getElementById('close-panel');
    if (!panel) {
      if (this.leaving && this.page.data.surveyUrl) window.location.assign(this.page.data.surveyUrl);
      return;
    }
    if (!panel.hidden) return;
    this.leaving = true; // the employee goes where closing leads, not on by itself
    panel.hidden = false;
    // after the end screen took focus: the next step is here
    window.setTimeout(() => panel.focus(), 0);
  }

  async closeRequest() {
    const {page} = this;
    const chosen = /** @type {HTMLInputElement | null} */ (
      page.doc.querySelector('#close-form input[name="result"]:checked'));
    const error = page.$('close-error');
    const choices = page.$('close-choices');
    if (!chosen) {
      error.hidden = false;
      choices.setAttribute('aria-describedby', 'close-error close-hint');
      /** @type {HTMLInputElement | null} */ (page.doc.querySelector('#close-form input'))?.focus();
      return;
    }
    error.hidden = true;
    choices.setAttribute('aria-describedby', 'close-hint');
    let reply;
    try {
      reply = await page.post(page.data.closeUrl || '', {result: chosen.value});
    } catch {
      reportClientError('staff_call', 'action', 'action_failed');
      page.notice(page.text('action_failed'));
      return;
    }
    const next = reply && typeof reply.next === 'string' && reply.next.startsWith('/') ? reply.next : page.data.surveyUrl;
    if (next) window.location.assign(next);
  }

  /**
   * End the call through the control plane, then go where it says.
   * @param {string} url
   * @param {unknown} body
   */
  async finishAs(url, body) {
    const {page} = this;
    this.leaving = true;
    await this.beforeFinish();
    let reply;
    try {
      reply = await page.post(url, body);
    } catch {
      reportClientError('staff_call', 'action', 'end_failed');
      this.leaving = false;
      page.notice(page.text('action_failed'));
      return;
    }
    this.connection.close();
    const next = reply && typeof reply.next === 'string' && reply.next.startsWith('/') ? reply.next : page.data.surveyUrl;
    if (next) window.location.assign(next);
  }
}
