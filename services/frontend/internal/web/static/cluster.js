// The live view (/cluster): the namespace as clusterview's informers see
// it, redrawn from each server-sent snapshot, and the traffic strip, which
// calls /api/v1/info from this browser and draws who answered each second.
// Everything is built with textContent: no snapshot value is ever parsed
// as HTML. The words come from the page, in the reader's language.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const words = JSON.parse(document.getElementById("cluster-words").textContent);
  const w = (k) => words["cluster." + k] || k;

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const age = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.round(s / 60) + "m";
    return Math.round(s / 3600) + "h";
  };
  const table = (head, rows) => {
    const t = el("table");
    const tr = el("tr");
    for (const h of head) tr.append(el("th", "", h));
    t.append(tr);
    for (const r of rows) {
      const row = el("tr");
      for (const c of r) {
        const td = el("td");
        if (c instanceof Node) td.append(c); else td.textContent = c;
        row.append(td);
      }
      t.append(row);
    }
    return t;
  };
  const pod = (p) => {
    const cls = "pod" + (p.terminating ? " terminating" : p.ready ? " ready" : " unready");
    const chip = el("span", cls);
    chip.dataset.pod = p.name;
    chip.append(el("strong", "", p.name));
    const facts = [p.terminating ? w("terminating") : p.phase, w("restarts") + " " + p.restarts, age(p.created)];
    if (p.node) facts.push(p.node);
    chip.append(el("small", "", " " + facts.join(" · ")));
    return chip;
  };
  const pods = (list) => {
    const box = el("div", "pods");
    for (const p of list || []) box.append(pod(p));
    return box;
  };

  // The namespace, redrawn whole: a snapshot is small, and a full redraw
  // never leaves a stale row behind.
  const view = document.getElementById("cluster");
  const state = document.getElementById("cluster-state");
  const problems = document.getElementById("cluster-problems");
  const render = (s) => {
    const out = [];
    for (const d of s.deployments || []) {
      const card = el("section", "card deployment");
      card.dataset.deployment = d.name;
      const title = el("h2", "", w("deployment") + " " + d.name);
      title.append(el("small", "", " " + w("revision") + " " + d.revision + " · " + w("strategy") + " " + d.strategy +
        " · " + w("ready") + " " + d.ready + "/" + d.desired + (d.paused ? " · " + w("paused") : "")));
      card.append(title);
      const rows = (d.replicaSets || []).map((rs) => {
        const name = el("span", "", rs.name);
        name.dataset.replicaset = rs.name;
        name.dataset.desired = rs.desired;
        name.dataset.ready = rs.ready;
        return [rs.revision, name, rs.image, rs.ready + "/" + rs.desired, pods(rs.pods)];
      });
      card.append(table([w("revision"), w("replicasets"), w("image"), w("ready") + "/" + w("desired"), w("pods")], rows));
      out.push(card);
    }
    if ((s.otherPods || []).length) {
      const card = el("section", "card");
      card.append(el("h2", "", w("other-pods")), pods(s.otherPods));
      out.push(card);
    }
    const svc = el("section", "card services");
    svc.append(el("h2", "", w("services")));
    svc.append(table([w("services"), w("endpoints")], (s.services || []).map((v) => {
      const box = el("div", "pods");
      for (const e of v.endpoints || []) {
        const cls = "pod" + (e.terminating ? " terminating" : e.ready ? " ready" : " unready");
        const chip = el("span", cls, (e.pod || e.address) + " ");
        chip.append(el("small", "", e.address + " · " + w("ready") + " " + (e.ready ? w("yes") : w("no")) +
          " · " + w("serving") + " " + (e.serving ? w("yes") : w("no")) + (e.terminating ? " · " + w("terminating") : "")));
        box.append(chip);
      }
      if (!(v.endpoints || []).length) box.textContent = w("no-endpoints");
      return [v.name, box];
    })));
    out.push(svc);
    if ((s.hpas || []).length) {
      const card = el("section", "card");
      card.append(el("h2", "", w("hpas")), table(["", w("hpa-replicas"), ""], s.hpas.map((h) =>
        [h.name + " → " + h.target, h.current + " → " + h.desired + " (" + h.min + "–" + h.max + ")", (h.metrics || []).join(", ")])));
      out.push(card);
    }
    if ((s.jobs || []).length) {
      const card = el("section", "card");
      card.append(el("h2", "", w("jobs")), table(["", w("job-progress"), ""], s.jobs.map((j) =>
        [j.name, j.succeeded + "/" + (j.completions || "?") + " · " + w("failed") + " " + j.failed + " · " + j.active, j.done || ""])));
      out.push(card);
    }
    const ev = el("section", "card events");
    ev.append(el("h2", "", w("events")));
    const list = el("ol", "events");
    for (const e of s.events || []) {
      const li = el("li", e.type === "Warning" ? "bad" : "");
      li.textContent = age(e.time) + " " + e.object + " " + e.reason + (e.count > 1 ? " ×" + e.count : "") + ": " + e.message;
      list.append(li);
    }
    ev.append(list);
    out.push(ev);
    view.replaceChildren(...out);
    problems.hidden = !(s.problems || []).length;
    problems.replaceChildren(el("strong", "", w("problems")), ...(s.problems || []).map((p) => el("div", "", p)));
  };

  if (view) {
    const source = new EventSource("/cluster/stream");
    source.onopen = () => { state.textContent = w("live"); };
    source.onerror = () => { state.textContent = w("reconnecting"); };
    source.onmessage = (m) => {
      state.textContent = w("live");
      render(JSON.parse(m.data));
    };
  }

  // The traffic strip: one column a second for the last minute, each
  // split by the version that answered, failures in red on top.
  const bars = document.getElementById("strip-bars");
  const legend = document.getElementById("strip-legend");
  const rate = document.getElementById("strip-rate");
  const seconds = [];
  const colors = {};
  const bucket = () => {
    const now = Math.floor(Date.now() / 1000);
    if (!seconds.length || seconds[seconds.length - 1].t !== now) {
      seconds.push({ t: now, versions: {}, pods: {}, failed: 0 });
      if (seconds.length > 60) seconds.shift();
    }
    return seconds[seconds.length - 1];
  };
  const call = async () => {
    try {
      // ?strip asks the frontend to close the connection after answering,
      // so each call opens a new one and kube-proxy picks a pod for each,
      // as it does for a fresh client; a kept-alive connection would show
      // one pod only.
      const res = await fetch("/api/v1/info?strip=1", { cache: "no-store" });
      const b = bucket();
      if (!res.ok) { b.failed++; return; }
      const info = await res.json();
      colors[info.version] = info.color;
      b.versions[info.version] = (b.versions[info.version] || 0) + 1;
      b.pods[info.pod.name] = (b.pods[info.pod.name] || 0) + 1;
    } catch (e) {
      bucket().failed++;
    }
  };
  const draw = () => {
    bucket();
    const most = Math.max(1, ...seconds.map((s) => Object.values(s.versions).reduce((a, n) => a + n, s.failed)));
    bars.replaceChildren(...seconds.map((s) => {
      const col = el("div", "strip-col");
      col.title = new Date(s.t * 1000).toLocaleTimeString();
      for (const [v, n] of Object.entries(s.versions)) {
        const seg = el("div", "strip-seg");
        seg.dataset.version = v;
        seg.style.height = (100 * n / most) + "%";
        seg.style.background = colors[v];
        col.append(seg);
      }
      if (s.failed) {
        const seg = el("div", "strip-seg failed");
        seg.style.height = (100 * s.failed / most) + "%";
        col.append(seg);
      }
      return col;
    }));
    const recent = {};
    let failed = 0;
    for (const s of seconds.slice(-10)) {
      for (const [p, n] of Object.entries(s.pods)) recent[p] = (recent[p] || 0) + n;
      failed += s.failed;
    }
    legend.replaceChildren(...Object.entries(recent).sort().map(([p, n]) => el("li", "", p + ": " + n)),
      el("li", failed ? "bad" : "", w("failed") + ": " + failed));
  };
  // The strip stops by itself after ten minutes: a tab left open does
  // not load the cluster forever. Choosing a rate starts it again.
  let timer = null;
  let off = null;
  const start = () => {
    clearInterval(timer);
    clearTimeout(off);
    const r = Number(rate.value);
    if (r > 0) {
      timer = setInterval(call, 1000 / r);
      off = setTimeout(() => { rate.value = "0"; start(); }, 10 * 60 * 1000);
    }
  };
  rate.addEventListener("change", start);
  start();
  setInterval(draw, 500);
});
