// Progressive enhancement for the callback form; the form works without it.
// - moves focus to the error summary so screen readers read it first;
// - shows the time list only while "at a time I choose" is selected.

/** @param {Document} doc */
function focusErrorSummary(doc) {
  const summary = doc.getElementById('error-summary');
  if (summary instanceof HTMLElement) {
    summary.focus();
  }
}

/** @param {Document} doc */
function revealSlotWhenChosen(doc) {
  const field = doc.getElementById('slot-field');
  const choice = doc.getElementById('preferred-slot');
  if (!(field instanceof HTMLElement) || !(choice instanceof HTMLInputElement)) {
    return;
  }
  const hasError = field.classList.contains('has-error');
  const update = () => {
    field.hidden = !choice.checked && !hasError;
  };
  choice.setAttribute('aria-controls', 'slot-field');
  doc.querySelectorAll('input[name="preferred"]').forEach((radio) => {
    radio.addEventListener('change', update);
  });
  update();
}

focusErrorSummary(document);
revealSlotWhenChosen(document);
