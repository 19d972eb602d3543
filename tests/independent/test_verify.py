"""Self-tests of the independent verifier, on vouchers signed here per the spec.

Run: python3 -m unittest tests/independent/test_verify.py   (no network)
"""

import contextlib
import datetime
import hashlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import verify  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

VOUCHER_SEED = bytes(range(32))
STATEMENT_SEED = bytes(range(100, 132))
OTHER_SEED = bytes(32)
VOUCHER_KID = 1
STATEMENT_KID = 2
DEFAULT_FIELDS = dict(
    kid=VOUCHER_KID,
    voucher_id=0x1234_5678_9ABC_DEF0,
    program_id=42,
    expires_on_days=20453,  # 2025-12-31
    position=3,
    book_size=10,
)


def make_voucher(seed=VOUCHER_SEED, signature_fn=None, **overrides) -> str:
    """Text form of a voucher signed with `seed` per the spec."""
    fields = {**DEFAULT_FIELDS, **overrides}
    body = verify.pack_body(**fields)
    message = verify.VOUCHER_TAG + body
    signature = signature_fn(body) if signature_fn else verify.sign(seed, message)
    return verify.encode_voucher_text(body, signature)


def key(seed, kid, purpose, status="active") -> verify.Key:
    return verify.Key(kid, purpose, status, verify.public_key_from_seed(seed))


KEYS = {
    VOUCHER_KID: key(VOUCHER_SEED, VOUCHER_KID, "voucher"),
    STATEMENT_KID: key(STATEMENT_SEED, STATEMENT_KID, "statement"),
}


def jwk(seed, kid, purpose, status="active") -> dict:
    return {
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "x": verify.b64url_encode(verify.public_key_from_seed(seed)),
        "kid": str(kid), "purpose": purpose, "status": status,
    }


def jwks_document() -> dict:
    return {"keys": [jwk(VOUCHER_SEED, VOUCHER_KID, "voucher"),
                     jwk(STATEMENT_SEED, STATEMENT_KID, "statement")]}


def clamped_scalar(seed: bytes) -> int:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def replace_payload(text: str, start: int, symbols: str) -> str:
    payload = text[len(verify.PREFIX):]
    return verify.PREFIX + payload[:start] + symbols + payload[start + len(symbols):]


class Base45Test(unittest.TestCase):
    RFC_EXAMPLES = {b"AB": "BB8", b"Hello!!": "%69 VD92EX0", b"base-45": "UJCLQE7W581", b"ietf!": "QED8WEX0"}

    def test_rfc9285_examples(self):
        for data, text in self.RFC_EXAMPLES.items():
            self.assertEqual(verify.b45encode(data), text)
            self.assertEqual(verify.b45decode(text), data)

    def test_round_trip_all_pairs_and_singles(self):
        for n in range(0, 65536, 257):
            data = n.to_bytes(2, "big")
            self.assertEqual(verify.b45decode(verify.b45encode(data)), data)
        self.assertEqual(verify.b45decode(verify.b45encode(bytes([255]))), bytes([255]))
        self.assertEqual(verify.b45encode(b"\xff\xff"), "FGW")

    def assertRejected(self, text, fragment):
        with self.assertRaises(verify.MalformedCode) as caught:
            verify.b45decode(text)
        self.assertIn(fragment, caught.exception.reason)

    def test_rejections(self):
        self.assertRejected("GGW", "triplet")
        self.assertRejected("BB8A", "trailing group of one")
        self.assertRejected("::", "pair")
        self.assertRejected("bb8", "outside the alphabet")
        self.assertRejected("BB_", "outside the alphabet")


