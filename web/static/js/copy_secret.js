// The API keys page: copy a new key's secret (shown once) to the clipboard, and
// say so in a status region; where the clipboard is refused, select the text
// so the admin can copy it by hand.
const button = document.getElementById('copy-api-key');
const status = document.getElementById('copy-api-key-status');
const secret = document.getElementById(button?.dataset['copySecret'] || '');

/** Select the secret's text, for copying by hand. */
function selectSecret() {
  const selection = window.getSelection();
  if (secret && selection) {
    selection.selectAllChildren(secret);
  }
}

button?.addEventListener('click', async () => {
  if (!secret || !status) {
    return;
  }
  try {
    await navigator.clipboard.writeText(secret.textContent || '');
    status.textContent = status.dataset['copied'] || '';
  } catch {
    selectSecret();
    status.textContent = status.dataset['copyFailed'] || '';
  }
});
