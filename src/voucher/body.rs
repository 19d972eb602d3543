//! The 18-byte voucher body: what the signature covers.

use chrono::{Days, NaiveDate};
use ed25519_dalek::{Signer, SigningKey};

use super::error::{BodyError, MalformedCode};
use super::signed::{signed_message, SignedVoucher};

/// The only format version this code reads or writes.
pub const VERSION: u8 = 1;
/// Length of an encoded body.
pub const BODY_LEN: usize = 18;
/// The two book sizes a funder can order.
pub const BOOK_SIZES: [u8; 2] = [5, 10];
/// Largest voucher id: ids fit a signed 64-bit integer column.
pub const MAX_VOUCHER_ID: u64 = i64::MAX as u64;

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(date) => date,
    None => panic!("1970-01-01 is a valid date"),
};

/// The signed fields of one voucher. Fields are public for convenience;
/// [`VoucherBody::validate`] (called by `to_bytes` and `sign`) enforces the
/// format's rules, so an invalid body can never be encoded or signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoucherBody {
    /// Id of the voucher key that signs it (see the JWK Set).
    pub kid: u8,
    /// The voucher's identity, in `1..=MAX_VOUCHER_ID`.
    pub voucher_id: u64,
    /// Funding programme that pays for the workshop.
    pub program_id: u32,
    /// Last valid day, inclusive (calendar date in Europe/Paris).
    pub expires_on: NaiveDate,
    /// Place in the book, `1..=book_size`.
    pub position: u8,
    /// 5 or 10.
    pub book_size: u8,
}

impl VoucherBody {
    /// Checks every field rule of format v1.
    pub fn validate(&self) -> Result<(), BodyError> {
        if self.voucher_id == 0 || self.voucher_id > MAX_VOUCHER_ID {
            return Err(BodyError::VoucherIdOutOfRange(self.voucher_id));
        }
        if !BOOK_SIZES.contains(&self.book_size) {
            return Err(BodyError::BookSize(self.book_size));
        }
        if self.position == 0 || self.position > self.book_size {
            return Err(BodyError::Position {
                position: self.position,
                book_size: self.book_size,
            });
        }
        expiry_days(self.expires_on)?;
        Ok(())
    }

    /// Encodes the body (big-endian integers), refusing any invalid field.
    pub fn to_bytes(&self) -> Result<[u8; BODY_LEN], BodyError> {
        self.validate()?;
        let days = expiry_days(self.expires_on)?;
        let mut bytes = [0u8; BODY_LEN];
        bytes[0] = VERSION;
        bytes[1] = self.kid;
        bytes[2..10].copy_from_slice(&self.voucher_id.to_be_bytes());
        bytes[10..14].copy_from_slice(&self.program_id.to_be_bytes());
        bytes[14..16].copy_from_slice(&days.to_be_bytes());
        bytes[16] = self.position;
        bytes[17] = self.book_size;
        Ok(bytes)
    }

    /// Decodes and validates a body; the version is checked first so that a
    /// future format is reported as such rather than as a length error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MalformedCode> {
        if let Some(&version) = bytes.first() {
            if version != VERSION {
                return Err(MalformedCode::UnsupportedVersion(version));
            }
        }
        let bytes: &[u8; BODY_LEN] = bytes
            .try_into()
            .map_err(|_| MalformedCode::WrongBodyLength { found: bytes.len() })?;
        let [_, kid, i0, i1, i2, i3, i4, i5, i6, i7, p0, p1, p2, p3, d0, d1, position, book_size] =
            *bytes;
        let body = VoucherBody {
            kid,
            voucher_id: u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
            program_id: u32::from_be_bytes([p0, p1, p2, p3]),
            expires_on: date_from_days(u16::from_be_bytes([d0, d1])),
            position,
            book_size,
        };
        body.validate()?;
        Ok(body)
    }

    /// Signs the body with the voucher key whose id is `self.kid`.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedVoucher, BodyError> {
        let body_bytes = self.to_bytes()?;
        let signature = key.sign(&signed_message(&body_bytes)).to_bytes();
        Ok(SignedVoucher::from_parts(*self, body_bytes, signature))
    }
}

fn expiry_days(date: NaiveDate) -> Result<u16, BodyError> {
    let days = date.signed_duration_since(EPOCH).num_days();
    u16::try_from(days).map_err(|_| BodyError::ExpiryOutOfRange(date))
}

