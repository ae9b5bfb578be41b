// npm `samlify` as a SAML 2.0 identity provider, the upstream directory a Gatehouse pool's
// service provider signs users in from (AD FS plays this part in production).
// Usage: node saml-idp.mjs CONFIG_JSON, where CONFIG_JSON is
//   {"sp_metadata_url": "<the pool's {base}/saml2/metadata>"   (or "sp_metadata": "<xml>"),
//    "users": {"<username>": {"password": "...", "name_id"?: "...", "attributes"?: {"<name>": "v" | ["v", ...]}}},
//    "sign": "assertion" | "response" | "both"}                 (default "assertion")
// Endpoints: GET /metadata; GET /sso (HTTP-Redirect AuthnRequest, signed) shows a sign-in form
// (inputs Username and Password, button Sign in) whose success POSTs the signed Response to the
// SP's assertion consumer service through an auto-submitting form; GET /idp-initiated?user=NAME
// signs that user in (after the form if no session) with an unsolicited Response; GET /slo
// takes the SP's LogoutRequest (answering with a signed LogoutResponse by redirect) or its
// LogoutResponse; GET /logout?user=NAME starts an IdP-initiated logout of that user at the SP.
// The IdP signs with the test key in crates/gatehouse-saml/tests/fixtures (never a real key).
// Prints {"base": "http://127.0.0.1:PORT"} when it listens; exits when its standard input closes.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as samlify from "samlify";
import * as validator from "@authenio/samlify-node-xmllint";

// Standard output carries the ready line alone.
console.log = console.info = console.error;
samlify.setSchemaValidator(validator);

const config = JSON.parse(process.argv[2] ?? "{}");
const users = config.users ?? {};
const sign = config.sign ?? "assertion";
if (!["assertion", "response", "both"].includes(sign)) throw new Error(`sign: ${sign}`);

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "..", "crates", "gatehouse-saml", "tests", "fixtures");
const REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const NAMEID_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

const server = createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const idp = samlify.IdentityProvider({
  entityID: `${base}/metadata`,
  signingCert: readFileSync(join(fixtures, "idp-cert.pem"), "utf8"),
  privateKey: readFileSync(join(fixtures, "idp-key.pem"), "utf8"),
  wantAuthnRequestsSigned: true,
  wantLogoutRequestSigned: true,
  wantLogoutResponseSigned: true,
  nameIDFormat: [NAMEID_FORMAT],
  singleSignOnService: [{ Binding: REDIRECT, Location: `${base}/sso` }],
  singleLogoutService: [{ Binding: REDIRECT, Location: `${base}/slo` }],
});

