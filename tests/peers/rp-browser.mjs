// A relying party driven through a real browser: npm `openid-client` does the protocol
// (discovery, authorization code with PKCE S256, state and nonce, the code exchange with the ID
// token's claims and signature checked, userinfo, refresh, RP-initiated logout) and
// `playwright-core` drives Debian's Chromium through the provider's hosted pages, checking them
// with axe and taking screenshots. One browser context lives for the whole run, so the
// provider's SSO cookie carries over from one login to the next, as in a real browser.
//
// Usage: node rp-browser.mjs [--port N] [--chromium PATH]
// Prints one line when ready: {"ready": true, "redirect_uri", "post_logout_redirect_uri"}, then
// reads one JSON command per line on stdin and answers each with one JSON line on stdout:
// {"ok": true, ...} or {"ok": false, "error": {...}, "url", "text"}. Exits when stdin closes.
// The commands are described at `handlers` below.
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import AxeBuilder from "@axe-core/playwright";
import * as client from "openid-client";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    chromium: { type: "string", default: process.env.GATEHOUSE_TEST_CHROMIUM ?? "/usr/bin/chromium" },
  },
});
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];
const TIMEOUT_MS = 15_000;

// The relying party's own pages: where the provider sends the browser back.
const callbacks = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html lang="en"><title>Relying party</title><main><h1>Back at the relying party</h1></main></html>`);
});
await new Promise((resolve) => callbacks.listen(Number(opts.port), "127.0.0.1", resolve));
const rpBase = `http://127.0.0.1:${callbacks.address().port}`;
const redirectUri = `${rpBase}/cb`;
const postLogoutRedirectUri = `${rpBase}/logged-out`;

const browser = await chromium.launch({ executablePath: opts.chromium, headless: true });
let context = await browser.newContext({ viewport: VIEWPORTS[0] });
let page = await context.newPage();

const configs = new Map(); // `${issuer} ${client_id}` → openid-client Configuration
const sessions = new Map(); // session name (default: client_id) → { config, tokens }
let shot = 0; // numbers screenshots in the order they were taken

async function configFor(cmd) {
  const key = `${cmd.issuer} ${cmd.client_id}`;
  if (!configs.has(key)) {
    const auth = cmd.client_secret
      ? cmd.auth_method === "client_secret_post"
        ? client.ClientSecretPost(cmd.client_secret)
        : client.ClientSecretBasic(cmd.client_secret)
      : client.None();
    const config = await client.discovery(new URL(cmd.issuer), cmd.client_id, cmd.client_metadata, auth, {
      // http on loopback; and the ID token's signature is checked against the JWKS, not only
      // its claims (openid-client otherwise trusts the token endpoint's TLS for it).
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    });
    configs.set(key, config);
  }
  return configs.get(key);
}

function sessionOf(cmd) {
  const s = sessions.get(cmd.session ?? cmd.client_id);
  if (!s) throw new Error(`no login yet for session ${cmd.session ?? cmd.client_id}`);
  return s;
}

// Records a provider page: axe's serious and critical violations, and a screenshot per viewport.
async function record(cmd, step) {
  await page.waitForLoadState("load");
  const out = { step, url: page.url(), title: await page.title() };
  if (cmd.axe) {
    const { violations } = await new AxeBuilder({ page }).analyze();
    out.axe = violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target) }));
  }
  if (cmd.screenshot_dir) {
    mkdirSync(cmd.screenshot_dir, { recursive: true });
    const label = (cmd.label ?? cmd.client_id ?? cmd.op).replace(/[^\w.-]/g, "_");
    out.screenshots = [];
    for (const vp of VIEWPORTS) {
      await page.setViewportSize(vp);
      const path = join(cmd.screenshot_dir, `${String(++shot).padStart(2, "0")}-${label}-${step}-${vp.width}x${vp.height}.png`);
      await page.screenshot({ path, fullPage: true });
      out.screenshots.push(path);
    }
    await page.setViewportSize(VIEWPORTS[0]);
  }
  return out;
}

