// The Dnm map explorer: one canvas for the lattice (prototypes and an overlay), a side panel for a node's members and
// for where an uploaded image lands. It talks to the server it came from (/v1/...), or, in the static copy written by
// `dnm explore --static`, reads window.DNM_STATIC (data.js) and the PNGs beside it. Nothing is loaded from elsewhere.
// Tests read window.dnmExplorer.state and the canvas's data-* attributes.
"use strict";

(() => {
  const STATIC = window.DNM_STATIC || null;
  const PAGE_SIZE = STATIC ? STATIC.page_size : 48;
  const COLUMNS = STATIC ? STATIC.columns : 8;

  // Where the data comes from: the server's API, or the embedded static copy.
  const api = STATIC ? {
    map: async () => STATIC.map,
    layers: async () => STATIC.layers,
    component: async d => (STATIC.components ? STATIC.components[d] : null),
    members: async (node, page) => {
      const first = STATIC.members[String(node)];
      if (page > 0 || !first) return { node, total: first ? first.total : 0, page, page_size: PAGE_SIZE, items: [] };
      return first;
    },
    membersSprite: node => `members/${node}.png`,
    prototypes: "prototypes.png",
    place: null,
  } : {
    map: () => json("v1/map"),
    layers: () => json("v1/map/layers"),
    component: async d => (await json(`v1/map/components/${d}`)).values,
    members: (node, page) => json(`v1/nodes/${node}/members?page=${page}&size=${PAGE_SIZE}`),
    membersSprite: (node, page) => `v1/nodes/${node}/members.png?page=${page}&size=${PAGE_SIZE}&columns=${COLUMNS}`,
    prototypes: "v1/map/prototypes.png",
    place: async file => {
      const response = await fetch("v1/place?k=5&convert=true", {
        method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
      return body.placements[0];
    },
  };

  async function json(url) {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    return body;
  }

  // Tableau 10: a palette made for categories, then the same hues darker for labels 10-19.
  const CATEGORICAL = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const labelColour = label => {
    if (label < 0) return "#555";
    const base = CATEGORICAL[label % CATEGORICAL.length];
    return label < CATEGORICAL.length ? base : shade(base, 0.6);
  };
  const shade = (hex, f) => "#" + [1, 3, 5].map(i => Math.round(parseInt(hex.slice(i, i + 2), 16) * f).toString(16).padStart(2, "0")).join("");
  const VIRIDIS = [[68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 144, 140], [39, 173, 129], [93, 200, 99], [170, 220, 50], [253, 231, 37]];
  function viridis(t) {
    t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
    const p = t * (VIRIDIS.length - 1), i = Math.min(Math.floor(p), VIRIDIS.length - 2), f = p - i;
    const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  const $ = id => document.getElementById(id);
  const canvas = $("lattice"), ctx = canvas.getContext("2d");
  const state = {
    ready: false, rows: 0, cols: 0, nodes: 0, lattice: "rect", toroidal: false, nodesDrawn: 0, overlay: "none", dimension: 0,
    selected: -1, highlight: -1, page: 0, error: null, frames: 0, drawMs: 0,
  };
  let map, layers, sprite, overlayValues = null, overlayColours = null;
  // The view: screen = offset + lattice * scale (CSS pixels); a cell is cellW x cellH lattice units.
  const view = { scale: 1, x: 0, y: 0 };
  let cellW = 1, cellH = 1;
  // A hex lattice (odd-r offset rows, as the map's PNGs): odd rows sit half a cell to the right, so each cell touches
  // exactly its six neighbours. shift(row) is that offset in cells; latticeWidth() the width the cells cover.
  const shift = row => (state.lattice === "hex" && row % 2 === 1 ? 0.5 : 0);
  const latticeWidth = () => state.cols + (state.lattice === "hex" && state.rows > 1 ? 0.5 : 0);
  const rowOf = node => Math.floor(node / state.cols), colOf = node => node % state.cols;
  const cellLeft = node => colOf(node) + shift(rowOf(node));

  async function start() {
    try {
      [map, layers] = await Promise.all([api.map(), api.layers()]);
      sprite = await loadImage(api.prototypes);
      Object.assign(state, { rows: map.rows, cols: map.cols, nodes: map.rows * map.cols, lattice: map.lattice || "rect", toroidal: !!map.toroidal });
      canvas.dataset.lattice = state.lattice;
      cellW = 1;
      cellH = map.image_shape.height / map.image_shape.width;
      const kind = (state.lattice === "hex" ? " hex" : "") + (state.toroidal ? " toroidal" : "");
      $("summary").textContent = `${map.rows}×${map.cols}${kind} map, latent ${map.latent_dim}, ${map.image_shape.channels}×${map.image_shape.height}×${map.image_shape.width} images` +
        (map.dataset ? `; ${map.placed_samples} samples of ${map.dataset}` : "");
      $("dimension").max = map.latent_dim - 1;
      if (!layers.labels) disableOption("labels", "no labels in this dataset");
      if (!layers.hits) { disableOption("hits", "no dataset placed"); disableOption("qe", "no dataset placed"); }
      if (STATIC && !STATIC.components) disableOption("component", "too large to embed in the static copy");
      if (!api.place) { $("upload").disabled = true; $("upload").title = "Placing a new image needs the model: run dnm explore"; }
      resize();
      fit();
      await applyHash();
      state.ready = true;
      document.body.dataset.ready = "true";
    } catch (e) {
      state.error = String(e.message || e);
      $("summary").textContent = `could not load the map: ${state.error}`;
    }
  }

  // A view can be linked: #overlay=labels&dim=3&node=37 opens with that overlay and that node's members.
  async function applyHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const dim = parseInt(params.get("dim"), 10);
    if (dim >= 0 && dim < map.latent_dim) { state.dimension = dim; $("dimension").value = dim; }
    const overlay = params.get("overlay");
    const option = overlay && $("overlay").querySelector(`option[value="${CSS.escape(overlay)}"]`);
    if (option && !option.disabled) { $("overlay").value = overlay; await setOverlay(overlay); }
    const node = parseInt(params.get("node"), 10);
    if (node >= 0 && node < state.nodes) await select(node);
  }

  function disableOption(value, why) {
    const o = $("overlay").querySelector(`option[value="${value}"]`);
    o.disabled = true;
    o.textContent += ` (${why})`;
  }

  const loadImage = src => new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });

  // ---- drawing ----
  let frame = 0;
  const redraw = () => { if (!frame) frame = requestAnimationFrame(draw); };

  function resize() {
    const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
    redraw();
  }

  function fit() {
    const r = canvas.getBoundingClientRect();
    view.scale = Math.min(r.width / (latticeWidth() * cellW), r.height / (state.rows * cellH)) * 0.98;
    view.x = (r.width - latticeWidth() * cellW * view.scale) / 2;
    view.y = (r.height - state.rows * cellH * view.scale) / 2;
    redraw();
  }

  function draw() {
    frame = 0;
    if (!map) return;
    const started = performance.now();
    const dpr = window.devicePixelRatio || 1, r = canvas.getBoundingClientRect();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#16181d";
    ctx.fillRect(0, 0, r.width, r.height);
    ctx.imageSmoothingEnabled = false;
    const w = cellW * view.scale, h = cellH * view.scale, gap = w > 12 ? 1 : 0;
    // Only the nodes on screen: a 100x100 map zoomed in draws a few hundred.
    const r0 = Math.max(0, Math.floor(-view.y / h)), r1 = Math.min(state.rows - 1, Math.floor((r.height - view.y) / h));
    const showPrototypes = $("show-prototypes").checked, sw = map.image_shape.width, sh = map.image_shape.height;
    const alpha = showPrototypes ? 0.6 : 1;
    let drawn = 0;
    for (let row = r0; row <= r1; row++) {
      const left = view.x + shift(row) * w;
      const c0 = Math.max(0, Math.floor(-left / w)), c1 = Math.min(state.cols - 1, Math.floor((r.width - left) / w));
      for (let col = c0; col <= c1; col++) {
        const node = row * state.cols + col, x = left + col * w, y = view.y + row * h;
        if (showPrototypes) ctx.drawImage(sprite, col * sw, row * sh, sw, sh, x, y, w - gap, h - gap);
        if (overlayColours) {
          ctx.globalAlpha = alpha;
          ctx.fillStyle = overlayColours[node];
          ctx.fillRect(x, y, w - gap, h - gap);
          ctx.globalAlpha = 1;
        } else if (!showPrototypes) {
          ctx.fillStyle = "#2c3038";
          ctx.fillRect(x, y, w - gap, h - gap);
        }
        drawn++;
      }
    }
    outline(state.selected, "#ffffff", 2);
    outline(state.highlight, "#ff9f1c", 3);
    state.nodesDrawn = drawn;
    canvas.dataset.nodesDrawn = String(drawn);
    state.frames++;
    state.drawMs = performance.now() - started;
  }

  function outline(node, colour, width) {
    if (node < 0) return;
    const w = cellW * view.scale, h = cellH * view.scale;
    const x = view.x + cellLeft(node) * w, y = view.y + rowOf(node) * h;
    ctx.lineWidth = width;
    ctx.strokeStyle = "#000";
    ctx.strokeRect(x - width, y - width, w + 2 * width - 1, h + 2 * width - 1);
    ctx.strokeStyle = colour;
    ctx.strokeRect(x - width / 2, y - width / 2, w + width - 1, h + width - 1);
  }

  // ---- overlays ----
  async function setOverlay(kind) {
    state.overlay = kind;
    canvas.dataset.overlay = kind;
    $("dimension-box").hidden = kind !== "component";
    overlayValues = null;
    overlayColours = null;
    const legend = $("legend");
    legend.replaceChildren();
    if (kind === "labels") {
      overlayColours = layers.labels.map(labelColour);
      legend.append(heading("Label map: the majority label of each node's samples"));
      const used = new Set(layers.labels);
      map.class_names.forEach((name, i) => {
        if (!used.has(i)) return;
        const item = el("span", "legend-item");
        const swatch = el("span", "swatch");
        swatch.style.background = labelColour(i);
        item.append(swatch, name === String(i) ? name : `${i}: ${name}`);
        legend.append(item);
      });
      if (used.has(-1)) {
        const item = el("span", "legend-item"), swatch = el("span", "swatch");
        swatch.style.background = labelColour(-1);
        item.append(swatch, "no samples");
        legend.append(item);
      }
    } else if (kind !== "none") {
      const values = kind === "umatrix" ? layers.u_matrix : kind === "hits" ? layers.hits : kind === "qe" ? layers.qe
        : await api.component(state.dimension);
      if (!values) return;
      overlayValues = values;
      const finite = values.filter(v => v !== null && Number.isFinite(v));
      const min = Math.min(...finite), max = Math.max(...finite);
      overlayColours = values.map(v => (v === null ? "#555" : viridis(max > min ? (v - min) / (max - min) : 0.5)));
      const titles = {
        umatrix: "U-matrix: mean distance to the neighbouring prototypes (bright = cluster border)",
        hits: "Hit map: samples per node",
        qe: "QE per node: mean distance of its samples to the prototype",
        component: `Component plane: latent dimension ${state.dimension} of each prototype`,
      };
      legend.append(heading(titles[kind]), el("div", "ramp"));
      const labels = el("div", "ramp-labels");
      labels.append(el("span", "", fmt(min)), el("span", "", fmt(max)));
      legend.append(labels);
    }
    redraw();
  }

  // ---- pan, zoom, hover, click ----
  function nodeAt(clientX, clientY) {
    const r = canvas.getBoundingClientRect();
    const row = Math.floor((clientY - r.top - view.y) / (cellH * view.scale));
    const col = Math.floor((clientX - r.left - view.x) / (cellW * view.scale) - shift(row));
    return row >= 0 && row < state.rows && col >= 0 && col < state.cols ? row * state.cols + col : -1;
  }

  function zoom(factor, cx, cy) {
    const r = canvas.getBoundingClientRect();
    if (cx === undefined) { cx = r.width / 2; cy = r.height / 2; }
    const min = Math.min(r.width / state.cols, r.height / state.rows) * 0.25, max = Math.max(r.width, r.height);
    const scale = Math.min(max, Math.max(min, view.scale * factor));
    view.x = cx - (cx - view.x) * scale / view.scale;
    view.y = cy - (cy - view.y) * scale / view.scale;
    view.scale = scale;
    redraw();
  }

  let drag = null;
  canvas.addEventListener("pointerdown", e => {
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", e => {
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
      if (drag.moved) { view.x = drag.vx + dx; view.y = drag.vy + dy; redraw(); }
    }
    hover(e);
  });
  canvas.addEventListener("pointerup", e => {
    const clicked = drag && !drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (clicked) { const node = nodeAt(e.clientX, e.clientY); if (node >= 0) select(node); }
  });
  canvas.addEventListener("pointerleave", () => { $("hover").style.display = "none"; });
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    // Firefox scrolls a mouse wheel by lines (deltaMode 1), a few per notch: in pixels that is about 16 a line.
    const pixels = e.deltaY * (e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? r.height : 1);
    zoom(Math.exp(-pixels * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });

  function hover(e) {
    const node = nodeAt(e.clientX, e.clientY), tip = $("hover");
    if (node < 0 || !map) { tip.style.display = "none"; return; }
    const parts = [`(${Math.floor(node / state.cols)}, ${node % state.cols})`];
    if (layers.hits) parts.push(`${layers.hits[node]} samples`);
    if (layers.labels && layers.labels[node] >= 0) parts.push(map.class_names[layers.labels[node]]);
    if (overlayValues && state.overlay !== "hits") parts.push(`${state.overlay} ${fmt(overlayValues[node])}`);
    tip.textContent = parts.join(" · ");
    const r = canvas.getBoundingClientRect();
    tip.style.left = `${e.clientX - r.left + 14}px`;
    tip.style.top = `${e.clientY - r.top + 14}px`;
    tip.style.display = "block";
  }

  // ---- a node's members ----
  async function select(node, page = 0) {
    state.selected = node;
    state.page = page;
    canvas.dataset.selected = `${Math.floor(node / state.cols)},${node % state.cols}`;
    redraw();
    const panel = $("node");
    const row = Math.floor(node / state.cols), col = node % state.cols;
    panel.replaceChildren(heading(`Node (${row}, ${col})`));
    if (layers.labels && layers.labels[node] >= 0) panel.append(el("p", "", `majority label: ${map.class_names[layers.labels[node]]}`));
    if (!layers.hits) { panel.append(el("p", "hint", "No dataset is placed: run dnm explore with --dataset to see members.")); return; }
    let result;
    try {
      result = await api.members(node, page);
    } catch (e) {
      panel.append(el("p", "hint", `could not load the members: ${e.message}`));
      return;
    }
    if (state.selected !== node || state.page !== page) return;
    const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
    const pager = el("div", "pager");
    const prev = el("button", "", "‹ prev"), next = el("button", "", "next ›");
    prev.id = "members-prev";
    next.id = "members-next";
    prev.disabled = page === 0;
    next.disabled = page + 1 >= pages || (STATIC && page === 0);
    prev.onclick = () => select(node, page - 1);
    next.onclick = () => select(node, page + 1);
    const info = el("span", "", `${result.total} samples · page ${page + 1} of ${pages}`);
    info.id = "members-info";
    pager.append(prev, info, next);
    panel.append(pager);
    if (STATIC && result.total > result.items.length)
      panel.append(el("p", "hint", `The static copy keeps the nearest ${result.items.length}; dnm explore pages through all ${result.total}.`));
    const grid = el("div");
    grid.id = "members";
    grid.dataset.count = String(result.items.length);
    panel.append(grid);
    if (result.items.length === 0) return;
    const strip = api.membersSprite(node, page);
    const iw = map.image_shape.width, ih = map.image_shape.height, zoomBy = Math.max(1, Math.floor(64 / Math.max(iw, ih)));
    const columns = Math.min(COLUMNS, result.items.length), rows = Math.ceil(result.items.length / columns);
    result.items.forEach((item, i) => {
      const figure = el("figure", "member");
      figure.dataset.key = item.key;
      figure.dataset.index = String(item.index);
      figure.dataset.label = String(item.label);
      const thumb = el("div", "thumb");
      thumb.style.width = `${iw * zoomBy}px`;
      thumb.style.height = `${ih * zoomBy}px`;
      thumb.style.backgroundImage = `url("${strip}")`;
      thumb.style.backgroundSize = `${columns * iw * zoomBy}px ${rows * ih * zoomBy}px`;
      thumb.style.backgroundPosition = `-${(i % columns) * iw * zoomBy}px -${Math.floor(i / columns) * ih * zoomBy}px`;
      const label = item.label >= 0 && map.class_names.length ? ` · ${map.class_names[item.label]}` : "";
      const caption = el("figcaption", "", `${item.key}${label}`);
      figure.title = `key ${item.key}${label} · distance ${fmt(item.distance)}`;
      figure.append(thumb, caption);
      grid.append(figure);
    });
  }

  // ---- where a new image lands ----
  async function place(file) {
    const box = $("placed");
    box.hidden = false;
    box.classList.remove("error");
    if (!api.place) {
      box.classList.add("error");
      box.replaceChildren(el("p", "", "Placing a new image needs the model: run dnm explore --checkpoint … --dataset … and open its page."));
      return;
    }
    box.replaceChildren(el("p", "hint", `placing ${file.name}…`));
    try {
      const p = await api.place(file);
      state.highlight = p.node;
      state.placedDistance = p.distance;
      canvas.dataset.highlight = `${p.row},${p.col}`;
      const list = el("ol", "nearest");
      p.nearest.slice(1).forEach(n => list.append(el("li", "", `(${n.row}, ${n.col}) at ${fmt(n.distance)}`)));
      box.replaceChildren(heading(`${file.name} lands on (${p.row}, ${p.col})`), el("p", "", `distance ${fmt(p.distance)}; next nearest:`), list);
      centreOn(p.node);
    } catch (e) {
      box.classList.add("error");
      box.replaceChildren(el("p", "", `${file.name}: ${e.message}`));
    }
  }

  function centreOn(node) {
    const r = canvas.getBoundingClientRect();
    const x = view.x + (cellLeft(node) + 0.5) * cellW * view.scale, y = view.y + (rowOf(node) + 0.5) * cellH * view.scale;
    if (x < 0 || y < 0 || x > r.width || y > r.height) { view.x += r.width / 2 - x; view.y += r.height / 2 - y; }
    redraw();
  }

  $("upload").addEventListener("change", e => { if (e.target.files.length) place(e.target.files[0]); });
  const stage = $("stage");
  stage.addEventListener("dragover", e => { e.preventDefault(); stage.classList.add("drop"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("drop"));
  stage.addEventListener("drop", e => {
    e.preventDefault();
    stage.classList.remove("drop");
    if (e.dataTransfer.files.length) place(e.dataTransfer.files[0]);
  });

  // ---- controls ----
  $("overlay").addEventListener("change", e => setOverlay(e.target.value));
  $("dimension").addEventListener("change", e => {
    state.dimension = Math.max(0, Math.min(map.latent_dim - 1, parseInt(e.target.value, 10) || 0));
    e.target.value = state.dimension;
    if (state.overlay === "component") setOverlay("component");
  });
  $("show-prototypes").addEventListener("change", redraw);
  $("zoom-in").onclick = () => zoom(1.5);
  $("zoom-out").onclick = () => zoom(1 / 1.5);
  $("zoom-fit").onclick = fit;
  window.addEventListener("resize", resize);

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const heading = text => el("h2", "", text);
  const fmt = v => (v === null || v === undefined ? "–" : Number.isInteger(v) ? String(v) : Number(v).toPrecision(4));

  // For tests and scripts: the state, the overlay switch, and where a node is on screen (client pixels).
  window.dnmExplorer = {
    state,
    setOverlay: kind => { $("overlay").value = kind; return setOverlay(kind); },
    select,
    nodeCenter: node => {
      const r = canvas.getBoundingClientRect();
      return {
        x: r.left + view.x + (cellLeft(node) + 0.5) * cellW * view.scale,
        y: r.top + view.y + (rowOf(node) + 0.5) * cellH * view.scale,
      };
    },
  };
  start();
})();
