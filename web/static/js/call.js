// @ts-check
/**
 * The call page (citizen, interpreter and employee): lobby → in call → ended.
 * protocol.js does the connection; this module owns the DOM: tiles, controls,
 * chat, the quality indicator, audio-only fallback, and for the employee the
 * participants, progress, link, interpreter, message, end and switch controls.
 * Texts come from the page (#call-strings). On a test server ([calls]
 * test_hooks) window.beeldbel exposes state to the browser tests.
 */
import {Connection, CHAT_MAX, JOIN_CLICKED_KEY} from './protocol.js';
import {MediaStats} from './media_stats.js';
import {CallPage} from './call_ui.js';
import {AgentPanel} from './call_agent.js';
import {onJsonEvent} from './server_events.js';
import {loadChoice} from './device_choice.js';
import {mediaErrorCode, reportClientError, reportUncaught} from './client_errors.js';

/** Sample the connection this often (ms). */
const SAMPLE_MS = 2000;
/** The outcome of a call the employee turned into a phone call. */
const SWITCHED_TO_PHONE = 'switched_to_phone';
/** Look who is speaking this often (ms). */
const SPEAKERS_MS = 300;
/** Report quality to the control plane this often during a call (ms). */
const REPORT_MS = 30000;
/** Poor samples in a row before video stops, good ones before it resumes. */
const POOR_TO_AUDIO_ONLY = 3;
const GOOD_TO_VIDEO = 5;

const page = new CallPage(document);
const {data, root} = page;
const role = data.role || 'citizen';
const text = page.text.bind(page);
const $ = page.$.bind(page);
const roleLabel = page.roleLabel.bind(page);
const post = page.post.bind(page);
const announce = page.announce.bind(page);
const notice = page.notice.bind(page);

/** Where client errors are reported from (client_errors.py's pages). */
const errorPage = role === 'agent' ? 'staff_call' : 'call';
/**
 * A failure this page gets past, reported so it leaves a trace.
 * @param {import('./client_errors.js').ErrorKind} kind
 * @param {string} code
 */
const failed = (kind, code) => reportClientError(errorPage, kind, code);
reportUncaught(errorPage);
/** The devices and join options chosen on the device check. */
const choice = loadChoice();

const params = new URLSearchParams(window.location.search);
const connection = new Connection({
  tokenUrl: data.tokenUrl || '',
  csrf: data.csrf || '',
  forceRelay: params.get('relay') === '1',
});
const stats = new MediaStats();
const agent = role === 'agent'
  ? new AgentPanel(page, connection, () => {
    stopSampling();
    return reportQuality(true);
  })
  : null;
const ui = {
  muted: false,
  cameraOn: true,
  audioOnly: false,
  poorStreak: 0,
  goodStreak: 0,
  /** @type {string | null} a level forced by a test (window.beeldbel.simulateQuality) */
  simulated: null,
  /** the chat panel: open at the start on a wide screen, where it fits beside the video */
  chatOpen: window.matchMedia('(min-width: 48rem) and (min-height: 32.01rem)').matches,
  unread: 0,
  /** how the control plane says the call ended ('' until it says) */
  outcome: '',
  hungUp: false,
  reportedEarly: false,
  rosterSeen: false,
  /** @type {string} */
  lastProgress: '',
  /** @type {number | null} how long the last reconnect took (ms) */
  lastReconnectMs: null,
  /** @type {Map<string, {tile: HTMLLIElement, video: HTMLVideoElement, audio: HTMLAudioElement, receiver: RTCRtpReceiver | null}>} */
  tiles: new Map(),
  /** @type {Map<string, {muted: boolean, camera: boolean}>} participant id → their microphone and camera */
  remote: new Map(),
  /** @type {number | undefined} */
  speakers: undefined,
  /** @type {Map<string, string>} participant id → role */
  roles: new Map(),
  /** @type {Map<string, string>} participant id → lobby or admitted */
  states: new Map(),
  /** @type {number | undefined} */
  sampler: undefined,
  /** @type {number | undefined} */
  reporter: undefined,
};

const joinClicked = Number(window.sessionStorage.getItem(JOIN_CLICKED_KEY) || 0);
window.sessionStorage.removeItem(JOIN_CLICKED_KEY);
stats.markStart(joinClicked || performance.timeOrigin);