const visible = (locator) => locator.isVisible().catch(() => false);

let pending; // a login started by `forgot`, waiting for `reset`: { cmd, flow }

// Opens the authorization request of a login (PKCE S256, state, nonce) in the browser;
// answers what finishing it needs.
async function beginLogin(cmd) {
  const config = await configFor(cmd);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: cmd.scope ?? "openid",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...cmd.extra_params,
  });
  await page.goto(url.href);
  return { config, verifier, state, nonce };
}

// Back at the redirect URI: exchanges the code (the ID token checked), fetches userinfo, and
// keeps the tokens as the session's. Answers {tokens, claims, userinfo}.
async function finishLogin(cmd, { config, verifier, state, nonce }) {
  const tokens = await client.authorizationCodeGrant(config, new URL(page.url()), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  sessions.set(cmd.session ?? cmd.client_id, { config, tokens });
  return { tokens: { ...tokens }, claims, userinfo };
}

// Waits until the browser is at a URL starting with `prefix` or shows one of `steps`
// ({name: locator}); answers the name of the step, or "arrived".
async function waitFor(prefix, steps, timeout = TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (page.url().startsWith(prefix)) return "arrived";
    for (const [name, locator] of Object.entries(steps)) {
      if (await visible(locator)) return name;
    }
    await page.waitForTimeout(50);
  }
  const error = new Error(`neither ${prefix} nor any of ${Object.keys(steps).join(", ")} within ${timeout} ms`);
  error.code = "TIMEOUT";
  throw error;
}

// Runs the action that submits a form and waits until the page it leads to has replaced this
// one, so the page submitted is never mistaken for the next.
async function submitted(action) {
  const navigated = page.waitForEvent("framenavigated", {
    predicate: (frame) => frame === page.mainFrame(),
    timeout: TIMEOUT_MS,
  });
  navigated.catch(() => {}); // awaited below, unless the action fails first
  await action();
  await navigated;
}

// The logout op's browsing: to `url`, through any confirmation, to the post-logout URI.
async function logoutIn(cmd, state, url, navigations) {
  await page.goto(url);
  const signOut = page.getByRole("button", { name: "Sign out", exact: true });
  const pages = [];
  const timeout = cmd.timeout_ms ?? TIMEOUT_MS;
  let step = await waitFor(postLogoutRedirectUri, { "sign-out": signOut }, timeout).catch((e) => {
    if (e.code === "TIMEOUT") return "stayed";
    throw e;
  });
  if (step === "sign-out") {
    pages.push(await record(cmd, "sign-out"));
    if (cmd.confirm !== false) {
      await signOut.click();
      step = await waitFor(postLogoutRedirectUri, {}, timeout).catch((e) => {
        if (e.code === "TIMEOUT") return "stayed";
        throw e;
      });
    }
  }
  const landed = new URL(page.url());
  const at = landed.href.startsWith(postLogoutRedirectUri);
  return {
    confirm_shown: pages.length > 0,
    pages,
    landed: landed.href,
    at_post_logout_redirect: at,
    state_ok: at && landed.searchParams.get("state") === state,
    text: await bodyText(),
    navigations,
  };
}

