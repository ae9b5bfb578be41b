#!/usr/bin/env python3
"""Drives a Gatehouse pool's Cognito API with boto3's `cognito-idp` client, unmodified.

Usage: cognito-client.py SCENARIO_JSON

SCENARIO_JSON holds endpoint_url (the pool's /cognito URL), client_id, client_secret (or
null for a public client), username, temporary_password, new_password and
changed_password. With a secret, every call carries SECRET_HASH as Cognito's documentation
computes it: Base64(HMAC-SHA256(secret, username + client id)). The client is pointed at
endpoint_url with unsigned requests, as a Cognito application would be by changing its
endpoint. It runs, in order: InitiateAuth USER_PASSWORD_AUTH (answered by
NEW_PASSWORD_REQUIRED), RespondToAuthChallenge, GetUser, REFRESH_TOKEN_AUTH, ChangePassword,
InitiateAuth with the changed password, GlobalSignOut, GetUser again (which must fail with
NotAuthorizedException), then RevokeToken of a fresh sign-in's refresh token and a refresh
with it (which must fail).

With "flow": "software_token" it enrolls a software token instead (codes from PyPI pyotp at
the server's clock, "now", since the test server's clock is its own): a sign-in,
AssociateSoftwareToken and VerifySoftwareToken with the access token, SetUserMFAPreference,
GetUser, then a sign-in answered by SOFTWARE_TOKEN_MFA (the enrollment's code again first,
which must fail, then the next step's code, then the same session again, which must fail).
With "flow": "custom_auth" it signs in through the pool's CUSTOM_AUTH hooks (see
custom_auth below). With "flow": "mfa_setup" the pool requires a factor the user does not have yet: InitiateAuth
answers MFA_SETUP, AssociateSoftwareToken and VerifySoftwareToken carry its Session, and
RespondToAuthChallenge MFA_SETUP with the Session they answered signs in (once). With
"flow": "email_otp" it turns e-mail codes on (SetUserMFAPreference) and answers EMAIL_OTP;
with "flow": "user_auth" it signs in through the choice-based USER_AUTH flow
(SELECT_CHALLENGE, PREFERRED_CHALLENGE). Both read the codes from the server's file outbox
(s["outbox"], the messages to s["email"]).

Prints one JSON object with every answer (tokens included, for the caller to check).
"""

import base64
import hashlib
import hmac
import json
import sys

