// Projects: list, create for a task, share with other users as OWN or VIEW.
import { api, cached } from "../api.js";
import { field, form, formatMembers, h, message, page, parseMembers, select, table } from "../ui.js";

export async function projectsView() {
  const show = page();
  const [projects, tasks] = await Promise.all([api("projects"), cached("tasks")]);
  const taskName = Object.fromEntries(tasks.map((t) => [t.id, t.name]));
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  const task = select("task_id", tasks.map((t) => [t.id, t.name]));
  const create = h("button", { type: "submit" }, "Create project");
  show(
    h("h1", {}, "Projects"),
    form({ class: "card inline" }, create, async () => {
      await api("projects", { method: "POST", json: { name: name.value, task_id: Number(task.value) } });
      message(`Project ${name.value} created.`);
      projectsView();
    }, field("Name", name), field("Task", task)),
    table(["Name", "Task", "Members", ""], projects.map((p) => [
      p.name,
      taskName[p.task_id] || p.task_id,
      formatMembers(p.users),
      shareForm(`projects/${p.id}`, p.users, projectsView),
    ]), "No projects yet: create one above."),
  );
}

/** An inline editor of a resource's members ("alice:VIEW, bob:OWN"), saved with PATCH. */
export function shareForm(path, users, reload) {
  const input = h("input", {
    name: "users", value: formatMembers(users), "aria-label": "Members (user:OWN or user:VIEW)",
  });
  const save = h("button", { type: "submit", class: "secondary" }, "Share");
  return form({ class: "share" }, save, async () => {
    await api(path, { method: "PATCH", json: { users: parseMembers(input.value) } });
    message("Sharing saved.");
    reload();
  }, input);
}
