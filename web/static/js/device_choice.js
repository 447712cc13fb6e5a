// @ts-check
/**
 * The devices and join options chosen on the device check, handed to the call
 * page through sessionStorage (this tab, this visit only). No DOM code here.
 */

/** sessionStorage key of the choice (JSON). */
export const DEVICE_CHOICE_KEY = 'beeldbel-devices';

/**
 * A device id is null for "the browser's default".
 * @typedef {object} DeviceChoice
 * @property {string | null} videoInput  camera deviceId
 * @property {string | null} audioInput  microphone deviceId
 * @property {string | null} audioOutput  speaker deviceId (setSinkId)
 * @property {boolean} cameraOff  join with the camera off
 * @property {boolean} muted  join with the microphone off
 */

/** @returns {DeviceChoice} */
export function defaultChoice() {
  return {videoInput: null, audioInput: null, audioOutput: null, cameraOff: false, muted: false};
}

/** @param {unknown} value */
function deviceId(value) {
  return typeof value === 'string' && value !== '' && value.length <= 512 ? value : null;
}

/**
 * The choice stored as ``raw``; defaults for what is absent or malformed.
 * @param {string | null} raw
 * @returns {DeviceChoice}
 */
export function parseChoice(raw) {
  /** @type {unknown} */
  let parsed = null;
  try {
    parsed = raw ? JSON.parse(raw) : null;
  } catch {
    parsed = null; // malformed: the defaults
  }
  const choice = defaultChoice();
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return choice;
  const stored = /** @type {Record<string, unknown>} */ (parsed);
  return {
    videoInput: deviceId(stored.videoInput),
    audioInput: deviceId(stored.audioInput),
    audioOutput: deviceId(stored.audioOutput),
    cameraOff: stored.cameraOff === true,
    muted: stored.muted === true,
  };
}

/**
 * The choice made on the device check (defaults when none, or unreadable).
 * @param {Storage | null} [storage] sessionStorage unless given
 * @returns {DeviceChoice}
 */
export function loadChoice(storage) {
  try {
    return parseChoice((storage ?? window.sessionStorage).getItem(DEVICE_CHOICE_KEY));
  } catch {
    return defaultChoice(); // storage blocked (privacy settings): the defaults
  }
}

/**
 * Remember the choice for this tab; false when the storage refused it.
 * @param {Partial<DeviceChoice>} choice  merged into what is stored
 * @param {Storage | null} [storage] sessionStorage unless given
 * @returns {boolean}
 */
export function saveChoice(choice, storage) {
  try {
    const store = storage ?? window.sessionStorage;
    const merged = parseChoice(JSON.stringify({...loadChoice(store), ...choice}));
    store.setItem(DEVICE_CHOICE_KEY, JSON.stringify(merged));
    return true;
  } catch {
    return false;
  }
}
