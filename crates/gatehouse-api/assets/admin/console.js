// Gatehouse's admin console: plain JavaScript against the admin API on this origin, no build step, no framework.
// Every piece of data reaches the page through textContent or attribute setters, never as HTML.
const $ = (id) => document.getElementById(id);
const KEY = "gatehouse_admin_key";
const DAY = 86_400;
const WARN_DAYS = 30;
const KNOWN_AUDIT_TYPES = [
  "login_success",
  "thirdparty_signup_succeeded",
  "thirdparty_signin_succeeded",
  "thirdparty_linking_succeeded",
  "thirdparty_signin_signup_failed",
  "token_exchange_succeeded",
  "token_exchange_failed",
  "user_logged_out",
  "user_deleted",
  "admin_settings_updated",
  "admin_secret_added",
  "admin_secret_removed",
  "admin_certificate_added",
  "admin_certificate_removed",
  "admin_sessions_revoked",
  "admin_identity_unlinked",
  "admin_user_deleted",
];

// --- small helpers -----------------------------------------------------------------------------------------------

/** Creates an element. Strings among the children become text nodes, so data can never turn into markup. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
  return element;
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const preciseFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const numberFormat = new Intl.NumberFormat();

function dash() {
  return h("span", { class: "muted", "aria-label": "none" }, "—");
}

/** A <time> in the browser's locale, with the exact instant as its tooltip. */
function when(iso, format = dateTimeFormat) {
  if (!iso) return dash();
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return document.createTextNode(String(iso));
  return h("time", { datetime: iso, title: preciseFormat.format(date) }, format.format(date));
}

function badge(text, tone) {
  return h("span", { class: `badge ${tone}` }, text);
}

/** "Expired" (red) or "Expires in N days" (amber) within 30 days of expiry; nothing otherwise. */
function expiryBadge(item, dateField) {
  if (item.expired) return badge("Expired", "red");
  let seconds = item.expires_in_seconds;
  if ((seconds === undefined || seconds === null) && item[dateField]) {
    seconds = (Date.parse(item[dateField]) - Date.now()) / 1000;
  }
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return null;
  if (seconds <= 0) return badge("Expired", "red");
  if (seconds >= WARN_DAYS * DAY) return null;
  const days = Math.floor(seconds / DAY);
  if (days < 1) return badge("Expires in less than a day", "amber");
  return badge(days === 1 ? "Expires in 1 day" : `Expires in ${days} days`, "amber");
}

function sourceLabel(source) {
  return source === "config" ? "Configuration file" : source === "console" ? "Console" : String(source ?? "");
}

/** Shows an element's text in the toast and to screen readers; it fades after a while. */
let toastTimer;
function announce(message, tone = "info") {
  const toast = $("toast");
  toast.textContent = message;
  toast.className = `toast ${tone}`;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, tone === "error" ? 10_000 : 5_000);
}

function setFeedback(element, message, tone, ...extra) {
  element.className = `${element.className.split(" ").filter((c) => !["success", "error", "info"].includes(c)).join(" ")} ${tone ?? ""}`.trim();
  element.replaceChildren(...(message ? [h("span", {}, message)] : []), ...extra);
}

function showBanner(element, message) {
  element.textContent = message ?? "";
  element.hidden = !message;
}

async function copyText(text, source, button) {
  let copied = false;
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      copied = true;
    }
  } catch {
    copied = false;
  }
  if (!copied && source) {
    source.focus();
    source.select?.();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  if (copied) {
    const label = button.textContent;
    button.textContent = "Copied";
    announce("Copied to the clipboard.", "success");
    setTimeout(() => { button.textContent = label; }, 1500);
  } else {
    announce("The text is selected: press Ctrl+C (⌘C on a Mac) to copy it.", "info");
  }
}

/** A hidden textarea to select text that is not on screen, for the copy fallback. */
function scratchArea(text) {
  const area = h("textarea", { class: "visually-hidden", readonly: true, "aria-hidden": "true", tabindex: "-1" });
  area.value = text;
  document.body.append(area);
  setTimeout(() => area.remove(), 60_000);
  return area;
}

