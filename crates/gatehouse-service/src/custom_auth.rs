//! Cognito's custom authentication flow (`CUSTOM_AUTH`), hosted natively: the pool's Define
//! Auth Challenge hook decides, step by step, whether to issue tokens, fail, or ask a
//! `CUSTOM_CHALLENGE`; Create Auth Challenge makes each challenge (public parameters for the
//! client, private ones for the check, metadata for the record); Verify Auth Challenge
//! Response checks the client's answer against the private parameters.
//!
//! The session the client carries between steps is opaque: the flow's state (its user, its
//! client, the challenges so far and the private parameters of the one asked) sealed with
//! the master key under the pool, so the client can neither read the private parameters nor
//! change the record. Each session is good for one answer, taken with `use_once` in the
//! transaction that moves the flow on, and for the pool's challenge-session lifetime.
//!
//! The username is looked up but never told: a name without a user runs the same hooks with
//! `userNotFound: true` (Cognito's `PreventUserExistenceErrors`), and can never be issued
//! tokens. Wrong answers count toward the username's lockout, which also stops the flow.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::secret::{Secret, random_token};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::{AppClient, AuthFlow};
use gatehouse_domain::hooks::Trigger;
use gatehouse_domain::ids::{UserId, Username};
use gatehouse_domain::lockout::LockoutPolicy;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::User;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::hooks::{envelope, user_attributes};
use crate::signin::SignInOutcome;
use crate::{Gatehouse, RequestMeta};

pub const CUSTOM_CHALLENGE: &str = "CUSTOM_CHALLENGE";
/// The label the flow's sessions are sealed under.
const SESSION_LABEL: &str = "custom-auth-session";
/// The most challenges one flow may ask: a Define hook that never decides fails the
/// sign-in rather than asking for ever.
const MAX_CHALLENGES: usize = 20;

/// One step of the flow so far, as Define's `session` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Step {
    challenge_name: String,
    challenge_result: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    challenge_metadata: Option<String>,
}

/// The flow's state between two requests (sealed into the client's `Session`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlowState {
    /// The client the flow is for.
    aud: String,
    /// The username as the client gave it.
    username: String,
    /// The user, when the username names one.
    user: Option<String>,
    exp: i64,
    jti: String,
    steps: Vec<Step>,
    /// The private parameters of the challenge asked, for Verify.
    private: Map<String, Value>,
    /// Its metadata, for the step its answer adds.
    metadata: Option<String>,
}

/// Where the flow stands after a request.
#[derive(Debug)]
pub enum CustomAuthOutcome {
    /// Tokens were issued.
    SignedIn(SignInOutcome),
    /// A challenge is asked: its session and its public parameters.
    Challenge {
        session: Secret,
        parameters: Map<String, Value>,
    },
}

fn refused() -> ServiceError {
    ServiceError::Unauthenticated("incorrect username or password".to_owned())
}

fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

fn nonsense(trigger: Trigger, detail: impl Into<String>) -> (Trigger, String) {
    (trigger, detail.into())
}

/// A `null` boolean is `false` (as Cognito's own Rust types read them); anything else that
/// is not a boolean is nonsense.
fn flag(response: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match response.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{name} must be a boolean")),
    }
}

/// Values of `privateChallengeParameters` and `publicChallengeParameters`: strings, as
/// Cognito's are.
fn string_map(response: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, String> {
    match response.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(m.clone()),
        Some(_) => Err(format!("{name} must be an object of strings")),
    }
}

/// What Define decided.
enum Decision {
    Issue,
    Fail,
    Challenge(String),
}

fn read_decision(response: &Map<String, Value>) -> Result<Decision, String> {
    let issue = flag(response, "issueTokens")?;
    let fail = flag(response, "failAuthentication")?;
    let challenge = match response.get("challengeName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("challengeName must be a string".to_owned()),
    };
    match (issue, fail, challenge) {
        (true, false, None) => Ok(Decision::Issue),
        (false, true, None) => Ok(Decision::Fail),
        // Cognito reads failAuthentication first; a hook that sets it fails the sign-in.
        (_, true, _) => Ok(Decision::Fail),
        (false, false, Some(c)) => Ok(Decision::Challenge(c)),
        (true, _, Some(_)) => Err("issueTokens and a challengeName together".to_owned()),
        (false, false, None) => {
            Err("neither issueTokens, failAuthentication nor a challengeName".to_owned())
        }
    }
}

