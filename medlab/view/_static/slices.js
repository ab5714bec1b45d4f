// medlab slice viewer (anywidget front end). Bundled with the package: no CDN, no imports.
//
// The kernel owns the data and every number: it sends the raw pixel values of
// each displayed plane (one trait per plane, binary buffers), lookup tables,
// window, cursor and annotations. This file only draws them, maps the mouse to
// voxel indices, and sends back what the user did (cursor, window, tool
// clicks). Measurements are computed in Python (medlab.measure) and come back
// as text in `_results`.

const PLANES = ["axial", "coronal", "sagittal"];
const NORMAL_AXIS = { axial: 0, coronal: 1, sagittal: 2 }; // canonical index axis per plane
const POINTS_NEEDED = { ruler: 2, angle: 3, seed: 1, landmark: 1, point: 1 };
const TOOL_TITLES = {
  navigate: "Navigate: click moves the crosshair, drag pans, right-drag sets window/level, wheel pages, ctrl+wheel zooms, double-click resets",
  ruler: "Ruler: click two points", angle: "Angle: click three points (vertex second)",
  rect: "Rectangle ROI: drag", ellipse: "Ellipse ROI: drag",
  polygon: "Polygon ROI: click vertices, double-click to close", seed: "Seed point: click",
  landmark: "Landmark: click", point: "Point: click",
};

function typed(dv, dtype) {
  if (!dv) return null;
  const ctor = { uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
                 uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array }[dtype];
  let buf = dv.buffer, off = dv.byteOffset, len = dv.byteLength;
  if (off % ctor.BYTES_PER_ELEMENT !== 0) { buf = buf.slice(off, off + len); off = 0; }
  return new ctor(buf, off, len / ctor.BYTES_PER_ELEMENT);
}

function bytes(dv) { return dv ? new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength) : null; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e5) ? v.toExponential(3) : (Math.round(v * 100) / 100).toString();
}

