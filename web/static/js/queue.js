// Progressive enhancement for the staff console; every page works without it.
// On the queue page:
// - listens to /staff/queue/events (Server-Sent Events) and swaps in the fresh
//   table rows the server rendered, keeping keyboard focus where it was;
// - announces "N new requests" in the polite live region #queue-status, and
//   alerts the employee (tab title, notification, the sound if switched on);
// - keeps the waiting times current.
// On the request page: moves focus to the error summary after a failed form.

import { chime, countInTitle, notify, offerNotifications, offerSound } from './alerts.js';
import { onJsonEvent } from './server_events.js';

const WAITING_REFRESH_MS = 30000;
const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]';

/**
 * @param {string} template text with {name} placeholders
 * @param {Record<string, string | number>} params
 */
function format(template, params) {
  return template.replace(/\{(\w+)\}/g, (match, key) =>
    key in params ? String(params[key]) : match,
  );
}

/**
 * Readable duration in the page's language, as the server writes it.
 * @param {DOMStringMap} t the table's data-t-* texts
 * @param {number} seconds
 */
function duration(t, seconds) {
  const minutes = Math.floor(seconds / 60);
  if (minutes < 1) return t.tUnderMinute || '';
  if (minutes < 60) return format(t.tMinutes || '', { m: minutes });
  if (minutes < 1440) {
    return format(t.tHours || '', { h: Math.floor(minutes / 60), m: minutes % 60 });
  }
  return format(t.tDays || '', {
    d: Math.floor(minutes / 1440),
    h: Math.floor((minutes % 1440) / 60),
  });
}

/** @param {HTMLTableElement} table */
function refreshWaiting(table) {
  const now = Date.now();
  table.querySelectorAll('time.waiting').forEach((el) => {
    const due = Date.parse(el.getAttribute('datetime') || '');
    if (Number.isNaN(due)) return;
    const seconds = (now - due) / 1000;
    el.textContent =
      seconds < 0
        ? format(table.dataset.tDueIn || '', { time: duration(table.dataset, -seconds) })
        : duration(table.dataset, seconds);
  });
}

/**
 * Where focus is inside the table body: the row's reference and the position
 * of the focused control among the row's controls.
 * @param {HTMLTableSectionElement} body
 * @returns {{ reference: string, index: number } | null}
 */
function focusedSpot(body) {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !body.contains(active)) return null;
  const row = active.closest('tr');
  if (!row) return null;
  const controls = Array.from(row.querySelectorAll(FOCUSABLE));
  return { reference: row.dataset.reference || '', index: controls.indexOf(active) };
}

/**
 * @param {HTMLTableSectionElement} body
 * @param {{ reference: string, index: number }} spot
 * @param {HTMLElement} fallback focused when the row has gone
 */
function restoreFocus(body, spot, fallback) {
  const row = Array.from(body.rows).find((r) => r.dataset.reference === spot.reference);
  if (row) {
    const controls = Array.from(row.querySelectorAll(FOCUSABLE));
    const target = controls[Math.max(0, Math.min(spot.index, controls.length - 1))];
    if (target instanceof HTMLElement) {
      target.focus();
      return;
    }
  }
  fallback.focus();
}

/**
 * Replace the rows with the server's fragment, parsed as an inert document:
 * no innerHTML on the live page, and citizens' text stays escaped as sent.
 * @param {HTMLTableSectionElement} body
 * @param {string} html
 */
function replaceRows(body, html) {
  const parsed = new DOMParser().parseFromString(
    `<table><tbody>${html}</tbody></table>`,
    'text/html',
  );
  const fresh = parsed.querySelector('tbody');
  if (!fresh) return;
  body.replaceChildren(
    ...Array.from(fresh.children, (row) => document.importNode(row, true)),
  );
}

/**
 * The tab title starts with the number of requests nobody has picked up, so an
 * employee working in another window sees that a citizen is waiting.
 * @param {HTMLTableSectionElement} body
 * @param {string} title the page's own title
 */
function countNewInTitle(body, title) {
  countInTitle(body.querySelectorAll('tr[data-state="new"]').length, title);
}

/** @param {HTMLTableElement} table */
function followQueue(table) {
  const body = table.tBodies[0];
  const status = document.getElementById('queue-status');
  const region = table.closest('.table-scroll');
  const url = table.dataset.events;
  if (!body || !status || !(region instanceof HTMLElement) || !url) return;
  const t = table.dataset;
  /** @param {HTMLTableSectionElement} b */
  const referencesIn = (b) =>
    new Set(Array.from(b.rows, (r) => r.dataset.reference || '').filter(Boolean));
  let known = referencesIn(body);
  let offline = false;
  const title = document.title;
  countNewInTitle(body, title);
  const say = (/** @type {string} */ text) => {
    status.textContent = text;
  };

  const source = new EventSource(url);
  source.addEventListener('open', () => {
    if (offline) say('');
    offline = false;
  });
  onJsonEvent(source, 'rows', (data) => {
    const spot = focusedSpot(body);
    replaceRows(body, String(data.html));
    if (spot) restoreFocus(body, spot, region);
    refreshWaiting(table);
    countNewInTitle(body, title);
    const now = referencesIn(body);
    const added = Array.from(now).filter((ref) => !known.has(ref)).length;
    known = now;
    const news = added === 1 ? t.tNewOne || '' : format(t.tNew || '', { n: added });
    if (added > 0) {
      say(news);
      notify(news, 'queue');
      chime();
    }
  });
  source.addEventListener('signed_out', () => {
    source.close();
    say(t.tSignedOut || '');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      say(t.tSignedOut || '');
    } else if (!offline) {
      offline = true;
      say(t.tOffline || '');
    }
  });
  window.setInterval(() => refreshWaiting(table), WAITING_REFRESH_MS);
}

function main() {
  const table = document.getElementById('queue');
  if (table instanceof HTMLTableElement) followQueue(table);
  const button = document.getElementById('enable-notifications');
  offerNotifications(
    button instanceof HTMLButtonElement ? button : null,
    document.getElementById('queue-status'),
    { on: table?.dataset.tNotificationsOn || '', blocked: table?.dataset.tNotificationsBlocked || '' },
  );
  const sound = document.getElementById('alert-sound');
  offerSound(sound instanceof HTMLInputElement ? sound : null);
  const summary = document.querySelector('[data-error-summary]');
  if (summary instanceof HTMLElement) summary.focus();
}

main();
