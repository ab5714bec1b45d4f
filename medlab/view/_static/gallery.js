// medlab series gallery (anywidget front end): a clickable grid of thumbnails. Bundled: no CDN.
function render({ model, el }) {
  const grid = document.createElement("div");
  grid.className = "medlab-gallery";
  el.appendChild(grid);
  // the kernel sends its whole state again (an update sent while this module loaded may be lost)
  model.send({ type: "medlab-sync" });
  const tiles = [];

  function select(i) {
    model.set("selected_index", i);
    model.save_changes();
  }

  function mark() {
    const sel = model.get("selected_index");
    tiles.forEach((t, i) => {
      t.classList.toggle("selected", i === sel);
      t.setAttribute("aria-selected", i === sel ? "true" : "false");
    });
  }

  function draw() {
    const size = model.get("size");
    const cols = model.get("columns");
    grid.style.gridTemplateColumns = cols > 0
      ? `repeat(${cols}, ${size + 16}px)`
      : `repeat(auto-fill, ${size + 16}px)`;
    grid.replaceChildren();
    tiles.length = 0;
    model.get("tiles").forEach((t, i) => {
      const fig = document.createElement("figure");
      fig.className = `medlab-tile ${t.kind}`;
      fig.tabIndex = 0;
      fig.title = t.tooltip;
      fig.setAttribute("role", "option");
      const box = document.createElement("div");
      box.className = "medlab-thumb";
      box.style.width = `${size}px`;
      box.style.height = `${size}px`;
      if (t.src) {
        const img = document.createElement("img");
        img.src = t.src;
        img.alt = t.lines.join(" / ");
        box.appendChild(img);
      } else {
        const note = document.createElement("span");
        note.textContent = t.kind === "text" ? t.lines[0] : `no thumbnail: ${t.problem}`;
        box.appendChild(note);
      }
      fig.appendChild(box);
      const cap = document.createElement("figcaption");
      t.lines.forEach((line, j) => {
        const div = document.createElement("div");
        div.textContent = line;
        if (j === 0) div.className = "head";
        cap.appendChild(div);
      });
      fig.appendChild(cap);
      fig.addEventListener("click", () => select(i));
      fig.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(i); }
      });
      grid.appendChild(fig);
      tiles.push(fig);
    });
    mark();
  }

  draw();
  model.on("change:tiles", draw);
  model.on("change:size", draw);
  model.on("change:columns", draw);
  model.on("change:selected_index", mark);
  return () => {
    model.off("change:tiles", draw);
    model.off("change:size", draw);
    model.off("change:columns", draw);
    model.off("change:selected_index", mark);
  };
}
export default { render };
