// @ts-check
/**
 * One participant's connection to a call: the control plane's token endpoint, the
 * media server's WebSocket (docs/protocol.md) and the single RTCPeerConnection.
 * No DOM code here: call.js owns the page and listens through the on<event>
 * callbacks. A failed connection is rebuilt with a fresh token (reconnect).
 */

import {SharpnessWatch, resetResolution, senderSample} from './sharpness.js';

/** @typedef {{type: string, [key: string]: any}} Message */
/** @typedef {{participant_id: string, role: string, state: string}} Participant */
/** @typedef {{mid: string, participant_id: string, kind: string}} TrackInfo */
/**
 * @typedef {object} TokenReply
 * @property {string} media_url
 * @property {string} room_id
 * @property {string} token
 * @property {string} role
 * @property {RTCIceServer[]} ice_servers
 * @property {boolean} [force_relay]
 */
/**
 * connecting → lobby | in_call; reconnecting → lobby | in_call; ended; failed
 * @typedef {'idle'|'connecting'|'lobby'|'in_call'|'reconnecting'|'ended'|'failed'} CallState
 */

/** Give up reconnecting after this long without success (ms). */
const RECONNECT_WINDOW_MS = 60000;
/** A `disconnected` peer connection this long is treated as failed (ms). */
const DISCONNECTED_GRACE_MS = 2500;
/** How often the video sender is checked for a network that recovered (ms). */
const SHARPNESS_MS = 1000;
/** sessionStorage key: when "join" was clicked on the device check page (epoch ms). */
export const JOIN_CLICKED_KEY = 'beeldbel-join-clicked';
/** Longest chat message (characters), as the media server enforces. */
export const CHAT_MAX = 2000;

/** An error from the token endpoint or the media server, with its code. */
export class CallError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status] HTTP status, when it came from the control plane
   */
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/**
 * A token for the media server from the control plane's token endpoint; a
 * CallError when it is unreachable or refuses.
 * @param {string} tokenUrl  the control plane's POST token endpoint
 * @param {string} csrf  value for the X-CSRF-Token header
 * @returns {Promise<TokenReply>}
 */
