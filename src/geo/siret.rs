//! SIRET numbers: an establishment's 14 digits, SIREN (the company, 9 digits)
//! then NIC (the establishment, 5 digits).
//!
//! Both the SIREN and the whole SIRET end with a Luhn check digit, except at La
//! Poste (SIREN 356000000), whose establishments have a SIRET whose digits add
//! up to a multiple of 5 instead. La Poste's head office, 356 000 000 00048,
//! keeps the Luhn rule (its digits add up to 26); INSEE's registry and the
//! common validators (python-stdnum among them) treat it so.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// La Poste's SIREN, whose establishments do not follow the Luhn rule.
pub const LA_POSTE_SIREN: &str = "356000000";

/// La Poste's head office: Luhn-valid, unlike its other establishments.
const LA_POSTE_HEAD_OFFICE: &str = "35600000000048";

/// A SIRET with valid check digits: 14 ASCII digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Siret(String);

impl Siret {
    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The company's SIREN, the first 9 digits.
    pub fn siren(&self) -> &str {
        &self.0[..9]
    }

    /// The establishment's NIC, the last 5 digits.
    pub fn nic(&self) -> &str {
        &self.0[9..]
    }
}

/// Why a string is not a SIRET. Checked in this order: characters, length,
/// SIREN check digit, SIRET check digit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiretError {
    #[error("a SIRET is made of digits only; character {position} is {found:?}")]
    NonDigit {
        /// 1-based, in characters.
        position: usize,
        found: char,
    },
    #[error("a SIRET has 14 digits, this one has {len}")]
    WrongLength { len: usize },
    #[error("the SIREN {siren} (the first 9 digits) has a wrong check digit")]
    SirenCheckDigit { siren: String },
    #[error("the SIRET has a wrong check digit")]
    SiretCheckDigit,
    #[error("the SIRET of a La Poste establishment must have digits adding up to a multiple of 5")]
    LaPosteSiretCheckDigit,
}

/// Checks a SIRET as written in a request: exactly 14 ASCII digits (no spaces),
/// a Luhn-valid SIREN and a Luhn-valid SIRET, or for La Poste (SIREN 356000000)
/// other than its head office, digits adding up to a multiple of 5.
pub fn validate_siret(input: &str) -> Result<Siret, SiretError> {
    if let Some((i, found)) = input.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(SiretError::NonDigit {
            position: i + 1,
            found,
        });
    }
    // Only ASCII digits from here: bytes are characters.
    let digits = input.as_bytes();
    if digits.len() != 14 {
        return Err(SiretError::WrongLength { len: digits.len() });
    }
    let siren = &input[..9];
    if !is_luhn_valid(&digits[..9]) {
        return Err(SiretError::SirenCheckDigit {
            siren: siren.to_owned(),
        });
    }
    if siren == LA_POSTE_SIREN && input != LA_POSTE_HEAD_OFFICE {
        let sum: u32 = digits.iter().map(|d| u32::from(d - b'0')).sum();
        if !sum.is_multiple_of(5) {
            return Err(SiretError::LaPosteSiretCheckDigit);
        }
    } else if !is_luhn_valid(digits) {
        return Err(SiretError::SiretCheckDigit);
    }
    Ok(Siret(input.to_owned()))
}

/// The Luhn check over ASCII digits: from the right, every second digit is
/// doubled (less 9 when over 9), and the total is a multiple of 10.
fn is_luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, twice) if twice > 9 => twice - 9,
                (true, twice) => twice,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl FromStr for Siret {
    type Err = SiretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate_siret(s)
    }
}

impl TryFrom<String> for Siret {
    type Error = SiretError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate_siret(&s)
    }
}

impl From<Siret> for String {
    fn from(siret: Siret) -> String {
        siret.0
    }
}

