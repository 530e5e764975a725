// Shared by the pages; served after "use strict" and the palette's constants (pages.py).
// The token the page was opened with (?token=...), forwarded to every request it makes.
const TOKEN = new URLSearchParams(location.search).get("token");
function withToken(url) {
  return TOKEN ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : url;
}
function authHeaders() { return TOKEN ? { "Authorization": "Bearer " + TOKEN } : {}; }
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "style") e.style.cssText = v;     // through the CSSOM: the policy admits no style attributes
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function pct(x) { return (100 * x).toFixed(0) + "%"; }
// The colour of an emotion: EMOTION_COLORS and OTHER_COLORS come from the server (fer_edge/common/palette.py).
function emotionColor(name) {
  if (Object.prototype.hasOwnProperty.call(EMOTION_COLORS, name)) return EMOTION_COLORS[name];
  let sum = 0;
  for (const ch of name) sum += ch.codePointAt(0);
  return OTHER_COLORS[sum % OTHER_COLORS.length];
}
function swatch(name) { return el("i", { "class": "swatch", style: "background:" + emotionColor(name) }); }
// One row per face: id, emotion, confidence bar (in the emotion's colour), box.
function faceRows(tbody, faces) {
  tbody.replaceChildren(...faces.map(f => el("tr", { "class": "face", "data-label": f.emotion },
    el("td", {}, "#" + f.face_id),
    el("td", { "class": "emotion" }, swatch(f.emotion), f.emotion),
    el("td", {}, el("div", { "class": "bar", title: pct(f.confidence) },
      el("span", { style: `width:${pct(f.confidence)};background:${emotionColor(f.emotion)}` })), pct(f.confidence)),
    el("td", { "class": "muted" }, `${f.box.w}x${f.box.h} at ${f.box.x},${f.box.y}`))));
}
document.querySelectorAll("a[data-nav]").forEach(a => a.href = withToken(a.getAttribute("href")));
