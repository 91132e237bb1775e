// The operator console's only script (served from /console/assets/, so the CSP allows no
// inline script). Every page works without it; it adds copy buttons, confirmations and
// live refresh of the parts of a page that change on their own.
"use strict";

// <button data-copy="ID">: copies the text of element ID.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// <form data-confirm="question">: asks before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// <section id="X" data-refresh="SECONDS">: replaced every SECONDS by the same section of
// the page as the server renders it now (stops while the tab is hidden).
for (const section of document.querySelectorAll("[data-refresh][id]")) {
  const seconds = Math.max(1, Number(section.dataset.refresh) || 5);
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(section.id);
      if (fresh) section.innerHTML = fresh.innerHTML;
    } catch (_) {
      // Offline for a moment: the next tick tries again.
    }
  }, seconds * 1000);
}
