// npm `oidc-provider`, the OpenID-certified provider, dressed as Gatehouse's browser sign-in so
// the browser relying party (rp-browser.mjs) can be proven against a real provider: issuers at
// `{base}/pools/{pool}`, Gatehouse's endpoint paths, a sign-in page with the inputs Username and
// Password and the button Sign in, a New password step, a logout confirmation with the button
// Sign out, no consent page, refresh tokens rotating on every use, one session cookie per pool.
// Usage: node oidc-provider-op.mjs CONFIG_JSON, where CONFIG_JSON is
//   {"pools": {"<pool>": {"clients": [<client metadata>],
//                         "users": {"<username>": {"password", "new_password_required"?, "email"?}}}}}
// Prints {"base": "http://127.0.0.1:PORT"} when it listens; exits when its standard input closes.
import { createServer } from "node:http";
import Provider from "oidc-provider";

// Standard output carries the ready line alone; the provider's notices go to standard error.
console.log = console.info = console.error;

const config = JSON.parse(process.argv[2] ?? "{}");
const server = createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:0;background:#f4f4f6;color:#1a1a1a}
main{max-width:22rem;margin:3rem auto;padding:1.5rem;background:#fff;border-radius:8px}
label{display:block;margin-top:1rem}input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.25rem;width:100%;padding:.6rem;font-size:1rem;background:#1d4ed8;color:#fff;border:0;border-radius:4px}
p[role=alert]{color:#b91c1c}</style></head>
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

function newPasswordForm(action) {
  return page(
    "Choose a new password",
    `<form method="post" action="${esc(action)}">
<label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" required>
<button type="submit">Save password</button></form>`,
  );
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

function makeProvider(slug, { clients = [], users = {} }) {
  const provider = new Provider(`${base}/pools/${slug}`, {
    clients,
    scopes: ["openid", "profile", "email", "offline_access"],
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username"] },
    routes: {
      authorization: "/oauth2/authorize",
      token: "/oauth2/token",
      userinfo: "/oauth2/userinfo",
      end_session: "/oauth2/logout",
      jwks: "/.well-known/jwks.json",
    },
    pkce: { required: () => true },
    cookies: {
      names: { session: `_s_${slug}`, interaction: `_i_${slug}`, resume: `_r_${slug}` },
      keys: ["test-only-cookie-key"],
    },
    findAccount: (_ctx, sub) =>
      users[sub] && {
        accountId: sub,
        claims: () => ({ sub, preferred_username: sub, email: users[sub].email, email_verified: true }),
      },
    // First-party clients: every client gets the scopes it asks for, without a consent page.
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
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    rotateRefreshToken: true,
    interactions: { url: (_ctx, interaction) => `/pools/${slug}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        logoutSource(ctx, form) {
          ctx.body = page(
            "Sign out",
            `${form}<p>Sign out of ${esc(slug)}?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`,
          );
        },
        postLogoutSuccessSource(ctx) {
          ctx.body = page("Signed out", "<p>You are signed out.</p>");
        },
      },
    },
  });
  provider.proxy = false;

  // The hosted pages: sign-in, then the new-password step for a user who must change it.
  async function interaction(req, res, rest) {
    const [uid, action] = rest.split("/");
    const details = await provider.interactionDetails(req, res);
    const here = `/pools/${slug}/interaction/${uid}`;
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
      if (user.new_password_required) {
        await provider.interactionResult(req, res, { pending: form.username });
        return html(newPasswordForm(`${here}/new-password`));
      }
      return provider.interactionFinished(req, res, { login: { accountId: form.username } });
    }
    if (action === "new-password" && details.result?.pending) {
      const user = users[details.result.pending];
      user.password = form.new_password;
      user.new_password_required = false;
      return provider.interactionFinished(req, res, { login: { accountId: details.result.pending } });
    }
    return html(page("Error", "<p>Unknown step.</p>"), 400);
  }
  return { provider, interaction };
}

const pools = new Map(
  Object.entries(config.pools ?? {}).map(([slug, pool]) => [slug, makeProvider(slug, pool)]),
);

server.on("request", async (req, res) => {
  const m = /^\/pools\/([^/?]+)(\/[^?]*)?(\?.*)?$/.exec(req.url);
  const pool = m && pools.get(m[1]);
  if (!pool) {
    res.writeHead(404).end();
    return;
  }
  try {
    const path = m[2] ?? "/";
    if (path.startsWith("/interaction/")) {
      await pool.interaction(req, res, path.slice("/interaction/".length));
      return;
    }
    // Mounted as connect would: the provider routes on the rest of the path.
    req.originalUrl = req.url;
    req.url = path + (m[3] ?? "");
    pool.provider.callback()(req, res);
  } catch (e) {
    process.stderr.write(`oidc-provider-op: ${e.stack ?? e}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});

process.stdout.write(JSON.stringify({ base }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
