// Try it: one image (file, drop or URL) through chosen weights with adjustable settings; the result is drawn over
// the image as the server decoded it, and can be downloaded in every output format. Classifiers can also be asked
// to explain themselves: "Explain" shows the server's Grad-CAM heat map over the image (POST /backend/explain).
import { api, cached, imageUrl, readyWeights, weightsLabel } from "../api.js";
import { colorOf, drawPrediction } from "../draw.js";
import { act, classList, downloadJson, field, form, h, message, page, select, sleep } from "../ui.js";

const FORMATS = [["json", "Canonical JSON"], ["aicoco", "AiCOCO"], ["supervisely", "Supervisely"], ["coco", "COCO"]];
const FRACTIONS = new Set(["conf_thres", "iou_thres", "threshold"]);
const EXPLAINED_TASKS = new Set([1, 4]); // classification, multi-label: Grad-CAM needs a class score

export async function tryView(params) {
  const show = page();
  const [choices, tasks] = await Promise.all([readyWeights(), cached("tasks")]);
  if (!choices.length) return show(h("h1", {}, "Try it"), h("p", {}, "No weights are ready yet."));
  const wanted = params.get("weights") || String(choices[0].weights.id);
  const picker = select("weights", choices.map((c) => [c.weights.id, weightsLabel(c)]), wanted);
  const settingsBox = h("fieldset", { class: "settings" });
  const file = h("input", { type: "file", name: "image", accept: "image/*,.dcm,.nii,.nii.gz,.tif,.tiff" });
  const url = h("input", { type: "url", name: "image_url", placeholder: "https://…/photo.jpg" });
  const drop = h("div", {
    class: "drop", tabindex: "0", role: "button", "aria-label": "Drop an image, or press Enter to choose one",
  }, "Drop an image here, or choose a file below");
  const run = h("button", { type: "submit" }, "Run");
  const explain = h("button", { type: "button", class: "secondary" }, "Explain");
  const result = h("section", { class: "result", "aria-live": "polite" });
  let dropped = null;

  const current = () => choices.find((c) => String(c.weights.id) === picker.value);
  const renderSettings = () => {
    settingsBox.replaceChildren(h("legend", {}, "Settings"), ...settingInputs(current().weights));
    explain.hidden = !EXPLAINED_TASKS.has(current().model.task_id);
  };
  picker.addEventListener("change", renderSettings);
  file.addEventListener("change", () => {
    dropped = null;
    drop.textContent = file.files[0]?.name || drop.textContent;
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    [dropped] = event.dataTransfer.files;
    if (dropped) drop.textContent = dropped.name;
  });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") file.click(); });

  /** The chosen weights, and the request body naming them, their project and the image (file or URL). */
  const request = async () => {
    const chosen = current();
    const image = dropped || file.files[0];
    if (!image && !url.value) throw new Error("Choose an image file or paste an image URL first.");
    const body = {
      project_id: await projectFor(chosen.model, tasks),
      modelweights_id: chosen.weights.id,
      ...(image ? { image_data: await dataUrl(image) } : { image_url: url.value }),
    };
    return { chosen, body };
  };

  explain.addEventListener("click", () => act(explain, async () => {
    const { chosen, body } = await request();
    result.replaceChildren(h("p", { class: "busy" }, "Explaining… (Grad-CAM)"));
    try {
      await showExplanation(result, await api("explain", { method: "POST", json: body, raw: true }), chosen);
    } catch (error) {
      result.replaceChildren();
      throw error;
    }
  }));

  const tryForm = form({ class: "card" }, run, async () => {
    const { chosen, body } = await request();
    body.settings = readSettings(settingsBox, chosen.weights.settings || {});
    result.replaceChildren(h("p", { class: "busy" }, "Running…"));
    try {
      const { process_id: processId } = await api("inferenceSingle", { method: "POST", json: body });
      const onState = (state) => { result.firstChild.textContent = `Running… (${state})`; };
      if (await waitFinished(processId, onState, show.current)) await showResult(result, processId);
    } catch (error) {
      result.replaceChildren();
      throw error;
    }
  }, field("Weights", picker), settingsBox, drop, field("Image file", file), field("…or image URL", url), explain);
  renderSettings();
  show(h("h1", {}, "Try it"), h("div", { class: "try" }, tryForm, result));
  return undefined;
}

/** Inputs for the settings the weights expose, pre-filled with their defaults. */
function settingInputs(weights) {
  const settings = weights.settings || {};
  return Object.entries(settings).map(([key, value]) => {
    if (key === "classes") {
      const names = classList(weights.classes);
      if (!names.length) return null;
      return h("details", {}, h("summary", {}, "Classes to report (all when none is ticked)"),
        h("div", { class: "class-list" }, names.map((name) => h("label", {},
          h("input", { type: "checkbox", name: "classes", value: name }), ` ${name}`))));
    }
    const input = FRACTIONS.has(key)
      ? h("input", { type: "number", name: key, min: 0, max: 1, step: 0.05, value })
      : h("input", { type: "number", name: key, min: 1, step: 1, value });
    return field(key, input);
  }).filter(Boolean);
}