class DecodeTest(unittest.TestCase):
    def test_fields(self):
        voucher = verify.check_voucher_text(make_voucher(), KEYS)
        self.assertEqual(voucher.fields(), {
            "version": 1, "kid": 1, "voucher_id": str(0x1234_5678_9ABC_DEF0), "program_id": 42,
            "expires_on": "2025-12-31", "position": 3, "book_size": 10,
            "typed_code": verify.typed_code(0x1234_5678_9ABC_DEF0),
        })

    def test_length_is_127(self):
        self.assertEqual(len(make_voucher()), 127)

    def test_expires_on_is_days_since_epoch(self):
        voucher = verify.decode_voucher(make_voucher(expires_on_days=19723))
        self.assertEqual(voucher.expires_on, datetime.date(2024, 1, 1))
        voucher = verify.decode_voucher(make_voucher(expires_on_days=0))
        self.assertEqual(voucher.expires_on, datetime.date(1970, 1, 1))

    def text_with_inner_space(self) -> tuple[str, int]:
        for voucher_id in range(1, 1000):
            text = make_voucher(voucher_id=voucher_id)
            if " " in text:
                return text, voucher_id
        self.fail("no voucher text with a space")

    def test_space_inside_text_is_a_symbol(self):
        text, voucher_id = self.text_with_inner_space()
        self.assertEqual(verify.check_voucher_text(text, KEYS).voucher_id, voucher_id)
        tabbed = text.replace(" ", "\t", 1)
        with self.assertRaises(verify.MalformedCode):
            verify.decode_voucher(tabbed)
        without_space = text.replace(" ", "", 1)
        with self.assertRaises(verify.MalformedCode):
            verify.decode_voucher(without_space)

    def test_lower_case_with_line_end(self):
        text, voucher_id = self.text_with_inner_space()
        scanned = text.lower() + "\r\n"
        self.assertEqual(verify.check_voucher_text(scanned, KEYS).voucher_id, voucher_id)
        self.assertEqual(verify.check_voucher_text(" \t" + scanned, KEYS).voucher_id, voucher_id)

    def test_only_ascii_letters_are_upper_cased(self):
        text = make_voucher()
        index = text.index("I", len(verify.PREFIX))  # the default fixture holds an I
        dotless = text[:index] + "\u0131" + text[index + 1:]  # 'ı'.upper() == 'I' in Python
        with self.assertRaises(verify.MalformedCode):
            verify.decode_voucher(dotless)

    def test_prefix(self):
        payload = make_voucher()[4:]
        for text in ("PN2:" + payload, payload, "PN1" + payload, "XPN1:" + payload):
            with self.assertRaises(verify.MalformedCode):
                verify.decode_voucher(text)

    def test_wrong_lengths(self):
        body = verify.pack_body(**DEFAULT_FIELDS)
        for payload in (body + bytes(63), body + bytes(65), body + bytes(66)):
            with self.assertRaises(verify.MalformedCode) as caught:
                verify.decode_voucher(verify.PREFIX + verify.b45encode(payload))
            self.assertIn("bytes, not 82", caught.exception.reason)

    def test_base45_errors_in_voucher(self):
        text = make_voucher()
        cases = {
            replace_payload(text, 0, "GGW"): "triplet",
            text + "0": "trailing group of one",
            text[:-3] + "::": "pair",  # 122 symbols end in a pair
            replace_payload(text, 5, "_"): "outside the alphabet",
        }
        for bad, fragment in cases.items():
            with self.assertRaises(verify.MalformedCode) as caught:
                verify.decode_voucher(bad)
            self.assertIn(fragment, caught.exception.reason)

    def test_body_rules(self):
        bad_bodies = [
            dict(version=2), dict(version=0),
            dict(position=0), dict(position=11), dict(position=6, book_size=5),
            dict(book_size=7, position=1), dict(book_size=0, position=0),
            dict(voucher_id=0), dict(voucher_id=2**63), dict(voucher_id=2**64 - 1),
        ]
        for overrides in bad_bodies:
            with self.subTest(**overrides), self.assertRaises(verify.MalformedCode):
                verify.check_voucher_text(make_voucher(**overrides), KEYS)

    def test_body_limits_accepted(self):
        good_bodies = [
            dict(voucher_id=1), dict(voucher_id=2**63 - 1),
            dict(position=1, book_size=5), dict(position=5, book_size=5), dict(position=10),
            dict(program_id=2**32 - 1, expires_on_days=65535),
        ]
        for overrides in good_bodies:
            with self.subTest(**overrides):
                verify.check_voucher_text(make_voucher(**overrides), KEYS)


