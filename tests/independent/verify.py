#!/usr/bin/env python3
"""Independent verifier for passnum voucher format v1.

Written from the normative specification page (docs: voucher-format.md) alone,
without reading the Rust implementation, so that it can catch mistakes in it.

Commands:
  verify.py vectors FILE
  verify.py voucher --jwks URL_OR_FILE TEXT...
  verify.py statement --jwks URL_OR_FILE --kid K --signature S CSV_FILE

Every rejection carries one category: malformed-code, invalid-signature or
unknown-key. Dependencies: the standard library and `cryptography` (Ed25519).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import re
import string
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

FORMAT_NAME = "passnum voucher v1"
PREFIX = "PN1:"
VOUCHER_TAG = b"passnum-voucher-v1\x00"
STATEMENT_TAG = b"passnum-statement-v1\x00"
VERSION = 1
BODY_LEN = 18
SIGNATURE_LEN = 64
VOUCHER_LEN = BODY_LEN + SIGNATURE_LEN  # 82
BOOK_SIZES = (5, 10)
MAX_VOUCHER_ID = 2**63 - 1
EPOCH = datetime.date(1970, 1, 1)
VOUCHER_TIMEZONE = "Europe/Paris"

B45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
B45_VALUES = {symbol: value for value, symbol in enumerate(B45_ALPHABET)}

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CROCKFORD_VALUES = {symbol: value for value, symbol in enumerate(CROCKFORD_ALPHABET)}
CROCKFORD_ALIASES = {"I": "1", "L": "1", "O": "0"}
TYPED_DATA_SYMBOLS = 13

# "Whitespace" is read as ASCII whitespace (the code is pure ASCII anyway).
ASCII_WHITESPACE = string.whitespace  # " \t\n\r\x0b\x0c"
ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


# --------------------------------------------------------------------------
# Rejections


class Rejected(Exception):
    """A voucher, statement or key that does not verify, with its category."""

    category = "rejected"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.category}: {self.reason}"


class MalformedCode(Rejected):
    category = "malformed-code"


class BadSignature(Rejected):
    category = "invalid-signature"


class UnknownKey(Rejected):
    category = "unknown-key"


# --------------------------------------------------------------------------
# Base45 (RFC 9285)


def b45_digits(value: int, count: int) -> str:
    """`count` Base45 symbols of `value`, least significant first."""
    symbols = []
    for _ in range(count):
        value, digit = divmod(value, 45)
        symbols.append(B45_ALPHABET[digit])
    return "".join(symbols)


def b45encode(data: bytes) -> str:
    pairs_end = len(data) - len(data) % 2
    out = [b45_digits(data[i] * 256 + data[i + 1], 3) for i in range(0, pairs_end, 2)]
    if len(data) % 2:
        out.append(b45_digits(data[-1], 2))
    return "".join(out)


def b45_group_value(group: str) -> int:
    value = 0
    for symbol in reversed(group):
        value = value * 45 + B45_VALUES[symbol]
    return value


def b45decode(text: str) -> bytes:
    """Strict RFC 9285 decoding; raises MalformedCode."""
    for position, symbol in enumerate(text):
        if symbol not in B45_VALUES:
            raise MalformedCode(f"Base45: character {symbol!r} at offset {position} is outside the alphabet")
    if len(text) % 3 == 1:
        raise MalformedCode(f"Base45: {len(text)} characters leave a trailing group of one character")
    out = bytearray()
    for start in range(0, len(text), 3):
        group = text[start : start + 3]
        value = b45_group_value(group)
        if len(group) == 3:
            if value > 0xFFFF:
                raise MalformedCode(f"Base45: triplet {group!r} at offset {start} has value {value} > 65535")
            out += value.to_bytes(2, "big")
        else:
            if value > 0xFF:
                raise MalformedCode(f"Base45: final pair {group!r} has value {value} > 255")
            out.append(value)
    return bytes(out)


# --------------------------------------------------------------------------
# Base64url


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url without padding (a correct trailing '=' padding is tolerated);
    rejects foreign characters and non-canonical trailing bits."""
    unpadded = text.rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", unpadded) or len(unpadded) % 4 == 1:
        raise ValueError(f"not base64url: {text!r}")
    data = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    if b64url_encode(data) != unpadded or (text != unpadded and len(text) % 4):
        raise ValueError(f"non-canonical base64url: {text!r}")
    return data


