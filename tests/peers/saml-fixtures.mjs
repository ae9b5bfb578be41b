// Writes the SAML fixtures of crates/gatehouse-saml/tests/fixtures with npm `samlify` as the
// identity provider: its metadata, and Responses signed by it (assertion, response, both;
// SHA-1; by a key the metadata does not hold) for a fixed service provider at fixed times, and
// single-logout messages on the HTTP-Redirect binding. The tests pass a `now` inside the
// fixtures' window (2026-01-01T00:00:00Z to 00:05:00Z).
//
// xml-crypto (samlify's signer) has no ECDSA, so the ECDSA-SHA256 Response is signed by
// xmlsec1 (Debian `xmlsec1`) from the unsolicited one's text, with ec-key.pem; xmlsec1 also
// signs an AD FS-shaped Response and one whose canonicalization carries an InclusiveNamespaces
// PrefixList.
//
// Regenerate (the keys idp-key.pem, other-key.pem (RSA) and ec-key.pem (P-256) with their
// certificates are kept; make new ones with `openssl req -x509 -newkey rsa:2048 -nodes -days
// 36500 -subj /CN=...`, or `-newkey ec -pkeyopt ec_paramgen_curve:P-256`):
//   npm ci --prefix tests/peers && node tests/peers/saml-fixtures.mjs
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as samlify from "samlify";
import * as validator from "@authenio/samlify-node-xmllint";

samlify.setSchemaValidator(validator);

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "crates", "gatehouse-saml", "tests", "fixtures");
const read = (name) => readFileSync(join(out, name), "utf8");
// A PEM certificate's base64 body, as metadata and KeyInfo carry it.
const rsaCertOf = (name) => read(name).replace(/-----[^-]+-----|\s/g, "");
const write = (name, text) => writeFileSync(join(out, name), text);

const REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

export const SP_ENTITY = "https://gatehouse.test/pools/acme/saml2/metadata";
export const SP_ACS = "https://gatehouse.test/pools/acme/saml2/idpresponse";
export const SP_SLO = "https://gatehouse.test/pools/acme/saml2/logout";
const IDP_ENTITY = "https://idp.test/metadata";
const REQUEST_ID = "_gatehouse-request-0001";
const ISSUED = "2026-01-01T00:00:00Z";
const AUTHN = "2025-12-31T23:59:30Z";
const UNTIL = "2026-01-01T00:05:00Z";

function identityProvider(key, cert, signatureAlgorithm = RSA_SHA256) {
  return samlify.IdentityProvider({
    entityID: IDP_ENTITY,
    signingCert: read(cert),
    privateKey: read(key),
    wantAuthnRequestsSigned: true,
    requestSignatureAlgorithm: signatureAlgorithm,
    nameIDFormat: ["urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"],
    singleSignOnService: [
      { Binding: REDIRECT, Location: "https://idp.test/sso" },
      { Binding: POST, Location: "https://idp.test/sso" },
    ],
    singleLogoutService: [{ Binding: REDIRECT, Location: "https://idp.test/slo" }],
  });
}

function serviceProvider({ assertion, message }) {
  return samlify.ServiceProvider({
    entityID: SP_ENTITY,
    wantAssertionsSigned: assertion,
    wantMessageSigned: message,
    wantLogoutRequestSigned: true,
    wantLogoutResponseSigned: true,
    assertionConsumerService: [{ Binding: POST, Location: SP_ACS }],
    singleLogoutService: [{ Binding: REDIRECT, Location: SP_SLO }],
  });
}

const ATTRIBUTES = [
  ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", ["alice@example.com"]],
  ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", ["Alice"]],
  ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", ["Liddell"]],
  ["http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", ["staff", "admins"]],
];

// The Response as AD FS shapes it, with the fixture's fixed IDs and times.
function responseXml({ id, assertionId, inResponseTo, recipient = SP_ACS }) {
  const irt = inResponseTo ? ` InResponseTo="${inResponseTo}"` : "";
  const attributes = ATTRIBUTES.map(
    ([name, values]) =>
      `<saml:Attribute Name="${name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">${values
        .map((v) => `<saml:AttributeValue xsi:type="xs:string">${v}</saml:AttributeValue>`)
        .join("")}</saml:Attribute>`,
  ).join("");
  return (
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${ISSUED}" Destination="${SP_ACS}"${irt}>` +
    `<saml:Issuer>${IDP_ENTITY}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="${assertionId}" Version="2.0" IssueInstant="${ISSUED}">` +
    `<saml:Issuer>${IDP_ENTITY}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@example.com</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${UNTIL}" Recipient="${recipient}"${irt}/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${ISSUED}" NotOnOrAfter="${UNTIL}"><saml:AudienceRestriction><saml:Audience>${SP_ENTITY}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${AUTHN}" SessionIndex="_session-alice-1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` +
    `</saml:Assertion></samlp:Response>`
  );
}

