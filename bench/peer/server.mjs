// oidc-provider configured as close to Gatehouse's client-credentials setup as it allows:
// one confidential client (client_secret_basic), ES256-signed JWT access tokens for a resource,
// RFC 7662 introspection. Its in-memory adapter keeps grants in the process, where Gatehouse
// writes to SQLite. oidc-provider cannot introspect its JWT access tokens, so the introspection
// scenario runs it with opaque ones.
//
// For the authorization code scenario a second confidential client, `<client_id>-web`, holds
// the authorization_code grant (PKCE S256, client_secret_basic, RS256 ID tokens as Gatehouse
// signs them) with the loopback redirect URI <redirect_uri>. oidc-provider ships no sign-in
// page (its development one is disabled); `POST /interaction/<uid>/login` with
// `account=<id>` finishes an interaction through its interaction API instead: the account
// signs in and the client is granted `openid`. The benchmark does that once, then reuses the
// session cookie for every authorization.
// Usage: node server.mjs <port> <client_id> <client_secret> <jwt|opaque> [redirect_uri]
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const [port, clientId, clientSecret, format = "jwt", redirectUri = "http://127.0.0.1/cb"] =
  process.argv.slice(2);
const webClientId = `${clientId}-web`;
const { privateKey } = await generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: "ES256", use: "sig", kid: "bench" };
const { privateKey: rsaKey } = await generateKeyPair("RS256", {
  extractable: true,
  modulusLength: 2048,
});
const rsaJwk = { ...(await exportJWK(rsaKey)), alg: "RS256", use: "sig", kid: "bench-rs" };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
      scope: "api:read",
    },
    {
      client_id: webClientId,
      client_secret: clientSecret,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "RS256",
    },
  ],
  jwks: { keys: [jwk, rsaJwk] },
  scopes: ["openid", "api:read"],
  pkce: { required: () => true },
  // Every account exists; its ID token carries `sub` alone, as Gatehouse's does for the
  // `openid` scope.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The code flow's access token is for userinfo (opaque, kept by the adapter).
      defaultResource: (ctx, client) =>
        client?.clientId === clientId ? "urn:gatehouse:bench" : undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "api:read",
        accessTokenFormat: format,
        accessTokenTTL: 3600,
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.proxy = false;

// The programmatic sign-in: finishes an interaction with a signed-in account and a grant of
// the scopes the client asked for, and sends the browser back to the authorization.
provider.use(async (ctx, next) => {
  const m = ctx.method === "POST" && ctx.path.match(/^\/interaction\/([^/]+)\/login$/);
  if (!m) return next();
  const body = new URLSearchParams(await readBody(ctx.req));
  const accountId = body.get("account");
  if (!accountId) {
    ctx.status = 400;
    ctx.body = "account is required";
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== m[1]) {
    ctx.status = 400;
    ctx.body = "this interaction is not the browser's";
    return;
  }
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId },
    consent: { grantId },
  });
  ctx.status = 303;
  ctx.set("Location", returnTo);
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      data += chunk;
    });
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}
provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(`listening ${port}\n`);
});
