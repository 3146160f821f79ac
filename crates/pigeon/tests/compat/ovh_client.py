#!/usr/bin/env python3
"""Drives Pigeon's OVH SMS API (`/1.0`) with the official Python client, ovh 1.2.0.

The client is used as published: the only change is one more entry in its endpoint map
(`ovh.client.ENDPOINTS["pigeon"] = <base>/1.0`, then `ovh.Client(endpoint="pigeon", ...)`), the
way to point it at a server that is not one of OVHcloud's regions. It syncs its clock with
`GET /1.0/auth/time` and signs every call with `X-Ovh-Signature` itself.

Arguments (each also read from an environment variable):
  --base-url            Pigeon's URL, e.g. http://127.0.0.1:8080          (PIGEON_URL)
  --application-key     the application key (AK)                          (OVH_APPLICATION_KEY)
  --application-secret  the application secret (AS)                       (OVH_APPLICATION_SECRET)
  --consumer-key        the consumer key (CK)                             (OVH_CONSUMER_KEY)
  --service-name        the one SMS service expected, e.g. sms-alice-1    (OVH_SERVICE_NAME)
  --callback-url        the account's callBack: a receiver of GET ?id=&dlr= (OVH_CALLBACK_URL)
  --receiver            a valid number to send to (default +33612345678)
  --incoming-number     the number whose SMS was injected before the run  (default +33611111111)
  --incoming-text       that SMS's text                                   (default "Bonjour Pigeon")
  --stop-number         a number that sent STOP before the run            (default +33622222222)
  --timeout             seconds to wait for the sent job to leave the queue, and then for its
                        delivery report when --wait-delivery is given (default 30)
  --wait-delivery       also wait until the sent job's deliveryReceipt is 1 (the caller reports
                        the delivery to Pigeon when the callBack gets `dlr=8`)

Prints one line per step and `JOB_ID=<id>` for the job sent now; on the first failure prints
`FAIL <step>: <reason>` and exits 1; `PASS all <n> steps` at the end.
"""

import argparse
import datetime
import numbers
import os
import sys
import time
import traceback

import ovh
import ovh.client
from ovh.exceptions import (
    APIError,
    InvalidCredential,
    InvalidKey,
    ResourceNotFoundError,
)

SENDER = "Pigeon"
TAG = "compat"
LATER_TAG = "compat-later"
NOT_A_NUMBER = "not-a-number"
# Pigeon's default `ovh_stop_clause`, appended on a new line unless noStopClause.
STOP_CLAUSE = "STOP au 36111"
JOB_FIELDS = {
    "id",
    "creationDatetime",
    "credits",
    "deliveredAt",
    "deliveryReceipt",
    "differedDelivery",
    "message",
    "messageLength",
    "numberOfSms",
    "ptt",
    "receiver",
    "sender",
    "sentAt",
}
OUTGOING_FIELDS = JOB_FIELDS | {"tag", "batchID", "messageID", "tariffCode"}