function busy(button, isBusy, text) {
  if (isBusy) {
    button.dataset.label = button.textContent;
    if (text) button.textContent = text;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// --- the admin API -----------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || (status ? `The request failed (HTTP ${status}).` : "Gatehouse could not be reached."));
    this.status = status;
    this.body = body;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

/**
 * One call to the admin API with the key from this tab's sessionStorage (or `options.key` while checking one).
 * Resolves to { data, total }; throws ApiError. A 401 with the stored key signs the console out.
 */
async function api(method, path, body, options = {}) {
  const key = options.key ?? sessionStorage.getItem(KEY) ?? "";
  const headers = { accept: "application/json", authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status === 401 && options.key === undefined) keyRefused();
  if (!response.ok) throw new ApiError(response.status, data);
  const total = response.headers.get("x-total-count");
  return { data, total: total === null ? null : Number(total) };
}

/** Reports an error in a banner or feedback element; 401 is already handled by signing out. */
function report(error, element) {
  if (error?.status === 401) return;
  if (!(error instanceof ApiError)) console.error(error);
  let message = error instanceof ApiError ? error.message : "Something went wrong in the console. Reload the page.";
  const details = (error?.errors ?? []).map((issue) => issue.message).filter((text) => text && !message.includes(text));
  if (details.length) message = `${message.replace(/[.:]$/, "")}: ${details.join("; ")}`;
  if (element) {
    if (element.classList.contains("banner")) showBanner(element, message);
    else setFeedback(element, message, "error");
  } else {
    announce(message, "error");
  }
}

// --- signing in with the admin key -------------------------------------------------------------------------------

function showOnly(view) {
  $("key-view").hidden = view !== "key";
  $("app").hidden = view !== "app";
  $("loading-view").hidden = view !== "loading";
}

function showKeyView(message = "") {
  showOnly("key");
  const error = $("admin-key-error");
  error.textContent = message;
  error.hidden = !message;
  if (message) $("admin-key").setAttribute("aria-invalid", "true");
  else $("admin-key").removeAttribute("aria-invalid");
  document.title = "Console · Gatehouse";
  $("admin-key").focus();
}

function keyRefused() {
  sessionStorage.removeItem(KEY);
  resetApp();
  showKeyView("The admin key is no longer accepted. Enter a valid key.");
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("admin-key");
  const key = input.value.trim();
  if (!key) {
    showKeyView("Enter an admin key.");
    return;
  }
  const button = $("key-continue");
  busy(button, true, "Checking…");
  try {
    const { data } = await api("GET", "/identity-providers", undefined, { key });
    sessionStorage.setItem(KEY, key);
    input.value = "";
    input.removeAttribute("aria-invalid");
    $("admin-key-error").hidden = true;
    enterApp(data);
  } catch (error) {
    if (error.status === 401 || error.status === 403) showKeyView("This key was refused. Check it and try again.");
    else showKeyView(error.message);
  } finally {
    busy(button, false);
  }
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  resetApp();
  showKeyView();
  announce("Signed out. The key was forgotten.", "info");
});

/** Forgets everything the console showed, so nothing lingers after signing out. */
function resetApp() {
  providers.data = null;
  providers.baseline = null;
  providers.version = undefined;
  users.loaded = false;
  users.current = null;
  users.email = "";
  audit.loaded = false;
  audit.filters = {};
  for (const id of ["users-search", "audit-filters", "secret-form", "cert-form", "consent-form"]) $(id).reset();
  $("consent-result").hidden = true;
  $("consent-url").value = "";
  $("cert-generate").hidden = false;
  $("cert-upload").hidden = true;
  for (const id of ["providers-error", "users-error", "user-error", "audit-error"]) showBanner($(id), "");
  for (const id of ["secrets-table", "certs-table", "users-table", "audit-table", "user-emails", "user-identities", "user-sessions"]) {
    $(id).tBodies[0].replaceChildren();
  }
  $("users-pager").replaceChildren();
  $("audit-pager").replaceChildren();
  $("cert-generated").hidden = true;
  $("cert-generated-pem").value = "";
  $("user-detail-view").hidden = true;
  $("users-list-view").hidden = false;
  setFeedback($("save-feedback"), "");
  setFeedback($("secret-feedback"), "");
  setFeedback($("cert-feedback"), "");
  setFeedback($("consent-feedback"), "");
  updateDirty();
}

function enterApp(providersData) {
  showOnly("app");
  if (providersData) renderProviders(providersData);
  const view = viewFromHash() ?? "providers";
  selectView(view);
  $(`tab-${view}`).focus();
}

// --- tabs --------------------------------------------------------------------------------------------------------

const VIEWS = ["providers", "users", "audit"];
const TITLES = { providers: "Identity providers", users: "Users", audit: "Audit log" };

function viewFromHash() {
  const name = location.hash.slice(1);
  return VIEWS.includes(name) ? name : null;
}

function selectView(name) {
  for (const view of VIEWS) {
    const tab = $(`tab-${view}`);
    const selected = view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`view-${view}`).hidden = !selected;
  }
  document.title = `${TITLES[name]} · Gatehouse console`;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "providers" && !providers.data) loadProviders();
  if (name === "users" && !users.loaded) searchUsers(1);
  if (name === "audit" && !audit.loaded) loadAudit(1);
}

for (const view of VIEWS) {
  $(`tab-${view}`).addEventListener("click", () => selectView(view));
}

document.querySelector('[role="tablist"]').addEventListener("keydown", (event) => {
  const current = VIEWS.findIndex((view) => $(`tab-${view}`).getAttribute("aria-selected") === "true");
  let next = null;
  if (event.key === "ArrowRight") next = (current + 1) % VIEWS.length;
  else if (event.key === "ArrowLeft") next = (current - 1 + VIEWS.length) % VIEWS.length;
  else if (event.key === "Home") next = 0;
  else if (event.key === "End") next = VIEWS.length - 1;
  if (next === null) return;
  event.preventDefault();
  selectView(VIEWS[next]);
  $(`tab-${VIEWS[next]}`).focus();
});

window.addEventListener("hashchange", () => {
  const view = viewFromHash();
  if (view && !$("app").hidden) selectView(view);
});

// --- identity providers: the settings form ----------------------------------------------------------------------

const providers = { data: null, baseline: null, version: undefined };

/** A list editor: one text input per entry, each with its own remove button and its own error line. */
class ListEditor {
  constructor(list, addButton) {
    this.list = list;
    this.label = list.dataset.label;
    this.placeholder = list.dataset.placeholder;
    this.describedBy = list.dataset.describedby;
    addButton.addEventListener("click", () => this.add("", true));
  }

  set(values) {
    this.list.replaceChildren();
    for (const value of values) this.add(value, false);
    if (values.length === 0) this.add("", false);
  }

  add(value, focus) {
    const input = h("input", {
      type: "text",
      class: "mono",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: this.placeholder,
    });
    input.value = value;
    const error = h("p", { class: "field-error", hidden: true });
    const remove = h("button", { type: "button", class: "icon-button" }, h("span", { "aria-hidden": "true" }, "×"));
    remove.addEventListener("click", () => {
      const rows = [...this.list.children];
      const index = rows.indexOf(row);
      if (rows.length === 1) {
        input.value = "";
        input.focus();
      } else {
        row.remove();
        const rest = [...this.list.children];
        rest[Math.min(index, rest.length - 1)]?.querySelector("input")?.focus();
      }
      this.renumber();
      updateDirty();
    });
    const row = h("li", { class: "list-row" }, h("div", { class: "input-group" }, input, remove), error);
    this.list.append(row);
    this.renumber();
    if (focus) input.focus();
    updateDirty();
    return row;
  }

  renumber() {
    [...this.list.children].forEach((row, i) => {
      const input = row.querySelector("input");
      const error = row.querySelector(".field-error");
      const errorId = `${this.list.id}-${i}-error`;
      error.id = errorId;
      input.id = `${this.list.id}-${i}`;
      input.setAttribute("aria-label", `${this.label} ${i + 1}`);
      input.setAttribute("aria-describedby", `${errorId} ${this.describedBy}`);
      row.querySelector(".icon-button").setAttribute("aria-label", `Remove ${this.label.toLowerCase()} ${i + 1}`);
    });
  }

  /** The non-empty entries, trimmed, each with its row (so an error at index i lands on the right row). */
  entries() {
    return [...this.list.children]
      .map((row) => ({ row, value: row.querySelector("input").value.trim() }))
      .filter((entry) => entry.value !== "");
  }
}

const patterns = new ListEditor($("patterns"), $("add-pattern"));
const tenants = new ListEditor($("tenants"), $("add-tenant"));
const TENANT_MODES = ["common", "organizations", "consumers"];