class SignatureTest(unittest.TestCase):
    def assertCategory(self, text, error_class, fragment="", keys=KEYS):
        with self.assertRaises(error_class) as caught:
            verify.check_voucher_text(text, keys)
        self.assertIn(fragment, caught.exception.reason)

    def test_unknown_kid(self):
        self.assertCategory(make_voucher(kid=9), verify.UnknownKey, "kid 9")

    def test_statement_key_is_not_a_voucher_key(self):
        text = make_voucher(seed=STATEMENT_SEED, kid=STATEMENT_KID)
        self.assertCategory(text, verify.UnknownKey, "purpose")

    def test_retired_key_still_verifies(self):
        keys = {VOUCHER_KID: key(VOUCHER_SEED, VOUCHER_KID, "voucher", "retired")}
        verify.check_voucher_text(make_voucher(), keys)

    def test_wrong_signer(self):
        self.assertCategory(make_voucher(seed=OTHER_SEED), verify.BadSignature, "does not verify")

    def test_tampered_body(self):
        good = verify.decode_voucher(make_voucher())
        body = verify.pack_body(**{**DEFAULT_FIELDS, "program_id": 43})
        self.assertCategory(verify.encode_voucher_text(body, good.signature), verify.BadSignature)

    def test_flipped_signature_bit(self):
        def flipped(body):
            signature = bytearray(verify.sign(VOUCHER_SEED, verify.VOUCHER_TAG + body))
            signature[40] ^= 1
            return bytes(signature)
        self.assertCategory(make_voucher(signature_fn=flipped), verify.BadSignature)

    def test_signature_without_domain_tag(self):
        def untagged(body):
            return verify.sign(VOUCHER_SEED, body)
        self.assertCategory(make_voucher(signature_fn=untagged), verify.BadSignature)

    def test_non_canonical_s(self):
        def s_plus_l(body):
            signature = verify.sign(VOUCHER_SEED, verify.VOUCHER_TAG + body)
            s = int.from_bytes(signature[32:], "little") + verify.L
            return signature[:32] + s.to_bytes(32, "little")
        self.assertCategory(make_voucher(signature_fn=s_plus_l), verify.BadSignature, "S >= L")

    def test_small_order_public_key(self):
        # Key = identity point: then (R = [s]B, s) verifies cofactorless for any message.
        identity = (1).to_bytes(32, "little")
        keys = {VOUCHER_KID: verify.Key(VOUCHER_KID, "voucher", "active", identity)}
        s = clamped_scalar(OTHER_SEED) % verify.L
        forged = verify.public_key_from_seed(OTHER_SEED) + s.to_bytes(32, "little")
        text = make_voucher(signature_fn=lambda body: forged)
        self.assertCategory(text, verify.BadSignature, "public key has small order", keys=keys)

    def test_small_order_r(self):
        # R = identity, S = k·a: [S]B - [k]A = identity = R, so it verifies cofactorless.
        a = clamped_scalar(VOUCHER_SEED)
        public = verify.public_key_from_seed(VOUCHER_SEED)
        r = (1).to_bytes(32, "little")

        def small_r(body):
            k = int.from_bytes(hashlib.sha512(r + public + verify.VOUCHER_TAG + body).digest(), "little")
            return r + (k * a % verify.L).to_bytes(32, "little")
        self.assertCategory(make_voucher(signature_fn=small_r), verify.BadSignature, "R has small order")

    def test_non_canonical_public_key_encoding(self):
        non_canonical = (verify.P + 1).to_bytes(32, "little")  # y = 1 written as p + 1
        with self.assertRaises(verify.BadSignature):
            verify.verify_ed25519_strict(non_canonical, b"m", bytes(64))


class SmallOrderTest(unittest.TestCase):
    EIGHT_TORSION = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    ]

    def test_known_small_order_points(self):
        for encoded in self.EIGHT_TORSION:
            point = verify.decode_point(bytes.fromhex(encoded))
            self.assertIsNotNone(point, encoded)
            self.assertTrue(verify.has_small_order(point), encoded)

    def test_real_keys_are_not_small_order(self):
        for seed in (VOUCHER_SEED, STATEMENT_SEED, OTHER_SEED):
            point = verify.decode_point(verify.public_key_from_seed(seed))
            self.assertFalse(verify.has_small_order(point))


class TypedCodeTest(unittest.TestCase):
    def test_hand_computed(self):
        self.assertEqual(verify.typed_code(1), "0000-0000-0000-1Y")   # 1*2=2 -> check 30
        self.assertEqual(verify.typed_code(16), "0000-0000-0000-GZ")  # 16*2=32 -> 1+0 -> 31
        self.assertEqual(verify.typed_code(32), "0000-0000-0001-0Z")  # 0*2 + 1*1 -> 31

    def test_max_id_first_symbol_is_7(self):
        code = verify.typed_code(2**63 - 1)
        self.assertTrue(code.startswith("7ZZZ-ZZZZ-ZZZZ-Z"), code)
        with self.assertRaises(ValueError):
            verify.typed_code(2**63)

    def test_parse_round_trip_and_aliases(self):
        voucher_id = 0x1234_5678_9ABC_DEF0
        code = verify.typed_code(voucher_id)
        self.assertEqual(verify.parse_typed_code(code), voucher_id)
        self.assertEqual(verify.parse_typed_code(code.lower().replace("-", " ")), voucher_id)
        self.assertEqual(verify.parse_typed_code("OOOO-oooo-0000-lY"), 1)
        self.assertEqual(verify.parse_typed_code("0000-0000-0000-iy"), 1)

    def test_parse_rejections(self):
        for bad in ("0000-0000-0000-1Z", "0000-0000-0000-1U", "0000-0000-000-1Y",
                    "8000-0000-0000-00", "0000-0000-0000-1Y0"):
            with self.subTest(bad), self.assertRaises(ValueError):
                verify.parse_typed_code(bad)

    def test_single_symbol_errors_are_detected(self):
        code = verify.typed_code(0x1234_5678_9ABC_DEF0).replace("-", "")
        for index in range(13):
            for replacement in verify.CROCKFORD_ALPHABET:
                if replacement != code[index]:
                    changed = code[:index] + replacement + code[index + 1:]
                    with self.assertRaises(ValueError):
                        verify.parse_typed_code(changed)


