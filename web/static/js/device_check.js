// @ts-check
/**
 * The device check before a call: camera preview, microphone level, a test tone
 * ("did you hear it?"), help for a blocked permission in this browser, and a
 * connection check (the media server's WebSocket opens; with TURN configured,
 * relay candidates are gathered). The result goes to the control plane
 * (progress-url), so the employee sees it; "join" always stays available.
 */
import {JOIN_CLICKED_KEY, fetchToken} from './protocol.js';
import {CallPage} from './call_ui.js';

const page = new CallPage(document);
const {data} = page;
const $ = page.$.bind(page);
const text = page.text.bind(page);

/** @type {Record<string, boolean | null>} null while not known */
const results = {camera: null, microphone: null, speaker: null, connection: null};

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

async function checkCameraAndMicrophone() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  } catch (error) {
    const blocked = error instanceof DOMException && ['NotAllowedError', 'SecurityError'].includes(error.name);
    if (blocked) showPermissionHelp();
    // maybe only one of the two works
    stream = await navigator.mediaDevices.getUserMedia({audio: true}).catch(() => null)
      || await navigator.mediaDevices.getUserMedia({video: true}).catch(() => null);
    if (!stream) {
      if (!blocked) showPermissionHelp();
      setResult('camera', false);
      setResult('microphone', false);
      return;
    }
  }
  const video = /** @type {HTMLVideoElement} */ ($('preview'));
  video.srcObject = stream;
  setResult('camera', stream.getVideoTracks().length > 0);
  if (stream.getAudioTracks().length) meterMicrophone(stream);
  else setResult('microphone', false);
  window.addEventListener('pagehide', () => stream.getTracks().forEach((t) => t.stop()));
}

/** Show the microphone's level; it passes once it hears something (or has a live track). */
function meterMicrophone(/** @type {MediaStream} */ stream) {
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
  window.setInterval(tick, 100);
  // a browser may hold audio until the first click or key press
  audio.resume().catch(() => {});
  for (const kind of ['pointerdown', 'keydown']) {
    window.addEventListener(kind, () => audio.resume().catch(() => {}), {once: true});
  }
}

function setUpSpeakerTest() {
  $('play-tone').addEventListener('click', () => {
    const audio = new AudioContext();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 660;
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.3, audio.currentTime + 0.05);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 1.2);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 1.25);
    oscillator.onended = () => audio.close();
    $('speaker-question').hidden = false;
  });
  $('heard-yes').addEventListener('click', () => setResult('speaker', true));
  $('heard-no').addEventListener('click', () => setResult('speaker', false));
}

/** @param {string} url */
function websocketOpens(url) {
  return new Promise((resolve) => {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
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
    setResult('connection', false);
    return;
  }
  const [opens, relay] = await Promise.all([
    websocketOpens(reply.media_url),
    relayGathers(reply.ice_servers || []).catch(() => false),
  ]);
  setResult('connection', opens && relay);
}

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
    report(failed);
  }
}

/** @param {string[]} failed */
function report(failed) {
  if (reported || !data.progressUrl) return;
  reported = true;
  const step = failed.length ? 'device_check_failed' : 'device_check_passed';
  page.post(data.progressUrl, {step, failed}, true).catch(() => {});
}

$('join').addEventListener('click', () => {
  // the speaker question unanswered counts as not known, not as failed
  const failed = Object.entries(results).filter(([, ok]) => ok === false).map(([name]) => name);
  report(failed);
  window.sessionStorage.setItem(JOIN_CLICKED_KEY, String(performance.timeOrigin + performance.now()));
});

$('device-status').textContent = text('check_running');
setUpSpeakerTest();
checkCameraAndMicrophone();
checkConnection();
