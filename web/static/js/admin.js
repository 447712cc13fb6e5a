// Staff forms: after a failed submit, move focus to the error summary so
// keyboard and screen-reader users hear what went wrong first.
const summary = document.querySelector('[data-error-summary]');
if (summary instanceof HTMLElement) {
  summary.focus();
}
