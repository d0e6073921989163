// Nexus pages work without JavaScript; this only adds conveniences.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  } catch {
    field.select();
    button.textContent = "Press Ctrl+C";
  }
});

// A form with fieldsets per authentication mode (Site management › Providers) shows only the chosen mode's fields.
// Without JavaScript every fieldset shows, and the server reads only the chosen mode's fields anyway.
function showModes(form) {
  const mode = form.querySelector("select[name=auth_mode]").value;
  for (const fieldset of form.querySelectorAll("fieldset[data-mode]")) {
    const applies = fieldset.dataset.mode.split(" ").includes(mode);
    fieldset.hidden = !applies;
    fieldset.disabled = !applies;
  }
}
for (const form of document.querySelectorAll("form[data-modes]")) {
  showModes(form);
  form.querySelector("select[name=auth_mode]").addEventListener("change", () => showModes(form));
}