import boto3
import pyotp
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def refused(call):
    """Runs call, which must raise botocore's ClientError: its code and message."""
    try:
        call()
    except ClientError as e:
        err = e.response.get("Error", {})
        return {
            "code": err.get("Code"),
            "message": err.get("Message"),
            "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        }
    raise SystemExit("the call was expected to fail, and succeeded")


def with_hash(params, secret, client_id, username):
    """params with SECRET_HASH added when the client has a secret."""
    if secret:
        digest = hmac.new(
            secret.encode(), (username + client_id).encode(), hashlib.sha256
        ).digest()
        params = dict(params, SECRET_HASH=base64.b64encode(digest).decode())
    return params


def client_of(s):
    return boto3.client(
        "cognito-idp",
        endpoint_url=s["endpoint_url"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


def software_token(s):
    """Enrolls a software token with an access token, then signs in with it."""
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]
    now = s["now"]

    def h(params):
        return with_hash(params, s.get("client_secret"), client_id, user)

    def password_sign_in():
        return idp.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=client_id,
            AuthParameters=h({"USERNAME": user, "PASSWORD": s["password"]}),
        )

    access = password_sign_in()["AuthenticationResult"]["AccessToken"]
    secret = idp.associate_software_token(AccessToken=access)["SecretCode"]
    out["secret"] = secret
    totp = pyotp.TOTP(secret)
    wrong = "000000" if totp.at(now) != "000000" else "111111"
    out["verify_wrong"] = refused(
        lambda: idp.verify_software_token(AccessToken=access, UserCode=wrong)
    )
    enrolled_with = totp.at(now)
    out["verify"] = idp.verify_software_token(AccessToken=access, UserCode=enrolled_with)["Status"]
    idp.set_user_mfa_preference(
        AccessToken=access,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    out["disable_refused"] = refused(
        lambda: idp.set_user_mfa_preference(
            AccessToken=access, SoftwareTokenMfaSettings={"Enabled": False}
        )
    )
    got = idp.get_user(AccessToken=access)
    out["get_user"] = {k: got.get(k) for k in ("UserMFASettingList", "PreferredMfaSetting")}

    challenged = password_sign_in()
    out["challenge"] = {k: challenged.get(k) for k in ("ChallengeName", "ChallengeParameters")}

    def answer(code):
        return idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=challenged["Session"],
            ChallengeResponses=h({"USERNAME": user, "SOFTWARE_TOKEN_MFA_CODE": code}),
        )

    # The code the enrollment used is spent for its time step.
    out["reused_code"] = refused(lambda: answer(enrolled_with))
    next_code = totp.at(now + 30)
    out["signed_in"] = answer(next_code)["AuthenticationResult"]
    out["session_again"] = refused(lambda: answer(next_code))
    return out


def mfa_setup(s):
    """A first sign-in in a pool that requires a second factor: MFA_SETUP."""
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]

    def h(params):
        return with_hash(params, s.get("client_secret"), client_id, user)

    first = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=client_id,
        AuthParameters=h({"USERNAME": user, "PASSWORD": s["password"]}),
    )
    out["initiate"] = {k: first.get(k) for k in ("ChallengeName", "ChallengeParameters")}
    associated = idp.associate_software_token(Session=first["Session"])
    verified = idp.verify_software_token(
        Session=associated["Session"],
        UserCode=pyotp.TOTP(associated["SecretCode"]).at(s["now"]),
    )
    out["verify"] = verified["Status"]

    def setup():
        return idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="MFA_SETUP",
            Session=verified["Session"],
            ChallengeResponses=h({"USERNAME": user}),
        )

    out["signed_in"] = setup()["AuthenticationResult"]
    out["setup_again"] = refused(setup)
    # The first session was used up by the verification.
    out["first_session_again"] = refused(
        lambda: idp.verify_software_token(Session=first["Session"], UserCode="123456")
    )
    return out


def custom_auth(s):
    """CUSTOM_AUTH through the pool's hooks: a wrong answer, a reused session, the right
    answer, then GetUser, a refresh and GlobalSignOut."""
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]

    def h(params):
        return with_hash(params, s.get("client_secret"), client_id, user)

    first = idp.initiate_auth(
        AuthFlow="CUSTOM_AUTH",
        ClientId=client_id,
        AuthParameters=h({"USERNAME": user}),
        ClientMetadata={"source": "boto3"},
    )
    out["initiate"] = {k: first.get(k) for k in ("ChallengeName", "ChallengeParameters")}

    def answer(session, value):
        return idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="CUSTOM_CHALLENGE",
            Session=session,
            ChallengeResponses=h({"USERNAME": user, "ANSWER": value}),
        )

    wrong = answer(first["Session"], "41")
    out["wrong"] = {k: wrong.get(k) for k in ("ChallengeName", "ChallengeParameters")}
    out["reused_session"] = refused(lambda: answer(first["Session"], s["answer"]))
    right = answer(wrong["Session"], s["answer"])
    tokens = right["AuthenticationResult"]
    out["tokens"] = tokens
    got = idp.get_user(AccessToken=tokens["AccessToken"])
    out["get_user"] = got["Username"]
    refreshed = idp.initiate_auth(
        AuthFlow="REFRESH_TOKEN_AUTH",
        ClientId=client_id,
        AuthParameters=h({"REFRESH_TOKEN": tokens["RefreshToken"], "USERNAME": user}),
    )
    out["refreshed"] = refreshed["AuthenticationResult"]["AccessToken"]
    idp.global_sign_out(AccessToken=tokens["AccessToken"])
    out["after_sign_out"] = refused(lambda: idp.get_user(AccessToken=tokens["AccessToken"]))

    # Three wrong answers: the define hook fails the sign-in.
    session = idp.initiate_auth(
        AuthFlow="CUSTOM_AUTH", ClientId=client_id, AuthParameters=h({"USERNAME": user})
    )["Session"]
    for _ in range(2):
        session = answer(session, "wrong")["Session"]
    out["three_wrong"] = refused(lambda: answer(session, "wrong"))
    return out


