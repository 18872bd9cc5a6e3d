// Sessions: deploy weights behind a capability URL, copy the URL, and copy client snippets for each protocol.
import { api, readyWeights, weightsLabel } from "../api.js";
import { act, code, copyButton, field, form, h, message, page, select, table } from "../ui.js";

export async function sessionsView() {
  const show = page();
  const [sessions, ready] = await Promise.all([api("sessions"), readyWeights()]);
  const choices = ready.map((pair) => [pair.weights.id, weightsLabel(pair)]);
  const weightsName = Object.fromEntries(choices);
  const weights = select("modelweights_id", choices);
  const name = h("input", { name: "name", placeholder: "defaults to the weights' name", pattern: "[A-Za-z0-9_.-]*" });
  const deploy = h("button", { type: "submit" }, "Deploy");
  show(
    h("h1", {}, "Sessions"),
    form({ class: "card inline" }, deploy, async () => {
      const body = { modelweights_id: Number(weights.value), ...(name.value ? { name: name.value } : {}) };
      const created = await api("sessions", { method: "POST", json: body });
      message(`Deployed ${created.name}.`);
      sessionsView();
    }, field("Weights", weights), field("Name", name)),
    table(["Name", "Weights", "URL", "State", ""], sessions.map((s) => [
      s.name,
      weightsName[s.modelweights_id] || `weights ${s.modelweights_id}`,
      h("span", { class: "url" }, h("code", {}, s.session_url), copyButton(s.session_url, "Copy URL")),
      `${s.state} · ${s.requests} requests`,
      h("button", {
        class: "danger",
        onclick: (event) => act(event.target, async () => {
          await api(`sessions/${s.id}`, { method: "DELETE" });
          message(`Session ${s.name} deleted.`);
          sessionsView();
        }),
      }, "Delete"),
    ]), "No sessions yet: deploy weights above."),
    ...sessions.map((s, i) => snippets(s, i === 0)),
  );
}

/** Copy-paste clients for a session: Fovea's SDK, the Supervisely SDK, tritonclient and curl. */
function snippets(session, open) {
  const url = session.session_url;
  const hostPath = url.replace(/^https?:\/\//, "");
  return h("details", { class: "card snippets", open },
    h("summary", {}, `Use ${session.name} from your tools`),
    h("h3", {}, "fovea.Session"),
    code(`import fovea\n\nsession = fovea.Session("${url}")\nprint(session.inference_image_path("photo.jpg"))`),
    h("h3", {}, "Supervisely SDK"),
    code(`import supervisely as sly\n\nsession = sly.nn.inference.Session(sly.Api("http://unused", None), `
      + `session_url="${url}")\nprint(session.inference_image_path("photo.jpg"))`),
    h("h3", {}, "tritonclient (Open Inference Protocol)"),
    code(`import numpy as np\nimport tritonclient.http as httpclient\n\n`
      + `client = httpclient.InferenceServerClient("${hostPath}")\n`
      + `image = httpclient.InferInput("image_bytes", [1], "BYTES")\n`
      + `image.set_data_from_numpy(np.array([open("photo.jpg", "rb").read()], dtype=object))\n`
      + `result = client.infer("${session.name}", [image])\nprint(result.get_response())`),
    h("h3", {}, "curl (FLaVor /invocations and Supervisely)"),
    code(`curl -s ${url}/ping -o /dev/null -w "%{http_code}\\n"\n`
      + `curl -s -F files=@photo.jpg ${url}/inference_image`));
}
