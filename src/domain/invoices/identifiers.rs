//! The identifiers a venue gives for its invoices, checked before they are
//! stored: the IBAN (ISO 13616, mod-97), the BIC (ISO 9362) and the French
//! intra-community VAT number (its key is computed from the SIREN).
//! Each refusal says what is wrong in French, for the venue's page, and the
//! API carries the same words.

use std::fmt;

/// A checked IBAN, in its electronic form (no spaces, upper case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iban(String);

impl Iban {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The paper form: groups of four characters.
    pub fn grouped(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IbanError {
    #[error("un IBAN ne contient que des lettres et des chiffres (les espaces sont permis)")]
    Characters,
    #[error(
        "un IBAN commence par le code du pays (FR pour la France) et deux chiffres de contrôle"
    )]
    Start,
    #[error("un IBAN {country} compte {expected} caractères, celui-ci en a {found}")]
    Length {
        country: String,
        expected: usize,
        found: usize,
    },
    #[error("cet IBAN n'est pas valide (clé de contrôle fausse) : vérifiez-le sur votre RIB")]
    Checksum,
}

/// The length of IBANs of the SEPA countries (ISO 13616 registry); other
/// countries are checked on the general rules only.
const SEPA_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GI", 23),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("VA", 22),
];

/// Checks an IBAN as typed (spaces allowed, any case).
pub fn iban(input: &str) -> Result<Iban, IbanError> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(IbanError::Characters);
    }
    let bytes = compact.as_bytes();
    if bytes.len() < 5
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
    {
        return Err(IbanError::Start);
    }
    let country = &compact[..2];
    let expected = SEPA_LENGTHS
        .iter()
        .find(|(code, _)| *code == country)
        .map(|(_, length)| *length);
    match expected {
        Some(expected) if expected != bytes.len() => {
            return Err(IbanError::Length {
                country: country.to_owned(),
                expected,
                found: bytes.len(),
            })
        }
        None if bytes.len() > 34 => return Err(IbanError::Start),
        _ => {}
    }
    // ISO 7064 mod 97-10: the first four characters moved to the end,
    // letters as numbers (A = 10 … Z = 35), the whole number mod 97 is 1.
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let remainder = rearranged.fold(0u32, |acc, c| {
        let value = c.to_digit(36).unwrap_or(0);
        if value >= 10 {
            (acc * 100 + value) % 97
        } else {
            (acc * 10 + value) % 97
        }
    });
    if remainder != 1 {
        return Err(IbanError::Checksum);
    }
    Ok(Iban(compact))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BicError {
    #[error("un BIC compte 8 ou 11 caractères : 4 lettres pour la banque, 2 pour le pays, puis 2 (et parfois 3) lettres ou chiffres")]
    Shape,
}

/// Checks a BIC (ISO 9362): 4 letters (bank), 2 (country), 2 letters or
/// digits (place), optionally 3 more (branch).
pub fn bic(input: &str) -> Result<String, BicError> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = compact.as_bytes();
    let shape = matches!(bytes.len(), 8 | 11)
        && bytes[..6].iter().all(u8::is_ascii_uppercase)
        && bytes[6..].iter().all(u8::is_ascii_alphanumeric);
    if shape {
        Ok(compact)
    } else {
        Err(BicError::Shape)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VatNumberError {
    #[error("un numéro de TVA intracommunautaire français s'écrit FR, deux caractères de clé et les 9 chiffres du SIREN (FR 12 345678901)")]
    Shape,
    #[error("ce numéro de TVA ne correspond pas au SIREN {siren} de votre SIRET")]
    OtherSiren { siren: String },
    #[error(
        "la clé de ce numéro de TVA est fausse : pour le SIREN {siren}, le numéro est {expected}"
    )]
    Key { siren: String, expected: String },
}

/// The French VAT number of a SIREN with the numeric key: the key is
/// (12 + 3 × (SIREN mod 97)) mod 97, on two digits.
pub fn french_vat_number(siren: &str) -> Option<String> {
    if siren.len() != 9 || !siren.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u64 = siren.parse().ok()?;
    let key = (12 + 3 * (number % 97)) % 97;
    Some(format!("FR{key:02}{siren}"))
}