class Failure(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def show_error(e):
    return f"{type(e).__name__}({e.args[0] if e.args else ''!r}, query_id={getattr(e, 'query_id', None)!r})"


def api_error(what, expected, call):
    """Runs `call`, which must raise the client's exception class `expected`; returns it."""
    try:
        result = call()
    except expected as e:
        return e
    except APIError as e:
        raise Failure(f"{what}: raised {show_error(e)}, expected {expected.__name__}")
    raise Failure(f"{what}: no error, got {result!r}, expected {expected.__name__}")


def iso_date(value, what):
    """An ISO 8601 date with an offset, as OVH gives them."""
    check(isinstance(value, str), f"{what} {value!r} is not a string")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise Failure(f"{what} {value!r} is not ISO 8601")
    check(parsed.tzinfo is not None, f"{what} {value!r} has no offset")
    return parsed


class Run:
    def __init__(self, args):
        self.args = args
        self.step_count = 0
        self.base = args.base_url.rstrip("/")
        ovh.client.ENDPOINTS["pigeon"] = self.base + "/1.0"
        self.client = self.make_client(args.application_key, args.application_secret, args.consumer_key)
        self.sn = args.service_name
        self.job_id = None
        self.later_id = None
        self.message = "Hello from python-ovh"

    def make_client(self, ak, secret, ck):
        return ovh.Client(endpoint="pigeon", application_key=ak, application_secret=secret, consumer_key=ck)

    def step(self, name, function):
        self.step_count += 1
        try:
            detail = function()
        except Failure as e:
            print(f"FAIL {name}: {e}", flush=True)
            sys.exit(1)
        except APIError as e:
            print(f"FAIL {name}: unexpected {show_error(e)}", flush=True)
            traceback.print_exc()
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - any other error is a failure of this step
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            sys.exit(1)
        print(f"ok   {name}" + (f": {detail}" if detail else ""), flush=True)

    def run(self):
        s = self.step
        s("client: ovh.Client(endpoint='pigeon') on " + ovh.client.ENDPOINTS["pigeon"], self.check_client)
        s("auth/time: the client syncs its clock", self.time_sync)
        s("GET /sms: exactly one service", self.list_services)
        s("GET /sms/{sn}: the account", self.read_account)
        s("GET /sms/{unknown}: 404 ResourceNotFoundError", self.unknown_service)
        s("PUT /sms/{sn}: callBack set", self.set_callback)
        s("POST /sms/{sn}/senders: sender Pigeon", self.create_sender)
        s("GET /sms/{sn}/senders[/Pigeon]: listed and read back", self.read_sender)
        s("POST /sms/estimate: the STOP mention is counted", self.estimate)
        s("POST /sms/{sn}/jobs: one valid receiver, one invalid", self.send)
        s("POST /sms/{sn}/jobs: a STOP-listed receiver is invalid, no id", self.send_to_stopped)
        s("POST /sms/{sn}/jobs: differedPeriod=60 is pending", self.send_later)
        s("GET /sms/{sn}/jobs[/{id}]: pending ids and a job", self.read_jobs)
        s("DELETE /sms/{sn}/jobs/{id}: the pending job is canceled", self.cancel_later)
        s("GET /sms/{sn}/jobs/999999: 404 ResourceNotFoundError", self.unknown_job)
        s("GET /sms/{sn}/outgoing?tag=compat: the sent job appears", self.wait_outgoing)
        s("GET /sms/{sn}/outgoing/{id}: the sent job", self.read_outgoing)
        s("GET /sms/{sn}/outgoing?tag=compat-later: the canceled job", self.read_canceled)
        if self.args.wait_delivery:
            s("GET /sms/{sn}/outgoing/{id}: deliveryReceipt 1 after the report", self.wait_delivered)
        s("GET /sms/{sn}/incoming[/{id}]: the injected SMS", self.read_incoming)
        s("GET /sms/{sn}/blacklists[/{number}]: the number that sent STOP", self.read_blacklist)
        s("auth: a wrong application secret is InvalidCredential", self.wrong_secret)
        s("auth: a wrong consumer key is InvalidCredential", self.wrong_consumer_key)
        s("auth: an unknown application key is InvalidKey", self.unknown_key)
        print(f"PASS all {self.step_count} steps", flush=True)

    # The steps.

    def check_client(self):
        # Read only: the endpoint the client resolved from the map.
        check(self.client._endpoint == self.base + "/1.0", f"endpoint {self.client._endpoint!r}")

    def time_sync(self):
        delta = self.client.time_delta
        check(is_int(delta), f"time_delta {delta!r} is not an integer (GET /auth/time must answer a bare integer)")
        check(abs(delta) <= 5, f"the server's clock is {delta} s away from this machine's, both are the same")
        return f"delta {delta} s"

    def list_services(self):
        services = self.client.get("/sms")
        check(isinstance(services, list), f"GET /sms answered {services!r}, not a list")
        check(services == [self.sn], f"GET /sms answered {services!r}, expected [{self.sn!r}]")
        return repr(services)

    def read_account(self):
        account = self.client.get(f"/sms/{self.sn}")
        check(isinstance(account, dict), f"answered {account!r}")
        for field in ("name", "description", "status", "channel", "creditsLeft", "callBack", "stopCallBack"):
            check(field in account, f"no `{field}` in {account!r}")
        check(account["name"] == self.sn, f"name {account['name']!r}, expected {self.sn!r}")
        check(is_number(account["creditsLeft"]), f"creditsLeft {account['creditsLeft']!r} is not a number")
        check(account["status"] == "enable", f"status {account['status']!r}")
        return f"creditsLeft={account['creditsLeft']} status={account['status']} channel={account['channel']}"

    def unknown_service(self):
        e = api_error("GET /sms/sms-nobody-1", ResourceNotFoundError, lambda: self.client.get("/sms/sms-nobody-1"))
        check(e.query_id, "the error has no X-Ovh-QueryId")
        return show_error(e)

    def set_callback(self):
        result = self.client.put(f"/sms/{self.sn}", callBack=self.args.callback_url)
        check(result is None, f"PUT answered {result!r}, expected null")
        account = self.client.get(f"/sms/{self.sn}")
        check(
            account.get("callBack") == self.args.callback_url,
            f"callBack {account.get('callBack')!r} after the PUT, expected {self.args.callback_url!r}",
        )
        return self.args.callback_url

    def create_sender(self):
        result = self.client.post(
            f"/sms/{self.sn}/senders",
            sender=SENDER,
            description="Pigeon compatibility test",
            reason="Sent by the python-ovh compatibility test",
        )
        check(result is None, f"POST senders answered {result!r}, expected null")

    def read_sender(self):
        senders = self.client.get(f"/sms/{self.sn}/senders")
        check(isinstance(senders, list) and SENDER in senders, f"senders {senders!r} lack {SENDER!r}")
        sender = self.client.get(f"/sms/{self.sn}/senders/{SENDER}")
        check(isinstance(sender, dict), f"answered {sender!r}")
        check(sender.get("sender") == SENDER, f"sender {sender!r}")
        check(sender.get("description") == "Pigeon compatibility test", f"description in {sender!r}")
        check(sender.get("status") == "enable", f"status in {sender!r} (Pigeon enables senders at once)")
        check(sender.get("type") == "alpha", f"type in {sender!r}, expected alpha")
        return f"{senders!r}, {sender}"

    def estimate(self):
        # 150 GSM characters: one part alone, two with the STOP mention (14 characters more).
        message = ("Estimate " * 20)[:150]
        bare = self.client.post("/sms/estimate", message=message, noStopClause=True, senderType="alpha")
        with_stop = self.client.post("/sms/estimate", message=message, noStopClause=False, senderType="alpha")
        for label, e in (("noStopClause=true", bare), ("noStopClause=false", with_stop)):
            for field in ("characters", "charactersClass", "maxCharactersPerPart", "parts"):
                check(isinstance(e, dict) and field in e, f"{label}: no `{field}` in {e!r}")
            check(e["charactersClass"] == "7bits", f"{label}: charactersClass {e['charactersClass']!r}")
        check(bare["characters"] == 150, f"noStopClause=true: characters {bare['characters']!r}, expected 150")
        check(bare["parts"] == 1, f"noStopClause=true: parts {bare['parts']!r}, expected 1")
        expected = 150 + len("\n" + STOP_CLAUSE)
        check(
            with_stop["characters"] == expected,
            f"noStopClause=false: characters {with_stop['characters']!r}, expected {expected} "
            f"(150 + a new line + {STOP_CLAUSE!r})",
        )
        check(with_stop["parts"] == 2, f"noStopClause=false: parts {with_stop['parts']!r}, expected 2")
        unicode = self.client.post("/sms/estimate", message="Привет", noStopClause=True, senderType="alpha")
        check(unicode.get("charactersClass") == "unicode", f"Cyrillic: {unicode!r}")
        check(unicode.get("parts") == 1, f"Cyrillic: {unicode!r}")
        return f"without {bare}, with {with_stop}"

    def send(self):
        result = self.client.post(
            f"/sms/{self.sn}/jobs",
            message=self.message,
            receivers=[self.args.receiver, NOT_A_NUMBER],
            noStopClause=True,
            sender=SENDER,
            tag=TAG,
        )
        check(isinstance(result, dict), f"answered {result!r}")
        for field in ("totalCreditsRemoved", "invalidReceivers", "ids", "validReceivers"):
            check(field in result, f"no `{field}` in {result!r}")
        ids = result["ids"]
        check(isinstance(ids, list) and len(ids) == 1 and is_int(ids[0]), f"ids {ids!r}, expected one integer")
        check(result["validReceivers"] == [self.args.receiver], f"validReceivers {result['validReceivers']!r}")
        check(result["invalidReceivers"] == [NOT_A_NUMBER], f"invalidReceivers {result['invalidReceivers']!r}")
        check(result["totalCreditsRemoved"] == 1, f"totalCreditsRemoved {result['totalCreditsRemoved']!r}, expected 1")
        if "tag" in result:
            check(result["tag"] == TAG, f"tag {result['tag']!r}")
        self.job_id = ids[0]
        print(f"JOB_ID={self.job_id}", flush=True)
        return repr(result)

    def send_to_stopped(self):
        number = self.args.stop_number
        result = self.client.post(
            f"/sms/{self.sn}/jobs",
            message="You said STOP",
            receivers=[number],
            noStopClause=True,
            sender=SENDER,
            tag=TAG,
        )
        check(isinstance(result, dict), f"answered {result!r}")
        check(result.get("ids") == [], f"ids {result.get('ids')!r} for a STOP-listed number")
        check(result.get("validReceivers") == [], f"validReceivers {result.get('validReceivers')!r}")
        check(result.get("invalidReceivers") == [number], f"invalidReceivers {result.get('invalidReceivers')!r}")
        return repr(result)

    def send_later(self):
        result = self.client.post(
            f"/sms/{self.sn}/jobs",
            message="Later from python-ovh",
            receivers=[self.args.receiver],
            noStopClause=True,
            sender=SENDER,
            differedPeriod=60,
            tag=LATER_TAG,
        )
        ids = result.get("ids") if isinstance(result, dict) else None
        check(isinstance(ids, list) and len(ids) == 1 and is_int(ids[0]), f"answered {result!r}")
        check(ids[0] != self.job_id, f"the same id {ids[0]} for two jobs")
        self.later_id = ids[0]
        return repr(result)

    def read_jobs(self):
        jobs = self.client.get(f"/sms/{self.sn}/jobs")
        check(isinstance(jobs, list) and all(is_int(j) for j in jobs), f"GET jobs answered {jobs!r}, not integers")
        check(self.later_id in jobs, f"the job deferred by 60 minutes ({self.later_id}) is not in {jobs!r}")
        job = self.client.get(f"/sms/{self.sn}/jobs/{self.later_id}")
        check(isinstance(job, dict), f"answered {job!r}")
        missing = JOB_FIELDS - set(job)
        check(not missing, f"no {sorted(missing)} in {job!r}")
        check(job["id"] == self.later_id, f"id {job['id']!r}")
        check(job["receiver"] == self.args.receiver, f"receiver {job['receiver']!r}")
        check(job["message"] == "Later from python-ovh", f"message {job['message']!r}")
        check(job["sender"] == SENDER, f"sender {job['sender']!r}")
        check(job["ptt"] == 1, f"ptt {job['ptt']!r}, expected 1 (waiting)")
        check(job["numberOfSms"] == 1, f"numberOfSms {job['numberOfSms']!r}")
        check(job["deliveredAt"] is None and job["sentAt"] is None, f"deliveredAt/sentAt set in {job!r}")
        iso_date(job["creationDatetime"], "creationDatetime")
        return f"{jobs!r}; {job}"

    def cancel_later(self):
        result = self.client.delete(f"/sms/{self.sn}/jobs/{self.later_id}")
        check(result is None, f"DELETE answered {result!r}, expected null")
        jobs = self.client.get(f"/sms/{self.sn}/jobs")
        check(self.later_id not in jobs, f"{self.later_id} still pending: {jobs!r}")
        e = api_error(
            "GET of the canceled job",
            ResourceNotFoundError,
            lambda: self.client.get(f"/sms/{self.sn}/jobs/{self.later_id}"),
        )
        return f"then {show_error(e)}"

    def unknown_job(self):
        e = api_error(
            "GET jobs/999999", ResourceNotFoundError, lambda: self.client.get(f"/sms/{self.sn}/jobs/999999")
        )
        check(e.query_id, "the error has no X-Ovh-QueryId")
        return show_error(e)

    def wait_outgoing(self):
        deadline = time.monotonic() + self.args.timeout
        while True:
            ids = self.client.get(f"/sms/{self.sn}/outgoing", tag=TAG)
            check(isinstance(ids, list) and all(is_int(i) for i in ids), f"outgoing answered {ids!r}")
            if self.job_id in ids:
                check(self.later_id not in ids, f"the job tagged {LATER_TAG} is listed under tag={TAG}: {ids!r}")
                return repr(ids)
            check(
                time.monotonic() < deadline,
                f"job {self.job_id} not in outgoing?tag={TAG} after {self.args.timeout}s: {ids!r}; "
                f"pending: {self.client.get(f'/sms/{self.sn}/jobs')!r}",
            )
            time.sleep(0.2)

    def read_outgoing(self):
        sms = self.client.get(f"/sms/{self.sn}/outgoing/{self.job_id}")
        check(isinstance(sms, dict), f"answered {sms!r}")
        missing = OUTGOING_FIELDS - set(sms)
        check(not missing, f"no {sorted(missing)} in {sms!r}")
        check(sms["id"] == self.job_id, f"id {sms['id']!r}")
        check(sms["receiver"] == self.args.receiver, f"receiver {sms['receiver']!r}")
        check(sms["message"] == self.message, f"message {sms['message']!r}, expected {self.message!r}")
        check(sms["sender"] == SENDER, f"sender {sms['sender']!r}")
        check(sms["tag"] == TAG, f"tag {sms['tag']!r}")
        check(sms["ptt"] == 0, f"ptt {sms['ptt']!r}, expected 0 (accepted by the network)")
        check(sms["deliveryReceipt"] in (0, 1), f"deliveryReceipt {sms['deliveryReceipt']!r}, expected 0 or 1")
        iso_date(sms["creationDatetime"], "creationDatetime")
        return f"receiver={sms['receiver']} ptt={sms['ptt']} deliveryReceipt={sms['deliveryReceipt']}"

    def read_canceled(self):
        ids = self.client.get(f"/sms/{self.sn}/outgoing", tag=LATER_TAG)
        check(ids == [self.later_id], f"outgoing?tag={LATER_TAG} answered {ids!r}, expected [{self.later_id}]")
        sms = self.client.get(f"/sms/{self.sn}/outgoing/{self.later_id}")
        check(sms.get("ptt") == 2, f"ptt {sms.get('ptt')!r} for a canceled job, expected 2")
        return f"ptt={sms.get('ptt')} deliveryReceipt={sms.get('deliveryReceipt')}"

    def wait_delivered(self):
        deadline = time.monotonic() + self.args.timeout
        while True:
            sms = self.client.get(f"/sms/{self.sn}/outgoing/{self.job_id}")
            if sms.get("deliveryReceipt") == 1:
                check(sms.get("ptt") == 0, f"ptt {sms.get('ptt')!r} once delivered")
                if sms.get("deliveredAt") is not None:
                    iso_date(sms["deliveredAt"], "deliveredAt")
                return f"deliveryReceipt=1 deliveredAt={sms.get('deliveredAt')}"
            check(
                time.monotonic() < deadline,
                f"deliveryReceipt still {sms.get('deliveryReceipt')!r} after {self.args.timeout}s: {sms!r}",
            )
            time.sleep(0.2)

    def read_incoming(self):
        ids = self.client.get(f"/sms/{self.sn}/incoming")
        check(isinstance(ids, list) and ids and all(is_int(i) for i in ids), f"incoming answered {ids!r}")
        found = None
        for i in ids:
            sms = self.client.get(f"/sms/{self.sn}/incoming/{i}")
            for field in ("id", "creationDatetime", "credits", "message", "sender", "tag"):
                check(field in sms, f"incoming {i}: no `{field}` in {sms!r}")
            check(sms["id"] == i, f"incoming {i}: id {sms['id']!r}")
            if sms["message"] == self.args.incoming_text:
                found = sms
        check(found, f"no incoming SMS with text {self.args.incoming_text!r} among {ids!r}")
        check(found["sender"] == self.args.incoming_number, f"sender {found['sender']!r}")
        check(found["credits"] == 0, f"credits {found['credits']!r}")
        iso_date(found["creationDatetime"], "creationDatetime")
        filtered = self.client.get(f"/sms/{self.sn}/incoming", sender=self.args.incoming_number)
        check(filtered == [found["id"]], f"incoming?sender={self.args.incoming_number} answered {filtered!r}")
        return f"{ids!r}; {found}"

    def read_blacklist(self):
        number = self.args.stop_number
        numbers_ = self.client.get(f"/sms/{self.sn}/blacklists")
        check(isinstance(numbers_, list) and number in numbers_, f"blacklists {numbers_!r} lack {number!r}")
        entry = self.client.get(f"/sms/{self.sn}/blacklists/{number}")
        check(isinstance(entry, dict) and entry.get("number") == number, f"answered {entry!r}")
        iso_date(entry.get("dateCreation"), "dateCreation")
        return f"{numbers_!r}; {entry}"

    def wrong_secret(self):
        client = self.make_client(self.args.application_key, self.args.application_secret + "x", self.args.consumer_key)
        e = api_error("GET /sms with a wrong secret", InvalidCredential, lambda: client.get("/sms"))
        return show_error(e)

    def wrong_consumer_key(self):
        client = self.make_client(self.args.application_key, self.args.application_secret, "x" + self.args.consumer_key)
        e = api_error("GET /sms with a wrong consumer key", InvalidCredential, lambda: client.get("/sms"))
        return show_error(e)

    def unknown_key(self):
        client = self.make_client("unknown" + self.args.application_key, self.args.application_secret, self.args.consumer_key)
        e = api_error("GET /sms with an unknown application key", InvalidKey, lambda: client.get("/sms"))
        return show_error(e)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--base-url", default=env("PIGEON_URL"))
    parser.add_argument("--application-key", default=env("OVH_APPLICATION_KEY"))
    parser.add_argument("--application-secret", default=env("OVH_APPLICATION_SECRET"))
    parser.add_argument("--consumer-key", default=env("OVH_CONSUMER_KEY"))
    parser.add_argument("--service-name", default=env("OVH_SERVICE_NAME"))
    parser.add_argument("--callback-url", default=env("OVH_CALLBACK_URL"))
    parser.add_argument("--receiver", default="+33612345678")
    parser.add_argument("--incoming-number", default="+33611111111")
    parser.add_argument("--incoming-text", default="Bonjour Pigeon")
    parser.add_argument("--stop-number", default="+33622222222")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--wait-delivery", action="store_true")
    args = parser.parse_args()
    required = ("base_url", "application_key", "application_secret", "consumer_key", "service_name", "callback_url")
    missing = [name for name in required if not getattr(args, name)]
    if missing:
        parser.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    Run(args).run()


if __name__ == "__main__":
    main()
