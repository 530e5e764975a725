// Live page: the MJPEG stream in an <img>, and the faces table / FPS / uptime polled twice a second.
document.getElementById("stream").src = withToken("/stream.mjpg");
function hms(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
}
async function poll() {
  const status = document.getElementById("status");
  try {
    const r = await fetch(withToken("/api/latest"), { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const d = await r.json();
    status.textContent = d.frame ? "running" : "waiting for the first frame";
    status.className = "";
    document.getElementById("fps").textContent = d.fps.toFixed(1);
    document.getElementById("uptime").textContent = hms(d.uptime_s);
    document.getElementById("frame").textContent = d.frame ? `#${d.frame.index} · ${d.frame.width}x${d.frame.height}` : "–";
    faceRows(document.querySelector("#faces tbody"), d.faces);
    document.getElementById("nofaces").hidden = d.faces.length > 0;
  } catch (e) {
    status.textContent = "no connection to the edge service (" + e.message + ")";
    status.className = "error";
  }
}
poll();
setInterval(poll, 500);

// Emotion history: /api/history as a stacked area of each emotion's share of the face rows, drawn on a
// canvas (no chart library). Hatched: the loop processed no frame then; blank: no face, or before the start.
// The emotions' colours are emotionColor's (neutral is grey, so "no frame" is hatched, not grey).
function hatch(g) {
  const c = document.createElement("canvas");
  c.width = c.height = 6;
  const p = c.getContext("2d");
  p.strokeStyle = "#b8bdc7";
  p.beginPath(); p.moveTo(0, 6); p.lineTo(6, 0); p.stroke();
  return g.createPattern(c, "repeat");
}
let historyMinutes = 10;
function drawHistory(h) {
  const canvas = document.getElementById("history");
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 960, ht = canvas.clientHeight || 220;
  canvas.width = w * dpr; canvas.height = ht * dpr;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, ht);
  const left = 34, bottom = ht - 18, top = 6, plotW = w - left - 6, plotH = bottom - top, n = h.frames.length;
  const bw = plotW / n;
  let faces = 0;
  const stripes = hatch(g);
  g.font = "11px system-ui, sans-serif"; g.fillStyle = "#667085"; g.strokeStyle = "#e3e6eb";
  for (const p of [0, 50, 100]) {
    const y = bottom - plotH * p / 100;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + plotW, y); g.stroke();
    g.fillText(p + "%", 2, y + 4);
  }
  h.counts.forEach((c, i) => {
    const x = left + i * bw, total = c.reduce((a, b) => a + b, 0);
    faces += total;
    const before = h.start_unix + (i + 1) * h.step_s <= h.running_since_unix;   // the service was not up yet
    if (h.frames[i] === 0 && !before) { g.fillStyle = stripes; g.fillRect(x, top, bw + 0.5, plotH); return; }
    let y = bottom;
    c.forEach((k, j) => {
      if (!k) return;
      const hh = plotH * k / total;
      g.fillStyle = emotionColor(h.labels[j]); g.fillRect(x, y - hh, bw + 0.5, hh); y -= hh;
    });
  });
  g.fillStyle = "#667085";
  const span = (h.end_unix - h.start_unix) / 60;
  g.fillText(`-${span >= 60 ? (span / 60).toFixed(0) + " h" : span.toFixed(0) + " min"}`, left, ht - 4);
  g.fillText("now", left + plotW - 20, ht - 4);
  document.getElementById("history-legend").replaceChildren(...h.labels.map((name, j) =>
    el("span", { "class": "label" }, swatch(name), name)));
  const shares = h.labels.map((name, j) => [name, h.counts.reduce((a, c) => a + c[j], 0)]).filter(x => x[1])
    .sort((a, b) => b[1] - a[1]).map(([name, k]) => `${name} ${(100 * k / faces).toFixed(0)}%`);
  document.getElementById("history-note").textContent = faces
    ? `${faces} face rows in the last ${historyMinutes} min, ${h.step_s} s per bar: ${shares.join(", ")}`
    : `no face in the last ${historyMinutes} min`;
}
async function pollHistory() {
  try {
    const r = await fetch(withToken("/api/history?minutes=" + historyMinutes), { cache: "no-store" });
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || "HTTP " + r.status);
    drawHistory(d);
  } catch (e) {
    document.getElementById("history-note").textContent = "history unavailable (" + e.message + ")";
  }
}
document.querySelectorAll("#history-range button").forEach(b => b.addEventListener("click", () => {
  historyMinutes = Number(b.dataset.minutes);
  document.querySelectorAll("#history-range button").forEach(x => x.classList.toggle("active", x === b));
  pollHistory();
}));
pollHistory();
setInterval(pollHistory, 5000);
