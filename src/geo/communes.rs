//! The communes index: INSEE codes, names, départements and postcodes.

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::departement::Departement;

/// `data/communes.tsv`, built by `scripts/build-communes`; the test
/// `embedded_data_loads` checks that it parses.
const EMBEDDED: &str = include_str!("../../data/communes.tsv");

/// A current commune or a municipal arrondissement (Paris, Lyon, Marseille).
#[derive(Clone, PartialEq, Eq)]
pub struct Commune {
    // Its line of the file, `code \t departement \t postcodes \t name`: one
    // allocation per commune, and the fields are slices of it.
    line: Box<str>,
    departement: Departement,
    // `line[postcodes_start..name_start - 1]`: sorted, comma-separated, never
    // empty. `line[name_start..]`: the name. The code is `line[..5]`.
    postcodes_start: u16,
    name_start: u16,
}

impl Commune {
    /// The INSEE code, e.g. "67482", "2A004", "75101".
    pub fn code(&self) -> &str {
        &self.line[..5]
    }

    /// The official name, e.g. "Strasbourg", "Paris 1er Arrondissement".
    pub fn name(&self) -> &str {
        &self.line[usize::from(self.name_start)..]
    }

    pub fn departement(&self) -> Departement {
        self.departement
    }

    /// Its postcodes, sorted; there is at least one.
    pub fn postcodes(&self) -> impl Iterator<Item = &str> + '_ {
        self.postcode_list().split(',')
    }

    pub fn has_postcode(&self, postcode: &str) -> bool {
        self.postcodes().any(|p| p == postcode)
    }

    /// The postcodes as in the file: "67000,67100,67200".
    fn postcode_list(&self) -> &str {
        &self.line[usize::from(self.postcodes_start)..usize::from(self.name_start) - 1]
    }
}

impl fmt::Debug for Commune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Commune({} {:?}, dep {}, postcodes {})",
            self.code(),
            self.name(),
            self.departement,
            self.postcode_list()
        )
    }
}

/// `{"code", "name", "departement", "postcodes": [...]}`.
impl Serialize for Commune {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Commune", 4)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("departement", &self.departement)?;
        s.serialize_field("postcodes", &self.postcodes().collect::<Vec<_>>())?;
        s.end()
    }
}

/// Which request field a [`GeoError`] is about, for a validation problem's
/// `errors[].field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoField {
    Postcode,
    CommuneCode,
    Departement,
}

/// Why a postcode, commune code or département code was refused.
///
/// Values from the request are quoted as given, cut to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    #[error("postcode {postcode:?} is not five digits")]
    MalformedPostcode { postcode: String },
    #[error("unknown postcode {postcode}: no current commune has it")]
    UnknownPostcode { postcode: String },
    #[error("unknown commune code {code:?}: not the INSEE code of a current commune or municipal arrondissement")]
    UnknownCommune { code: String },
    #[error("postcode {postcode} is not one of {name} ({code})'s postcodes: {postcodes}")]
    PostcodeNotOfCommune {
        postcode: String,
        code: String,
        name: String,
        /// The commune's postcodes, comma-separated.
        postcodes: String,
    },
    #[error("postcode {postcode} is shared by communes of départements {}: a commune_code is needed", join(.departements))]
    AmbiguousPostcode {
        postcode: String,
        /// Sorted, at least two.
        departements: Vec<Departement>,
    },
    #[error("unknown département code {code:?}")]
    UnknownDepartement { code: String },
}

impl GeoError {
    /// The field to point at: for an ambiguous postcode, the missing
    /// `commune_code`; for a postcode that is not the commune's, the postcode.
    pub fn field(&self) -> GeoField {
        match self {
            GeoError::MalformedPostcode { .. }
            | GeoError::UnknownPostcode { .. }
            | GeoError::PostcodeNotOfCommune { .. } => GeoField::Postcode,
            GeoError::UnknownCommune { .. } | GeoError::AmbiguousPostcode { .. } => {
                GeoField::CommuneCode
            }
            GeoError::UnknownDepartement { .. } => GeoField::Departement,
        }
    }
}

fn join(departements: &[Departement]) -> String {
    let codes: Vec<&str> = departements.iter().map(Departement::as_str).collect();
    codes.join(", ")
}

