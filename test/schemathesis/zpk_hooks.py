"""Schemathesis hooks for zpk (loaded through SCHEMATHESIS_HOOKS by test/e2e/openapi-schemathesis.test.ts).

The credential is a customer key issued through the internal IssueKey RPC (Connect JSON on PORT
with the internal token). The stateful phase revokes keys it finds in lists, the one it
authenticates with among them, so a 401 makes Schemathesis drop the cached key and ask again
(its reactive re-authentication: `retry_on` 401), and `get` issues a fresh key of the same customer.
Requests alternate between the two schemes of the document, `Authorization: Bearer` and `X-API-Key`.
"""

import itertools
import json
import os
import urllib.request

import schemathesis

BASE_URL = os.environ["ZPK_URL"]
INTERNAL_TOKEN = os.environ["ZPK_INTERNAL_TOKEN"]
CUSTOMER_ID = os.environ["ZPK_CUSTOMER_ID"]
ISSUED_LOG = os.environ.get("ZPK_ISSUED_LOG")

_alternate = itertools.count()


@schemathesis.auth(refresh_interval=3600, retry_on=[401])
class FreshCustomerKey:
    def get(self, case, ctx):
        request = urllib.request.Request(
            f"{BASE_URL}/apikeys.v1.ApiKeyService/IssueKey",
            data=json.dumps({"customerId": CUSTOMER_ID, "name": "schemathesis"}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {INTERNAL_TOKEN}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            secret = json.load(response)["secret"]
        if ISSUED_LOG:
            with open(ISSUED_LOG, "a") as log:
                log.write("issued\n")
        return secret

    def set(self, case, data, ctx):
        case.headers = dict(case.headers or {})
        case.headers.pop("Authorization", None)
        case.headers.pop("X-API-Key", None)
        if next(_alternate) % 2 == 0:
            case.headers["Authorization"] = f"Bearer {data}"
        else:
            case.headers["X-API-Key"] = data
