//! Tests across the whole format: text round trips, tampering, strict
//! verification, and the committed test vectors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use proptest::prelude::*;
use serde::Deserialize;

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test date")
}

fn body() -> VoucherBody {
    VoucherBody {
        kid: 1,
        voucher_id: 6_148_914_691_236_517_205,
        program_id: 42,
        expires_on: date(2026, 12, 31),
        position: 4,
        book_size: 10,
    }
}

/// A ring that knows only `kid` → `key`.
fn ring(kid: u8, key: VerifyingKey) -> impl Fn(u8) -> Option<VerifyingKey> {
    move |k| (k == kid).then_some(key)
}

/// Text form of arbitrary body and signature bytes, valid or not.
fn text_of(body: &[u8], signature: &[u8]) -> String {
    format!(
        "{TEXT_PREFIX}{}",
        base45::encode(&[body, signature].concat())
    )
}

/// Signs arbitrary body bytes exactly as a v1 signer would, to build bodies
/// that are well signed but break a field rule.
fn sign_raw(body: &[u8; BODY_LEN], key: &SigningKey) -> [u8; 64] {
    key.sign(&signed_message(body)).to_bytes()
}

/// S + L, where L is the order of the Ed25519 base point (little-endian).
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
    assert_eq!(carry, 0, "S + L fits 256 bits when S < L");
    out
}

#[test]
fn sign_then_parse_round_trips() {
    let signed = body().sign(&key(1)).expect("valid body");
    let text = signed.to_text();
    assert_eq!(text.len(), 127);
    assert!(text.starts_with("PN1:"));
    let parsed = SignedVoucher::parse(&text).expect("own text");
    assert_eq!(parsed, signed);
    assert_eq!(*parsed.body(), body());
    assert_eq!(parsed.verify(&key(1).verifying_key()), Ok(()));
    let decoded = decode_and_verify(&text, ring(1, key(1).verifying_key()));
    assert_eq!(decoded, Ok(signed));
}

#[test]
fn signing_refuses_invalid_bodies() {
    let far = VoucherBody {
        expires_on: date(2150, 1, 1),
        ..body()
    };
    assert_eq!(
        far.sign(&key(1)),
        Err(BodyError::ExpiryOutOfRange(date(2150, 1, 1)))
    );
    let seven = VoucherBody {
        book_size: 7,
        ..body()
    };
    assert_eq!(seven.sign(&key(1)), Err(BodyError::BookSize(7)));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let signed = body().sign(&key(1)).expect("valid body");
    let mut payload = [signed.body_bytes().as_slice(), signed.signature()].concat();
    let public = key(1).verifying_key();
    for bit in 0..payload.len() * 8 {
        payload[bit / 8] ^= 1 << (bit % 8);
        let text = text_of(&payload, &[]);
        // Whatever the kid now says, even a ring that hands out our key for
        // every kid must not accept the altered text.
        assert!(
            decode_and_verify(&text, |_| Some(public)).is_err(),
            "bit {bit}"
        );
        let outcome = decode_and_verify(&text, ring(1, public));
        match bit / 8 {
            0 => assert!(matches!(outcome, Err(VoucherError::Malformed(_)))),
            1 => assert_eq!(outcome, Err(VoucherError::UnknownKey(1 ^ (1 << (bit % 8))))),
            _ => assert!(outcome.is_err(), "bit {bit}"),
        }
        payload[bit / 8] ^= 1 << (bit % 8);
    }
    assert!(decode_and_verify(&text_of(&payload, &[]), ring(1, public)).is_ok());
}

