#!/usr/bin/env python3
"""Impersonates a user through BriteCore's published Python SDK, unmodified, as an integrator would.

Usage: britecore-sdk-impersonate.py --address IP --host NAME --client-id ID
                                    --client-secret SECRET --username USER [--site NAME]

The SDK gets its own token (client credentials with HTTP Basic at
https://NAME/api/auth/oauth2/token, scope https://NAME/api), then POSTs
/api/user-management/users/USER/impersonate with its own request code. The CA to trust
comes from SSL_CERT_FILE; TLS is verified as the SDK does by default. The one thing
changed is name resolution: NAME resolves to IP, standing in for DNS.

Prints {"token_request": {...}, "result": ...} on success. On an SDK error, prints
{"error": {...}, "token_request": {...}} to stderr and exits 1.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
from urllib.parse import quote


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="where --host resolves to")
    parser.add_argument("--host", required=True, help="the site's host name (the SDK's base_url)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--username", required=True, help="the user to impersonate")
    parser.add_argument("--site", help="the SDK's site name (default: first label of --host)")
    return parser.parse_args()


def resolve_host_to(host, address):
    """Makes exactly `host` resolve to `address`; every other name resolves as before."""
    real_getaddrinfo = socket.getaddrinfo
    wanted = host.rstrip(".").lower()

    def getaddrinfo(name, *args, **kwargs):
        text = name.decode() if isinstance(name, bytes) else name
        if isinstance(text, str) and text.rstrip(".").lower() == wanted:
            name = address
        return real_getaddrinfo(name, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def isolate_sdk_configuration(home):
    """The SDK layers settings from ~/.britecore, ./britecore.toml and BRITECORE_SDK_* /
    *_FOR_DYNACONF variables; keep all of those out so only the explicit arguments count."""
    for key in list(os.environ):
        if key.startswith("BRITECORE_") or key.endswith("_FOR_DYNACONF") or key == "target_site":
            del os.environ[key]
    os.environ["HOME"] = home
    os.chdir(home)


def token_state(client):
    token = getattr(client, "token_class", None)
    if token is None:
        return None
    return {
        "got_token": bool(token.token),
        "access_token": token.token or None,
        "scope": token.scope,
        "url": token.url,
    }


def main():
    args = parse_args()
    if not os.environ.get("SSL_CERT_FILE"):
        sys.exit("SSL_CERT_FILE must name the CA certificate to trust")
    # The CA path may be relative to where we were started.
    os.environ["SSL_CERT_FILE"] = os.path.abspath(os.environ["SSL_CERT_FILE"])
    resolve_host_to(args.host, args.address)

    with tempfile.TemporaryDirectory() as home:
        isolate_sdk_configuration(home)
        # Imported only now: the SDK discovers its settings files at import.
        from britecore_sdk.api import BritecoreAPIClient
        from britecore_sdk.exceptions import BritecoreError
        from urllib3.exceptions import HTTPError

        client = None
        response = None
        try:
            client = BritecoreAPIClient(args.site or args.host.split(".")[0]).init_client(
                base_url=args.host,
                client_id=args.client_id,
                client_secret=args.client_secret,
            )
            response = client.do_request(
                f"/api/user-management/users/{quote(args.username, safe='')}/impersonate",
                method="POST",
            )
            result = client.process_result(response)
        # The SDK lets transport errors of its token request (TLS, connection) through as
        # urllib3's own.
        except (BritecoreError.Base, HTTPError) as e:
            error = {
                "type": type(e).__name__,
                "message": getattr(e, "message", str(e)),
                "status_code": getattr(e, "status_code", None),
                "http_status": getattr(e, "http_status", None),
                "error_code": getattr(e, "error_code", None),
            }
            # The SDK drops the body of a failed response; keep it for diagnosis.
            if response is not None:
                error["response_status"] = response.status
                error["response_body"] = response.data.decode("utf-8", "replace")[:2000]
            print(json.dumps({"error": error, "token_request": token_state(client)}),
                  file=sys.stderr)
            return 1

        print(json.dumps({"token_request": token_state(client), "result": result}))
        return 0


if __name__ == "__main__":
    sys.exit(main())
