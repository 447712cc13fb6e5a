// @ts-check
/**
 * The example page: ?ws=<media server /ws URL>&room=<room id>&token=<join token>.
 * Shows the local camera and every remote track; an agent admits whoever waits
 * in the lobby. window.beeldbel exposes inbound video stats to tests.
 */
import {SfuConnection} from './sfu.js';

const params = new URLSearchParams(location.search);
const status = /** @type {HTMLElement} */ (document.getElementById('status'));
const connection = new SfuConnection(params.get('ws') || '');

/** @param {MediaStream} stream @param {string} parent */
function show(stream, parent) {
  const video = document.createElement('video');
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  document.getElementById(parent)?.appendChild(video);
}

connection.ontrack = (track) => {
  if (track.kind === 'video') show(new MediaStream([track]), 'remote');
};

connection.onmessage = (message) => {
  console.log(`message ${message.type}`);
  if (message.type === 'participants') {
    for (const p of message.participants) {
      if (p.state === 'lobby' && connection.role === 'agent') connection.admit(p.participant_id);
    }
  }
  if (message.type === 'error') status.textContent = `error: ${message.code}`;
};

async function inboundVideo() {
  const result = [];
  const stats = await connection.pc?.getStats();
  stats?.forEach((report) => {
    if (report.type === 'inbound-rtp' && report.kind === 'video') {
      result.push({
        framesDecoded: report.framesDecoded || 0,
        frameWidth: report.frameWidth || 0,
        frameHeight: report.frameHeight || 0,
      });
    }
  });
  return result;
}

async function candidatePairs() {
  const result = [];
  const stats = await connection.pc?.getStats();
  stats?.forEach((report) => {
    if (report.type === 'remote-candidate') result.push(`${report.address}:${report.port}`);
  });
  return result;
}

Object.assign(window, {beeldbel: {inboundVideo, candidatePairs, connection}});

const stream = await navigator.mediaDevices.getUserMedia({
  audio: true,
  video: {width: 640, height: 480},
});
show(stream, 'local');
const joined = await connection.join(params.get('room') || '', params.get('token') || '', stream);
status.textContent = `joined as ${joined.role} (${joined.state})`;
