// Per-epoch loss and metric charts from a training's progress lines, as inline SVG.

const NUMBER = String.raw`([\d.eE+-]+|nan|inf)`;
const LINE = new RegExp(
  String.raw`^(Train|Validation) - epoch \[(\d+)\/(\d+)\] - batch \[(\d+)\/(\d+)\] - loss=${NUMBER} - metric=${NUMBER}`,
);
const SVG = "http://www.w3.org/2000/svg";

/** {Train: [{epoch, loss, metric}], Validation: [...]}: the last line of each epoch holds its means. */
export function epochs(lines) {
  const out = { Train: new Map(), Validation: new Map() };
  for (const line of lines) {
    const m = LINE.exec(line);
    if (m) out[m[1]].set(Number(m[2]), { epoch: Number(m[2]), loss: Number(m[6]), metric: Number(m[7]) });
  }
  return { Train: [...out.Train.values()], Validation: [...out.Validation.values()] };
}

function el(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  node.append(...children);
  return node;
}

/** A small line chart of `key` per epoch for the train and validation series. */
export function chart(title, series, key) {
  const width = 360;
  const height = 180;
  const pad = 32;
  const points = [...series.Train, ...series.Validation].filter((p) => Number.isFinite(p[key]));
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  if (!points.length) {
    figure.append(caption, "No epoch finished yet.");
    return figure;
  }
  const maxEpoch = Math.max(...points.map((p) => p.epoch), 2);
  const lo = Math.min(...points.map((p) => p[key]));
  const hi = Math.max(...points.map((p) => p[key]));
  const span = hi - lo || 1;
  const x = (e) => pad + ((e - 1) / (maxEpoch - 1)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - lo) / span) * (height - 2 * pad);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(
    el("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }),
    el("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, class: "axis" }),
    el("text", { x: 2, y: pad, class: "tick" }, hi.toFixed(3)),
    el("text", { x: 2, y: height - pad, class: "tick" }, lo.toFixed(3)),
    el("text", { x: width - pad, y: height - 8, class: "tick", "text-anchor": "end" }, `epoch ${maxEpoch}`),
  );
  for (const [name, cls] of [["Train", "train"], ["Validation", "validation"]]) {
    const rows = series[name].filter((p) => Number.isFinite(p[key]));
    if (!rows.length) continue;
    svg.append(el("polyline", { points: rows.map((p) => `${x(p.epoch)},${y(p[key])}`).join(" "), class: cls }));
    rows.forEach((p) => svg.append(el("circle", { cx: x(p.epoch), cy: y(p[key]), r: 3, class: cls },
      el("title", {}, `${name} epoch ${p.epoch}: ${p[key]}`))));
  }
  const legend = document.createElement("p");
  legend.className = "chart-legend";
  for (const [name, cls] of [["training", "train"], ["validation", "validation"]]) {
    const key = document.createElement("span");
    key.className = cls;
    key.textContent = `■ ${name} `;
    legend.append(key);
  }
  figure.append(caption, svg, legend);
  return figure;
}