#[test]
fn truncated_and_extended_texts_are_rejected() {
    let text = body().sign(&key(1)).expect("valid body").to_text();
    let cut = |n: usize| text[..text.len() - n].to_string();
    assert_eq!(
        SignedVoucher::parse(&cut(1)),
        Err(MalformedCode::WrongLength { found: 81 })
    );
    assert_eq!(
        SignedVoucher::parse(&cut(2)),
        Err(MalformedCode::Base45(base45::Base45Error::DanglingSymbol))
    );
    assert_eq!(
        SignedVoucher::parse(&cut(3)),
        Err(MalformedCode::WrongLength { found: 80 })
    );
    assert_eq!(
        SignedVoucher::parse(&format!("{text}0")),
        Err(MalformedCode::Base45(base45::Base45Error::DanglingSymbol))
    );
    assert_eq!(
        SignedVoucher::parse(&format!("{text}00")),
        Err(MalformedCode::WrongLength { found: 83 })
    );
    assert_eq!(
        SignedVoucher::parse(&format!("{text}000")),
        Err(MalformedCode::WrongLength { found: 84 })
    );
    assert_eq!(
        SignedVoucher::parse("PN1:"),
        Err(MalformedCode::WrongLength { found: 0 })
    );
    // Only the body, no signature.
    let body_only = text_of(&body().to_bytes().expect("valid"), &[]);
    assert_eq!(
        SignedVoucher::parse(&body_only),
        Err(MalformedCode::WrongLength { found: 18 })
    );
}

#[test]
fn empty_and_unprefixed_inputs_are_malformed() {
    assert_eq!(SignedVoucher::parse(""), Err(MalformedCode::Empty));
    assert_eq!(SignedVoucher::parse(" \r\n\t"), Err(MalformedCode::Empty));
    let text = body().sign(&key(1)).expect("valid body").to_text();
    for bad in [
        &text[4..],
        &text[1..],
        "PN2:",
        "PN1",
        "https://example.org/PN1:",
    ] {
        assert_eq!(
            SignedVoucher::parse(bad),
            Err(MalformedCode::MissingPrefix),
            "{bad}"
        );
    }
    assert_eq!(
        decode_and_verify("", |_| None),
        Err(VoucherError::Malformed(MalformedCode::Empty))
    );
}

#[test]
fn wrong_version_is_rejected_even_when_signed() {
    let mut bytes = body().to_bytes().expect("valid body");
    for version in [0, 2] {
        bytes[0] = version;
        let text = text_of(&bytes, &sign_raw(&bytes, &key(1)));
        assert_eq!(
            decode_and_verify(&text, ring(1, key(1).verifying_key())),
            Err(VoucherError::Malformed(MalformedCode::UnsupportedVersion(
                version
            )))
        );
    }
}

#[test]
fn field_rules_are_enforced_on_signed_texts() {
    let good = body().to_bytes().expect("valid body");
    let with = |edit: &dyn Fn(&mut [u8; BODY_LEN])| {
        let mut bytes = good;
        edit(&mut bytes);
        let text = text_of(&bytes, &sign_raw(&bytes, &key(1)));
        decode_and_verify(&text, ring(1, key(1).verifying_key()))
    };
    let malformed = |error| Err(VoucherError::Malformed(MalformedCode::Body(error)));
    assert_eq!(with(&|b| b[17] = 7), malformed(BodyError::BookSize(7)));
    assert_eq!(
        with(&|b| b[16] = 0),
        malformed(BodyError::Position {
            position: 0,
            book_size: 10
        })
    );
    assert_eq!(
        with(&|b| b[16] = 11),
        malformed(BodyError::Position {
            position: 11,
            book_size: 10
        })
    );
    assert_eq!(
        with(&|b| {
            b[16] = 6;
            b[17] = 5
        }),
        malformed(BodyError::Position {
            position: 6,
            book_size: 5
        })
    );
    assert_eq!(
        with(&|b| b[2..10].copy_from_slice(&0u64.to_be_bytes())),
        malformed(BodyError::VoucherIdOutOfRange(0))
    );
    assert_eq!(
        with(&|b| b[2..10].copy_from_slice(&(1u64 << 63).to_be_bytes())),
        malformed(BodyError::VoucherIdOutOfRange(1 << 63))
    );
    assert!(with(&|b| b[2..10].copy_from_slice(&MAX_VOUCHER_ID.to_be_bytes())).is_ok());
    assert!(with(&|b| b[16] = 10).is_ok());
}