/** @param {string} step */
function progress(step) {
  if (!data.progressUrl || ui.lastProgress === step) return;
  ui.lastProgress = step;
  post(data.progressUrl, {step, failed: []}, step === 'left').catch(() => failed('report', 'progress_failed'));
}

function reportQuality(final = false) {
  if (!data.qualityUrl) return Promise.resolve();
  return post(data.qualityUrl, stats.record(connection.reconnects), final).catch(() => failed('report', 'quality_failed'));
}

// --- states ------------------------------------------------------------

/**
 * @param {import('./protocol.js').CallState} state
 * @param {string} [detail]
 */
function onState(state, detail) {
  const lobby = document.getElementById('lobby');
  const active = ['lobby', 'in_call', 'reconnecting'].includes(state);
  $('call-live').hidden = !active;
  // during the call the call is the whole screen (call.css)
  root.classList.toggle('call-active', active);
  document.body.classList.toggle('in-call', active);
  root.dataset.state = state;
  if (lobby) lobby.hidden = state !== 'lobby';
  showChat(ui.chatOpen && state !== 'lobby'); // the media server relays no chat in the lobby
  $('toggle-chat').hidden = state === 'lobby';
  $('quality').hidden = state !== 'in_call';
  if (state === 'connecting') announce(text('connecting'));
  if (state === 'reconnecting') announce(text('reconnecting'));
  if (state === 'lobby') {
    announce(text('lobby'));
    markLobbySince();
    progress('waiting');
    applyVideo();
  }
  if (state === 'in_call') {
    if (ui.lastReconnectMs === null && connection.reconnects > 0) ui.lastReconnectMs = 0;
    if (connection.reconnectingSince) {
      ui.lastReconnectMs = Math.round(performance.now() - connection.reconnectingSince);
      connection.reconnectingSince = 0;
    }
    // the wait in the lobby is not the connection's time: measure from admission
    if (ui.lastProgress === 'waiting') stats.markStart(performance.timeOrigin + performance.now());
    announce(text('in_call'));
    progress('in_call');
    applyVideo();
    startSampling();
  }
  if (state === 'ended') showEnded(detail || 'ended');
  if (state === 'failed') showError(detail || 'error');
}

/** @param {string} reason */
function showEnded(reason) {
  stopSampling();
  $('call-live').hidden = true;
  $('call-notice').hidden = true;
  const ended = $('call-ended');
  const said = ['removed', 'media_lost'].includes(reason) ? text(reason) : '';
  if (said) $('call-ended-text').textContent = said;
  // links, invitations, messages and hang-up act on a call that is over
  for (const id of ['link-panel', 'interpreter-panel', 'message-panel', 'end-panel']) {
    const panel = document.getElementById(id);
    if (panel) panel.hidden = true;
  }
  const restart = reason === 'media_lost' && data.requestUrl;
  if (restart) {
    // the employee starts the call again from the request, not a survey of a cut call
    const link = document.getElementById('survey-link');
    if (link instanceof HTMLAnchorElement) {
      link.href = data.requestUrl || '';
      link.textContent = text('back_to_request');
    }
  }
  ended.hidden = false;
  announce(said || text('ended'));
  ended.focus();
  if (ui.outcome === SWITCHED_TO_PHONE) showSwitched();
  if (role !== 'agent') progress('left');
  const survey = restart ? '' : data.surveyUrl;
  reportQuality(true).finally(() => {
    if (!survey || agent?.leaving) return; // the employee goes where the control plane says
    // after one's own hang-up the survey is the next step one asked for; when the
    // other side ends, the end screen stays, with the survey one button away
    // (WCAG 2.2.1: no time limit, and a screen reader keeps its place)
    if (ui.hungUp) window.location.assign(survey);
  });
}

/** How the control plane ended the call (the citizen's events or status); the
 *  media server's room_ended may come first or after. @param {unknown} outcome */
function onOutcome(outcome) {
  ui.outcome = typeof outcome === 'string' ? outcome : '';
  if (ui.outcome === SWITCHED_TO_PHONE && !$('call-ended').hidden) showSwitched();
}

/** The employee rings the citizen now: say so, with the number as they know it. */
function showSwitched() {
  const title = $('call-ended-title');
  if (title.textContent === text('switched_title')) return;
  title.textContent = text('switched_title');
  const hint = data.phoneHint || '';
  $('call-ended-text').textContent = hint ? text('switched_text', {phone: hint}) : text('switched_text_no_number');
  announce(`${text('switched_title')}. ${$('call-ended-text').textContent}`);
}

