// Gatehouse hook in AssemblyScript, built into a core WebAssembly module by asc
// (tests/hooks/build.mjs): exports `memory`, `alloc(len) -> ptr` and `handle(ptr, len) -> i64`
// (the answer's pointer in the high 32 bits, its length in the low), and imports nothing (the
// `stub` runtime never frees, which is all one call needs; `abort` is the function below).
//
// It answers Cognito's custom-authentication triggers and the V2 pre token generation trigger:
// the event comes in as JSON text and goes back with `response` filled in. The JSON reader and
// writer are the small ones below; number texts are kept as they were written.

const ANSWER = "42";
const MAX_FAILURES = 3;

// ------------------------------------------------------------------ JSON values

const NULL: i32 = 0;
const BOOL: i32 = 1;
const NUM: i32 = 2;
const STR: i32 = 3;
const ARR: i32 = 4;
const OBJ: i32 = 5;

class JValue {
  kind: i32;
  flag: bool = false;
  // The decoded string, or the number's text as written.
  text: string = "";
  items: Array<JValue> = new Array<JValue>();
  keys: Array<string> = new Array<string>();

  constructor(kind: i32) {
    this.kind = kind;
  }

  static str(s: string): JValue {
    const v = new JValue(STR);
    v.text = s;
    return v;
  }

  static bool(b: bool): JValue {
    const v = new JValue(BOOL);
    v.flag = b;
    return v;
  }

  static obj(): JValue {
    return new JValue(OBJ);
  }

  static arr(): JValue {
    return new JValue(ARR);
  }

  get(key: string): JValue | null {
    if (this.kind != OBJ) return null;
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  set(key: string, value: JValue): JValue {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) {
        this.items[i] = value;
        return this;
      }
    }
    this.keys.push(key);
    this.items.push(value);
    return this;
  }

  push(value: JValue): JValue {
    this.items.push(value);
    return this;
  }
}

function isTrue(v: JValue | null): bool {
  return v != null && v.kind == BOOL && v.flag;
}

function textOf(v: JValue | null): string | null {
  if (v == null || v.kind != STR) return null;
  return v.text;
}

// ------------------------------------------------------------------ reading

class Reader {
  s: string;
  i: i32 = 0;
  failed: bool = false;

  constructor(s: string) {
    this.s = s;
  }

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) this.i++;
      else break;
    }
  }

  peek(): i32 {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }

  fail(): JValue {
    this.failed = true;
    return new JValue(NULL);
  }

  literal(word: string, v: JValue): JValue {
    if (this.s.substr(this.i, word.length) != word) return this.fail();
    this.i += word.length;
    return v;
  }

  value(depth: i32): JValue {
    if (depth > 64) return this.fail();
    this.ws();
    const c = this.peek();
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) return JValue.str(this.string());
    if (c == 0x74) return this.literal("true", JValue.bool(true));
    if (c == 0x66) return this.literal("false", JValue.bool(false));
    if (c == 0x6e) return this.literal("null", new JValue(NULL));
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    return this.fail();
  }

  number(): JValue {
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      const numeric =
        (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x65 || c == 0x45;
      if (!numeric) break;
      this.i++;
    }
    const v = new JValue(NUM);
    v.text = this.s.substring(start, this.i);
    return v;
  }

  hex4(): i32 {
    if (this.i + 4 > this.s.length) {
      this.failed = true;
      return 0;
    }
    let n: i32 = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(this.i++);
      let d: i32 = -1;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      if (d < 0) {
        this.failed = true;
        return 0;
      }
      n = (n << 4) | d;
    }
    return n;
  }

  string(): string {
    // At the opening quote.
    this.i++;
    let out = "";
    let run = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x22) {
        out += this.s.substring(run, this.i);
        this.i++;
        return out;
      }
      if (c == 0x5c) {
        out += this.s.substring(run, this.i);
        this.i++;
        if (this.i >= this.s.length) break;
        const e = this.s.charCodeAt(this.i++);
        if (e == 0x22) out += "\"";
        else if (e == 0x5c) out += "\\";
        else if (e == 0x2f) out += "/";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x6e) out += "\n";
        else if (e == 0x72) out += "\r";
        else if (e == 0x74) out += "\t";
        else if (e == 0x75) out += String.fromCharCode(this.hex4());
        else {
          this.failed = true;
          return out;
        }
        run = this.i;
        continue;
      }
      this.i++;
    }
    this.failed = true;
    return out;
  }

  array(depth: i32): JValue {
    this.i++;
    const v = JValue.arr();
    this.ws();
    if (this.peek() == 0x5d) {
      this.i++;
      return v;
    }
    while (!this.failed) {
      v.push(this.value(depth + 1));
      this.ws();
      const c = this.peek();
      this.i++;
      if (c == 0x5d) return v;
      if (c != 0x2c) return this.fail();
    }
    return v;
  }

  object(depth: i32): JValue {
    this.i++;
    const v = JValue.obj();
    this.ws();
    if (this.peek() == 0x7d) {
      this.i++;
      return v;
    }
    while (!this.failed) {
      this.ws();
      if (this.peek() != 0x22) return this.fail();
      const key = this.string();
      this.ws();
      if (this.peek() != 0x3a) return this.fail();
      this.i++;
      v.set(key, this.value(depth + 1));
      this.ws();
      const c = this.peek();
      this.i++;
      if (c == 0x7d) return v;
      if (c != 0x2c) return this.fail();
    }
    return v;
  }
}

// ------------------------------------------------------------------ writing

