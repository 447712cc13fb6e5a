// Alerts for an employee who works in another window: a count in the tab title
// and, once they turn them on, browser notifications (browsers ask for the
// permission only after a click, hence the button) and a short tone made with
// WebAudio (off until switched on; the choice is kept in this browser).

/** Where this browser keeps the employee's choice of the alert sound. */
const SOUND_KEY = 'beeldbel.alertSound';
/** @type {AudioContext | null} */
let audio = null;

/** Whether the employee switched the alert sound on in this browser. */
export function soundOn() {
  try {
    return window.localStorage.getItem(SOUND_KEY) === 'on';
  } catch {
    return false; // storage refused (e.g. private mode): the sound stays off
  }
}

/** The page's audio, made (or woken) while the employee acts on the page. */
function wakeAudio() {
  if (!audio && 'AudioContext' in window) audio = new window.AudioContext();
  if (audio && audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

/**
 * Show ``toggle`` (a checkbox) with the kept choice; switching it on plays the
 * tone once, so the employee hears what it sounds like.
 * @param {HTMLInputElement | null} toggle
 */
export function offerSound(toggle) {
  if (!toggle || !('AudioContext' in window)) return;
  toggle.checked = soundOn();
  toggle.closest('[hidden]')?.removeAttribute('hidden');
  toggle.addEventListener('change', () => {
    try {
      window.localStorage.setItem(SOUND_KEY, toggle.checked ? 'on' : 'off');
    } catch {
      // not kept: it still holds on this page
    }
    if (toggle.checked) chime(true);
  });
  // a browser lets a page play sound once the employee has acted on it
  const wake = () => {
    if (soundOn()) wakeAudio();
  };
  window.addEventListener('pointerdown', wake, {once: true});
  window.addEventListener('keydown', wake, {once: true});
}

/**
 * A short two-note tone (about half a second, gentle onset), if the employee
 * switched the sound on.
 * @param {boolean} [preview] play it even before the choice is kept
 */
export function chime(preview = false) {
  if (!preview && !soundOn()) return;
  const context = wakeAudio();
  if (!context) return;
  const start = context.currentTime;
  /** @type {Array<[number, number]>} seconds after now, and pitch in Hz */
  const notes = [[0, 660], [0.18, 880]];
  for (const [offset, pitch] of notes) {
    const tone = context.createOscillator();
    const volume = context.createGain();
    tone.type = 'sine';
    tone.frequency.value = pitch;
    volume.gain.setValueAtTime(0.0001, start + offset);
    volume.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    volume.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.3);
    tone.connect(volume).connect(context.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.32);
  }
}

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
