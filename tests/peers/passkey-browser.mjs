// A browser with a passkey: `playwright-core` drives Debian's Chromium through the hosted
// pages while Chromium's DevTools WebAuthn domain plays the user's authenticator (a virtual
// CTAP2 platform authenticator with resident keys and user verification). The relying
// party's redirect URI is a page on loopback served here, so a sign-in ends with its URL,
// whose code the test exchanges itself.
//
// Usage: node passkey-browser.mjs [--chromium PATH]
// Prints {"ready": true, "redirect_uri"} once, then reads one JSON command per line on stdin and answers
// each with one JSON line: {"ok": true, ...} or {"ok": false, "error", "url", "text"}.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import AxeBuilder from "@axe-core/playwright";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    chromium: { type: "string", default: process.env.GATEHOUSE_TEST_CHROMIUM ?? "/usr/bin/chromium" },
  },
});
const TIMEOUT_MS = 15_000;

// The relying party's redirect URI: a page on loopback where sign-ins come back.
const app = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html lang="en"><title>App</title><main><h1>Back at the app</h1></main></html>`);
});
await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
const redirectUri = `http://127.0.0.1:${app.address().port}/cb`;

const browser = await chromium.launch({ executablePath: opts.chromium, headless: true });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send("WebAuthn.enable", { enableUI: false });
let authenticatorId = null;

async function bodyText() {
  return (await page.locator("body").innerText().catch(() => "")).slice(0, 2000);
}

// The page the browser is on: its URL, title, text and (with `axe`) axe's serious and
// critical violations.
async function snapshot(cmd) {
  await page.waitForLoadState("load");
  const out = { url: page.url(), title: await page.title(), text: await bodyText() };
  if (cmd.axe) {
    const { violations } = await new AxeBuilder({ page }).analyze();
    out.axe = violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target) }));
  }
  return out;
}

// A client that asks the authenticator for less than the server does: every answer of
// Gatehouse that carries WebAuthn options is rewritten to ask for no user verification.
async function downgradeUserVerification(route) {
  const response = await route.fetch();
  const body = (await response.text())
    .replaceAll("&quot;userVerification&quot;:&quot;required&quot;", "&quot;userVerification&quot;:&quot;discouraged&quot;")
    .replaceAll('"userVerification":"required"', '"userVerification":"discouraged"');
  await route.fulfill({ response, body });
}

const handlers = {
  // A fresh virtual authenticator (the previous one, and its credentials, removed).
  async authenticator(cmd) {
    if (authenticatorId) await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
    const added = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        ctap2Version: "ctap2_1",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: cmd.user_verified ?? true,
        automaticPresenceSimulation: true,
      },
    });
    authenticatorId = added.authenticatorId;
    return { authenticator_id: authenticatorId };
  },
  // The authenticator's behaviour: `user_verified`, `bogus_signature`; and the client's:
  // `downgrade_uv` (ask the authenticator for no user verification).
  async set(cmd) {
    if ("user_verified" in cmd) {
      await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: cmd.user_verified });
    }
    if ("bogus_signature" in cmd) {
      await cdp.send("WebAuthn.setResponseOverrideBits", { authenticatorId, isBogusSignature: cmd.bogus_signature });
    }
    if ("downgrade_uv" in cmd) {
      if (cmd.downgrade_uv) await page.route(/\/oauth2\/(authorize|passkey\/options)/, downgradeUserVerification);
      else await page.unroute(/\/oauth2\/(authorize|passkey\/options)/, downgradeUserVerification);
    }
    return {};
  },
  // The authenticator's credentials, with their sign counts and private keys.
  async credentials() {
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    return { credentials };
  },
  // Puts a credential back as it was (a clone of an authenticator, counter and all).
  async put_credential(cmd) {
    await cdp.send("WebAuthn.removeCredential", { authenticatorId, credentialId: cmd.credential.credentialId });
    await cdp.send("WebAuthn.addCredential", { authenticatorId, credential: cmd.credential });
    return {};
  },
  async goto(cmd) {
    await page.goto(cmd.url);
    return snapshot(cmd);
  },
  async fill(cmd) {
    await page.getByLabel(cmd.label, { exact: true }).fill(cmd.value);
    return {};
  },
  // Clicks a button and waits for the page its form leads to (after the browser's WebAuthn
  // call, for a passkey form); with `expect_error`, for the message the page shows instead.
  async click(cmd) {
    const button = page.getByRole("button", { name: cmd.button, exact: true });
    if (cmd.expect_error) {
      await button.click();
      const alert = page.locator("[data-passkey-error]:not([hidden])");
      await alert.waitFor({ timeout: TIMEOUT_MS });
      return { error: await alert.innerText(), ...(await snapshot(cmd)) };
    }
    const navigated = page.waitForEvent("framenavigated", {
      predicate: (frame) => frame === page.mainFrame(),
      timeout: TIMEOUT_MS,
    });
    navigated.catch(() => {});
    await button.click();
    await navigated;
    return snapshot(cmd);
  },
  async password(cmd) {
    await page.getByLabel("Username", { exact: true }).fill(cmd.username);
    await page.getByLabel("Password", { exact: true }).fill(cmd.password);
    return handlers.click({ ...cmd, button: "Sign in" });
  },
};

const lines = createInterface({ input: process.stdin });
console.log(JSON.stringify({ ready: true, redirect_uri: redirectUri }));
for await (const line of lines) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
    const handler = handlers[cmd.op];
    if (!handler) throw new Error(`unknown op ${cmd.op}`);
    console.log(JSON.stringify({ ok: true, ...(await handler(cmd)) }));
  } catch (e) {
    console.log(
      JSON.stringify({ ok: false, error: { name: e.name, message: e.message }, url: page.url(), text: await bodyText() }),
    );
  }
}
await browser.close();
app.close();
