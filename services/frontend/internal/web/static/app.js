// Progressive enhancement only: every page works without this file.
// On a batch page, poll the JSON API and update the counts in place
// (without JavaScript, a <noscript> refresh reloads the page instead).
// Words come from the page (data-*), in the reader's language.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const batch = document.getElementById("batch");
  if (!batch) return;
  const id = batch.dataset.batch;
  let polls = 0;
  const poll = async () => {
    if (++polls > 3600) return; // an hour at most, then the page stops asking
    try {
      const res = await fetch("/api/v1/batches/" + encodeURIComponent(id), { headers: { Accept: "application/json" } });
      if (res.ok) {
        const b = (await res.json()).batch || {};
        for (const el of batch.querySelectorAll("[data-count]")) el.textContent = b[el.dataset.count] || 0;
        const bar = document.getElementById("batch-progress");
        bar.max = b.total || 0;
        bar.value = b.done || 0;
        if ((b.pending || 0) + (b.leased || 0) === 0) {
          document.getElementById("batch-hint").textContent = batch.dataset.finished;
          return;
        }
      }
    } catch (e) { /* a failed poll is retried below */ }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
});