/// A request value to quote in an error: at most 32 characters.
pub(super) fn shown(value: &str) -> String {
    const MAX: usize = 32;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A line of the communes file that does not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("communes data, line {line}: {problem}")]
pub struct DataError {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

/// An immutable index of the communes, by INSEE code and by postcode.
pub struct Communes {
    /// Sorted by code, codes unique.
    communes: Vec<Commune>,
    /// (postcode as a number, index in `communes`), sorted.
    by_postcode: Vec<(u32, u32)>,
    /// Sorted, unique.
    departements: Vec<Departement>,
    /// The file's first comment line, without the `#`.
    source: Box<str>,
}

impl Communes {
    /// The communes shipped with this build (`data/communes.tsv`), parsed on
    /// first use and kept for the life of the process.
    pub fn shared() -> &'static Communes {
        static SHARED: OnceLock<Communes> = OnceLock::new();
        SHARED.get_or_init(|| {
            Communes::parse(EMBEDDED)
                .expect("data/communes.tsv is checked by the test embedded_data_loads")
        })
    }

    /// Parses the communes file (layout in `docs/communes.md`): lines starting
    /// with `#` are comments; every other line is
    /// `code \t departement \t postcode[,postcode…] \t name`, sorted by code.
    pub fn parse(text: &str) -> Result<Communes, DataError> {
        let mut communes: Vec<Commune> = Vec::with_capacity(text.len() / 28);
        let mut by_postcode = Vec::with_capacity(communes.capacity() * 9 / 8);
        let mut source = None;
        for (i, line) in text.lines().enumerate() {
            let fail = |problem: String| DataError {
                line: i + 1,
                problem,
            };
            if let Some(comment) = line.strip_prefix('#') {
                source.get_or_insert_with(|| comment.trim());
                continue;
            }
            let commune = parse_line(line).map_err(fail)?;
            if let Some(previous) = communes.last() {
                if previous.code() >= commune.code() {
                    return Err(fail(format!(
                        "code {} after {}: codes must be unique and sorted",
                        commune.code(),
                        previous.code()
                    )));
                }
            }
            let index =
                u32::try_from(communes.len()).map_err(|_| fail("too many communes".into()))?;
            for postcode in commune.postcodes() {
                // `parse_line` checked every postcode.
                if let Some(key) = postcode_key(postcode) {
                    by_postcode.push((key, index));
                }
            }
            communes.push(commune);
        }
        if communes.is_empty() {
            return Err(DataError {
                line: text.lines().count(),
                problem: "no commune".into(),
            });
        }
        by_postcode.sort_unstable();
        by_postcode.dedup();
        let mut departements: Vec<Departement> =
            communes.iter().map(Commune::departement).collect();
        departements.sort_unstable();
        departements.dedup();
        Ok(Communes {
            communes,
            by_postcode,
            departements,
            source: source.unwrap_or_default().into(),
        })
    }

    /// The data's provenance, from its header line (package, version, command).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many communes and municipal arrondissements.
    pub fn len(&self) -> usize {
        self.communes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.communes.is_empty()
    }

