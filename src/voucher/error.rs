//! Why a voucher input is refused. The three families map one-to-one to the
//! `malformed-code`, `unknown-key` and `invalid-signature` problems; the
//! messages become the problem's `detail`, so they say what is wrong in plain
//! English.

use chrono::NaiveDate;
use thiserror::Error;

use super::base45::Base45Error;

/// A body field breaks a rule of format v1. Returned when signing (so no
/// undecodable voucher is ever printed) and, inside [`MalformedCode::Body`],
/// when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("voucher_id must be between 1 and 2^63 - 1, found {0}")]
    VoucherIdOutOfRange(u64),
    #[error("book size must be 5 or 10, found {0}")]
    BookSize(u8),
    #[error("position must be between 1 and the book size {book_size}, found {position}")]
    Position { position: u8, book_size: u8 },
    #[error("expiry date {0} cannot be encoded: it must be between 1970-01-01 and 2149-06-06")]
    ExpiryOutOfRange(NaiveDate),
}

/// The input is not a well-formed v1 voucher (text form or typed code). Says
/// nothing about authenticity: that is [`InvalidSignature`]'s job.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MalformedCode {
    #[error("the code is empty")]
    Empty,
    #[error("a voucher code starts with \"PN1:\"")]
    MissingPrefix,
    #[error("the text after \"PN1:\" is not valid Base45: {0}")]
    Base45(#[from] Base45Error),
    #[error(
        "the code decodes to {found} bytes, but a v1 voucher is 82 bytes \
         (an 18-byte body and a 64-byte signature)"
    )]
    WrongLength { found: usize },
    #[error("a v1 voucher body is 18 bytes, found {found}")]
    WrongBodyLength { found: usize },
    #[error("unsupported voucher format version {0} (only version 1 exists)")]
    UnsupportedVersion(u8),
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("a typed code has 14 symbols (hyphens and spaces aside), found {found}")]
    TypedCodeLength { found: usize },
    #[error("{0:?} is not a typed-code symbol (Crockford Base32 without U)")]
    TypedCodeSymbol(char),
    #[error("the first symbol of a typed code is 0 to 7, found {0:?}")]
    TypedCodeTooLarge(char),
    #[error("the check symbol does not match: a symbol was probably mistyped")]
    TypedCodeCheck,
}

/// The Ed25519 signature does not verify strictly with the given key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the voucher signature does not verify")]
pub struct InvalidSignature;

/// Everything that can stop a scanned voucher before the database is asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VoucherError {
    #[error(transparent)]
    Malformed(#[from] MalformedCode),
    #[error("no published voucher key has kid {0}")]
    UnknownKey(u8),
    #[error("the voucher signature does not verify")]
    InvalidSignature,
}

impl From<InvalidSignature> for VoucherError {
    fn from(_: InvalidSignature) -> Self {
        VoucherError::InvalidSignature
    }
}
