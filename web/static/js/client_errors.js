// @ts-check
/**
 * Report a failure a page's script would otherwise swallow, so it leaves a
 * trace: POST /gesprek/fout {page, kind, code} (docs/protocol.md). Only codes
 * from the control plane's fixed lists (controlplane/calls/client_errors.py) are
 * taken; never put text, a URL or a name in them. Reporting never throws and
 * never waits the caller: a report that fails is dropped.
 */

/** The control plane's endpoint for client error reports. */
export const CLIENT_ERRORS_URL = '/gesprek/fout';

/** @typedef {'join'|'device_check'|'call'|'staff_call'|'queue'|'request'} ErrorPage */
/**
 * report: a POST to the control plane that did not arrive; media: camera,
 * microphone, speaker, playing, Web Audio; connection: token, media server, ICE,
 * polls, stats; action: something the person asked for; message: a reply that
 * could not be read; storage: sessionStorage; script: anything else.
 * @typedef {'report'|'media'|'connection'|'action'|'message'|'storage'|'script'} ErrorKind
 */

/** The same page, kind and code once is enough. */
const sent = new Set();

/**
 * The page's CSRF token: a data-csrf attribute (call pages, join page) or a
 * form's csrf_token field (staff pages).
 * @param {Document} doc
 */
function csrfToken(doc) {
  const holder = /** @type {HTMLElement | null} */ (doc.querySelector('[data-csrf]'));
  if (holder?.dataset.csrf) return holder.dataset.csrf;
  const field = /** @type {HTMLInputElement | null} */ (doc.querySelector('input[name="csrf_token"]'));
  return field?.value || '';
}

/**
 * Tell the control plane that something failed (once per page, kind and code).
 * @param {ErrorPage} page
 * @param {ErrorKind} kind
 * @param {string} code  one of the codes of this kind (see CODES in client_errors.py)
 * @returns {Promise<void>} settles when sent (or dropped); never rejects
 */
export function reportClientError(page, kind, code) {
  const key = `${page} ${kind} ${code}`;
  if (sent.has(key)) return Promise.resolve();
  sent.add(key);
  try {
    return fetch(CLIENT_ERRORS_URL, {
      method: 'POST',
      credentials: 'same-origin',
      keepalive: true, // like sendBeacon: it finishes while the page unloads
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken(document)},
      body: JSON.stringify({page, kind, code}),
    }).then(() => undefined, () => undefined);
  } catch {
    return Promise.resolve(); // no fetch at all: nothing more to do
  }
}

/**
 * The code for a getUserMedia (or setSinkId) failure, from the DOMException's name.
 * @param {unknown} error
 * @returns {'permission_denied'|'device_not_found'|'device_in_use'|'media_failed'}
 */
export function mediaErrorCode(error) {
  const name = error instanceof Error ? error.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'permission_denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'device_not_found';
  if (name === 'NotReadableError' || name === 'AbortError') return 'device_in_use';
  return 'media_failed';
}

/**
 * Report what nothing caught on this page (script/unexpected, once): an
 * exception thrown in a callback, a promise rejected with no handler.
 * @param {ErrorPage} page
 */
export function reportUncaught(page) {
  const report = () => reportClientError(page, 'script', 'unexpected');
  window.addEventListener('error', report);
  window.addEventListener('unhandledrejection', report);
}