impl AsRef<str> for Siret {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Siret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Siret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Siret({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Luhn check digit to append to `digits`.
    fn luhn_digit(digits: &str) -> char {
        (b'0'..=b'9')
            .map(char::from)
            .find(|d| is_luhn_valid(format!("{digits}{d}").as_bytes()))
            .expect("one of ten digits completes any number")
    }

    #[test]
    fn real_sirets_are_valid() {
        // Google France (python-stdnum's example) and La Poste's head office.
        for s in ["73282932000074", "35600000000048"] {
            let siret = validate_siret(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(siret.as_str(), s);
        }
        let google = validate_siret("73282932000074").expect("valid");
        assert_eq!((google.siren(), google.nic()), ("732829320", "00074"));
    }

    #[test]
    fn la_poste_establishments_add_up_to_a_multiple_of_5() {
        // Digit sums 15 and 15, and neither is Luhn-valid.
        for s in ["35600000000001", "35600000000010"] {
            assert!(!is_luhn_valid(s.as_bytes()), "{s}");
            assert!(validate_siret(s).is_ok(), "{s}");
        }
        // Luhn-valid, but digit sums 19 and 18.
        for s in ["35600000000014", "35600000000022"] {
            assert!(is_luhn_valid(s.as_bytes()), "{s}");
            assert_eq!(
                validate_siret(s),
                Err(SiretError::LaPosteSiretCheckDigit),
                "{s}"
            );
        }
        assert_eq!(
            validate_siret("35600000000002"),
            Err(SiretError::LaPosteSiretCheckDigit)
        );
        // The head office keeps the Luhn rule: its digits add up to 26.
        assert!(is_luhn_valid(LA_POSTE_HEAD_OFFICE.as_bytes()));
        assert_eq!(
            validate_siret("35600000000049"),
            Err(SiretError::LaPosteSiretCheckDigit)
        );
    }

    #[test]
    fn wrong_check_digits() {
        assert_eq!(
            validate_siret("73282932000075"),
            Err(SiretError::SiretCheckDigit)
        );
        assert_eq!(
            validate_siret("73282932000079"),
            Err(SiretError::SiretCheckDigit)
        );
        assert_eq!(
            validate_siret("73282932100074"),
            Err(SiretError::SirenCheckDigit {
                siren: "732829321".into()
            })
        );
        // Luhn-valid as 14 digits, but not its SIREN.
        let siret = format!("732829321{}", "0007");
        let siret = format!("{siret}{}", luhn_digit(&siret));
        assert!(is_luhn_valid(siret.as_bytes()));
        assert!(matches!(
            validate_siret(&siret),
            Err(SiretError::SirenCheckDigit { .. })
        ));
    }

    #[test]
    fn wrong_shapes() {
        assert_eq!(
            validate_siret("7328293200007"),
            Err(SiretError::WrongLength { len: 13 })
        );
        assert_eq!(
            validate_siret("732829320000740"),
            Err(SiretError::WrongLength { len: 15 })
        );
        assert_eq!(validate_siret(""), Err(SiretError::WrongLength { len: 0 }));
        assert_eq!(
            validate_siret("7328293200007A"),
            Err(SiretError::NonDigit {
                position: 14,
                found: 'A'
            })
        );
        assert_eq!(
            validate_siret("732 829 320 00074"),
            Err(SiretError::NonDigit {
                position: 4,
                found: ' '
            })
        );
        assert_eq!(
            validate_siret("é7328293200007"),
            Err(SiretError::NonDigit {
                position: 1,
                found: 'é'
            })
        );
        assert_eq!(
            validate_siret("7328293200007٤"),
            Err(SiretError::NonDigit {
                position: 14,
                found: '٤'
            })
        );
        assert_eq!(
            SiretError::WrongLength { len: 13 }.to_string(),
            "a SIRET has 14 digits, this one has 13"
        );
    }

    #[test]
    fn serde_validates() {
        let siret: Siret = serde_json::from_str(r#""73282932000074""#).expect("valid");
        assert_eq!(
            serde_json::to_string(&siret).expect("serializes"),
            r#""73282932000074""#
        );
        let err = serde_json::from_str::<Siret>(r#""73282932000075""#).expect_err("invalid");
        assert!(err.to_string().contains("wrong check digit"), "{err}");
        assert!(serde_json::from_str::<Siret>("73282932000074").is_err());
        assert_eq!("73282932000074".parse::<Siret>(), Ok(siret));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = validate_siret(&s);
        }

        #[test]
        fn never_panics_on_digits(s in "[0-9]{0,16}") {
            let _ = validate_siret(&s);
        }

        #[test]
        fn built_sirets_are_valid_and_any_one_digit_changed_is_not(
            siren8 in "[0-9]{8}",
            nic4 in "[0-9]{4}",
            at in 0usize..14,
            plus in 1u8..10,
        ) {
            let siren = format!("{siren8}{}", luhn_digit(&siren8));
            prop_assume!(siren != LA_POSTE_SIREN);
            let body = format!("{siren}{nic4}");
            let siret = format!("{body}{}", luhn_digit(&body));
            prop_assert!(validate_siret(&siret).is_ok(), "{}", siret);
            let mut bytes = siret.into_bytes();
            bytes[at] = b'0' + (bytes[at] - b'0' + plus) % 10;
            let changed = String::from_utf8(bytes).expect("digits");
            if changed[..9] == *LA_POSTE_SIREN {
                return Ok(());
            }
            prop_assert!(validate_siret(&changed).is_err(), "{}", changed);
        }
    }
}
