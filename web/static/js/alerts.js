// Alerts for an employee who works in another window: a count in the tab title
// and, once they turn them on, browser notifications. Browsers ask for the
// permission only after a click, hence the button.

/**
 * The page's title with ``count`` in front when there is something waiting.
 * @param {number} count
 * @param {string} title the page's own title
 */
export function countInTitle(count, title) {
  document.title = count > 0 ? `(${count}) ${title}` : title;
}

/**
 * Show ``button`` while notifications can still be turned on; a click asks the
 * browser, and ``status`` says what came of it.
 * @param {HTMLButtonElement | null} button
 * @param {HTMLElement | null} status
 * @param {{on: string, blocked: string}} texts
 */
export function offerNotifications(button, status, texts) {
  if (!button || !('Notification' in window)) return;
  const show = () => {
    button.hidden = window.Notification.permission !== 'default';
  };
  show();
  button.addEventListener('click', async () => {
    const answer = await window.Notification.requestPermission();
    show();
    if (status) status.textContent = answer === 'granted' ? texts.on : texts.blocked;
  });
}

/**
 * A browser notification, when the employee allowed them.
 * @param {string} text
 * @param {string} tag one notification per kind of news replaces the last
 */
export function notify(text, tag) {
  if (!('Notification' in window) || window.Notification.permission !== 'granted') return;
  try {
    new window.Notification(text, {tag});
  } catch {
    // e.g. a browser that allows notifications only from a service worker: the
    // title count still tells
  }
}