/** @param {string} code */
function showError(code) {
  stopSampling();
  $('call-live').hidden = true;
  const lobby = document.getElementById('lobby');
  if (lobby) lobby.hidden = true;
  const box = $('call-error');
  $('call-error-text').textContent = code === 'no_media' ? text('no_media') : text('failed');
  box.hidden = false;
  announce(text('failed'));
  box.focus();
}

// --- media ---------------------------------------------------------------

/** Camera, microphone, or what of them works; an empty stream when neither.
 *  The devices chosen on the device check first, then the browser's defaults. */
async function localStream() {
  const size = {width: {ideal: 640}, height: {ideal: 480}, frameRate: {ideal: 30}};
  const chosen = (/** @type {string | null} */ id) => (id ? {deviceId: {exact: id}} : {});
  const attempts = [
    {audio: chosen(choice.audioInput), video: {...size, ...chosen(choice.videoInput)}},
    {audio: true, video: {...size, facingMode: 'user'}},
    {audio: true, video: false},
    {audio: false, video: true},
  ];
  let last = null;
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      last = error; // try the next, smaller set
    }
  }
  failed('media', mediaErrorCode(last));
  notice(text('no_media'));
  return new MediaStream();
}

/** Join as chosen on the device check: muted, camera off (before any media flows). */
function applyChoice(/** @type {MediaStream} */ stream) {
  if (choice.muted) {
    for (const track of stream.getAudioTracks()) track.enabled = false;
    ui.muted = true;
    setToggle('toggle-mic', false, text('mic_off'));
  }
  if (choice.cameraOff || !stream.getVideoTracks().length) {
    for (const track of stream.getVideoTracks()) track.enabled = false;
    ui.cameraOn = false;
    setToggle('toggle-camera', false, text('cam_off'));
    $('tile-self').classList.add('camera-off');
  }
}

/** The speaker chosen on the device check, where the browser can choose. */
function chooseSpeaker(/** @type {HTMLAudioElement} */ audio) {
  const sink = /** @type {HTMLAudioElement & {setSinkId?: (id: string) => Promise<void>}} */ (audio);
  if (!choice.audioOutput || !sink.setSinkId) return;
  sink.setSinkId(choice.audioOutput).catch(() => failed('media', 'speaker_select_failed'));
}

function applyVideo() {
  for (const track of connection.stream?.getVideoTracks() || []) track.enabled = ui.cameraOn;
  connection.setVideoSending(ui.cameraOn && !ui.audioOnly).catch(() => failed('connection', 'video_sending_failed'));
}

/**
 * @param {MediaStreamTrack} track
 * @param {import('./protocol.js').TrackInfo | undefined} info
 */
function onTrack(track, info) {
  const id = info ? info.participant_id : 'unknown';
  let entry = ui.tiles.get(id);
  if (!entry) {
    const template = /** @type {HTMLTemplateElement} */ ($('remote-tile'));
    const tile = /** @type {HTMLLIElement} */ (template.content.firstElementChild?.cloneNode(true));
    tile.dataset.participant = id;
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const audio = /** @type {HTMLAudioElement} */ (tile.querySelector('audio'));
    $('tiles').insertBefore(tile, $('tile-self')); // the others first, yourself last
    video.addEventListener('loadeddata', () => stats.markFirstPicture(performance.timeOrigin + performance.now()));
    chooseSpeaker(audio);
    entry = {tile, video, audio, receiver: null};
    ui.tiles.set(id, entry);
    labelTile(id);
    showRemoteState(id);
  }
  const element = track.kind === 'video' ? entry.video : entry.audio;
  element.srcObject = new MediaStream([track]);
  element.play().catch(() => failed('media', 'play_failed'));
  if (track.kind === 'audio') {
    entry.receiver = connection.pc?.getReceivers().find((r) => r.track === track) || null;
  }
}

// --- the other side's state: microphone, camera, speaking -----------------

/** Tell the others our microphone and camera (on each change, and to newcomers). */
function sendState() {
  connection.sendSignal({type: 'state', muted: ui.muted, camera: ui.cameraOn && !ui.audioOnly});
}

