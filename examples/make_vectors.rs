//! Writes the voucher format v1 test vectors as JSON on standard output:
//!
//!     cargo run --example make_vectors > tests/vectors/voucher-v1.json
//!
//! Everything is derived from fixed labels (keys are SHA-256 of a label), so
//! the output is the same on every run and every machine. The unit test in
//! `src/voucher/tests.rs` re-derives every field of the committed file.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDate;
use ed25519_dalek::{Signer, SigningKey};
use passnum::voucher::{
    base45, decode_and_verify, signed_message, statement, VoucherBody, VoucherError, BODY_LEN,
    MAX_VOUCHER_ID, TEXT_PREFIX,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Serialize)]
struct Vectors {
    format: &'static str,
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
    statement: Vec<Statement>,
}

#[derive(Serialize)]
struct Valid {
    description: String,
    secret_key_seed_hex: String,
    public_key_hex: String,
    public_key_x: String,
    kid: u8,
    voucher_id: String,
    program_id: u32,
    expires_on: String,
    position: u8,
    book_size: u8,
    body_hex: String,
    signature_hex: String,
    text: String,
    typed_code: String,
}

#[derive(Serialize)]
struct Invalid {
    description: String,
    text: String,
    kid: u8,
    public_key_x: String,
    expected: &'static str,
}

#[derive(Serialize)]
struct Statement {
    description: String,
    secret_key_seed_hex: String,
    public_key_x: String,
    kid: u8,
    csv_hex: String,
    sha256: String,
    signature: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(label: &str) -> [u8; 32] {
    Sha256::digest(label.as_bytes()).into()
}

/// Test key number `n`: its seed is SHA-256("passnum test key <n>").
fn test_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&sha256(&format!("passnum test key {n}")))
}

fn x(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
}

/// A fixed "random" voucher id: the first 8 bytes of SHA-256(label), top bit cleared.
fn id_from(label: &str) -> u64 {
    let digest = sha256(label);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) & MAX_VOUCHER_ID).max(1)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("fixed date")
}

fn valid(description: &str, key_number: u8, body: VoucherBody) -> Valid {
    let key = test_key(key_number);
    let signed = body.sign(&key).expect("vector bodies are valid");
    Valid {
        description: description.to_string(),
        secret_key_seed_hex: hex(key.as_bytes()),
        public_key_hex: hex(key.verifying_key().as_bytes()),
        public_key_x: x(&key),
        kid: body.kid,
        voucher_id: body.voucher_id.to_string(),
        program_id: body.program_id,
        expires_on: body.expires_on.to_string(),
        position: body.position,
        book_size: body.book_size,
        body_hex: hex(signed.body_bytes()),
        signature_hex: hex(signed.signature()),
        text: signed.to_text(),
        typed_code: signed.typed_code(),
    }
}

fn text_of(body: &[u8], signature: &[u8]) -> String {
    format!(
        "{TEXT_PREFIX}{}",
        base45::encode(&[body, signature].concat())
    )
}

fn sign_raw(body: &[u8; BODY_LEN], key: &SigningKey) -> [u8; 64] {
    key.sign(&signed_message(body)).to_bytes()
}

/// S + L (L: order of the base point), little-endian like S itself.
fn add_group_order(s: &[u8]) -> [u8; 32] {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    out
}

