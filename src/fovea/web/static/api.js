// The console's only door to the server: the public REST API under /backend/, with the bearer token attached,
// a refresh when the access token expires, and every error turned into one readable sentence.

const CLIENT_ID = "fovea";
const STORE = "fovea.tokens";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

let tokens = JSON.parse(sessionStorage.getItem(STORE) || "null");

function remember(value) {
  tokens = value;
  if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
  else sessionStorage.removeItem(STORE);
}

export const signedIn = () => Boolean(tokens);

/** A sentence from whatever error body the server sent (backend, OAuth or session dialects). */
function describe(status, body) {
  if (body && typeof body === "object") {
    const text = body.error_description || body.error || body.message || body.detail || body.result;
    if (typeof text === "string") {
      const fields = body.detail && body.detail.fields;
      const extra = fields
        ? `: ${Object.entries(fields).map(([key, why]) => `${key}: ${[].concat(why).join(" ")}`).join("; ")}`
        : "";
      return text + extra;
    }
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  }
  if (status === 413) return "That upload is too large for this server.";
  if (status === 503) return "The server is busy; try again in a moment.";
  return `The server answered ${status}.`;
}

async function tokenRequest(fields) {
  const response = await fetch("/backend/auth/token", {
    method: "POST",
    body: new URLSearchParams({ client_id: CLIENT_ID, ...fields }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const invalid = body && body.error === "invalid_grant" && fields.grant_type === "password";
    throw new ApiError(invalid ? "Wrong username or password." : describe(response.status, body), response.status);
  }
  remember(body);
  return body;
}

export const login = (username, password) => tokenRequest({ grant_type: "password", username, password });

export async function logout() {
  if (tokens) {
    const token = tokens.access_token;
    await fetch("/backend/auth/revoke-token", {
      method: "POST",
      body: new URLSearchParams({ client_id: CLIENT_ID, token }),
    }).catch(() => null);
  }
  remember(null);
}

let refreshing = null;

async function refresh() {
  if (!tokens || !tokens.refresh_token) return false;
  refreshing ||= tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh_token })
    .then(() => true, () => { remember(null); return false; })
    .finally(() => { refreshing = null; });
  return refreshing;
}

/**
 * fetch() for the API. `json` sends a JSON body, `form` a FormData; the answer is parsed JSON, or the Response
 * itself with `raw: true`. A 401 refreshes the token once; if that fails, "fovea:signed-out" is dispatched.
 */
export async function api(path, { method = "GET", json, form, raw = false, retry = true } = {}) {
  const headers = {};
  if (tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const url = path.startsWith("/") ? path : `/backend/${path}`;
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError("The server cannot be reached. Is `fovea serve` running?", 0);
  }
  if (response.status === 401 && retry && (await refresh())) {
    return api(path, { method, json, form, raw, retry: false });
  }
  if (response.status === 401) {
    remember(null);
    window.dispatchEvent(new Event("fovea:signed-out"));
  }
  if (!response.ok) {
    const detail = await response.json().catch(() => null);
    throw new ApiError(describe(response.status, detail), response.status);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** A file behind the bearer token (images, weights) as a Blob: <img src> and <a href> cannot send the token. */
export async function fetchBlob(path) {
  const response = await api(path, { raw: true });
  return response.blob();
}

/** An object URL for an authenticated image (thumbnails, masks). */
export async function imageUrl(path) {
  return URL.createObjectURL(await fetchBlob(path));
}

/** The ready weights of every model (or of `taskId`'s), as {model, weights} pairs, for the views' pickers. */
export async function readyWeights(taskId) {
  const models = (await cached("models")).filter((m) => taskId === undefined || m.task_id === taskId);
  const lists = await Promise.all(models.map((m) => api(`weights?model_id=${m.id}`)));
  return models.flatMap((model, i) => lists[i].map((weights) => ({ model, weights })));
}

export const weightsLabel = ({ model, weights }) => `${weights.name} (${model.name})`;

/** Cached lookups the views share: tasks and models rarely change during a visit. */
const cache = new Map();
export function cached(path) {
  if (!cache.has(path)) cache.set(path, api(path).catch((error) => { cache.delete(path); throw error; }));
  return cache.get(path);
}