/** @param {{muted: boolean, camera: boolean, from_role: string, participant_id: string}} state */
function onRemoteState(state) {
  const id = state.participant_id;
  const before = ui.remote.get(id);
  ui.remote.set(id, {muted: state.muted, camera: state.camera});
  showRemoteState(id);
  if (!before) return; // the first report is how they came in, not news
  const who = roleLabel(state.from_role);
  if (before.muted !== state.muted) announce(text(state.muted ? 'remote_muted' : 'remote_unmuted', {who}));
  if (before.camera !== state.camera) announce(text(state.camera ? 'remote_camera_on' : 'remote_camera_off', {who}));
}

/** @param {string} id */
function showRemoteState(id) {
  const entry = ui.tiles.get(id);
  const state = ui.remote.get(id);
  if (!entry || !state) return;
  const muted = /** @type {HTMLElement} */ (entry.tile.querySelector('.tile-muted'));
  const cameraOff = /** @type {HTMLElement} */ (entry.tile.querySelector('.tile-camera-off'));
  muted.hidden = !state.muted;
  cameraOff.hidden = state.camera;
  entry.tile.dataset.muted = String(state.muted);
  entry.tile.dataset.camera = String(state.camera);
}

/** Above this audio level (0..1, from the receiver's own stats) someone speaks. */
const SPEAKING_LEVEL = 0.02;

/** Mark who is speaking, from each remote audio receiver's level. */
async function markSpeakers() {
  for (const entry of ui.tiles.values()) {
    if (!entry.receiver) continue;
    let level = 0;
    try {
      for (const report of (await entry.receiver.getStats()).values()) {
        if (report.type === 'inbound-rtp' && typeof report.audioLevel === 'number') level = report.audioLevel;
      }
    } catch {
      failed('connection', 'stats_failed');
      continue; // the receiver is gone: the tile goes with it
    }
    const speaking = level > SPEAKING_LEVEL;
    entry.tile.classList.toggle('speaking', speaking);
    const mark = /** @type {HTMLElement} */ (entry.tile.querySelector('.tile-speaking'));
    mark.hidden = !speaking;
  }
}

/** @param {string} id */
function labelTile(id) {
  const entry = ui.tiles.get(id);
  if (!entry) return;
  const name = roleLabel(ui.roles.get(id) || '');
  const label = entry.tile.querySelector('.tile-name');
  if (label) label.textContent = name;
  entry.video.setAttribute('aria-label', name);
}

/** @param {import('./protocol.js').Participant[]} participants */
function onParticipants(participants) {
  const before = new Map(ui.roles);
  const present = new Set();
  let newcomer = false;
  for (const p of participants) {
    present.add(p.participant_id);
    if (p.participant_id === connection.participantId) continue;
    const was = before.get(p.participant_id);
    ui.roles.set(p.participant_id, p.role);
    labelTile(p.participant_id);
    // who was there already when we came in is not news
    if (!was && p.state === 'admitted' && ui.rosterSeen) announce(text('joined', {who: roleLabel(p.role)}));
    if (p.state === 'admitted' && ui.states.get(p.participant_id) !== 'admitted') newcomer = true;
    // the employee waits for the citizen: measure from their admission
    if (role === 'agent' && p.state === 'admitted' && p.role === 'citizen' && ui.states.get(p.participant_id) !== 'admitted') {
      stats.markStart(performance.timeOrigin + performance.now());
    }
    ui.states.set(p.participant_id, p.state);
  }
  for (const [id, participantRole] of before) {
    if (!present.has(id)) {
      ui.roles.delete(id);
      ui.states.delete(id);
      ui.tiles.get(id)?.tile.remove();
      ui.tiles.delete(id);
      ui.remote.delete(id);
      document.querySelector(`#chat-drafts [data-participant="${CSS.escape(id)}"]`)?.remove();
      announce(text('left', {who: roleLabel(participantRole)}));
    }
  }
  ui.rosterSeen = true;
  if (newcomer) sendState(); // their channel missed our earlier reports
  agent?.render(participants);
}

// --- quality -------------------------------------------------------------

function startSampling() {
  if (ui.sampler !== undefined) return;
  ui.sampler = window.setInterval(sample, SAMPLE_MS);
  ui.speakers = window.setInterval(markSpeakers, SPEAKERS_MS);
  ui.reporter = window.setInterval(() => reportQuality(), REPORT_MS);
}