fn main() {
    let book_of_ten = VoucherBody {
        kid: 1,
        voucher_id: 1,
        program_id: 42,
        expires_on: date(2026, 12, 31),
        position: 1,
        book_size: 10,
    };
    let valid_vectors = vec![
        valid(
            "smallest voucher_id, first voucher of a book of 10, kid 1",
            1,
            book_of_ten,
        ),
        valid(
            "largest voucher_id (2^63 - 1), largest program_id, last voucher of a book of 5, \
             last encodable expiry day (65535 = 2149-06-06), kid 0",
            0,
            VoucherBody {
                kid: 0,
                voucher_id: MAX_VOUCHER_ID,
                program_id: u32::MAX,
                expires_on: date(2149, 6, 6),
                position: 5,
                book_size: 5,
            },
        ),
        valid(
            "random voucher_id, last voucher of a book of 10, kid 255",
            255,
            VoucherBody {
                kid: 255,
                voucher_id: id_from("passnum vector 3"),
                program_id: 7,
                expires_on: date(2027, 6, 30),
                position: 10,
                book_size: 10,
            },
        ),
        valid(
            "kid 5 makes the first Base45 symbol a space, right after PN1: \
             (decoders must not strip it)",
            5,
            VoucherBody {
                kid: 5,
                voucher_id: id_from("passnum vector 4"),
                program_id: 1001,
                expires_on: date(2026, 9, 1),
                position: 2,
                book_size: 5,
            },
        ),
        valid(
            "random voucher_id, expiry on day 0 (1970-01-01), middle of a book of 10, kid 1",
            1,
            VoucherBody {
                kid: 1,
                voucher_id: id_from("passnum vector 5"),
                program_id: 3,
                expires_on: date(1970, 1, 1),
                position: 6,
                book_size: 10,
            },
        ),
        valid(
            "random voucher_id, a typical voucher whose text holds inner spaces, kid 1",
            1,
            spaced_body(),
        ),
    ];

    let key1 = test_key(1);
    let base = VoucherBody {
        kid: 1,
        voucher_id: id_from("passnum invalid base"),
        program_id: 42,
        expires_on: date(2026, 12, 31),
        position: 3,
        book_size: 5,
    };
    let signed = base.sign(&key1).expect("valid base body");
    let good_body = *signed.body_bytes();
    let good_signature = *signed.signature();
    let good_text = signed.to_text();
    let invalid_for_key1 = |description: &str, text: String, expected: &'static str| Invalid {
        description: format!("{description}; the verifier knows only kid 1"),
        text,
        kid: 1,
        public_key_x: x(&key1),
        expected,
    };
    let resigned = |edit: &dyn Fn(&mut [u8; BODY_LEN])| {
        let mut body = good_body;
        edit(&mut body);
        text_of(&body, &sign_raw(&body, &key1))
    };

    let mut flipped_signature = good_signature;
    flipped_signature[20] ^= 0x01;
    let mut changed_body = good_body;
    changed_body[13] ^= 0x01; // program_id 42 -> 43
    let mut non_canonical = good_signature;
    let s_plus_l = add_group_order(&good_signature[32..]);
    non_canonical[32..].copy_from_slice(&s_plus_l);
    let unknown = VoucherBody { kid: 9, ..base }
        .sign(&test_key(9))
        .expect("valid body");
    // "GGW" is 16 + 16*45 + 32*2025 = 65536: replaces the second group.
    let ggw = format!("{}GGW{}", &good_text[..7], &good_text[10..]);

    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut zero_signature = [0u8; 64];
    zero_signature[..32].copy_from_slice(&identity);

    let mut invalid_vectors = vec![
        invalid_for_key1(
            "one bit flipped in the signature (byte 20, bit 0)",
            text_of(&good_body, &flipped_signature),
            "invalid-signature",
        ),
        invalid_for_key1(
            "body changed after signing (program_id 42 -> 43)",
            text_of(&changed_body, &good_signature),
            "invalid-signature",
        ),
        invalid_for_key1(
            "non-canonical signature: S replaced by S + L, which lax verifiers accept",
            text_of(&good_body, &non_canonical),
            "invalid-signature",
        ),
        invalid_for_key1(
            "signature over the bare body, without the passnum-voucher-v1 domain tag",
            text_of(&good_body, &key1.sign(&good_body).to_bytes()),
            "invalid-signature",
        ),
        invalid_for_key1(
            "version byte 2, validly signed",
            resigned(&|b| b[0] = 2),
            "malformed-code",
        ),
        invalid_for_key1(
            "book size 7, validly signed",
            resigned(&|b| b[17] = 7),
            "malformed-code",
        ),
        invalid_for_key1(
            "position 0, validly signed",
            resigned(&|b| b[16] = 0),
            "malformed-code",
        ),
        invalid_for_key1(
            "position 6 in a book of 5, validly signed",
            resigned(&|b| b[16] = 6),
            "malformed-code",
        ),
        invalid_for_key1(
            "voucher_id 2^63, validly signed",
            resigned(&|b| b[2..10].copy_from_slice(&(1u64 << 63).to_be_bytes())),
            "malformed-code",
        ),
        invalid_for_key1(
            "voucher_id 0, validly signed",
            resigned(&|b| b[2..10].copy_from_slice(&0u64.to_be_bytes())),
            "malformed-code",
        ),
        invalid_for_key1(
            "Base45 group GGW (value 65536) in place of the second group",
            ggw,
            "malformed-code",
        ),
        invalid_for_key1(
            "a lone Base45 symbol appended (124 symbols)",
            format!("{good_text}0"),
            "malformed-code",
        ),
        invalid_for_key1(
            "last 3-symbol group removed (80 bytes)",
            good_text[..good_text.len() - 3].to_string(),
            "malformed-code",
        ),
        invalid_for_key1(
            "character outside the Base45 alphabet (#)",
            format!("{}#{}", &good_text[..20], &good_text[21..]),
            "malformed-code",
        ),
        invalid_for_key1(
            "prefix missing",
            good_text[4..].to_string(),
            "malformed-code",
        ),
        invalid_for_key1(
            "valid voucher signed by kid 9",
            unknown.to_text(),
            "unknown-key",
        ),
    ];
    invalid_vectors.push(Invalid {
        description: "small-order public key (the identity point) published as kid 1, \
                      signature R = identity, S = 0: lax verifiers accept it for any body"
            .to_string(),
        text: text_of(&good_body, &zero_signature),
        kid: 1,
        public_key_x: URL_SAFE_NO_PAD.encode(identity),
        expected: "invalid-signature",
    });

    // Guard: every invalid vector fails exactly as announced with this code.
    for v in &invalid_vectors {
        let key = v.public_key_x.clone();
        let outcome = decode_and_verify(&v.text, |kid| {
            let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&key).ok()?.try_into().ok()?;
            (kid == v.kid)
                .then(|| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
                .flatten()
        });
        let got = match outcome {
            Ok(_) => "accepted",
            Err(VoucherError::Malformed(_)) => "malformed-code",
            Err(VoucherError::UnknownKey(_)) => "unknown-key",
            Err(VoucherError::InvalidSignature) => "invalid-signature",
        };
        assert_eq!(got, v.expected, "{}", v.description);
    }

    let statement_key = test_key(2);
    let statements = [
        (
            "closed statement CSV with UTF-8 and CRLF line ends (the digest covers the exact bytes)",
            "voucher_id,venue,redeemed_on,amount_eur\r\n\
             1,Médiathèque de Saint-Étienne,2026-03-02,20.00\r\n\
             9223372036854775807,France services Guéret,2026-03-05,20.00\r\n",
        ),
        (
            "statement with a header and no redemption",
            "voucher_id,venue,redeemed_on,amount_eur\r\n",
        ),
    ]
    .into_iter()
    .map(|(description, csv)| {
        let digest = statement::digest(csv.as_bytes());
        Statement {
            description: description.to_string(),
            secret_key_seed_hex: hex(statement_key.as_bytes()),
            public_key_x: x(&statement_key),
            kid: 2,
            csv_hex: hex(csv.as_bytes()),
            sha256: statement::digest_hex(&digest),
            signature: statement::sign(&digest, &statement_key),
        }
    })
    .collect();

    let vectors = Vectors {
        format: "passnum voucher v1",
        valid: valid_vectors,
        invalid: invalid_vectors,
        statement: statements,
    };
    let json = serde_json::to_string_pretty(&vectors).expect("plain data serialises");
    println!("{json}");
}

/// The first program_id from 100 up whose text has a space after the first
/// symbols (not only the special case of kid 5).
fn spaced_body() -> VoucherBody {
    let key = test_key(1);
    (100..)
        .map(|program_id| VoucherBody {
            kid: 1,
            voucher_id: id_from("passnum vector 6"),
            program_id,
            expires_on: date(2027, 1, 31),
            position: 7,
            book_size: 10,
        })
        .find(|body| {
            let text = body.sign(&key).expect("valid body").to_text();
            text[5..].matches(' ').count() >= 2
        })
        .expect("a spaced text comes quickly")
}
