#!/usr/bin/env python3
"""Drives Pigeon's Reach messaging API with the official Python client, reach-talkylabs 1.0.0.

The client is used as published: the only change is its base URL
(`client.api.base_url = ...`, the documented way to point it at another server).

Arguments (each also read from an environment variable):
  --base-url        Pigeon's URL, e.g. http://127.0.0.1:8080          (PIGEON_URL)
  --api-user        the account's email, sent as ApiUser               (REACH_TALKYLABS_API_USER)
  --api-key         the account's API key, sent as ApiKey              (REACH_TALKYLABS_API_KEY)
  --callback-url    the statusCallback URL, a receiver that records    (REACH_CALLBACK_URL)
  --callbacks-file  where the receiver appends what it got, one JSON   (REACH_CALLBACKS_FILE)
                    object a line: {"method", "path" (path and query), "contentType",
                    "signature" (the X-Reach-Signature header), "params" ([[name, value], ...])}
  --timeout         seconds to wait for a status callback (default 30)

Prints one line per step; on the first failure prints `FAIL <step>: <reason>` and exits 1.
"""

import argparse
import datetime
import json
import os
import sys
import time
import traceback
import uuid
from urllib.parse import urlparse

from talkylabs.reach.base.exceptions import ReachException, ReachRestException
from talkylabs.reach.request_validator import RequestValidator
from talkylabs.reach.rest import ReachClient

DEST = "+33612345678"
SRC = "+33600000001"
BULK_SIZE = 25
PAGE_SIZE = 10
FINAL = {"delivered", "failed", "canceled", "undelivered"}