def emailed_code(s, sent_before):
    """The sign-in code sent to s["email"] after sent_before codes, read from the server's
    file outbox (s["outbox"]) as a user reads its mail."""
    codes = []
    with open(s["outbox"]) as f:
        for line in f:
            m = json.loads(line)
            if m.get("kind") == "sign_in_code" and m.get("to_email") == s["email"]:
                codes.append(m["body"].split(" is ")[1][:6])
    if len(codes) <= sent_before:
        raise SystemExit("no new sign-in code was sent")
    return codes[-1], len(codes)


def email_otp(s):
    """Turns e-mail codes on with SetUserMFAPreference, then signs in with the password and
    the EMAIL_OTP challenge (a wrong code first, then the right one, then the session again)."""
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]

    def h(params):
        return with_hash(params, s.get("client_secret"), client_id, user)

    def password_sign_in():
        return idp.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=client_id,
            AuthParameters=h({"USERNAME": user, "PASSWORD": s["password"]}),
        )

    access = password_sign_in()["AuthenticationResult"]["AccessToken"]
    idp.set_user_mfa_preference(
        AccessToken=access, EmailMfaSettings={"Enabled": True, "PreferredMfa": True}
    )
    got = idp.get_user(AccessToken=access)
    out["get_user"] = {k: got.get(k) for k in ("UserMFASettingList", "PreferredMfaSetting")}
    out["disable_refused"] = refused(
        lambda: idp.set_user_mfa_preference(
            AccessToken=access, EmailMfaSettings={"Enabled": False}
        )
    )
    challenged = password_sign_in()
    out["challenge"] = {k: challenged.get(k) for k in ("ChallengeName", "ChallengeParameters")}
    code, _ = emailed_code(s, 0)

    def answer(value):
        return idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="EMAIL_OTP",
            Session=challenged["Session"],
            ChallengeResponses=h({"USERNAME": user, "EMAIL_OTP_CODE": value}),
        )

    out["wrong_code"] = refused(lambda: answer("000000" if code != "000000" else "111111"))
    out["signed_in"] = answer(code)["AuthenticationResult"]
    out["session_again"] = refused(lambda: answer(code))
    return out


def user_auth(s):
    """The choice-based USER_AUTH flow: SELECT_CHALLENGE answered with EMAIL_OTP (passwordless)
    and with PASSWORD, and PREFERRED_CHALLENGE naming each."""
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]

    def h(params):
        return with_hash(params, s.get("client_secret"), client_id, user)

    def start(**extra):
        return idp.initiate_auth(
            AuthFlow="USER_AUTH",
            ClientId=client_id,
            AuthParameters=h(dict({"USERNAME": user}, **extra)),
        )

    def respond(name, session, **responses):
        return idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName=name,
            Session=session,
            ChallengeResponses=h(dict({"USERNAME": user}, **responses)),
        )

    select = start()
    out["select"] = {k: select.get(k) for k in ("ChallengeName", "AvailableChallenges")}
    emailed = respond("SELECT_CHALLENGE", select["Session"], ANSWER="EMAIL_OTP")
    out["emailed"] = {k: emailed.get(k) for k in ("ChallengeName", "ChallengeParameters")}
    code, sent = emailed_code(s, 0)
    out["passwordless"] = respond("EMAIL_OTP", emailed["Session"], EMAIL_OTP_CODE=code)[
        "AuthenticationResult"
    ]
    out["select_again"] = refused(
        lambda: respond("SELECT_CHALLENGE", select["Session"], ANSWER="EMAIL_OTP")
    )

    select = start()
    out["wrong_password"] = refused(
        lambda: respond("SELECT_CHALLENGE", select["Session"], ANSWER="PASSWORD", PASSWORD="nope")
    )
    out["with_password"] = respond(
        "SELECT_CHALLENGE", select["Session"], ANSWER="PASSWORD", PASSWORD=s["password"]
    )["AuthenticationResult"]

    out["preferred_password"] = start(PREFERRED_CHALLENGE="PASSWORD", PASSWORD=s["password"])[
        "AuthenticationResult"
    ]
    preferred = start(PREFERRED_CHALLENGE="EMAIL_OTP")
    out["preferred_email"] = preferred.get("ChallengeName")
    code, _ = emailed_code(s, sent)
    out["preferred_email_signed_in"] = respond(
        "EMAIL_OTP", preferred["Session"], EMAIL_OTP_CODE=code
    )["AuthenticationResult"]
    out["srp_refused"] = refused(lambda: start(PREFERRED_CHALLENGE="PASSWORD_SRP"))
    return out


