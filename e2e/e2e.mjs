// The browser suite: the real @teamhanko packages in Debian's headless Chromium against the Gatehouse binary and
// the fake Entra ID, all on loopback; the test page is served from another port, so CORS is exercised.
// Usage: node e2e.mjs   (expects target/debug/gatehouse and target/debug/fake-entra; scripts/test builds them)
// Prints one line per scenario and "N passed, N failed"; screenshots of each step go to e2e/artifacts/.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
const GATEHOUSE = path.join(TARGET, "debug", "gatehouse");
const FAKE_ENTRA = path.join(TARGET, "debug", "fake-entra");
const ARTIFACTS = path.join(HERE, "artifacts");
const TIMEOUT = 20_000;
mkdirSync(ARTIFACTS, { recursive: true });

const children = [];
function cleanup() {
  for (const child of children) child.kill("SIGTERM");
}
process.on("exit", cleanup);

async function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function start(command, args, readyLine, options = {}) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, RUST_LOG: "info", ...options.env };
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd, env });
    children.push(child);
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), TIMEOUT);
    const onData = (data) => {
      output += data;
      if (output.includes(readyLine)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${command} exited with ${code}:\n${output}`)));
  });
}

async function waitFor(url) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered`);
}

function servePages(port) {
  const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, "http://localhost");
    const file = url.pathname.startsWith("/node_modules/")
      ? path.join(HERE, url.pathname)
      : path.join(HERE, "public", url.pathname === "/" ? "index.html" : url.pathname);
    if (!file.startsWith(HERE) || !existsSync(file)) {
      response.writeHead(404).end("not found");
      return;
    }
    response.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