/** The settings that differ from the defaults, typed as the API expects. */
function readSettings(box, defaults) {
  const out = {};
  for (const [key, value] of Object.entries(defaults)) {
    if (key === "classes") {
      const ticked = [...box.querySelectorAll("input[name=classes]:checked")].map((el) => el.value);
      if (ticked.length) out.classes = ticked;
      continue;
    }
    const input = box.querySelector(`input[name=${key}]`);
    if (!input || input.value === "") continue;
    const number = Number(input.value);
    if (Number.isNaN(number)) throw new Error(`${key} must be a number.`);
    if (number !== value) out[key] = number;
  }
  return out;
}

/** An owned project of the model's task: the first one found, else a new "Try it" project. */
async function projectFor(model, tasks) {
  const [projects, me] = await Promise.all([api("projects"), api("auth/user")]);
  const own = projects.find((p) => p.task_id === model.task_id
    && p.users.some((u) => u.username === me.username && u.permission === "OWN"));
  if (own) return own.id;
  const task = tasks.find((t) => t.id === model.task_id);
  const created = await api("projects", {
    method: "POST", json: { name: `Try it: ${task ? task.name : model.task_id}`, task_id: model.task_id },
  });
  return created.id;
}

function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error(`${file.name} cannot be read.`));
    reader.readAsDataURL(file);
  });
}

/**
 * Poll the process until it finishes (true) or `wanted()` turns false (false: the user left the page); throws with
 * the server's reason when it failed or was stopped.
 */
async function waitFinished(processId, onState, wanted) {
  while (wanted()) {
    const [answer] = await api(`status?process_id=${processId}`);
    const state = answer.status.process_status;
    if (state === "finished") return true;
    if (state === "failed" || state === "stopped") {
      throw new Error(`The process ${state}: ${answer.status.process_data || "no reason given"}`);
    }
    onState(state);
    await sleep(400);
  }
  return false;
}

async function showResult(box, processId) {
  const { predictions: [prediction] } = await api(`output?process_id=${processId}&format=json`);
  const image = new Image();
  image.src = await imageUrl(`processes/${processId}/images/0/thumbnail?size=1024`);
  await image.decode();
  const canvas = h("canvas", { class: "overlay", role: "img", "aria-label": `Result on ${prediction.source}` });
  const legend = drawPrediction(canvas, image, prediction);
  URL.revokeObjectURL(image.src);
  box.replaceChildren(
    h("h2", {}, "Result"),
    canvas,
    details(prediction, legend),
    h("div", { class: "actions" }, FORMATS.map(([format, name]) => h("button", {
      class: "secondary",
      onclick: (event) => act(event.target, async () => {
        downloadJson(await api(`output?process_id=${processId}&format=${format}`), `result-${format}.json`);
      }),
    }, `Download ${name}`))));
  message("Done.");
}

/** The Grad-CAM overlay PNG the server drew: warm colours where the evidence for the class is strongest. */
async function showExplanation(box, response, chosen) {
  const src = URL.createObjectURL(await response.blob());
  const image = h("img", {
    class: "overlay explanation", src, alt: `Grad-CAM heat map of ${weightsLabel(chosen)} over the image`,
  });
  await image.decode();
  URL.revokeObjectURL(src); // decoded: the picture stays on screen
  box.replaceChildren(
    h("h2", {}, "Explanation"),
    image,
    h("p", {}, "Grad-CAM: red and yellow mark the parts of the image that most raised the predicted class's score,"
      + " blue the parts that did not."));
  message("Done.");
}

function details(prediction, legend) {
  if (prediction.classes) {
    return h("ol", { class: "bars", "aria-label": "Top classes" }, prediction.classes.map((c) => h("li", {},
      h("span", { class: "name" }, c.name),
      h("span", { class: "bar" }, fill(c)),
      h("span", { class: "score" }, `${(c.score * 100).toFixed(1)}%`))));
  }
  if (prediction.objects) {
    if (!prediction.objects.length) return h("p", {}, "No objects above the confidence threshold.");
    return h("ul", { class: "legend" }, prediction.objects.map((o) => h("li", {},
      swatch(o.id), `${o.name} ${(o.score * 100).toFixed(1)}% at [${o.box.map((v) => Math.round(v)).join(", ")}]`)));
  }
  if (prediction.masks) {
    if (!legend.length) return h("p", {}, "No class found in this image.");
    return h("ul", { class: "legend" }, legend.map((l) => h("li", {}, swatch(l.id), `${l.name} (${l.detail})`)));
  }
  return h("dl", {}, Object.entries(prediction.values || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function fill(item) {
  const el = h("span", {});
  el.style.width = `${(item.score * 100).toFixed(1)}%`; // CSSOM, not a style attribute: the page's CSP forbids those
  el.style.background = colorOf(item.id);
  return el;
}

function swatch(id) {
  const el = h("span", { class: "swatch", "aria-hidden": "true" });
  el.style.background = colorOf(id);
  return el;
}