function settingsFromData(data) {
  const ms = data?.providers?.microsoft ?? {};
  return {
    redirect_url: data?.redirect_url || null,
    error_redirect_url: data?.error_redirect_url || null,
    allowed_redirect_urls: [...(data?.allowed_redirect_urls ?? [])],
    enabled: Boolean(ms.enabled),
    client_id: ms.client_id || null,
    tenant: ms.tenant || "common",
    allowed_tenants: [...(ms.allowed_tenants ?? [])],
    allow_linking: Boolean(ms.allow_linking),
    prompt: ms.prompt || null,
    cloud_instance: ms.cloud_instance || null,
  };
}

function readSettings() {
  const mode = $("ms-tenant-mode").value;
  return {
    redirect_url: $("redirect-url").value.trim() || null,
    error_redirect_url: $("error-redirect-url").value.trim() || null,
    allowed_redirect_urls: patterns.entries().map((entry) => entry.value),
    enabled: $("ms-enabled").checked,
    client_id: $("ms-client-id").value.trim() || null,
    tenant: mode === "specific" ? $("ms-tenant-specific").value.trim() : mode,
    allowed_tenants: tenants.entries().map((entry) => entry.value),
    allow_linking: $("ms-allow-linking").checked,
    prompt: $("ms-prompt").value || null,
    cloud_instance: $("ms-cloud-instance").value.trim() || null,
  };
}

function fillSettings(settings) {
  $("redirect-url").value = settings.redirect_url ?? "";
  $("ms-cloud-instance").value = settings.cloud_instance ?? "";
  $("error-redirect-url").value = settings.error_redirect_url ?? "";
  patterns.set(settings.allowed_redirect_urls);
  $("ms-enabled").checked = settings.enabled;
  $("ms-client-id").value = settings.client_id ?? "";
  const known = TENANT_MODES.includes(settings.tenant);
  $("ms-tenant-mode").value = known ? settings.tenant : "specific";
  $("ms-tenant-specific").value = known ? "" : settings.tenant;
  $("ms-tenant-specific-field").hidden = known;
  tenants.set(settings.allowed_tenants);
  $("ms-allow-linking").checked = settings.allow_linking;
  const prompt = $("ms-prompt");
  if (settings.prompt && ![...prompt.options].some((option) => option.value === settings.prompt)) {
    prompt.append(h("option", { value: settings.prompt }, settings.prompt));
  }
  prompt.value = settings.prompt ?? "";
}

function isDirty() {
  return providers.baseline !== null && JSON.stringify(readSettings()) !== providers.baseline;
}

function updateDirty() {
  $("dirty-note").hidden = !isDirty();
}

$("settings-form").addEventListener("input", updateDirty);
$("settings-form").addEventListener("change", updateDirty);
$("ms-tenant-mode").addEventListener("change", () => {
  const specific = $("ms-tenant-mode").value === "specific";
  $("ms-tenant-specific-field").hidden = !specific;
  if (specific) $("ms-tenant-specific").focus();
});

window.addEventListener("beforeunload", (event) => {
  if (!$("app").hidden && isDirty()) event.preventDefault();
});

/** Renders the whole view; `form: false` leaves the settings form (and its unsaved edits) alone. */
function renderProviders(data, { form = true } = {}) {
  providers.data = data;
  showBanner($("providers-error"), "");
  if (form) {
    providers.version = data.version;
    fillSettings(settingsFromData(data));
    providers.baseline = JSON.stringify(readSettings());
    clearErrors($("settings-form"));
    updateDirty();
  }
  // An emptied field is saved as null: the configuration file's value applies again, so it is what the hint names.
  const fileRedirect = data.config_redirect_url;
  $("redirect-url").placeholder = fileRedirect ?? "https://auth.example.com/thirdparty/callback";
  $("redirect-url-default").textContent = fileRedirect ? `the configuration's ${fileRedirect}` : "none";
  $("redirect-url-missing").hidden = Boolean(data.redirect_url);
  const ms = data.providers?.microsoft ?? {};
  $("ms-cloud-instance").placeholder = ms.config_cloud_instance ?? "";
  $("ms-cloud-instance-default").textContent = `the configuration's ${ms.config_cloud_instance ?? ""}`;
  renderStatus(ms);
  // The configured tenant is the default when it names one organisation; else the administrator's own.
  const specificTenant = !["common", "organizations", "consumers"].includes(ms.tenant ?? "common");
  $("consent-tenant").placeholder = specificTenant ? ms.tenant : "organizations";
  renderSecrets(ms.secrets ?? []);
  renderCertificates(ms.certificates ?? []);
}

function renderStatus(ms) {
  const line = $("ms-status");
  const dot = (tone) => h("span", { class: `dot ${tone}`, "aria-hidden": "true" });
  if (!ms.enabled) {
    line.className = "status-line off";
    line.replaceChildren(dot("grey"), "Off: the Microsoft button is not shown on sign-in pages.");
  } else if (ms.configured && !ms.problems?.length) {
    line.className = "status-line ok";
    line.replaceChildren(dot("green"), "On: people can sign in with Microsoft.");
  } else if (ms.configured) {
    // Usable, with something that needs attention soon (a credential about to expire).
    line.className = "status-line problem";
    line.replaceChildren(
      h("p", {}, dot("green"), "On: people can sign in with Microsoft. Needs attention:"),
      h("ul", {}, ms.problems.map((problem) => h("li", {}, problem))),
    );
  } else {
    line.className = "status-line problem";
    const problems = ms.problems?.length ? ms.problems : ["The configuration is incomplete."];
    line.replaceChildren(
      h("p", {}, dot("amber"), "Enabled, but the Microsoft button is not shown until this is fixed:"),
      h("ul", {}, problems.map((problem) => h("li", {}, problem))),
    );
  }
}

async function loadProviders() {
  try {
    const { data } = await api("GET", "/identity-providers");
    renderProviders(data);
  } catch (error) {
    report(error, $("providers-error"));
  }
}

/** After a secret or certificate changed: fresh state, without throwing away unsaved edits in the form. */
async function refreshProviders() {
  const { data } = await api("GET", "/identity-providers");
  if (!isDirty()) {
    renderProviders(data);
    return;
  }
  // The version covers credentials too. Take the new one only if nobody changed the settings being edited.
  if (JSON.stringify(settingsFromData(data)) === JSON.stringify(JSON.parse(providers.baseline))) providers.version = data.version;
  renderProviders(data, { form: false });
}