function stopSampling() {
  window.clearInterval(ui.sampler);
  window.clearInterval(ui.reporter);
  window.clearInterval(ui.speakers);
  ui.sampler = undefined;
}

async function sample() {
  const pc = connection.pc;
  if (!pc || connection.state !== 'in_call') return;
  let level;
  try {
    level = (await stats.sample(pc)).level;
  } catch {
    failed('connection', 'stats_failed');
    return;
  }
  if (!ui.reportedEarly && stats.firstPictureAt !== null) {
    ui.reportedEarly = true; // the first picture is in: store it at once
    reportQuality();
  }
  if (ui.simulated) level = /** @type {import('./media_stats.js').QualityLevel} */ (ui.simulated);
  const indicator = $('quality');
  indicator.dataset.level = level;
  $('quality-text').textContent = text(`quality_${level}`);
  ui.poorStreak = level === 'poor' ? ui.poorStreak + 1 : 0;
  ui.goodStreak = level === 'good' ? ui.goodStreak + 1 : 0;
  if (!ui.audioOnly && ui.poorStreak >= POOR_TO_AUDIO_ONLY) setAudioOnly(true);
  else if (ui.audioOnly && ui.goodStreak >= GOOD_TO_VIDEO) setAudioOnly(false);
}

/** @param {boolean} on */
function setAudioOnly(on) {
  ui.audioOnly = on;
  root.classList.toggle('audio-only', on);
  for (const {video} of ui.tiles.values()) video.hidden = on;
  applyVideo();
  sendState();
  notice(on ? text('audio_only') : text('video_back'));
}

// --- controls ------------------------------------------------------------

/**
 * A toggle's state: aria-pressed="true" means on, and its text says so
 * ("Microfoon: aan"), so neither reads as a double negative.
 * @param {string} id
 * @param {boolean} on
 * @param {string} label the text for this state
 */
function setToggle(id, on, label) {
  const button = $(id);
  button.setAttribute('aria-pressed', String(on));
  const words = button.querySelector('.control-text');
  if (words) words.textContent = label;
}

/** @param {boolean} muted */
function setMuted(muted) {
  ui.muted = muted;
  connection.setMicEnabled(!muted);
  setToggle('toggle-mic', !muted, text(muted ? 'mic_off' : 'mic_on'));
  sendState();
}

/** @param {boolean} on */
function setCamera(on) {
  ui.cameraOn = on;
  applyVideo();
  setToggle('toggle-camera', on, text(on ? 'cam_on' : 'cam_off'));
  $('tile-self').classList.toggle('camera-off', !on);
  sendState();
}

/** Open or close the chat panel; the video stays in view either way. @param {boolean} open */
function showChat(open) {
  $('chat').hidden = !open;
  $('toggle-chat').setAttribute('aria-expanded', String(open));
  if (open) setUnread(0);
}

/** @param {number} count chat messages that came while the panel was closed */
function setUnread(count) {
  ui.unread = count;
  const badge = $('chat-unread');
  badge.hidden = count === 0;
  badge.textContent = count ? text('chat_unread', {count: String(count)}) : '';
}

function setUpFullscreen() {
  const button = $('toggle-fullscreen');
  if (!document.fullscreenEnabled) return; // e.g. an iPhone: the button stays hidden
  button.hidden = false;
  button.addEventListener('click', () => {
    const done = document.fullscreenElement ? document.exitFullscreen() : root.requestFullscreen();
    done.catch(() => {
      failed('action', 'action_failed');
      notice(text('action_failed'));
    });
  });
  document.addEventListener('fullscreenchange', () => {
    const on = Boolean(document.fullscreenElement);
    setToggle('toggle-fullscreen', on, text(on ? 'fullscreen_exit' : 'fullscreen'));
  });
}