    /// All of them, sorted by code.
    pub fn iter(&self) -> std::slice::Iter<'_, Commune> {
        self.communes.iter()
    }

    /// The commune or municipal arrondissement with this INSEE code.
    pub fn commune(&self, code: &str) -> Option<&Commune> {
        self.communes
            .binary_search_by(|c| c.code().cmp(code))
            .ok()
            .map(|i| &self.communes[i])
    }

    /// The communes having this postcode, sorted by code; none for an unknown
    /// or malformed postcode. A city divided into municipal arrondissements
    /// comes with the arrondissement(s): "75001" gives 75056 Paris and 75101
    /// Paris 1er Arrondissement.
    pub fn communes_for_postcode(
        &self,
        postcode: &str,
    ) -> impl ExactSizeIterator<Item = &Commune> + DoubleEndedIterator + Clone + '_ {
        let range = postcode_key(postcode).map_or(0..0, |key| self.postcode_range(key));
        self.by_postcode[range]
            .iter()
            .map(|&(_, index)| &self.communes[index as usize])
    }

    /// Whether some commune has this postcode.
    pub fn is_known_postcode(&self, postcode: &str) -> bool {
        self.communes_for_postcode(postcode).len() > 0
    }

    /// Whether `postcode` is one of the postcodes of the commune `commune_code`.
    pub fn is_postcode_of(&self, commune_code: &str, postcode: &str) -> bool {
        self.commune(commune_code)
            .is_some_and(|c| c.has_postcode(postcode))
    }

    /// The commune `commune_code`, provided `postcode` is one of its postcodes
    /// (an organisation's address).
    pub fn commune_with_postcode(
        &self,
        commune_code: &str,
        postcode: &str,
    ) -> Result<&Commune, GeoError> {
        self.known_postcode(postcode)?;
        let commune = self
            .commune(commune_code)
            .ok_or_else(|| GeoError::UnknownCommune {
                code: shown(commune_code),
            })?;
        if commune.has_postcode(postcode) {
            Ok(commune)
        } else {
            Err(GeoError::PostcodeNotOfCommune {
                postcode: postcode.to_owned(),
                code: commune.code().to_owned(),
                name: commune.name().to_owned(),
                postcodes: commune.postcode_list().to_owned(),
            })
        }
    }

    /// The département of a beneficiary living at `postcode`.
    ///
    /// `commune_code` is needed only when the postcode is shared by communes of
    /// different départements ([`GeoError::AmbiguousPostcode`] without it);
    /// when given, it must be a commune having that postcode, and its
    /// département is the answer.
    pub fn departement_for(
        &self,
        postcode: &str,
        commune_code: Option<&str>,
    ) -> Result<Departement, GeoError> {
        let range = self.known_postcode(postcode)?;
        if let Some(code) = commune_code {
            return self
                .commune_with_postcode(code, postcode)
                .map(Commune::departement);
        }
        let mut departements: Vec<Departement> = self.by_postcode[range]
            .iter()
            .map(|&(_, index)| self.communes[index as usize].departement)
            .collect();
        departements.sort_unstable();
        departements.dedup();
        match departements.as_slice() {
            [only] => Ok(*only),
            _ => Err(GeoError::AmbiguousPostcode {
                postcode: postcode.to_owned(),
                departements,
            }),
        }
    }

    /// The départements of the data, sorted.
    pub fn departements(&self) -> &[Departement] {
        &self.departements
    }

    /// The département with this code, if the data has it.
    pub fn departement(&self, code: &str) -> Option<Departement> {
        let wanted = Departement::from_code(code)?;
        self.departements
            .binary_search(&wanted)
            .ok()
            .map(|_| wanted)
    }

    /// Whether the data has a département with this code.
    pub fn is_departement_code(&self, code: &str) -> bool {
        self.departement(code).is_some()
    }

    /// The `by_postcode` range of a well-formed postcode, or an error saying
    /// why there is none.
    fn known_postcode(&self, postcode: &str) -> Result<Range<usize>, GeoError> {
        let key = postcode_key(postcode).ok_or_else(|| GeoError::MalformedPostcode {
            postcode: shown(postcode),
        })?;
        let range = self.postcode_range(key);
        if range.is_empty() {
            return Err(GeoError::UnknownPostcode {
                postcode: postcode.to_owned(),
            });
        }
        Ok(range)
    }

    fn postcode_range(&self, key: u32) -> Range<usize> {
        let start = self.by_postcode.partition_point(|&(p, _)| p < key);
        let end = start + self.by_postcode[start..].partition_point(|&(p, _)| p == key);
        start..end
    }
}

impl fmt::Debug for Communes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Communes")
            .field("source", &self.source)
            .field("communes", &self.communes.len())
            .field("postcodes", &self.by_postcode.len())
            .field("departements", &self.departements.len())
            .finish()
    }
}

