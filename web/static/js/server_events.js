// @ts-check
/**
 * Server-Sent Events whose data is JSON (the staff queue, the call's progress
 * and the waiting room's messages).
 */

/**
 * Call `handle` with the parsed data of each `kind` event on `source`; an event
 * whose data is not JSON is skipped.
 * @param {EventSource} source
 * @param {string} kind
 * @param {(data: any) => void} handle
 */
export function onJsonEvent(source, kind, handle) {
  source.addEventListener(kind, (event) => {
    let data;
    try {
      data = JSON.parse(/** @type {MessageEvent} */ (event).data);
    } catch {
      return;
    }
    handle(data);
  });
}