def main():
    s = json.loads(sys.argv[1])
    flow = s.get("flow", "password")
    if flow == "custom_auth":
        print(json.dumps(custom_auth(s)))
        return
    if flow == "software_token":
        print(json.dumps(software_token(s)))
        return
    if flow == "mfa_setup":
        print(json.dumps(mfa_setup(s)))
        return
    if flow == "email_otp":
        print(json.dumps(email_otp(s)))
        return
    if flow == "user_auth":
        print(json.dumps(user_auth(s)))
        return
    idp = client_of(s)
    out = {}
    client_id = s["client_id"]
    user = s["username"]
    secret = s.get("client_secret")

    def h(params):
        return with_hash(params, secret, client_id, user)

    first = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=client_id,
        AuthParameters=h({"USERNAME": user, "PASSWORD": s["temporary_password"]}),
    )
    out["initiate"] = {k: first.get(k) for k in ("ChallengeName", "Session", "ChallengeParameters")}

    answered = idp.respond_to_auth_challenge(
        ClientId=client_id,
        ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=first["Session"],
        ChallengeResponses=h({"USERNAME": user, "NEW_PASSWORD": s["new_password"]}),
    )
    out["respond"] = answered["AuthenticationResult"]
    access = answered["AuthenticationResult"]["AccessToken"]
    refresh = answered["AuthenticationResult"]["RefreshToken"]

    # The same session again: single use.
    out["respond_again"] = refused(
        lambda: idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="NEW_PASSWORD_REQUIRED",
            Session=first["Session"],
            ChallengeResponses=h({"USERNAME": user, "NEW_PASSWORD": s["new_password"] + "x"}),
        )
    )

    got = idp.get_user(AccessToken=access)
    out["get_user"] = {k: got.get(k) for k in ("Username", "UserAttributes", "MFAOptions", "UserMFASettingList")}

    refreshed = idp.initiate_auth(
        AuthFlow="REFRESH_TOKEN_AUTH",
        ClientId=client_id,
        AuthParameters=h({"REFRESH_TOKEN": refresh, "USERNAME": user}),
    )
    out["refresh"] = refreshed["AuthenticationResult"]

    idp.change_password(
        AccessToken=access,
        PreviousPassword=s["new_password"],
        ProposedPassword=s["changed_password"],
    )
    out["wrong_password"] = refused(
        lambda: idp.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=client_id,
            AuthParameters=h({"USERNAME": user, "PASSWORD": s["new_password"]}),
        )
    )
    signed_in = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=client_id,
        AuthParameters=h({"USERNAME": user, "PASSWORD": s["changed_password"]}),
    )
    out["sign_in_changed"] = signed_in["AuthenticationResult"]

    idp.global_sign_out(AccessToken=signed_in["AuthenticationResult"]["AccessToken"])
    out["get_user_after_sign_out"] = refused(
        lambda: idp.get_user(AccessToken=signed_in["AuthenticationResult"]["AccessToken"])
    )

    fresh = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=client_id,
        AuthParameters=h({"USERNAME": user, "PASSWORD": s["changed_password"]}),
    )["AuthenticationResult"]
    revoke = {"Token": fresh["RefreshToken"], "ClientId": client_id}
    if secret:
        revoke["ClientSecret"] = secret
    idp.revoke_token(**revoke)
    out["refresh_after_revoke"] = refused(
        lambda: idp.initiate_auth(
            AuthFlow="REFRESH_TOKEN_AUTH",
            ClientId=client_id,
            AuthParameters=h({"REFRESH_TOKEN": fresh["RefreshToken"], "USERNAME": user}),
        )
    )
    out["revoked_family_access"] = fresh["AccessToken"]

    print(json.dumps(out))


if __name__ == "__main__":
    main()
