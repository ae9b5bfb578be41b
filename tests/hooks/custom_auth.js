// Gatehouse hook in JavaScript, built into a WebAssembly component by componentize-js
// (tests/hooks/build.mjs) against crates/gatehouse-hooks/wit/hooks.wit. It answers Cognito's
// custom-authentication triggers and the V2 pre token generation trigger: the event comes in as
// JSON text and goes back with `response` filled in.

const ANSWER = "42";
const MAX_FAILURES = 3;

function define(request) {
  const session = Array.isArray(request.session) ? request.session : [];
  const last = session[session.length - 1];
  const failures = session.filter(
    (s) => s.challengeName === "CUSTOM_CHALLENGE" && s.challengeResult !== true,
  ).length;
  if (last && last.challengeName === "CUSTOM_CHALLENGE" && last.challengeResult === true) {
    return { issueTokens: true, failAuthentication: false };
  }
  if (failures >= MAX_FAILURES) {
    return { issueTokens: false, failAuthentication: true };
  }
  return { challengeName: "CUSTOM_CHALLENGE", issueTokens: false, failAuthentication: false };
}

function create(request) {
  const attempt = (Array.isArray(request.session) ? request.session.length : 0) + 1;
  return {
    publicChallengeParameters: { hint: "the answer to everything" },
    privateChallengeParameters: { answer: ANSWER },
    challengeMetadata: `QUESTION-${attempt}`,
  };
}

function verify(request) {
  const expected = request.privateChallengeParameters && request.privateChallengeParameters.answer;
  return { answerCorrect: typeof expected === "string" && request.challengeAnswer === expected };
}

function preToken() {
  // `tenant_tier` is the claim a pool would add; `sub` and `act` are claims no hook may set,
  // tried here so that the service's refusal of them is tested.
  return {
    claimsAndScopeOverrideDetails: {
      idTokenGeneration: { claimsToAddOrOverride: { tenant_tier: "gold" }, claimsToSuppress: [] },
      accessTokenGeneration: {
        claimsToAddOrOverride: {
          tenant_tier: "gold",
          sub: "someone-else",
          act: { sub: "intruder" },
        },
        claimsToSuppress: [],
        scopesToAdd: [],
        scopesToSuppress: [],
      },
    },
  };
}

export function handle(text) {
  const event = JSON.parse(text);
  const request = event.request || {};
  const source = String(event.triggerSource || "");
  if (source === "DefineAuthChallenge_Authentication") {
    event.response = define(request);
  } else if (source === "CreateAuthChallenge_Authentication") {
    event.response = create(request);
  } else if (source === "VerifyAuthChallengeResponse_Authentication") {
    event.response = verify(request);
  } else if (source.startsWith("TokenGeneration_")) {
    event.response = preToken();
  } else {
    // A thrown string is the world's `err(..)` (anything else thrown traps).
    throw `unsupported trigger ${source}`;
  }
  return JSON.stringify(event);
}