// --- the stack -------------------------------------------------------------------------------------------------
const [apiPort, pagePort, entraPort, controlPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
const API = `http://127.0.0.1:${apiPort}`;
const PAGE = `http://127.0.0.1:${pagePort}`;
// The same page under another host name: CORS lets it in, `allowed_redirect_urls` does not (scenario 3d).
const PAGE_NOT_REDIRECTABLE = `http://localhost:${pagePort}`;
const CONTROL = `http://127.0.0.1:${controlPort}`;

/**
 * Writes `dir`/gatehouse.yaml and returns its path: a Gatehouse on loopback at `publicPort` with its SQLite database
 * in `dir`, CORS and redirects open to the test page, and Microsoft against the fake Entra ID, on or off.
 * `admin` ({ port, key }) turns on the admin listener with that key; without it the admin listener is off.
 * `cookieSessions` delivers sessions as a `Set-Cookie` instead of the `X-Auth-Token` header.
 */
function writeGatehouseConfig(dir, { publicPort, secretKey, microsoftEnabled, admin, cookieSessions = false }) {
  const api = `http://127.0.0.1:${publicPort}`;
  const adminSection = admin
    ? `    address: "127.0.0.1:${admin.port}"
    api_keys: ["${admin.key}"]`
    : "    enabled: false";
  const file = path.join(dir, "gatehouse.yaml");
  writeFileSync(
    file,
    `server:
  public:
    address: "127.0.0.1:${publicPort}"
    cors:
      allow_origins: ["${PAGE}", "${PAGE_NOT_REDIRECTABLE}"]
  admin:
${adminSection}
database:
  url: "sqlite://${path.join(dir, "gatehouse.db")}"
secret_keys: ["${secretKey}"]
session:
  enable_auth_token_header: ${!cookieSessions}
  cookie:
    secure: false
rate_limiter:
  enabled: false
third_party:
  redirect_url: "${api}/thirdparty/callback"
  error_redirect_url: "${PAGE}/legacy.html"
  allowed_redirect_urls: ["${PAGE}**", "${api}**"]
  providers:
    microsoft:
      enabled: ${microsoftEnabled}
      client_id: gatehouse-dev-client
      secret: gatehouse-dev-secret
      cloud_instance: "http://127.0.0.1:${entraPort}"
`,
  );
  return file;
}

const work = mkdtempSync(path.join(os.tmpdir(), "gatehouse-e2e-"));
const config = writeGatehouseConfig(work, { publicPort: apiPort, secretKey: "e2e-secret-key-0123456789abcdef", microsoftEnabled: true });
await start(FAKE_ENTRA, ["--port", String(entraPort), "--control-port", String(controlPort)], "Control endpoint");
await start(GATEHOUSE, ["serve", "--config", config], "listening on");
await waitFor(`${API}/health/ready`);
const pages = await servePages(pagePort);

const control = (route, body) =>
  fetch(`${CONTROL}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});

// --- helpers ---------------------------------------------------------------------------------------------------
function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const openPages = [];
async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  openPages.push(page);
  page.__log = [];
  page.__problems = [];
  // The console asks confirm() before destructive actions, and warns before leaving unsaved edits: say yes.
  page.on("dialog", (dialog) => dialog.accept().catch(() => {}));
  page.on("pageerror", (error) => page.__problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) page.__problems.push(message.text());
  });
  page.on("requestfinished", async (request) => {
    const response = await request.response();
    page.__log.push(`${request.method()} ${request.url().replace(API, "")} ${response?.status()} ${request.postData() ?? ""}`.slice(0, 300));
  });
  page.setDefaultTimeout(TIMEOUT);
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function openAuth(page) {
  await page.goto(`${PAGE}/#api=${encodeURIComponent(API)}`);
  await page.waitForFunction(() => window.__ready === true);
}

/// Clicks "Continue with Microsoft" and waits until the browser is back on the page with a session.
async function signInWithMicrosoft(page, name) {
  const button = page.getByRole("button", { name: "Continue with Microsoft" });
  await button.waitFor();
  // Let the element finish its flow set-up (it settles state 500 ms after start) before acting, as a person would.
  await page.waitForLoadState("networkidle");
  await shot(page, `${name}-1-login`);
  await button.click();
  await page.waitForFunction(() => window.__events?.some((e) => e.type === "sdk:sessionCreated"), null, { timeout: TIMEOUT });
  await shot(page, `${name}-2-signed-in`);
}

async function sessionCookie(context) {
  return (await context.cookies()).find((cookie) => cookie.name === "hanko")?.value;
}

const results = [];
async function scenario(name, body) {
  const started = Date.now();
  openPages.length = 0;
  try {
    await body();
    results.push(true);
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    const slug = name.split(".")[0];
    for (const [i, page] of openPages.entries()) {
      await page.screenshot({ path: path.join(ARTIFACTS, `failure-${slug}-${i}.png`), fullPage: true }).catch(() => {});
      console.log(`  requests of page ${i}:\n    ${page.__log.join("\n    ")}`);
    }
    results.push(false);
    console.log(`FAIL ${name}: ${error.stack ?? error}`);
  }
}

// --- scenarios ---------------------------------------------------------------------------------------------------
let firstUserId;

await scenario("1. hanko-auth signs in with Microsoft", async () => {
  const { context, page } = await newPage();
  await openAuth(page);
  await signInWithMicrosoft(page, "s1");
  const events = await page.evaluate(() => window.__events.map((e) => e.type));
  expect(events.includes("element:sessionCreated"), `the element fired onSessionCreated: ${events}`);
  expect(!page.url().includes("hanko_token"), `hanko_token is gone from the URL: ${page.url()}`);
  const jwt = await sessionCookie(context);
  expect(jwt, "the hanko cookie holds the session");
  const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${API}/.well-known/jwks.json`)), { audience: "localhost" });
  const validation = await page.evaluate(() => window.hanko.validateSession());
  expect(validation.is_valid === true, `validateSession: ${JSON.stringify(validation)}`);
  const user = await page.evaluate(() => window.hanko.getCurrentUser());
  expect(user.emails?.[0]?.address === "megan@contoso.com", `getCurrentUser: ${JSON.stringify(user)}`);
  expect(payload.sub === user.id, "the JWT names the user");
  const standalone = await page.evaluate(async () => ({
    session: await window.sdk.validateSession(),
    user: await window.sdk.getCurrentUser(),
  }));
  expect(standalone.session.is_valid && standalone.user.id === user.id, `SDK 3.0.0 on its own: ${JSON.stringify(standalone)}`);
  // The deprecated `user.getCurrent()` (`hanko.getUser()`): GET /me, then GET /users/{id}.
  const current = await page.evaluate(async () => ({
    elements: await window.hanko.user.getCurrent(),
    sdk: await window.sdk.getUser(),
  }));
  for (const [which, got] of Object.entries(current)) {
    expect(got.id === user.id && got.email === "megan@contoso.com" && got.emails?.[0]?.is_primary === true,
      `user.getCurrent() in the ${which} SDK: ${JSON.stringify(got)}`);
  }
  firstUserId = user.id;
  await context.close();
});

await scenario("2. hanko-profile lists, revokes a session, logs out", async () => {
  const other = await newPage();
  await openAuth(other.page);
  await signInWithMicrosoft(other.page, "s2-other");
  const otherJwt = await sessionCookie(other.context);

  const { context, page } = await newPage();
  await openAuth(page);
  await signInWithMicrosoft(page, "s2");
  await page.goto(`${PAGE}/profile.html`);
  await page.waitForFunction(() => window.__ready === true);
  await page.getByText("megan@contoso.com").first().waitFor();
  const sessions = page.locator('label[for^="session-edit-dropdown-"]');
  await sessions.first().waitFor();
  const listed = await sessions.count();
  expect(listed >= 2, `the profile lists this session and the other one (${listed})`);
  await shot(page, "s2-1-profile");
  const validate = async (jwt) =>
    (await (await fetch(`${API}/sessions/validate`, { headers: { authorization: `Bearer ${jwt}` } })).json()).is_valid;
  // Expand each session until one offers "Revoke" (the current one does not), revoke it, until the other is gone.
  const deadline = Date.now() + TIMEOUT;
  let otherValid = true;
  while (otherValid && Date.now() < deadline) {
    const count = await sessions.count();
    for (let i = 0; i < count && otherValid; i++) {
      await sessions.nth(i).click();
      const revoke = page.getByRole("button", { name: "Revoke" }).filter({ visible: true }).first();
      await revoke.waitFor({ timeout: 1500 }).catch(() => {});
      if ((await revoke.count()) > 0) {
        // The accordion animates open; a real click lands once it settles, so dispatch the click itself.
        await revoke.dispatchEvent("click");
        // Dangerous actions ask "yes / no" first.
        const yes = page.getByText("yes", { exact: true }).filter({ visible: true }).first();
        await yes.waitFor({ timeout: 1500 });
        await yes.dispatchEvent("click");
        await page.waitForTimeout(300);
        otherValid = await validate(otherJwt);
        break;
      }
    }
  }
  expect(await validate(await sessionCookie(context)), "the current session is still valid");
  expect(!otherValid, "the other session was revoked from the profile");
  await shot(page, "s2-2-revoked");
  await page.evaluate(() => window.hanko.logout());
  const events = await page.evaluate(() => window.__events.map((e) => e.type));
  expect(events.includes("sdk:userLoggedOut"), `onUserLoggedOut fired: ${events}`);
  await openAuth(page);
  await page.getByRole("button", { name: "Continue with Microsoft" }).waitFor();
  await shot(page, "s2-3-logged-out");
  await context.close();
  await other.context.close();
});

async function expectErrorShown(name, arrange, text) {
  const { context, page } = await newPage();
  await openAuth(page);
  await arrange();
  const button = page.getByRole("button", { name: "Continue with Microsoft" });
  await button.click();
  await page.getByText(text).first().waitFor();
  await shot(page, name);
  const events = await page.evaluate(() => window.__events.map((e) => e.type));
  expect(!events.includes("sdk:sessionCreated"), "no session was created");
  await context.close();
}

await scenario("3a. provider access_denied is shown in the component", () =>
  expectErrorShown("s3a-access-denied", () => control("/fail-next-authorize", { error: "access_denied", error_description: "declined" }), "Access denied"));

await scenario("3b. an unverified email (xms_edov false) is refused", () =>
  expectErrorShown("s3b-unverified", () => control("/next-user", { email: "eve@fabrikam.com", xms_edov: false }), "A technical error has occurred"));

await scenario("3c. an existing user's email with linking off is a conflict", async () => {
  await expectErrorShown(
    "s3c-user-conflict",
    () => control("/next-user", { email: "megan@contoso.com", upn: "megan@contoso.com", xms_edov: true }),
    "A technical error has occurred",
  );
});

await scenario("3d. a page outside allowed_redirect_urls shows the error of its redirect_to input", async () => {
  const { context, page } = await newPage();
  await page.goto(`${PAGE_NOT_REDIRECTABLE}/#api=${encodeURIComponent(API)}`);
  await page.waitForFunction(() => window.__ready === true);
  const button = page.getByRole("button", { name: "Continue with Microsoft" });
  await button.waitFor();
  await page.waitForLoadState("networkidle");
  await button.click();
  await page.getByText("The entered value is invalid.").first().waitFor();
  await shot(page, "s3d-redirect-not-allowed");
  expect(new URL(page.url()).host === new URL(PAGE_NOT_REDIRECTABLE).host, `the browser stayed on the page: ${page.url()}`);
  await context.close();
});

await scenario("4. legacy SDK 1.5.2: thirdParty.auth, token.validate, user.getCurrent, email.list", async () => {
  const { context, page } = await newPage();
  await openAuth(page);
  await page.goto(`${PAGE}/legacy.html`);
  await page.locator("#status", { hasText: "ready" }).waitFor();
  await page.click("#microsoft");
  await page.locator("#status", { hasText: "signed in" }).waitFor();
  await shot(page, "s4-1-legacy-signed-in");
  const jwt = await sessionCookie(context);
  expect(jwt, "token.validate() set the hanko cookie");
  const answer = await (await fetch(`${API}/sessions/validate`, { headers: { authorization: `Bearer ${jwt}` } })).json();
  expect(answer.is_valid && answer.user_id === firstUserId, `the legacy session is the same user: ${JSON.stringify(answer)}`);
  const legacy = await page.evaluate(async () => {
    const code = (promise) => promise.then(() => "resolved", (error) => error.code);
    return {
      user: await window.hanko.user.getCurrent(),
      emails: await window.hanko.email.list(),
      getInfo: await code(window.hanko.user.getInfo("megan@contoso.com")),
      create: await code(window.hanko.user.create("new@contoso.com")),
    };
  });
  expect(legacy.user.id === firstUserId && legacy.user.email === "megan@contoso.com", `legacy user.getCurrent(): ${JSON.stringify(legacy.user)}`);
  expect(legacy.emails.length === 1 && legacy.emails[0].address === "megan@contoso.com" && legacy.emails[0].is_primary,
    `legacy email.list(): ${JSON.stringify(legacy.emails)}`);
  expect(legacy.getInfo === "notFound" && legacy.create === "forbidden",
    `no lookup or sign-up by email, in Hanko's words: ${JSON.stringify(legacy)}`);
  await control("/fail-next-authorize", { error: "access_denied", error_description: "declined" });
  await page.click("#microsoft");
  await page.locator("#status", { hasText: "error: access_denied" }).waitFor();
  const landing = new URL(page.url());
  expect(landing.searchParams.get("error_description") === "declined", `error_description on the error URL: ${landing}`);
  await shot(page, "s4-2-legacy-error");
  await context.close();
});

await scenario("5. a second visit is the same user, marked last used", async () => {
  const { context, page } = await newPage();
  await openAuth(page);
  await signInWithMicrosoft(page, "s5-first");
  const firstId = (await page.evaluate(() => window.hanko.getCurrentUser())).id;
  await page.evaluate(() => window.hanko.logout());
  await page.reload();
  await page.waitForFunction(() => window.__ready === true);
  await page.locator('button[data-bubble="Last used"]', { hasText: "Continue with Microsoft" }).waitFor();
  await shot(page, "s5-1-last-used");
  await page.evaluate(() => { window.__events = []; });
  await signInWithMicrosoft(page, "s5-second");
  const secondId = (await page.evaluate(() => window.hanko.getCurrentUser())).id;
  expect(firstId === secondId && secondId === firstUserId, `one user across visits: ${firstId} ${secondId} ${firstUserId}`);
  await context.close();
});

await scenario("6. Gatehouse's own login page signs in and out", async () => {
  const { page } = await newPage();
  await page.goto(`${API}/`);
  const button = page.getByRole("button", { name: "Sign in with Microsoft" });
  await button.waitFor();
  await shot(page, "s6-1-login-page");
  await button.click();
  await page.getByText("You are signed in").waitFor();
  await page.getByText("megan@contoso.com").waitFor();
  expect(!page.url().includes("hanko_token"), "the token is gone from the URL");
  await shot(page, "s6-2-signed-in");
  await page.getByRole("button", { name: "Sign out" }).click();
  await button.waitFor();
  await control("/fail-next-authorize", { error: "access_denied", error_description: "declined" });
  await button.click();
  await page.getByText("Sign-in was cancelled, or Microsoft denied access.").waitFor();
  await shot(page, "s6-3-error");
});

await scenario("7. with no configuration, the login page explains how to set up Microsoft", async () => {
  const port = await freePort();
  const dev = mkdtempSync(path.join(os.tmpdir(), "gatehouse-dev-"));
  // The admin listener gets a free port too, so that this development-mode server never fights over 8001.
  const env = { GATEHOUSE_SERVER__PUBLIC__ADDRESS: `127.0.0.1:${port}`, GATEHOUSE_SERVER__ADMIN__ADDRESS: `127.0.0.1:${await freePort()}` };
  await start(GATEHOUSE, [], "listening on", { cwd: dev, env });
  const { page } = await newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.getByText("No sign-in method is configured yet").waitFor();
  await page.getByText("bash scripts/demo").waitFor();
  expect((await page.getByRole("button", { name: "Sign in with Microsoft" }).count()) === 0, "no provider button");
  await shot(page, "s7-no-provider");
});

// --- the admin console -------------------------------------------------------------------------------------------
// A Gatehouse of its own (own database, admin listener on its own port) whose configuration file has Microsoft
// configured but turned off; the console turns it on and off while the server keeps running.
const ADMIN_KEY = `e2e-admin-${randomBytes(24).toString("hex")}`;
let consoleStack;
async function startConsoleStack() {
  if (consoleStack) return consoleStack;
  const [publicPort, adminPort] = [await freePort(), await freePort()];
  const api = `http://127.0.0.1:${publicPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "gatehouse-console-"));
  const config = writeGatehouseConfig(dir, {
    publicPort,
    secretKey: "e2e-console-secret-key-0123456789abcdef",
    microsoftEnabled: false,
    admin: { port: adminPort, key: ADMIN_KEY },
  });
  await start(GATEHOUSE, ["serve", "--config", config], "listening on");
  await waitFor(`${api}/health/ready`);
  await waitFor(`${admin}/`);
  consoleStack = { api, admin };
  return consoleStack;
}

/** The admin API from the test itself, to check what the console did. */
async function adminApi(route, init = {}) {
  const { admin } = await startConsoleStack();
  const response = await fetch(`${admin}${route}`, {
    ...init,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", ...init.headers },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

/** Opens the console and signs in with the admin key. */
async function openConsole(page) {
  const { admin } = await startConsoleStack();
  await page.goto(`${admin}/`);
  await page.getByLabel("Admin key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("tab", { name: "Identity providers" }).waitFor();
  await page.getByLabel("Client ID").waitFor();
}

function expectNoProblems(page) {
  expect(page.__problems.length === 0, `no script errors or CSP violations: ${page.__problems.join("\n")}`);
}

/** Reloads `url` until `check(page)` holds: the settings reach each instance by polling. */
async function eventually(page, url, check, what) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await page.goto(url);
    if (await check()) return;
    await page.waitForTimeout(1000);
  }
  throw new Error(`never happened: ${what}`);
}

/** Gatehouse's own login page has settled: it shows either the provider buttons or the set-up explanation. */
async function loginPageShowsMicrosoft(page) {
  const button = page.getByRole("button", { name: "Sign in with Microsoft" });
  const none = page.getByText("No sign-in method is configured yet");
  await button.or(none).first().waitFor();
  return (await button.count()) > 0;
}

/** The <hanko-auth> test page against the console's Gatehouse has settled on its first screen. */
async function hankoShowsMicrosoft(page) {
  await page.waitForFunction(() => window.__ready === true);
  await page.waitForLoadState("networkidle");
  const button = page.getByRole("button", { name: "Continue with Microsoft" });
  // The element renders its whole first screen ("Sign in" with its methods) from one flow state.
  await button.or(page.getByRole("heading", { name: "Sign in" })).first().waitFor();
  await page.waitForLoadState("networkidle");
  return (await button.count()) > 0;
}

let consoleUserJwt;

await scenario("8a. the console asks for an admin key and refuses a wrong one", async () => {
  const { admin } = await startConsoleStack();
  const { page } = await newPage();
  const response = await page.goto(`${admin}/`);
  const csp = response.headers()["content-security-policy"] ?? "";
  expect(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `the console is served with a strict CSP: ${csp}`);
  const keyInput = page.getByLabel("Admin key");
  await keyInput.waitFor();
  expect((await keyInput.getAttribute("type")) === "password", "the key is a password input");
  await keyInput.fill("not-the-admin-key-0123456789abcdef0123");
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByText("This key was refused").waitFor();
  expect((await page.getByRole("tab").count()) === 0 || !(await page.getByRole("tab", { name: "Users" }).isVisible()), "nothing behind the key is shown");
  await shot(page, "s8a-1-refused");
  await keyInput.fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("tab", { name: "Identity providers", selected: true }).waitFor();
  await page.getByText("Add it as a Web redirect URI in your Microsoft Entra app registration").waitFor();
  const redirectUrl = page.getByLabel("Redirect URL", { exact: true });
  const shown = (await redirectUrl.inputValue()) || (await redirectUrl.getAttribute("placeholder"));
  expect(shown.endsWith("/thirdparty/callback"), `the redirect URL to register is shown: ${shown}`);
  const stored = await page.evaluate(() => ({ session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage) }));
  expect(stored.session.includes(ADMIN_KEY) && !stored.local.includes(ADMIN_KEY), `the key is in sessionStorage only: ${JSON.stringify(stored)}`);
  await shot(page, "s8a-2-signed-in");
  // A key that stops working mid-session (revoked, rotated) sends the console back to the key prompt.
  await page.evaluate(() => sessionStorage.setItem("gatehouse_admin_key", "revoked-key-0123456789abcdef0123456789"));
  await page.getByRole("tab", { name: "Audit log" }).click();
  await page.getByText("The admin key is no longer accepted").waitFor();
  await keyInput.fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("tab", { name: "Audit log", selected: true }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await keyInput.waitFor();
  expect(!(await page.evaluate(() => JSON.stringify(sessionStorage))).includes(ADMIN_KEY), "sign out forgets the key");
  expectNoProblems(page);
});

await scenario("8b. the console turns Microsoft on and off without a restart", async () => {
  const { api } = await startConsoleStack();
  const login = (await newPage()).page;
  await login.goto(`${api}/`);
  expect(!(await loginPageShowsMicrosoft(login)), "Microsoft starts disabled (configuration file)");

  const { page } = await newPage();
  await openConsole(page);
  const enabled = page.getByRole("switch", { name: "Enabled" });
  expect(!(await enabled.isChecked()), "the Enabled switch starts off");
  expect((await page.getByLabel("Redirect URL", { exact: true }).inputValue()) === `${api}/thirdparty/callback`, "the redirect URL is shown");
  await enabled.check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved. Every Gatehouse instance applies it within a few seconds.").waitFor();
  await page.getByText(/^On: people can sign in with Microsoft\./).first().waitFor();
  await shot(page, "s8b-1-enabled");

  await eventually(login, `${api}/`, () => loginPageShowsMicrosoft(login), "the login page shows the Microsoft button");
  await shot(login, "s8b-2-login-page-enabled");
  const hanko = await newPage();
  const hankoUrl = `${PAGE}/#api=${encodeURIComponent(api)}`;
  await eventually(hanko.page, hankoUrl, () => hankoShowsMicrosoft(hanko.page), "<hanko-auth> shows the Microsoft button");
  // Sign in for real, so the Users view has someone to show.
  await signInWithMicrosoft(hanko.page, "s8b-3-hanko");
  consoleUserJwt = await sessionCookie(hanko.context);
  expect(consoleUserJwt, "the sign-in made a session");
  await hanko.context.close();

  await enabled.uncheck();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Off: the Microsoft button is not shown on sign-in pages.").waitFor();
  await page.getByText("Saved. Every Gatehouse instance applies it within a few seconds.").waitFor();
  await shot(page, "s8b-4-disabled");
  await eventually(login, `${api}/`, async () => !(await loginPageShowsMicrosoft(login)), "the Microsoft button disappears from the login page");
  const again = await newPage();
  await eventually(again.page, hankoUrl, async () => !(await hankoShowsMicrosoft(again.page)), "the Microsoft button disappears from <hanko-auth>");
  await shot(again.page, "s8b-5-hanko-disabled");
  const saved = await adminApi("/identity-providers");
  expect(saved.body.providers.microsoft.enabled === false, `saved as disabled: ${JSON.stringify(saved.body.providers.microsoft)}`);
  expectNoProblems(page);
});

