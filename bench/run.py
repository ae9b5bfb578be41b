#!/usr/bin/env python3
"""Gatehouse's benchmark: one command that prints the whole table.

Starts `gatehouse serve` on SQLite in a scratch folder, and then on a scratch PostgreSQL database
(GATEHOUSE_BENCH_POSTGRES_URL names the server; `--backend` picks one), seeds it, drives each
scenario with wrk
over loopback with keep-alive (bounded in time), and prints, per scenario: requests/s, p50 and
p99 latency, server CPU seconds, requests per server CPU-second, and peak server memory. The
authorization code scenario chains two requests per flow, so bench/flow/driver.mjs drives it
and its rows count whole flows. The client-credentials, introspection and authorization code
scenarios also run against npm `oidc-provider` in the same run. Start-up time and idle memory
of `gatehouse serve` come first.

    bench/run.py              # the full run, SQLite and PostgreSQL (about 10 minutes on 2 cores)
    bench/run.py --smoke      # seconds: proves the benchmark still works
    bench/run.py --only 'authorization code'   # the scenarios whose name contains this
    bench/run.py --only hooks --no-peer --backend sqlite   # tenant hooks (WebAssembly) alone
"""

import argparse
import base64
import collections
import hashlib
import hmac
import html
import http.client as httpclient
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRK_SCRIPT = os.path.join(ROOT, "bench", "wrk", "request.lua")
PEER_DIR = os.path.join(ROOT, "bench", "peer")
FLOW_DRIVER = os.path.join(ROOT, "bench", "flow", "driver.mjs")
CODE_FLOW = "authorization code (SSO session)"
# The code flow's redirect URI: a loopback one, as a native app's; nothing listens there (the
# driver reads the code from the redirect and never follows it).
REDIRECT_URI = "http://127.0.0.1:8999/cb"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ADMIN_PASSWORD = "bench-admin-password-1"
USER_PASSWORD = "bench-user-password-1"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid, field):
    """VmRSS (resident now) or VmHWM (peak resident) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s=30.0):
    """Polls until the URL answers; returns the seconds it took."""
    start = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.perf_counter() - start > deadline_s:
            raise RuntimeError(f"{url} did not answer within {deadline_s}s")
        time.sleep(0.002)


class Gatehouse:
    def __init__(self, binary, workdir, port, extra_env):
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = dict(
            os.environ,
            GATEHOUSE_LISTEN=f"127.0.0.1:{port}",
            GATEHOUSE_PUBLIC_URL=self.base,
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
            **extra_env,
        )
        self.proc = None

    def cli(self, *args, stdin=None):
        out = subprocess.run(
            [self.binary, *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def start(self):
        """Starts the server; returns seconds until /healthz answered."""
        self.proc = subprocess.Popen(
            [self.binary, "serve"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.workdir, "serve.log"), "a"),
        )
        return wait_http(self.base + "/healthz")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


class Peer:
    """npm oidc-provider, the OpenID-certified provider we compare with."""

    CLIENT_ID = "bench"
    CLIENT_SECRET = "bench-secret-0123456789abcdef"

    WEB_CLIENT_ID = "bench-web"  # server.mjs: the authorization code client

    def __init__(self, fmt):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["node", "server.mjs", str(self.port), self.CLIENT_ID, self.CLIENT_SECRET, fmt,
             REDIRECT_URI],
            cwd=PEER_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(self.base + "/.well-known/openid-configuration")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------- HTTP helpers


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = "application/x-www-form-urlencoded"


class Browser:
    """Just enough of a browser for one sign-in: requests that do not follow redirects, and a
    cookie jar that keeps every cookie it is given (paths ignored; one host)."""

    def __init__(self):
        self.cookies = {}

    def header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def session_cookie(self, prefix):
        """The Cookie header of the cookies named prefix… alone (the single sign-on session's;
        the sign-in's CSRF and interaction cookies stay behind)."""
        kept = [f"{k}={v}" for k, v in self.cookies.items() if k.startswith(prefix)]
        if not kept:
            raise RuntimeError(f"the sign-in set no {prefix}… cookie: {sorted(self.cookies)}")
        return "; ".join(kept)

    def request(self, method, url, body=None, headers=None):
        u = urllib.parse.urlsplit(url)
        conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            headers = dict(headers or {})
            if self.cookies:
                headers["Cookie"] = self.header()
            conn.request(method, u.path + ("?" + u.query if u.query else ""), body, headers)
            res = conn.getresponse()
            text = res.read().decode("utf-8", "replace")
            for name, value in res.getheaders():
                if name.lower() != "set-cookie":
                    continue
                pair, _, attrs = value.partition(";")
                k, _, v = pair.strip().partition("=")
                if not v or re.search(r"max-age=0\b|expires=thu, 01 jan 1970", attrs, re.I):
                    self.cookies.pop(k, None)
                else:
                    self.cookies[k] = v
            return res.status, res.getheader("Location"), text
        finally:
            conn.close()


def pkce_pair():
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_query(client_id):
    """The authorization request's fixed part; the driver adds state, nonce and PKCE."""
    return urllib.parse.urlencode({"response_type": "code", "client_id": client_id,
                                   "redirect_uri": REDIRECT_URI, "scope": "openid"})


def first_authorize_url(endpoint, client_id):
    _, challenge = pkce_pair()
    return (f"{endpoint}?{authorize_query(client_id)}&state=sign-in&nonce=sign-in"
            f"&code_challenge={challenge}&code_challenge_method=S256")


def code_of(step, status, location, text):
    """The code a redirect to the client carries; anything else ends the run."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location or "").query)
    if status not in (302, 303) or not (location or "").startswith(REDIRECT_URI) or "code" not in query:
        raise RuntimeError(f"{step}: expected a redirect with a code, got {status} "
                           f"{location!r} {text[:300]!r}")
    return query["code"][0]


def gatehouse_sso_cookie(pool_url, client_id, username, password):
    """Signs in once through Gatehouse's hosted sign-in page (GET authorize: the form, its
    CSRF cookie and sealed request; POST the password step) and answers the Cookie header
    that carries the SSO session."""
    b = Browser()
    endpoint = pool_url + "/oauth2/authorize"
    status, _, page = b.request("GET", first_authorize_url(endpoint, client_id))
    fields = {k: html.unescape(v) for k, v in
              re.findall(r'name="(request|csrf)" value="([^"]*)"', page)}
    if status != 200 or set(fields) != {"request", "csrf"}:
        raise RuntimeError(f"gatehouse sign-in page: {status} {page[:300]!r}")
    form = urllib.parse.urlencode({"step": "password", **fields, "username": username,
                                   "password": password})
    status, location, text = b.request("POST", endpoint, form, {"Content-Type": FORM})
    code_of("gatehouse sign-in", status, location, text)
    return b.session_cookie("gatehouse_sso_")


def peer_session_cookie(base, client_id, account):
    """Signs in once at oidc-provider: the authorization goes to an interaction, which
    server.mjs finishes programmatically (login and grant); resuming it answers with a code and
    the session cookie."""
    b = Browser()
    status, location, text = b.request("GET", first_authorize_url(base + "/auth", client_id))
    if status not in (302, 303) or "/interaction/" not in (location or ""):
        raise RuntimeError(f"oidc-provider authorize: {status} {location!r} {text[:300]!r}")
    interaction = urllib.parse.urljoin(base + "/", location)
    status, location, text = b.request("POST", interaction + "/login",
                                       urllib.parse.urlencode({"account": account}),
                                       {"Content-Type": FORM})
    if status != 303 or not location:
        raise RuntimeError(f"oidc-provider login: {status} {location!r} {text[:300]!r}")
    status, location, text = b.request("GET", urllib.parse.urljoin(base + "/", location))
    code_of("oidc-provider resume", status, location, text)
    return b.session_cookie("_session")


# ---------------------------------------------------------------- wrk


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def run_wrk(url, method, duration, connections, body="", content_type="", auth=""):
    env = dict(
        os.environ,
        BENCH_METHOD=method,
        BENCH_BODY=body,
        BENCH_CONTENT_TYPE=content_type,
        BENCH_AUTH=auth,
    )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", WRK_SCRIPT, url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    out = done.stdout
    found = [re.search(p, out, re.M) for p in (r"(\d+) requests in", r"Requests/sec:\s+([\d.]+)",
                                                r"^\s+50%\s+(\S+)$", r"^\s+99%\s+(\S+)$")]
    if not all(found):
        raise RuntimeError(f"wrk's summary for {method} {url} could not be read:\n{out}{done.stderr}")
    total, rps = int(found[0].group(1)), float(found[1].group(1))
    if total == 0 or not all(re.match(r"[\d.]+(us|ms|s|m)$", f.group(1)) for f in found[2:]):
        # No request completed within the run (wrk then prints its percentiles as "-nan").
        raise RuntimeError(f"wrk completed no request for {method} {url}:\n{out}{done.stderr}")
    p50, p99 = parse_ms(found[2].group(1)), parse_ms(found[3].group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    sock = re.search(r"Socket errors: (.*)", out)
    statuses = {int(k): int(v) for k, v in re.findall(r"^status (\d+): (\d+)$", out, re.M)}
    return {
        "statuses": statuses,
        "requests": total,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": errors,
        "socket_errors": sock.group(1) if sock else "",
    }


def measure(pid, name, url, method, args, **request):
    before = cpu_seconds(pid)
    result = run_wrk(url, method, args.duration, args.connections, **request)
    cpu = cpu_seconds(pid) - before
    result.update(
        scenario=name,
        server_cpu_s=cpu,
        per_cpu_s=result["requests"] / cpu if cpu > 0 else float("nan"),
        peak_mb=memory_mb(pid, "VmHWM"),
    )
    log(
        f"  {name}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.2f} ms, "
        f"{result['per_cpu_s']:.0f} req/CPU-s, statuses {result['statuses']}"
    )
    return result


def measure_code_flow(pid, name, args, authorize, token, client_id, client_secret, cookie):
    """Full authorization code flows with a session cookie, driven by bench/flow/driver.mjs
    (the same connections and duration as the wrk scenarios); the server's CPU is measured
    around it as around wrk."""
    config = {"authorize": f"{authorize}?{authorize_query(client_id)}", "token": token,
              "client_id": client_id, "client_secret": client_secret,
              "redirect_uri": REDIRECT_URI, "cookie": cookie, "duration": args.duration,
              "connections": args.connections}
    before = cpu_seconds(pid)
    out = subprocess.run(["node", FLOW_DRIVER, json.dumps(config)], capture_output=True,
                         text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    d = json.loads(out)
    result = {
        "scenario": name,
        "statuses": d["statuses"],
        "requests": d["flows"],
        "rps": d["flows_per_s"],
        "p50_ms": d["p50_ms"],
        "p99_ms": d["p99_ms"],
        "non_2xx": d["errors"],
        "socket_errors": "",
        "errors": d["error_kinds"],
        "error_samples": d["error_samples"],
        "driver_cpu_s": d["driver_cpu_s"],
        "driver_core_share": d["driver_cpu_s"] / d["elapsed_s"],
        "server_cpu_s": cpu,
        "per_cpu_s": d["flows"] / cpu if cpu > 0 else float("nan"),
        "peak_mb": memory_mb(pid, "VmHWM"),
    }
    log(f"  {name}: {result['rps']:.0f} flows/s, p99 {result['p99_ms']:.2f} ms, "
        f"{result['per_cpu_s']:.0f} flows/CPU-s, statuses {result['statuses']}; driver "
        f"{result['driver_cpu_s']:.2f} CPU s ({100 * result['driver_core_share']:.0f}% of a core)")
    if d["errors"]:
        log(f"  {name}: {d['errors']} failed flows {d['error_kinds']}")
        for sample in d["error_samples"]:
            log(f"    {sample}")
    return result


# ---------------------------------------------------------------- flood


def hash_counts(base):
    """The server's password hashing counts from /metrics: computed, abandoned, refused."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'^gatehouse_password_hashes_total\{outcome="(\w+)"\} (\d+)$', text, re.M)}


