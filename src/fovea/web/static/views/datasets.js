// Datasets: upload a DeepHealth zip, share, and browse images with their labels, splits and thumbnails.
import { api, cached, imageUrl } from "../api.js";
import { classList, field, form, formatMembers, h, message, page, select, table } from "../ui.js";

const PAGE = 48;
const CTYPES = ["RGB", "GRAY", "RGBA", "BGR", "HSV", "YCBCR", "NONE"]; // the colour types a dataset may declare

export async function datasetsView() {
  const show = page();
  const [datasets, tasks] = await Promise.all([api("datasets"), cached("tasks")]);
  const taskName = Object.fromEntries(tasks.map((t) => [t.id, t.name]));
  show(
    h("h1", {}, "Datasets"),
    uploadForm(tasks),
    table(["Name", "Task", "Colour", "Classes", "Members"], datasets.map((d) => [
      h("a", { href: `#/datasets/${d.id}` }, d.name),
      taskName[d.task_id] || d.task_id,
      d.ctype || "—",
      classList(d.classes).length || "—",
      formatMembers(d.users) + (d.public ? " (public)" : ""),
    ]), "No datasets yet: upload a zip above."),
  );
}

function uploadForm(tasks) {
  const name = h("input", { name: "name", required: true });
  const task = select("task_id", tasks.map((t) => [t.id, t.name]));
  const file = h("input", { name: "dataset_data", type: "file", accept: ".zip", required: true });
  const ctype = select("ctype", CTYPES.map((c) => [c, c]), "RGB");
  const isPublic = h("input", { name: "public", type: "checkbox" });
  const submit = h("button", { type: "submit" }, "Upload dataset");
  const upload = form({ class: "inline" }, submit, async () => {
    const body = new FormData(upload); // every control is named as the API's field
    body.set("public", String(isPublic.checked));
    await api("datasets", { method: "POST", form: body });
    message(`Dataset ${name.value} uploaded.`);
    datasetsView();
  }, field("Name", name), field("Task", task), field("Zip archive", file),
  field("Colour type", ctype, "GRAY for one-channel models such as LeNet and U-Net"), field("Public", isPublic));
  return h("details", { class: "card" }, h("summary", {}, "Upload a dataset (zip with a DeepHealth YAML)"), upload);
}

export async function datasetView(id) {
  const show = page();
  const dataset = await api(`datasets/${id}`);
  const split = select("split", [["", "All splits"], ["training", "training"], ["validation", "validation"],
    ["test", "test"]]);
  const grid = h("ul", { class: "thumbs" });
  const pager = h("div", { class: "pager" });
  let offset = 0;
  let urls = [];
  const render = async () => {
    const query = `offset=${offset}&limit=${PAGE}${split.value ? `&split=${split.value}` : ""}`;
    const images = await api(`datasets/${id}/images?${query}`);
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [];
    grid.replaceChildren(...images.map((image) => {
      const img = h("img", { alt: String(image.location), width: 120, height: 120, loading: "lazy" });
      imageUrl(`datasets/${id}/images/${image.id}/thumbnail?size=160`)
        .then((url) => { urls.push(url); img.src = url; })
        .catch(() => { img.alt = "cannot be shown"; });
      return h("li", { class: "thumb" }, img,
        h("span", { class: "label" }, labelText(image, classList(dataset.classes))),
        h("small", {}, `#${image.id} · ${image.split.join(", ") || "no split"}`));
    }));
    pager.replaceChildren(
      h("button", {
        class: "secondary", disabled: offset === 0, onclick: () => { offset -= PAGE; render(); },
      }, "Previous"),
      h("span", {}, images.length ? `${offset + 1}–${offset + images.length}` : "no images"),
      h("button", {
        class: "secondary", disabled: images.length < PAGE, onclick: () => { offset += PAGE; render(); },
      }, "Next"));
  };
  split.addEventListener("change", () => { offset = 0; render(); });
  show(
    h("p", {}, h("a", { href: "#/datasets" }, "← Datasets")),
    h("h1", {}, dataset.name),
    h("p", {}, `Classes: ${classList(dataset.classes).join(", ") || "none"}`),
    field("Split", split), grid, pager);
  await render();
  return () => urls.forEach((u) => URL.revokeObjectURL(u));
}

function labelText(image, classes) {
  if (image.label_path) return "mask";
  if (image.label) return image.label.map((i) => classes[i] ?? i).join(", ");
  if (image.values) return Object.entries(image.values).map(([k, v]) => `${k}=${v}`).join(", ");
  return "unlabelled";
}
