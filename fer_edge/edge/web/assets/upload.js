// Upload page: posts the photo to /api/predict and shows the annotated image and the faces.
const form = document.getElementById("form");
form.addEventListener("submit", async ev => {
  ev.preventDefault();
  const status = document.getElementById("status"), button = document.getElementById("submit");
  const file = document.getElementById("file").files[0];
  if (!file) return;
  const body = new FormData();
  body.append("image", file);
  button.disabled = true;
  status.className = "muted";
  status.textContent = "analysing…";
  try {
    const r = await fetch("/api/predict", { method: "POST", body, headers: authHeaders() });
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || "HTTP " + r.status);
    const img = document.getElementById("result");
    img.src = "data:image/jpeg;base64," + d.annotated_jpeg_base64;
    img.hidden = false;
    faceRows(document.querySelector("#faces tbody"), d.faces);
    document.getElementById("nofaces").textContent = d.faces.length ? "" : "No face found in this photo.";
    status.textContent = `${d.faces.length} face(s) in ${d.width}x${d.height}`;
  } catch (e) {
    status.className = "error";
    status.textContent = "Error: " + e.message;
  } finally {
    button.disabled = false;
  }
});
