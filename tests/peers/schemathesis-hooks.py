"""Schemathesis hooks for the contract tests.

The fuzzer acts through one app client's token, and the API lets a client delete itself (it
holds every permission it would need). Once the fuzzer has learned that client's id from a
listing, it would delete it, and every later request would be answered 401, which tests
nothing. So a request that would delete the acting client is sent for an id that does not
exist instead; the operation is still exercised, with every other value the fuzzer makes.
"""

import os

import schemathesis

ACTING_CLIENT = os.environ.get("GATEHOUSE_FUZZ_CLIENT_ID", "")
STAND_IN = "the-acting-client-is-not-deleted"


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if (
        ACTING_CLIENT
        and case.method.upper() == "DELETE"
        and case.operation.path == "/user-management/app-clients/{id}"
        and params
        and params.get("id") == ACTING_CLIENT
    ):
        params["id"] = STAND_IN
