"""schemathesis hooks for scripts/schemathesis.sh (its `webhooks-signed` group).

Signs each webhook delivery the way DCS does: `X-Webhook-Signature: sha256=` + the lowercase hex
HMAC-SHA256 of the exact body bytes, keyed with the secret the server under test was started
with (SCHEMATHESIS_WEBHOOK_SECRET). Without it schemathesis only ever reaches the refusals
(401); signed, the generated deliveries reach the parser, the event log and the cache
invalidation, and those answers (200, 400 `webhook_body_malformed`, ...) are schema-checked.

The body is left as schemathesis generated it, so its positive/negative labels still hold; the
signature is computed over the bytes the transport will send for it. A case without the header
(a test of the header's absence) is left without it.
"""

import hashlib
import hmac
import os

import requests.compat
import schemathesis
from schemathesis.core import NotSet

DELIVERY_PATH = "/api/v1/webhooks/dream-storage"
SECRET = os.environ["SCHEMATHESIS_WEBHOOK_SECRET"].encode()


def sent_bytes(body) -> bytes:
    """The bytes schemathesis's requests transport sends for a JSON body (see
    `schemathesis.transport.serialization.serialize_json` and `requests.models.prepare_body`)."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    if not isinstance(body, (dict, list, str, int, float, bool)):
        # `Binary` values: sent as their string form.
        body = str(body)
    return requests.compat.json.dumps(body, allow_nan=False).encode("utf-8")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.operation.path != DELIVERY_PATH:
        return
    headers = dict(case.headers or {})
    names = [name for name in headers if name.lower() == "x-webhook-signature"]
    if not names:
        # A case without the header is a test of its absence: it stays absent.
        return
    digest = hmac.new(SECRET, sent_bytes(case.body), hashlib.sha256).hexdigest()
    for name in names:
        headers[name] = f"sha256={digest}"
    case.headers = headers
