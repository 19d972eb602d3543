//! Département codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::communes::{shown, Communes, GeoError};

/// A département code: two characters for metropolitan France ("01", "2A",
/// "2B", "95"), three for the overseas départements ("971".."976").
///
/// A value of this type is always the département of some commune of the data
/// it came from: it is obtained from a [`Commune`](super::Commune), from
/// [`Communes::departement`], or by parsing (`"2A".parse()`, or deserializing a
/// JSON string), which checks the code against [`Communes::shared`].
///
/// It is `Copy` and orders as its code does ("01" < "2A" < "2B" < "30" < "971").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Departement {
    // ASCII bytes of the code, zero-padded: zero sorts before any character, so
    // the derived order is the order of the codes as strings.
    bytes: [u8; 3],
    len: u8,
}

impl Departement {
    /// A département code of the right shape: two digits, "2A", "2B", or three
    /// digits starting with 97 or 98. Whether a département has that code is
    /// for the data to say, not this function.
    pub(super) fn from_code(code: &str) -> Option<Departement> {
        let b = code.as_bytes();
        let well_formed = match b {
            [x, y] => {
                x.is_ascii_digit()
                    && (y.is_ascii_digit() || (*x == b'2' && matches!(y, b'A' | b'B')))
            }
            [b'9', x, y] => matches!(x, b'7' | b'8') && y.is_ascii_digit(),
            _ => false,
        };
        if !well_formed {
            return None;
        }
        let mut bytes = [0; 3];
        bytes[..b.len()].copy_from_slice(b);
        Some(Departement {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The code, e.g. "67", "2A" or "974".
    pub fn as_str(&self) -> &str {
        // Only the ASCII checked by `from_code` is ever stored: this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Whether this is an overseas département (971..976).
    pub fn is_overseas(&self) -> bool {
        self.len == 3
    }
}

/// Whether `code` is the code of a département of the shipped data: "01".."95"
/// (no "20": Corsica is "2A" and "2B") and "971".."976". The set is the one
/// found in `data/communes.tsv`, not a list written in the code.
pub fn is_departement_code(code: &str) -> bool {
    Communes::shared().is_departement_code(code)
}

impl fmt::Display for Departement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Departement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Departement({:?})", self.as_str())
    }
}

impl AsRef<str> for Departement {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Departement {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Departement {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Parses a code known to [`Communes::shared`]; anything else is
/// [`GeoError::UnknownDepartement`].
impl FromStr for Departement {
    type Err = GeoError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Communes::shared()
            .departement(code)
            .ok_or_else(|| GeoError::UnknownDepartement { code: shown(code) })
    }
}

impl Serialize for Departement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A JSON string holding a code known to [`Communes::shared`].
impl<'de> Deserialize<'de> for Departement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        for ok in ["01", "20", "2A", "2B", "95", "971", "976", "988"] {
            assert_eq!(
                Departement::from_code(ok).map(|d| d.to_string()),
                Some(ok.to_string())
            );
        }
        for bad in [
            "", "1", "2C", "2a", "A2", "100", "960", "9711", "６７", "7é",
        ] {
            assert_eq!(Departement::from_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orders_as_its_code() {
        let mut codes = ["971", "30", "2B", "01", "2A", "29", "976", "95"];
        let mut deps: Vec<Departement> = codes
            .iter()
            .filter_map(|c| Departement::from_code(c))
            .collect();
        codes.sort_unstable();
        deps.sort_unstable();
        assert_eq!(
            deps.iter().map(Departement::as_str).collect::<Vec<_>>(),
            codes
        );
    }

    #[test]
    fn the_set_comes_from_the_data() {
        let mut expected: Vec<String> = (1..=95)
            .filter(|n| *n != 20)
            .map(|n| format!("{n:02}"))
            .collect();
        expected.extend(["2A", "2B"].map(String::from));
        expected.extend((971..=976).map(|n| n.to_string()));
        expected.sort();
        let found: Vec<String> = Communes::shared()
            .departements()
            .iter()
            .map(Departement::to_string)
            .collect();
        assert_eq!(found, expected);
        for code in &expected {
            assert!(is_departement_code(code), "{code}");
        }
        for bad in [
            "00", "20", "96", "97", "977", "978", "984", "988", "2a", "2C", "", "067", "67 ",
        ] {
            assert!(!is_departement_code(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_and_serializes_as_a_string() {
        let d: Departement = "2A".parse().expect("2A is a département");
        assert_eq!(d, "2A");
        assert!(!d.is_overseas());
        assert!("974"
            .parse::<Departement>()
            .expect("La Réunion")
            .is_overseas());
        assert_eq!(
            "20".parse::<Departement>(),
            Err(GeoError::UnknownDepartement { code: "20".into() })
        );
        assert_eq!(serde_json::to_string(&d).expect("serializes"), r#""2A""#);
        let list: Vec<Departement> =
            serde_json::from_str(r#"["67","68","2A"]"#).expect("known codes");
        assert_eq!(
            list.iter().map(Departement::as_str).collect::<Vec<_>>(),
            ["67", "68", "2A"]
        );
        let err = serde_json::from_str::<Vec<Departement>>(r#"["67","20"]"#)
            .expect_err("20 is not a département");
        assert!(
            err.to_string().contains("unknown département code \"20\""),
            "{err}"
        );
    }
}