class Failure(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def describe(message):
    """The fields of a MessagingItemInstance, for failure messages."""
    return str(message)


def rest_error(what, call):
    """Runs `call`, which must raise the client's ReachRestException; returns it."""
    try:
        result = call()
    except ReachRestException as e:
        return e
    except ReachException as e:
        raise Failure(f"{what}: raised {type(e).__name__} {e!r}, not ReachRestException")
    raise Failure(f"{what}: no error, got {result if isinstance(result, bool) else describe(result)}")


def show_error(e):
    return f"status={e.status} code={e.code} msg={e.msg!r} details={e.details!r}"


class Run:
    def __init__(self, args):
        self.args = args
        self.step_count = 0
        self.client = ReachClient(args.api_user, args.api_key)
        self.client.api.base_url = args.base_url
        self.items = self.client.messaging.messaging_items
        self.bulk = "compat-" + uuid.uuid4().hex[:12]

    def step(self, name, function):
        self.step_count += 1
        try:
            detail = function()
        except Failure as e:
            print(f"FAIL {name}: {e}", flush=True)
            sys.exit(1)
        except ReachRestException as e:
            print(f"FAIL {name}: unexpected ReachRestException {show_error(e)}", flush=True)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - any other error is a failure of this step
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            sys.exit(1)
        print(f"ok   {name}" + (f": {detail}" if detail else ""), flush=True)

    # Status callbacks, as the receiver recorded them.

    def callbacks(self):
        path = self.args.callbacks_file
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            text = f.read()
        records = []
        for line in text.split("\n")[:-1]:  # a last line without its newline is still being written
            if line.strip():
                records.append(json.loads(line))
        return records

    def callbacks_for(self, message_id):
        return [
            r for r in self.callbacks() if dict(r.get("params", [])).get("messageId") == message_id
        ]

    def wait_callback(self, message_id, status):
        deadline = time.monotonic() + self.args.timeout
        while True:
            seen = self.callbacks_for(message_id)
            if any(dict(r["params"]).get("status") == status for r in seen):
                return seen
            if time.monotonic() > deadline:
                statuses = [dict(r["params"]).get("status") for r in seen]
                raise Failure(
                    f"no `{status}` callback for {message_id} after {self.args.timeout}s; "
                    f"its callbacks so far: {statuses}; all callbacks: {len(self.callbacks())}"
                )
            time.sleep(0.1)

    # The steps.

    def run(self):
        s = self.step
        s("client: ReachClient with base_url " + self.args.base_url, self.check_client)
        s("send: an immediate message with statusCallback", self.send_now)
        s("send: a 200-character message counts 2 segments", self.send_long)
        s("send: a message scheduled 1 h ahead is `scheduled`", self.send_scheduled)
        s("send: scheduledTime 5 min or 6 days ahead is refused (4xx)", self.schedule_window)
        s("fetch: the scheduled message", self.fetch_scheduled)
        s("delete: refused while the message is scheduled (4xx)", self.delete_in_progress)
        s(f"send: {BULK_SIZE} messages with a bulkIdentifier", self.send_bulk)
        s(f"list: all {BULK_SIZE} by bulkIdentifier, page_size={PAGE_SIZE}", self.list_bulk)
        s("page: the page objects and next_page()", self.pages)
        s("stream: limit=15 with page_size=10", self.stream_limit)
        s("page: a page past the end is empty", self.page_out_of_range)
        s("callback: the immediate message reports `queued`, then `sent`", self.wait_sent)
        s("update: the sent message's body", self.update_body)
        s("unschedule: the scheduled message becomes `canceled`", self.unschedule)
        s("callback: the unscheduled message reports `canceled`", self.wait_canceled)
        s("delete: the canceled message (True), then fetching it is a 404", self.delete_canceled)
        s("fetch: an unknown messageId is a 404 with Pigeon's error", self.fetch_unknown)
        s("auth: a wrong ApiKey or ApiUser is a 401", self.bad_credentials)
        s("callback: X-Reach-Signature validates with RequestValidator", self.validate_callbacks)
        print(f"PASS all {self.step_count} steps", flush=True)

    def check_client(self):
        check(self.client.api.base_url == self.args.base_url, "base_url did not stick")
        check(
            self.client.api.absolute_url("rest/messaging/v1/create")
            == self.args.base_url.rstrip("/") + "/rest/messaging/v1/create",
            "unexpected URL " + self.client.api.absolute_url("rest/messaging/v1/create"),
        )

    def check_item(self, m, body, status=None, statuses=None):
        check(m.messageId and m.messageId.startswith("MID"), f"messageId {m.messageId!r}: {describe(m)}")
        if status is not None:
            check(m.status == status, f"status {m.status!r}, expected {status!r}: {describe(m)}")
        if statuses is not None:
            check(m.status in statuses, f"status {m.status!r}, expected one of {statuses}: {describe(m)}")
        check(m.dest == DEST, f"dest {m.dest!r}, expected {DEST!r}")
        check(m.src == SRC, f"src {m.src!r}, expected {SRC!r}")
        check(m.body == body, f"body {m.body!r}, expected {body!r}")
        check(m.messageType == "outbound", f"messageType {m.messageType!r}, expected 'outbound'")
        for field in ("dateCreated", "dateUpdated"):
            value = getattr(m, field)
            check(
                isinstance(value, datetime.datetime),
                f"{field} {value!r} is not a date the client parses (YYYY-MM-DDTHH:MM:SS[.mmm]Z)",
            )

    def send_now(self):
        body = "Hello from reach-talkylabs"
        m = self.items.send(dest=DEST, src=SRC, body=body, status_callback=self.args.callback_url)
        self.check_item(m, body, statuses={"queued", "sending", "sent"})
        check(m.numSegments == 1, f"numSegments {m.numSegments!r}, expected 1")
        check(m.numMedia == 0, f"numMedia {m.numMedia!r}, expected 0")
        check(m.errorCode is None, f"errorCode {m.errorCode!r}, expected null")
        self.now_id = m.messageId
        self.now_body = body
        return f"{m.messageId} {m.status}"

    def send_long(self):
        body = "0123456789" * 20
        m = self.items.send(dest=DEST, src=SRC, body=body)
        self.check_item(m, body)
        check(m.numSegments == 2, f"numSegments {m.numSegments!r}, expected 2 for 200 GSM-7 characters")
        return f"{m.messageId} numSegments=2"

    def send_scheduled(self):
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        body = "Scheduled by reach-talkylabs"
        m = self.items.send(
            dest=DEST,
            src=SRC,
            body=body,
            scheduled_time=at,
            status_callback=self.args.callback_url,
        )
        self.check_item(m, body, status="scheduled")
        self.scheduled_id = m.messageId
        self.scheduled_body = body
        return m.messageId

    def schedule_window(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        out = []
        for label, delta in (("5 min", datetime.timedelta(minutes=5)), ("6 days", datetime.timedelta(days=6))):
            e = rest_error(
                f"scheduledTime {label} ahead",
                lambda: self.items.send(dest=DEST, src=SRC, body="too soon or too late", scheduled_time=now + delta),
            )
            check(400 <= e.status < 500, f"scheduledTime {label} ahead: {show_error(e)}")
            check(e.code == 20000 + e.status, f"scheduledTime {label} ahead: errorCode {e.code!r}, expected {20000 + e.status}")
            out.append(f"{label} -> {e.status}")
        return ", ".join(out)

    def fetch_scheduled(self):
        m = self.items.get().fetch(message_id=self.scheduled_id)
        check(m.messageId == self.scheduled_id, f"fetched {m.messageId!r}, asked {self.scheduled_id!r}")
        self.check_item(m, self.scheduled_body, status="scheduled")
        return m.messageId

    def delete_in_progress(self):
        e = rest_error("delete of a scheduled message", lambda: self.items.get().delete(message_id=self.scheduled_id))
        check(400 <= e.status < 500, show_error(e))
        m = self.items.get().fetch(message_id=self.scheduled_id)
        check(m.status == "scheduled", f"after the refused delete the status is {m.status!r}")
        return f"{e.status} {e.msg}"

    def send_bulk(self):
        self.bulk_ids = []
        for i in range(BULK_SIZE):
            m = self.items.send(dest=DEST, src=SRC, body=f"bulk message {i}", bulk_identifier=self.bulk)
            check(m.bulkId == self.bulk, f"message {i}: bulkId {m.bulkId!r}, expected {self.bulk!r}")
            check(m.messageId not in self.bulk_ids, f"message {i}: messageId {m.messageId} given twice")
            self.bulk_ids.append(m.messageId)
        return f"bulkIdentifier {self.bulk}"

    def list_bulk(self):
        listed = self.items.list(bulk_identifier=self.bulk, page_size=PAGE_SIZE)
        ids = [m.messageId for m in listed]
        check(len(ids) == len(set(ids)), f"duplicates in the listing: {ids}")
        check(
            len(ids) == BULK_SIZE,
            f"listed {len(ids)} messages, expected {BULK_SIZE}; missing {sorted(set(self.bulk_ids) - set(ids))}",
        )
        check(all(m.bulkId == self.bulk for m in listed), "a listed message has another bulkId")
        newest_first = list(reversed(self.bulk_ids))
        check(ids == newest_first, f"not newest first:\n  listed   {ids}\n  expected {newest_first}")
        dates = [m.dateCreated for m in listed]
        check(all(isinstance(d, datetime.datetime) for d in dates), f"unparsed dateCreated in {dates}")
        check(all(a >= b for a, b in zip(dates, dates[1:])), f"dateCreated not descending: {dates}")
        self.listed_ids = ids
        return f"{len(ids)} messages, newest first, no duplicates"

    def pages(self):
        page = self.items.page(bulk_identifier=self.bulk, page_size=PAGE_SIZE)
        seen = []
        expected_sizes = [PAGE_SIZE, PAGE_SIZE, BULK_SIZE - 2 * PAGE_SIZE]
        for number, size in enumerate(expected_sizes):
            check(page is not None, f"page {number} missing: next_page() gave None")
            p = page._payload  # read only: the page object the server answered
            check(p.get("page") == number, f"page {number}: page={p.get('page')!r}")
            check(p.get("pageSize") == PAGE_SIZE, f"page {number}: pageSize={p.get('pageSize')!r}")
            check(p.get("totalMessages") == BULK_SIZE, f"page {number}: totalMessages={p.get('totalMessages')!r}")
            check(p.get("totalPages") == 3, f"page {number}: totalPages={p.get('totalPages')!r}")
            check(p.get("outOfPageRange") is False, f"page {number}: outOfPageRange={p.get('outOfPageRange')!r}")
            records = [m.messageId for m in page]
            check(len(records) == size, f"page {number}: {len(records)} records, expected {size}")
            seen.extend(records)
            page = page.next_page()
        check(page is None, "a fourth page was announced")
        check(seen == self.listed_ids, f"pages give {seen}, list() gave {self.listed_ids}")
        return "pages 0, 1, 2 of 10, 10, 5"

    def stream_limit(self):
        streamed = [m.messageId for m in self.items.stream(bulk_identifier=self.bulk, page_size=PAGE_SIZE, limit=15)]
        check(streamed == self.listed_ids[:15], f"stream gave {streamed}, expected {self.listed_ids[:15]}")
        return "15 messages"

    def page_out_of_range(self):
        page = self.items.page(bulk_identifier=self.bulk, page_number=5, page_size=PAGE_SIZE)
        records = list(page)
        check(records == [], f"page 5 has {len(records)} records")
        check(page._payload.get("outOfPageRange") is True, f"outOfPageRange={page._payload.get('outOfPageRange')!r}")
        check(page.next_page() is None, "a page after the out-of-range one was announced")
        return "0 records, outOfPageRange true"

    def wait_sent(self):
        seen = self.wait_callback(self.now_id, "sent")
        order = [dict(r["params"]).get("status") for r in seen]
        check(order[:2] == ["queued", "sent"], f"callbacks in order {order}, wanted queued then sent")
        m = self.items.get().fetch(message_id=self.now_id)
        check(m.status in {"sent", "delivered"}, f"after the `sent` callback the message is {m.status!r}")
        check(isinstance(m.dateSent, datetime.datetime), f"dateSent {m.dateSent!r} is not a parsed date")
        return "callbacks: " + ", ".join(dict(r["params"]).get("status", "?") for r in seen)

    def update_body(self):
        body = "[redacted]"
        m = self.items.get().update(message_id=self.now_id, body=body)
        check(m.messageId == self.now_id, f"update answered {m.messageId!r}")
        check(m.body == body, f"update answered body {m.body!r}")
        fetched = self.items.get().fetch(message_id=self.now_id)
        check(fetched.body == body, f"fetched body {fetched.body!r} after the update")
        check(fetched.status in {"sent", "delivered"}, f"the update changed the status to {fetched.status!r}")
        return f"{self.now_id} body {body!r}"

    def unschedule(self):
        m = self.items.get().unschedule(message_id=self.scheduled_id)
        check(m.messageId == self.scheduled_id, f"unschedule answered {m.messageId!r}")
        check(m.status == "canceled", f"unschedule answered status {m.status!r}")
        fetched = self.items.get().fetch(message_id=self.scheduled_id)
        check(fetched.status == "canceled", f"fetched status {fetched.status!r} after unschedule")
        return self.scheduled_id

    def wait_canceled(self):
        seen = self.wait_callback(self.scheduled_id, "canceled")
        return "callbacks: " + ", ".join(dict(r["params"]).get("status", "?") for r in seen)

    def delete_canceled(self):
        deleted = self.items.get().delete(message_id=self.scheduled_id)
        check(deleted is True, f"delete returned {deleted!r} (True only for HTTP 204)")
        e = rest_error("fetch after delete", lambda: self.items.get().fetch(message_id=self.scheduled_id))
        check(e.status == 404, f"fetch after delete: {show_error(e)}")
        return "404 afterwards"

    def fetch_unknown(self):
        # One id of no known shape, one shaped like Pigeon's own ids (never issued).
        unknowns = ["MID" + "f" * 32, "MID" + "999999".rjust(max(len(self.now_id) - 3, 6), "0")]
        out = []
        for unknown in unknowns:
            e = rest_error(f"fetch of {unknown}", lambda: self.items.get().fetch(message_id=unknown))
            check(e.status == 404, f"{unknown}: {show_error(e)}")
            check(e.code == 20404, f"{unknown}: errorCode {e.code!r}, expected 20404: {show_error(e)}")
            prefix = "Unable to fetch record: "
            check(
                isinstance(e.msg, str) and e.msg.startswith(prefix) and len(e.msg) > len(prefix),
                f"{unknown}: no errorMessage in {e.msg!r} (the client shows `{prefix}<errorMessage>`)",
            )
            check(str(e).startswith("HTTP 404 error: ") or "HTTP Error" in str(e), f"str(e) = {str(e)!r}")
            out.append(f"{e.code} {e.msg!r} details={e.details!r}")
        return "; ".join(out)

    def bad_credentials(self):
        out = []
        for label, user, key in (
            ("wrong ApiKey", self.args.api_user, self.args.api_key + "x"),
            ("wrong ApiUser", "nobody@example.com", self.args.api_key),
        ):
            client = ReachClient(user, key)
            client.api.base_url = self.args.base_url
            items = client.messaging.messaging_items
            for call, action in (
                ("fetch", lambda: items.get().fetch(message_id=self.now_id)),
                ("send", lambda: items.send(dest=DEST, src=SRC, body="not with these credentials")),
            ):
                e = rest_error(f"{label} {call}", action)
                check(e.status == 401, f"{label} {call}: {show_error(e)}")
                check(e.code == 20401, f"{label} {call}: errorCode {e.code!r}, expected 20401")
            out.append(f"{label} -> 401")
        return ", ".join(out)

    def validate_callbacks(self):
        expected = urlparse(self.args.callback_url)
        expected_path = expected.path + ("?" + expected.query if expected.query else "")
        validator = RequestValidator(self.args.api_key)
        ours = {self.now_id: self.now_body, self.scheduled_id: self.scheduled_body}
        records = [r for r in self.callbacks() if dict(r.get("params", [])).get("messageId") in ours]
        check(records, "no callbacks recorded for this run's messages")
        statuses = []
        for i, r in enumerate(records):
            pairs = r.get("params", [])
            params = dict(pairs)
            where = f"callback {i} ({params.get('messageId')} {params.get('status')})"
            check(r.get("method") == "POST", f"{where}: method {r.get('method')!r}")
            check(r.get("path") == expected_path, f"{where}: sent to {r.get('path')!r}, expected {expected_path!r}")
            content_type = (r.get("contentType") or "").split(";")[0].strip().lower()
            check(content_type == "application/x-www-form-urlencoded", f"{where}: Content-Type {r.get('contentType')!r}")
            check(len(params) == len(pairs), f"{where}: repeated parameters {pairs}")
            for field in ("messageId", "status", "dest", "src", "body", "dateUpdated"):
                check(field in params, f"{where}: no `{field}` parameter in {sorted(params)}")
            check(params["dest"] == DEST, f"{where}: dest {params['dest']!r}")
            check(params["src"] == SRC, f"{where}: src {params['src']!r}")
            signature = r.get("signature")
            check(signature, f"{where}: no X-Reach-Signature header")
            check(
                validator.validate(self.args.callback_url, params, signature) is True,
                f"{where}: signature {signature!r} does not validate over {self.args.callback_url!r} "
                f"and {params}; expected {validator.compute_signature(self.args.callback_url, params)!r}",
            )
            tampered = dict(params, status=params["status"] + "x")
            check(
                validator.validate(self.args.callback_url, tampered, signature) is False,
                f"{where}: a tampered status still validates",
            )
            tampered = dict(params, body=params["body"] + "!")
            check(
                validator.validate(self.args.callback_url, tampered, signature) is False,
                f"{where}: a tampered body still validates",
            )
            check(
                RequestValidator(self.args.api_key + "x").validate(self.args.callback_url, params, signature) is False,
                f"{where}: validates with another key",
            )
            statuses.append(f"{params['messageId'][-6:]}:{params['status']}")
        return f"{len(records)} callbacks valid, tampered ones refused ({', '.join(statuses)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--base-url", default=env("PIGEON_URL"))
    parser.add_argument("--api-user", default=env("REACH_TALKYLABS_API_USER"))
    parser.add_argument("--api-key", default=env("REACH_TALKYLABS_API_KEY"))
    parser.add_argument("--callback-url", default=env("REACH_CALLBACK_URL"))
    parser.add_argument("--callbacks-file", default=env("REACH_CALLBACKS_FILE"))
    parser.add_argument("--timeout", type=float, default=float(env("REACH_CALLBACK_TIMEOUT", "30")))
    args = parser.parse_args()
    missing = [name for name in ("base_url", "api_user", "api_key", "callback_url", "callbacks_file") if not getattr(args, name)]
    if missing:
        parser.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    Run(args).run()


if __name__ == "__main__":
    main()