class StatementTest(unittest.TestCase):
    CSV = b"voucher_id,venue,amount\r\n1,7,12.50\r\n"

    def signature(self, seed=STATEMENT_SEED, csv=CSV):
        return verify.b64url_encode(verify.sign(seed, verify.statement_message(csv)))

    def test_verifies(self):
        verify.verify_statement(self.CSV, STATEMENT_KID, self.signature(), KEYS)

    def test_tampered_csv(self):
        with self.assertRaises(verify.BadSignature):
            verify.verify_statement(self.CSV + b"\n", STATEMENT_KID, self.signature(), KEYS)

    def test_voucher_key_is_not_a_statement_key(self):
        with self.assertRaises(verify.UnknownKey):
            verify.verify_statement(self.CSV, VOUCHER_KID, self.signature(VOUCHER_SEED), KEYS)

    def test_voucher_tag_does_not_verify_as_statement(self):
        digest = hashlib.sha256(self.CSV).digest()
        wrong = verify.b64url_encode(verify.sign(STATEMENT_SEED, verify.VOUCHER_TAG + digest))
        with self.assertRaises(verify.BadSignature):
            verify.verify_statement(self.CSV, STATEMENT_KID, wrong, KEYS)

    def test_bad_base64(self):
        with self.assertRaises(verify.BadSignature):
            verify.verify_statement(self.CSV, STATEMENT_KID, self.signature() + "!", KEYS)

    def test_message_layout(self):
        message = verify.statement_message(self.CSV)
        self.assertEqual(message, b"passnum-statement-v1\x00" + hashlib.sha256(self.CSV).digest())
        Ed25519PublicKey.from_public_bytes(KEYS[STATEMENT_KID].public_key).verify(
            verify.b64url_decode(self.signature()), message)


class JwksTest(unittest.TestCase):
    def test_parse(self):
        keys = verify.parse_jwks(jwks_document())
        self.assertEqual(keys, KEYS)

    def test_ignores_other_key_types(self):
        document = jwks_document()
        document["keys"].append({"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB"})
        self.assertEqual(set(verify.parse_jwks(document)), {VOUCHER_KID, STATEMENT_KID})

    def test_rejects_bad_entries(self):
        for change in ({"kid": "01"}, {"kid": "256"}, {"kid": 1}, {"x": "AAAA"}, {"alg": "ES256"}):
            document = jwks_document()
            document["keys"][0].update(change)
            with self.subTest(change), self.assertRaises(ValueError):
                verify.parse_jwks(document)

    def test_rejects_duplicate_kid(self):
        document = jwks_document()
        document["keys"][1]["kid"] = str(VOUCHER_KID)
        with self.assertRaises(ValueError):
            verify.parse_jwks(document)