export async function fetchToken(tokenUrl, csrf) {
  let response;
  try {
    response = await fetch(tokenUrl, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'X-CSRF-Token': csrf, Accept: 'application/json', 'Content-Type': 'application/json'},
      body: '{}',
    });
  } catch {
    throw new CallError('network', 'the control plane is unreachable');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok || !body || typeof body.token !== 'string') {
    const error = body && body.error ? body.error : {};
    throw new CallError(error.code || 'error', error.message || `token: HTTP ${response.status}`, response.status);
  }
  return body;
}

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.tokenUrl  the control plane's POST token endpoint
   * @param {string} options.csrf  value for the X-CSRF-Token header
   * @param {boolean} [options.forceRelay]  ICE over TURN only (also when the token says so)
   */
  constructor({tokenUrl, csrf, forceRelay = false}) {
    this.tokenUrl = tokenUrl;
    this.csrf = csrf;
    this.forceRelay = forceRelay;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {RTCDataChannel | null} */
    this.chat = null;
    /** @type {RTCRtpTransceiver | null} what carries our camera */
    this.videoTransceiver = null;
    /** @type {MediaStream | null} */
    this.stream = null;
    /** @type {Record<string, TrackInfo>} whose stream each mid carries */
    this.tracks = {};
    /** @type {CallState} */
    this.state = 'idle';
    this.role = '';
    this.participantId = '';
    /** @type {Participant[]} */
    this.participants = [];
    this.reconnects = 0;
    this.relay = false;
    /** Set by leave(), room_ended and removed: no reconnect after that. */
    this.finished = false;
    /** Incremented per attempt; messages of an older attempt are ignored. */
    this.generation = 0;
    /** @type {number} when the current reconnect started (ms, performance.now) */
    this.reconnectingSince = 0;
    /** @type {number | undefined} */
    this.disconnectTimer = undefined;
    /** @type {number | undefined} */
    this.watchdog = undefined;
    /** @type {number | undefined} */
    this.sharpnessTimer = undefined;
    this.sharpness = new SharpnessWatch();
    this.sharpening = false;
    /** Resolved once this attempt's first offer is sent; later messages wait for it. */
    this.peerReady = Promise.resolve();
    /** @type {(value?: unknown) => void} */
    this.markPeerReady = () => {};

    /** @type {(state: CallState, detail?: string) => void} */
    this.onstate = () => {};
    /** @type {(track: MediaStreamTrack, info: TrackInfo | undefined) => void} */
    this.ontrack = () => {};
    /** @type {(participants: Participant[]) => void} */
    this.onparticipants = () => {};
    /** @type {(message: {text: string, from_role: string}) => void} */
    this.onchat = () => {};
    /** a failure this connection got past (a reconnect, a bad message), to be
     * counted by the page (client_errors.js kinds and codes); never personal data
     * @type {(kind: 'message' | 'connection', code: string) => void} */
    this.onproblem = () => {};
    /** real-time text: the other's line as it is being typed
     * @type {(message: {text: string, from_role: string, participant_id: string}) => void} */
    this.ontyping = () => {};
    /** the other's microphone and camera
     * @type {(message: {muted: boolean, camera: boolean, from_role: string, participant_id: string}) => void} */
    this.onremotestate = () => {};
    /** @type {(open: boolean) => void} */
    this.onchatstate = () => {};
    /** @type {(error: CallError) => void} */
    this.onerror = () => {};
    /** @type {(pc: RTCPeerConnection) => void} a new peer connection exists */
    this.onpeer = () => {};
  }

  /**
   * Join the call and publish `stream` (its tracks may change later).
   * @param {MediaStream} stream
   */
  async start(stream) {
    this.stream = stream;
    this.setState('connecting');
    this.watchdog = window.setInterval(() => this.checkAlive(), 1000);
    this.sharpnessTimer = window.setInterval(() => this.keepSharp(), SHARPNESS_MS);
    await this.connect();
  }

  /** One attempt: token → WebSocket → join → peer connection → offer. */
  async connect() {
    const generation = ++this.generation;
    const reply = await fetchToken(this.tokenUrl, this.csrf);
    if (generation !== this.generation || this.finished) return;
    this.relay = this.forceRelay || Boolean(reply.force_relay);
    const ws = new WebSocket(reply.media_url);
    this.ws = ws;
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new CallError('network', 'the media server is unreachable'));
    });
    ws.onerror = null;
    const joined = await this.join(ws, reply, generation);
    if (generation !== this.generation) return;
    this.role = joined.role;
    this.participantId = joined.participant_id;
    const servers = reply.ice_servers && reply.ice_servers.length ? reply.ice_servers : joined.ice_servers;
    await this.createPeer(servers || [], joined.video_codec);
    this.setState(joined.state === 'lobby' ? 'lobby' : 'in_call');
    this.markPeerReady();
  }

  /**
   * Send `join`; resolve with `joined`. Later messages go to handle(), in order.
   * @param {WebSocket} ws
   * @param {TokenReply} reply
   * @param {number} generation
   * @returns {Promise<Message>}
   */
  join(ws, reply, generation) {
    /** @type {(value?: unknown) => void} */
    let ready = () => {};
    this.peerReady = new Promise((resolve) => { ready = resolve; });
    this.markPeerReady = ready;
    /** @type {Promise<unknown>} messages wait for the peer connection, then go in order */
    let chain = this.peerReady;
    return new Promise((resolve, reject) => {
      let first = true;
      ws.onmessage = (event) => {
        if (generation !== this.generation) return;
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          this.onproblem('message', 'bad_json');
          return;
        }
        if (first) {
          first = false;
          if (message.type === 'joined') resolve(message);
          else reject(new CallError(message.code || message.type, message.message || 'join refused'));
          return;
        }
        chain = chain.then(() => this.handle(message)).catch(() => {
          this.onproblem('connection', 'negotiation_failed');
          this.lost('negotiation failed');
        });
      };
      ws.onclose = () => {
        if (first) reject(new CallError('network', 'the media server closed the connection'));
        else if (generation === this.generation) this.lost('websocket closed');
      };
      ws.send(JSON.stringify({type: 'join', room_id: reply.room_id, token: reply.token}));
    });
  }

  /**
   * @param {RTCIceServer[]} iceServers
   * @param {string} videoCodec
   */
  async createPeer(iceServers, videoCodec) {
    const pc = new RTCPeerConnection({
      iceServers,
      bundlePolicy: 'max-bundle',
      iceTransportPolicy: this.relay ? 'relay' : 'all',
    });
    this.pc = pc;
    this.tracks = {};
    pc.ontrack = (event) => this.ontrack(event.track, this.tracks[event.transceiver.mid || '']);
    pc.onconnectionstatechange = () => this.onPeerState(pc);
    const stream = /** @type {MediaStream} */ (this.stream);
    for (const kind of ['audio', 'video']) {
      const track = stream.getTracks().find((t) => t.kind === kind) || null;
      const transceiver = pc.addTransceiver(track || kind, {direction: 'sendonly', streams: [stream]});
      if (kind === 'video') {
        preferCodec(transceiver, videoCodec);
        this.videoTransceiver = transceiver;
      }
    }
    this.openChat(pc);
    this.onpeer(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    this.send({type: 'offer', sdp: pc.localDescription?.sdp});
  }

  /** The `chat` data channel, created before the first offer (docs/protocol.md). */
  openChat(/** @type {RTCPeerConnection} */ pc) {
    const channel = pc.createDataChannel('chat', {ordered: true});
    this.chat = channel;
    channel.onopen = () => this.onchatstate(true);
    channel.onclose = () => this.onchatstate(false);
    channel.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        this.onproblem('message', 'bad_json');
        return; // not JSON: ignored
      }
      if (!message || typeof message !== 'object') return;
      const from = {from_role: String(message.from_role || ''), participant_id: String(message.participant_id || '')};
      if (message.type === 'typing' && typeof message.text === 'string') {
        this.ontyping({...from, text: Array.from(message.text).slice(0, CHAT_MAX).join('')});
      } else if (message.type === 'state') {
        this.onremotestate({...from, muted: message.muted === true, camera: message.camera !== false});
      } else if (message.type === undefined && typeof message.text === 'string') {
        this.onchat({text: Array.from(message.text).slice(0, CHAT_MAX).join(''), from_role: from.from_role});
      }
    };
  }

  /** @param {Message} message */
  async handle(message) {
    const pc = this.pc;
    switch (message.type) {
      case 'answer':
        await pc?.setRemoteDescription({type: 'answer', sdp: message.sdp});
        break;
      case 'offer':
        if (!pc) return;
        for (const track of message.tracks || []) this.tracks[track.mid] = track;
        await pc.setRemoteDescription({type: 'offer', sdp: message.sdp});
        await pc.setLocalDescription(await pc.createAnswer());
        this.send({type: 'answer', sdp: pc.localDescription?.sdp});
        break;
      case 'participants':
        this.participants = message.participants || [];
        this.onparticipants(this.participants);
        break;
      case 'admitted':
        this.setState('in_call');
        break;
      case 'room_ended':
        this.finish('room_ended', true);
        break;
      case 'removed':
        this.finish(message.reason === 'replaced' ? 'replaced' : 'removed', true);
        break;
      case 'error':
        this.onerror(new CallError(message.code || 'error', message.message || ''));
        break;
      default:
        break;
    }
  }

  /** @param {RTCPeerConnection} pc */
  onPeerState(pc) {
    if (pc !== this.pc) return;
    window.clearTimeout(this.disconnectTimer);
    if (pc.connectionState === 'failed') this.lost('ice failed');
    else if (pc.connectionState === 'disconnected') {
      this.disconnectTimer = window.setTimeout(() => {
        if (pc === this.pc && pc.connectionState === 'disconnected') this.lost('ice disconnected');
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** Watchdog: a peer connection closed under us (e.g. by the browser) is lost too. */
  checkAlive() {
    if (this.finished || this.state === 'reconnecting') return;
    if (this.pc && this.pc.connectionState === 'closed') this.lost('peer connection closed');
    else if (this.ws && this.ws.readyState === WebSocket.CLOSED) this.lost('websocket closed');
  }

  /**
   * The connection broke: build a new one with a fresh token, until it works or
   * RECONNECT_WINDOW_MS passed.
   * @param {string} why
   */
  async lost(why) {
    if (this.finished || this.state === 'reconnecting') return;
    this.reconnects += 1;
    this.reconnectingSince = performance.now();
    this.setState('reconnecting', why);
    let delay = 0;
    while (!this.finished) {
      this.closeTransport();
      try {
        await this.connect();
        return;
      } catch (error) {
        const callError = error instanceof CallError ? error : new CallError('error', String(error));
        this.onproblem('connection', callError.status ? 'token_failed' : 'websocket_failed');
        // the call is over or the link is gone: no point in retrying
        if ([401, 403, 404, 409, 410].includes(callError.status)) {
          this.finish(callError.code || 'ended');
          return;
        }
        if (performance.now() - this.reconnectingSince > RECONNECT_WINDOW_MS) {
          this.failed(callError);
          return;
        }
      }
      delay = Math.min(delay + 500, 3000);
      await new Promise((resolve) => window.setTimeout(resolve, delay));
    }
  }

  /** @param {unknown} error */
  failed(error) {
    if (this.finished) return;
    const callError = error instanceof CallError ? error : new CallError('error', String(error));
    this.onerror(callError);
    this.finished = true;
    this.closeTransport();
    this.stop();
    this.setState('failed', callError.code);
  }

  /**
   * @param {string} reason
   * @param {boolean} [byServer] the server ended it and closes the socket itself
   */
  finish(reason, byServer = false) {
    if (this.finished) return;
    this.finished = true;
    this.closeTransport(byServer);
    this.stop();
    this.setState('ended', reason);
  }

  /** @param {boolean} [leaveSocket] let the server close the WebSocket */
  closeTransport(leaveSocket = false) {
    this.generation += 1;
    window.clearTimeout(this.disconnectTimer);
    const {ws, pc} = this;
    this.ws = null;
    this.pc = null;
    this.chat = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      if (!leaveSocket) ws.close();
    }
    pc?.close();
  }

  stop() {
    window.clearInterval(this.watchdog);
    window.clearInterval(this.sharpnessTimer);
    for (const track of this.stream?.getTracks() || []) track.stop();
  }

  /** Close everything without a state change (the page is going elsewhere). */
  close() {
    this.send({type: 'leave'});
    this.finished = true;
    this.closeTransport();
    this.stop();
  }

  /** Hang up: tell the media server, then close everything. */
  leave() {
    this.send({type: 'leave'});
    this.finish('left');
  }

  /**
   * @param {CallState} state
   * @param {string} [detail]
   */
  setState(state, detail) {
    this.state = state;
    this.onstate(state, detail);
  }

  /** @param {Message} message */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** @param {string} participantId */
  admit(participantId) {
    this.send({type: 'admit', participant_id: participantId});
  }

  /** @param {string} participantId */
  remove(participantId) {
    this.send({type: 'remove', participant_id: participantId});
  }

  /**
   * Send a chat message; false when the channel is not open.
   * @param {string} text
   */
  sendChat(text) {
    const channel = this.chat;
    if (!channel || channel.readyState !== 'open') return false;
    // at most CHAT_MAX characters (code points: a surrogate pair is never split)
    channel.send(JSON.stringify({text: Array.from(text).slice(0, CHAT_MAX).join(''), from_role: this.role}));
    return true;
  }

  /**
   * Send a signal (docs/protocol.md, Chat): {type: 'typing', text} or
   * {type: 'state', muted, camera}; false when the channel is not open.
   * @param {{type: 'typing', text: string} | {type: 'state', muted: boolean, camera: boolean}} signal
   */
  sendSignal(signal) {
    const channel = this.chat;
    if (!channel || channel.readyState !== 'open') return false;
    channel.send(JSON.stringify(signal));
    return true;
  }

  /** @param {boolean} enabled */
  setMicEnabled(enabled) {
    for (const track of this.stream?.getAudioTracks() || []) track.enabled = enabled;
  }

  /**
   * Camera on/off. Off sends nothing (no black frames) until it is on again.
   * @param {boolean} enabled
   */
  async setCameraEnabled(enabled) {
    for (const track of this.stream?.getVideoTracks() || []) track.enabled = enabled;
    await this.setVideoSending(enabled);
  }

  /**
   * Pause or resume sending video without renegotiation (audio-only fallback).
   * @param {boolean} sending
   */
  async setVideoSending(sending) {
    const sender = this.videoSender();
    if (!sender) return;
    const parameters = sender.getParameters();
    if (!parameters.encodings || !parameters.encodings.length) return;
    for (const encoding of parameters.encodings) encoding.active = sending;
    await sender.setParameters(parameters);
  }

  /**
   * Use another camera (front/back): swap the track, no renegotiation.
   * @param {MediaStreamTrack} track
   */
  async replaceVideoTrack(track) {
    const stream = this.stream;
    if (!stream) return;
    for (const old of stream.getVideoTracks()) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
    await this.videoSender()?.replaceTrack(track);
  }

  /** Full-size video again once the network recovers (sharpness.js). */
  async keepSharp() {
    const pc = this.pc;
    const sender = this.videoSender();
    // one check at a time: on a busy machine getStats can outlast the interval
    if (this.sharpening || !pc || !sender?.track || pc.connectionState !== 'connected') {
      return;
    }
    this.sharpening = true;
    try {
      const sample = senderSample(await pc.getStats(), performance.now());
      if (this.sharpness.update(sample)) await resetResolution(sender);
    } catch (error) {
      // a browser without degradationPreference keeps its own pace: no harm
      console.log(`resolution reset: ${error}`);
    } finally {
      this.sharpening = false;
    }
  }

  /** @returns {RTCRtpSender | null} */
  videoSender() {
    return this.pc && this.videoTransceiver ? this.videoTransceiver.sender : null;
  }
}

/**
 * @param {RTCRtpTransceiver} transceiver
 * @param {string} codec "VP8" or "H264"
 */
function preferCodec(transceiver, codec) {
  const capabilities = RTCRtpReceiver.getCapabilities('video');
  if (!capabilities || !transceiver.setCodecPreferences) return;
  const wanted = capabilities.codecs.filter((c) => {
    const mime = c.mimeType.toLowerCase();
    if (mime === 'video/rtx') return true;
    if (codec === 'H264') {
      const fmtp = c.sdpFmtpLine || '';
      return mime === 'video/h264' && fmtp.includes('profile-level-id=42e01f')
        && fmtp.includes('packetization-mode=1');
    }
    return mime === 'video/vp8';
  });
  if (wanted.length) transceiver.setCodecPreferences(wanted);
}

/** @param {RTCPeerConnection} pc */
function gatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', check);
        resolve(undefined);
      }
    };
    pc.addEventListener('icegatheringstatechange', check);
    // relay-only gathering against an unreachable TURN server must not hang
    window.setTimeout(() => {
      pc.removeEventListener('icegatheringstatechange', check);
      resolve(undefined);
    }, 5000);
  });
}