#[test]
fn unknown_kid_is_reported_before_any_signature_check() {
    let signed = VoucherBody { kid: 9, ..body() }
        .sign(&key(9))
        .expect("valid body");
    assert_eq!(
        decode_and_verify(&signed.to_text(), ring(1, key(1).verifying_key())),
        Err(VoucherError::UnknownKey(9))
    );
    // Known kid, but the ring maps it to another key: the signature fails.
    assert_eq!(
        decode_and_verify(&signed.to_text(), ring(9, key(1).verifying_key())),
        Err(VoucherError::InvalidSignature)
    );
}

#[test]
fn scanner_noise_is_tolerated_and_nothing_more() {
    let signed = body().sign(&key(1)).expect("valid body");
    let text = signed.to_text();
    for noisy in [
        text.to_lowercase(),
        format!("{text}\r\n"),
        format!("{text}\n"),
        format!("  \t{}\r\n", text.to_lowercase()),
    ] {
        assert_eq!(
            SignedVoucher::parse(&noisy).as_ref(),
            Ok(&signed),
            "{noisy:?}"
        );
    }
    // A character that is not whitespace or an ASCII letter stays invalid.
    let mut accented = text.clone();
    accented.insert(10, 'é');
    assert!(matches!(
        SignedVoucher::parse(&accented),
        Err(MalformedCode::Base45(
            base45::Base45Error::InvalidCharacter {
                character: 'é', ..
            }
        ))
    ));
}

#[test]
fn inner_spaces_are_symbols_not_noise() {
    // kid 5 makes the first Base45 symbol a space: (1 * 256 + 5) % 45 == 36.
    let signed = VoucherBody { kid: 5, ..body() }
        .sign(&key(5))
        .expect("valid body");
    let text = signed.to_text();
    assert!(text.starts_with("PN1: "), "{text}");
    assert_eq!(SignedVoucher::parse(&text).as_ref(), Ok(&signed));
    assert_eq!(
        SignedVoucher::parse(&format!(" {text} ")).as_ref(),
        Ok(&signed)
    );
    // Removing the space is not tolerated.
    assert!(SignedVoucher::parse(&text.replacen(' ', "", 1)).is_err());
}

#[test]
fn non_canonical_s_is_rejected() {
    let signed = body().sign(&key(1)).expect("valid body");
    let mut signature = *signed.signature();
    let s_plus_l = add_group_order(&signature[32..]);
    signature[32..].copy_from_slice(&s_plus_l);
    let text = text_of(signed.body_bytes(), &signature);
    assert_eq!(
        decode_and_verify(&text, ring(1, key(1).verifying_key())),
        Err(VoucherError::InvalidSignature)
    );
}

#[test]
fn small_order_key_is_rejected() {
    // Identity point as public key, R = identity, S = 0: the cofactorless
    // equation holds for every message, so lax verification accepts it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).expect("identity decompresses");
    let bytes = body().to_bytes().expect("valid body");
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity);
    assert!(
        weak.verify(&signed_message(&bytes), &Signature::from_bytes(&signature))
            .is_ok(),
        "lax verification accepts the forgery, so the test is meaningful"
    );
    let text = text_of(&bytes, &signature);
    assert_eq!(
        decode_and_verify(&text, ring(1, weak)),
        Err(VoucherError::InvalidSignature)
    );
}

