// @ts-check
/**
 * Summaries of a peer connection's getStats(): the connection type (direct or
 * relay, from the selected candidate pair), round-trip time and packet loss per
 * sample, a quality level, and the call's quality record (percentiles, time from
 * joining to the first remote picture, reconnects). No DOM code.
 */

/** @typedef {'good'|'fair'|'poor'|'unknown'} QualityLevel */
/**
 * @typedef {object} Sample
 * @property {number | null} rttMs  round-trip time of the selected pair
 * @property {number | null} lossPct  inbound loss since the previous sample
 * @property {'direct'|'relay'|'unknown'} connectionType
 * @property {QualityLevel} level
 * @property {{framesDecoded: number, frameWidth: number, frameHeight: number, framesPerSecond: number}[]} inboundVideo
 * @property {{bytesSent: number, kind: string}[]} outbound
 */

/**
 * good: RTT < 250 ms and loss < 2 %; fair: RTT < 600 ms and loss < 8 %; else poor.
 * @param {number | null} rttMs
 * @param {number | null} lossPct
 * @returns {QualityLevel}
 */
export function qualityLevel(rttMs, lossPct) {
  if (rttMs === null && lossPct === null) return 'unknown';
  const rtt = rttMs ?? 0;
  const loss = lossPct ?? 0;
  if (rtt < 250 && loss < 2) return 'good';
  if (rtt < 600 && loss < 8) return 'fair';
  return 'poor';
}

/**
 * The value below which `p` percent of `values` lie (nearest rank).
 * @param {number[]} values
 * @param {number} p 0..100
 * @returns {number | null}
 */
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return /** @type {number} */ (sorted[Math.min(rank, sorted.length) - 1]);
}

/**
 * The candidate pair a stats report's transport uses (the selected one, else a
 * nominated or selected pair that succeeded), or null.
 * @param {RTCStatsReport} report
 * @returns {any}
 */
export function selectedPair(report) {
  /** @type {any} */
  let pair = null;
  report.forEach((entry) => {
    if (entry.type === 'transport' && entry.selectedCandidatePairId) {
      pair = report.get(entry.selectedCandidatePairId) || pair;
    }
  });
  if (!pair) {
    report.forEach((entry) => {
      if (entry.type === 'candidate-pair' && entry.state === 'succeeded' && (entry.nominated || entry.selected)) pair = entry;
    });
  }
  return pair;
}

/**
 * Read one summary from a stats report.
 * @param {RTCStatsReport} report
 * @returns {{rttMs: number | null, connectionType: 'direct'|'relay'|'unknown', lost: number, received: number,
 *   inboundVideo: Sample['inboundVideo'], outbound: Sample['outbound']}}
 */
export function summarize(report) {
  /** @type {Map<string, any>} */
  const byId = new Map();
  report.forEach((entry) => byId.set(entry.id, entry));
  const pair = selectedPair(report);
  /** @type {'direct'|'relay'|'unknown'} */
  let connectionType = 'unknown';
  let rttMs = null;
  if (pair) {
    const local = byId.get(pair.localCandidateId);
    const remote = byId.get(pair.remoteCandidateId);
    if (local || remote) {
      const relayed = (local && local.candidateType === 'relay') || (remote && remote.candidateType === 'relay');
      connectionType = relayed ? 'relay' : 'direct';
    }
    if (typeof pair.currentRoundTripTime === 'number') rttMs = pair.currentRoundTripTime * 1000;
  }
  let lost = 0;
  let received = 0;
  /** @type {Sample['inboundVideo']} */
  const inboundVideo = [];
  /** @type {Sample['outbound']} */
  const outbound = [];
  for (const entry of byId.values()) {
    if (entry.type === 'inbound-rtp') {
      lost += Math.max(0, entry.packetsLost || 0);
      received += entry.packetsReceived || 0;
      if (entry.kind === 'video') {
        inboundVideo.push({
          framesDecoded: entry.framesDecoded || 0,
          frameWidth: entry.frameWidth || 0,
          frameHeight: entry.frameHeight || 0,
          framesPerSecond: entry.framesPerSecond || 0,
        });
      }
    } else if (entry.type === 'outbound-rtp') {
      outbound.push({bytesSent: entry.bytesSent || 0, kind: entry.kind || ''});
    }
  }
  return {rttMs, connectionType, lost, received, inboundVideo, outbound};
}

/** Samples of one call, across reconnects; builds the quality record. */
export class MediaStats {
  constructor() {
    /** @type {number[]} */
    this.rtts = [];
    /** @type {number[]} */
    this.losses = [];
    this.totalLost = 0;
    this.totalReceived = 0;
    /** @type {{lost: number, received: number, pc: RTCPeerConnection | null}} */
    this.previous = {lost: 0, received: 0, pc: null};
    /** @type {'direct'|'relay'|'unknown'} */
    this.connectionType = 'unknown';
    /** @type {number | null} epoch ms the measurement starts (join click, or admission) */
    this.startedAt = null;
    /** @type {number | null} epoch ms of the first decoded remote picture */
    this.firstPictureAt = null;
    /** @type {Sample | null} */
    this.last = null;
  }

  /** @param {number} at epoch ms */
  markStart(at) {
    if (this.firstPictureAt === null) this.startedAt = at;
  }

  /** @param {number} at epoch ms */
  markFirstPicture(at) {
    if (this.firstPictureAt === null && this.startedAt !== null) this.firstPictureAt = at;
  }

  /** @returns {number | null} */
  joinToFirstPictureMs() {
    if (this.firstPictureAt === null || this.startedAt === null) return null;
    return Math.max(0, Math.round(this.firstPictureAt - this.startedAt));
  }

  /**
   * Take one sample of `pc`.
   * @param {RTCPeerConnection} pc
   * @returns {Promise<Sample>}
   */
  async sample(pc) {
    const summary = summarize(await pc.getStats());
    if (this.previous.pc !== pc) this.previous = {lost: 0, received: 0, pc};
    const lost = summary.lost - this.previous.lost;
    const received = summary.received - this.previous.received;
    this.previous = {lost: summary.lost, received: summary.received, pc};
    const lossPct = lost + received > 0 ? (100 * lost) / (lost + received) : null;
    if (lossPct !== null) {
      this.losses.push(lossPct);
      this.totalLost += Math.max(0, lost);
      this.totalReceived += Math.max(0, received);
    }
    if (summary.rttMs !== null) this.rtts.push(summary.rttMs);
    if (summary.connectionType !== 'unknown') this.connectionType = summary.connectionType;
    const level = qualityLevel(summary.rttMs, lossPct);
    this.last = {
      rttMs: summary.rttMs,
      lossPct,
      connectionType: summary.connectionType,
      level,
      inboundVideo: summary.inboundVideo,
      outbound: summary.outbound,
    };
    return this.last;
  }

  /**
   * The body for POST quality-url.
   * @param {number} reconnects
   */
  record(reconnects) {
    const p50 = percentile(this.rtts, 50);
    const p95 = percentile(this.rtts, 95);
    const total = this.totalLost + this.totalReceived;
    return {
      join_to_first_picture_ms: this.joinToFirstPictureMs(),
      connection_type: this.connectionType,
      reconnects,
      rtt_ms_p50: p50 === null ? null : Math.round(p50),
      rtt_ms_p95: p95 === null ? null : Math.round(p95),
      loss_pct: total > 0 ? Math.round((10000 * this.totalLost) / total) / 100 : null,
    };
  }
}