# --------------------------------------------------------------------------
# Strict Ed25519 checks (RFC 8032 arithmetic, done by hand)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def decode_point(encoded: bytes) -> tuple[int, int, int, int] | None:
    """RFC 8032 section 5.1.3 decoding to extended coordinates; None if invalid
    (including a non-canonical y >= p)."""
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def point_add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def has_small_order(point) -> bool:
    for _ in range(3):  # multiply by the cofactor 8
        point = point_add(point, point)
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def verify_ed25519_strict(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Ed25519 verification that also rejects what verify_strict rejects:
    small-order keys, small-order R, non-canonical S. Raises BadSignature."""
    if len(public_key) != 32:
        raise BadSignature(f"public key is {len(public_key)} bytes, not 32")
    if len(signature) != 64:
        raise BadSignature(f"signature is {len(signature)} bytes, not 64")
    key_point = decode_point(public_key)
    if key_point is None:
        raise BadSignature("public key is not a canonical curve point encoding")
    if has_small_order(key_point):
        raise BadSignature("public key has small order")
    r_point = decode_point(signature[:32])
    if r_point is None:
        raise BadSignature("signature R is not a canonical curve point encoding")
    if has_small_order(r_point):
        raise BadSignature("signature R has small order")
    if int.from_bytes(signature[32:], "little") >= L:
        raise BadSignature("signature S is not canonical (S >= L)")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise BadSignature("Ed25519 signature does not verify") from None


def public_key_from_seed(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def sign(seed: bytes, message: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)


# --------------------------------------------------------------------------
# Voucher


@dataclass(frozen=True)
class Voucher:
    version: int
    kid: int
    voucher_id: int
    program_id: int
    expires_on_days: int
    position: int
    book_size: int
    body: bytes
    signature: bytes

    @property
    def expires_on(self) -> datetime.date:
        return EPOCH + datetime.timedelta(days=self.expires_on_days)

    def fields(self) -> dict:
        return {
            "version": self.version,
            "kid": self.kid,
            "voucher_id": str(self.voucher_id),
            "program_id": self.program_id,
            "expires_on": self.expires_on.isoformat(),
            "position": self.position,
            "book_size": self.book_size,
            "typed_code": typed_code(self.voucher_id),
        }


def normalize_text(text: str) -> str:
    """Strip leading/trailing whitespace and upper-case ASCII letters, nothing more."""
    return text.strip(ASCII_WHITESPACE).translate(ASCII_UPPER)


def pack_body(kid, voucher_id, program_id, expires_on_days, position, book_size, version=VERSION) -> bytes:
    return (
        version.to_bytes(1, "big")
        + kid.to_bytes(1, "big")
        + voucher_id.to_bytes(8, "big")
        + program_id.to_bytes(4, "big")
        + expires_on_days.to_bytes(2, "big")
        + position.to_bytes(1, "big")
        + book_size.to_bytes(1, "big")
    )


def encode_voucher_text(body: bytes, signature: bytes) -> str:
    return PREFIX + b45encode(body + signature)


def parse_body(body: bytes, signature: bytes) -> Voucher:
    voucher = Voucher(
        version=body[0],
        kid=body[1],
        voucher_id=int.from_bytes(body[2:10], "big"),
        program_id=int.from_bytes(body[10:14], "big"),
        expires_on_days=int.from_bytes(body[14:16], "big"),
        position=body[16],
        book_size=body[17],
        body=body,
        signature=signature,
    )
    check_body_rules(voucher)
    return voucher


def check_body_rules(v: Voucher) -> None:
    if v.version != VERSION:
        raise MalformedCode(f"unknown version {v.version}")
    if not 1 <= v.voucher_id <= MAX_VOUCHER_ID:
        raise MalformedCode(f"voucher_id {v.voucher_id} is outside 1..2^63-1")
    if v.book_size not in BOOK_SIZES:
        raise MalformedCode(f"book_size {v.book_size} is not 5 or 10")
    if not 1 <= v.position <= v.book_size:
        raise MalformedCode(f"position {v.position} is outside 1..{v.book_size}")


def decode_voucher(text: str) -> Voucher:
    """Decode (without verifying) a voucher's text form; raises MalformedCode."""
    normalized = normalize_text(text)
    if not normalized.startswith(PREFIX):
        raise MalformedCode(f"text does not start with {PREFIX!r}")
    payload = b45decode(normalized[len(PREFIX) :])
    if len(payload) != VOUCHER_LEN:
        raise MalformedCode(f"decodes to {len(payload)} bytes, not {VOUCHER_LEN}")
    return parse_body(payload[:BODY_LEN], payload[BODY_LEN:])


# --------------------------------------------------------------------------
# Keys (JWK Set)


@dataclass(frozen=True)
class Key:
    kid: int
    purpose: str | None
    status: str | None
    public_key: bytes


def parse_kid(value) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"0|[1-9][0-9]{0,2}", value) or int(value) > 255:
        raise ValueError(f"kid {value!r} is not a decimal number in 0..255")
    return int(value)