async function response(name, { idp, sp, id, inResponseTo = REQUEST_ID, recipient }) {
  const xml = responseXml({ id: `_resp-${id}`, assertionId: `_assert-${id}`, inResponseTo, recipient });
  const { context } = await idp.createLoginResponse(sp, {}, "post", {}, {
    customTagReplacement: () => ({ id: `_resp-${id}`, context: xml }),
  });
  write(name, Buffer.from(context, "base64").toString("utf8"));
}

const idp = identityProvider("idp-key.pem", "idp-cert.pem");
write("idp-metadata.xml", idp.getMetadata());

await response("response-assertion-signed.xml", {
  idp, sp: serviceProvider({ assertion: true, message: false }), id: "a1",
});
await response("response-response-signed.xml", {
  idp, sp: serviceProvider({ assertion: false, message: true }), id: "r1",
});
await response("response-both-signed.xml", {
  idp, sp: serviceProvider({ assertion: true, message: true }), id: "b1",
});
await response("response-unsolicited.xml", {
  idp, sp: serviceProvider({ assertion: true, message: false }), id: "u1", inResponseTo: null,
});
await response("response-sha1.xml", {
  idp: identityProvider("idp-key.pem", "idp-cert.pem", RSA_SHA1),
  sp: serviceProvider({ assertion: true, message: false }), id: "s1",
});
// A bearer confirmation for another service provider's ACS, in a response sent to ours.
await response("response-other-recipient.xml", {
  idp, sp: serviceProvider({ assertion: true, message: false }), id: "w1",
  recipient: "https://other.test/saml2/idpresponse",
});
// Signed by a key the metadata does not hold, under the IdP's own name.
await response("response-other-key.xml", {
  idp: identityProvider("other-key.pem", "other-cert.pem"),
  sp: serviceProvider({ assertion: true, message: false }), id: "o1",
});

