// @ts-check
/**
 * The device check before a call: camera preview (mirrored, as the call's
 * self-view), microphone level, a test tone ("did you hear it?"), pickers for
 * camera, microphone and speaker, "join with the camera off" and "join muted",
 * help for a blocked permission in this browser, and a connection check (the
 * media server's WebSocket opens; with TURN configured, relay candidates are
 * gathered). The result goes to the control plane (progress-url), so the
 * employee sees it; the choices go to the call page (device_choice.js); "join"
 * always stays available. Every control starts disabled in the HTML and is
 * enabled here once it works; what fails is reported (client_errors.js).
 */
import {JOIN_CLICKED_KEY, fetchToken} from './protocol.js';
import {CallPage} from './call_ui.js';
import {loadChoice, saveChoice} from './device_choice.js';
import {mediaErrorCode, reportClientError, reportUncaught} from './client_errors.js';

reportUncaught('device_check');
const page = new CallPage(document);
const {data} = page;
const $ = page.$.bind(page);
const text = page.text.bind(page);
/** @type {Record<string, string>} */
const deviceStrings = JSON.parse($('device-strings').textContent || '{}');

/** @param {import('./client_errors.js').ErrorKind} kind @param {string} code */
const report = (kind, code) => reportClientError('device_check', kind, code);

/** @type {Record<string, boolean | null>} null while not known */
const results = {camera: null, microphone: null, speaker: null, connection: null};

let choice = loadChoice();

/** @param {Partial<import('./device_choice.js').DeviceChoice>} change */
function remember(change) {
  choice = {...choice, ...change};
  if (!saveChoice(change)) report('storage', 'storage_failed');
}

/**
 * @param {'camera'|'microphone'|'speaker'|'connection'} check
 * @param {boolean} ok
 */
function setResult(check, ok) {
  results[check] = ok;
  const label = $(`${check}-result`);
  label.textContent = `: ${ok ? text('ok') : text('failed_item')}`;
  label.dataset.ok = String(ok);
  summarize();
}

/** Which browser's help to show for a blocked permission. */
export function browserFamily(userAgent = navigator.userAgent) {
  if (/firefox|fxios/i.test(userAgent)) return 'firefox';
  if (/iphone|ipad|ipod/i.test(userAgent) || (/safari/i.test(userAgent) && !/chrome|chromium|crios|android/i.test(userAgent))) {
    return 'safari';
  }
  if (/chrome|chromium|crios|edg/i.test(userAgent)) return 'chrome';
  return 'other';
}

function showPermissionHelp() {
  const help = $('permission-help');
  const family = browserFamily();
  for (const item of help.querySelectorAll('[data-browser]')) {
    /** @type {HTMLElement} */ (item).hidden = /** @type {HTMLElement} */ (item).dataset.browser !== family;
  }
  help.hidden = false;
  help.focus(); // the one thing to do now: say it first
}

// --- camera and microphone ----------------------------------------------

/**
 * The stream on the preview and the meter, and how to stop its meter.
 * @type {{stream: MediaStream | null, stopMeter: () => void}}
 */
const live = {stream: null, stopMeter: () => {}};

/**
 * Constraints for the chosen devices (`exact`: Chromium takes an `ideal`
 * microphone as a hint and stays on the default one).
 * @returns {{video: boolean | MediaTrackConstraints, audio: boolean | MediaTrackConstraints}}
 */
function constraints() {
  /** @param {string | null} id */
  const one = (id) => (id ? {deviceId: {exact: id}} : true);
  return {video: one(choice.videoInput), audio: one(choice.audioInput)};
}

/**
 * The first stream that works: the chosen devices, else the defaults; both,
 * else sound only, else picture only.
 */