// The SP, from its metadata, read once when first needed (the pool may start after us).
let spPromise;
function serviceProvider() {
  spPromise ??= (async () => {
    let xml = config.sp_metadata;
    if (!xml) {
      const res = await fetch(config.sp_metadata_url, { redirect: "error" });
      if (!res.ok) throw new Error(`SP metadata: HTTP ${res.status}`);
      xml = await res.text();
    }
    // samlify signs the assertion when the SP's metadata asks for it, and the message when
    // the SP entity wants messages signed (or does not want signed assertions).
    if (sign === "response") xml = xml.replace('WantAssertionsSigned="true"', 'WantAssertionsSigned="false"');
    return samlify.ServiceProvider({
      metadata: xml,
      wantMessageSigned: sign !== "assertion",
      wantLogoutRequestSigned: true,
      wantLogoutResponseSigned: true,
    });
  })();
  return spPromise;
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:0;background:#f4f4f6;color:#1a1a1a}
main{max-width:22rem;margin:3rem auto;padding:1.5rem;background:#fff;border-radius:8px}
label{display:block;margin-top:1rem}input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.25rem;width:100%;padding:.6rem;font-size:1rem;background:#1d4ed8;color:#fff;border:0;border-radius:4px}
p[role=alert]{color:#b91c1c}</style></head>
<body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;

function signInForm(pending, error) {
  return page(
    "Sign in",
    `${error ? `<p role="alert">${esc(error)}</p>` : ""}
<form method="post" action="/login"><input type="hidden" name="pending" value="${esc(pending)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>`,
  );
}

// Sign-ins waiting for the form (by a random key), and the IdP's sessions (by cookie).
const pendings = new Map();
const sessions = new Map();
const token = () => randomBytes(16).toString("hex");

function cookieSession(req) {
  const m = /(?:^|;\s*)idp_session=([0-9a-f]+)/.exec(req.headers.cookie ?? "");
  return m ? sessions.get(m[1]) : undefined;
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers });
  res.end(body);
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

// The query of a redirect-bound message as samlify's redirect flow takes it (as a web
// framework would parse it: values decoded), with the signed octets exactly as they arrived.
function redirectRequest(req, param) {
  const raw = req.url.split("?")[1] ?? "";
  const encoded = {};
  for (const pair of raw.split("&")) {
    const i = pair.indexOf("=");
    if (i > 0) encoded[pair.slice(0, i)] = pair.slice(i + 1);
  }
  const octetString = [param, "RelayState", "SigAlg"]
    .filter((k) => encoded[k] !== undefined)
    .map((k) => `${k}=${encoded[k]}`)
    .join("&");
  const query = Object.fromEntries(new URLSearchParams(raw));
  return { request: { query, octetString }, relayState: query.RelayState };
}

const xmlEsc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// The Response samlify signs: AD FS's shape, the user's attributes, a session index.
function responseXml(sp, username, session, inResponseTo) {
  const user = users[username];
  const acs = sp.entityMeta.getAssertionConsumerService("post");
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000);
  const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
  const irt = inResponseTo ? ` InResponseTo="${xmlEsc(inResponseTo)}"` : "";
  const id = `_${token()}`;
  const attributes = Object.entries(user.attributes ?? {})
    .map(([name, values]) =>
      `<saml:Attribute Name="${xmlEsc(name)}">${[values].flat()
        .map((v) => `<saml:AttributeValue xsi:type="xs:string">${xmlEsc(v)}</saml:AttributeValue>`)
        .join("")}</saml:Attribute>`)
    .join("");
  const context =
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${iso(now)}" Destination="${xmlEsc(acs)}"${irt}>` +
    `<saml:Issuer>${xmlEsc(idp.entityMeta.getEntityID())}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="_${token()}" Version="2.0" IssueInstant="${iso(now)}">` +
    `<saml:Issuer>${xmlEsc(idp.entityMeta.getEntityID())}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="${NAMEID_FORMAT}">${xmlEsc(user.name_id ?? username)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${iso(later)}" Recipient="${xmlEsc(acs)}"${irt}/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso(now)}" NotOnOrAfter="${iso(later)}"><saml:AudienceRestriction><saml:Audience>${xmlEsc(sp.entityMeta.getEntityID())}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(session.authnInstant)}" SessionIndex="${session.index}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` +
    `</saml:Assertion></samlp:Response>`;
  return { id, context };
}

// Signs the Response and hands it to the browser as an auto-submitting form to the ACS.
async function postResponse(res, session, inResponseTo, relayState, headers = {}) {
  const sp = await serviceProvider();
  const { context, entityEndpoint } = await idp.createLoginResponse(sp, {}, "post", {}, {
    customTagReplacement: () => responseXml(sp, session.username, session, inResponseTo),
  });
  const relay = relayState ? `<input type="hidden" name="RelayState" value="${esc(relayState)}">` : "";
  send(res, 200, page("Signing in", `<form id="saml" method="post" action="${esc(entityEndpoint)}">
<input type="hidden" name="SAMLResponse" value="${esc(context)}">${relay}
<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById("saml").submit()</script>`), headers);
}

function startSession(username) {
  const sid = token();
  const session = { username, index: `_${token()}`, authnInstant: new Date() };
  sessions.set(sid, session);
  return { session, cookie: `idp_session=${sid}; Path=/; HttpOnly; SameSite=Lax` };
}

async function handle(req, res) {
  const url = new URL(req.url, base);
  if (req.method === "GET" && url.pathname === "/metadata") {
    return send(res, 200, idp.getMetadata(), { "content-type": "application/samlmetadata+xml" });
  }
  if (req.method === "GET" && url.pathname === "/sso") {
    const sp = await serviceProvider();
    const { request, relayState } = redirectRequest(req, "SAMLRequest");
    const parsed = await idp.parseLoginRequest(sp, "redirect", request);
    const pending = token();
    pendings.set(pending, { inResponseTo: parsed.extract.request.id, relayState });
    const session = cookieSession(req);
    if (session) {
      pendings.delete(pending);
      return postResponse(res, session, parsed.extract.request.id, relayState);
    }
    return send(res, 200, signInForm(pending));
  }
  if (req.method === "GET" && url.pathname === "/idp-initiated") {
    const username = url.searchParams.get("user") ?? "";
    const relayState = url.searchParams.get("RelayState") ?? undefined;
    const session = cookieSession(req);
    if (session && session.username === username) return postResponse(res, session, null, relayState);
    const pending = token();
    pendings.set(pending, { inResponseTo: null, relayState, user: username });
    return send(res, 200, signInForm(pending));
  }
  if (req.method === "POST" && url.pathname === "/login") {
    const form = await readForm(req);
    const pending = pendings.get(form.pending);
    if (!pending) return send(res, 400, page("Error", "<p>Unknown or finished sign-in.</p>"));
    const user = users[form.username];
    if (!user || user.password !== form.password || (pending.user && pending.user !== form.username)) {
      return send(res, 400, signInForm(form.pending, "Incorrect username or password."));
    }
    pendings.delete(form.pending);
    const { session, cookie } = startSession(form.username);
    return postResponse(res, session, pending.inResponseTo, pending.relayState, { "set-cookie": cookie });
  }
  if (req.method === "GET" && url.pathname === "/slo") {
    const sp = await serviceProvider();
    if (url.searchParams.has("SAMLRequest")) {
      const { request, relayState } = redirectRequest(req, "SAMLRequest");
      const parsed = await idp.parseLogoutRequest(sp, "redirect", request);
      for (const [sid, s] of sessions) {
        if ((users[s.username]?.name_id ?? s.username) === parsed.extract.nameID) sessions.delete(sid);
      }
      const { context } = idp.createLogoutResponse(sp, parsed, "redirect", { relayState });
      res.writeHead(302, { location: context, "set-cookie": "idp_session=; Path=/; Max-Age=0" });
      return res.end();
    }
    const { request } = redirectRequest(req, "SAMLResponse");
    await idp.parseLogoutResponse(sp, "redirect", request);
    return send(res, 200, page("Signed out", "<p>You are signed out.</p>"));
  }
  if (req.method === "GET" && url.pathname === "/logout") {
    const sp = await serviceProvider();
    const username = url.searchParams.get("user") ?? "";
    const entry = [...sessions.entries()].find(([, s]) => s.username === username);
    if (!entry) return send(res, 404, page("Error", "<p>No session for this user.</p>"));
    sessions.delete(entry[0]);
    const { context } = idp.createLogoutRequest(sp, "redirect", {
      logoutNameID: users[username]?.name_id ?? username,
      sessionIndex: entry[1].index,
    });
    res.writeHead(302, { location: context });
    return res.end();
  }
  return send(res, 404, page("Not found", "<p>Not found.</p>"));
}

server.on("request", (req, res) => {
  handle(req, res).catch((e) => {
    process.stderr.write(`saml-idp: ${e.stack ?? e}\n`);
    if (!res.headersSent) send(res, 400, page("Error", `<p>${esc(e.message ?? e)}</p>`));
    else res.end();
  });
});

process.stdout.write(JSON.stringify({ base }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