def parse_jwk(jwk: dict) -> Key:
    for name, expected in (("kty", "OKP"), ("crv", "Ed25519"), ("alg", "EdDSA"), ("use", "sig")):
        if name in jwk and jwk[name] != expected:
            raise ValueError(f"key {jwk.get('kid')!r}: {name} is {jwk[name]!r}, not {expected!r}")
    public_key = b64url_decode(jwk["x"])
    if len(public_key) != 32:
        raise ValueError(f"key {jwk.get('kid')!r}: x is {len(public_key)} bytes, not 32")
    return Key(parse_kid(jwk.get("kid")), jwk.get("purpose"), jwk.get("status"), public_key)


def is_ed25519_jwk(jwk) -> bool:
    return isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"


def parse_jwks(document: dict) -> dict[int, Key]:
    """Ed25519 keys by kid (other key types are ignored); raises ValueError."""
    keys: dict[int, Key] = {}
    for jwk in document.get("keys", []):
        if not is_ed25519_jwk(jwk):
            continue
        key = parse_jwk(jwk)
        if key.kid in keys:
            raise ValueError(f"kid {key.kid} is published twice")
        keys[key.kid] = key
    return keys


def load_jwks(source: str) -> dict[int, Key]:
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=30) as response:
            raw = response.read()
    else:
        raw = Path(source).read_bytes()
    return parse_jwks(json.loads(raw))


def key_for(keys: dict[int, Key], kid: int, purpose: str) -> Key:
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(f"kid {kid} is not in the key set (known: {sorted(keys)})")
    if key.purpose != purpose:
        raise UnknownKey(f"kid {kid} is published for purpose {key.purpose!r}, not {purpose!r}")
    return key


def verify_voucher(voucher: Voucher, keys: dict[int, Key]) -> Key:
    key = key_for(keys, voucher.kid, "voucher")
    verify_ed25519_strict(key.public_key, VOUCHER_TAG + voucher.body, voucher.signature)
    return key


def check_voucher_text(text: str, keys: dict[int, Key]) -> Voucher:
    """Decode and verify; raises Rejected."""
    voucher = decode_voucher(text)
    verify_voucher(voucher, keys)
    return voucher


# --------------------------------------------------------------------------
# Typed code (Crockford Base32 + Luhn mod 32)


def luhn_check_value(values: list[int], n: int = 32) -> int:
    """Luhn mod N check value; factor 2 on the rightmost data symbol."""
    total = 0
    for index, value in enumerate(reversed(values)):
        addend = value * (2 if index % 2 == 0 else 1)
        total += addend // n + addend % n
    return (n - total % n) % n


def typed_code(voucher_id: int) -> str:
    if not 0 <= voucher_id <= MAX_VOUCHER_ID:
        raise ValueError(f"voucher_id {voucher_id} does not fit 63 bits")
    values = [(voucher_id >> (5 * shift)) & 31 for shift in reversed(range(TYPED_DATA_SYMBOLS))]
    values.append(luhn_check_value(values))
    symbols = "".join(CROCKFORD_ALPHABET[v] for v in values)
    return "-".join((symbols[0:4], symbols[4:8], symbols[8:12], symbols[12:14]))


def parse_typed_code(text: str) -> int:
    """voucher_id from a typed code; raises ValueError."""
    cleaned = text.replace("-", "").replace(" ", "").translate(ASCII_UPPER)
    cleaned = "".join(CROCKFORD_ALIASES.get(c, c) for c in cleaned)
    if len(cleaned) != TYPED_DATA_SYMBOLS + 1:
        raise ValueError(f"typed code has {len(cleaned)} symbols, not {TYPED_DATA_SYMBOLS + 1}")
    bad = [c for c in cleaned if c not in CROCKFORD_VALUES]
    if bad:
        raise ValueError(f"typed code has invalid symbol {bad[0]!r}")
    values = [CROCKFORD_VALUES[c] for c in cleaned]
    if luhn_check_value(values[:-1]) != values[-1]:
        raise ValueError("typed code check symbol does not match")
    voucher_id = 0
    for value in values[:-1]:
        voucher_id = voucher_id * 32 + value
    if voucher_id > MAX_VOUCHER_ID:
        raise ValueError("typed code is larger than 63 bits")
    return voucher_id