// Field errors (422): each next to its field, with aria-invalid on the input.

function clearErrors(scope) {
  for (const error of scope.querySelectorAll(".field-error")) {
    error.textContent = "";
    error.hidden = true;
  }
  for (const input of scope.querySelectorAll('[aria-invalid="true"]')) input.removeAttribute("aria-invalid");
}

function showFieldError(input, error, message) {
  if (!error.hidden && error.textContent) error.append(h("br"), message);
  else error.textContent = message;
  error.hidden = false;
  input?.setAttribute("aria-invalid", "true");
}

/** Where a settings error goes: { input, error } for a field name such as `allowed_redirect_urls[1]`. */
function settingsErrorTarget(field, sent) {
  const indexed = /^(.+)\[(\d+)\]$/.exec(field);
  if (indexed) {
    const lists = {
      allowed_redirect_urls: { entries: sent.patterns, error: $("patterns-error") },
      "providers.microsoft.allowed_tenants": { entries: sent.tenants, error: $("tenants-error") },
    };
    const list = lists[indexed[1]];
    if (!list) return null;
    const entry = list.entries[Number(indexed[2])];
    if (!entry) return { input: null, error: list.error };
    return { input: entry.row.querySelector("input"), error: entry.row.querySelector(".field-error") };
  }
  const tenantInput = $("ms-tenant-mode").value === "specific" ? $("ms-tenant-specific") : $("ms-tenant-mode");
  const targets = {
    error_redirect_url: [$("error-redirect-url"), $("error-redirect-url-error")],
    allowed_redirect_urls: [null, $("patterns-error")],
    "providers.microsoft.client_id": [$("ms-client-id"), $("ms-client-id-error")],
    "providers.microsoft.tenant": [tenantInput, $("ms-tenant-error")],
    "providers.microsoft.allowed_tenants": [null, $("tenants-error")],
    "providers.microsoft.prompt": [$("ms-prompt"), $("ms-prompt-error")],
    "providers.microsoft.cloud_instance": [$("ms-cloud-instance"), $("ms-cloud-instance-error")],
    // Rules about the whole provider (enabled needs a credential, a client ID…) are shown under its switch.
    "providers.microsoft.enabled": [$("ms-enabled"), $("ms-enabled-error")],
    "providers.microsoft.secrets": [null, $("ms-enabled-error")],
    "providers.microsoft.certificates": [null, $("ms-enabled-error")],
    redirect_url: [$("redirect-url"), $("redirect-url-error")],
  };
  const target = targets[field];
  return target ? { input: target[0], error: target[1] } : null;
}

/** Shows 422 errors next to their fields in a form; returns the errors that have no field of their own. */
function showErrors(errors, locate) {
  const unplaced = [];
  let first = null;
  for (const { field, message } of errors) {
    const target = field ? locate(field) : null;
    if (!target) {
      unplaced.push(field ? `${field}: ${message}` : message);
      continue;
    }
    showFieldError(target.input, target.error, message);
    first ??= target.input ?? target.error;
  }
  if (first) {
    first.scrollIntoView?.({ block: "center" });
    if (first.focus && first.tagName !== "P") first.focus({ preventScroll: true });
  }
  return unplaced;
}

function fieldLocator(form) {
  return (field) => {
    const input = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (!input) return null;
    return { input, error: $(`${input.id}-error`) };
  };
}

/** Submits a form with field errors: its old errors and its feedback line are cleared before `handle(form, feedback)`. */
function onFormSubmit(form, feedback, handle) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    setFeedback(feedback, "");
    return handle(form, feedback);
  });
}

onFormSubmit($("settings-form"), $("save-feedback"), async (form, feedback) => {
  const button = $("save-settings");
  const settings = readSettings();
  if ($("ms-tenant-mode").value === "specific" && !settings.tenant) {
    showFieldError($("ms-tenant-specific"), $("ms-tenant-error"), "Enter a tenant ID (GUID) or a verified domain.");
    $("ms-tenant-specific").focus();
    setFeedback(feedback, "Not saved: fix the field marked above.", "error");
    return;
  }
  const sent = { patterns: patterns.entries(), tenants: tenants.entries() };
  // Only what was changed is sent: everything else stays as it is, so values nobody touched here keep
  // following the configuration file.
  const loaded = providers.baseline ? JSON.parse(providers.baseline) : {};
  const changed = (name) => JSON.stringify(settings[name]) !== JSON.stringify(loaded[name]);
  const body = { version: providers.version };
  if (changed("redirect_url")) body.redirect_url = settings.redirect_url;
  if (changed("error_redirect_url")) body.error_redirect_url = settings.error_redirect_url;
  if (changed("allowed_redirect_urls")) body.allowed_redirect_urls = settings.allowed_redirect_urls;
  const microsoft = {};
  for (const name of ["enabled", "tenant", "allowed_tenants", "allow_linking", "prompt", "cloud_instance"]) {
    if (changed(name)) microsoft[name] = settings[name];
  }
  // A client ID cannot be removed, only replaced: an emptied field is sent as "" for the server to refuse.
  if (changed("client_id")) microsoft.client_id = settings.client_id ?? "";
  if (Object.keys(microsoft).length) body.providers = { microsoft };
  if (Object.keys(body).length === 1) {
    setFeedback(feedback, "There are no changes to save.", "info");
    return;
  }
  busy(button, true, "Saving…");
  try {
    const { data } = await api("PUT", "/identity-providers", body);
    renderProviders(data);
    setFeedback(feedback, "Saved. Every Gatehouse instance applies it within a few seconds.", "success");
  } catch (error) {
    if (error.status === 422 && error.errors.length > 0) {
      const unplaced = showErrors(error.errors, (field) => settingsErrorTarget(field, sent));
      const count = error.errors.length;
      const summary = `Not saved: ${count === 1 ? "1 field needs" : `${count} fields need`} attention.`;
      setFeedback(feedback, unplaced.length ? `${summary} ${unplaced.join(" ")}` : summary, "error");
    } else if (error.status === 409) {
      const reload = h("button", { type: "button", class: "secondary small" }, "Reload");
      reload.addEventListener("click", async () => {
        busy(reload, true, "Reloading…");
        try {
          const { data } = await api("GET", "/identity-providers");
          renderProviders(data);
          setFeedback(feedback, "Reloaded the saved settings.", "info");
        } catch (reloadError) {
          busy(reload, false);
          report(reloadError, feedback);
        }
      });
      setFeedback(feedback, "Someone else changed these settings; reload to see them.", "error", reload);
    } else {
      report(error, feedback);
    }
  } finally {
    busy(button, false);
  }
});

