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

// After each template preview, render the unsaved email into its sandboxed frame too, through
// a form of its own (#email-frame-form) holding a copy of the template form's fields. One
// render at a time: a preview that swaps while the frame loads asks for one more render once it
// has loaded, so the frame always ends on the form as it is now. Once the template form is
// submitted (Save), the page is leaving: no more renders.
const emailFrame = { loading: false, stale: false, leaving: false, timer: 0 };

function renderEmailFrame() {
  const target = document.getElementById("email-frame-form");
  const source = document.getElementById("template-form");
  if (!target || !source || emailFrame.leaving) return;
  if (emailFrame.loading) {
    emailFrame.stale = true;
    return;
  }
  emailFrame.loading = true;
  emailFrame.stale = false;
  // A load that never reports (a dropped connection) must not stop later renders.
  emailFrame.timer = setTimeout(emailFrameLoaded, 10000);
  const fields = Array.from(new FormData(source), ([name, value]) => {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  });
  target.replaceChildren(...fields);
  target.submit();
}

function emailFrameLoaded() {
  clearTimeout(emailFrame.timer);
  emailFrame.loading = false;
  if (emailFrame.stale) renderEmailFrame();
}

document.addEventListener("submit", (event) => {
  if (event.target.id === "template-form" && !event.defaultPrevented) emailFrame.leaving = true;
});
document.addEventListener("htmx:after:swap", (event) => {
  if (event.target.id === "preview-trigger") renderEmailFrame();
});
// load does not bubble: listen in the capture phase.
document.addEventListener("load", (event) => {
  if (event.target.id === "email-frame") emailFrameLoaded();
}, true);

// The automation editor answers each step operation (add, move, remove, Form/JSON) with the
// editor again, naming in data-focus what to focus: the new card's first field, the card
// moved, the view switched to. Without it, focus would fall back to the page.
document.addEventListener("htmx:after:swap", () => {
  const editor = document.querySelector("#editor[data-focus]");
  if (!editor) return;
  document.getElementById(editor.dataset.focus)?.focus();
  delete editor.dataset.focus;
});
