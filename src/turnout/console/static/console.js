// The console's only script: the overview's live updates. No framework, no network but /ui/.
"use strict";

(function () {
  const root = document.getElementById("overview");
  if (!root) return;
  const src = root.dataset.src;
  const EVERY_MS = 2000;
  let updates = 0;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function num(value, digits) {
    if (value === null || value === undefined) return "-";
    return Number(value).toLocaleString("en", { maximumFractionDigits: digits });
  }

  function table(header, rows) {
    if (!rows.length) return el("p", "nothing in this window", "empty");
    const t = el("table");
    const head = el("tr");
    header.forEach((h) => head.appendChild(el("th", h)));
    t.appendChild(el("thead")).appendChild(head);
    const body = t.appendChild(el("tbody"));
    rows.forEach((r) => {
      const tr = body.appendChild(el("tr"));
      r.forEach((c) => tr.appendChild(el("td", c)));
    });
    return t;
  }

  function groups(data) {
    return Object.entries(data).map(([name, g]) => [
      name,
      g.requests,
      num(g.prompt_tokens, 0),
      num(g.completion_tokens, 0),
      "$" + Number(g.cost_usd).toFixed(6),
    ]);
  }

  function chart(id, values) {
    const svg = document.getElementById(id);
    const ns = "http://www.w3.org/2000/svg";
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const known = values.map((v) => (v === null ? 0 : v));
    const top = Math.max(...known, 1e-9);
    const step = 300 / Math.max(known.length - 1, 1);
    const points = known.map((v, i) => `${(i * step).toFixed(1)},${(76 - (v / top) * 70).toFixed(1)}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", "line");
    svg.appendChild(line);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", "10");
    label.setAttribute("class", "scale");
    label.textContent = "max " + num(top, 1);
    svg.appendChild(label);
  }

  function fill(s) {
    document.getElementById("rps").textContent = num(s.rps, 2);
    document.getElementById("requests").textContent = num(s.requests, 0);
    document.getElementById("lat-p50").textContent = num(s.latency_ms.p50, 1);
    document.getElementById("lat-p99").textContent = num(s.latency_ms.p99, 1);
    document.getElementById("ttft-p50").textContent = num(s.ttft_ms.p50, 1);
    document.getElementById("ttft-p99").textContent = num(s.ttft_ms.p99, 1);
    document.getElementById("window").textContent = `(last ${num(s.window_s, 1)} s)`;
    const alarms = document.getElementById("alarms");
    alarms.replaceChildren(
      s.alarms.length
        ? table(["kind", "subject", "what"], s.alarms.map((a) => [a.kind, a.subject, a.message]))
        : el("p", "none raised", "empty")
    );
    document
      .getElementById("outcomes")
      .replaceChildren(table(["outcome", "requests"], Object.entries(s.outcomes)));
    const head = ["requests", "prompt tokens", "completion tokens", "cost"];
    document.getElementById("by-model").replaceChildren(table(["model", ...head], groups(s.by_model)));
    document
      .getElementById("by-deployment")
      .replaceChildren(table(["deployment", ...head], groups(s.by_deployment)));
    const latest = document.getElementById("latest");
    latest.replaceChildren(
      ...s.latest.map((id) => {
        const a = el("a", id);
        a.href = "/ui/requests/" + encodeURIComponent(id);
        const li = el("li");
        li.appendChild(a);
        return li;
      })
    );
    chart("chart-rps", s.series.map((b) => b.rps));
    chart("chart-lat", s.series.map((b) => b.p50_ms));
    updates += 1;
    root.dataset.updates = String(updates);
    document.getElementById("updated").textContent =
      "updated " + new Date(s.at * 1000).toISOString().slice(11, 19) + " UTC";
  }

  async function tick() {
    try {
      const r = await fetch(src, { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) {
        window.location.assign("/ui/login?next=%2Fui%2F");
        return;
      }
      if (r.ok) fill(await r.json());
      else document.getElementById("updated").textContent = "update failed: HTTP " + r.status;
    } catch (err) {
      document.getElementById("updated").textContent = "update failed: " + err.message;
    }
    setTimeout(tick, EVERY_MS);
  }
  tick();
})();