$("copy-redirect-url").addEventListener("click", (event) => copyText($("redirect-url").value, $("redirect-url"), event.currentTarget));

// --- client secrets ----------------------------------------------------------------------------------------------

function removeButton(item, what, onRemove) {
  const fromConfig = item.source === "config";
  const tooltip = fromConfig ? `This ${what} comes from the configuration file; remove it there.` : undefined;
  const button = h("button", { type: "button", class: "secondary small", disabled: fromConfig, title: tooltip }, "Remove");
  if (!fromConfig) button.addEventListener("click", () => onRemove(button));
  // Disabled buttons get no pointer events in some browsers: the wrapper carries the tooltip too.
  return fromConfig ? h("span", { class: "tooltip-wrap", title: tooltip }, button) : button;
}

function renderSecrets(secrets) {
  const body = $("secrets-table").tBodies[0];
  body.replaceChildren(...secrets.map((secret) => h("tr", {},
    h("td", {}, h("code", {}, secret.hint ?? "")),
    h("td", {}, sourceLabel(secret.source)),
    h("td", {}, when(secret.created_at)),
    h("td", {}, h("div", { class: "cell-stack" },
      secret.expires_at ? when(secret.expires_at, dateFormat) : h("span", { class: "muted" }, "Never"),
      expiryBadge(secret, "expires_at"))),
    h("td", { class: "actions" }, removeButton(secret, "secret", (button) => removeSecret(secret, button))),
  )));
  $("secrets-table").hidden = secrets.length === 0;
  $("secrets-empty").hidden = secrets.length > 0;
}

async function removeSecret(secret, button) {
  if (!confirm(`Remove the client secret ${secret.hint}? Gatehouse stops using it at once.`)) return;
  const feedback = $("secret-feedback");
  busy(button, true, "Removing…");
  try {
    await api("DELETE", `/identity-providers/microsoft/secrets/${encodeURIComponent(secret.id)}`);
    setFeedback(feedback, `Secret ${secret.hint} removed.`, "success");
    await refreshProviders();
  } catch (error) {
    busy(button, false);
    if (error.status === 409) setFeedback(feedback, error.body?.message || "This secret comes from the configuration file; remove it there.", "error");
    else report(error, feedback);
  }
}

/** A secret or certificate that was not added: 422 errors next to the form's fields, anything else in `feedback`. */
function reportNotAdded(error, form, feedback) {
  if (error.status === 422 && error.errors.length > 0) {
    const unplaced = showErrors(error.errors, fieldLocator(form));
    setFeedback(feedback, unplaced.length ? `Not added: ${unplaced.join(" ")}` : "Not added: see the marked field.", "error");
  } else {
    report(error, feedback);
  }
}

onFormSubmit($("consent-form"), $("consent-feedback"), async (form, feedback) => {
  const button = $("show-consent-url");
  const tenant = $("consent-tenant").value.trim() || $("consent-tenant").placeholder;
  busy(button, true, "Making…");
  try {
    const { data } = await api("GET", `/identity-providers/microsoft/admin-consent?tenant=${encodeURIComponent(tenant)}`);
    $("consent-url").value = data.url;
    $("consent-approver").textContent = `To be opened by ${data.approver}.`;
    $("consent-result").hidden = false;
  } catch (error) {
    $("consent-result").hidden = true;
    if (error.status === 422 && error.errors.length > 0) {
      showErrors(error.errors, fieldLocator(form));
      setFeedback(feedback, "No URL: see the marked field.", "error");
    } else {
      report(error, feedback);
    }
  } finally {
    busy(button, false);
  }
});

$("copy-consent-url").addEventListener("click", (event) => copyText($("consent-url").value, $("consent-url"), event.currentTarget));

onFormSubmit($("secret-form"), $("secret-feedback"), async (form, feedback) => {
  const button = $("add-secret");
  const value = $("secret-value").value;
  if (!value.trim()) {
    showFieldError($("secret-value"), $("secret-value-error"), "Enter the secret's value.");
    $("secret-value").focus();
    return;
  }
  busy(button, true, "Adding…");
  try {
    const { data } = await api("POST", "/identity-providers/microsoft/secrets", {
      value,
      expires_at: $("secret-expires").value || null,
    });
    form.reset();
    setFeedback(feedback, `Secret ${data?.hint ?? ""} added.`.replace("  ", " "), "success");
    await refreshProviders();
  } catch (error) {
    reportNotAdded(error, form, feedback);
  } finally {
    busy(button, false);
  }
});

// --- certificates ------------------------------------------------------------------------------------------------

function shortThumbprint(thumbprint) {
  const text = String(thumbprint ?? "");
  return text.length > 20 ? `${text.slice(0, 8)}…${text.slice(-8)}` : text;
}

function renderCertificates(certificates) {
  const body = $("certs-table").tBodies[0];
  body.replaceChildren(...certificates.map((cert) => {
    const copy = h("button", { type: "button", class: "secondary small" }, "Copy PEM");
    copy.setAttribute("aria-label", `Copy certificate ${shortThumbprint(cert.thumbprint)}`);
    copy.addEventListener("click", () => copyText(cert.certificate ?? "", scratchArea(cert.certificate ?? ""), copy));
    return h("tr", {},
      h("td", {}, h("code", { title: cert.thumbprint }, shortThumbprint(cert.thumbprint))),
      h("td", {}, cert.algorithm ?? ""),
      h("td", {}, sourceLabel(cert.source)),
      h("td", {}, when(cert.created_at)),
      h("td", {}, h("div", { class: "cell-stack" }, when(cert.not_after, dateFormat), expiryBadge(cert, "not_after"))),
      h("td", { class: "actions" }, cert.certificate ? copy : null,
        removeButton(cert, "certificate", (button) => removeCertificate(cert, button))),
    );
  }));
  $("certs-table").hidden = certificates.length === 0;
  $("certs-empty").hidden = certificates.length > 0;
}

