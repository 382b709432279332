// Tidings Studio: copy buttons, confirmations and the email frame. Everything else is htmx
// and plain forms.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-from]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyFrom);
  if (!source) return;
  const text = source.value ?? source.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    source.select?.();
    document.execCommand("copy");
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});

// A form with data-confirm is submitted only once its question is answered OK.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// After each template preview, render the unsaved email into its sandboxed frame too.
document.addEventListener("htmx:after:swap", (event) => {
  if (event.target.id !== "preview-trigger") return;
  const submit = document.getElementById("email-frame-submit");
  submit?.form.requestSubmit(submit);
});
