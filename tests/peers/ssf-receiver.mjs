// An OpenID Shared Signals (SSF 1.0) receiver written on npm `jose`, independent of Gatehouse's
// code: it reads the transmitter's metadata, gets client-credentials tokens, creates a push
// stream (RFC 8935) to an HTTP endpoint it serves itself and a poll stream (RFC 8936), verifies
// both (checking the verification SET and its `state`), then long-polls (returnImmediately
// false) and receives pushes. Every SET is verified with `jwtVerify` against the transmitter's
// JWKS: alg RS256, typ secevent+jwt, issuer, audience (the receiver's client id); no `exp`, no
// `sub`, exactly one event.
//
// Usage: node ssf-receiver.mjs <ssf-configuration URL> <push client id> <push secret>
//                              <poll client id> <poll secret>
// Prints one JSON line per step: {"step":"verified"} once both streams are verified; then for
// each stdin line {"await_session": SID} waits until a CAEP session-revoked for SID came by push
// and by long poll, and prints {"step":"session-revoked","push":SID,"poll":SID}. Exits when
// stdin closes. On failure prints {"error": "..."} and exits 1.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [configUrl, pushId, pushSecret, pollId, pollSecret] = process.argv.slice(2);
const PUSH = "urn:ietf:rfc:8935";
const POLL = "urn:ietf:rfc:8936";
const VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

function fail(message) {
  process.stdout.write(JSON.stringify({ error: String(message) }) + "\n");
  process.exit(1);
}
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(what, check, ms = 30000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main() {
  // Metadata: the SSF path rule puts the well-known string between host and path.
  const meta = await (await fetch(configUrl)).json();
  const u = new URL(configUrl);
  const expectedIssuer = u.origin + u.pathname.replace("/.well-known/ssf-configuration", "");
  if (meta.issuer !== expectedIssuer) throw new Error(`issuer ${meta.issuer} != ${expectedIssuer}`);
  if (meta.spec_version !== "1_0") throw new Error("spec_version");
  for (const m of [PUSH, POLL]) {
    if (!meta.delivery_methods_supported.includes(m)) throw new Error(`no ${m}`);
  }
  const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
  const oidc = await (await fetch(`${meta.issuer}/.well-known/openid-configuration`)).json();

  async function token(id, secret) {
    const res = await fetch(oidc.token_endpoint, {
      method: "POST",
      headers: {
        authorization: "Basic " + Buffer.from(`${id}:${secret}`).toString("base64"),
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "ssf.manage" }),
    });
    if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
    return (await res.json()).access_token;
  }

  async function verifySet(jwt, audience) {
    const { payload, protectedHeader } = await jwtVerify(jwt, jwks, {
      issuer: meta.issuer,
      audience,
      algorithms: ["RS256"],
      typ: "secevent+jwt",
    });
    if ("exp" in payload || "sub" in payload) throw new Error("a SET has no exp and no sub");
    if (Object.keys(payload.events ?? {}).length !== 1) throw new Error("one event per SET");
    if (payload.iat > Date.now() / 1000 + 5) throw new Error("iat in the future");
    if (protectedHeader.alg !== "RS256") throw new Error("alg");
    return payload;
  }

  async function api(tok, method, url, body) {
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  // The push endpoint: checks the Authorization header, verifies, answers 202 (400 with an
  // RFC 8935 error otherwise).
  const pushAuth = "Bearer " + randomBytes(16).toString("hex");
  const pushed = [];
  const server = createServer((req, res) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", async () => {
      try {
        if (req.headers.authorization !== pushAuth) throw new Error("authorization");
        if (req.headers["content-type"] !== "application/secevent+jwt") throw new Error("type");
        pushed.push(await verifySet(data, pushId));
        res.writeHead(202).end();
      } catch (e) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ err: "invalid_request", description: e.message }));
      }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const pushUrl = `http://127.0.0.1:${server.address().port}/ssf`;

  // The push stream, verified.
  const pushTok = await token(pushId, pushSecret);
  const created = await api(pushTok, "POST", meta.configuration_endpoint, {
    delivery: { method: PUSH, endpoint_url: pushUrl, authorization_header: pushAuth },
    events_requested: [SESSION_REVOKED],
    description: "jose receiver (push)",
  });
  if (created.status !== 201) throw new Error(`create push: ${created.status} ${JSON.stringify(created.body)}`);
  const pushStream = created.body;
  if (pushStream.aud !== pushId || pushStream.iss !== meta.issuer) throw new Error("stream iss/aud");
  const pushState = randomBytes(8).toString("hex");
  let r = await api(pushTok, "POST", meta.verification_endpoint, { stream_id: pushStream.stream_id, state: pushState });
  if (r.status !== 204) throw new Error(`verify push: ${r.status}`);
  await eventually("the pushed verification", () =>
    pushed.find((p) => p.events[VERIFICATION]?.state === pushState && p.sub_id?.id === pushStream.stream_id),
  );

  // The poll stream, verified.
  const pollTok = await token(pollId, pollSecret);
  const pc = await api(pollTok, "POST", meta.configuration_endpoint, { delivery: { method: POLL } });
  if (pc.status !== 201) throw new Error(`create poll: ${pc.status} ${JSON.stringify(pc.body)}`);
  const pollStream = pc.body;
  const pollUrl = pollStream.delivery.endpoint_url;
  const pollState = randomBytes(8).toString("hex");
  r = await api(pollTok, "POST", meta.verification_endpoint, { stream_id: pollStream.stream_id, state: pollState });
  if (r.status !== 204) throw new Error(`verify poll: ${r.status}`);
  const polled = [];
  let ack = [];
  async function pollOnce(returnImmediately) {
    const res = await api(pollTok, "POST", pollUrl, { returnImmediately, maxEvents: 10, ack });
    if (res.status !== 200) throw new Error(`poll: ${res.status} ${JSON.stringify(res.body)}`);
    ack = [];
    for (const [jti, jwt] of Object.entries(res.body.sets)) {
      const p = await verifySet(jwt, pollId);
      if (p.jti !== jti) throw new Error("jti");
      polled.push(p);
      ack.push(jti);
    }
  }
  const until = Date.now() + 30000;
  while (!polled.find((p) => p.events[VERIFICATION]?.state === pollState)) {
    if (Date.now() > until) throw new Error("no verification by poll");
    await pollOnce(true);
  }
  say({ step: "verified" });

  // From now on: long polls, one after another, acknowledging what came.
  let stopped = false;
  const longPolls = (async () => {
    while (!stopped) await pollOnce(false);
  })().catch((e) => fail(`long poll: ${e.message}`));

  const sessionIn = (list, sid) =>
    list.find((p) => p.events[SESSION_REVOKED] && p.sub_id?.session?.id === sid);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const { await_session: sid } = JSON.parse(line);
    await eventually("session-revoked by push", () => sessionIn(pushed, sid));
    await eventually("session-revoked by long poll", () => sessionIn(polled, sid));
    say({ step: "session-revoked", push: sid, poll: sid });
  }
  stopped = true;
  server.close();
  // The long poll in flight ends with its timeout; don't wait for it.
  void longPolls;
  process.exit(0);
}

main().catch((e) => fail(e.message ?? e));