async function removeCertificate(cert, button) {
  if (!confirm(`Remove the certificate ${shortThumbprint(cert.thumbprint)}? Gatehouse stops using it at once.`)) return;
  const feedback = $("cert-feedback");
  busy(button, true, "Removing…");
  try {
    await api("DELETE", `/identity-providers/microsoft/certificates/${encodeURIComponent(cert.id)}`);
    setFeedback(feedback, `Certificate ${shortThumbprint(cert.thumbprint)} removed.`, "success");
    await refreshProviders();
  } catch (error) {
    busy(button, false);
    report(error, feedback);
  }
}

function certMode() {
  return document.querySelector('input[name="cert-mode"]:checked').value;
}

for (const radio of document.querySelectorAll('input[name="cert-mode"]')) {
  radio.addEventListener("change", () => {
    $("cert-generate").hidden = certMode() !== "generate";
    $("cert-upload").hidden = certMode() !== "upload";
    clearErrors($("cert-form"));
    setFeedback($("cert-feedback"), "");
  });
}

onFormSubmit($("cert-form"), $("cert-feedback"), async (form, feedback) => {
  const generate = certMode() === "generate";
  const button = generate ? $("generate-cert") : $("upload-cert");
  let body;
  if (generate) {
    const days = Number($("cert-days").value);
    if (!Number.isInteger(days) || days < 1) {
      showFieldError($("cert-days"), $("cert-days-error"), "Enter a whole number of days, at least 1.");
      $("cert-days").focus();
      return;
    }
    body = { generate: { days } };
  } else {
    const privateKey = $("cert-private-key").value.trim();
    const certificate = $("cert-certificate").value.trim();
    let missing = false;
    if (!privateKey) {
      showFieldError($("cert-private-key"), $("cert-private-key-error"), "Paste the private key (PEM).");
      missing = true;
    }
    if (!certificate) {
      showFieldError($("cert-certificate"), $("cert-certificate-error"), "Paste the certificate (PEM).");
      missing = true;
    }
    if (missing) return;
    body = { private_key: privateKey, certificate, algorithm: $("cert-algorithm").value };
  }
  busy(button, true, generate ? "Generating…" : "Adding…");
  try {
    const { data } = await api("POST", "/identity-providers/microsoft/certificates", body);
    if (generate) {
      $("cert-generated-pem").value = data?.certificate ?? "";
      $("cert-generated").hidden = false;
      setFeedback(feedback, "Certificate generated. Upload it in Azure (below) before Gatehouse can use it.", "success");
      const pem = $("cert-generated-pem");
      pem.focus();
      pem.setSelectionRange(0, 0);
      pem.scrollTop = 0;
    } else {
      $("cert-private-key").value = "";
      $("cert-certificate").value = "";
      setFeedback(feedback, "Certificate added.", "success");
    }
    await refreshProviders();
  } catch (error) {
    reportNotAdded(error, form, feedback);
  } finally {
    busy(button, false);
  }
});

$("copy-generated-cert").addEventListener("click", (event) => copyText($("cert-generated-pem").value, $("cert-generated-pem"), event.currentTarget));
$("dismiss-generated-cert").addEventListener("click", () => {
  $("cert-generated").hidden = true;
  $("cert-generated-pem").value = "";
  $("generate-cert").focus();
});

// --- paging ------------------------------------------------------------------------------------------------------

/** "21–40 of 45" with Previous and Next; without a total, Next is offered while pages are full. */
function renderPager(nav, { page, perPage, total, count }, go) {
  const first = count === 0 ? 0 : (page - 1) * perPage + 1;
  const last = (page - 1) * perPage + count;
  const pages = total === null ? null : Math.max(1, Math.ceil(total / perPage));
  const hasNext = pages === null ? count === perPage : page < pages;
  const summary = total === null
    ? `${numberFormat.format(first)}–${numberFormat.format(last)}`
    : `${numberFormat.format(first)}–${numberFormat.format(last)} of ${numberFormat.format(total)}`;
  const previous = h("button", { type: "button", class: "secondary small", disabled: page <= 1 }, "Previous");
  const next = h("button", { type: "button", class: "secondary small", disabled: !hasNext }, "Next");
  previous.addEventListener("click", () => go(page - 1));
  next.addEventListener("click", () => go(page + 1));
  nav.replaceChildren(
    h("span", { class: "muted" }, count === 0 ? "" : summary),
    h("span", { class: "pager-buttons" }, previous, pages ? h("span", { class: "muted" }, `Page ${page} of ${pages}`) : null, next),
  );
  nav.hidden = count === 0 && page === 1;
}

// --- users -------------------------------------------------------------------------------------------------------

const users = { loaded: false, email: "", page: 1, perPage: 20, current: null };

async function searchUsers(page) {
  users.loaded = true;
  users.page = page;
  const params = new URLSearchParams({ page: String(page), per_page: String(users.perPage) });
  if (users.email) params.set("email", users.email);
  const table = $("users-table");
  table.setAttribute("aria-busy", "true");
  try {
    const { data, total } = await api("GET", `/users?${params}`);
    const list = Array.isArray(data) ? data : [];
    showBanner($("users-error"), "");
    table.tBodies[0].replaceChildren(...list.map((user) => {
      const open = h("button", { type: "button", class: "link" }, user.email ?? "(no email)");
      open.addEventListener("click", () => openUser(user.id));
      return h("tr", {},
        h("td", {}, open),
        h("td", {}, h("code", { class: "id" }, user.id)),
        h("td", {}, when(user.created_at)),
      );
    }));
    table.hidden = list.length === 0;
    $("users-empty").hidden = list.length > 0;
    $("users-empty").textContent = users.email ? `No user's email contains "${users.email}".` : "No users yet.";
    renderPager($("users-pager"), { page, perPage: users.perPage, total, count: list.length }, searchUsers);
  } catch (error) {
    report(error, $("users-error"));
  } finally {
    table.removeAttribute("aria-busy");
  }
}

$("users-search").addEventListener("submit", (event) => {
  event.preventDefault();
  users.email = $("users-email").value.trim();
  searchUsers(1);
});

function showUserList() {
  $("user-detail-view").hidden = true;
  $("users-list-view").hidden = false;
  users.current = null;
}

$("user-back").addEventListener("click", () => {
  showUserList();
  searchUsers(users.page);
  $("users-email").focus();
});