// Single logout on the HTTP-Redirect binding: the IdP's LogoutRequest to the SP, and its
// LogoutResponse to a request of the SP's. The query strings are kept as sent.
const sp = serviceProvider({ assertion: true, message: false });
const spWithIdpSlo = samlify.ServiceProvider({
  entityID: SP_ENTITY,
  wantLogoutRequestSigned: true,
  wantLogoutResponseSigned: true,
  assertionConsumerService: [{ Binding: POST, Location: SP_ACS }],
  singleLogoutService: [{ Binding: REDIRECT, Location: SP_SLO }],
});
const logoutRequest = idp.createLogoutRequest(spWithIdpSlo, "redirect", {
  logoutNameID: "alice@example.com",
  sessionIndex: "_session-alice-1",
}, {
  relayState: "after-logout",
  customTagReplacement: (template) => ({
    id: "_idp-logout-0001",
    context: template
      .replace("{ID}", "_idp-logout-0001")
      .replace("{IssueInstant}", ISSUED)
      .replace("{Destination}", SP_SLO)
      .replace("{Issuer}", IDP_ENTITY)
      .replace("{NameIDFormat}", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
      .replace("{NameID}", "alice@example.com")
      .replace("{SessionIndex}", "_session-alice-1"),
  }),
});
write("logout-request.query", new URL(logoutRequest.context).search.slice(1) + "\n");
const logoutResponse = idp.createLogoutResponse(sp, {}, "redirect", {
  customTagReplacement: (template) => ({
    id: "_idp-logout-response-0001",
    context: template
      .replace("{ID}", "_idp-logout-response-0001")
      .replace("{IssueInstant}", ISSUED)
      .replace("{Destination}", SP_SLO)
      .replace("{InResponseTo}", "_gatehouse-logout-0001")
      .replace("{Issuer}", IDP_ENTITY)
      .replace("{StatusCode}", "urn:oasis:names:tc:SAML:2.0:status:Success"),
  }),
});
write("logout-response.query", new URL(logoutResponse.context).search.slice(1) + "\n");
// ECDSA: the same assertion, signed by xmlsec1 with the P-256 key, and the metadata that
// names that key.
const ecTemplate = read("response-unsolicited.xml").replace(
  /<ds:SignedInfo>[\s\S]*<\/ds:Signature>/,
  (sig) =>
    sig
      .replace("xmldsig-more#rsa-sha256", "xmldsig-more#ecdsa-sha256")
      .replace(/<ds:DigestValue>[^<]*<\/ds:DigestValue>/, "<ds:DigestValue></ds:DigestValue>")
      .replace(/<ds:SignatureValue>[^<]*<\/ds:SignatureValue>/, "<ds:SignatureValue></ds:SignatureValue>")
      .replace(/<ds:KeyInfo>[\s\S]*<\/ds:KeyInfo>/, ""),
);
// Signs a template (a Response whose assertion holds an empty ds:Signature) with xmlsec1.
function xmlsec1Sign(template, key) {
  const work = mkdtempSync(join(tmpdir(), "saml-fixture-"));
  try {
    writeFileSync(join(work, "template.xml"), template);
    const signed = execFileSync("xmlsec1", [
      "--sign", "--privkey-pem", join(out, key),
      "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
      join(work, "template.xml"),
    ], { encoding: "utf8" });
    return signed.replace(/^<\?xml[^>]*\?>\n?/, "");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
write("response-ecdsa.xml", xmlsec1Sign(ecTemplate, "ec-key.pem"));

// AD FS's shape: SAML's namespace as the default on the assertion, a KeyInfo that changes the
// default namespace inside the signature, times with milliseconds, the UPN and role claims.
const emptySignature = (ref, inclusive = "") =>
  `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>` +
  `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#" />` +
  `<ds:SignatureMethod Algorithm="${RSA_SHA256}" /><ds:Reference URI="#${ref}"><ds:Transforms>` +
  `<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature" />` +
  `<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#">${inclusive}</ds:Transform></ds:Transforms>` +
  `<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256" /><ds:DigestValue></ds:DigestValue>` +
  `</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>` +
  `<KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>${rsaCertOf("idp-cert.pem")}</X509Certificate></X509Data></KeyInfo></ds:Signature>`;
const adfs =
  `<samlp:Response ID="_adfs-resp" Version="2.0" IssueInstant="2026-01-01T00:00:00.123Z" Destination="${SP_ACS}" Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified" InResponseTo="${REQUEST_ID}" xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` +
  `<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">${IDP_ENTITY}</Issuer>` +
  `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success" /></samlp:Status>` +
  `<Assertion ID="_adfs-assert" IssueInstant="2026-01-01T00:00:00.123Z" Version="2.0" xmlns="urn:oasis:names:tc:SAML:2.0:assertion">` +
  `<Issuer>${IDP_ENTITY}</Issuer>${emptySignature("_adfs-assert")}` +
  `<Subject><NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">CORP\\alice</NameID>` +
  `<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData InResponseTo="${REQUEST_ID}" NotOnOrAfter="2026-01-01T00:05:00.123Z" Recipient="${SP_ACS}" /></SubjectConfirmation></Subject>` +
  `<Conditions NotBefore="2026-01-01T00:00:00.123Z" NotOnOrAfter="2026-01-01T01:00:00.123Z"><AudienceRestriction><Audience>${SP_ENTITY}</Audience></AudienceRestriction></Conditions>` +
  `<AttributeStatement>` +
  `<Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"><AttributeValue>alice@corp.example</AttributeValue></Attribute>` +
  `<Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"><AttributeValue>alice@example.com</AttributeValue></Attribute>` +
  `<Attribute Name="http://schemas.microsoft.com/ws/2008/06/identity/claims/role"><AttributeValue>Domain Users</AttributeValue><AttributeValue>Finance &amp; Audit</AttributeValue></Attribute>` +
  `</AttributeStatement>` +
  `<AuthnStatement AuthnInstant="2025-12-31T23:59:30.456Z" SessionIndex="_adfs-session"><AuthnContext><AuthnContextClassRef>urn:federation:authentication:windows</AuthnContextClassRef></AuthnContext></AuthnStatement>` +
  `</Assertion></samlp:Response>`;
write("response-adfs.xml", xmlsec1Sign(adfs, "idp-key.pem"));

// A prefix the assertion uses only inside attribute values (xsi:type="xs:string"), declared on
// the Response alone: the signer names it in InclusiveNamespaces so that it is signed too.
const prefixed = read("response-unsolicited.xml")
  .replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, emptySignature("_assert-u1",
    `<ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs xsi"/>`))
  .replace(' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema"', "")
  .replace("<samlp:Response ", '<samlp:Response xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ');
write("response-prefixlist.xml", xmlsec1Sign(prefixed, "idp-key.pem"));
write(
  "idp-metadata-ec.xml",
  idp.getMetadata().replace(rsaCertOf("idp-cert.pem"), rsaCertOf("ec-cert.pem")),
);
console.log(`wrote the SAML fixtures to ${out}`);