impl Gatehouse {
    fn seal_flow(&self, pool: &Pool, state: &FlowState) -> ServiceResult<Secret> {
        let json = serde_json::to_string(state)
            .map_err(|e| ServiceError::internal(format!("a flow state: {e}")))?;
        let sealed = self
            .keyring
            .seal_code(pool.id, SESSION_LABEL, &Secret::new(json))?;
        Ok(Secret::new(URL_SAFE_NO_PAD.encode(sealed)))
    }

    fn open_flow(&self, pool: &Pool, session: &str, client_id: &str) -> ServiceResult<FlowState> {
        let sealed = URL_SAFE_NO_PAD
            .decode(session.trim())
            .map_err(|_| expired())?;
        let json = self
            .keyring
            .open_code(pool.id, SESSION_LABEL, &sealed)
            .ok_or_else(expired)?;
        let state: FlowState = serde_json::from_str(json.expose()).map_err(|_| expired())?;
        if state.aud != client_id || state.exp <= self.now().as_secs() {
            return Err(expired());
        }
        Ok(state)
    }

    /// Refuses the flow while the username is locked out or backing off.
    async fn flow_allowed(&self, pool: &Pool, name: Option<&Username>) -> ServiceResult<()> {
        let now = self.now();
        if let Some(name) = name
            && let Some(failures) = self.store.sign_in_failures(pool.id, name).await?
            && let Some(at) = LockoutPolicy::default().next_attempt_at(&failures, now)
        {
            return Err(ServiceError::throttled_until(
                "too many failed sign-ins for this username; try again later",
                at,
                now,
            ));
        }
        Ok(())
    }

    /// A hook's answer this flow cannot use: audited, and the sign-in fails closed.
    async fn hook_nonsense(
        &self,
        pool: &Pool,
        (trigger, detail): (Trigger, String),
        meta: &RequestMeta,
    ) -> ServiceError {
        let event = self
            .event(pool, AuditAction::HookFailed, None, meta)
            .subject(trigger.as_str())
            .detail("reason", "bad_output")
            .detail("detail", detail.as_str())
            .denied();
        if let Err(e) = self.store.append_audit(&event).await {
            return e.into();
        }
        ServiceError::HookFailed {
            trigger: trigger.as_str(),
            reason: "bad_output".to_owned(),
        }
    }

    /// Runs a trigger that must be set: a pool without it does not offer the flow.
    async fn run_required(
        &self,
        pool: &Pool,
        trigger: Trigger,
        event: &Value,
        meta: &RequestMeta,
    ) -> ServiceResult<Map<String, Value>> {
        self.run_hook(pool, trigger, event, meta)
            .await?
            .ok_or_else(|| {
                ServiceError::Invalid(gatehouse_domain::ParseError::new(
                    "AuthFlow",
                    "Custom auth lambda trigger is not configured for the user pool.",
                ))
            })
    }

    /// `InitiateAuth` with `CUSTOM_AUTH`: the client (its secret checked), the username, and
    /// the client's metadata for the hooks. Only the no-password variant is offered
    /// (`CHALLENGE_NAME` absent or `CUSTOM_CHALLENGE`): `SRP_A` needs SRP, which Gatehouse
    /// does not speak.
    pub async fn initiate_custom_auth(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        username: &str,
        client_metadata: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> ServiceResult<CustomAuthOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        self.require_auth_flow(&client, AuthFlow::Custom)?;
        if !self.has_hook(pool, Trigger::DefineAuthChallenge).await? {
            return Err(ServiceError::Invalid(gatehouse_domain::ParseError::new(
                "AuthFlow",
                "Custom auth lambda trigger is not configured for the user pool.",
            )));
        }
        let name = Username::parse(username).ok();
        self.flow_allowed(pool, name.as_ref()).await?;
        let user = match &name {
            Some(n) => self.store.user_by_username(pool.id, n).await?,
            None => None,
        };
        if user.as_ref().is_some_and(|u| !u.enabled.is_enabled()) {
            return Err(refused());
        }
        let state = FlowState {
            aud: client.client_id.to_string(),
            username: username.to_owned(),
            user: user.as_ref().map(|u| u.id.to_string()),
            exp: 0,
            jti: String::new(),
            steps: Vec::new(),
            private: Map::new(),
            metadata: None,
        };
        self.next_step(pool, &client, state, user, None, client_metadata, meta)
            .await
    }

