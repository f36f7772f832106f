// rvmkit serve UI: upload, follow a job over Server-Sent Events, play and download the results.
// Plain JavaScript, no build step, nothing loaded from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("rvmkit-token") || "", current: null, source: null, file: null };
const PLAYABLE = { mp4: true, webm: true, mov: false, png: false };

function withToken(url) {
  if (!state.token) return url;
  return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(state.token);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) needToken();
  return response;
}

function needToken() {
  // a token was sent and refused: say so (not "No jobs yet"), so a typo is not taken for an empty server
  document.querySelector("label[for=token-input]").textContent = state.token
    ? "The server refused this token: it is wrong. Enter the right one"
    : "This server needs an access token";
  $("token-bar").hidden = false;
  $("token-input").focus();
}

async function errorText(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
}

// ---------------------------------------------------------------- the form

function chooseFile(file) {
  state.file = file || null;
  $("drop-text").textContent = file ? file.name + " (" + (file.size / 1048576).toFixed(1) + " MB)" : "";
  if (!file) $("drop-text").innerHTML = "<strong>Drop a video here</strong> or click to choose one";
  $("drop").classList.toggle("chosen", !!file);
  $("submit").disabled = !file;
}

function backgroundKind() {
  return document.querySelector("input[name=bg-kind]:checked").value;
}

function syncFormat() {
  // a transparent composition needs a container with alpha: WebM (plays in the page), MOV or PNG
  const format = $("format");
  const transparent = backgroundKind() === "transparent";
  for (const option of format.options) option.disabled = transparent && option.value === "mp4";
  if (transparent && format.value === "mp4") format.value = "webm";
}

function formData() {
  const data = new FormData();
  data.append("file", state.file, state.file.name);
  const outputs = [...document.querySelectorAll("input[name=outputs]:checked")].map((box) => box.value);
  data.append("outputs", outputs.join(","));
  const kind = backgroundKind();
  if (kind === "colour") data.append("background", $("bg-colour").value);
  if (kind === "transparent") data.append("background", "transparent");
  if (kind === "image" && $("bg-image").files[0]) data.append("background_file", $("bg-image").files[0]);
  data.append("format", $("format").value);
  data.append("downsample_ratio", $("ratio").value);
  return data;
}

function showFormError(message) {
  $("form-error").textContent = message || "";
  $("form-error").hidden = !message;
}

function submit(event) {
  event.preventDefault();
  if (!state.file) return;
  if (!document.querySelector("input[name=outputs]:checked")) return showFormError("Pick at least one output.");
  if (backgroundKind() === "image" && !$("bg-image").files[0]) return showFormError("Choose a background image.");
  showFormError("");
  const request = new XMLHttpRequest();  // XHR: fetch cannot report upload progress
  request.open("POST", "/api/jobs");
  if (state.token) request.setRequestHeader("Authorization", "Bearer " + state.token);
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) $("submit").textContent = "Uploading " + Math.round((100 * e.loaded) / e.total) + "%";
  };
  request.onloadend = () => {
    $("submit").textContent = "Remove background";
    $("submit").disabled = !state.file;
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
    if (request.status === 202 && body) {
      follow(body);
      refreshList();
    } else if (request.status === 401) {
      needToken();
    } else {
      const detail = body && body.detail;
      showFormError(typeof detail === "string" ? detail : "Upload failed (" + (request.status || "network error") + ")");
    }
  };
  $("submit").disabled = true;
  request.send(formData());
}

// ---------------------------------------------------------------- one job

function follow(job) {
  if (state.source) state.source.close();
  state.current = job.id;
  $("player").removeAttribute("src");
  show(job);
  if (job.state === "queued" || job.state === "running") {
    const source = new EventSource(withToken("/api/jobs/" + job.id + "/events"));
    source.addEventListener("job", (e) => {
      const update = JSON.parse(e.data);
      if (update.id === state.current) show(update);
      if (update.state !== "queued" && update.state !== "running") { source.close(); refreshList(); }
    });
    source.addEventListener("deleted", () => source.close());
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) refreshList(); };
    state.source = source;
  }
}

