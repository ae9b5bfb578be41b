// The load generator of the authorization code scenario (bench/run.py starts it). wrk sends
// one request shape; a flow is two requests that depend on each other, each with fresh PKCE,
// state and nonce, so this drives them itself: <connections> flows at a time, each loop on
// its own keep-alive connection, for <duration> seconds. A flow is
//
//   GET <authorize>?…&code_challenge=S256(verifier)&state&nonce  with the SSO cookie
//     → 302/303 to the redirect URI with `code` and the same `state`
//   POST <token>  grant_type=authorization_code, code, redirect_uri, code_verifier, Basic
//     → 200 with `access_token` and an `id_token` whose `nonce` and `aud` are the flow's
//
// and anything else is an error (counted, and the first few printed). It prints one JSON
// object: flows, errors, statuses per step, flow latency p50/p99, and its own CPU seconds,
// so the runner can tell whether the driver, not the server, was the bottleneck.
// Usage: node driver.mjs '<json config>' (see bench/run.py, measure_code_flow).
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";

const config = JSON.parse(process.argv[2]);
const {
  authorize, // the authorization endpoint with response_type, client_id, redirect_uri, scope
  token, // the token endpoint
  client_id: clientId,
  client_secret: clientSecret,
  redirect_uri: redirectUri,
  cookie, // the Cookie header that carries the SSO session
  duration, // seconds
  connections,
} = config;

const basic = "Basic " + Buffer.from(`${clientId}:${clientSecret}`).toString("base64");
const b64url = (buf) => buf.toString("base64url");

function request(agent, url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

class FlowError extends Error {
  constructor(step, status, detail) {
    super(`${step} ${status}: ${detail}`);
    this.key = `${step} ${status}`;
  }
}

function decodeJwtPayload(jwt) {
  const parts = String(jwt).split(".");
  if (parts.length !== 3) throw new Error("not a JWS compact serialisation");
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

async function flow(agent, statuses) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash("sha256").update(verifier).digest());
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const url =
    `${authorize}&state=${state}&nonce=${nonce}` +
    `&code_challenge=${challenge}&code_challenge_method=S256`;
  const a = await request(agent, url, { headers: { Cookie: cookie } });
  statuses[`authorize ${a.status}`] = (statuses[`authorize ${a.status}`] || 0) + 1;
  const location = a.headers.location;
  if ((a.status !== 302 && a.status !== 303) || !location) {
    throw new FlowError("authorize", a.status, a.body.toString("utf8").slice(0, 300));
  }
  const back = new URL(location, authorize);
  if (`${back.origin}${back.pathname}` !== redirectUri) {
    throw new FlowError("authorize", a.status, `redirected elsewhere: ${location}`);
  }
  const code = back.searchParams.get("code");
  if (!code || back.searchParams.get("state") !== state) {
    throw new FlowError("authorize", a.status, `no code or another state: ${location}`);
  }
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  }).toString();
  const t = await request(agent, token, {
    method: "POST",
    headers: {
      Authorization: basic,
      "Content-Type": "application/x-www-form-urlencoded",
      "Content-Length": Buffer.byteLength(form),
    },
    body: form,
  });
  statuses[`token ${t.status}`] = (statuses[`token ${t.status}`] || 0) + 1;
  const text = t.body.toString("utf8");
  if (t.status !== 200) throw new FlowError("token", t.status, text.slice(0, 300));
  let tokens, claims;
  try {
    tokens = JSON.parse(text);
    claims = decodeJwtPayload(tokens.id_token);
  } catch (e) {
    throw new FlowError("token", t.status, `no ID token (${e.message}): ${text.slice(0, 300)}`);
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!tokens.access_token || claims.nonce !== nonce || !aud.includes(clientId) || !claims.sub) {
    throw new FlowError("token", t.status, `wrong tokens: ${text.slice(0, 300)}`);
  }
}

const latencies = [];
const statuses = {};
const errors = {};
const samples = [];
let flows = 0;
const cpuBefore = process.cpuUsage();
const started = performance.now();
const deadline = started + duration * 1000;

async function loop() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  while (performance.now() < deadline) {
    const t0 = performance.now();
    try {
      await flow(agent, statuses);
      latencies.push(performance.now() - t0);
      flows += 1;
    } catch (e) {
      const key = e.key || `connection ${e.code || e.message}`;
      errors[key] = (errors[key] || 0) + 1;
      if (samples.length < 5) samples.push(e.message);
    }
  }
  agent.destroy();
}

await Promise.all(Array.from({ length: connections }, loop));
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((x, y) => x - y);
const pick = (q) =>
  latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0;
process.stdout.write(
  JSON.stringify({
    flows,
    errors: Object.values(errors).reduce((s, n) => s + n, 0),
    error_kinds: errors,
    error_samples: samples,
    statuses,
    elapsed_s: elapsed,
    flows_per_s: flows / elapsed,
    p50_ms: pick(0.5),
    p99_ms: pick(0.99),
    driver_cpu_s: (cpu.user + cpu.system) / 1e6,
  }) + "\n",
);