async function openStream() {
  let wanted = constraints();
  try {
    return await navigator.mediaDevices.getUserMedia(wanted);
  } catch (error) {
    report('media', mediaErrorCode(error));
    const blocked = mediaErrorCode(error) === 'permission_denied';
    if (blocked) showPermissionHelp();
    // a remembered device may be gone; maybe only one of the two works
    wanted = {video: true, audio: true};
    const stream = (!blocked && await navigator.mediaDevices.getUserMedia(wanted).catch(() => null))
      || await navigator.mediaDevices.getUserMedia({audio: true}).catch(() => null)
      || await navigator.mediaDevices.getUserMedia({video: true}).catch(() => null);
    if (!stream && !blocked) showPermissionHelp();
    return stream;
  }
}

function stopLive() {
  live.stopMeter();
  live.stopMeter = () => {};
  for (const track of live.stream?.getTracks() || []) track.stop();
  live.stream = null;
}

/** @param {MediaStream} stream */
function show(stream) {
  stopLive();
  live.stream = stream;
  const video = /** @type {HTMLVideoElement} */ ($('preview'));
  video.srcObject = stream;
  setResult('camera', stream.getVideoTracks().length > 0);
  if (stream.getAudioTracks().length) live.stopMeter = meterMicrophone(stream);
  else setResult('microphone', false);
}

async function checkCameraAndMicrophone() {
  const stream = await openStream();
  if (!stream) {
    setResult('camera', false);
    setResult('microphone', false);
    return;
  }
  show(stream);
  window.addEventListener('pagehide', () => live.stream?.getTracks().forEach((t) => t.stop()));
  await fillPickers();
}

/**
 * Show the microphone's level; it passes once it hears something (or has a
 * live track). Returns what stops it.
 * @param {MediaStream} stream
 */
function meterMicrophone(stream) {
  const meter = /** @type {HTMLMeterElement} */ ($('mic-level'));
  const audio = new AudioContext();
  const analyser = audio.createAnalyser();
  analyser.fftSize = 512;
  audio.createMediaStreamSource(stream).connect(analyser);
  const samples = new Uint8Array(analyser.fftSize);
  let heard = false;
  const started = performance.now();
  const tick = () => {
    analyser.getByteTimeDomainData(samples);
    let peak = 0;
    for (const value of samples) peak = Math.max(peak, Math.abs(value - 128));
    const level = Math.min(100, Math.round((peak / 128) * 200));
    meter.value = level;
    meter.setAttribute('aria-valuenow', String(level));
    if (!heard && level > 2) {
      heard = true;
      setResult('microphone', true);
    } else if (!heard && performance.now() - started > 8000) {
      heard = true; // silent room: the track is live, so it counts as working
      setResult('microphone', stream.getAudioTracks().some((t) => t.readyState === 'live'));
    }
  };
  const timer = window.setInterval(tick, 100);
  // a browser may hold audio until the first click or key press
  const resume = () => audio.resume().catch(() => report('media', 'audio_failed'));
  resume();
  for (const kind of ['pointerdown', 'keydown']) window.addEventListener(kind, resume, {once: true});
  return () => {
    window.clearInterval(timer);
    audio.close().catch(() => report('media', 'audio_failed'));
  };
}

// --- the pickers -----------------------------------------------------------

/** Speakers can be chosen only where media elements have setSinkId. */
const canChooseSpeaker = 'setSinkId' in HTMLMediaElement.prototype;

/**
 * @param {HTMLSelectElement} select
 * @param {MediaDeviceInfo[]} devices
 * @param {string} label  text name of an unlabelled device, with {n}
 * @param {string | null | undefined} current
 */
function fill(select, devices, label, current) {
  const options = devices.map((device, index) => {
    const option = document.createElement('option');
    option.value = device.deviceId;
    option.textContent = device.label || label.replace('{n}', String(index + 1));
    return option;
  });
  if (!options.length) return;
  select.replaceChildren(...options);
  if (current && devices.some((device) => device.deviceId === current)) select.value = current;
  select.disabled = false;
}

