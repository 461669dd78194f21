"""schemathesis hooks for berth's contract run (`.ci/openapi`).

Two things no schema can say, supplied here so that schema-valid requests can really succeed:

- `application/wasm`: a positive upload sends a real ABI v1 module (the file named by
  `BERTH_CONTRACT_MODULE`); negative cases send the bytes schemathesis generated.
- `Stripe-Signature`: a positive delivery is signed with the tenant's webhook secret
  (`BERTH_CONTRACT_WEBHOOK_SECRET`) over the exact bytes sent, as Stripe signs; negative cases
  keep what schemathesis generated, so they are refused.
"""

import hashlib
import hmac
import json
import os
import time

import schemathesis
from schemathesis import GenerationMode

with open(os.environ["BERTH_CONTRACT_MODULE"], "rb") as module_file:
    MODULE = module_file.read()
WEBHOOK_SECRET = os.environ["BERTH_CONTRACT_WEBHOOK_SECRET"].encode()


def is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.serializer("application/wasm")
def wasm(ctx, value):
    if is_positive(ctx.case):
        return MODULE
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


@schemathesis.hook
def before_call(context, case, kwargs):
    if not case.operation.path.endswith("/webhooks/stripe") or not is_positive(case):
        return
    if not isinstance(case.body, dict):
        return
    payload = json.dumps(case.body).encode()
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET, b"%d." % stamp + payload, hashlib.sha256).hexdigest()
    kwargs["data"] = payload
    case.headers = {**(case.headers or {}), "Stripe-Signature": f"t={stamp},v1={mac}"}