# --------------------------------------------------------------------------
# Statements


def statement_message(csv_bytes: bytes) -> bytes:
    return STATEMENT_TAG + hashlib.sha256(csv_bytes).digest()


def verify_statement(csv_bytes: bytes, kid: int, signature_b64: str, keys: dict[int, Key]) -> Key:
    key = key_for(keys, kid, "statement")
    try:
        signature = b64url_decode(signature_b64)
    except ValueError as error:
        raise BadSignature(str(error)) from None
    verify_ed25519_strict(key.public_key, statement_message(csv_bytes), signature)
    return key


# --------------------------------------------------------------------------
# Vectors file


def check_valid_vector(vector: dict) -> list[str]:
    """Problems found with one valid vector (empty if it agrees with the spec)."""
    problems = []
    seed = bytes.fromhex(vector["secret_key_seed_hex"])
    public_key = public_key_from_seed(seed)
    if public_key.hex() != vector["public_key_hex"]:
        problems.append(f"public_key_hex: expected {public_key.hex()} from the seed")
    if b64url_encode(public_key) != vector["public_key_x"]:
        problems.append(f"public_key_x: expected {b64url_encode(public_key)} from the seed")

    keys = {vector["kid"]: Key(vector["kid"], "voucher", "active", b64url_decode(vector["public_key_x"]))}
    try:
        voucher = check_voucher_text(vector["text"], keys)
    except Rejected as error:
        return problems + [f"text rejected: {error}"]

    expected_fields = {
        "kid": voucher.kid,
        "voucher_id": str(voucher.voucher_id),
        "program_id": voucher.program_id,
        "expires_on": voucher.expires_on.isoformat(),
        "position": voucher.position,
        "book_size": voucher.book_size,
        "typed_code": typed_code(voucher.voucher_id),
        "body_hex": voucher.body.hex(),
        "signature_hex": voucher.signature.hex(),
    }
    for name, decoded in expected_fields.items():
        if vector[name] != decoded:
            problems.append(f"{name}: vector says {vector[name]!r}, text decodes to {decoded!r}")

    body = pack_body(
        vector["kid"], int(vector["voucher_id"]), vector["program_id"],
        (datetime.date.fromisoformat(vector["expires_on"]) - EPOCH).days,
        vector["position"], vector["book_size"],
    )
    if body.hex() != vector["body_hex"]:
        problems.append(f"body_hex: fields pack to {body.hex()}")
    signature = sign(seed, VOUCHER_TAG + body)
    if signature.hex() != vector["signature_hex"]:
        problems.append(f"signature_hex: signing the body with the seed gives {signature.hex()}")
    text = encode_voucher_text(body, signature)
    if text != vector["text"] and text != normalize_text(vector["text"]):
        problems.append(f"text: body+signature encode to {text!r}")
    return problems


def check_invalid_vector(vector: dict) -> list[str]:
    kid = vector["kid"]
    keys = {kid: Key(kid, "voucher", "active", b64url_decode(vector["public_key_x"]))}
    try:
        check_voucher_text(vector["text"], keys)
    except Rejected as error:
        if error.category != vector["expected"]:
            return [f"expected {vector['expected']}, got {error}"]
        return []
    return [f"expected {vector['expected']}, but the voucher verifies"]


def check_statement_vector(vector: dict) -> list[str]:
    problems = []
    csv_bytes = bytes.fromhex(vector["csv_hex"])
    digest = hashlib.sha256(csv_bytes).hexdigest()
    if digest != vector["sha256"]:
        problems.append(f"sha256: the CSV bytes hash to {digest}")
    if "secret_key_seed_hex" in vector:
        seed = bytes.fromhex(vector["secret_key_seed_hex"])
        public_x = b64url_encode(public_key_from_seed(seed))
        if public_x != vector["public_key_x"]:
            problems.append(f"public_key_x: expected {public_x} from the seed")
        signature = b64url_encode(sign(seed, statement_message(csv_bytes)))
        if signature != vector["signature"]:
            problems.append(f"signature: signing with the seed gives {signature}")
    kid = vector["kid"]
    keys = {kid: Key(kid, "statement", "active", b64url_decode(vector["public_key_x"]))}
    try:
        verify_statement(csv_bytes, kid, vector["signature"], keys)
    except Rejected as error:
        problems.append(f"signature rejected: {error}")
    return problems


