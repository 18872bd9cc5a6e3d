// Models by task and their weights: upload an ONNX file with its classes, download, make public, share.
import { api, cached, fetchBlob } from "../api.js";
import { act, classList, field, form, h, message, page, saveFile, select, table } from "../ui.js";
import { shareForm } from "./projects.js";

export async function modelsView() {
  const show = page();
  const [tasks, models] = await Promise.all([cached("tasks"), cached("models")]);
  const taskName = Object.fromEntries(tasks.map((t) => [t.id, t.name]));
  const filter = select("task", [["", "All tasks"], ...tasks.map((t) => [t.id, t.name])]);
  const list = h("div", { class: "models" });
  const render = async () => {
    const shown = models.filter((m) => !filter.value || String(m.task_id) === filter.value);
    const sections = await Promise.all(shown.map(async (m) => {
      const weights = await api(`weights?model_id=${m.id}&include_inactive=true`);
      return h("section", { class: "card" },
        h("h2", {}, `${m.name} `, h("span", { class: "badge" }, taskName[m.task_id] || m.task_id)),
        weightsTable(weights, render));
    }));
    list.replaceChildren(...sections);
  };
  filter.addEventListener("change", render);
  show(h("h1", {}, "Models and weights"), field("Task", filter), uploadForm(models, render), list);
  await render();
}

function weightsTable(weights, reload) {
  return table(["Weights", "Classes", "State", "Public", "Members", ""], weights.map((w) => [
    w.name,
    h("span", { class: "classes", title: classList(w.classes).join(", ") }, summarize(classList(w.classes))),
    w.is_active ? "ready" : "not ready",
    h("input", {
      type: "checkbox",
      checked: w.public,
      "aria-label": `${w.name} is public`,
      onchange: (event) => act(event.target, async () => {
        await api(`weights/${w.id}`, { method: "PATCH", json: { public: event.target.checked } });
        message(`${w.name} is now ${event.target.checked ? "public" : "private"}.`);
      }),
    }),
    shareForm(`weights/${w.id}`, w.users, reload),
    h("div", { class: "actions" },
      h("a", { class: "button secondary", href: `#/try?weights=${w.id}` }, "Try"),
      h("button", {
        class: "secondary",
        onclick: (event) => act(event.target, async () => {
          saveFile(await fetchBlob(`weightsDownload?modelweights_id=${w.id}`), `${w.name}.onnx`);
        }),
      }, "Download")),
  ]), "No weights for this model yet.");
}

function summarize(classes) {
  if (!classes.length) return "—";
  return classes.length <= 4 ? classes.join(", ") : `${classes.slice(0, 3).join(", ")} … (${classes.length})`;
}

function uploadForm(models, reload) {
  const name = h("input", { name: "name", required: true });
  const model = select("model_id", models.map((m) => [m.id, m.name]));
  const file = h("input", { name: "onnx_data", type: "file", accept: ".onnx", required: true });
  const classes = h("input", { name: "classes", placeholder: "cat, dog, bird" });
  const submit = h("button", { type: "submit" }, "Upload weights");
  const upload = form({ class: "inline" }, submit, async () => {
    const body = new FormData(upload); // every control is named as the API's field
    if (!classes.value.trim()) body.delete("classes");
    await api("weights", { method: "POST", form: body });
    message(`Weights ${name.value} uploaded.`);
    reload();
  }, field("Name", name), field("Model", model), field("ONNX file", file),
  field("Classes", classes, "comma-separated, in output order"));
  return h("details", { class: "card" }, h("summary", {}, "Upload ONNX weights"), upload);
}
