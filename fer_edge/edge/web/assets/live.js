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