VECTOR_CHECKS = (
    ("valid", check_valid_vector),
    ("invalid", check_invalid_vector),
    ("statement", check_statement_vector),
)


def run_vector_check(check, vector) -> list[str]:
    try:
        return check(vector)
    except (KeyError, TypeError, ValueError) as error:
        return [f"unreadable vector: {type(error).__name__}: {error}"]


def check_vectors(document: dict, out=None) -> int:
    """Prints one line per vector; returns the number of failures."""
    out = out or sys.stdout
    failures = 0
    if document.get("format") != FORMAT_NAME:
        print(f"FAIL format: {document.get('format')!r}, expected {FORMAT_NAME!r}", file=out)
        failures += 1
    for section, check in VECTOR_CHECKS:
        for index, vector in enumerate(document.get(section, [])):
            label = f"{section}[{index}] {vector.get('description', '')!r}"
            problems = run_vector_check(check, vector)
            failures += bool(problems)
            print(f"{'FAIL' if problems else 'ok  '} {label}", file=out)
            for problem in problems:
                print(f"     - {problem}", file=out)
    counts = ", ".join(f"{len(document.get(s, []))} {s}" for s, _ in VECTOR_CHECKS)
    print(f"{counts}: {failures} failure(s)", file=out)
    return failures


# --------------------------------------------------------------------------
# Command line


def today_in_voucher_timezone() -> datetime.date | None:
    try:
        from zoneinfo import ZoneInfo

        return datetime.datetime.now(ZoneInfo(VOUCHER_TIMEZONE)).date()
    except Exception:  # no tz database: expiry is informational only
        return None


def voucher_report(text: str, keys: dict[int, Key]) -> dict:
    report: dict = {"text": text, "verified": False}
    try:
        voucher = decode_voucher(text)
        report.update(voucher.fields())
        today = today_in_voucher_timezone()
        report["expired"] = None if today is None else today > voucher.expires_on
        key = verify_voucher(voucher, keys)
        report["key_status"] = key.status
        report["verified"] = True
    except Rejected as error:
        report["error"] = error.category
        report["reason"] = error.reason
    return report


def command_vectors(args) -> int:
    document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    return 1 if check_vectors(document) else 0


def command_voucher(args) -> int:
    keys = load_jwks(args.jwks)
    reports = [voucher_report(text, keys) for text in args.texts]
    for report in reports:
        print(json.dumps(report))
    return 0 if all(r["verified"] for r in reports) else 1


def command_statement(args) -> int:
    keys = load_jwks(args.jwks)
    csv_bytes = Path(args.csv_file).read_bytes()
    report = {
        "file": args.csv_file,
        "sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "kid": args.kid,
        "verified": False,
    }
    try:
        key = verify_statement(csv_bytes, args.kid, args.signature, keys)
        report.update(key_status=key.status, verified=True)
    except Rejected as error:
        report.update(error=error.category, reason=error.reason)
    print(json.dumps(report))
    return 0 if report["verified"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Independent passnum voucher v1 verifier")
    commands = parser.add_subparsers(dest="command", required=True)

    vectors = commands.add_parser("vectors", help="check a test-vectors file")
    vectors.add_argument("file")
    vectors.set_defaults(run=command_vectors)

    voucher = commands.add_parser("voucher", help="decode and verify voucher texts")
    voucher.add_argument("--jwks", required=True, help="JWK Set URL or file")
    voucher.add_argument("texts", nargs="+", metavar="text")
    voucher.set_defaults(run=command_voucher)

    statement = commands.add_parser("statement", help="verify a statement CSV signature")
    statement.add_argument("--jwks", required=True, help="JWK Set URL or file")
    statement.add_argument("--kid", required=True, type=int)
    statement.add_argument("--signature", required=True, help="base64url signature")
    statement.add_argument("csv_file")
    statement.set_defaults(run=command_statement)
    return parser


def bind_signature(argv: list[str]) -> list[str]:
    """A base64url signature may begin with "-", which argparse would take for
    an option: "--signature S" is read as "--signature=S"."""
    bound, rest = [], iter(argv)
    for arg in rest:
        if arg == "--signature":
            value = next(rest, None)
            bound.append(arg if value is None else f"--signature={value}")
        else:
            bound.append(arg)
    return bound


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(bind_signature(argv))
    try:
        return args.run(args)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