await scenario("8c. a bad redirect pattern is shown next to its field and nothing is saved", async () => {
  const before = await adminApi("/identity-providers");
  const { page } = await newPage();
  await openConsole(page);
  const rows = page.locator("#patterns > li");
  const count = await rows.count();
  await page.getByRole("button", { name: "Add URL" }).click();
  expect((await rows.count()) === count + 1, "Add URL adds a row");
  const bad = page.getByLabel(`Allowed redirect URL ${count + 1}`, { exact: true });
  await bad.fill("not a url");
  await page.getByRole("button", { name: "Save" }).click();
  const error = rows.nth(count).locator(".field-error");
  await error.waitFor();
  expect((await error.textContent()).trim().length > 0, "the row shows the server's message");
  expect((await bad.getAttribute("aria-invalid")) === "true", "the bad input is marked invalid");
  for (let i = 0; i < count; i++) {
    expect(!(await rows.nth(i).locator(".field-error").isVisible()), `row ${i + 1} shows no error`);
  }
  await page.getByText(/Not saved/).waitFor();
  await shot(page, "s8c-1-bad-pattern");
  const after = await adminApi("/identity-providers");
  expect(
    JSON.stringify(after.body.allowed_redirect_urls) === JSON.stringify(before.body.allowed_redirect_urls) && after.body.version === before.body.version,
    `nothing was saved: ${JSON.stringify(after.body.allowed_redirect_urls)} version ${after.body.version}`,
  );
  // Without the bad row the form is as saved again, and the error goes away.
  await page.getByRole("button", { name: `Remove allowed redirect URL ${count + 1}` }).click();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("There are no changes to save.").waitFor();
  expect((await page.locator("#settings-form .field-error:visible").count()) === 0, "no errors remain");

  // Someone else saves in the meantime: this page's save is refused (409) and offers to reload.
  const current = await adminApi("/identity-providers");
  const put = (change) => adminApi("/identity-providers", { method: "PUT", body: JSON.stringify(change) });
  expect((await put({ version: current.body.version, providers: { microsoft: { prompt: "select_account" } } })).status === 200, "the other save");
  await page.getByLabel("Prompt").selectOption("login");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Someone else changed these settings; reload to see them").waitFor();
  await shot(page, "s8c-2-conflict");
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByText("Reloaded the saved settings.").waitFor();
  const prompt = await page.getByLabel("Prompt").inputValue();
  expect(prompt === "select_account", `the reload shows the other save: ${prompt}`);
  await put({ providers: { microsoft: { prompt: null } } });
  expectNoProblems(page);
});

