// Discovers an issuer and runs a client credentials grant with `openid-client`, the way a
// relying party would, so its own checks (issuer equality, response shapes) judge Gatehouse.
// Usage: node openid-client-cc.mjs --address IP --issuer URL [--scope "s1 s2"]
//                                  [--resource URL] CLIENT_ID CLIENT_SECRET
// The CA to trust comes from NODE_EXTRA_CA_CERTS; TLS stays verified. Every host name
// resolves to IP, standing in for DNS. Prints {"issuer", "metadata", "token"} as JSON, or
// the error to stderr and exits 1.
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import * as client from "openid-client";
import { Agent, fetch } from "undici";

const { values: opts, positionals } = parseArgs({
  options: {
    address: { type: "string" },
    issuer: { type: "string" },
    scope: { type: "string" },
    resource: { type: "string" },
  },
  allowPositionals: true,
});
const [clientId, clientSecret] = positionals;
if (!opts.address || !isIP(opts.address) || !opts.issuer || !clientId || !clientSecret) {
  process.stderr.write(
    "usage: node openid-client-cc.mjs --address IP --issuer URL [--scope S] [--resource URL] CLIENT_ID CLIENT_SECRET\n",
  );
  process.exit(2);
}
// Node reads it only at start-up, so without it every TLS handshake would fail opaquely.
if (!process.env.NODE_EXTRA_CA_CERTS) {
  process.stderr.write("NODE_EXTRA_CA_CERTS must name the CA certificate to trust\n");
  process.exit(2);
}

// Only the address lookup is replaced; SNI and certificate checks still use the host name.
const family = isIP(opts.address);
const agent = new Agent({
  connect: {
    lookup: (_hostname, options, callback) =>
      options?.all
        ? callback(null, [{ address: opts.address, family }])
        : callback(null, opts.address, family),
  },
});
const customFetch = (url, init) => fetch(url, { ...init, dispatcher: agent });

function describe(e) {
  if (e instanceof Error) {
    const out = { name: e.name, message: e.message, code: e.code };
    for (const key of ["error", "error_description", "status"]) {
      if (e[key] !== undefined) out[key] = e[key];
    }
    if (e.cause !== undefined) out.cause = describe(e.cause);
    return out;
  }
  if (e instanceof Response || e?.constructor?.name === "Response") {
    return { status: e.status, url: e.url };
  }
  return e;
}

try {
  const config = await client.discovery(new URL(opts.issuer), clientId, clientSecret, undefined, {
    [client.customFetch]: customFetch,
  });
  const params = {};
  if (opts.scope !== undefined) params.scope = opts.scope;
  if (opts.resource !== undefined) params.resource = opts.resource;
  const token = await client.clientCredentialsGrant(config, params);
  const metadata = config.serverMetadata();
  process.stdout.write(JSON.stringify({ issuer: metadata.issuer, metadata, token }) + "\n");
} catch (e) {
  process.stderr.write(JSON.stringify(describe(e)) + "\n");
  process.exitCode = 1;
} finally {
  await agent.close();
}