function show(job) {
  $("job").hidden = false;
  $("job-name").textContent = job.name;
  const status = $("job-state");
  status.textContent = job.state;
  status.className = "state " + job.state;
  const info = job.input || {};
  $("job-info").textContent = info.width ? info.width + "×" + info.height + " · " + info.frames + " frames" : "";
  const p = job.progress;
  const total = p.frames_total || 0;
  const percent = job.state === "done" ? 100 : total ? Math.min(100, Math.floor((100 * p.frames_done) / total)) : 0;
  $("progress").value = percent;
  $("progress").setAttribute("aria-valuenow", String(percent));
  let text = p.frames_done + (total ? " / " + total : "") + " frames · " + percent + "%";
  if (p.fps) text += " · " + p.fps.toFixed(1) + " fps";
  if (job.state === "running") text += " · ETA " + clock(p.eta_seconds);
  $("progress-text").textContent = text;
  $("job-error").textContent = job.error || "";
  $("job-error").hidden = !job.error;
  $("cancel").hidden = !(job.state === "queued" || job.state === "running");
  showResult(job);
}

function showResult(job) {
  const done = job.state === "done";
  $("result").hidden = !done;
  if (!done) return;
  const format = job.options.format;
  const playable = PLAYABLE[format] && job.outputs.composition;
  const player = $("player");
  const wanted = playable ? withToken(job.outputs.composition) : "";
  if (playable && player.dataset.src !== wanted) { player.src = wanted; player.dataset.src = wanted; }
  player.parentElement.hidden = !playable;
  $("no-play").hidden = !!playable || !job.outputs.composition;
  const links = $("downloads");
  links.textContent = "";
  for (const [name, url] of Object.entries(job.outputs)) {
    const link = document.createElement("a");
    link.href = withToken(url);
    link.className = "button";
    link.dataset.output = name;
    link.setAttribute("download", "");
    link.textContent = "Download " + name;
    links.appendChild(link);
  }
  $("preview-box").hidden = !job.preview;
  if (job.preview) $("preview").src = withToken(job.preview);
}

async function cancel(id) {
  const response = await api("/api/jobs/" + id, { method: "DELETE" });
  if (!response.ok) return showFormError(await errorText(response));
  // the body first: a later request (Delete right after Cancel) may have settled the panel meanwhile
  const job = response.status === 204 ? null : await response.json();
  if (id === state.current) {
    if (state.source) state.source.close();
    if (job === null) { $("job").hidden = true; state.current = null; }
    else show(job);
  }
  refreshList();
}

// ---------------------------------------------------------------- the list

async function refreshList() {
  const response = await api("/api/jobs");
  const empty = $("jobs-empty");
  if (!response.ok) {
    empty.textContent = response.status === 401
      ? (state.token ? "Wrong token: the server refused it, so the jobs cannot be listed."
                     : "This server needs an access token to list the jobs.")
      : "The jobs cannot be listed: " + (await errorText(response));
    empty.classList.add("error");
    empty.hidden = false;
    return;
  }
  const jobs = (await response.json()).jobs;
  const list = $("job-list");
  list.textContent = "";
  empty.textContent = "No jobs yet.";
  empty.classList.remove("error");
  empty.hidden = jobs.length > 0;
  for (const job of jobs) {
    const item = document.createElement("li");
    item.dataset.id = job.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = job.name;
    open.onclick = () => follow(job);
    const status = document.createElement("span");
    status.className = "state " + job.state;
    status.textContent = job.state;
    const active = job.state === "queued" || job.state === "running";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary small";
    remove.textContent = active ? "Cancel" : "Delete";
    remove.onclick = () => cancel(job.id);
    item.append(open, status, remove);
    list.appendChild(item);
  }
  if (jobs.some((job) => job.state === "queued" || job.state === "running")) setTimeout(refreshList, 2000);
}

// ---------------------------------------------------------------- wiring

function wire() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files[0]) chooseFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file-input").click(); });
  for (const radio of document.querySelectorAll("input[name=bg-kind]")) radio.addEventListener("change", syncFormat);
  $("bg-image").addEventListener("change", () => { document.querySelector("input[value=image]").checked = true; syncFormat(); });
  $("bg-colour").addEventListener("input", () => { document.querySelector("input[value=colour]").checked = true; syncFormat(); });
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", () => state.current && cancel(state.current));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token-input").value.trim();
    localStorage.setItem("rvmkit-token", state.token);
    $("token-bar").hidden = true;
    refreshList();
  });
  syncFormat();
  refreshList();
}

wire();