/** Fill the pickers (device names show only after permission) and enable them. */
async function fillPickers() {
  let devices;
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.deviceId);
  } catch {
    report('media', 'devices_unlisted');
    return;
  }
  const of = (/** @type {MediaDeviceKind} */ kind) => devices.filter((d) => d.kind === kind);
  const using = (/** @type {'video'|'audio'} */ kind) =>
    live.stream?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  fill(/** @type {HTMLSelectElement} */ ($('camera-select')), of('videoinput'), deviceStrings.camera_n || '', using('video'));
  fill(/** @type {HTMLSelectElement} */ ($('microphone-select')), of('audioinput'), deviceStrings.microphone_n || '', using('audio'));
  if (canChooseSpeaker) {
    fill(/** @type {HTMLSelectElement} */ ($('speaker-select')), of('audiooutput'), deviceStrings.speaker_n || '', choice.audioOutput);
  }
}

/**
 * The person picked another camera or microphone: restart the preview with it.
 * @param {'videoInput'|'audioInput'} kind
 * @param {string} id
 */
async function switchDevice(kind, id) {
  remember({[kind]: id || null});
  stopLive(); // a phone may not open a second camera while the first runs
  try {
    show(await navigator.mediaDevices.getUserMedia(constraints()));
  } catch (error) {
    report('media', mediaErrorCode(error));
    $('device-status').textContent = deviceStrings.switch_failed || '';
    const stream = await openStream(); // back to what works
    if (stream) show(stream);
  }
}

function setUpPickers() {
  for (const [id, kind] of /** @type {const} */ ([['camera-select', 'videoInput'], ['microphone-select', 'audioInput']])) {
    const select = /** @type {HTMLSelectElement} */ ($(id));
    select.addEventListener('change', () => switchDevice(kind, select.value));
  }
  const speaker = /** @type {HTMLSelectElement} */ ($('speaker-select'));
  speaker.addEventListener('change', () => remember({audioOutput: speaker.value || null}));
  $('speaker-choice').hidden = !canChooseSpeaker;
  $('speaker-hint').hidden = canChooseSpeaker;
  for (const [id, key] of /** @type {const} */ ([['camera-off', 'cameraOff'], ['join-muted', 'muted']])) {
    const box = /** @type {HTMLInputElement} */ ($(id));
    box.checked = choice[key];
    box.addEventListener('change', () => remember({[key]: box.checked}));
    box.disabled = false;
  }
}

// --- the speaker -------------------------------------------------------------

/** A short tone, on the chosen speaker where the browser can choose one. */
async function playTone() {
  const audio = new AudioContext();
  const oscillator = audio.createOscillator();
  const gain = audio.createGain();
  oscillator.frequency.value = 660;
  gain.gain.setValueAtTime(0.0001, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.3, audio.currentTime + 0.05);
  gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 1.2);
  oscillator.connect(gain).connect(await toneOutput(audio));
  oscillator.start();
  oscillator.stop(audio.currentTime + 1.25);
  oscillator.onended = () => audio.close();
}

/** @param {AudioContext} audio  where the tone goes: the chosen speaker, else the default */
async function toneOutput(audio) {
  if (!canChooseSpeaker || !choice.audioOutput) return audio.destination;
  const sink = audio.createMediaStreamDestination();
  const element = new Audio();
  element.srcObject = sink.stream;
  try {
    await element.setSinkId(choice.audioOutput);
    await element.play();
    return sink;
  } catch {
    report('media', 'speaker_select_failed');
    return audio.destination;
  }
}

function setUpSpeakerTest() {
  const play = /** @type {HTMLButtonElement} */ ($('play-tone'));
  play.addEventListener('click', () => {
    $('speaker-question').hidden = false;
    playTone().catch(() => report('media', 'audio_failed'));
  });
  $('heard-yes').addEventListener('click', () => setResult('speaker', true));
  $('heard-no').addEventListener('click', () => setResult('speaker', false));
  play.disabled = false;
}

