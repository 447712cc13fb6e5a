// @ts-check
/**
 * What the call pages' modules share about the page: its data-* attributes, its
 * texts (#call-strings, in the page's language), the status line and the notice,
 * and JSON POSTs with the CSRF header.
 */
import {CallError} from './protocol.js';

export class CallPage {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
    this.root = /** @type {HTMLElement} */ (doc.getElementById('call-app'));
    this.data = this.root.dataset;
    /** @type {Record<string, string>} */
    this.strings = JSON.parse(doc.getElementById('call-strings')?.textContent || '{}');
  }

  /**
   * A text with its {placeholders} filled in.
   * @param {string} name
   * @param {Record<string, string>} [params]
   */
  text(name, params = {}) {
    return (this.strings[name] || name).replace(/\{(\w+)\}/g, (_, key) => params[key] ?? '');
  }

  /** @param {string} role agent, citizen, interpreter or self */
  roleLabel(role) {
    return this.strings[`role_${role}`] || role;
  }

  /** @param {string} id */
  $(id) {
    return /** @type {HTMLElement} */ (this.doc.getElementById(id));
  }

  /** Say it in the status line (role=status, aria-live=polite). @param {string} message */
  announce(message) {
    this.$('call-status').textContent = message;
  }

  /** Show it in the notice (role=alert). @param {string} message */
  notice(message) {
    const box = this.$('call-notice');
    box.textContent = message;
    box.hidden = false;
  }

  /**
   * POST JSON with the CSRF header; the parsed reply, or null for 204.
   * @param {string} url
   * @param {unknown} body
   * @param {boolean} [keepalive] let it finish while the page unloads
   */
  async post(url, body, keepalive = false) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      keepalive,
      headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': this.data.csrf || ''},
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new CallError('http', `HTTP ${response.status}`, response.status);
    return response.status === 204 ? null : response.json().catch(() => null);
  }
}