function quote(s: string): string {
  let out = "\"";
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | null = null;
    if (c == 0x22) esc = "\\\"";
    else if (c == 0x5c) esc = "\\\\";
    else if (c == 0x0a) esc = "\\n";
    else if (c == 0x0d) esc = "\\r";
    else if (c == 0x09) esc = "\\t";
    else if (c < 0x20) {
      const hex = "0123456789abcdef";
      esc = "\\u00" + hex.charAt(c >> 4) + hex.charAt(c & 15);
    }
    if (esc != null) {
      out += s.substring(run, i) + esc;
      run = i + 1;
    }
  }
  return out + s.substring(run) + "\"";
}

function write(v: JValue): string {
  if (v.kind == NULL) return "null";
  if (v.kind == BOOL) return v.flag ? "true" : "false";
  if (v.kind == NUM) return v.text;
  if (v.kind == STR) return quote(v.text);
  const parts = new Array<string>();
  if (v.kind == ARR) {
    for (let i = 0; i < v.items.length; i++) parts.push(write(v.items[i]));
    return "[" + parts.join(",") + "]";
  }
  for (let i = 0; i < v.keys.length; i++) {
    parts.push(quote(v.keys[i]) + ":" + write(v.items[i]));
  }
  return "{" + parts.join(",") + "}";
}

// ------------------------------------------------------------------ the triggers

function define(request: JValue): JValue {
  const session = request.get("session");
  let failures = 0;
  let lastPassed = false;
  if (session != null && session.kind == ARR) {
    for (let i = 0; i < session.items.length; i++) {
      const entry = session.items[i];
      const custom = textOf(entry.get("challengeName")) == "CUSTOM_CHALLENGE";
      const passed = isTrue(entry.get("challengeResult"));
      if (custom && !passed) failures++;
      lastPassed = custom && passed;
    }
  }
  const r = JValue.obj();
  if (lastPassed) {
    return r.set("issueTokens", JValue.bool(true)).set("failAuthentication", JValue.bool(false));
  }
  if (failures >= MAX_FAILURES) {
    return r.set("issueTokens", JValue.bool(false)).set("failAuthentication", JValue.bool(true));
  }
  return r
    .set("challengeName", JValue.str("CUSTOM_CHALLENGE"))
    .set("issueTokens", JValue.bool(false))
    .set("failAuthentication", JValue.bool(false));
}

function create(request: JValue): JValue {
  const session = request.get("session");
  const attempt = (session != null && session.kind == ARR ? session.items.length : 0) + 1;
  return JValue.obj()
    .set("publicChallengeParameters", JValue.obj().set("hint", JValue.str("the answer to everything")))
    .set("privateChallengeParameters", JValue.obj().set("answer", JValue.str(ANSWER)))
    .set("challengeMetadata", JValue.str("QUESTION-" + attempt.toString()));
}

function verify(request: JValue): JValue {
  const privateParameters = request.get("privateChallengeParameters");
  const expected = privateParameters != null ? textOf(privateParameters.get("answer")) : null;
  const given = textOf(request.get("challengeAnswer"));
  const correct = expected != null && given != null && expected == given;
  return JValue.obj().set("answerCorrect", JValue.bool(correct));
}

function preToken(): JValue {
  // `tenant_tier` is the claim a pool would add; `sub` and `act` are claims no hook may set,
  // tried here so that the service's refusal of them is tested.
  const id = JValue.obj()
    .set("claimsToAddOrOverride", JValue.obj().set("tenant_tier", JValue.str("gold")))
    .set("claimsToSuppress", JValue.arr());
  const access = JValue.obj()
    .set(
      "claimsToAddOrOverride",
      JValue.obj()
        .set("tenant_tier", JValue.str("gold"))
        .set("sub", JValue.str("someone-else"))
        .set("act", JValue.obj().set("sub", JValue.str("intruder"))),
    )
    .set("claimsToSuppress", JValue.arr())
    .set("scopesToAdd", JValue.arr())
    .set("scopesToSuppress", JValue.arr());
  return JValue.obj().set(
    "claimsAndScopeOverrideDetails",
    JValue.obj().set("idTokenGeneration", id).set("accessTokenGeneration", access),
  );
}

function answer(input: string): string | null {
  const reader = new Reader(input);
  const event = reader.value(0);
  reader.ws();
  if (reader.failed || reader.i != input.length || event.kind != OBJ) return null;
  let request = event.get("request");
  if (request == null || request.kind != OBJ) request = JValue.obj();
  const source = textOf(event.get("triggerSource"));
  if (source == null) return null;
  let response: JValue;
  if (source == "DefineAuthChallenge_Authentication") response = define(request);
  else if (source == "CreateAuthChallenge_Authentication") response = create(request);
  else if (source == "VerifyAuthChallengeResponse_Authentication") response = verify(request);
  else if (source.startsWith("TokenGeneration_")) response = preToken();
  else return null;
  event.set("response", response);
  return write(event);
}

// ------------------------------------------------------------------ the ABI

export function alloc(len: i32): i32 {
  return <i32>heap.alloc(<usize>len);
}

export function handle(ptr: i32, len: i32): i64 {
  const input = String.UTF8.decodeUnsafe(<usize>ptr, <usize>len);
  const out = answer(input);
  // This ABI has no error channel: an event it cannot answer traps, and the sign-in fails closed.
  if (out == null) unreachable();
  const bytes = String.UTF8.encode(<string>out);
  const at = changetype<usize>(bytes);
  return (<i64>at << 32) | <i64>bytes.byteLength;
}

// Runtime errors (an index out of range, say) trap: a hook has nothing to report them to.
function abort(
  message: string | null,
  fileName: string | null,
  line: u32,
  column: u32,
): void {
  unreachable();
}
