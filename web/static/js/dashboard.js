// @ts-check
// Progressive enhancement for the pilot dashboard; the page works without it.
// - follows /staff/dashboard/live (Server-Sent Events) and swaps in the live
//   part the server re-rendered, keeping keyboard focus on the same region;
// - picks "Own period" when a date is typed, so the dates are used.

import { onJsonEvent } from './server_events.js';

/**
 * Replace the children of `box` with the server's fragment, parsed as an inert
 * document (no innerHTML on the live page).
 * @param {HTMLElement} box
 * @param {string} html
 */
function replaceLive(box, html) {
  const parsed = new DOMParser().parseFromString(`<div>${html}</div>`, 'text/html');
  const fresh = parsed.body.firstElementChild;
  if (!fresh) return;
  const focused = document.activeElement;
  const spot = focused instanceof HTMLElement && box.contains(focused)
    ? focused.getAttribute('aria-labelledby')
    : null;
  box.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
  if (spot) {
    const again = box.querySelector(`[aria-labelledby="${CSS.escape(spot)}"]`);
    if (again instanceof HTMLElement) again.focus();
  }
}

/** @param {HTMLElement} box */
function followLive(box) {
  const url = box.dataset.events;
  const status = document.getElementById('live-status');
  if (!url || !status) return;
  const source = new EventSource(url);
  onJsonEvent(source, 'live', (data) => {
    status.textContent = '';
    replaceLive(box, String(data.html));
  });
  source.addEventListener('error', () => {
    // the stream ends every few minutes and the browser reconnects: only a
    // closed stream (signed out, server gone) is worth saying
    if (source.readyState === EventSource.CLOSED) status.textContent = box.dataset.tOffline || '';
  });
}

function pickRangeOnDates() {
  const range = document.getElementById('period-range');
  for (const id of ['period-from', 'period-to']) {
    document.getElementById(id)?.addEventListener('input', () => {
      if (range instanceof HTMLInputElement) range.checked = true;
    });
  }
}

const live = document.getElementById('live');
if (live) followLive(live);
pickRangeOnDates();
