"""The signer against every case of the AWS SigV4 test suite (the JSON in tests/Nexus.Sdk.Tests/Vectors, the same
file as shared/test-vectors/aws-sigv4), plus the defaults that the suite does not cover."""

import datetime as dt
import hashlib
import json
import os
import unittest
from pathlib import Path

from nexus_sdk import sigv4
from nexus_sdk.sigv4 import AwsCredentials, sign

_HERE = Path(__file__).resolve().parent
_CANDIDATES = [
    os.environ.get("NEXUS_SIGV4_VECTORS", ""),
    str(_HERE.parents[2] / "tests" / "Nexus.Sdk.Tests" / "Vectors" / "aws-sig-v4-test-suite.json"),
    "/work/shared/test-vectors/aws-sigv4/aws-sig-v4-test-suite.json",
]
VECTORS = next(p for p in _CANDIDATES if p and os.path.isfile(p))
SUITE = json.loads(Path(VECTORS).read_text(encoding="utf-8"))
CASES = {c["name"]: c for c in SUITE["tests"]["all"]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sreq_authorization(case) -> str:
    return next(line for line in case["sreq"].split("\n") if line.startswith("Authorization: "))[len("Authorization: "):]


def self_consistent(case) -> bool:
    return sha(case["creq"]) == case["sts"].split("\n")[-1] and case["authz"] == sreq_authorization(case)


def without_content_length(text: str) -> str:
    return text.replace("content-length:13\n", "").replace("content-length;", "")


# Two published cases contradict themselves (their .req and .creq were edited after signing): the same errata as
# tests/Nexus.Sdk.Tests/AwsTestSuiteTests.cs, each proven right below with the suite's own .sts and .sreq.
ERRATA = {
    "post-x-www-form-urlencoded": (
        lambda headers: [h for h in headers if h[0] != "Content-Length"],
        without_content_length,
        lambda authz: authz,
    ),
    "post-x-www-form-urlencoded-parameters": (
        lambda headers: [
            (n, "application/x-www-form-urlencoded; charset=utf8" if n == "Content-Type" else v)
            for n, v in headers
            if n != "Content-Length"
        ],
        lambda creq: without_content_length(creq).replace("charset=utf-8", "charset=utf8"),
        without_content_length,
    ),
}


def sign_case(req, headers=None, **options):
    headers = headers if headers is not None else [tuple(h) for h in req["headers"]]
    amz_date = next(v for n, v in headers if n.lower() == "x-amz-date")
    token = next((v for n, v in headers if n.lower() == "x-amz-security-token"), None)
    config = SUITE["config"]
    creds = AwsCredentials(config["accessKeyId"], config["secretAccessKey"], token)
    host = next(v for n, v in headers if n.lower() == "host")
    # The suite signs every header it gives, Content-Length included (by default the signer leaves it out).
    return sign(
        req["method"],
        "https://" + host + req["uri"],
        headers,
        req["body"],
        creds,
        config["region"],
        config["service"],
        dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ"),
        unsigned_headers=(),
        **options,
    )


class SuiteTests(unittest.TestCase):
    def test_the_suite_holds_all_twenty_eight_cases(self):
        self.assertEqual(28, len(CASES))

    def test_only_the_two_form_cases_contradict_their_own_files(self):
        self.assertEqual(sorted(ERRATA), sorted(n for n, c in CASES.items() if not self_consistent(c)))

    def test_every_case_signs_to_the_published_canonical_request_string_to_sign_and_authorization(self):
        for name, case in CASES.items():
            with self.subTest(name):
                headers = [tuple(h) for h in case["request"]["headers"]]
                expected_creq, expected_authz = case["creq"], case["authz"]
                if not self_consistent(case):
                    fix_request, fix_creq, fix_authz = ERRATA[name]
                    signed = sign_case(case["request"], headers)
                    self.assertEqual(case["creq"], signed.canonical_request)  # the published, uncorrected one
                    headers = fix_request(headers)
                    expected_creq = fix_creq(case["creq"])
                    self.assertEqual(case["sts"].split("\n")[-1], sha(expected_creq))
                    expected_authz = fix_authz(case["authz"])
                    self.assertEqual(sreq_authorization(case), expected_authz)
                signed = sign_case(case["request"], headers)
                self.assertEqual(expected_creq, signed.canonical_request)
                self.assertEqual(case["sts"], signed.string_to_sign)
                self.assertEqual(expected_authz, signed.authorization)
                self.assertEqual(sreq_authorization(case), signed.authorization)
                amz = next(v for n, v in headers if n == "X-Amz-Date")
                self.assertIn(("X-Amz-Date", amz), signed.headers)

    def test_a_session_token_in_the_request_is_signed(self):
        case = CASES["post-sts-header-before"]
        signed = sign_case(case["request"])
        self.assertEqual("host;x-amz-date;x-amz-security-token", signed.signed_headers)
        self.assertIn(("X-Amz-Security-Token", SUITE["stsToken"]), signed.headers)
        self.assertEqual(case["authz"], signed.authorization)

    def test_a_session_token_added_after_signing_is_sent_but_not_signed(self):
        case = CASES["post-sts-header-after"]
        headers = [tuple(h) for h in case["request"]["headers"]] + [("X-Amz-Security-Token", SUITE["stsToken"])]
        signed = sign_case(case["request"], headers, sign_session_token=False)
        self.assertEqual("host;x-amz-date", signed.signed_headers)
        self.assertEqual(sreq_authorization(case), signed.authorization)
        self.assertIn("X-Amz-Security-Token:" + SUITE["stsToken"], case["sreq"])
        self.assertIn(("X-Amz-Security-Token", SUITE["stsToken"]), signed.headers)


class DefaultsTests(unittest.TestCase):
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "the-session-token")
    when = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc)

    def test_s3_sends_and_signs_the_content_hash_and_signs_the_path_as_sent(self):
        signed = sign("PUT", "https://b.s3.amazonaws.com/a/../b%20c//d", {}, b"x", self.creds, "eu-west-1", "s3", self.when)
        self.assertIn(("x-amz-content-sha256", hashlib.sha256(b"x").hexdigest()), signed.headers)
        self.assertEqual("/a/../b%20c//d", signed.canonical_request.split("\n")[1])
        self.assertIn("x-amz-content-sha256", signed.signed_headers)

    def test_every_s3_variant_nexus_knows_is_signed_as_s3(self):
        for service in ("s3-outposts", "s3-object-lambda", "s3express"):
            with self.subTest(service):
                signed = sign("PUT", "https://b.example/a/../b%20c//d", {}, b"x", self.creds, "eu-west-1", service, self.when)
                self.assertEqual("/a/../b%20c//d", signed.canonical_request.split("\n")[1])
                self.assertIn("x-amz-content-sha256", signed.signed_headers)

    def test_other_services_normalize_the_path_and_encode_it_again(self):
        signed = sign("GET", "https://h.example/a/./b%20c//d", {}, None, self.creds, "eu-west-1", "execute-api", self.when)
        self.assertEqual("/a/b%2520c/d", signed.canonical_request.split("\n")[1])
        self.assertNotIn("x-amz-content-sha256", signed.signed_headers)

    def test_hop_by_hop_and_user_agent_headers_are_not_signed(self):
        headers = {"User-Agent": "x", "Content-Length": "1", "Connection": "keep-alive", "Content-Type": "text/plain"}
        signed = sign("POST", "http://127.0.0.1:8080/p?b=2&a=1", headers, b"1", self.creds, "us-east-1", "execute-api", self.when)
        self.assertEqual("content-type;host;x-amz-date;x-amz-security-token", signed.signed_headers)
        self.assertIn("\nhost:127.0.0.1:8080\n", signed.canonical_request)
        self.assertEqual("a=1&b=2", signed.canonical_request.split("\n")[2])

    def test_unsigned_payload_is_signed_as_such(self):
        signed = sign("PUT", "https://b.s3.amazonaws.com/k", {}, None, self.creds, "us-east-1", "s3", self.when,
                      payload_sha256=sigv4.UNSIGNED_PAYLOAD)
        self.assertTrue(signed.canonical_request.endswith("\nUNSIGNED-PAYLOAD"))

    def test_bad_input_is_refused_with_a_clear_error(self):
        with self.assertRaises(ValueError):
            sign("GET", "/relative", {}, None, self.creds, "us-east-1", "s3")
        with self.assertRaises(ValueError):
            sign("GET", "https://h/", {"X": "a\r\nb"}, None, self.creds, "us-east-1", "s3")
        with self.assertRaises(ValueError):
            sign("GET", "https://h/", {}, None, self.creds, "us east", "s3")

    def test_the_repr_of_credentials_and_results_hides_the_secret_and_the_token(self):
        signed = sign("GET", "https://h.example/", {}, None, self.creds, "us-east-1", "execute-api", self.when)
        for text in (repr(self.creds), str(self.creds), repr(signed)):
            self.assertNotIn(self.creds.secret_access_key, text)
            self.assertNotIn("the-session-token", text)


if __name__ == "__main__":
    unittest.main()