def build_vectors() -> dict:
    """A fixture in the layout the Rust team's vectors file uses."""
    valid = []
    for index, voucher_id in enumerate((1, 0x1234_5678_9ABC_DEF0, 2**63 - 1)):
        text = make_voucher(voucher_id=voucher_id)
        voucher = verify.decode_voucher(text)
        public = verify.public_key_from_seed(VOUCHER_SEED)
        valid.append({
            "description": f"valid {index}", "secret_key_seed_hex": VOUCHER_SEED.hex(),
            "public_key_hex": public.hex(), "public_key_x": verify.b64url_encode(public),
            "kid": VOUCHER_KID, "voucher_id": str(voucher_id), "program_id": 42,
            "expires_on": "2025-12-31", "position": 3, "book_size": 10,
            "body_hex": voucher.body.hex(), "signature_hex": voucher.signature.hex(),
            "text": text, "typed_code": verify.typed_code(voucher_id),
        })
    x = verify.b64url_encode(verify.public_key_from_seed(VOUCHER_SEED))
    invalid = [
        {"description": "version 2", "text": make_voucher(version=2), "kid": 1, "public_key_x": x,
         "expected": "malformed-code"},
        {"description": "GGW", "text": replace_payload(make_voucher(), 0, "GGW"), "kid": 1,
         "public_key_x": x, "expected": "malformed-code"},
        {"description": "other signer", "text": make_voucher(seed=OTHER_SEED), "kid": 1,
         "public_key_x": x, "expected": "invalid-signature"},
        {"description": "kid 7", "text": make_voucher(kid=7), "kid": 1, "public_key_x": x,
         "expected": "unknown-key"},
    ]
    csv = StatementTest.CSV
    statement = [{
        "description": "statement", "secret_key_seed_hex": STATEMENT_SEED.hex(),
        "public_key_x": verify.b64url_encode(verify.public_key_from_seed(STATEMENT_SEED)),
        "kid": STATEMENT_KID, "csv_hex": csv.hex(), "sha256": hashlib.sha256(csv).hexdigest(),
        "signature": StatementTest().signature(),
    }]
    return {"format": verify.FORMAT_NAME, "valid": valid, "invalid": invalid, "statement": statement}


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.addCleanup(self.directory.cleanup)
        self.path = Path(self.directory.name)

    def write_json(self, name, document) -> str:
        path = self.path / name
        path.write_text(json.dumps(document))
        return str(path)

    def run_main(self, *argv) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = verify.main(list(argv))
        return status, out.getvalue()

    def test_vectors_fixture_passes(self):
        status, output = self.run_main("vectors", self.write_json("v.json", build_vectors()))
        self.assertEqual(status, 0, output)
        self.assertIn("0 failure(s)", output)

    def test_vectors_disagreements_are_named(self):
        mutations = [
            ("valid", 1, "program_id", 43, "program_id"),
            ("valid", 0, "typed_code", "0000-0000-0000-1Z", "typed_code"),
            ("valid", 0, "public_key_hex", "00" * 32, "public_key_hex"),
            ("valid", 2, "expires_on", "2026-01-01", "expires_on"),
            ("invalid", 3, "expected", "invalid-signature", "expected invalid-signature"),
            ("statement", 0, "sha256", "00" * 32, "sha256"),
        ]
        for section, index, field, value, fragment in mutations:
            document = build_vectors()
            document[section][index][field] = value
            with self.subTest(field=field):
                status, output = self.run_main("vectors", self.write_json("v.json", document))
                self.assertEqual(status, 1)
                self.assertIn(fragment, output)

    def test_voucher_command(self):
        jwks = self.write_json("jwks.json", jwks_document())
        good = make_voucher().lower() + "\n"
        status, output = self.run_main("voucher", "--jwks", jwks, good)
        self.assertEqual(status, 0, output)
        report = json.loads(output)
        self.assertTrue(report["verified"])
        self.assertEqual(report["program_id"], 42)
        self.assertEqual(report["key_status"], "active")

        status, output = self.run_main("voucher", "--jwks", jwks, good, make_voucher(kid=5), "PN1:GGW")
        self.assertEqual(status, 1)
        reports = [json.loads(line) for line in output.splitlines()]
        self.assertEqual([r.get("error") for r in reports], [None, "unknown-key", "malformed-code"])

    def test_statement_command(self):
        jwks = self.write_json("jwks.json", jwks_document())
        csv = self.path / "statement.csv"
        csv.write_bytes(StatementTest.CSV)
        signature = StatementTest().signature()
        status, output = self.run_main("statement", "--jwks", jwks, "--kid", "2", "--signature", signature, str(csv))
        self.assertEqual(status, 0, output)
        self.assertEqual(json.loads(output)["sha256"], hashlib.sha256(StatementTest.CSV).hexdigest())
        status, _ = self.run_main("statement", "--jwks", jwks, "--kid", "1", "--signature", signature, str(csv))
        self.assertEqual(status, 1)
        # One signature in 64 begins with "-": it is a value, not an option.
        status, output = self.run_main("statement", "--jwks", jwks, "--kid", "2", "--signature", "-" + signature[1:], str(csv))
        self.assertEqual((status, json.loads(output)["verified"]), (1, False), output)


if __name__ == "__main__":
    unittest.main()