#[test]
fn rfc8032_test_1() {
    let seed: [u8; 32] = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .try_into()
        .expect("32 bytes");
    let key = SigningKey::from_bytes(&seed);
    assert_eq!(
        hex(key.verifying_key().as_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let signature = key.sign(b"");
    assert_eq!(
        hex(&signature.to_bytes()),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    assert!(key.verifying_key().verify_strict(b"", &signature).is_ok());
}

#[test]
fn domain_tag_is_part_of_the_signed_message() {
    let bytes = body().to_bytes().expect("valid body");
    let message = signed_message(&bytes);
    assert_eq!(&message[..18], b"passnum-voucher-v1");
    assert_eq!(message[18], 0);
    assert_eq!(message[19..], bytes);
    // A signature over the bare body (no tag) does not verify.
    let bare = key(1).sign(&bytes).to_bytes();
    assert_eq!(
        decode_and_verify(&text_of(&bytes, &bare), ring(1, key(1).verifying_key())),
        Err(VoucherError::InvalidSignature)
    );
}

#[test]
fn typed_code_matches_the_voucher() {
    let signed = body().sign(&key(1)).expect("valid body");
    assert_eq!(
        typed_code::decode(&signed.typed_code()),
        Ok(body().voucher_id)
    );
    assert_eq!(
        typed_code::encode(body().voucher_id).as_ref(),
        Ok(&signed.typed_code())
    );
}

fn valid_body() -> impl Strategy<Value = VoucherBody> {
    (
        any::<u8>(),
        1..=MAX_VOUCHER_ID,
        any::<u32>(),
        any::<u16>(),
        prop::sample::select(BOOK_SIZES.to_vec()),
    )
        .prop_flat_map(|(kid, voucher_id, program_id, days, book_size)| {
            (1..=book_size).prop_map(move |position| VoucherBody {
                kid,
                voucher_id,
                program_id,
                expires_on: date(1970, 1, 1) + chrono::Days::new(u64::from(days)),
                position,
                book_size,
            })
        })
}

proptest! {
    #[test]
    fn body_bytes_round_trip(body in valid_body()) {
        let bytes = body.to_bytes().expect("strategy makes valid bodies");
        prop_assert_eq!(VoucherBody::from_bytes(&bytes), Ok(body));
    }

    #[test]
    fn text_round_trips(body in valid_body(), seed in any::<[u8; 32]>()) {
        let key = SigningKey::from_bytes(&seed);
        let signed = body.sign(&key).expect("valid body");
        let text = signed.to_text();
        prop_assert_eq!(text.len(), 127);
        let decoded = decode_and_verify(&text, |kid| (kid == body.kid).then(|| key.verifying_key()));
        prop_assert_eq!(decoded.as_ref(), Ok(&signed));
        prop_assert_eq!(typed_code::decode(&signed.typed_code()), Ok(body.voucher_id));
    }

    #[test]
    fn text_decoder_never_panics(text in "\\PC*") {
        let _ = decode_and_verify(&text, |_| Some(key(1).verifying_key()));
        let _ = typed_code::decode(&text);
    }

    #[test]
    fn text_decoder_never_panics_on_near_miss_texts(text in "[pP][nN]1:[0-9A-Za-z $%*+./:-]{120,126}") {
        let _ = decode_and_verify(&text, |_| Some(key(1).verifying_key()));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_and_verify(&text, |_| Some(key(1).verifying_key()));
        let _ = typed_code::decode(&text);
        let _ = VoucherBody::from_bytes(&bytes);
    }
}

// ---- committed test vectors ------------------------------------------------

const VECTORS: &str = include_str!("../../tests/vectors/voucher-v1.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    format: String,
    valid: Vec<ValidVector>,
    invalid: Vec<InvalidVector>,
    statement: Vec<StatementVector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidVector {
    description: String,
    secret_key_seed_hex: String,
    public_key_hex: String,
    public_key_x: String,
    kid: u8,
    voucher_id: String,
    program_id: u32,
    expires_on: NaiveDate,
    position: u8,
    book_size: u8,
    body_hex: String,
    signature_hex: String,
    text: String,
    typed_code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidVector {
    description: String,
    text: String,
    kid: u8,
    public_key_x: String,
    expected: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementVector {
    description: String,
    secret_key_seed_hex: String,
    public_key_x: String,
    kid: u8,
    csv_hex: String,
    sha256: String,
    signature: String,
}

fn signing_key_from_hex(seed_hex: &str) -> SigningKey {
    let seed: [u8; 32] = unhex(seed_hex).try_into().expect("32-byte seed");
    SigningKey::from_bytes(&seed)
}

fn key_from_x(x: &str) -> VerifyingKey {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(x)
        .expect("base64url")
        .try_into()
        .expect("32-byte key");
    VerifyingKey::from_bytes(&bytes).expect("a curve point")
}

fn problem_type(error: &VoucherError) -> &'static str {
    match error {
        VoucherError::Malformed(_) => "malformed-code",
        VoucherError::UnknownKey(_) => "unknown-key",
        VoucherError::InvalidSignature => "invalid-signature",
    }
}

#[test]
fn committed_vectors_are_reproduced() {
    let vectors: Vectors = serde_json::from_str(VECTORS).expect("vector file parses");
    assert_eq!(vectors.format, "passnum voucher v1");
    assert!(vectors.valid.len() >= 6 && vectors.invalid.len() >= 8);
    assert!(!vectors.statement.is_empty());

    for v in &vectors.valid {
        let what = &v.description;
        let key = signing_key_from_hex(&v.secret_key_seed_hex);
        assert_eq!(
            hex(key.verifying_key().as_bytes()),
            v.public_key_hex,
            "{what}"
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            v.public_key_x,
            "{what}"
        );
        let body = VoucherBody {
            kid: v.kid,
            voucher_id: v.voucher_id.parse().expect("decimal voucher_id"),
            program_id: v.program_id,
            expires_on: v.expires_on,
            position: v.position,
            book_size: v.book_size,
        };
        let signed = body.sign(&key).expect("valid vector body");
        assert_eq!(hex(signed.body_bytes()), v.body_hex, "{what}");
        assert_eq!(hex(signed.signature()), v.signature_hex, "{what}");
        assert_eq!(signed.to_text(), v.text, "{what}");
        assert_eq!(signed.typed_code(), v.typed_code, "{what}");
        let decoded = decode_and_verify(&v.text, ring(v.kid, key_from_x(&v.public_key_x)));
        assert_eq!(decoded.as_ref(), Ok(&signed), "{what}");
        assert_eq!(
            typed_code::decode(&v.typed_code),
            Ok(body.voucher_id),
            "{what}"
        );
    }

    for v in &vectors.invalid {
        let outcome = decode_and_verify(&v.text, ring(v.kid, key_from_x(&v.public_key_x)));
        let error = outcome.expect_err(&v.description);
        assert_eq!(
            problem_type(&error),
            v.expected,
            "{}: {error}",
            v.description
        );
    }

    // As in a real JWK Set, a kid names one key, whatever its purpose.
    let mut keys = std::collections::BTreeMap::new();
    let named = vectors.valid.iter().map(|v| (v.kid, &v.public_key_x));
    for (kid, x) in named.chain(vectors.statement.iter().map(|v| (v.kid, &v.public_key_x))) {
        assert_eq!(*keys.entry(kid).or_insert(x), x, "kid {kid} names two keys");
    }

    for v in &vectors.statement {
        let what = &v.description;
        let key = signing_key_from_hex(&v.secret_key_seed_hex);
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            v.public_key_x,
            "{what}"
        );
        let digest = statement::digest(&unhex(&v.csv_hex));
        assert_eq!(statement::digest_hex(&digest), v.sha256, "{what}");
        assert_eq!(statement::sign(&digest, &key), v.signature, "{what}");
        assert_eq!(
            statement::verify(&digest, &v.signature, &key_from_x(&v.public_key_x)),
            Ok(()),
            "{what}"
        );
    }
}