const handlers = {
  // {op: "login", issuer, client_id, client_secret?, auth_method? ("client_secret_basic" by
  //  default, or "client_secret_post"), client_metadata?, scope?, extra_params?, username,
  //  password, new_password?, expect_page?: bool, expect_consent?: bool, axe?: bool,
  //  screenshot_dir?, label?, session?, staff?: bool, provider?: NAME}
  // Runs the authorization code flow with PKCE S256, state and nonce in the browser; fills the
  // sign-in page (and the new-password step) if shown, and clicks Allow on the consent page
  // if shown. With staff, chooses **Sign in with staff account** on the sign-in page and fills
  // the staff pool's page ("staff-sign-in") if shown. With provider, chooses **Sign in with
  // NAME** and fills the identity provider's page ("provider-sign-in") if shown. With expect_page false, a sign-in page is
  // an error (SSO was expected); with expect_page true, its absence is; expect_consent says the
  // same of the consent page. Answers {page_shown, consent_shown, pages: [{step, url, title,
  // axe?, screenshots?}], tokens, claims, userinfo}.
  async login(cmd) {
    const flow = await beginLogin(cmd);
    const steps = {
      "sign-in": page.getByLabel("Username", { exact: true }),
      "new-password": page.getByLabel("New password", { exact: true }),
      consent: page.getByRole("button", { name: "Allow", exact: true }),
    };
    const pages = [];
    let viaStaff = false; // chose "Sign in with staff account": the next form is the staff pool's
    let viaProvider = false; // chose "Sign in with PROVIDER": the next form is the provider's
    for (;;) {
      let step = await waitFor(redirectUri, steps);
      if (step === "arrived") break;
      if (step === "sign-in" && viaStaff) step = "staff-sign-in";
      if (step === "sign-in" && viaProvider) step = "provider-sign-in";
      if (step === "sign-in" && cmd.expect_page === false) {
        throw new Error("the sign-in page was shown although single sign-on was expected");
      }
      if (pages.some((p) => p.step === step)) throw new Error(`the ${step} page was shown again`);
      pages.push(await record(cmd, step));
      if (step === "consent") {
        if (cmd.expect_consent === false) throw new Error("the consent page was shown although consent was remembered");
        await submitted(() => steps.consent.click());
        continue;
      }
      if (step === "sign-in" && cmd.provider && !viaProvider) {
        viaProvider = true;
        await submitted(() => page.getByRole("button", { name: `Sign in with ${cmd.provider}`, exact: true }).click());
        continue;
      }
      if (step === "sign-in" && cmd.staff) {
        viaStaff = true;
        await submitted(() => page.getByRole("button", { name: "Sign in with staff account", exact: true }).click());
        continue;
      }
      if (step === "sign-in" || step === "staff-sign-in" || step === "provider-sign-in") {
        await page.getByLabel("Username", { exact: true }).fill(cmd.username);
        await page.getByLabel("Password", { exact: true }).fill(cmd.password);
        await submitted(() => page.getByRole("button", { name: "Sign in", exact: true }).click());
      } else {
        if (!cmd.new_password) throw new Error("a new password was asked for and none was given");
        await steps["new-password"].fill(cmd.new_password);
        await submitted(() => steps["new-password"].press("Enter"));
      }
    }
    const pageShown = pages.some((p) => p.step === "sign-in");
    if (cmd.expect_page === true && !pageShown) throw new Error("the sign-in page was not shown");
    const consentShown = pages.some((p) => p.step === "consent");
    if (cmd.expect_consent === true && !consentShown) throw new Error("the consent page was not shown");
    return { page_shown: pageShown, consent_shown: consentShown, pages, ...(await finishLogin(cmd, flow)) };
  },

  // {op: "idp_initiated", issuer, client_id, client_secret?, scope?, start_url, username,
  //  password}: sign-in started at the identity provider. Builds this relying party's
  // authorization request (PKCE S256, state, nonce) without opening it, gives it to the IdP's
  // `start_url` as `RelayState`, fills the IdP's sign-in form if shown, and finishes the
  // login when the browser arrives back here. Answers {tokens, claims, userinfo, pages}.
  async idp_initiated(cmd) {
    const config = await configFor(cmd);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authorize = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: cmd.scope ?? "openid",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    const start = new URL(cmd.start_url);
    start.searchParams.set("RelayState", authorize.href);
    await page.goto(start.href);
    const pages = [];
    const form = page.getByLabel("Username", { exact: true });
    if ((await waitFor(redirectUri, { "provider-sign-in": form })) === "provider-sign-in") {
      pages.push(await record(cmd, "provider-sign-in"));
      await form.fill(cmd.username);
      await page.getByLabel("Password", { exact: true }).fill(cmd.password);
      await submitted(() => page.getByRole("button", { name: "Sign in", exact: true }).click());
      await waitFor(redirectUri, {});
    }
    return { pages, ...(await finishLogin(cmd, { config, verifier, state, nonce })) };
  },

  // {op: "forgot", issuer, client_id, client_secret?, auth_method?, scope?, username, axe?,
  //  screenshot_dir?, label?, session?}
  // Starts a login like `login`, but on the sign-in page follows "Forgot your password?",
  // enters the username and sends it. Stops at the step asking for the code (the test reads
  // it from the messages sent), keeping the login for `reset`. Answers {pages} (sign-in,
  // forgot-password, reset-password).
  async forgot(cmd) {
    const flow = await beginLogin(cmd);
    const username = page.getByLabel("Username", { exact: true });
    const code = page.getByLabel("Code", { exact: true });
    const pages = [];
    if ((await waitFor(redirectUri, { "sign-in": username })) !== "sign-in") {
      throw new Error("no sign-in page was shown");
    }
    pages.push(await record(cmd, "sign-in"));
    await submitted(() => page.getByRole("button", { name: "Forgot your password?", exact: true }).click());
    if ((await waitFor(redirectUri, { "forgot-password": username })) !== "forgot-password") {
      throw new Error("no page asked for the username");
    }
    pages.push(await record(cmd, "forgot-password"));
    await username.fill(cmd.username);
    await submitted(() => page.getByRole("button", { name: "Send code", exact: true }).click());
    if ((await waitFor(redirectUri, { "reset-password": code })) !== "reset-password") {
      throw new Error("no page asked for the code");
    }
    pages.push(await record(cmd, "reset-password"));
    pending = { cmd, flow };
    return { pages };
  },

  // {op: "reset", code, new_password, axe?, screenshot_dir?, label?}: on the code step that
  // `forgot` reached, enters the code and the new password and sends them. Back at the
  // relying party, finishes the login as `login` does and answers {arrived: true, tokens,
  // claims, userinfo}; when the page stays (a wrong code), answers {arrived: false, pages:
  // [reset-error], text}, and the login waits for another try.
  async reset(cmd) {
    if (!pending) throw new Error("no login is waiting for a code");
    await page.getByLabel("Code", { exact: true }).fill(cmd.code);
    await page.getByLabel("New password", { exact: true }).fill(cmd.new_password);
    await submitted(() => page.getByRole("button", { name: "Set password and continue", exact: true }).click());
    const step = await waitFor(redirectUri, { "reset-error": page.getByRole("alert") });
    if (step === "reset-error") {
      return { arrived: false, pages: [await record(cmd, "reset-error")], text: await bodyText() };
    }
    const { cmd: started, flow } = pending;
    pending = undefined;
    return { arrived: true, ...(await finishLogin(started, flow)) };
  },

  // {op: "refresh", client_id | session, refresh_token?, scope?}: a refresh token grant with the
  // session's latest refresh token (or the one given). Answers {tokens, claims?, rotated}.
  async refresh(cmd) {
    const s = sessionOf(cmd);
    const old = cmd.refresh_token ?? s.tokens.refresh_token;
    const params = cmd.scope ? { scope: cmd.scope } : undefined;
    const tokens = await client.refreshTokenGrant(s.config, old, params);
    if (cmd.refresh_token === undefined) {
      s.tokens = {
        access_token: tokens.access_token,
        id_token: tokens.id_token ?? s.tokens.id_token,
        refresh_token: tokens.refresh_token ?? old,
      };
    }
    const claims = tokens.id_token ? tokens.claims() : undefined;
    return { tokens: { ...tokens }, claims, rotated: !!tokens.refresh_token && tokens.refresh_token !== old };
  },

  // {op: "userinfo", client_id | session, access_token?}: userinfo with the session's latest
  // access token (or the one given). Answers {userinfo}.
  async userinfo(cmd) {
    const s = sessionOf(cmd);
    const token = cmd.access_token ?? s.tokens.access_token;
    return { userinfo: await client.fetchUserInfo(s.config, token, client.skipSubjectCheck) };
  },

  // {op: "logout", client_id | session, id_token_hint?: bool (default true), confirm?: bool
  //  (default true), axe?, screenshot_dir?, label?, timeout_ms?}
  // Follows the end-session URL (with post_logout_redirect_uri and state) in the browser and
  // clicks Sign out when asked to confirm (the provider's page, or an upstream provider's it
  // passes through). Answers {confirm_shown, pages, landed (the URL), at_post_logout_redirect,
  // state_ok, text, navigations (every URL the browser's page went to, in order)}.
  async logout(cmd) {
    const s = sessionOf(cmd);
    const state = client.randomState();
    const params = { post_logout_redirect_uri: postLogoutRedirectUri, state };
    if (cmd.id_token_hint !== false) params.id_token_hint = s.tokens.id_token;
    const navigations = [];
    const onNavigation = (r) => {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations.push(r.url());
    };
    page.on("request", onNavigation);
    try {
      return await logoutIn(cmd, state, client.buildEndSessionUrl(s.config, params).href, navigations);
    } finally {
      page.off("request", onNavigation);
    }
  },


  // {op: "authorize_raw", url, axe?, screenshot_dir?, label?}: opens any URL (a hand-made
  // authorization request, say) in the browser and reports where it ended, without filling
  // anything or exchanging a code. Answers {url, status (of the last document), navigations:
  // [{url, status}], at_redirect_uri, params (the query there), text, pages}.
  async authorize_raw(cmd) {
    const navigations = [];
    const onResponse = (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
        navigations.push({ url: r.url(), status: r.status() });
      }
    };
    page.on("response", onResponse);
    let navigationError;
    try {
      await page.goto(cmd.url);
      await page.waitForLoadState("load");
    } catch (e) {
      navigationError = e.message; // an unreachable redirect target, for one
    } finally {
      page.off("response", onResponse);
    }
    const url = new URL(page.url());
    const pages = cmd.axe || cmd.screenshot_dir ? [await record(cmd, "raw")] : [];
    return {
      url: url.href,
      status: navigations.at(-1)?.status,
      navigations,
      navigation_error: navigationError,
      at_redirect_uri: url.href.startsWith(redirectUri),
      params: Object.fromEntries(url.searchParams),
      text: await bodyText(),
      pages,
    };
  },

  // {op: "cookies"}: the browser context's cookies (name, domain, path, httpOnly, secure,
  // sameSite, expires; values included).
  async cookies() {
    return { cookies: await context.cookies() };
  },

  // {op: "new_context"}: a fresh browser (no cookies), as another person on another device.
  // Token sessions are kept.
  async new_context() {
    await context.close();
    context = await browser.newContext({ viewport: VIEWPORTS[0] });
    page = await context.newPage();
    return {};
  },
};