async function openUser(id) {
  try {
    const { data } = await api("GET", `/users/${encodeURIComponent(id)}`);
    users.current = data;
    renderUser(data);
    $("users-list-view").hidden = true;
    $("user-detail-view").hidden = false;
    showBanner($("user-error"), "");
    $("user-title").tabIndex = -1;
    $("user-title").focus();
  } catch (error) {
    if (error.status === 404) report(new ApiError(404, { message: "This user no longer exists." }), $("users-error"));
    else report(error, $("users-error"));
  }
}

async function reloadUser() {
  if (!users.current) return;
  const { data } = await api("GET", `/users/${encodeURIComponent(users.current.id)}`);
  users.current = data;
  renderUser(data);
}

function fillTable(table, emptyNote, rows) {
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  emptyNote.hidden = rows.length > 0;
}

function renderUser(user) {
  const primary = user.emails?.find((email) => email.is_primary) ?? user.emails?.[0];
  $("user-title").textContent = primary?.address ?? "User without email";
  $("user-id-line").replaceChildren("ID ", h("code", {}, user.id), " · created ", when(user.created_at));

  fillTable($("user-emails"), $("user-emails-empty"), (user.emails ?? []).map((email) => h("tr", {},
    h("td", {}, email.address),
    h("td", {}, h("span", { class: "badge-row" },
      email.is_primary ? badge("Primary", "blue") : null,
      email.is_verified ? badge("Verified", "green") : badge("Unverified", "grey"))),
    h("td", {}, when(email.created_at)),
  )));

  fillTable($("user-identities"), $("user-identities-empty"), (user.identities ?? []).map((identity) => {
    const unlink = h("button", { type: "button", class: "secondary small" }, "Unlink");
    unlink.setAttribute("aria-label", `Unlink ${providerName(identity.provider)} identity ${identity.email ?? identity.provider_user_id ?? ""}`.trim());
    unlink.addEventListener("click", () => unlinkIdentity(identity, unlink));
    return h("tr", {},
      h("td", {}, h("span", { class: "provider" }, identity.provider === "microsoft" ? msLogo() : null, providerName(identity.provider))),
      h("td", {}, identity.tenant_id
        ? h("span", {}, identity.tenant_name ? [identity.tenant_name, " "] : null, h("code", { class: "id" }, identity.tenant_id))
        : dash()),
      h("td", {}, identity.email ?? dash()),
      h("td", { class: "directory" }, directoryFacts(identity)),
      h("td", {}, when(identity.linked_at)),
      h("td", { class: "actions" }, unlink),
    );
  }));

  const sessions = user.sessions ?? [];
  fillTable($("user-sessions"), $("user-sessions-empty"), sessions.map((session) => {
    const revoke = h("button", { type: "button", class: "secondary small" }, "Revoke");
    revoke.setAttribute("aria-label", `Revoke session from ${session.ip_address ?? "unknown address"} created ${session.created_at ?? ""}`);
    revoke.addEventListener("click", () => revokeSession(session, revoke));
    return h("tr", {},
      h("td", {}, h("span", { class: "truncate", title: session.user_agent ?? "" }, session.user_agent ? describeAgent(session.user_agent) : "Unknown")),
      h("td", {}, session.ip_address ? h("code", {}, session.ip_address) : dash()),
      h("td", {}, when(session.created_at)),
      h("td", {}, when(session.expires_at)),
      h("td", {}, when(session.last_used)),
      h("td", { class: "actions" }, revoke),
    );
  }));
  $("revoke-all").disabled = sessions.length === 0;
}

function msLogo() {
  return h("span", { class: "logo", "aria-hidden": "true" }, h("span"), h("span"), h("span"), h("span"));
}

/** An identity's app roles and groups as Microsoft last told them, with when. */
function directoryFacts(identity) {
  const roles = identity.roles ?? [];
  const groups = identity.groups ?? [];
  if (!identity.directory_read_at) return dash();
  return h("span", { class: "badge-row" },
    ...roles.map((role) => badge(role, "blue")),
    groups.length ? h("span", { title: groups.join("\n") }, `${groups.length} group${groups.length === 1 ? "" : "s"}`) : null,
    !roles.length && !groups.length ? h("span", {}, "none") : null,
    h("span", { class: "muted" }, "read ", when(identity.directory_read_at)));
}

function providerName(provider) {
  if (provider === "microsoft") return "Microsoft";
  return String(provider ?? "");
}

