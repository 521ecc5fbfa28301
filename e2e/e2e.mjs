// The browser suite: the real @teamhanko packages in Debian's headless Chromium against the Gatehouse binary and
// the fake Entra ID, all on loopback; the test page is served from another port, so CORS is exercised.
// Usage: node e2e.mjs   (expects target/debug/gatehouse and target/debug/fake-entra; scripts/test builds them)
// Prints one line per scenario and "N passed, N failed"; screenshots of each step go to e2e/artifacts/.
import { spawn } from "node:child_process";
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
const CONTROL = `http://127.0.0.1:${controlPort}`;
const work = mkdtempSync(path.join(os.tmpdir(), "gatehouse-e2e-"));
writeFileSync(
  path.join(work, "gatehouse.yaml"),
  `server:
  public:
    address: "127.0.0.1:${apiPort}"
    cors:
      allow_origins: ["${PAGE}"]
database:
  url: "sqlite://${path.join(work, "gatehouse.db")}"
secret_keys: ["e2e-secret-key-0123456789abcdef"]
session:
  enable_auth_token_header: true
  cookie:
    secure: false
rate_limiter:
  enabled: false
third_party:
  redirect_url: "${API}/thirdparty/callback"
  error_redirect_url: "${PAGE}/legacy.html"
  allowed_redirect_urls: ["${PAGE}**", "${API}**"]
  providers:
    microsoft:
      enabled: true
      client_id: gatehouse-dev-client
      secret: gatehouse-dev-secret
      cloud_instance: "http://127.0.0.1:${entraPort}"
`,
);
await start(FAKE_ENTRA, ["--port", String(entraPort), "--control-port", String(controlPort)], "Control endpoint");
await start(GATEHOUSE, ["serve", "--config", path.join(work, "gatehouse.yaml")], "listening on");
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

await scenario("4. legacy SDK 1.5.2: thirdParty.auth then token.validate", async () => {
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
  await start(GATEHOUSE, [], "listening on", { cwd: dev, env: { GATEHOUSE_SERVER__PUBLIC__ADDRESS: `127.0.0.1:${port}` } });
  const { page } = await newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.getByText("No sign-in method is configured yet").waitFor();
  await page.getByText("fake-entra").waitFor();
  expect((await page.getByRole("button", { name: "Sign in with Microsoft" }).count()) === 0, "no provider button");
  await shot(page, "s7-no-provider");
});

await browser.close();
pages.close();
cleanup();
const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