function setUpControls() {
  $('toggle-mic').addEventListener('click', () => {
    setMuted(!ui.muted);
    announce(text(ui.muted ? 'muted' : 'unmuted'));
  });
  $('toggle-camera').addEventListener('click', () => {
    setCamera(!ui.cameraOn);
    announce(text(ui.cameraOn ? 'camera_on' : 'camera_off'));
  });
  $('toggle-chat').addEventListener('click', () => {
    ui.chatOpen = $('chat').hidden === true;
    showChat(ui.chatOpen);
    if (ui.chatOpen) $('chat-input').focus();
  });
  setUpFullscreen();
  $('switch-camera').addEventListener('click', switchCamera);
  $('hang-up').addEventListener('click', () => {
    ui.hungUp = true;
    if (agent) agent.endCall();
    else connection.leave();
  });
  $('call-retry').addEventListener('click', () => window.location.reload());
  $('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('chat-input'));
    const message = Array.from(input.value.trim()).slice(0, CHAT_MAX).join('');
    if (!message) return;
    if (connection.sendChat(message)) {
      addChat(text('chat_you'), message, true);
      input.value = '';
      sendTyping(''); // the line is sent: the others' draft of it goes
    } else {
      notice(text('chat_unavailable'));
    }
  });
}

async function showSwitchCamera() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => {
    failed('media', 'devices_unlisted');
    return [];
  });
  $('switch-camera').hidden = devices.filter((d) => d.kind === 'videoinput').length < 2;
}

async function switchCamera() {
  const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  const current = connection.stream?.getVideoTracks()[0]?.getSettings().deviceId;
  const index = cameras.findIndex((d) => d.deviceId === current);
  const next = cameras[(index + 1) % cameras.length];
  if (!next) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: {deviceId: {exact: next.deviceId}}});
    // asked for a video device: the stream has its track
    await connection.replaceVideoTrack(/** @type {MediaStreamTrack} */ (stream.getVideoTracks()[0]));
    applyVideo();
    announce(text('camera_switched'));
  } catch {
    failed('action', 'camera_switch_failed');
    notice(text('action_failed'));
  }
}

/**
 * @param {string} who
 * @param {string} message
 * @param {boolean} own
 */
function addChat(who, message, own) {
  const line = document.createElement('p');
  line.className = own ? 'chat-line chat-own' : 'chat-line';
  const name = document.createElement('strong');
  name.textContent = `${who}: `;
  line.append(name, document.createTextNode(message));
  const log = $('chat-log');
  log.append(line);
  log.scrollTop = log.scrollHeight;
  if (!own && $('chat').hidden) {
    setUnread(ui.unread + 1);
    announce(text('chat_new', {who}));
  }
}

// --- real-time text --------------------------------------------------------

/** At most one typing signal per this many ms; the last keystroke always goes. */
const TYPING_MS = 100;
/** @type {{sentAt: number, timer: number | undefined, last: string}} */
const typing = {sentAt: 0, timer: undefined, last: ''};

/** @param {string} line what is in the input now ('' when sent or cleared) */
function sendTyping(line) {
  window.clearTimeout(typing.timer);
  if (line === typing.last) return;
  const wait = typing.sentAt + TYPING_MS - performance.now();
  if (line && wait > 0) {
    typing.timer = window.setTimeout(() => sendTyping(line), wait);
    return;
  }
  if (connection.sendSignal({type: 'typing', text: line})) {
    typing.last = line;
    typing.sentAt = performance.now();
  }
}

function setUpRealTimeText() {
  const input = /** @type {HTMLInputElement} */ ($('chat-input'));
  const on = /** @type {HTMLInputElement} */ ($('rtt-on'));
  input.addEventListener('input', () => {
    if (on.checked) sendTyping(Array.from(input.value).slice(0, CHAT_MAX).join(''));
  });
  on.addEventListener('change', () => {
    if (!on.checked) sendTyping('');
  });
}

/** The others' lines as they type them, one per person, under the log. */
function showDraft(/** @type {{text: string, from_role: string, participant_id: string}} */ message) {
  const drafts = $('chat-drafts');
  let line = /** @type {HTMLElement | null} */ (drafts.querySelector(`[data-participant="${CSS.escape(message.participant_id)}"]`));
  if (!message.text) {
    line?.remove();
    return;
  }
  if (!line) {
    line = document.createElement('p');
    line.className = 'chat-draft';
    line.dataset.participant = message.participant_id;
    drafts.append(line);
  }
  const who = document.createElement('strong');
  who.textContent = text('typing', {who: roleLabel(message.from_role)});
  line.replaceChildren(who, document.createTextNode(` ${message.text}`));
}

// --- the citizen's waiting room ------------------------------------------