    /// `RespondToAuthChallenge` with `CUSTOM_CHALLENGE`: Verify checks the answer, Define
    /// decides what follows.
    #[allow(clippy::too_many_arguments)]
    pub async fn respond_custom_challenge(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        username: &str,
        answer: &Value,
        client_metadata: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> ServiceResult<CustomAuthOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let mut state = self.open_flow(pool, session, client.client_id.as_str())?;
        if state.username != username {
            return Err(expired());
        }
        let name = Username::parse(&state.username).ok();
        self.flow_allowed(pool, name.as_ref()).await?;
        // A cheap early refusal of a used session; the claim is in the next step's write.
        if self
            .revocations
            .is_revoked(self.store.as_ref(), pool.id, &state.jti, self.now())
            .await?
        {
            return Err(expired());
        }
        let user = self.flow_user(pool, &state).await?;
        let event = envelope(
            "1",
            "VerifyAuthChallengeResponse_Authentication",
            pool,
            Some(&state.username),
            Some(client.client_id.as_str()),
            json!({
                "userAttributes": user.as_ref().map(user_attributes).unwrap_or_default(),
                "privateChallengeParameters": state.private,
                "challengeAnswer": answer,
                "clientMetadata": client_metadata,
                "userNotFound": user.is_none(),
            }),
        );
        let response = self
            .run_required(pool, Trigger::VerifyAuthChallenge, &event, meta)
            .await?;
        let correct = match flag(&response, "answerCorrect") {
            Ok(c) => c,
            Err(e) => {
                return Err(self
                    .hook_nonsense(pool, nonsense(Trigger::VerifyAuthChallenge, e), meta)
                    .await);
            }
        };
        if !correct && let Some(name) = &name {
            self.count_sign_in_failure(pool, name, &LockoutPolicy::default(), self.now(), meta)
                .await?;
        }
        let answered = (state.jti.clone(), state.exp);
        state.steps.push(Step {
            challenge_name: CUSTOM_CHALLENGE.to_owned(),
            challenge_result: correct,
            challenge_metadata: state.metadata.take(),
        });
        state.private = Map::new();
        self.next_step(
            pool,
            &client,
            state,
            user,
            Some(answered),
            client_metadata,
            meta,
        )
        .await
    }

    /// The flow's user as it is now, if the username named one (and it is still enabled).
    async fn flow_user(&self, pool: &Pool, state: &FlowState) -> ServiceResult<Option<User>> {
        let Some(id) = state.user.as_deref() else {
            return Ok(None);
        };
        let id = UserId::parse(id).map_err(|_| expired())?;
        match self.store.user_by_id(pool.id, id).await? {
            Some(u) if u.enabled.is_enabled() => Ok(Some(u)),
            _ => Err(refused()),
        }
    }