def sign_in_flood(base, path, body, abandoned, real_clients=4):
    """Real sign-ins during a flood of `abandoned` sign-in requests, each sent whole on a new
    connection that is closed at once. Returns the real sign-ins' latencies and statuses."""
    url = urllib.parse.urlsplit(base)
    host, port = url.hostname, url.port
    raw = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    stop = threading.Event()
    latencies, statuses, lock = [], collections.Counter(), threading.Lock()

    def real():
        conn = httpclient.HTTPConnection(host, port, timeout=60)
        while not stop.is_set():
            start = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[res.status] += 1

    def flood(n):
        for _ in range(n):
            with socket.create_connection((host, port)) as s:
                s.sendall(raw)

    before = hash_counts(base)
    reals = [threading.Thread(target=real) for _ in range(real_clients)]
    for t in reals:
        t.start()
    time.sleep(0.5)
    started = time.perf_counter()
    floods = [threading.Thread(target=flood, args=(abandoned // 4,)) for _ in range(4)]
    for t in floods:
        t.start()
    for t in floods:
        t.join()
    flood_s = time.perf_counter() - started
    time.sleep(1.0)
    stop.set()
    for t in reals:
        t.join()
    after = hash_counts(base)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    result = {
        "abandoned_sent": abandoned // 4 * 4,
        "flood_s": flood_s,
        "real": len(latencies),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": latencies[-1],
        "statuses": dict(statuses),
        "hashes": {k: after.get(k, 0) - before.get(k, 0) for k in after},
    }
    log(f"  sign-in during a flood: {result}")
    return result


# ---------------------------------------------------------------- seeding


def seed_users(db_path, pool_slug, count):
    """Inserts `count` confirmed users straight into the SQLite schema of
    crates/gatehouse-store/migrations/sqlite (the API would spend minutes hashing
    temporary passwords); the listing scenario then reads them through the API."""
    db = sqlite3.connect(db_path, timeout=30)
    pool_id = db.execute("SELECT id FROM pools WHERE slug = ?", (pool_slug,)).fetchone()[0]
    now = int(time.time())
    rows = []
    for i in range(count):
        name = f"user{i:06d}"
        attributes = json.dumps(
            {"email": f"{name}@bench.example", "name": f"User {i}", "roles": []}
        )
        rows.append(
            (pool_id, str(uuid.uuid4()), name, 1, "CONFIRMED", attributes, "none", now, now)
        )
    db.executemany(
        "INSERT INTO users (pool_id, id, username, enabled, status, attributes, mfa, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()
    db.close()


class PostgresDatabase:
    """A scratch database on the server named by GATEHOUSE_BENCH_POSTGRES_URL (default: the
    test suite's), made and dropped with psql."""

    def __init__(self):
        self.server = os.environ.get("GATEHOUSE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        self.name = f"gh_bench_{uuid.uuid4().hex}"
        psql(self.server, f"CREATE DATABASE {self.name}")
        self.url = self.server.rsplit("/", 1)[0] + "/" + self.name

    def drop(self):
        psql(self.server, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def psql(url, sql, stdin=None):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAq", "-c", sql],
                         input=stdin, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def seed_users_postgres(url, pool_slug, count):
    """The PostgreSQL twin of seed_users: COPY into the schema of
    crates/gatehouse-store/migrations/postgres."""
    pool_id = psql(url, f"SELECT id FROM pools WHERE slug = '{pool_slug}'")
    now = int(time.time())
    lines = []
    for i in range(count):
        name = f"user{i:06d}"
        attributes = json.dumps(
            {"email": f"{name}@bench.example", "name": f"User {i}", "roles": []}
        )
        lines.append("\t".join(
            [pool_id, str(uuid.uuid4()), name, "1", "CONFIRMED", attributes, "none",
             str(now), str(now)]))
    psql(url, "\\copy users (pool_id, id, username, enabled, status, attributes, mfa, "
              "created_at, updated_at) FROM STDIN", stdin="\n".join(lines) + "\n")


# ---------------------------------------------------------------- the run


def build_binary():
    log("building gatehouse and the gatehouse-verify example service (release)…")
    subprocess.run(["cargo", "build", "--release", "-p", "gatehouse"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-p", "gatehouse-saml", "--examples"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-p", "gatehouse-verify", "--examples"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-p", "gatehouse-hooks", "--features",
                    "test-support", "--examples"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "gatehouse")


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, {platform.system()} {platform.release()}"


def run_gatehouse(binary, args, backend):
    """Gatehouse's scenarios on one backend: start-up, seeding, the measured scenarios, and
    the raw argon2id rate. Returns what the report prints."""
    results = {"scenarios": []}
    database = PostgresDatabase() if backend == "postgres" else None
    try:
        with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as work:
            return _run_gatehouse(binary, args, backend, database, work, results)
    finally:
        if database:
            database.drop()


def _run_gatehouse(binary, args, backend, database, work, results):
    # A smoke run proves the scenarios work, not how fast: cheap hashing keeps it seconds
    # long even on a debug build.
    env = {"GATEHOUSE_PASSWORD_HASHING__MEMORY_KIB": "1024",
           "GATEHOUSE_PASSWORD_HASHING__ITERATIONS": "1"} if args.smoke else {}
    if database:
        # PostgreSQL needs the master key given (every instance shares it).
        key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        env.update(GATEHOUSE_DATABASE_URL=database.url, GATEHOUSE_MASTER_KEY=key)
    g = Gatehouse(binary, work, free_port(), env)

    # Start-up: the first start creates the database, the staff pool and its key.
    first_start = g.start()
    g.stop()
    starts = []
    for _ in range(3 if args.smoke else 5):
        starts.append(g.start())
        g.stop()
    results["startup_first_ms"] = first_start * 1000
    results["startup_ms"] = sorted(starts)[len(starts) // 2] * 1000

    # Seed: a pool, a client that may impersonate, an administrator, a user, many users.
    g.cli("pool", "create", "bench")
    client = json.loads(
        g.cli("client", "create", "--pool", "bench", "--name", "bench",
              "--scope", "user:Impersonate", "--json")
    )
    g.cli("user", "create", "--pool", "bench", "admin", "--email", "admin@bench.example",
          "--name", "Admin", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    g.cli("user", "create", "--pool", "bench", "target", "--email", "target@bench.example",
          "--name", "Target", "--password-stdin", stdin=USER_PASSWORD)
    # The revocation scenario's user: one session at a time (the other scenarios leave
    # "target" with thousands, each of which a sign-out revokes with an event of its own).
    g.cli("user", "create", "--pool", "bench", "leaver", "--email", "leaver@bench.example",
          "--name", "Leaver", "--password-stdin", stdin=USER_PASSWORD)
    web = json.loads(
        g.cli("client", "create", "--pool", "bench", "--name", "web", "--redirect-uri",
              REDIRECT_URI, "--grant", "authorization_code", "--json")
    )
    feed_client = json.loads(
        g.cli("client", "create", "--pool", "bench", "--name", "verifier",
              "--scope", "auth:RetrieveRevocations", "--json")
    )
    listing = selected(args, "list users")
    if listing and database:
        seed_users_postgres(database.url, "bench", args.users)
    elif listing:
        seed_users(os.path.join(work, "gatehouse.db"), "bench", args.users)

    g.start()
    pid = g.proc.pid
    time.sleep(1.0)
    results["idle_mb"] = memory_mb(pid, "VmRSS")
    pool = g.base + "/pools/bench"
    cid, secret = client["client_id"], client["client_secret"]
    auth = basic(cid, secret)
    token = http("POST", pool + "/oauth2/token", b"grant_type=client_credentials",
                 {"Authorization": auth, "Content-Type": FORM})["access_token"]
    sign_in = lambda user, pw: json.dumps({"flow": "USER_PASSWORD", "client_id": cid,
                                           "client_secret": secret, "username": user,
                                           "password": pw})
    admin = http("POST", pool + "/api/auth/initiate", sign_in("admin", ADMIN_PASSWORD).encode(),
                 {"Content-Type": "application/json"})["access_token"]
    if listing:
        listed = http("GET", pool + "/api/user-management/users?limit=60", None,
                      {"Authorization": "Bearer " + admin})
        assert len(listed["users"]) == 60 and listed["next"], "seeded users are not listed"

    log(f"gatehouse on {backend} ({args.duration}s per scenario, {args.connections} connections):")

    def run(name, *a, **k):
        if selected(args, name):
            results["scenarios"].append(measure(pid, name, *a, args=args, **k))

    run("client-credentials token", pool + "/oauth2/token", "POST",
        body="grant_type=client_credentials", content_type=FORM, auth=auth)
    run("introspection", pool + "/oauth2/introspect", "POST",
        body="token=" + token, content_type=FORM, auth=auth)
    run("impersonation", pool + "/api/user-management/users/target/impersonate", "POST",
        auth="Bearer " + token)
    if selected(args, CODE_FLOW):
        cookie = gatehouse_sso_cookie(pool, web["client_id"], "target", USER_PASSWORD)
        results["scenarios"].append(measure_code_flow(
            pid, CODE_FLOW, args, pool + "/oauth2/authorize", pool + "/oauth2/token",
            web["client_id"], web["client_secret"], cookie))
    run("password sign-in", pool + "/api/auth/initiate", "POST",
        body=sign_in("target", USER_PASSWORD), content_type="application/json")
    if selected(args, "password sign-in during a flood"):
        results["flood"] = sign_in_flood(
            g.base, "/pools/bench/api/auth/initiate", sign_in("target", USER_PASSWORD).encode(),
            200 if args.smoke else 5000)
    run(f"list users, first page ({args.users:,} users)",
        pool + "/api/user-management/users?limit=60", "GET", auth="Bearer " + admin)
    middle = f"user{args.users // 2:06d}"
    run(f"list users, middle page ({args.users:,} users)",
        pool + f"/api/user-management/users?limit=60&cursor={middle}", "GET",
        auth="Bearer " + admin)
    if selected(args, CUSTOM_AUTH):
        results["scenarios"].append(custom_auth_rate(g, pid, pool, args, work))
    results["peak_mb"] = memory_mb(pid, "VmHWM")
    # Last: it signs users out.
    if selected(args, REVOCATION):
        example = os.path.join(os.path.dirname(g.binary), "examples", VERIFY_EXAMPLE)
        results["revocation"] = revocation_latency(
            example, pool, admin, sign_in("leaver", USER_PASSWORD).encode(), feed_client,
            3 if args.smoke else 30, work)
    g.stop()

    with open(os.path.join(work, "serve.log")) as f:
        results["server_log_tail"] = f.readlines()[-20:]
    if selected(args, "password sign-in"):
        rate = json.loads(g.cli("hash-rate", "--seconds", "1" if args.smoke else "5", "--json"))
        results["argon2_raw_per_s"] = rate["hashes_per_second"]
        results["argon2"] = rate
    return results


CUSTOM_AUTH = "CUSTOM_AUTH sign-in through three WebAssembly hooks"


def custom_auth_rate(g, pid, pool, args, work):
    """Cognito's CUSTOM_AUTH through the server: the pool's Define, Create and Verify hooks are
    the WAT custom-auth hook (set with the CLI, compiled then); each sign-in is InitiateAuth
    (Define, Create) and RespondToAuthChallenge with the answer (Verify, Define, then the
    session and its tokens), two requests chained, from several client threads. Sign-ins per
    CPU-second of the server, and the latency of a whole sign-in."""
    example = os.path.join(os.path.dirname(args.gatehouse_binary), "examples", "hook_rate")
    module = os.path.join(work, "custom_auth.wasm")
    subprocess.run([example, "--write-wat-hook", module], cwd=ROOT, check=True)
    for trigger in ("define-auth-challenge", "create-auth-challenge", "verify-auth-challenge"):
        g.cli("hook", "set", "--pool", "bench", "--trigger", trigger, "--wasm", module)
    client = json.loads(g.cli("client", "create", "--pool", "bench", "--name", "custom",
                              "--json"))
    url = pool + "/cognito"
    # The client has a secret: each call proves it with Cognito's SECRET_HASH.
    secret_hash = base64.b64encode(hmac.new(
        client["client_secret"].encode(), ("target" + client["client_id"]).encode(),
        hashlib.sha256).digest()).decode()

    def call(target, body):
        try:
            return http("POST", url, json.dumps(body).encode(), {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService." + target})
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{target}: {e.code} {e.read()[:300]!r}") from None

    def sign_in():
        first = call("InitiateAuth", {"AuthFlow": "CUSTOM_AUTH", "ClientId": client["client_id"],
                                      "AuthParameters": {"USERNAME": "target",
                                                         "SECRET_HASH": secret_hash}})
        done = call("RespondToAuthChallenge", {
            "ChallengeName": "CUSTOM_CHALLENGE", "ClientId": client["client_id"],
            "Session": first["Session"],
            "ChallengeResponses": {"USERNAME": "target", "ANSWER": "42",
                                   "SECRET_HASH": secret_hash}})
        assert done["AuthenticationResult"]["AccessToken"], done

    # Hooks set by another process reach the server's list of them within a second.
    time.sleep(1.1)
    sign_in()  # loads the hooks
    seconds = 1.0 if args.smoke else float(args.duration)
    latencies, lock = [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker():
        while time.monotonic() < stop_at:
            t = time.monotonic()
            sign_in()
            with lock:
                latencies.append(time.monotonic() - t)

    cpu0 = cpu_seconds(pid)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu0
    latencies.sort()
    n = len(latencies)
    result = {
        "scenario": CUSTOM_AUTH,
        "statuses": {"200": 2 * n},
        "requests": n,
        "rps": n / wall,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "non_2xx": 0,
        "socket_errors": "",
        "errors": {},
        "server_cpu_s": cpu,
        "per_cpu_s": n / cpu if cpu > 0 else float("nan"),
        "peak_mb": memory_mb(pid, "VmHWM"),
    }
    log(f"  {CUSTOM_AUTH}: {result['rps']:.0f} sign-ins/s, p99 {result['p99_ms']:.2f} ms, "
        f"{result['per_cpu_s']:.0f} sign-ins/CPU-s (two requests each, 4 client threads)")
    return result


def run_verify_rate(args):
    """gatehouse-verify's validations per CPU-second next to the raw ES256 verification rate
    (aws-lc-rs) in the same process and run, with 100,000 revocation entries
    (crates/gatehouse-verify/examples/verify_rate.rs)."""
    log("gatehouse-verify validations per CPU-second…")
    # Built beside the gatehouse binary: release for a measured run (build_binary), the
    # debug build for a smoke run (.ci/run builds the examples).
    example = os.path.join(os.path.dirname(args.gatehouse_binary), "examples", "verify_rate")
    out = subprocess.run(
        [example, "--seconds", "0.4" if args.smoke else "6", "--rounds", "2" if args.smoke else "6"],
        cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

SAML = "saml-assertions"


def run_saml_rate(args):
    """SAML sign-ins per server CPU-second, the assertion check alone: gatehouse-saml's
    verify_response on a samlify-signed Response (base64, parsing, exclusive C14N, digest,
    RSA-2048 signature, conditions) next to the raw RSA-2048 verification rate in the same run
    (crates/gatehouse-saml/examples/saml_verify_rate.rs)."""
    log("SAML assertions verified per CPU-second…")
    example = os.path.join(os.path.dirname(args.gatehouse_binary), "examples", "saml_verify_rate")
    out = subprocess.run(
        [example, "--seconds", "0.4" if args.smoke else "6", "--rounds", "2" if args.smoke else "6"],
        cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

HOOKS = "hooks"


def run_hook_rate(args):
    """Tenant hooks as WebAssembly: for the custom-auth hook in WAT, AssemblyScript and
    JavaScript, calls per CPU-second, microseconds per call (mean, p99; a fresh instance each,
    through Hook::call), fuel per call, and CUSTOM_AUTH sign-ins (four hook calls) per
    CPU-second (crates/gatehouse-hooks/examples/hook_rate.rs). A smoke run leaves the
    JavaScript hook out: its first build takes a minute."""
    log("hook calls per CPU-second…")
    example = os.path.join(os.path.dirname(args.gatehouse_binary), "examples", "hook_rate")
    cmd = [example, "--seconds", "0.2" if args.smoke else "3"]
    # The AssemblyScript and JavaScript hooks are built with tests/peers' npm packages.
    if not os.path.isdir(os.path.join(ROOT, "tests", "peers", "node_modules")):
        log("  tests/peers has no node_modules (npm ci --prefix tests/peers): the WAT hook only")
        cmd += ["--only", "wat"]
    elif args.smoke:
        cmd += ["--only", "wat,assemblyscript"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

# ---------------------------------------------------------------- revocation propagation

# The example service built on gatehouse-verify (crates/gatehouse-verify/examples).
VERIFY_EXAMPLE = "protected_service"
REVOCATION = "sign-out to refusal in every verifying service"


class VerifyingService:
    """The gatehouse-verify example service: verifies tokens locally, follows the feed."""

    def __init__(self, binary, issuer, client_id, client_secret, log_path):
        self.proc = subprocess.Popen(
            [binary, "--issuer", issuer, "--client-id", client_id,
             "--client-secret", client_secret, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(log_path, "a"), text=True,
        )
        line = self.proc.stdout.readline().strip()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"{binary} did not say where it listens: {line!r}")
        self.addr = m.group(1)
        self.conn = httpclient.HTTPConnection(self.addr, timeout=10)

    def status(self, token):
        self.conn.request("GET", "/whoami", headers={"Authorization": "Bearer " + token})
        r = self.conn.getresponse()
        r.read()
        return r.status

    def health(self):
        self.conn.request("GET", "/health")
        r = self.conn.getresponse()
        return json.loads(r.read())

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def revocation_latency(example, pool, admin, sign_in, feed_client, rounds, work):
    """Signs the user in, waits until three verifying services accept the token, signs the
    user out through the admin API, and times until each service refuses the token; the
    services follow the revocation feed and make no call per request."""
    services = [VerifyingService(example, pool, feed_client["client_id"],
                                 feed_client["client_secret"], os.path.join(work, "verify.log"))
                for _ in range(3)]
    try:
        deadline = time.monotonic() + 30
        while not all(s.health().get("state") == "streaming" for s in services):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the services never connected to the feed: "
                                   f"{[s.health() for s in services]}")
            time.sleep(0.05)
        calls_before = [s.health().get("calls", {}) for s in services]
        latencies, requests = [], 0
        for _ in range(rounds):
            token = http("POST", pool + "/api/auth/initiate", sign_in,
                         {"Content-Type": "application/json"})["access_token"]
            for s in services:
                requests += 1
                if s.status(token) != 200:
                    raise RuntimeError("a fresh token was refused")
            t0 = time.monotonic()
            http("POST", pool + "/api/user-management/users/leaver/actions/sign-out", b"",
                 {"Authorization": "Bearer " + admin})
            pending = set(range(len(services)))
            while pending:
                for i in list(pending):
                    requests += 1
                    if services[i].status(token) == 401:
                        latencies.append(time.monotonic() - t0)
                        pending.discard(i)
                if time.monotonic() - t0 > 10:
                    raise RuntimeError("a signed-out token was still accepted after 10 s")
                time.sleep(0.002)
            # Tokens issued in the sign-out's second are refused too (the user's not-before is
            # in seconds): the next round signs in after it.
            time.sleep(1.05)
        calls_after = [s.health().get("calls", {}) for s in services]
    finally:
        for s in services:
            s.stop()
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    during = sum(sum(a.values()) - sum(b.values()) for a, b in zip(calls_after, calls_before))
    return {"rounds": rounds, "services": len(services), "p50_ms": q(0.50), "p99_ms": q(0.99),
            "max_ms": latencies[-1] * 1000, "requests": requests, "calls_during": during}


def selected(args, name):
    """Whether a scenario runs: all of them, or those whose name contains an --only value."""
    return not args.only or any(o.lower() in name.lower() for o in args.only)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a few seconds in all, to prove the benchmark works")
    ap.add_argument("--binary", help="the gatehouse binary (default: build target/release/gatehouse)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per scenario (default 15; smoke 2)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--users", type=int, default=None, help="users in the listing pool (default 100000; smoke 1000)")
    ap.add_argument("--no-peer", action="store_true", help="skip the oidc-provider comparison")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only the scenarios whose name contains NAME (repeatable; "
                         "e.g. 'authorization code', 'introspection', 'flood')")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both",
                    help="the database(s) to run Gatehouse's scenarios on (default both; "
                         "PostgreSQL from GATEHOUSE_BENCH_POSTGRES_URL, as the tests use it)")
    args = ap.parse_args()
    # Two seconds in a smoke run: long enough that a scenario completes requests on a slow,
    # busy machine (debug build), short enough that the whole run stays in seconds.
    args.duration = args.duration or (2 if args.smoke else 15)
    args.users = args.users if args.users is not None else (1000 if args.smoke else 100_000)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    needed = ["wrk"] + ([] if args.no_peer else ["node", "npm"])
    needed += ["node"] if selected(args, CODE_FLOW) and args.no_peer else []
    needed += ["psql"] if "postgres" in backends else []
    for tool in needed:
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is needed (apt-get install wrk nodejs npm)")
    binary = os.path.abspath(args.binary) if args.binary else build_binary()
    args.gatehouse_binary = binary
    results = {"machine": machine(), "binary": binary, "scenarios": [], "peer": [],
               "backends": {}}
    for backend in backends:
        results["backends"][backend] = run_gatehouse(binary, args, backend)
    # SQLite's figures are the headline (the budgets are stated on SQLite).
    first = results["backends"][backends[0]]
    results.update({k: v for k, v in first.items() if k != "scenarios"})
    for backend in backends:
        for sc in results["backends"][backend]["scenarios"]:
            row = dict(sc)
            if backend != "sqlite":
                row["scenario"] = f"{sc['scenario']} [{backend}]"
            results["scenarios"].append(row)

    if not args.no_peer:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True)
        log("oidc-provider:")
        for fmt, name, path, body in [
            ("jwt", "client-credentials token", "/token", "grant_type=client_credentials&scope=api:read"),
            ("opaque", "introspection", "/token/introspection", None),
            ("jwt", CODE_FLOW, None, None),
        ]:
            if not selected(args, name):
                continue
            peer = Peer(fmt)
            try:
                pauth = basic(Peer.CLIENT_ID, Peer.CLIENT_SECRET)
                if name == CODE_FLOW:
                    cookie = peer_session_cookie(peer.base, Peer.WEB_CLIENT_ID, "target")
                    results["peer"].append(measure_code_flow(
                        peer.proc.pid, name, args, peer.base + "/auth", peer.base + "/token",
                        Peer.WEB_CLIENT_ID, Peer.CLIENT_SECRET, cookie))
                    continue
                if body is None:
                    t = http("POST", peer.base + "/token", b"grant_type=client_credentials&scope=api:read",
                             {"Authorization": pauth, "Content-Type": FORM})["access_token"]
                    body = "token=" + t
                results["peer"].append(measure(peer.proc.pid, name, peer.base + path, "POST", args,
                                               body=body, content_type=FORM, auth=pauth))
            finally:
                peer.stop()

    if selected(args, "gatehouse-verify"):
        results["verify_rate"] = run_verify_rate(args)
    if selected(args, SAML):
        results["saml_rate"] = run_saml_rate(args)
    if selected(args, HOOKS):
        results["hook_rate"] = run_hook_rate(args)

    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    failed = [f"{s['scenario']} {s['statuses']}" for s in results["scenarios"] + results["peer"]
              if s["non_2xx"] or s["requests"] == 0]
    # During the flood a real sign-in may be refused with 503 (the queue is full); anything
    # else, or none answered at all, is a failure.
    failed += [f"sign-in during a flood on {backend} {b['flood']['statuses']}"
               for backend, b in results["backends"].items() if "flood" in b
               if set(b["flood"]["statuses"]) - {200, 503} or not b["flood"]["statuses"].get(200)]
    if (args.only and not results["scenarios"] + results["peer"] and "verify_rate" not in results
            and "saml_rate" not in results and "hook_rate" not in results):
        failed.append(f"no scenario matches --only {args.only}")
    if failed:
        for b in results["backends"].values():
            sys.stderr.writelines(b["server_log_tail"])
        sys.exit(f"bench: scenarios with failed requests: {'; '.join(failed)}")


def report(r, args):
    print(f"\nGatehouse benchmark — {r['machine']}")
    print(f"{args.duration}s per scenario, wrk with {args.connections} connections on 1 thread, loopback, keep-alive")
    print(f"({CODE_FLOW}: bench/flow/driver.mjs, {args.connections} flows at a time; "
          "its rows count whole flows, authorize and token)\n")
    for backend, b in r["backends"].items():
        print(f"start-up on {backend}: {b['startup_first_ms']:.0f} ms first (creates the database), "
              f"{b['startup_ms']:.0f} ms after (median); idle memory {b['idle_mb']:.1f} MB")
    head = f"{'scenario':<51} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU s':>7} {'req/CPU-s':>10} {'peak MB':>8}"
    print(head)
    print("-" * len(head))
    for s in r["scenarios"]:
        print(f"{s['scenario']:<51} {s['rps']:>9.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} "
              f"{s['server_cpu_s']:>7.2f} {s['per_cpu_s']:>10.0f} {s['peak_mb']:>8.1f}")
    for s in r["peer"]:
        print(f"{'oidc-provider ' + s['scenario']:<51} {s['rps']:>9.0f} {s['p50_ms']:>8.2f} "
              f"{s['p99_ms']:>8.2f} {s['server_cpu_s']:>7.2f} {s['per_cpu_s']:>10.0f} {s['peak_mb']:>8.1f}")
    for s in r["scenarios"] + r["peer"]:
        if "driver_cpu_s" in s:
            who = s["scenario"] if s in r["scenarios"] else "oidc-provider " + s["scenario"]
            print(f"{who}: driver {s['driver_cpu_s']:.2f} CPU s ({100 * s['driver_core_share']:.0f}% of "
                  f"one core); flows {s['statuses']}")
    for backend, b in r["backends"].items():
        if "flood" not in b:
            continue
        f = b["flood"]
        print(f"password sign-in during {f['abandoned_sent']:,} abandoned requests ({f['flood_s']:.1f} s) "
              f"on {backend}: {f['real']} real sign-ins, p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, "
              f"max {f['max_ms']:.0f} ms, statuses {f['statuses']}; hashes {f['hashes']}")
    if "argon2" in r:
        a = r["argon2"]
        print(f"\nraw argon2id (m={a['memory_kib']} KiB, t={a['iterations']}, p={a['parallelism']}) on "
              f"{a['threads']} threads: {r['argon2_raw_per_s']:.1f}/s")
        for s in r["scenarios"]:
            if s["scenario"].startswith("password sign-in"):
                print(f"{s['scenario']} reaches {100 * s['rps'] / r['argon2_raw_per_s']:.0f}% of it")
    by_name = {s["scenario"]: s for s in r["scenarios"]}
    for p in r["peer"]:
        g = by_name.get(p["scenario"])
        if g and p["per_cpu_s"] > 0:
            unit = "flows" if "driver_cpu_s" in p else "req"
            print(f"{p['scenario']}: Gatehouse/oidc-provider = {g['rps'] / p['rps']:.2f}x {unit}/s, "
                  f"{g['per_cpu_s'] / p['per_cpu_s']:.2f}x {unit} per CPU-second")
    if "postgres" in r["backends"]:
        print("[postgres] rows: CPU s and req/CPU-s count Gatehouse's process only, not the "
              "PostgreSQL server's")
    v = r.get("verify_rate")
    if v:
        print(f"\ngatehouse-verify: {v['verify_per_cpu_s']:.0f} validations per CPU-second with "
              f"{v['revocation_entries']:,} revocation entries; raw ES256 (aws-lc-rs) "
              f"{v['raw_es256_per_cpu_s']:.0f} per CPU-second in the same run: "
              f"{100 * v['ratio']:.0f}% of it (budget: at least 90%); HTTP calls the verifier made "
              f"in the whole run (none per validation): {v['calls_to_gatehouse']}")
    else:
        print("gatehouse-verify validations: not measured in this run")
    v = r.get("saml_rate")
    if v:
        print(f"SAML sign-ins, the assertion check alone: {v['saml_verify_per_cpu_s']:.0f} responses "
              f"({v['response_bytes']} bytes, RSA-2048) verified per CPU-second; raw RSA-2048 "
              f"verification {v['raw_rsa2048_per_cpu_s']:.0f} per CPU-second in the same run")
    v = r.get("hook_rate")
    if v:
        print(f"\nhooks (WebAssembly, a fresh instance per call; default fuel {v['default_fuel']:,}, "
              f"deadline {v['deadline_ms']} ms):")
        for h in v["hooks"]:
            print(f"  {h['hook']:<15} {h['kind']:<12} {h['calls_per_cpu_s']:>9.0f} calls/CPU-s, "
                  f"mean {h['mean_us']:.0f} µs, p99 {h['p99_us']:.0f} µs, fuel {h['fuel_per_call']:,}; "
                  f"CUSTOM_AUTH sign-ins (4 calls) {h['custom_auth_sign_ins_per_cpu_s']:.0f}/CPU-s; "
                  f"compile {h['compile_ms']:.0f} ms, load {h['load_ms']:.1f} ms")
    for backend, b in r["backends"].items():
        if "revocation" not in b:
            continue
        v = b["revocation"]
        print(f"{REVOCATION} on {backend}: {v['rounds']} sign-outs x {v['services']} services, "
              f"p50 {v['p50_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms, max {v['max_ms']:.0f} ms; "
              f"{v['requests']} requests verified; calls the services made to Gatehouse "
              f"meanwhile: {v['calls_during']} (stream reconnects, token renewals; none per request)")
    print(f"\nbench: {len(r['scenarios']) + len(r['peer'])} scenarios measured")


if __name__ == "__main__":
    main()