/// A postcode's five digits as a number, or `None` if it is not five ASCII digits.
fn postcode_key(postcode: &str) -> Option<u32> {
    let bytes = postcode.as_bytes();
    if bytes.len() != 5 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Whether `code` has the shape of an INSEE commune code: five characters,
/// digits except for Corsica's "2A"/"2B" prefix.
fn is_commune_code(code: &str) -> bool {
    match code.as_bytes() {
        [a, b, rest @ ..] if rest.len() == 3 => {
            a.is_ascii_digit()
                && (b.is_ascii_digit() || (*a == b'2' && matches!(b, b'A' | b'B')))
                && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

fn parse_line(line: &str) -> Result<Commune, String> {
    let mut fields = line.split('\t');
    let (Some(code), Some(departement), Some(postcodes), Some(name), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(format!(
            "expected 4 tab-separated fields (code, departement, postcodes, name), found {}",
            line.split('\t').count()
        ));
    };
    if !is_commune_code(code) {
        return Err(format!("{:?} is not an INSEE commune code", shown(code)));
    }
    let departement = Departement::from_code(departement)
        .ok_or_else(|| format!("{:?} is not a département code", shown(departement)))?;
    if !code.starts_with(departement.as_str()) {
        return Err(format!(
            "commune {code} is not in département {departement}"
        ));
    }
    if let Some(bad) = postcodes.split(',').find(|p| postcode_key(p).is_none()) {
        return Err(format!(
            "postcode {:?} of commune {code} is not five digits",
            shown(bad)
        ));
    }
    if name.trim().is_empty() {
        return Err(format!("commune {code} has no name"));
    }
    // code, departement and postcodes are ASCII (checked above), so these are
    // character boundaries; a line that long is no commune.
    let postcodes_start = code.len() + 1 + departement.as_str().len() + 1;
    let name_start = u16::try_from(postcodes_start + postcodes.len() + 1)
        .map_err(|_| format!("commune {code} has too many postcodes"))?;
    Ok(Commune {
        line: line.into(),
        departement,
        // Smaller than `name_start`.
        postcodes_start: postcodes_start as u16,
        name_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn communes() -> &'static Communes {
        Communes::shared()
    }

    fn codes<'a>(it: impl Iterator<Item = &'a Commune>) -> Vec<&'a str> {
        it.map(Commune::code).collect()
    }

    fn dep(code: &str) -> Departement {
        communes()
            .departement(code)
            .expect("a département of the data")
    }

    #[test]
    fn embedded_data_loads() {
        let c = Communes::parse(EMBEDDED).expect("data/communes.tsv parses");
        assert!(c.len() > 34_000, "{} communes", c.len());
        assert!(
            c.source().starts_with("@etalab/decoupage-administratif "),
            "{}",
            c.source()
        );
        // Every commune is found by its code and by each of its postcodes.
        for commune in c.iter() {
            assert_eq!(c.commune(commune.code()), Some(commune));
            for postcode in commune.postcodes() {
                assert!(c.communes_for_postcode(postcode).any(|x| x == commune));
                assert!(c.is_postcode_of(commune.code(), postcode));
            }
        }
        // No Corsica as "20", every overseas département.
        assert!(!c.iter().any(|x| x.code().starts_with("20")));
        for overseas in ["971", "972", "973", "974", "975", "976"] {
            assert!(c.iter().any(|x| x.departement() == overseas), "{overseas}");
        }
    }

    #[test]
    fn strasbourg() {
        let strasbourg = communes().commune("67482").expect("Strasbourg");
        assert_eq!(strasbourg.name(), "Strasbourg");
        assert_eq!(strasbourg.departement(), "67");
        assert_eq!(
            strasbourg.postcodes().collect::<Vec<_>>(),
            ["67000", "67100", "67200"]
        );
        for postcode in ["67000", "67100", "67200"] {
            assert!(communes().is_postcode_of("67482", postcode));
            assert_eq!(codes(communes().communes_for_postcode(postcode)), ["67482"]);
            assert_eq!(communes().departement_for(postcode, None), Ok(dep("67")));
            assert_eq!(
                communes().departement_for(postcode, Some("67482")),
                Ok(dep("67"))
            );
            assert_eq!(
                communes().commune_with_postcode("67482", postcode),
                Ok(strasbourg)
            );
        }
        assert!(!communes().is_postcode_of("67482", "67300"));
    }

    #[test]
    fn paris_and_its_arrondissements() {
        let c = communes();
        assert_eq!(c.commune("75056").map(Commune::name), Some("Paris"));
        assert_eq!(
            c.commune("75101").map(Commune::name),
            Some("Paris 1er Arrondissement")
        );
        assert_eq!(
            c.commune("75120").map(Commune::name),
            Some("Paris 20e Arrondissement")
        );
        assert_eq!(codes(c.communes_for_postcode("75001")), ["75056", "75101"]);
        // The 16th arrondissement has two postcodes.
        assert_eq!(codes(c.communes_for_postcode("75116")), ["75056", "75116"]);
        assert!(c.is_postcode_of("75116", "75016"));
        assert!(c.is_postcode_of("75056", "75015"));
        assert!(!c.is_postcode_of("75101", "75002"));
        assert_eq!(c.departement_for("75001", None), Ok(dep("75")));
        assert_eq!(c.departement_for("75001", Some("75101")), Ok(dep("75")));
        assert_eq!(c.departement_for("75001", Some("75056")), Ok(dep("75")));
        assert!(matches!(
            c.departement_for("75002", Some("75101")),
            Err(GeoError::PostcodeNotOfCommune { .. })
        ));
        // Lyon and Marseille too.
        assert_eq!(codes(c.communes_for_postcode("69001")), ["69123", "69381"]);
        assert_eq!(codes(c.communes_for_postcode("13001")), ["13055", "13201"]);
    }

    #[test]
    fn corsica_keeps_2a_and_2b() {
        let c = communes();
        let ajaccio = c.commune("2A004").expect("Ajaccio");
        assert_eq!(ajaccio.name(), "Ajaccio");
        assert_eq!(ajaccio.departement(), "2A");
        assert!(ajaccio.has_postcode("20000"));
        assert!(codes(c.communes_for_postcode("20000")).contains(&"2A004"));
        assert_eq!(c.departement_for("20000", None), Ok(dep("2A")));
        assert_eq!(c.departement_for("20000", Some("2A004")), Ok(dep("2A")));
        let bastia = c.commune("2B033").expect("Bastia");
        assert_eq!((bastia.name(), bastia.departement()), ("Bastia", dep("2B")));
        assert_eq!(c.departement_for("20200", Some("2B033")), Ok(dep("2B")));
        assert_eq!(c.commune("20004"), None);
    }

    #[test]
    fn overseas() {
        let c = communes();
        assert_eq!(
            c.commune("97411").map(|x| (x.name(), x.departement())),
            Some(("Saint-Denis", dep("974")))
        );
        assert_eq!(c.departement_for("97600", None), Ok(dep("976")));
        assert_eq!(c.departement_for("97500", None), Ok(dep("975")));
    }

    #[test]
    fn a_postcode_across_a_departement_border() {
        // 13780: Cuges-les-Pins (13) and Riboux (Var, 83).
        let c = communes();
        assert_eq!(codes(c.communes_for_postcode("13780")), ["13030", "83105"]);
        let err = c.departement_for("13780", None).expect_err("ambiguous");
        assert_eq!(
            err,
            GeoError::AmbiguousPostcode {
                postcode: "13780".into(),
                departements: vec![dep("13"), dep("83")],
            }
        );
        assert_eq!(err.field(), GeoField::CommuneCode);
        assert_eq!(
            err.to_string(),
            "postcode 13780 is shared by communes of départements 13, 83: a commune_code is needed"
        );
        assert_eq!(c.departement_for("13780", Some("13030")), Ok(dep("13")));
        assert_eq!(c.departement_for("13780", Some("83105")), Ok(dep("83")));
        // 01200 spans Ain and Haute-Savoie.
        assert_eq!(c.departement_for("01200", Some("74109")), Ok(dep("74")));
        assert_eq!(c.departement_for("01200", Some("01033")), Ok(dep("01")));
        assert!(matches!(
            c.departement_for("01200", None),
            Err(GeoError::AmbiguousPostcode { .. })
        ));
    }

    #[test]
    fn commune_code_optional_when_unambiguous_but_checked_when_given() {
        let c = communes();
        // 67000 is Strasbourg only; a commune code given must still be of it.
        assert_eq!(
            c.departement_for("67000", Some("2A004")),
            Err(GeoError::PostcodeNotOfCommune {
                postcode: "67000".into(),
                code: "2A004".into(),
                name: "Ajaccio".into(),
                postcodes: "20000,20090,20167".into(),
            })
        );
        assert_eq!(
            c.departement_for("67000", Some("99999")),
            Err(GeoError::UnknownCommune {
                code: "99999".into()
            })
        );
    }

    #[test]
    fn unknown_and_malformed() {
        let c = communes();
        assert_eq!(c.communes_for_postcode("00000").len(), 0);
        assert!(!c.is_known_postcode("99999"));
        assert!(c.is_known_postcode("67000"));
        let unknown = c.departement_for("99999", None).expect_err("unknown");
        assert_eq!(
            unknown,
            GeoError::UnknownPostcode {
                postcode: "99999".into()
            }
        );
        assert_eq!(
            unknown.to_string(),
            "unknown postcode 99999: no current commune has it"
        );
        assert_eq!(unknown.field(), GeoField::Postcode);
        for bad in ["", "6700", "670000", "67 00", "6700a", "６７０００"] {
            assert!(
                matches!(
                    c.departement_for(bad, None),
                    Err(GeoError::MalformedPostcode { .. })
                ),
                "{bad:?}"
            );
            assert_eq!(c.communes_for_postcode(bad).len(), 0);
        }
        assert_eq!(c.commune("75000"), None);
        assert_eq!(c.commune(""), None);
        let err = c
            .commune_with_postcode("67482", "75001")
            .expect_err("not Strasbourg's");
        assert_eq!(
            err.to_string(),
            "postcode 75001 is not one of Strasbourg (67482)'s postcodes: 67000,67100,67200"
        );
        let err = c
            .commune_with_postcode("6748", "67000")
            .expect_err("no such commune");
        assert_eq!(
            err.to_string(),
            "unknown commune code \"6748\": not the INSEE code of a current commune or municipal arrondissement"
        );
        // A huge input is not echoed whole.
        let long = "x".repeat(10_000);
        let err = c.departement_for(&long, None).expect_err("malformed");
        assert!(err.to_string().len() < 100, "{err}");
    }

    #[test]
    fn serializes_a_commune() {
        let json = serde_json::to_value(communes().commune("2B033")).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"code": "2B033", "name": "Bastia", "departement": "2B", "postcodes": ["20200", "20600"]})
        );
    }

    #[test]
    fn parse_small_file() {
        let text = "# test data\n01001\t01\t01400\tL'Abergement-Clémenciat\n2A004\t2A\t20000,20090\tAjaccio\r\n";
        let c = Communes::parse(text).expect("parses");
        assert_eq!(c.len(), 2);
        assert_eq!(c.source(), "test data");
        assert_eq!(c.commune("2A004").map(Commune::name), Some("Ajaccio"));
        assert_eq!(
            c.departements()
                .iter()
                .map(Departement::as_str)
                .collect::<Vec<_>>(),
            ["01", "2A"]
        );
        assert!(!c.is_departement_code("67"));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let cases = [
            ("", 0, "no commune"),
            ("# only a comment\n", 1, "no commune"),
            ("01001\t01\t01400\n", 1, "expected 4 tab-separated fields"),
            ("01001\t01\t01400\tA\textra\n", 1, "found 5"),
            ("# h\n1001\t01\t01400\tA\n", 2, "not an INSEE commune code"),
            ("01001\t1\t01400\tA\n", 1, "not a département code"),
            ("01001\t02\t01400\tA\n", 1, "not in département 02"),
            ("01001\t01\t01400,1400\tA\n", 1, "postcode \"1400\""),
            ("01001\t01\t\tA\n", 1, "postcode \"\""),
            ("01001\t01\t01400\t \n", 1, "has no name"),
            (
                "01002\t01\t01400\tA\n01001\t01\t01400\tB\n",
                2,
                "codes must be unique and sorted",
            ),
            (
                "01001\t01\t01400\tA\n01001\t01\t01400\tB\n",
                2,
                "codes must be unique and sorted",
            ),
        ];
        for (text, line, problem) in cases {
            let err = Communes::parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.problem.contains(problem), "{text:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn lookups_never_panic(postcode in "\\PC{0,8}", code in "\\PC{0,8}", digits in "[0-9]{5}") {
            let c = communes();
            let _ = c.departement_for(&postcode, None);
            let _ = c.departement_for(&postcode, Some(&code));
            let _ = c.departement_for(&digits, Some(&code));
            let _ = c.commune_with_postcode(&code, &digits);
            let _ = c.communes_for_postcode(&postcode).count();
            let _ = c.is_postcode_of(&code, &postcode);
            let _ = c.commune(&code);
            let _ = c.is_departement_code(&code);
            if let Ok(d) = c.departement_for(&digits, None) {
                prop_assert!(c.communes_for_postcode(&digits).all(|x| x.departement() == d));
            }
        }

        #[test]
        fn parse_never_panics(text in "(\\PC{0,12}[\t,\n]?){0,12}") {
            let _ = Communes::parse(&text);
        }
    }
}