// --- the connection ------------------------------------------------------------

/** @param {string} url */
function websocketOpens(url) {
  return new Promise((resolve) => {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      report('connection', 'websocket_failed');
      resolve(false);
      return;
    }
    const timer = window.setTimeout(() => {
      ws.close();
      resolve(false);
    }, 5000);
    ws.onopen = () => {
      window.clearTimeout(timer);
      ws.close();
      resolve(true);
    };
    ws.onerror = () => {
      window.clearTimeout(timer);
      resolve(false);
    };
  });
}

/**
 * Gather candidates with a throwaway peer connection; true when TURN is not
 * configured or gave a relay candidate.
 * @param {RTCIceServer[]} iceServers
 */
async function relayGathers(iceServers) {
  const turn = iceServers.some((server) => [server.urls].flat().some((url) => /^turns?:/.test(url)));
  if (!turn) return true;
  const pc = new RTCPeerConnection({iceServers, iceTransportPolicy: 'relay'});
  pc.createDataChannel('check');
  const found = new Promise((resolve) => {
    const timer = window.setTimeout(() => resolve(false), 8000);
    pc.onicecandidate = (event) => {
      if (event.candidate && / typ relay /.test(event.candidate.candidate)) {
        window.clearTimeout(timer);
        resolve(true);
      }
      if (!event.candidate) {
        window.clearTimeout(timer);
        resolve(false);
      }
    };
  });
  await pc.setLocalDescription(await pc.createOffer());
  const ok = await found;
  pc.close();
  return Boolean(ok);
}

async function checkConnection() {
  const reply = await fetchToken(data.tokenUrl || '', data.csrf || '').catch(() => null);
  if (!reply) {
    report('connection', 'token_failed');
    setResult('connection', false);
    return;
  }
  const [opens, relay] = await Promise.all([
    websocketOpens(reply.media_url),
    relayGathers(reply.ice_servers || []).catch(() => {
      report('connection', 'relay_failed');
      return false;
    }),
  ]);
  setResult('connection', opens && relay);
}

// --- the summary and the report -------------------------------------------------

let reported = false;

function summarize() {
  const summary = $('device-summary');
  const failed = Object.entries(results).filter(([, ok]) => ok === false).map(([name]) => name);
  const pending = Object.values(results).some((ok) => ok === null);
  const list = $('summary-failed');
  list.replaceChildren();
  for (const name of failed) {
    const item = document.createElement('li');
    item.textContent = text(`${name}_failed`);
    item.dataset.failed = name;
    list.append(item);
  }
  if (pending && !failed.length) {
    $('summary-text').textContent = results.speaker === null && Object.values(results).filter((ok) => ok === null).length === 1
      ? text('speaker_pending') : text('check_running');
  } else {
    $('summary-text').textContent = failed.length ? text('some_failed') : text('all_ok');
  }
  summary.hidden = false;
  if (!pending) {
    $('device-status').textContent = $('summary-text').textContent;
    reportProgress(failed);
  }
}

/** @param {string[]} failed */
function reportProgress(failed) {
  if (reported || !data.progressUrl) return;
  reported = true;
  const step = failed.length ? 'device_check_failed' : 'device_check_passed';
  page.post(data.progressUrl, {step, failed}, true).catch(() => report('report', 'progress_failed'));
}

$('join').addEventListener('click', () => {
  // the speaker question unanswered counts as not known, not as failed
  const failed = Object.entries(results).filter(([, ok]) => ok === false).map(([name]) => name);
  reportProgress(failed);
  try {
    window.sessionStorage.setItem(JOIN_CLICKED_KEY, String(performance.timeOrigin + performance.now()));
  } catch {
    report('storage', 'storage_failed');
  }
});

$('device-status').textContent = text('check_running');
setUpSpeakerTest();
setUpPickers();
page.root.removeAttribute('aria-busy');
checkCameraAndMicrophone();
checkConnection();