function render({ model, el: host }) {
  const root = el("div", "medlab-slices");
  root.dataset.repaintCount = "0";
  // keys typed in the viewer's controls are theirs: JupyterLab's notebook shortcuts (which turn
  // ArrowLeft/Right into cell navigation and cancel the key) must not see them
  root.dataset.lmSuppressShortcuts = "true";
  root.addEventListener("keydown", (e) => { if (e.target.matches("input, select, button")) e.stopPropagation(); });
  // right-drag sets window/level: JupyterLab's context menu (opened from a document listener)
  // must not open over the viewer; Lab skips elements inside [data-jp-suppress-context-menu]
  root.dataset.jpSuppressContextMenu = "";
  host.appendChild(root);
  // the kernel sends its whole state again: an update sent while this module loaded may have
  // been dropped (anywidget gives a module 2 s)
  model.send({ type: "medlab-sync" });
  const title = el("div", "medlab-title");
  const toolbar = el("div", "medlab-toolbar");
  const panesRow = el("div", "medlab-panes");
  const frameRow = el("div", "medlab-frame-row");
  const status = el("div", "medlab-status", "\u00a0");
  const legend = el("div", "medlab-legend");
  const measurements = el("div", "medlab-measurements");
  const caption = el("div", "medlab-caption");
  const colorbar = el("div", "medlab-colorbar");
  const colorbarLow = el("span", "medlab-colorbar-low");
  const colorbarRamp = el("canvas", "medlab-colorbar-ramp");
  colorbarRamp.width = 160; colorbarRamp.height = 10;
  const colorbarHigh = el("span", "medlab-colorbar-high");
  const colorbarUnits = el("span", "medlab-colorbar-units");
  colorbar.append(el("span", "medlab-colorbar-name", "overlay"), colorbarLow, colorbarRamp, colorbarHigh, colorbarUnits);
  root.append(title, toolbar, caption, panesRow, frameRow, status, colorbar, legend, measurements);

  const dragCleanups = [];
  let lastInput = null;      // performance.now() of the last slider input, until painted
  let flickerOn = false, flickerTimer = null, playTimer = null, framePending = false;
  const panes = {};

  // ------------------------------------------------------------ toolbar
  const tools = ["navigate", "ruler", "angle", "rect", "ellipse", "polygon", "seed", "landmark"];
  const toolButtons = {};
  const toolGroup = el("span", "medlab-tools");
  for (const t of tools) {
    const b = el("button", "medlab-tool", t);
    b.dataset.tool = t; b.title = TOOL_TITLES[t];
    b.addEventListener("click", () => { model.set("tool", t); model.save_changes(); });
    toolButtons[t] = b; toolGroup.appendChild(b);
  }
  const presetSelect = el("select", "medlab-preset");
  presetSelect.title = "Window preset";
  presetSelect.addEventListener("change", () => {
    const p = model.get("presets")[presetSelect.value];
    if (p) { model.set("window", [p[0], p[1]]); model.save_changes(); }
  });
  const windowText = el("span", "medlab-window");
  const cmapSelect = el("select", "medlab-cmap");
  cmapSelect.title = "Colour map";
  cmapSelect.addEventListener("change", () => { model.set("cmap", cmapSelect.value); model.save_changes(); });
  const neuro = el("label", "medlab-neuro");
  const neuroBox = el("input"); neuroBox.type = "checkbox";
  neuro.append(neuroBox, document.createTextNode(" neurological"));
  neuroBox.addEventListener("change", () => { model.set("neurological", neuroBox.checked); model.save_changes(); });
  const labelOpacity = el("input", "medlab-label-opacity");
  labelOpacity.type = "range"; labelOpacity.min = 0; labelOpacity.max = 1; labelOpacity.step = 0.05;
  labelOpacity.title = "Label opacity";
  const labelOpacityLabel = el("label", "medlab-slider-label");
  labelOpacityLabel.append(document.createTextNode("labels "), labelOpacity);
  labelOpacity.addEventListener("input", () => { model.set("label_opacity", +labelOpacity.value); model.save_changes(); paintAll(true); });
  const overlayBox = el("span", "medlab-overlay-controls");
  const modeSelect = el("select", "medlab-overlay-mode");
  for (const m of ["fusion", "checkerboard", "blend", "difference", "flicker", "off"]) {
    const o = el("option", null, m); o.value = m; modeSelect.appendChild(o);
  }
  modeSelect.addEventListener("change", () => { model.set("overlay_mode", modeSelect.value); model.save_changes(); });
  const alpha = el("input", "medlab-overlay-alpha");
  alpha.type = "range"; alpha.min = 0; alpha.max = 1; alpha.step = 0.05; alpha.title = "Opacity of the overlay";
  alpha.addEventListener("input", () => { model.set("overlay_alpha", +alpha.value); model.save_changes(); paintAll(true); });
  const tiles = el("input", "medlab-tiles");
  tiles.type = "range"; tiles.min = 2; tiles.max = 32; tiles.step = 1; tiles.title = "Checkerboard tiles per side";
  tiles.addEventListener("input", () => { model.set("tiles", +tiles.value); model.save_changes(); paintAll(true); });
  const alphaLabel = el("label", "medlab-slider-label medlab-alpha-label");
  alphaLabel.append(document.createTextNode("opacity "), alpha);
  const tilesLabel = el("label", "medlab-slider-label medlab-tiles-label");
  tilesLabel.append(document.createTextNode("tiles "), tiles);
  overlayBox.append(modeSelect, alphaLabel, tilesLabel);
  toolbar.append(toolGroup, presetSelect, windowText, cmapSelect, neuro, labelOpacityLabel, overlayBox);

  // ------------------------------------------------------------ frame row (time series, cines)
  const playButton = el("button", "medlab-play", "\u25b6");
  const frameSlider = el("input", "medlab-frame");
  frameSlider.type = "range"; frameSlider.min = 0; frameSlider.step = 1;
  const frameText = el("span", "medlab-frame-text");
  frameRow.append(playButton, frameSlider, frameText);
  frameSlider.addEventListener("input", () => {
    lastInput = performance.now();
    model.set("frame", +frameSlider.value); model.save_changes();
  });
  playButton.addEventListener("click", () => {
    if (playTimer) { clearInterval(playTimer); playTimer = null; playButton.textContent = "\u25b6"; return; }
    playButton.textContent = "\u275a\u275a";
    playTimer = setInterval(() => {
      if (framePending) return;  // wait for the previous frame to arrive
      framePending = true;
      model.set("frame", (model.get("frame") + 1) % model.get("n_frames")); model.save_changes();
    }, 1000 / Math.max(1, model.get("fps")));
  });

  // ------------------------------------------------------------ panes
  function buildPanes() {
    panesRow.textContent = "";
    for (const k of Object.keys(panes)) delete panes[k];
    const size = model.get("height");
    for (const name of model.get("planes")) {
      const box = el("div", "medlab-pane-box");
      const head = el("div", "medlab-pane-head");
      const label = el("span", "medlab-pane-label", name);
      const slider = el("input", "medlab-slider");
      slider.type = "range"; slider.min = 0; slider.step = 1; slider.dataset.plane = name;
      head.append(label, slider);
      const canvas = el("canvas", "medlab-pane");
      canvas.dataset.plane = name;
      canvas.width = size; canvas.height = size;
      canvas.style.width = size + "px"; canvas.style.height = size + "px";
      box.append(head, canvas);
      panesRow.appendChild(box);
      const p = { name, canvas, ctx: canvas.getContext("2d"), slider, label, zoom: 1, panX: 0, panY: 0,
                  off: document.createElement("canvas"), data: null, draft: [], hover: null };
      panes[name] = p;
      slider.addEventListener("input", () => {
        lastInput = performance.now();
        const c = model.get("cursor").slice();
        c[NORMAL_AXIS[name]] = +slider.value;
        model.set("cursor", c); model.save_changes();
      });
      attachMouse(p);
    }
  }

  function loadPane(p) {
    const d = model.get("_pane_" + p.name);
    if (!d || !d.shape) { p.data = null; return; }
    const [h, w] = d.shape;
    p.h = h; p.w = w; p.pix = d.pixel_mm; p.calibrated = d.calibrated !== false; p.M = d.M; p.letters = d.letters; p.slice = d.slice;
    p.label.textContent = d.title || p.name;
    p.values = typed(d.data, d.dtype);
    p.labels = d.labels ? typed(d.labels, d.labels_dtype) : null;
    p.overlay = d.overlay ? typed(d.overlay, "float32") : null;
    p.data = d;
    if (p.off.width !== w || p.off.height !== h || !p.image) {
      p.off.width = w; p.off.height = h;
      p.image = p.off.getContext("2d").createImageData(w, h);
    }
    p.dirty = true;
  }

  // index (k, j, i) <-> pane pixel (row, col); M maps [row, col, 1] to the index
  function paneToIndex(p, r, c) {
    const M = p.M;
    return [0, 1, 2].map((a) => M[a][0] * r + M[a][1] * c + M[a][2]);
  }
  function indexToPane(p, idx) {
    let r = 0, c = 0;
    for (let a = 0; a < 3; a++) {
      if (p.M[a][0] !== 0) r = (idx[a] - p.M[a][2]) / p.M[a][0];
      if (p.M[a][1] !== 0) c = (idx[a] - p.M[a][2]) / p.M[a][1];
    }
    return [r, c];
  }
  function indexToWorld(idx) {
    const A = model.get("affine");
    return [0, 1, 2].map((r) => A[4 * r] * idx[0] + A[4 * r + 1] * idx[1] + A[4 * r + 2] * idx[2] + A[4 * r + 3]);
  }

  // geometry of the drawn picture: canvas px per mm and the top-left corner
  function layout(p) {
    const cw = p.canvas.width, ch = p.canvas.height;
    const wmm = p.w * p.pix[1], hmm = p.h * p.pix[0];
    const scale = Math.min(cw / wmm, ch / hmm) * p.zoom;
    return { scale, x0: cw / 2 + p.panX - (wmm * scale) / 2, y0: ch / 2 + p.panY - (hmm * scale) / 2 };
  }
  function screenToPane(p, x, y) {
    const L = layout(p);
    return [(y - L.y0) / (L.scale * p.pix[0]) - 0.5, (x - L.x0) / (L.scale * p.pix[1]) - 0.5];
  }
  function paneToScreen(p, r, c) {
    const L = layout(p);
    return [L.x0 + (c + 0.5) * p.pix[1] * L.scale, L.y0 + (r + 0.5) * p.pix[0] * L.scale];
  }

  // ------------------------------------------------------------ compositing
  function composePane(p) {
    const out = p.image.data, n = p.w * p.h;
    const lut = bytes(model.get("_lut")), olut = bytes(model.get("_overlay_lut"));
    const llut = bytes(model.get("_label_lut"));
    const [width, level] = model.get("window");
    const lo = level - 0.5 - (width - 1) / 2, span = Math.max(width - 1, 1e-6);
    const invert = model.get("invert");
    const v = p.values;
    const grey = (x) => { let t = (x - lo) / span; t = t < 0 ? 0 : t > 1 ? 1 : t; return invert ? 255 - Math.round(t * 255) : Math.round(t * 255); };
    if (model.get("rgb")) {
      for (let q = 0; q < n; q++) { out[4 * q] = v[3 * q]; out[4 * q + 1] = v[3 * q + 1]; out[4 * q + 2] = v[3 * q + 2]; out[4 * q + 3] = 255; }
    } else {
      for (let q = 0; q < n; q++) {
        const g = grey(v[q]);
        out[4 * q] = lut[3 * g]; out[4 * q + 1] = lut[3 * g + 1]; out[4 * q + 2] = lut[3 * g + 2]; out[4 * q + 3] = 255;
      }
    }
    const mode = model.get("overlay_mode");
    if (p.overlay && mode !== "off" && mode !== "none") {
      // the overlay (the moving image of a compare view) has its own window: two images with
      // different intensity ranges (two scanners, two modalities) each show their own contrast
      const ov = p.overlay, a = model.get("overlay_alpha");
      const [ow, ol] = model.get("overlay_window");
      const olo = ol - 0.5 - (ow - 1) / 2, ospan = Math.max(ow - 1, 1e-6);
      const ogrey = (x) => { let t = (x - olo) / ospan; t = t < 0 ? 0 : t > 1 ? 1 : t; return invert ? 255 - Math.round(t * 255) : Math.round(t * 255); };
      const tw = p.w / model.get("tiles"), th = p.h / model.get("tiles");
      for (let q = 0; q < n; q++) {
        const r = Math.floor(q / p.w), c = q - r * p.w;
        if (mode === "fusion") {
          let t = (ov[q] - olo) / ospan; if (!(t > 0)) continue; t = t > 1 ? 1 : t;
          const g = Math.round(t * 255);
          for (let ch = 0; ch < 3; ch++) out[4 * q + ch] = (1 - a) * out[4 * q + ch] + a * olut[3 * g + ch];
        } else if (mode === "checkerboard") {
          if ((Math.floor(c / tw) + Math.floor(r / th)) % 2 === 1) { const g = ogrey(ov[q]); out[4 * q] = lut[3 * g]; out[4 * q + 1] = lut[3 * g + 1]; out[4 * q + 2] = lut[3 * g + 2]; }
        } else if (mode === "blend") {
          const g = ogrey(ov[q]);
          for (let ch = 0; ch < 3; ch++) out[4 * q + ch] = (1 - a) * out[4 * q + ch] + a * lut[3 * g + ch];
        } else if (mode === "difference") {
          // each image scaled by its own window (0 at the window's bottom, 1 at its top), then
          // subtracted: mid-grey where they agree, bright where the fixed image is brighter
          let t = 0.5 + 0.5 * ((v[q] - lo) / span - (ov[q] - olo) / ospan);
          t = t < 0 ? 0 : t > 1 ? 1 : t;
          const g = Math.round(t * 255); out[4 * q] = g; out[4 * q + 1] = g; out[4 * q + 2] = g;
        } else if (mode === "flicker" && flickerOn) {
          const g = ogrey(ov[q]); out[4 * q] = lut[3 * g]; out[4 * q + 1] = lut[3 * g + 1]; out[4 * q + 2] = lut[3 * g + 2];
        }
      }
    }
    const op = model.get("label_opacity");
    if (p.labels && llut && op > 0) {
      const lab = p.labels;
      for (let q = 0; q < n; q++) {
        const l = lab[q]; if (!l) continue;
        const m = (l % 256) * 3;
        for (let ch = 0; ch < 3; ch++) out[4 * q + ch] = (1 - op) * out[4 * q + ch] + op * llut[m + ch];
      }
    }
    p.off.getContext("2d").putImageData(p.image, 0, 0);
  }

  // ------------------------------------------------------------ drawing
  function paint(p) {
    const ctx = p.ctx, cw = p.canvas.width, ch = p.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cw, ch);
    if (!p.data) return;
    if (p.dirty) { composePane(p); p.dirty = false; }
    const L = layout(p);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(p.off, L.x0, L.y0, p.w * p.pix[1] * L.scale, p.h * p.pix[0] * L.scale);
    // crosshair
    if (model.get("planes").length > 1) {
      const [r, c] = indexToPane(p, model.get("cursor"));
      const [x, y] = paneToScreen(p, r, c);
      ctx.strokeStyle = "rgba(0, 220, 255, 0.6)"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, ch); ctx.moveTo(0, y); ctx.lineTo(cw, y); ctx.stroke();
    }
    drawAnnotations(p);
    // orientation letters, scale bar and slice number: light with a dark outline, readable on
    // bright and on dark pixels alike
    const [lt, rt, tp, bt] = p.letters || ["", "", "", ""];
    ctx.font = "bold 16px sans-serif"; ctx.lineJoin = "round";
    ctx.textBaseline = "middle"; ctx.textAlign = "left"; outlined(ctx, lt, 5, ch / 2, "#ff0");
    ctx.textAlign = "right"; outlined(ctx, rt, cw - 5, ch / 2, "#ff0");
    ctx.textAlign = "center"; ctx.textBaseline = "top"; outlined(ctx, tp, cw / 2, 5, "#ff0");
    ctx.textBaseline = "bottom"; outlined(ctx, bt, cw / 2, ch - 5, "#ff0");
    // scale bar: a round length near a fifth of the width (none without a known spacing)
    if (p.calibrated) {
      const target = cw / 5 / L.scale;
      const nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
      let len = nice[0]; for (const s of nice) if (s <= target) len = s;
      const px = len * L.scale;
      ctx.lineCap = "butt";
      ctx.strokeStyle = "#000"; ctx.lineWidth = 5;
      ctx.beginPath(); ctx.moveTo(cw - 11 - px, ch - 22); ctx.lineTo(cw - 9, ch - 22); ctx.stroke();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(cw - 10 - px, ch - 22); ctx.lineTo(cw - 10, ch - 22); ctx.stroke();
      ctx.font = "bold 12px sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "bottom";
      outlined(ctx, len + " mm", cw - 10, ch - 26, "#fff");
    } else {
      ctx.font = "bold 12px sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "bottom";
      outlined(ctx, "spacing unknown", cw - 10, ch - 10, "#fff");
    }
    ctx.textAlign = "left"; ctx.textBaseline = "top";
    const ax = NORMAL_AXIS[p.name];
    const info = model.get("planes").length > 1 ? `${p.slice + 1}/${model.get("shape")[ax]}` : "";
    outlined(ctx, info, 4, 4, "#fff");
  }

  function outlined(ctx, text, x, y, fill) {
    if (!text) return;
    ctx.lineWidth = 3.5; ctx.strokeStyle = "rgba(0, 0, 0, 0.9)"; ctx.lineJoin = "round";
    ctx.strokeText(text, x, y);
    ctx.fillStyle = fill; ctx.fillText(text, x, y);
  }

  function drawAnnotations(p) {
    const ctx = p.ctx, results = model.get("_results");
    const frame = model.get("frame");
    const items = model.get("annotations").filter((a) => a.plane === p.name && a.slice === p.slice);
    const labelBoxes = [];  // x, y, width, height of each label drawn (tests read them)
    const all = items.map((a) => ({ ...a, done: true }));
    if (p.draft.length) all.push({ kind: model.get("tool"), points: p.draft, done: false, id: "" });
    for (const a of all) {
      const pts = a.points.map((idx) => paneToScreen(p, ...indexToPane(p, idx)));
      if (a.hoverPoint) pts.push(a.hoverPoint);
      ctx.strokeStyle = a.done ? "#0f0" : "#ff0"; ctx.fillStyle = ctx.strokeStyle; ctx.lineWidth = 1.5;
      ctx.beginPath();
      if (a.kind === "rect" && pts.length >= 2) {
        ctx.rect(pts[0][0], pts[0][1], pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
      } else if (a.kind === "ellipse" && pts.length >= 2) {
        ctx.ellipse((pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2,
                    Math.abs(pts[1][0] - pts[0][0]) / 2, Math.abs(pts[1][1] - pts[0][1]) / 2, 0, 0, 2 * Math.PI);
      } else {
        pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        if (a.kind === "polygon" && a.done) ctx.closePath();
      }
      ctx.stroke();
      for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, a.kind === "seed" || a.kind === "landmark" ? 4 : 2.5, 0, 2 * Math.PI); ctx.fill(); }
      const text = a.done ? `${a.kind} ${a.id}${results[a.id] ? ": " + results[a.id] : ""}` : "";
      if (text && pts.length) {
        ctx.font = "12px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "bottom";
        const [x, y] = pts[pts.length - 1];
        // kept inside the canvas: right of the last point when it fits, else left of it
        const cw = p.canvas.width, chh = p.canvas.height, tw = ctx.measureText(text).width;
        let tx = x + 6 + tw <= cw - 3 ? x + 6 : x - 6 - tw;
        tx = Math.max(3, Math.min(tx, cw - 3 - tw));
        const ty = Math.max(16, Math.min(y - 4, chh - 3));
        ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.strokeText(text, tx, ty);
        ctx.fillText(text, tx, ty);
        labelBoxes.push([tx, ty - 13, tw, 14]);
      }
    }
    p.canvas.dataset.labelBoxes = JSON.stringify(labelBoxes.map((b) => b.map((v) => Math.round(v))));
    void frame;
  }

  // `fresh`: the paint shows new pixel data from the kernel (closes a slider-to-picture timing)
  function afterPaint(fresh) {
    requestAnimationFrame(() => {
      if (fresh && lastInput !== null) {
        root.dataset.repaintMs = (performance.now() - lastInput).toFixed(1);
        lastInput = null;
      }
      root.dataset.repaintCount = String(+root.dataset.repaintCount + 1);
    });
  }
  // recompose: the pixels' colours changed (window, colour map, overlay, labels), not just the drawing
  function paintAll(recompose) {
    for (const p of Object.values(panes)) { if (recompose) p.dirty = true; paint(p); }
    afterPaint(false);
  }

  // ------------------------------------------------------------ mouse
  function attachMouse(p) {
    const cv = p.canvas;
    let drag = null;
    const pos = (e) => { const b = cv.getBoundingClientRect(); return [(e.clientX - b.left) * cv.width / b.width, (e.clientY - b.top) * cv.height / b.height]; };
    // right-drag is window/level: neither the browser's nor JupyterLab's menu opens here
    cv.addEventListener("contextmenu", (e) => { e.preventDefault(); e.stopPropagation(); });
    // a drag ends wherever the button is released (outside the canvas too)
    const endDrag = () => { drag = null; };
    window.addEventListener("mouseup", endDrag);
    dragCleanups.push(() => window.removeEventListener("mouseup", endDrag));
    cv.addEventListener("wheel", (e) => {
      if (!p.data) return;
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) {
        const [x, y] = pos(e), f = e.deltaY < 0 ? 1.15 : 1 / 1.15;
        const cx = cv.width / 2 + p.panX, cy = cv.height / 2 + p.panY;
        p.panX += (x - cx) * (1 - f); p.panY += (y - cy) * (1 - f); p.zoom *= f;
        paint(p); return;
      }
      const ax = NORMAL_AXIS[p.name], c = model.get("cursor").slice();
      c[ax] = Math.max(0, Math.min(model.get("shape")[ax] - 1, c[ax] + (e.deltaY < 0 ? 1 : -1)));
      lastInput = performance.now();
      model.set("cursor", c); model.save_changes();
    }, { passive: false });
    cv.addEventListener("mousedown", (e) => {
      if (!p.data) return;
      const [x, y] = pos(e);
      drag = { x, y, button: e.button, shift: e.shiftKey, moved: false, window: model.get("window").slice(), panX: p.panX, panY: p.panY };
      if (e.button === 2) e.preventDefault();
      // the crosshair before a click: a double-click (reset) puts it back
      if (e.detail <= 1) p.cursorBeforeClick = model.get("cursor").slice();
      const tool = model.get("tool");
      if (e.button === 0 && (tool === "rect" || tool === "ellipse")) {
        const [r, c] = screenToPane(p, x, y); p.draft = [paneToIndex(p, r, c)];
      }
    });
    cv.addEventListener("mousemove", (e) => {
      if (!p.data) return;
      const [x, y] = pos(e);
      showStatus(p, x, y);
      if (drag && e.buttons === 0) drag = null;  // released elsewhere, no mouseup seen
      if (!drag) {
        if (p.draft.length && ["ruler", "angle", "polygon"].includes(model.get("tool"))) {
          const [r, c] = screenToPane(p, x, y); p.hover = paneToIndex(p, r, c); paintDraft(p);
        }
        return;
      }
      const dx = x - drag.x, dy = y - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      const tool = model.get("tool");
      if (drag.button === 2) {  // window/level
        const [w0, l0] = drag.window, k = Math.max(w0, 1) / 200;
        model.set("window", [Math.max(1, w0 + dx * k), l0 - dy * k]); model.save_changes();
      } else if (drag.button === 1 || drag.shift || (tool === "navigate" && drag.button === 0)) {
        p.panX = drag.panX + dx; p.panY = drag.panY + dy; paint(p);
      } else if ((tool === "rect" || tool === "ellipse") && p.draft.length) {
        const [r, c] = screenToPane(p, x, y); p.draft = [p.draft[0], paneToIndex(p, r, c)]; paint(p);
      }
    });
    cv.addEventListener("mouseup", (e) => {
      if (!drag) return;
      const [x, y] = pos(e);
      const d = drag; drag = null;
      if (d.button !== 0 || d.shift) return;
      const tool = model.get("tool");
      const [r, c] = screenToPane(p, x, y);
      const idx = paneToIndex(p, r, c);
      if (tool === "navigate") {
        if (d.moved) return;
        const ax = NORMAL_AXIS[p.name], cur = model.get("cursor").slice(), shape = model.get("shape");
        for (let a = 0; a < 3; a++) if (a !== ax) cur[a] = Math.max(0, Math.min(shape[a] - 1, Math.round(idx[a])));
        model.set("cursor", cur); model.save_changes();
      } else if (tool === "rect" || tool === "ellipse") {
        if (p.draft.length === 2 && d.moved) commit(p, tool, p.draft);
        p.draft = []; paint(p);
      } else if (tool === "polygon") {
        p.draft.push(idx); paint(p);
      } else {
        p.draft.push(idx);
        if (p.draft.length >= POINTS_NEEDED[tool]) { commit(p, tool, p.draft); p.draft = []; }
        paint(p);
      }
    });
    cv.addEventListener("dblclick", () => {
      const tool = model.get("tool");
      if (tool === "polygon") {
        // the double-click's two clicks added the last vertex twice
        const pts = p.draft.slice(0, -1);
        if (pts.length >= 3) commit(p, "polygon", pts);
        p.draft = []; paint(p);
      } else if (tool === "navigate") {
        // reset: zoom, pan and window/level; the double-click's clicks leave the crosshair where it was
        for (const q of Object.values(panes)) { q.zoom = 1; q.panX = 0; q.panY = 0; }
        if (p.cursorBeforeClick) model.set("cursor", p.cursorBeforeClick);
        const w0 = model.get("default_window");
        if (w0 && w0.length === 2) model.set("window", w0.slice());
        model.save_changes(); paintAll(false);
      }
    });
    cv.addEventListener("mouseleave", () => { status.textContent = "\u00a0"; });
  }

  function paintDraft(p) {
    const saved = p.draft; p.draft = p.hover ? [...saved, p.hover] : saved; paint(p); p.draft = saved;
  }

  function commit(p, kind, points) {
    const items = model.get("annotations");
    const id = items.reduce((m, a) => Math.max(m, a.id), 0) + 1;
    const item = { id, kind, plane: p.name, slice: p.slice, frame: model.get("frame"),
                   points: points.map((q) => q.map(Number)), group: model.get("landmark_group") };
    model.set("annotations", [...items, item]); model.save_changes();
  }

  function showStatus(p, x, y) {
    const [r, c] = screenToPane(p, x, y);
    const ri = Math.round(r), ci = Math.round(c);
    if (ri < 0 || ci < 0 || ri >= p.h || ci >= p.w) { status.textContent = "\u00a0"; return; }
    const idx = paneToIndex(p, ri, ci), w = indexToWorld(idx);
    const q = ri * p.w + ci;
    let value;
    if (model.get("rgb")) value = `RGB ${p.values[3 * q]} ${p.values[3 * q + 1]} ${p.values[3 * q + 2]}`;
    else value = `${fmt(p.values[q])} ${model.get("units")}`;
    if (p.overlay) value += `  overlay ${fmt(p.overlay[q])}`;
    if (p.labels && p.labels[q]) {
      const entry = model.get("legend").find((e) => e.value === p.labels[q]);
      value += `  label ${p.labels[q]}${entry ? " " + entry.name : ""}`;
    }
    const where = p.calibrated ? `LPS (${w.map((v) => v.toFixed(1)).join(", ")}) mm  ` : "";
    status.textContent = `${where}voxel (${idx.map((v) => Math.round(v)).join(", ")})  ${value}`;
  }

  // ------------------------------------------------------------ model -> view
  // rebuild a control's DOM only when what it lists changed (an open menu stays open while
  // slices arrive)
  const built = {};
  function changed(key, value) {
    const text = JSON.stringify(value);
    if (built[key] === text) return false;
    built[key] = text; return true;
  }

  function syncControls() {
    title.textContent = model.get("title");
    const shape = model.get("shape"), cur = model.get("cursor");
    for (const p of Object.values(panes)) {
      const ax = NORMAL_AXIS[p.name];
      p.slider.max = shape[ax] - 1; p.slider.value = cur[ax];
      p.slider.style.display = model.get("planes").length > 1 ? "" : "none";
    }
    for (const [t, b] of Object.entries(toolButtons)) b.classList.toggle("medlab-active", model.get("tool") === t);
    const presets = model.get("presets"), win = model.get("window");
    if (changed("presets", presets)) {
      presetSelect.textContent = "";
      for (const name of Object.keys(presets)) {
        const o = el("option", null, name); o.value = name; presetSelect.appendChild(o);
      }
      const custom = el("option", null, "custom"); custom.value = ""; presetSelect.appendChild(custom);
    }
    let match = "";
    for (const [name, wl] of Object.entries(presets)) {
      if (Math.abs(wl[0] - win[0]) < 1e-6 && Math.abs(wl[1] - win[1]) < 1e-6) match = name;
    }
    presetSelect.value = match;
    presetSelect.style.display = model.get("rgb") ? "none" : "";
    windowText.textContent = model.get("rgb") ? "" : `W ${fmt(win[0])} L ${fmt(win[1])}`;
    if (changed("cmaps", model.get("cmaps"))) {
      cmapSelect.textContent = "";
      for (const c of model.get("cmaps")) { const o = el("option", null, c); o.value = c; cmapSelect.appendChild(o); }
    }
    cmapSelect.value = model.get("cmap");
    cmapSelect.style.display = model.get("rgb") ? "none" : "";
    neuroBox.checked = model.get("neurological");
    neuro.style.display = model.get("planes").length > 1 ? "" : "none";
    labelOpacity.value = model.get("label_opacity");
    labelOpacityLabel.style.display = model.get("legend").length ? "" : "none";
    const hasOverlay = model.get("has_overlay");
    overlayBox.style.display = hasOverlay ? "" : "none";
    const mode = model.get("overlay_mode");
    modeSelect.value = mode; alpha.value = model.get("overlay_alpha"); tiles.value = model.get("tiles");
    // each slider only where it does something
    alphaLabel.style.display = mode === "fusion" || mode === "blend" ? "" : "none";
    tilesLabel.style.display = mode === "checkerboard" ? "" : "none";
    caption.textContent = hasOverlay && mode === "difference"
      ? "difference: fixed \u2212 moving, each scaled by its own window (mid-grey: equal, bright: fixed brighter, dark: moving brighter)"
      : "";
    caption.style.display = caption.textContent ? "" : "none";
    syncColorbar(hasOverlay && mode === "fusion");
    const nf = model.get("n_frames");
    frameRow.style.display = nf > 1 ? "" : "none";
    frameSlider.max = nf - 1; frameSlider.value = model.get("frame");
    frameText.textContent = nf > 1 ? `frame ${model.get("frame") + 1}/${nf}${model.get("frame_label") ? "  " + model.get("frame_label") : ""}` : "";
    if (changed("legend", model.get("legend"))) {
      legend.textContent = "";
      for (const e of model.get("legend")) {
        const item = el("span", "medlab-legend-item");
        const sw = el("span", "medlab-swatch"); sw.style.background = e.color;
        item.append(sw, document.createTextNode(`${e.value} ${e.name}`));
        legend.appendChild(item);
      }
    }
    const results = model.get("_results");
    if (!changed("measurements", [model.get("annotations"), results])) return;
    measurements.textContent = "";
    for (const a of model.get("annotations")) {
      const line = el("div", "medlab-measurement");
      line.dataset.id = a.id; line.dataset.kind = a.kind;
      const del = el("button", "medlab-delete", "\u00d7"); del.title = "delete";
      del.addEventListener("click", () => {
        model.set("annotations", model.get("annotations").filter((b) => b.id !== a.id)); model.save_changes();
      });
      line.append(del, document.createTextNode(` ${a.kind} ${a.id}${a.group ? " (" + a.group + ")" : ""}: ${results[a.id] || ""}`));
      measurements.appendChild(line);
    }
  }

  // the overlay's colour bar (fusion): its lookup table between the ends of its window, with its unit
  function syncColorbar(show) {
    colorbar.style.display = show ? "" : "none";
    if (!show) return;
    const olut = bytes(model.get("_overlay_lut"));
    const [ow, ol] = model.get("overlay_window");
    colorbarLow.textContent = fmt(ol - ow / 2); colorbarHigh.textContent = fmt(ol + ow / 2);
    colorbarUnits.textContent = model.get("overlay_units");
    if (!olut || !changed("colorbar", [Array.from(olut.slice(0, 12)), olut.length, model.get("_overlay_lut").byteLength])) return;
    const c = colorbarRamp.getContext("2d"), img = c.createImageData(colorbarRamp.width, colorbarRamp.height);
    for (let x = 0; x < colorbarRamp.width; x++) {
      const g = Math.round(255 * x / (colorbarRamp.width - 1));
      for (let y = 0; y < colorbarRamp.height; y++) {
        const o = 4 * (y * colorbarRamp.width + x);
        img.data[o] = olut[3 * g]; img.data[o + 1] = olut[3 * g + 1]; img.data[o + 2] = olut[3 * g + 2]; img.data[o + 3] = 255;
      }
    }
    c.putImageData(img, 0, 0);
  }

  function setFlicker() {
    const want = model.get("has_overlay") && model.get("overlay_mode") === "flicker";
    if (want && !flickerTimer) flickerTimer = setInterval(() => { flickerOn = !flickerOn; paintAll(true); }, 600);
    if (!want && flickerTimer) { clearInterval(flickerTimer); flickerTimer = null; flickerOn = false; }
  }

  buildPanes();
  for (const p of Object.values(panes)) loadPane(p);
  syncControls(); setFlicker(); paintAll(true);

  for (const name of PLANES) {
    model.on(`change:_pane_${name}`, () => {
      const p = panes[name]; if (!p) return;
      loadPane(p); syncControls(); paint(p); framePending = false; afterPaint(true);
    });
  }
  model.on("change:planes", () => { buildPanes(); for (const p of Object.values(panes)) loadPane(p); syncControls(); paintAll(true); });
  for (const t of ["window", "cmap", "_lut", "_overlay_lut", "_label_lut", "label_opacity", "overlay_mode",
                   "overlay_alpha", "overlay_window", "overlay_units", "tiles", "legend", "invert"]) {
    model.on(`change:${t}`, () => { syncControls(); setFlicker(); paintAll(true); });
  }
  for (const t of ["cursor", "annotations", "_results", "tool"]) {
    model.on(`change:${t}`, () => { syncControls(); paintAll(false); });
  }
  for (const t of ["frame", "n_frames", "title", "neurological", "presets", "cmaps"]) model.on(`change:${t}`, syncControls);
  return () => {
    if (flickerTimer) clearInterval(flickerTimer); if (playTimer) clearInterval(playTimer);
    for (const f of dragCleanups) f();
  };
}

export default { render };
