// Gatehouse's own login page, driven by the flow API on this origin (the same calls Hanko's elements make).
const $ = (id) => document.getElementById(id);
const SAVED = "gatehouse_login_flow";
// In header mode (session.enable_auth_token_header) the session comes as X-Auth-Token instead of a cookie.
const TOKEN = "gatehouse_session_token";

// Fixed text per error code (ThirdPartyErrorCode in gatehouse-core, and the provider's access_denied). The URL's
// error_description is never shown: anyone can craft a link to this page that puts their own words there.
const ERRORS = {
  access_denied: "Sign-in was cancelled, or Microsoft denied access.",
  unverified_email:
    "Microsoft did not confirm that this email address belongs to you, so it cannot be used to sign in. " +
    "(For the app's administrators: the Entra ID app registration must send the optional ID-token claims " +
    "upn, email and xms_edov.)",
  user_conflict: "An account with this email address already exists and cannot be joined to this Microsoft account.",
  multiple_accounts: "This email address belongs to another account.",
  email_maxnum: "This account has reached its limit of email addresses.",
  signup_disabled: "New accounts cannot be created here.",
  invalid_request: "The sign-in could not be completed. Please try again.",
  server_error: "Something went wrong on our side. Please try again later.",
  rate_limit_exceeded: "Too many sign-ins from your network. Please wait a minute and try again.",
};
const UNKNOWN_ERROR = "The sign-in failed. Please try again.";

function errorText(code) {
  return Object.hasOwn(ERRORS, code) ? ERRORS[code] : UNKNOWN_ERROR;
}

function show(section) {
  for (const id of ["loading", "signed-out", "no-provider", "signed-in"]) $(id).hidden = id !== section;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN);
  return { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: headers({ "content-type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const token = response.headers.get("x-auth-token");
  if (token) sessionStorage.setItem(TOKEN, token);
  return response.json();
}

function run(state, action, inputs) {
  return post(state.actions[action].href, { input_data: inputs, csrf_token: state.csrf_token });
}

function verifier() {
  const bytes = crypto.getRandomValues(new Uint8Array(48));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function cleanUrl() {
  history.replaceState(null, "", location.pathname);
}

async function showUser() {
  const response = await fetch("/me", { credentials: "same-origin", headers: headers() });
  if (!response.ok) return false;
  const user = await response.json();
  const primary = user.emails.find((email) => email.is_primary) ?? user.emails[0];
  $("email").textContent = primary ? primary.address : user.id;
  show("signed-in");
  return true;
}

async function signIn(provider, state) {
  const code_verifier = verifier();
  const next = await run(state, "thirdparty_oauth", { provider, redirect_to: location.origin + location.pathname, code_verifier });
  if (next.name !== "thirdparty") {
    showError(next.error?.code === "form_data_invalid_error"
      ? "This page's address is not in third_party.allowed_redirect_urls."
      : "The sign-in could not be started.");
    return;
  }
  sessionStorage.setItem(SAVED, JSON.stringify({ href: next.actions.exchange_token.href, csrf: next.csrf_token, code_verifier }));
  location.assign(next.payload.redirect_url);
}

async function showProviders() {
  let state = await post("/login");
  if (state.name === "preflight") {
    state = await run(state, "register_client_capabilities", {
      webauthn_available: false, webauthn_conditional_mediation_available: false, webauthn_platform_authenticator_available: false,
    });
  }
  const providers = state.actions?.thirdparty_oauth?.inputs?.provider?.allowed_values ?? [];
  if (providers.length === 0) {
    show("no-provider");
    return;
  }
  $("providers").replaceChildren(...providers.map(({ value, name }) => {
    const button = document.createElement("button");
    button.type = "button";
    if (value === "microsoft") {
      const logo = document.createElement("span");
      logo.className = "logo";
      logo.append(...Array.from({ length: 4 }, () => document.createElement("span")));
      button.append(logo);
    }
    button.append(`Sign in with ${name}`);
    button.addEventListener("click", () => signIn(value, state));
    return button;
  }));
  show("signed-out");
}

async function main() {
  const params = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem(SAVED) ?? "null");
  if (params.has("error")) {
    showError(errorText(params.get("error")));
    sessionStorage.removeItem(SAVED);
    cleanUrl();
  } else if (params.has("hanko_token") && saved) {
    const token = params.get("hanko_token");
    cleanUrl();
    sessionStorage.removeItem(SAVED);
    const result = await post(saved.href, { input_data: { token, code_verifier: saved.code_verifier }, csrf_token: saved.csrf });
    if (result.name !== "success") showError("The sign-in could not be completed. Please try again.");
  }
  if (!(await showUser())) await showProviders();
}

$("sign-out").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", credentials: "same-origin", headers: headers() });
  sessionStorage.removeItem(TOKEN);
  showError("");
  await showProviders();
});

main().catch(() => showError("Gatehouse could not be reached."));