    /// Asks Define what follows `state`, and does it. `answered` is the session just
    /// answered (its `jti` and expiry), taken once in the transaction of what follows.
    #[allow(clippy::too_many_arguments)]
    async fn next_step(
        &self,
        pool: &Pool,
        client: &AppClient,
        mut state: FlowState,
        user: Option<User>,
        answered: Option<(String, i64)>,
        client_metadata: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> ServiceResult<CustomAuthOutcome> {
        let attributes = user.as_ref().map(user_attributes).unwrap_or_default();
        let event = envelope(
            "1",
            "DefineAuthChallenge_Authentication",
            pool,
            Some(&state.username),
            Some(client.client_id.as_str()),
            json!({
                "userAttributes": attributes,
                "session": state.steps,
                "clientMetadata": client_metadata,
                "userNotFound": user.is_none(),
            }),
        );
        let response = self
            .run_required(pool, Trigger::DefineAuthChallenge, &event, meta)
            .await?;
        let decision = match read_decision(&response) {
            Ok(d) => d,
            Err(e) => {
                return Err(self
                    .hook_nonsense(pool, nonsense(Trigger::DefineAuthChallenge, e), meta)
                    .await);
            }
        };
        let now = self.now();
        match decision {
            Decision::Fail => {
                if let Some((jti, exp)) = answered {
                    let mut w = self.store.write(pool.id).await?;
                    w.use_once(&jti, now, Timestamp(exp)).await?;
                    w.commit().await?;
                }
                Err(refused())
            }
            Decision::Issue => {
                let Some(known) = user else {
                    // Never for a username without a user, whatever the hook says.
                    return Err(refused());
                };
                let mut w = self.store.write(pool.id).await?;
                if let Some((jti, exp)) = &answered
                    && !w.use_once(jti, now, Timestamp(*exp)).await?
                {
                    return Err(expired());
                }
                let current = w
                    .user_by_id(known.id)
                    .await?
                    .filter(|u| u.enabled.is_enabled())
                    .ok_or_else(refused)?;
                let mut event = self
                    .event(pool, AuditAction::TokenRevoked, None, meta)
                    .subject(&current.username)
                    .detail("challenge", CUSTOM_CHALLENGE)
                    .detail("challenges", state.steps.len() as i64);
                event.client_id = Some(client.client_id.clone());
                w.audit(&event).await?;
                if self
                    .store
                    .sign_in_failures(pool.id, &current.username)
                    .await?
                    .is_some()
                {
                    w.clear_sign_in_failures(&current.username).await?;
                }
                let signed_in = self.start_session(pool, client, w, &current, meta).await?;
                Ok(CustomAuthOutcome::SignedIn(signed_in))
            }
            Decision::Challenge(name) if name == CUSTOM_CHALLENGE => {
                if state.steps.len() >= MAX_CHALLENGES {
                    return Err(self
                        .hook_nonsense(
                            pool,
                            nonsense(
                                Trigger::DefineAuthChallenge,
                                format!("more than {MAX_CHALLENGES} challenges in one sign-in"),
                            ),
                            meta,
                        )
                        .await);
                }
                let event = envelope(
                    "1",
                    "CreateAuthChallenge_Authentication",
                    pool,
                    Some(&state.username),
                    Some(client.client_id.as_str()),
                    json!({
                        "userAttributes": attributes,
                        "challengeName": CUSTOM_CHALLENGE,
                        "session": state.steps,
                        "clientMetadata": client_metadata,
                        "userNotFound": user.is_none(),
                    }),
                );
                let response = self
                    .run_required(pool, Trigger::CreateAuthChallenge, &event, meta)
                    .await?;
                let created = string_map(&response, "publicChallengeParameters").and_then(|p| {
                    let private = string_map(&response, "privateChallengeParameters")?;
                    let metadata = match response.get("challengeMetadata") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => return Err("challengeMetadata must be a string".to_owned()),
                    };
                    Ok((p, private, metadata))
                });
                let (public, private, metadata) = match created {
                    Ok(c) => c,
                    Err(e) => {
                        return Err(self
                            .hook_nonsense(pool, nonsense(Trigger::CreateAuthChallenge, e), meta)
                            .await);
                    }
                };
                if let Some((jti, exp)) = &answered {
                    let mut w = self.store.write(pool.id).await?;
                    if !w.use_once(jti, now, Timestamp(*exp)).await? {
                        return Err(expired());
                    }
                    w.commit().await?;
                }
                state.private = private;
                state.metadata = metadata;
                state.jti = random_token().expose().to_owned();
                state.exp = now
                    .plus_secs(pool.settings.challenge_session_secs())
                    .as_secs();
                let session = self.seal_flow(pool, &state)?;
                let mut parameters = public;
                parameters.insert("USERNAME".to_owned(), Value::from(state.username.as_str()));
                Ok(CustomAuthOutcome::Challenge {
                    session,
                    parameters,
                })
            }
            Decision::Challenge(other) => Err(self
                .hook_nonsense(
                    pool,
                    nonsense(
                        Trigger::DefineAuthChallenge,
                        format!("challenge {other} is not offered by the custom flow"),
                    ),
                    meta,
                )
                .await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(v: Value) -> Result<Decision, String> {
        read_decision(v.as_object().unwrap())
    }

    #[test]
    fn define_decides_exactly_one_thing() {
        assert!(matches!(
            decide(json!({"issueTokens": true})),
            Ok(Decision::Issue)
        ));
        assert!(matches!(
            decide(json!({"issueTokens": null, "failAuthentication": true})),
            Ok(Decision::Fail)
        ));
        assert!(matches!(
            decide(json!({"challengeName": "CUSTOM_CHALLENGE", "issueTokens": false,
                          "failAuthentication": null})),
            Ok(Decision::Challenge(c)) if c == "CUSTOM_CHALLENGE"
        ));
        // Failing wins over anything else.
        assert!(matches!(
            decide(json!({"issueTokens": true, "failAuthentication": true})),
            Ok(Decision::Fail)
        ));
        for bad in [
            json!({}),
            json!({"issueTokens": "true"}),
            json!({"issueTokens": true, "challengeName": "CUSTOM_CHALLENGE"}),
            json!({"challengeName": 3}),
            json!({"challengeName": ""}),
        ] {
            assert!(decide(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn challenge_parameters_are_strings() {
        let ok = json!({"publicChallengeParameters": {"hint": "x"}});
        assert!(string_map(ok.as_object().unwrap(), "publicChallengeParameters").is_ok());
        let bad = json!({"publicChallengeParameters": {"n": 1}});
        assert!(string_map(bad.as_object().unwrap(), "publicChallengeParameters").is_err());
        let absent = json!({});
        assert!(
            string_map(absent.as_object().unwrap(), "privateChallengeParameters")
                .unwrap()
                .is_empty()
        );
    }
}
