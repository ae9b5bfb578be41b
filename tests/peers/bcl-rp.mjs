// A real back-channel logout relying party: an express app protected by npm
// `express-openid-connect` (authorization code flow, back-channel logout on), with Debian's
// Chromium (through `playwright-core`) as its user's browser.
//
// Usage: node bcl-rp.mjs [--chromium PATH]
// Prints one line when ready: {"ready": true, "base_url", "redirect_uri",
// "backchannel_logout_uri"}, then reads one JSON command per line on stdin and answers each with
// one JSON line on stdout: {"ok": true, ...} or {"ok": false, "error", "url", "text"}. Exits when
// stdin closes. The commands:
//   {op: "configure", issuer, client_id, client_secret}: mounts `auth()` for this client.
//   {op: "login", username, password}: the browser opens the app's /login, signs in on the
//     provider's page if it is shown, and comes back. Answers what `status` answers.
//   {op: "status"}: with the browser's cookies, GET /me ({authenticated, claims}) and GET
//     /protected without following redirects. Answers {authenticated, claims, protected_status,
//     protected_location}.
//   {op: "visit", url, click?}: opens a URL in the browser (and clicks the button named `click`
//     if one shows). Answers {url, text}.
//   {op: "logout_keys"}: the keys the back-channel logout store holds (`{iss}|{sid}` and
//     `{iss}|{sub}` of each logout token received) and the tokens received.
import express from "express";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import expressOpenidConnect from "express-openid-connect";
import { chromium } from "playwright-core";

const { auth, requiresAuth } = expressOpenidConnect;
const { values: opts } = parseArgs({
  options: {
    chromium: { type: "string", default: process.env.GATEHOUSE_TEST_CHROMIUM ?? "/usr/bin/chromium" },
  },
});
const TIMEOUT_MS = 15_000;

// The logout store: an in-memory store with the callback interface express-session stores
// have, which express-openid-connect's default back-channel hooks use.
const entries = new Map();
const received = [];
const store = {
  get(key, cb) {
    cb(null, entries.get(key));
  },
  set(key, value, cb) {
    entries.set(key, value);
    cb(null);
  },
  destroy(key, cb) {
    entries.delete(key);
    cb(null);
  },
};

const app = express();
let mounted; // the auth() router, once configured
app.use((req, res, next) => {
  if (req.method === "POST" && req.path === "/backchannel-logout") received.push(new Date().toISOString());
  next();
});
app.use((req, res, next) => (mounted ? mounted(req, res, next) : res.status(503).send("not configured")));
app.get("/", (req, res) => res.type("html").send(`<!doctype html><title>RP</title><h1>Home</h1>`));
app.get("/me", (req, res) =>
  res.json({ authenticated: req.oidc.isAuthenticated(), claims: req.oidc.idTokenClaims ?? null }),
);
app.get("/protected", requiresAuth(), (req, res) => res.json({ user: req.oidc.user }));

const server = await new Promise((resolve) => {
  const s = app.listen(0, "127.0.0.1", () => resolve(s));
});
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({ executablePath: opts.chromium, headless: true });
const context = await browser.newContext();
const page = await context.newPage();

const visible = (locator) => locator.isVisible().catch(() => false);

async function status() {
  const me = await context.request.get(`${base}/me`);
  const body = await me.json();
  const prot = await context.request.get(`${base}/protected`, { maxRedirects: 0 });
  return {
    authenticated: body.authenticated,
    claims: body.claims,
    protected_status: prot.status(),
    protected_location: prot.headers()["location"] ?? null,
  };
}

async function bodyText() {
  return (await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "")).slice(0, 4_000);
}

const handlers = {
  async configure(cmd) {
    mounted = auth({
      issuerBaseURL: cmd.issuer,
      baseURL: base,
      clientID: cmd.client_id,
      clientSecret: cmd.client_secret,
      secret: "a long enough cookie secret for the test relying party",
      authRequired: false,
      idpLogout: false,
      backchannelLogout: { store },
      authorizationParams: { response_type: "code", scope: "openid" },
    });
    return {};
  },

  async login(cmd) {
    await page.goto(`${base}/login`);
    const username = page.getByLabel("Username", { exact: true });
    const deadline = Date.now() + TIMEOUT_MS;
    let pageShown = false;
    for (;;) {
      if (Date.now() > deadline) throw new Error("the login did not come back to the relying party");
      const url = page.url();
      if (url.startsWith(base) && !url.startsWith(`${base}/login`) && !url.startsWith(`${base}/callback`)) break;
      if (await visible(username)) {
        pageShown = true;
        await username.fill(cmd.username);
        await page.getByLabel("Password", { exact: true }).fill(cmd.password);
        await Promise.all([
          page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame(), timeout: TIMEOUT_MS }),
          page.getByRole("button", { name: "Sign in", exact: true }).click(),
        ]);
        continue;
      }
      await page.waitForTimeout(50);
    }
    await page.waitForLoadState("load");
    return { page_shown: pageShown, ...(await status()) };
  },

  async status() {
    return status();
  },

  async visit(cmd) {
    await page.goto(cmd.url);
    await page.waitForLoadState("load");
    if (cmd.click) {
      const button = page.getByRole("button", { name: cmd.click, exact: true });
      const deadline = Date.now() + TIMEOUT_MS;
      while (!(await visible(button))) {
        if (Date.now() > deadline) throw new Error(`no ${cmd.click} button`);
        await page.waitForTimeout(50);
      }
      await Promise.all([
        page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame(), timeout: TIMEOUT_MS }),
        button.click(),
      ]);
      await page.waitForLoadState("load");
    }
    return { url: page.url(), text: await bodyText() };
  },

  async logout_keys() {
    return { keys: [...entries.keys()], received };
  },
};

const write = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
write({
  ready: true,
  base_url: base,
  redirect_uri: `${base}/callback`,
  backchannel_logout_uri: `${base}/backchannel-logout`,
});

let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let cmd;
    try {
      cmd = JSON.parse(line);
      const handler = Object.hasOwn(handlers, cmd.op) ? handlers[cmd.op] : undefined;
      if (!handler) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
      write({ ok: true, ...(await handler(cmd)) });
    } catch (e) {
      write({ ok: false, error: String(e?.stack ?? e), url: page.url(), text: await bodyText() });
    }
  });
});
lines.on("close", () => {
  queue.then(async () => {
    await browser.close().catch(() => {});
    server.close();
    process.exit(0);
  });
});