async function bodyText() {
  return (await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "")).slice(0, 4_000);
}

function describe(e) {
  if (!(e instanceof Error)) return { message: String(e) };
  const out = { name: e.name, message: e.message };
  for (const key of ["code", "error", "error_description", "status"]) {
    if (e[key] !== undefined) out[key] = e[key];
  }
  if (e.cause instanceof Error) out.cause = describe(e.cause);
  else if (e.cause?.status !== undefined) out.cause = { status: e.cause.status, url: e.cause.url };
  else if (e.cause !== undefined) out.cause = e.cause;
  return out;
}

const write = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
write({ ready: true, redirect_uri: redirectUri, post_logout_redirect_uri: postLogoutRedirectUri });

// Commands run one at a time, in order.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let cmd;
    try {
      cmd = JSON.parse(line);
      const handler = Object.hasOwn(handlers, cmd.op) ? handlers[cmd.op] : undefined;
      if (!handler) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
      write({ ok: true, id: cmd.id, ...(await handler(cmd)) });
    } catch (e) {
      write({ ok: false, id: cmd?.id, error: describe(e), url: page.url(), text: await bodyText() });
    }
  });
});
lines.on("close", () => {
  queue.then(async () => {
    await browser.close().catch(() => {});
    callbacks.close();
    process.exit(0);
  });
});
