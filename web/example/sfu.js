// @ts-check
/**
 * A minimal client of the Beeldbel media server (docs/protocol.md).
 * No DOM code here: example.js owns the page.
 */

/**
 * @typedef {{type: string, [key: string]: any}} Message
 */

export class SfuConnection {
  /**
   * @param {string} url WebSocket URL of the media server, e.g. wss://media/ws
   */
  constructor(url) {
    this.url = url;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Record<string, {participant_id: string, kind: string}>} */
    this.tracks = {};
    /** @type {(track: MediaStreamTrack, info: {participant_id: string, kind: string} | undefined) => void} */
    this.ontrack = () => {};
    /** @type {(message: Message) => void} */
    this.onmessage = () => {};
    /** The role from the `joined` message: agent, citizen or interpreter. */
    this.role = '';
  }

  /**
   * Join a room and publish `stream`.
   * @param {string} roomId
   * @param {string} token  the join token from the control plane
   * @param {MediaStream} stream
   * @returns {Promise<Message>} the `joined` message
   */
  async join(roomId, token, stream) {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    /** @type {(pc: RTCPeerConnection) => void} */
    let ready = () => {};
    /** @type {Promise<RTCPeerConnection>} */
    const pcReady = new Promise((resolve) => { ready = resolve; });
    /** @type {Promise<unknown>} messages are handled one at a time, in order */
    let chain = Promise.resolve();
    const joined = await new Promise((resolve, reject) => {
      let first = true;
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (first) {
          first = false;
          if (message.type === 'joined') resolve(message);
          else reject(new Error(message.code || message.type));
          return;
        }
        chain = chain.then(() => pcReady).then(() => this.handle(message));
      };
      this.send({type: 'join', room_id: roomId, token});
    });
    this.role = joined.role;
    this.pc = new RTCPeerConnection({
      iceServers: joined.ice_servers,
      bundlePolicy: 'max-bundle',
    });
    this.pc.ontrack = (event) => {
      const mid = event.transceiver.mid || '';
      this.ontrack(event.track, this.tracks[mid]);
    };
    for (const track of stream.getTracks()) {
      const transceiver = this.pc.addTransceiver(track, {direction: 'sendonly', streams: [stream]});
      if (track.kind === 'video') preferCodec(transceiver, joined.video_codec);
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gatheringComplete(this.pc);
    this.send({type: 'offer', sdp: this.pc.localDescription?.sdp});
    ready(this.pc);
    return joined;
  }

  /** @param {Message} message */
  async handle(message) {
    const pc = this.pc;
    if (!pc) return;
    if (message.type === 'answer') {
      await pc.setRemoteDescription({type: 'answer', sdp: message.sdp});
    } else if (message.type === 'offer') {
      for (const track of message.tracks || []) this.tracks[track.mid] = track;
      await pc.setRemoteDescription({type: 'offer', sdp: message.sdp});
      await pc.setLocalDescription(await pc.createAnswer());
      this.send({type: 'answer', sdp: pc.localDescription?.sdp});
    }
    this.onmessage(message);
  }

  /** @param {Message} message */
  send(message) {
    this.ws?.send(JSON.stringify(message));
  }

  /** @param {string} participantId */
  admit(participantId) {
    this.send({type: 'admit', participant_id: participantId});
  }

  leave() {
    this.send({type: 'leave'});
    this.pc?.close();
    this.ws?.close();
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
      return mime === 'video/h264' && (c.sdpFmtpLine || '').includes('profile-level-id=42e01f')
        && (c.sdpFmtpLine || '').includes('packetization-mode=1');
    }
    return mime === 'video/vp8';
  });
  transceiver.setCodecPreferences(wanted);
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
  });
}
