// oidc-provider configured as close to Gatehouse's client-credentials setup as it allows:
// one confidential client (client_secret_basic), ES256-signed JWT access tokens for a resource,
// RFC 7662 introspection. Its in-memory adapter keeps grants in the process, where Gatehouse
// writes to SQLite. oidc-provider cannot introspect its JWT access tokens, so the introspection
// scenario runs it with opaque ones.
// Usage: node server.mjs <port> <client_id> <client_secret> <jwt|opaque>
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const [port, clientId, clientSecret, format = "jwt"] = process.argv.slice(2);
const { privateKey } = await generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: "ES256", use: "sig", kid: "bench" };

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
  ],
  jwks: { keys: [jwk] },
  scopes: ["api:read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:gatehouse:bench",
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
provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(`listening ${port}\n`);
});
