// The console's entry: sign-in state, the header, and a hash router that hands each page to its view module.
import { api, logout, signedIn } from "./api.js";
import { h, isCurrent, message, navigate, page } from "./ui.js";
import { loginView, registerView } from "./views/login.js";
import { projectsView } from "./views/projects.js";
import { modelsView } from "./views/models.js";
import { datasetsView, datasetView } from "./views/datasets.js";
import { tryView } from "./views/try.js";
import { processesView, processView } from "./views/processes.js";
import { sessionsView } from "./views/sessions.js";

const ROUTES = [
  [/^#\/projects$/, projectsView],
  [/^#\/models$/, modelsView],
  [/^#\/datasets$/, datasetsView],
  [/^#\/datasets\/(\d+)$/, datasetView],
  [/^#\/try$/, tryView],
  [/^#\/processes$/, processesView],
  [/^#\/processes\/(training|testing)\/([\w-]+)$/, processView],
  [/^#\/sessions$/, sessionsView],
];

let stopCurrent = null; // views that poll return a function that stops them

async function header() {
  const who = document.getElementById("who");
  const nav = document.getElementById("nav");
  nav.hidden = !signedIn();
  if (!signedIn()) {
    who.replaceChildren();
    return;
  }
  const user = await api("auth/user").catch(() => null);
  who.replaceChildren(
    h("span", { class: "username" }, user ? user.username : ""),
    h("button", {
      class: "secondary",
      onclick: async () => {
        await logout();
        location.hash = "#/login";
      },
    }, "Log out"));
}

async function route() {
  const navigation = navigate();
  document.querySelectorAll("#messages .error").forEach((el) => el.remove()); // errors belong to their page
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
  const hash = location.hash || "#/";
  if (!signedIn()) {
    await header();
    if (hash === "#/register") return registerView();
    if (hash !== "#/login") location.hash = "#/login";
    return loginView();
  }
  if (hash === "#/" || hash === "#/login" || hash === "#/register") {
    location.hash = "#/try";
    return undefined;
  }
  document.querySelectorAll("#nav a").forEach((a) => {
    if (hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const [path, query = ""] = hash.split("?");
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  if (!found) return page()(h("h1", {}, "Not found"), h("p", {}, "This page does not exist."));
  try {
    const stop = await found[1](...path.match(found[0]).slice(1), new URLSearchParams(query));
    if (isCurrent(navigation)) stopCurrent = stop || null;
    else if (stop) stop(); // the user moved on while this page was loading
  } catch (error) {
    if (isCurrent(navigation)) message(error.message, "error");
  }
  return undefined;
}

window.addEventListener("hashchange", route);
window.addEventListener("fovea:signed-out", () => {
  message("Your session has ended; please log in again.", "error");
  location.hash = "#/login";
});
window.addEventListener("fovea:signed-in", () => header());
header().then(route);
