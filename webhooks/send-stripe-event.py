#!/usr/bin/env python3
"""Signs a Stripe event the way Stripe does and posts it to a running berth.

Python standard library only. The event is one of the examples in webhooks/stripe/ (or any
Stripe event JSON). By default it gets a fresh event id and `created` = now, so sending the same
file twice makes two events; --keep-id sends it as a redelivery instead. With --site-name it is
also a new checkout session and subscription (a payment-first signup), unless --keep-id.

Examples (berth on the embedded default, secret from the environment):

    export STRIPE_WEBHOOK_SECRET=whsec_local_try_it_out
    # Pay for a site that signed up on a paid tenant (its id is on its status page):
    webhooks/send-stripe-event.py webhooks/stripe/checkout.session.completed.json --site site_… --ago 10d
    # Pay first: the checkout creates the site
    webhooks/send-stripe-event.py webhooks/stripe/checkout.session.completed.payment-first.json \\
        --site-name tea-room --email dan@example.com
    # Four days past due (the default grace period is three): the site is suspended
    webhooks/send-stripe-event.py webhooks/stripe/customer.subscription.updated.past_due.json --ago 4d
    webhooks/send-stripe-event.py webhooks/stripe/invoice.paid.json
    webhooks/send-stripe-event.py webhooks/stripe/customer.subscription.deleted.json

Exit status: 0 when berth answered 2xx, 1 otherwise, 2 on a usage error.
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request


def duration(value):
    """A duration like 4d, 2h, 30m or 90s, in seconds."""
    match = re.fullmatch(r"(\d+)([smhd])", value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 4d, 2h, 30m or 90s")
    amount, unit = match.groups()
    return int(amount) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def set_path(event, dotted, value):
    """Sets event[a][b][c] for `a.b.c`, creating objects on the way."""
    *parents, last = dotted.split(".")
    node = event
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def sign(body, secret, timestamp):
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("utf-8") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", help="a Stripe event JSON file, e.g. webhooks/stripe/invoice.paid.json")
    parser.add_argument(
        "--secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET"),
        help="the tenant's webhook secret (whsec_…); default: $STRIPE_WEBHOOK_SECRET",
    )
    parser.add_argument("--berth", default="http://127.0.0.1:8080", help="berth's API base URL (default: %(default)s)")
    parser.add_argument("--tenant", help="post to /t/<tenant>/webhooks/stripe instead of /webhooks/stripe")
    parser.add_argument("--site", help="the site id to pay for (data.object.client_reference_id)")
    parser.add_argument("--site-name", help="pay first: the name of the site to create (metadata.site_name)")
    parser.add_argument("--email", help="pay first: the customer's email (customer_details.email)")
    parser.add_argument("--plan", help="metadata.plan: a plan name or price id of the tenant")
    parser.add_argument("--ago", type=duration, default=0, metavar="DURATION", help="date the event (its `created`) back by 4d, 2h, 30m, … (default: now)")
    parser.add_argument("--created", type=int, help="the event's `created`, in Unix seconds (instead of --ago)")
    parser.add_argument("--keep-id", action="store_true", help="keep the file's event id (a redelivery is stored once)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=JSON", help="set a field, e.g. data.object.status='\"unpaid\"' (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
    args = parser.parse_args()

    if not args.secret:
        parser.error("give --secret or set STRIPE_WEBHOOK_SECRET")
    with open(args.event, encoding="utf-8") as f:
        event = json.load(f)
    if not args.keep_id:
        event["id"] = "evt_" + secrets.token_hex(12)
    event["created"] = args.created if args.created is not None else int(time.time()) - args.ago
    obj = event.setdefault("data", {}).setdefault("object", {})
    if args.site:
        obj["client_reference_id"] = args.site
    if args.site_name:
        obj["client_reference_id"] = None
        obj.setdefault("metadata", {})["site_name"] = args.site_name
        if not args.keep_id:
            # A new checkout and subscription: berth finds the site of a checkout it has seen by
            # the session id, and the site of later events by the subscription.
            obj["id"] = "cs_test_" + secrets.token_hex(16)
            obj["subscription"] = "sub_test_" + secrets.token_hex(8)
    if args.email:
        obj.setdefault("customer_details", {})["email"] = args.email
    if args.plan:
        obj.setdefault("metadata", {})["plan"] = args.plan
    for assignment in args.set:
        path, _, raw = assignment.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        set_path(event, path, value)

    body = json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")
    path = f"/t/{args.tenant}/webhooks/stripe" if args.tenant else "/webhooks/stripe"
    url = args.berth.rstrip("/") + path
    signature = sign(body, args.secret, int(time.time()))
    if args.dry_run:
        print(f"POST {url}\nStripe-Signature: {signature}\nContent-Type: application/json\n")
        print(body.decode("utf-8"))
        return 0

    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) berth-send-stripe-event",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read().decode("utf-8", "replace")
    except urllib.error.URLError as error:
        print(f"cannot reach {url}: {error.reason}", file=sys.stderr)
        return 1
    print(f"{event['type']} {event['id']} → {status} {answer}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