/** "Chrome on Linux" from a user agent; the full string stays in the tooltip. */
function describeAgent(agent) {
  const browsers = [["Edg/", "Edge"], ["OPR/", "Opera"], ["Firefox/", "Firefox"], ["Chrome/", "Chrome"], ["Safari/", "Safari"], ["curl/", "curl"]];
  const systems = [["Windows", "Windows"], ["iPhone", "iOS"], ["iPad", "iPadOS"], ["Android", "Android"], ["Mac OS X", "macOS"], ["CrOS", "ChromeOS"], ["Linux", "Linux"]];
  const browser = browsers.find(([token]) => agent.includes(token))?.[1];
  const system = systems.find(([token]) => agent.includes(token))?.[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? (agent.length > 60 ? `${agent.slice(0, 60)}…` : agent);
}

async function revokeSession(session, button) {
  busy(button, true, "Revoking…");
  try {
    await api("DELETE", `/users/${encodeURIComponent(users.current.id)}/sessions/${encodeURIComponent(session.id)}`);
    announce("Session revoked.", "success");
    await reloadUser();
  } catch (error) {
    busy(button, false);
    report(error, $("user-error"));
  }
}

$("revoke-all").addEventListener("click", async () => {
  const button = $("revoke-all");
  busy(button, true, "Revoking…");
  try {
    await api("DELETE", `/users/${encodeURIComponent(users.current.id)}/sessions`);
    announce("All sessions revoked.", "success");
    await reloadUser();
  } catch (error) {
    report(error, $("user-error"));
  } finally {
    busy(button, false);
    $("revoke-all").disabled = (users.current?.sessions ?? []).length === 0;
  }
});

async function unlinkIdentity(identity, button) {
  const name = providerName(identity.provider);
  if (!confirm(`Unlink this ${name} identity? The person can no longer sign in with it to this account.`)) return;
  busy(button, true, "Unlinking…");
  try {
    await api("DELETE", `/users/${encodeURIComponent(users.current.id)}/identities/${encodeURIComponent(identity.id)}`);
    announce(`${name} identity unlinked.`, "success");
    await reloadUser();
  } catch (error) {
    busy(button, false);
    report(error, $("user-error"));
  }
}

$("delete-user").addEventListener("click", async () => {
  const user = users.current;
  if (!user) return;
  const label = $("user-title").textContent;
  if (!confirm(`Delete ${label}? Their email addresses, identities and sessions are deleted too. This cannot be undone.`)) return;
  const button = $("delete-user");
  busy(button, true, "Deleting…");
  try {
    await api("DELETE", `/users/${encodeURIComponent(user.id)}`);
    showUserList();
    announce(`${label} was deleted.`, "success");
    await searchUsers(users.page);
  } catch (error) {
    report(error, $("user-error"));
  } finally {
    busy(button, false);
  }
});

// --- audit log ---------------------------------------------------------------------------------------------------

const audit = { loaded: false, page: 1, perPage: 20, filters: {}, types: new Set(KNOWN_AUDIT_TYPES) };

function renderAuditTypes() {
  $("audit-types").replaceChildren(...[...audit.types].sort().map((type) => h("option", { value: type })));
}

/** A date input's day as an RFC 3339 instant at local midnight (the start of `to`'s next day for an end). */
function dayStart(value, plusDays = 0) {
  const [year, month, day] = value.split("-").map(Number);
  return new Date(year, month - 1, day + plusDays).toISOString();
}

async function loadAudit(page) {
  audit.loaded = true;
  audit.page = page;
  const params = new URLSearchParams({ page: String(page), per_page: String(audit.perPage) });
  for (const [name, value] of Object.entries(audit.filters)) if (value) params.set(name, value);
  const table = $("audit-table");
  table.setAttribute("aria-busy", "true");
  try {
    const { data, total } = await api("GET", `/audit-logs?${params}`);
    const list = Array.isArray(data) ? data : [];
    showBanner($("audit-error"), "");
    table.tBodies[0].replaceChildren(...list.map(auditRow));
    for (const entry of list) if (entry.type) audit.types.add(entry.type);
    renderAuditTypes();
    table.hidden = list.length === 0;
    $("audit-empty").hidden = list.length > 0;
    renderPager($("audit-pager"), { page, perPage: audit.perPage, total, count: list.length }, loadAudit);
  } catch (error) {
    report(error, $("audit-error"));
  } finally {
    table.removeAttribute("aria-busy");
  }
}

/** One detail value for people: dates as dates, an admin key by its name, lists and objects flattened. */
function detailValue(name, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && value > 1e9 && (name.endsWith("_at") || name === "not_after")) {
    return dateTimeFormat.format(new Date(value * 1000));
  }
  if (Array.isArray(value)) return value.length ? value.map((item) => detailValue("", item)).join(", ") : "none";
  if (typeof value === "object") {
    if (value.name && value.id) return `${value.name} (${value.id})`;
    return Object.entries(value).map(([key, item]) => `${key}: ${detailValue(key, item)}`).join("; ");
  }
  return String(value);
}

function auditRow(entry) {
  let actor = dash();
  const keyIsActor = !entry.actor_user_id && !entry.actor_email && Boolean(entry.details?.admin_key);
  if (entry.actor_user_id) {
    actor = h("button", { type: "button", class: "link", title: `Open user ${entry.actor_user_id}` }, entry.actor_email ?? entry.actor_user_id);
    actor.addEventListener("click", () => {
      selectView("users");
      openUser(entry.actor_user_id);
    });
  } else if (entry.actor_email) {
    actor = document.createTextNode(entry.actor_email);
  } else if (keyIsActor) {
    // Changes made through the admin API: the key that made them.
    const key = entry.details.admin_key;
    actor = h("span", { title: key.id ?? "" }, `Admin key: ${key.name ?? key.id ?? "unknown"}`);
  }
  const details = Object.entries(entry.details ?? {})
    .filter(([name]) => !(keyIsActor && name === "admin_key"))
    .map(([name, value]) =>
      h("div", { class: "kv" }, h("span", { class: "k" }, name), h("span", { class: "v" }, detailValue(name, value))));
  const meta = entry.meta ?? {};
  const request = [["IP address", meta.source_ip], ["User agent", meta.user_agent], ["Request ID", meta.http_request_id]]
    .filter(([, value]) => value)
    .map(([name, value]) => h("div", { class: "kv" }, h("span", { class: "k" }, name), h("span", { class: "v" }, value)));
  return h("tr", {},
    h("td", { class: "nowrap" }, when(entry.created_at, preciseFormat)),
    h("td", {}, h("code", { class: "type" }, entry.type ?? "")),
    h("td", {}, actor),
    h("td", {}, entry.error ? h("span", { class: "error-text" }, entry.error) : dash()),
    h("td", { class: "details" },
      details.length ? details : null,
      request.length ? h("details", {}, h("summary", {}, "Request"), request) : null,
      !details.length && !request.length ? dash() : null),
  );
}

$("audit-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const from = $("audit-from").value;
  const to = $("audit-to").value;
  if (from && to && from > to) {
    showBanner($("audit-error"), "The From date is after the To date.");
    return;
  }
  const userId = $("audit-user").value.trim();
  if (userId && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(userId)) {
    showBanner($("audit-error"), "User ID must be a user's ID (a UUID such as 0190f6c2-1e4b-7a3d-9c2e-5b8f0a1d2e3f).");
    $("audit-user").setAttribute("aria-invalid", "true");
    $("audit-user").focus();
    return;
  }
  $("audit-user").removeAttribute("aria-invalid");
  audit.filters = {
    type: $("audit-type").value.trim(),
    user_id: userId,
    from: from ? dayStart(from) : "",
    to: to ? dayStart(to, 1) : "",
  };
  loadAudit(1);
});

$("audit-clear").addEventListener("click", () => {
  $("audit-filters").reset();
  audit.filters = {};
  loadAudit(1);
});

// --- start -------------------------------------------------------------------------------------------------------

async function main() {
  renderAuditTypes();
  patterns.set([]);
  tenants.set([]);
  if (!sessionStorage.getItem(KEY)) {
    showKeyView();
    return;
  }
  try {
    const { data } = await api("GET", "/identity-providers");
    enterApp(data);
  } catch (error) {
    if (error.status === 401) return;
    enterApp(null);
    report(error, $("providers-error"));
  }
}

main();
