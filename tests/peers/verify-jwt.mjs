// Verifies a JWT with the `jose` library against a JWKS fetched over HTTP, the way a
// downstream service (or an OpenID relying party) would.
// Usage: node verify-jwt.mjs <jwks_url> <issuer> <token> [typ]
// `typ` is the header type the token must have: `at+jwt` (access tokens, the default) or
// `JWT` (ID tokens). Prints the verified protected header and payload as JSON, or exits 1
// with the reason.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, issuer, token, typ = "at+jwt"] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    algorithms: ["ES256", "RS256", "EdDSA"],
    typ,
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  process.stderr.write(`${e.code ?? "ERR"}: ${e.message}\n`);
  process.exit(1);
}