function isoDate(daysFromNow) {
  const date = new Date(Date.now() + daysFromNow * 86_400_000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

await scenario("8d. a secret expiring in 10 days is flagged, then removed; certificates are generated", async () => {
  const { page } = await newPage();
  await openConsole(page);
  const secrets = page.locator("#secrets-table tbody tr");
  const configRow = secrets.filter({ hasText: "Configuration file" }).first();
  await configRow.waitFor();
  expect(await configRow.getByRole("button", { name: "Remove" }).isDisabled(), "a secret from the configuration file cannot be removed here");
  const value = `e2e-secret-${randomBytes(12).toString("hex")}`;
  const hint = `…${value.slice(-4)}`;
  await page.getByLabel("Secret value").fill(value);
  await page.getByLabel("Expires").fill(isoDate(10));
  await page.getByRole("button", { name: "Add secret" }).click();
  const row = secrets.filter({ hasText: hint });
  await row.waitFor();
  const badge = (await row.locator(".badge").textContent()) ?? "";
  expect(/Expires in (9|10|11) days/.test(badge), `the new secret is flagged as expiring soon: "${badge}"`);
  expect(!(await page.content()).includes(value), "the secret's value is not shown anywhere");
  await shot(page, "s8d-1-secret-added");
  await row.getByRole("button", { name: "Remove" }).click();
  await row.waitFor({ state: "detached" });
  const listed = (await adminApi("/identity-providers")).body.providers.microsoft.secrets;
  expect(!listed.some((secret) => secret.hint === hint), `the secret is gone: ${JSON.stringify(listed)}`);

  // A generated certificate: its PEM is shown to upload in Azure, and it is listed until removed.
  await page.getByLabel("Valid for (days)").fill("30");
  await page.getByRole("button", { name: "Generate" }).click();
  await page.getByText("App registrations → your app → Certificates & secrets → Certificates → Upload certificate").waitFor();
  expect((await page.getByLabel("Generated certificate (PEM)").inputValue()).startsWith("-----BEGIN CERTIFICATE-----"), "the certificate PEM is shown");
  const certRows = page.locator("#certs-table tbody tr");
  await certRows.first().waitFor();
  await shot(page, "s8d-2-certificate");
  const added = certRows.filter({ hasText: "Console" }).first();
  await added.getByRole("button", { name: "Remove" }).click();
  await added.waitFor({ state: "detached" });
  const certificates = (await adminApi("/identity-providers")).body.providers.microsoft.certificates;
  expect(!certificates.some((cert) => cert.source === "console"), `the certificate is gone: ${JSON.stringify(certificates)}`);
  expectNoProblems(page);
});

await scenario("8e. the Users view shows a Microsoft user and revokes a session", async () => {
  const { api } = await startConsoleStack();
  if (!consoleUserJwt) {
    // 8b did not sign anyone in: turn Microsoft on through the API and sign in here.
    const current = await adminApi("/identity-providers");
    await adminApi("/identity-providers", { method: "PUT", body: JSON.stringify({ version: current.body.version, providers: { microsoft: { enabled: true } } }) });
    const hanko = await newPage();
    await eventually(hanko.page, `${PAGE}/#api=${encodeURIComponent(api)}`, () => hankoShowsMicrosoft(hanko.page), "<hanko-auth> shows Microsoft");
    await signInWithMicrosoft(hanko.page, "s8e-0-hanko");
    consoleUserJwt = await sessionCookie(hanko.context);
    await hanko.context.close();
  }
  const validate = async () =>
    (await (await fetch(`${api}/sessions/validate`, { headers: { authorization: `Bearer ${consoleUserJwt}` } })).json()).is_valid;
  expect(await validate(), "the user's session is valid before the revoke");
  const { page } = await newPage();
  await openConsole(page);
  await page.getByRole("tab", { name: "Users" }).click();
  await page.getByLabel("Email contains").fill("megan");
  await page.getByRole("button", { name: "Search" }).click();
  const user = page.getByRole("button", { name: "megan@contoso.com" });
  await user.waitFor();
  await shot(page, "s8e-1-users");
  await user.click();
  await page.getByRole("heading", { name: "megan@contoso.com" }).waitFor();
  const identities = page.locator("#user-identities tbody tr");
  await identities.filter({ hasText: "Microsoft" }).first().waitFor();
  // Roles and groups as of the last sign-in (the demo user has none), with when Microsoft said so.
  const facts = await identities.first().locator("td.directory").textContent();
  expect(/none\s*read /.test(facts), `the identity shows its roles and groups and when they were read: ${facts}`);
  const sessions = page.locator("#user-sessions tbody tr");
  await sessions.first().waitFor();
  const before = await sessions.count();
  await shot(page, "s8e-2-user");
  await sessions.first().getByRole("button", { name: /^Revoke/ }).click();
  await page.getByText("Session revoked.").waitFor();
  await page.waitForFunction((n) => document.querySelectorAll("#user-sessions tbody tr").length === n - 1 || document.querySelector("#user-sessions").hidden, before);
  expect(!(await validate()), "the revoked session is no longer valid");
  await shot(page, "s8e-3-revoked");

  await page.getByRole("tab", { name: "Audit log" }).click();
  const auditRows = page.locator("#audit-table tbody tr");
  await auditRows.first().waitFor();
  await shot(page, "s8e-4-audit");
  expectNoProblems(page);
});

// --- hostile pages ---------------------------------------------------------------------------------------------

await scenario("9. the login page shows fixed text, never a crafted error_description", async () => {
  const { page } = await newPage();
  const lure = "Call IT support on +1 555 0100 and read them your code";
  const cases = [
    ["access_denied", "Sign-in was cancelled, or Microsoft denied access."],
    ["user_conflict", "An account with this email address already exists and cannot be joined to this Microsoft account."],
    [
      "unverified_email",
      "Microsoft did not confirm that this email address belongs to you, so it cannot be used to sign in. " +
        "(For the app's administrators: the Entra ID app registration must send the optional ID-token claims " +
        "upn, email and xms_edov.)",
    ],
    ["call_it_support", "The sign-in failed. Please try again."],
    ["constructor", "The sign-in failed. Please try again."],
  ];
  for (const [code, text] of cases) {
    await page.goto(`${API}/?${new URLSearchParams({ error: code, error_description: lure })}`);
    await page.getByRole("button", { name: "Sign in with Microsoft" }).waitFor();
    const shown = await page.locator("#error").textContent();
    expect(shown === text, `error=${code} shows its fixed text: "${shown}"`);
    const everything = await page.evaluate(() => document.documentElement.outerHTML + location.href);
    expect(!everything.includes("Call IT support"), `error=${code}: the description appears nowhere on the page`);
  }
  await shot(page, "s9-fixed-error-text");
  expectNoProblems(page);
});

/**
 * The attacker's half of a login CSRF: a complete sign-in of the attacker's own Microsoft account through the flow
 * API of `api`, stopped just before `exchange_token`. Returns that action's URL and the body that would finish it.
 */
async function attackerExchange(api) {
  const post = async (href, body) =>
    (await fetch(`${api}${href}`, { method: "POST", headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) })).json();
  let state = await post("/login");
  state = await post(state.actions.register_client_capabilities.href, { input_data: { webauthn_available: false }, csrf_token: state.csrf_token });
  const code_verifier = randomBytes(48).toString("base64url");
  const oauth = { provider: "microsoft", redirect_to: `${PAGE}/`, code_verifier };
  state = await post(state.actions.thirdparty_oauth.href, { input_data: oauth, csrf_token: state.csrf_token });
  await control("/next-user", { email: "mallory@fabrikam.com", upn: "mallory@fabrikam.com", xms_edov: true });
  const callback = (await fetch(state.payload.redirect_url, { redirect: "manual" })).headers.get("location");
  const landing = (await fetch(callback, { redirect: "manual" })).headers.get("location");
  const token = new URL(landing).searchParams.get("hanko_token");
  expect(token, `the attacker's sign-in reached the app: ${landing}`);
  return { url: `${api}${state.actions.exchange_token.href}`, body: { input_data: { token, code_verifier }, csrf_token: state.csrf_token } };
}

/**
 * Serves one page on its own port, reached as `http://localhost:<port>`: another site than the
 * `http://127.0.0.1` pages and APIs. The page auto-submits a `text/plain` form whose body is `body` as JSON (the
 * form encodes `name=value`, so the `=` is hidden inside a padding string) to `url`.
 */
async function serveForgingPage(url, body) {
  const json = JSON.stringify({ ...body, padding: "" });
  const [name, value] = [json.slice(0, -2), json.slice(-2)];
  const html = `<!doctype html><form method="POST" enctype="text/plain"></form><script>
    const form = document.forms[0];
    form.action = ${JSON.stringify(url)};
    const input = Object.assign(document.createElement("input"), { type: "hidden", name: ${JSON.stringify(name)}, value: ${JSON.stringify(value)} });
    form.append(input);
    form.submit();
  </script>`;
  const server = http.createServer((request, response) => response.writeHead(200, { "content-type": "text/html" }).end(html));
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, url: `http://localhost:${port}/` };
}

