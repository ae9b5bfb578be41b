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
RespondToAuthChallenge MFA_SETUP with the Session they answered signs in (once).

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
