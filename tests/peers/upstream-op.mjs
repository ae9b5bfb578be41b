// npm `oidc-provider`, the OpenID-certified provider, as an upstream identity provider a pool
// federates with: one issuer at `{base}`, confidential clients, users with profile claims, PKCE
// required, a sign-in page with the inputs Username and Password and the button Sign in, no
// consent page, and RP-initiated logout (a confirmation with the button Sign out).
// Usage: node upstream-op.mjs CONFIG_JSON, where CONFIG_JSON is
//   {"clients": [<client metadata>],
//    "users": {"<username>": {"password", "claims": {"sub", "email", "email_verified", "name",
//                                                    "given_name", "family_name"}}},
//    "rsa_pkcs8"?: "<base64 DER of an RSA private key>", "rsa_kid"?: "<its kid>",
//    "client_auth_methods"?: ["client_secret_basic", ...]}
// The RSA key (generated here when the config gives none) signs RS256 ID tokens, and RS384,
// RS512 or PS256 ones for clients that ask for them; EC P-256, P-384 and Ed25519 keys,
// generated here, sign ES256, ES384 and EdDSA ones.
// Prints {"base": "http://127.0.0.1:PORT"} when it listens; exits when its standard input closes.
import { createServer } from "node:http";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

// Standard output carries the ready line alone; the provider's notices go to standard error.
console.log = console.info = console.error;

const config = JSON.parse(process.argv[2] ?? "{}");
const users = config.users ?? {};
const server = createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const rsa = config.rsa_pkcs8
  ? createPrivateKey({ key: Buffer.from(config.rsa_pkcs8, "base64"), format: "der", type: "pkcs8" })
  : generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
// One key of each type: the RSA key (no `alg`: RS256, RS384, RS512 and PS256 all use it), EC
// P-256 and P-384, Ed25519. A client's id_token_signed_response_alg picks the key.
const generated = (type, options) => generateKeyPairSync(type, options).privateKey.export({ format: "jwk" });
const jwks = {
  keys: [
    { ...rsa.export({ format: "jwk" }), kid: config.rsa_kid ?? "rsa-1", use: "sig" },
    { ...generated("ec", { namedCurve: "P-256" }), kid: "ec-1", alg: "ES256", use: "sig" },
    { ...generated("ec", { namedCurve: "P-384" }), kid: "ec-384", alg: "ES384", use: "sig" },
    { ...generated("ed25519"), kid: "ed-1", alg: "EdDSA", use: "sig" },
  ],
};

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;

function signInForm(action, error) {
  return page(
    "Sign in",
    `${error ? `<p role="alert">${esc(error)}</p>` : ""}
<form method="post" action="${esc(action)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>`,
  );
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

const bySub = new Map(Object.values(users).map((u) => [u.claims.sub, u]));

// Clients authenticate with the first method the provider supports unless they say otherwise.
const authMethods = config.client_auth_methods ?? ["client_secret_basic", "client_secret_post"];
const clients = (config.clients ?? []).map((c) => ({ token_endpoint_auth_method: authMethods[0], ...c }));

const provider = new Provider(base, {
  clients,
  jwks,
  enabledJWA: {
    idTokenSigningAlgValues: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
  },
  scopes: ["openid", "profile", "email"],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "given_name", "family_name"],
  },
  clientAuthMethods: authMethods,
  pkce: { required: () => true },
  cookies: { keys: ["test-only-cookie-key"] },
  findAccount: (_ctx, sub) =>
    bySub.has(sub) && { accountId: sub, claims: () => ({ ...bySub.get(sub).claims, sub }) },
  // The pool is a first-party client of its upstream: no consent page.
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope ?? "openid");
    await grant.save();
    session.grantIdFor(client.clientId, grant.jti);
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource(ctx, form) {
        ctx.body = page(
          "Sign out",
          `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`,
        );
      },
      postLogoutSuccessSource(ctx) {
        ctx.body = page("Signed out", "<p>You are signed out.</p>");
      },
    },
  },
});
provider.proxy = false;

async function interaction(req, res, rest) {
  const [uid, action] = rest.split("/");
  await provider.interactionDetails(req, res);
  const here = `/interaction/${uid}`;
  const html = (body, status = 200) => {
    res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
    res.end(body);
  };
  if (req.method === "GET") return html(signInForm(`${here}/login`));
  const form = await readForm(req);
  if (action === "login") {
    const user = users[form.username];
    if (!user || user.password !== form.password) {
      return html(signInForm(`${here}/login`, "Incorrect username or password."), 400);
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.claims.sub } });
  }
  return html(page("Error", "<p>Unknown step.</p>"), 400);
}

const callback = provider.callback();
server.on("request", async (req, res) => {
  try {
    if (req.url.startsWith("/interaction/")) {
      await interaction(req, res, req.url.slice("/interaction/".length));
      return;
    }
    callback(req, res);
  } catch (e) {
    process.stderr.write(`upstream-op: ${e.stack ?? e}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});

process.stdout.write(JSON.stringify({ base }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