await scenario("10. a cross-site text/plain form cannot sign the visitor in as the attacker (login CSRF)", async () => {
  // Cookie sessions: the answer to the forged POST itself would carry the attacker's session cookie.
  const publicPort = await freePort();
  const api = `http://127.0.0.1:${publicPort}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "gatehouse-csrf-"));
  const config = writeGatehouseConfig(dir, { publicPort, secretKey: "e2e-csrf-secret-key-0123456789abcdef", microsoftEnabled: true, cookieSessions: true });
  await start(GATEHOUSE, ["serve", "--config", config], "listening on");
  await waitFor(`${api}/health/ready`);

  const exchange = await attackerExchange(api);
  const forging = await serveForgingPage(exchange.url, exchange.body);
  try {
    const { context, page } = await newPage();
    const forged = page.waitForResponse((response) => response.url() === exchange.url);
    await page.goto(forging.url);
    const answer = await forged;
    expect(answer.request().postData()?.startsWith('{"input_data":'), `the form posted the JSON body: ${answer.request().postData()}`);
    await shot(page, "s10-forged-post");
    const cookie = (await context.cookies(api)).find((c) => c.name === "hanko");
    const me = await context.request.get(`${api}/me`);
    expect(me.status() === 401, `the visitor is not signed in: ${me.status()} ${await me.text()}`);
    expect(!cookie, `the visitor has no session cookie: ${JSON.stringify(cookie)}`);
    expect([403, 415].includes(answer.status()), `the forged exchange is refused: ${answer.status()}`);
  } finally {
    forging.server.close();
  }
  // The refused body was a working one: sent as JSON by the attacker's own client, it signs the attacker in.
  const own = await fetch(exchange.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(exchange.body) });
  const state = await own.json();
  expect(state.name === "success" && state.payload.user.emails[0].address === "mallory@fabrikam.com", `the attacker's own exchange: ${JSON.stringify(state)}`);
});

await scenario("11. app code beside hanko-profile shows the roles and tenant of the session JWT", async () => {
  await control("/next-user", { email: "adele@contoso.com", upn: "adele@contoso.com", roles: ["Reader", "Approver"] });
  const { context, page } = await newPage();
  await openAuth(page);
  await signInWithMicrosoft(page, "s11");
  await page.goto(`${PAGE}/profile.html`);
  await page.waitForFunction(() => window.__ready === true);
  await page.getByText("adele@contoso.com").first().waitFor();
  const roles = await page.locator("#roles").textContent();
  expect(roles === "Approver, Reader", `the app shows the Entra app roles: ${roles}`);
  const tenant = await page.locator("#tenant").textContent();
  expect(tenant === "72f988bf-86f1-41af-91ab-2d7cd011db47", `the app shows the tenant of the sign-in: ${tenant}`);
  await shot(page, "s11-roles");
  await context.close();
});

await browser.close();
pages.close();
cleanup();
const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