fn date_from_days(days: u16) -> NaiveDate {
    // Day 65535 is 2149-06-06, far inside chrono's range (year 262142).
    EPOCH
        .checked_add_days(Days::new(u64::from(days)))
        .expect("any u16 day count is a representable date")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    fn body() -> VoucherBody {
        VoucherBody {
            kid: 1,
            voucher_id: 0x0102_0304_0506_0708,
            program_id: 0x0a0b_0c0d,
            expires_on: date(2026, 12, 31),
            position: 3,
            book_size: 10,
        }
    }

    #[test]
    fn layout_is_big_endian_and_in_order() {
        let bytes = body().to_bytes().expect("valid body");
        // 2026-12-31 is day 20818 = 0x5152.
        assert_eq!(
            bytes,
            [1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0x51, 0x52, 3, 10]
        );
        assert_eq!(VoucherBody::from_bytes(&bytes), Ok(body()));
    }

    #[test]
    fn expiry_range_is_the_u16_day_count() {
        for (expires_on, days) in [(date(1970, 1, 1), 0u16), (date(2149, 6, 6), 65535)] {
            let b = VoucherBody {
                expires_on,
                ..body()
            };
            let bytes = b.to_bytes().expect("in range");
            assert_eq!(bytes[14..16], days.to_be_bytes());
            assert_eq!(VoucherBody::from_bytes(&bytes), Ok(b));
        }
        for expires_on in [
            date(1969, 12, 31),
            date(2149, 6, 7),
            NaiveDate::MAX,
            NaiveDate::MIN,
        ] {
            let b = VoucherBody {
                expires_on,
                ..body()
            };
            assert_eq!(b.to_bytes(), Err(BodyError::ExpiryOutOfRange(expires_on)));
        }
    }

    #[test]
    fn field_rules_hold_both_ways() {
        let cases = [
            (
                VoucherBody {
                    voucher_id: 0,
                    ..body()
                },
                BodyError::VoucherIdOutOfRange(0),
            ),
            (
                VoucherBody {
                    voucher_id: 1 << 63,
                    ..body()
                },
                BodyError::VoucherIdOutOfRange(1 << 63),
            ),
            (
                VoucherBody {
                    voucher_id: u64::MAX,
                    ..body()
                },
                BodyError::VoucherIdOutOfRange(u64::MAX),
            ),
            (
                VoucherBody {
                    book_size: 7,
                    position: 1,
                    ..body()
                },
                BodyError::BookSize(7),
            ),
            (
                VoucherBody {
                    book_size: 0,
                    position: 0,
                    ..body()
                },
                BodyError::BookSize(0),
            ),
            (
                VoucherBody {
                    position: 0,
                    ..body()
                },
                BodyError::Position {
                    position: 0,
                    book_size: 10,
                },
            ),
            (
                VoucherBody {
                    position: 6,
                    book_size: 5,
                    ..body()
                },
                BodyError::Position {
                    position: 6,
                    book_size: 5,
                },
            ),
        ];
        let good = body().to_bytes().expect("valid body");
        for (bad, error) in cases {
            assert_eq!(bad.to_bytes(), Err(error));
            // The same field written by hand must be refused by the decoder.
            let mut bytes = good;
            bytes[2..10].copy_from_slice(&bad.voucher_id.to_be_bytes());
            bytes[16] = bad.position;
            bytes[17] = bad.book_size;
            assert_eq!(
                VoucherBody::from_bytes(&bytes),
                Err(MalformedCode::Body(error))
            );
        }
        for (id, position, book_size) in [(1, 1, 5), (MAX_VOUCHER_ID, 5, 5), (42, 10, 10)] {
            let b = VoucherBody {
                voucher_id: id,
                position,
                book_size,
                ..body()
            };
            assert_eq!(
                VoucherBody::from_bytes(&b.to_bytes().expect("valid")),
                Ok(b)
            );
        }
    }

    #[test]
    fn wrong_version_and_length_are_rejected() {
        let good = body().to_bytes().expect("valid body");
        for version in [0u8, 2, 255] {
            let mut bytes = good;
            bytes[0] = version;
            assert_eq!(
                VoucherBody::from_bytes(&bytes),
                Err(MalformedCode::UnsupportedVersion(version))
            );
        }
        assert_eq!(
            VoucherBody::from_bytes(&[]),
            Err(MalformedCode::WrongBodyLength { found: 0 })
        );
        assert_eq!(
            VoucherBody::from_bytes(&good[..17]),
            Err(MalformedCode::WrongBodyLength { found: 17 })
        );
        let mut longer = good.to_vec();
        longer.push(0);
        assert_eq!(
            VoucherBody::from_bytes(&longer),
            Err(MalformedCode::WrongBodyLength { found: 19 })
        );
    }
}