/** @param {string} message */
function showLobbyMessage(message) {
  const box = $('lobby-message-text');
  if (box.textContent === message) return;
  box.textContent = message;
  $('lobby-message').hidden = false;
  announce(text('lobby_message', {text: message}));
}

/** The waiting room says since when one waits: a sense of progress, no ticking. */
function markLobbySince() {
  const since = document.getElementById('lobby-since');
  if (!since || since.textContent) return;
  const time = new Date().toLocaleTimeString(document.documentElement.lang, {hour: '2-digit', minute: '2-digit'});
  since.textContent = text('lobby_since', {time});
}

/** Poll status-url ({message, ended}) while waiting: the employee's message. */
function pollStatus() {
  const poll = async () => {
    if (connection.finished) return;
    if (['connecting', 'lobby'].includes(connection.state)) {
      try {
        const response = await fetch(data.statusUrl || '', {credentials: 'same-origin', headers: {Accept: 'application/json'}});
        const status = response.ok ? await response.json() : null;
        if (status && typeof status.message === 'string' && status.message) showLobbyMessage(status.message);
        if (status && status.ended) {
          onOutcome(status.outcome);
          connection.finish('room_ended', true);
        }
      } catch {
        failed('connection', 'status_failed'); // and try again at the next poll
      }
    }
    window.setTimeout(poll, 2000);
  };
  poll();
}

/** The employee's message and the end of the call: SSE, else polling. */
function setUpWaitingRoom() {
  if (!data.eventsUrl) {
    if (data.statusUrl) pollStatus();
    return;
  }
  const events = new EventSource(data.eventsUrl);
  onJsonEvent(events, 'lobby_message', (message) => {
    if (typeof message.text === 'string' && message.text) showLobbyMessage(message.text);
  });
  events.addEventListener('ended', (event) => {
    events.close();
    try {
      onOutcome(JSON.parse(/** @type {MessageEvent} */ (event).data).outcome);
    } catch {
      // no outcome said: the call ended all the same
    }
    connection.finish('room_ended', true);
  });
  events.addEventListener('error', () => {
    // the stream is gone for good (e.g. 410): fall back to polling
    if (events.readyState === EventSource.CLOSED && data.statusUrl) pollStatus();
  });
}

// --- start ---------------------------------------------------------------

connection.onstate = onState;
connection.ontrack = onTrack;
connection.onparticipants = onParticipants;
connection.onchat = (message) => addChat(roleLabel(message.from_role), message.text, false);
connection.onremotestate = onRemoteState;
connection.onproblem = failed;
connection.ontyping = showDraft;
connection.onchatstate = (open) => {
  if (open) sendState();
};
connection.onerror = (error) => {
  if (connection.state === 'in_call' || connection.state === 'lobby') notice(`${text('action_failed')} (${error.code})`);
};

// the browser tests' window into the call; published only where the server
// says it runs for tests ([calls] test_hooks), never in production
if (data.testHooks === '1') Object.assign(window, {
  beeldbel: {
    connection,
    /** A summary for tests: state, measured figures and the last stats sample. */
    async stats() {
      const pc = connection.pc;
      const last = pc ? await stats.sample(pc).catch(() => stats.last) : stats.last;
      return {
        state: connection.state,
        role: connection.role,
        reconnects: connection.reconnects,
        lastReconnectMs: ui.lastReconnectMs,
        audioOnly: ui.audioOnly,
        chatOpen: connection.chat?.readyState === 'open',
        joinToFirstPictureMs: stats.joinToFirstPictureMs(),
        joinClickedAt: joinClicked || null,
        startedAt: stats.startedAt,
        firstPictureAt: stats.firstPictureAt,
        record: stats.record(connection.reconnects),
        ...last,
      };
    },
    /** @param {string | null} level force the quality level the page acts on */
    simulateQuality(level) {
      ui.simulated = level;
    },
  },
});

setUpControls();
setUpRealTimeText();
if (agent) agent.setUp();
else setUpWaitingRoom();
window.addEventListener('pagehide', () => {
  if (!connection.finished) reportQuality(true);
});

const stream = await localStream();
const localVideo = /** @type {HTMLVideoElement} */ ($('local-video'));
localVideo.srcObject = stream;
applyChoice(stream);
showSwitchCamera();
try {
  await connection.start(stream);
} catch (error) {
  connection.failed(error);
}
