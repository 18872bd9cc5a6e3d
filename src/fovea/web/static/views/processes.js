// Processes: start a training or an inference on a dataset, watch them live, stop them, read their outputs.
import { api, cached, imageUrl, readyWeights, weightsLabel } from "../api.js";
import { chart, epochs } from "../chart.js";
import { act, field, form, h, message, page, select, table } from "../ui.js";

const POLL_MS = 1500;
const OUTPUTS_PAGE = 50;
const PROJECT_KEY = "fovea.project";
const ENDED = new Set(["finished", "failed", "stopped"]);

function repeat(task) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    const more = await task().catch((error) => { message(error.message, "error"); return false; });
    if (more && !stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export async function processesView() {
  const show = page();
  const projects = await api("projects");
  if (!projects.length) {
    return show(h("h1", {}, "Processes"),
      h("p", {}, "Create a project first: ", h("a", { href: "#/projects" }, "Projects")));
  }
  const saved = sessionStorage.getItem(PROJECT_KEY);
  const picker = select("project", projects.map((p) => [p.id, p.name]),
    projects.some((p) => String(p.id) === saved) ? saved : projects[0].id);
  const forms = h("div", { class: "forms" });
  const list = h("div", { class: "process-list" });
  let stop = null;
  let asked = 0;
  const load = async () => {
    const ask = ++asked; // only the latest project choice fills the page
    sessionStorage.setItem(PROJECT_KEY, picker.value);
    forms.setAttribute("aria-busy", "true");
    const project = projects.find((p) => String(p.id) === picker.value);
    const built = await Promise.all([trainingForm(project), inferenceForm(project)]);
    if (ask !== asked) return;
    forms.replaceChildren(...built);
    forms.removeAttribute("aria-busy");
    if (stop) stop();
    const finalLines = new Map(); // an ended process's last line no longer changes: read it once
    stop = repeat(() => refreshList(list, project, finalLines));
  };
  picker.addEventListener("change", load);
  show(h("h1", {}, "Processes"), field("Project", picker), forms, h("h2", {}, "Processes of this project"), list);
  await load();
  return () => stop && stop();
}

async function refreshList(box, project, finalLines) {
  const [trainings, inferences] = await Promise.all([
    api(`trainings?project_id=${project.id}`),
    api(`inference?project_id=${project.id}`),
  ]);
  const rows = [
    ...trainings.map((t) => ({ ...t, kind: "training", id: t.celery_id })), // a training's process is its celery_id
    ...inferences.map((p) => ({ kind: "testing", ...p })),
  ].sort((a, b) => b.created.localeCompare(a.created));
  const progress = await Promise.all(rows.map(async (row) => {
    if (finalLines.has(row.id)) return finalLines.get(row.id);
    const [answer] = await api(`status?process_id=${row.id}`);
    const line = String(answer.status.process_data || "");
    if (ENDED.has(answer.status.process_status)) finalLines.set(row.id, line);
    return line;
  }));
  box.replaceChildren(table(["Kind", "Process", "Weights", "State", "Progress", ""], rows.map((row, i) => [
    row.kind === "training" ? "training" : "inference",
    h("a", { href: `#/processes/${row.kind}/${row.id}` }, row.id.slice(0, 8)),
    row.modelweights_id ?? "—",
    h("span", { class: `state ${row.process_status}` }, row.process_status),
    h("small", {}, progress[i]),
    ENDED.has(row.process_status) ? "" : stopButton(row.id),
  ]), "No processes in this project yet."));
  return rows.some((row) => !ENDED.has(row.process_status));
}

function stopButton(processId) {
  return h("button", {
    class: "danger",
    onclick: (event) => act(event.target, async () => {
      const answer = await api("stopProcess", { method: "POST", json: { process_id: processId } });
      message(answer.result);
    }),
  }, "Stop");
}

/** Training: a pretraining of the project's task, a dataset, and the properties pre-filled with their defaults. */
async function trainingForm(project) {
  const [models, datasets, properties] = await Promise.all([
    cached("models"), api(`datasets?task_id=${project.task_id}`), cached("properties"),
  ]);
  const ours = models.filter((m) => m.task_id === project.task_id);
  if (!ours.length || !datasets.length) {
    return h("p", {}, "Training needs a model and a dataset of this project's task.");
  }
  const model = select("model", ours.map((m) => [m.id, m.name]));
  const dataset = select("dataset", datasets.map((d) => [d.id, d.name]));
  const weights = h("select", { name: "weights" });
  const props = h("fieldset", { class: "properties" });
  const submit = h("button", { type: "submit" }, "Start training");
  let defaults = {};
  let asked = 0;
  const refill = async () => {
    const ask = ++asked; // only the latest choice of model and dataset fills the form
    props.setAttribute("aria-busy", "true");
    const [usable, allowed] = await Promise.all([
      api(`weights?model_id=${model.value}&dataset_id=${dataset.value}`),
      api(`allowedProperties?model_id=${model.value}`),
    ]);
    if (ask !== asked) return;
    props.removeAttribute("aria-busy");
    weights.replaceChildren(...usable.map((w) => h("option", { value: w.id }, w.name)));
    defaults = {};
    props.replaceChildren(h("legend", {}, "Properties"), ...properties.map((p) => {
      const row = allowed.find((a) => a.property_id === p.id && a.dataset_id === null)
        || allowed.find((a) => a.property_id === p.id);
      const value = (row && row.default_value) ?? p.default ?? "";
      defaults[p.name] = value;
      const choices = ((row && row.allowed_value) || (p.type === "list" ? p.values : "") || "")
        .split(",").map((s) => s.trim()).filter(Boolean);
      return field(p.name, propertyInput(p.name, value, choices));
    }));
  };
  model.addEventListener("change", refill);
  dataset.addEventListener("change", refill);
  await refill();
  const start = form({}, submit, async () => {
    if (!weights.value) throw new Error("No pretraining of this model can be used on that dataset.");
    const changed = [...props.querySelectorAll("[name]")]
      .filter((el) => el.value !== String(defaults[el.name] ?? ""))
      .map((el) => ({ name: el.name, value: el.value }));
    const answer = await api("train", {
      method: "POST",
      json: {
        project_id: project.id, dataset_id: Number(dataset.value), weights_id: Number(weights.value),
        properties: changed,
      },
    });
    message("Training started.");
    location.hash = `#/processes/training/${answer.process_id}`;
  }, field("Model", model), field("Dataset", dataset), field("Pretraining", weights), props);
  return h("details", { class: "card" }, h("summary", {}, "Start a training"), start);
}

/** Augmentation strings are edited as text; listed values are chosen from, keeping an unlisted default. */
function propertyInput(name, value, choices) {
  if (/augmentations/i.test(name)) return h("textarea", { name, rows: 3, spellcheck: "false" }, value);
  if (choices.length < 2) return h("input", { name, value });
  const options = choices.includes(value) ? choices : [value, ...choices];
  return select(name, options.map((c) => [c, c || "(default)"]), value);
}

/** Inference on a dataset's test split with ready weights of the project's task. */
async function inferenceForm(project) {
  const [ready, datasets] = await Promise.all([
    readyWeights(project.task_id), api(`datasets?task_id=${project.task_id}`),
  ]);
  const choices = ready.map((pair) => [pair.weights.id, weightsLabel(pair)]);
  if (!choices.length || !datasets.length) {
    return h("p", {}, "Inference needs weights and a dataset of this project's task.");
  }
  const weights = select("weights", choices);
  const dataset = select("dataset", datasets.map((d) => [d.id, d.name]));
  const submit = h("button", { type: "submit" }, "Start inference");
  const start = form({ class: "inline" }, submit, async () => {
    const answer = await api("inference", {
      method: "POST",
      json: { project_id: project.id, modelweights_id: Number(weights.value), dataset_id: Number(dataset.value) },
    });
    message("Inference started.");
    location.hash = `#/processes/testing/${answer.process_id}`;
  }, field("Weights", weights), field("Dataset", dataset));
  return h("details", { class: "card", open: true }, h("summary", {}, "Start an inference on a dataset"), start);
}

/** One process: state, progress, per-epoch charts (training), stop, and per-image outputs (inference). */
export async function processView(kind, processId) {
  const show = page();
  const state = h("span", { class: "state" });
  const controls = h("div", { class: "actions" });
  const charts = h("div", { class: "charts" });
  const log = h("pre", { class: "log", tabindex: "0", "aria-label": "Progress lines" });
  const outputs = h("div", {});
  show(
    h("p", {}, h("a", { href: "#/processes" }, "← Processes")),
    h("h1", {}, `${kind === "training" ? "Training" : "Inference"} `, h("code", {}, processId.slice(0, 8))),
    h("p", {}, "State: ", state), controls, charts, h("h2", {}, "Progress"), log, outputs);
  return repeat(async () => {
    const [answer] = await api(`status?process_id=${processId}&full=true`);
    const status = answer.status.process_status;
    const lines = Array.isArray(answer.status.process_data) ? answer.status.process_data : [];
    state.textContent = status;
    state.className = `state ${status}`;
    controls.replaceChildren(...(ENDED.has(status) ? [] : [stopButton(processId)]));
    log.textContent = lines.slice(-200).join("\n") || "No progress yet.";
    log.scrollTop = log.scrollHeight;
    if (kind === "training") {
      const series = epochs(lines);
      charts.replaceChildren(chart("Loss per epoch", series, "loss"), chart("Metric per epoch", series, "metric"));
    }
    if (status === "finished" && kind === "testing") await showOutputs(outputs, processId);
    return !ENDED.has(status);
  });
}

async function showOutputs(box, processId) {
  const { outputs } = await api(`output?process_id=${processId}`);
  let shown = 0;
  const rows = h("div", {});
  const more = h("button", { class: "secondary" }, "Show more");
  const next = () => {
    rows.append(table(["Image", "Result"], outputs.slice(shown, shown + OUTPUTS_PAGE).map(([name, value]) => [
      name, resultCell(value)])));
    shown += OUTPUTS_PAGE;
    more.hidden = shown >= outputs.length;
  };
  more.addEventListener("click", next);
  next();
  box.replaceChildren(h("h2", {}, `Outputs (${outputs.length} images)`), rows, more);
}

function resultCell(value) {
  if (typeof value === "string" && /^https?:\/\/.*\/backend\/media\//.test(value)) {
    const img = h("img", { alt: "predicted mask", class: "mask" });
    imageUrl(new URL(value).pathname).then((url) => { img.src = url; }).catch(() => { img.alt = "mask unavailable"; });
    return img;
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}
