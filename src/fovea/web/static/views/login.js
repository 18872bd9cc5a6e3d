// Log in (OAuth2 password grant) and register (when the server allows it).
import { api, login } from "../api.js";
import { field, form, h, message, page } from "../ui.js";

export function loginView() {
  const show = page();
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Log in");
  show(h("div", { class: "card narrow" }, form({}, submit, async () => {
    await login(username.value, password.value);
    window.dispatchEvent(new Event("fovea:signed-in"));
    location.hash = "#/try";
  },
  h("h1", {}, "Log in to Fovea"),
  field("Username", username),
  field("Password", password)),
  h("p", {}, "No account? ", h("a", { href: "#/register" }, "Register"))));
  username.focus();
}

export function registerView() {
  const show = page();
  const inputs = {
    username: h("input", { name: "username", autocomplete: "username", required: true }),
    email: h("input", { name: "email", type: "email", autocomplete: "email", required: true }),
    password: h("input", { name: "password", type: "password", autocomplete: "new-password", required: true }),
  };
  const submit = h("button", { type: "submit" }, "Register");
  show(h("div", { class: "card narrow" }, form({}, submit, async () => {
    const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value]));
    await api("auth/user", { method: "POST", json: body });
    message("Account created; you can log in now.");
    location.hash = "#/login";
  },
  h("h1", {}, "Register"),
  field("Username", inputs.username),
  field("Email", inputs.email),
  field("Password", inputs.password)),
  h("p", {}, h("a", { href: "#/login" }, "Back to log in"))));
}