/// Checks a French intra-community VAT number against the venue's SIREN.
/// Numbers with a key of letters (given to some new businesses) are taken
/// on their shape; the numeric key is checked.
pub fn vat_number(input: &str, siren: &str) -> Result<String, VatNumberError> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = compact.as_bytes();
    if bytes.len() != 13
        || &compact[..2] != "FR"
        || !bytes[2..4].iter().all(u8::is_ascii_alphanumeric)
        || !bytes[4..].iter().all(u8::is_ascii_digit)
    {
        return Err(VatNumberError::Shape);
    }
    if &compact[4..] != siren {
        return Err(VatNumberError::OtherSiren {
            siren: siren.to_owned(),
        });
    }
    if bytes[2..4].iter().all(u8::is_ascii_digit) {
        let expected = french_vat_number(siren).ok_or(VatNumberError::Shape)?;
        if expected != compact {
            return Err(VatNumberError::Key {
                siren: siren.to_owned(),
                expected,
            });
        }
    }
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_iban_passes_with_spaces_and_small_letters() {
        // The example IBAN of the French banks' own documentation.
        let iban = iban("fr76 3000 6000 0112 3456 7890 189").unwrap();
        assert_eq!(iban.as_str(), "FR7630006000011234567890189");
        assert_eq!(iban.grouped(), "FR76 3000 6000 0112 3456 7890 189");
        assert!(super::iban("DE89 3704 0044 0532 0130 00").is_ok());
        assert!(super::iban("GB82 WEST 1234 5698 7654 32").is_ok());
    }

    #[test]
    fn every_single_typo_in_an_iban_is_caught() {
        let good = "FR7630006000011234567890189";
        for i in 4..good.len() {
            let mut typo = good.as_bytes().to_vec();
            typo[i] = if typo[i] == b'9' { b'0' } else { typo[i] + 1 };
            let typo = String::from_utf8(typo).unwrap();
            assert_eq!(iban(&typo), Err(IbanError::Checksum), "{typo}");
        }
        // Two neighbours swapped are caught too.
        assert_eq!(
            iban("FR7630006000011234567809189"),
            Err(IbanError::Checksum)
        );
    }

    #[test]
    fn a_wrong_iban_says_why() {
        assert_eq!(
            iban("FR76 3000 6000 0112 3456 7890 18"),
            Err(IbanError::Length {
                country: "FR".into(),
                expected: 27,
                found: 26
            })
        );
        assert_eq!(iban("FR76-3000"), Err(IbanError::Characters));
        assert_eq!(iban("7630006000011234567890189"), Err(IbanError::Start));
        assert_eq!(iban(""), Err(IbanError::Start));
        let message = iban("FR7630006000011234567890188").unwrap_err().to_string();
        assert!(message.contains("clé de contrôle"), "{message}");
    }

    #[test]
    fn bics_have_eight_or_eleven_characters() {
        assert_eq!(bic("bnpafrpp").unwrap(), "BNPAFRPP");
        assert_eq!(bic("AGRI FRPP 881").unwrap(), "AGRIFRPP881");
        assert!(bic("BNPAFRP").is_err());
        assert!(bic("BNP1FRPP").is_err());
        assert!(bic("BNPAFRPP88").is_err());
    }

    #[test]
    fn a_french_vat_number_is_computed_and_checked_from_the_siren() {
        // La Poste's SIREN 356000000 has the key 39.
        assert_eq!(french_vat_number("356000000").unwrap(), "FR39356000000");
        assert_eq!(
            vat_number("fr 39 356 000 000", "356000000").unwrap(),
            "FR39356000000"
        );
        assert_eq!(
            vat_number("FR40356000000", "356000000"),
            Err(VatNumberError::Key {
                siren: "356000000".into(),
                expected: "FR39356000000".into()
            })
        );
        assert_eq!(
            vat_number("FR39356000001", "356000000"),
            Err(VatNumberError::OtherSiren {
                siren: "356000000".into()
            })
        );
        assert_eq!(
            vat_number("DE123456789", "356000000"),
            Err(VatNumberError::Shape)
        );
        // A key of letters is taken on its shape.
        assert_eq!(
            vat_number("FRA1356000000", "356000000").unwrap(),
            "FRA1356000000"
        );
    }
}
