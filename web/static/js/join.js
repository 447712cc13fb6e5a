// @ts-check
// Opens a call link: takes the single-use token from the address's fragment,
// removes it from the address bar and history at once, and exchanges it for
// this browser's call session. The token never goes into a URL the server sees.
import {reportClientError, reportUncaught} from './client_errors.js';

reportUncaught('join');

/**
 * The text shown for an error code (from the page, in the page's language).
 * @param {Document} doc
 * @param {string} code
 * @returns {string}
 */
function messageFor(doc, code) {
  const item = doc.querySelector(`#join-messages [data-code="${code}"]`)
    || doc.querySelector('#join-messages [data-code="error"]');
  return item ? item.textContent || '' : '';
}

/**
 * @param {Document} doc
 * @param {string} code
 */
function showError(doc, code) {
  const status = doc.getElementById('join-status');
  const box = doc.getElementById('join-error');
  const text = doc.getElementById('join-error-text');
  if (status) {
    status.hidden = true;
  }
  if (box instanceof HTMLElement && text) {
    text.textContent = messageFor(doc, code);
    box.hidden = false;
    box.focus();
  }
}

/**
 * The token in ``#t=<token>``, or null; the fragment is removed either way.
 * @param {Location} location
 * @param {History} history
 * @returns {string | null}
 */
function takeToken(location, history) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('t');
  if (location.hash) {
    history.replaceState(null, '', location.pathname + location.search);
  }
  return token;
}

/**
 * @param {Document} doc
 * @param {string} token
 */
async function openLink(doc, token) {
  const root = doc.getElementById('join');
  if (!(root instanceof HTMLElement)) {
    return;
  }
  const status = doc.getElementById('join-status');
  if (status) {
    status.hidden = false;
  }
  let response;
  try {
    response = await fetch(root.dataset.openUrl || '/gesprek/openen', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        'X-CSRF-Token': root.dataset.csrf || '',
      },
      body: JSON.stringify({ token }),
    });
  } catch {
    reportClientError('join', 'report', 'link_open_failed');
    showError(doc, 'network');
    return;
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    reportClientError('join', 'message', 'bad_reply');
    body = null;
  }
  if (response.ok && body && typeof body.next === 'string' && body.next.startsWith('/')) {
    window.location.assign(body.next);
    return;
  }
  const code = body && body.error && typeof body.error.code === 'string' ? body.error.code : 'error';
  showError(doc, code);
}

const token = takeToken(window.location, window.history);
if (token) {
  openLink(document, token);
} else if (!document.getElementById('join-continue')) {
  showError(document, 'no_token');
}
