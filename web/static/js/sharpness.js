// @ts-check
/**
 * Sharp video again once the network recovers.
 *
 * On a narrow link Chrome's encoder steps its resolution down (480p → 360p →
 * 240p, the `bandwidth` quality limitation). When the link widens again it steps
 * up only when its quantizer is low for a while, which a moving picture at a
 * modest rate rarely gives: measured with the busy clip (bench/network_quality.py
 * `downstep`), it sent 240p for the 20 s after the link came back although its
 * own estimate said 1.75 Mbit/s from the first second.
 *
 * Switching the sender's degradation preference to `balanced` and back clears
 * the encoder's restrictions: the next frame is at full size.
 * That also raises the encoder's bitrate allocation, which makes Chrome probe the
 * link at once instead of climbing its estimate at ~8 % a second. We do it only
 * after a dip: when the encoder has been held back for HELD_MS and the estimate
 * has clearly grown since (twice its lowest, twice in a row), not in the call's
 * first START_MS (Chrome's own start-up probes size the link then), and at most
 * every RESET_INTERVAL_MS, so that a link still narrow does not swing between
 * sizes. No DOM code.
 */

import {selectedPair} from './media_stats.js';

/** The estimate must reach this many times its lowest while held back. */
export const RECOVERED = 2;
/** ... in this many samples in a row. */
export const SAMPLES = 2;
/** Not more often than this (ms). */
export const RESET_INTERVAL_MS = 10000;
/** The encoder held back at least this long: a dip, not a moment (ms). */
export const HELD_MS = 5000;
/** Not in the call's first seconds (ms). */
export const START_MS = 15000;

/**
 * @typedef {object} SenderSample
 * @property {boolean} limited  the encoder is held back by bandwidth
 * @property {number | null} available  the send-side estimate (bit/s)
 * @property {number} at  when (ms, any monotonic clock)
 */

/** The decision, one sample at a time. */
export class SharpnessWatch {
  constructor() {
    /** @type {number | null} when the first sample came */
    this.firstAt = null;
    /** @type {number | null} since when the encoder is held back */
    this.heldSince = null;
    /** @type {number | null} lowest estimate since then */
    this.low = null;
    this.recovered = 0;
    this.lastReset = -Infinity;
  }

  /**
   * @param {SenderSample} sample
   * @returns {boolean} whether to clear the encoder's restrictions now
   */
  update({limited, available, at}) {
    this.firstAt ??= at;
    if (!limited || available === null) {
      this.heldSince = this.low = null;
      this.recovered = 0;
      return false;
    }
    this.heldSince ??= at;
    this.low = Math.min(this.low ?? available, available);
    this.recovered = available >= RECOVERED * this.low ? this.recovered + 1 : 0;
    const due =
      this.recovered >= SAMPLES &&
      at - this.heldSince >= HELD_MS &&
      at - this.firstAt >= START_MS &&
      at - this.lastReset >= RESET_INTERVAL_MS;
    if (!due) return false;
    this.lastReset = at;
    this.heldSince = this.low = null;
    this.recovered = 0;
    return true;
  }
}

/**
 * What `update` needs, from the peer connection's stats.
 * @param {RTCStatsReport} report
 * @param {number} at
 * @returns {SenderSample}
 */
export function senderSample(report, at) {
  let limited = false;
  report.forEach((entry) => {
    if (entry.type === 'outbound-rtp' && entry.kind === 'video') {
      limited = limited || entry.qualityLimitationReason === 'bandwidth';
    }
  });
  const pair = selectedPair(report);
  /** @type {number | null} */
  const available = typeof pair?.availableOutgoingBitrate === 'number' ? pair.availableOutgoingBitrate : null;
  return {limited, available, at};
}

/**
 * Clear the encoder's restrictions of `sender`: its degradation preference to
 * or from `balanced` and back to what it was (Chrome clears them on a switch
 * that involves `balanced`; unset, its camera default is `maintain-framerate`).
 * @param {RTCRtpSender} sender
 */
export async function resetResolution(sender) {
  const before = sender.getParameters().degradationPreference;
  const away = sender.getParameters();
  away.degradationPreference = before === 'balanced' ? 'maintain-framerate' : 'balanced';
  await sender.setParameters(away);
  const back = sender.getParameters();
  if (before === undefined) delete back.degradationPreference;
  else back.degradationPreference = before;
  await sender.setParameters(back);
}
