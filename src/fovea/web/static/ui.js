// Small DOM helpers shared by the views: element building, messages, forms, tables, copying.

/** h("button", {onclick, class: "x"}, "text", child...) — attributes starting with "on" become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let navigation = 0;

/** Called by the router on every navigation: pages opened before it stop drawing. */
export function navigate() {
  navigation += 1;
  return navigation;
}

export const isCurrent = (n) => n === navigation;

/**
 * The renderer of one page: it replaces the main view's content and moves focus there (keyboard and screen-reader
 * users land on it), but only while no later navigation happened, so a slow page cannot overwrite the next one.
 */
export function page() {
  const mine = navigation;
  const render = (...children) => {
    if (mine !== navigation) return;
    const view = document.getElementById("view");
    view.replaceChildren(...children.flat());
    view.focus({ preventScroll: true });
  };
  render.current = () => mine === navigation; // for a page's own polling: stop once the user has moved on
  return render;
}

/** A dismissable message at the top of the page: "error" messages stay until closed. */
export function message(text, kind = "info") {
  const box = document.getElementById("messages");
  const item = h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, text),
    h("button", { class: "link", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"));
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
  return item;
}

/** Run an async action from a button or form; API errors become readable messages, the button is busy meanwhile. */
export async function act(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    message(error.message || String(error), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A form whose submission runs `action` through `act` with `button` busy (no page reload). */
export function form(attrs, button, action, ...children) {
  const onsubmit = (event) => {
    event.preventDefault();
    act(button, action);
  };
  return h("form", { ...attrs, onsubmit }, ...children, button);
}

/** A labelled form field; `input` is any control element. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", {}, hint) : null);
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value) }, label)));
}

/** A table from rows of cells; `head` names the columns. */
export function table(head, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}

export function copyButton(text, label = "Copy") {
  return h("button", {
    class: "secondary",
    onclick: async (event) => {
      await navigator.clipboard.writeText(text).catch(() => null);
      event.target.textContent = "Copied";
      setTimeout(() => { event.target.textContent = label; }, 1500);
    },
  }, label);
}

export function code(text) {
  return h("div", { class: "snippet" }, h("pre", {}, h("code", {}, text)), copyButton(text));
}

/** Hand a Blob to the browser as a downloaded file. */
export function saveFile(blob, filename) {
  const url = URL.createObjectURL(blob);
  h("a", { href: url, download: filename }).click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function downloadJson(value, filename) {
  saveFile(new Blob([JSON.stringify(value, null, 2)], { type: "application/json" }), filename);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** "users" for the sharing endpoints from "alice:VIEW, bob:OWN". */
export function parseMembers(text) {
  return text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).map((item) => {
    const [username, permission = "VIEW"] = item.split(":").map((s) => s.trim());
    return { username, permission: permission.toUpperCase() };
  });
}

export function formatMembers(users) {
  return (users || []).map((u) => `${u.username}:${u.permission}`).join(", ");
}

/** Class names as a list: the API stores them comma-separated. */
export function classList(value) {
  if (Array.isArray(value)) return value;
  return (value || "").split(",").map((s) => s.trim()).filter(Boolean);
}
