//! What invoices need beyond the statement: the venue's invoicing details
//! (the seller) and what the programme's public buyer requires (Chorus Pro).
//! Both are replaced whole; an invoice already issued keeps what it said.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::identifiers;
use crate::db::schema::{organisations, program_invoicing, venue_invoicing};
use crate::domain::organisations::validation;
use crate::domain::programs::ProgramRow;
use crate::geo::validate_siret;
use crate::http::problem::{ApiError, FieldError, ProblemType};

/// The VAT regime of a venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VatRegime {
    /// Not charging VAT, for the legal reason given (an association's
    /// exemption, the franchise, a public body's non-liability).
    Exempt,
    /// Charging VAT at the rate given.
    Vat,
}

impl VatRegime {
    fn as_str(self) -> &'static str {
        match self {
            VatRegime::Exempt => "exempt",
            VatRegime::Vat => "vat",
        }
    }
}

/// The VAT rates of France (CGI art. 278 to 281), in basis points.
pub const VAT_RATES: [i32; 4] = [2000, 1000, 550, 210];

/// What `PUT /api/v1/organisations/{id}/invoicing` takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueDetailsRequest {
    /// The seller's legal name, as registered (BT-27).
    #[schema(min_length = 1, max_length = 200)]
    pub legal_name: String,
    /// The street address of the seller's billing address.
    #[schema(min_length = 1, max_length = 300)]
    pub address: String,
    #[schema(pattern = r"^ *[0-9]{5} *$")]
    pub postcode: String,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    pub vat_regime: VatRegime,
    /// `exempt`: the legal mention printed on every invoice, e.g.
    /// "TVA non applicable, art. 293 B du CGI".
    #[schema(max_length = 200)]
    pub vat_exemption_reason: Option<String>,
    /// The intra-community VAT number: required with `vat`, optional when
    /// exempt. `FR`, a key of two digits or letters and the SIREN; spaces,
    /// dots and hyphens are left out.
    #[schema(pattern = r"^[ .-]*([Ff][ .-]*[Rr]([ .-]*[A-Za-z0-9]){2}([ .-]*[0-9]){9}[ .-]*)?$")]
    pub vat_number: Option<String>,
    /// `vat`: the rate in basis points (2000 for 20 %): 2000, 1000, 550 or 210.
    #[schema(schema_with = crate::http::openapi::vat_rates)]
    pub vat_rate_basis_points: Option<i32>,
    /// The account the venue is paid on (ISO 13616, checked); spaces are
    /// left out.
    #[schema(pattern = r"^ *[A-Za-z] *[A-Za-z] *[0-9] *[0-9]( *[A-Za-z0-9]){1,30} *$")]
    pub iban: String,
    /// ISO 9362: 8 or 11 letters and digits; spaces are left out.
    #[schema(pattern = r"^ *(([A-Za-z] *){6}([A-Za-z0-9] *){2}(([A-Za-z0-9] *){3})?)?$")]
    pub bic: Option<String>,
}

/// A venue's invoicing details as stored.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = venue_invoicing)]
pub struct VenueDetails {
    #[diesel(column_name = organisation_id)]
    pub venue_organisation_id: i64,
    pub legal_name: String,
    pub address: String,
    pub postcode: String,
    pub city: String,
    #[diesel(deserialize_as = String)]
    #[schema(value_type = VatRegime)]
    pub vat_regime: RegimeText,
    pub vat_exemption_reason: Option<String>,
    pub vat_number: Option<String>,
    pub vat_rate_basis_points: Option<i32>,
    pub iban: String,
    pub bic: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The regime column, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegimeText(pub VatRegime);

impl TryFrom<String> for RegimeText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "exempt" => Ok(RegimeText(VatRegime::Exempt)),
            "vat" => Ok(RegimeText(VatRegime::Vat)),
            other => Err(format!("unknown VAT regime {other:?}")),
        }
    }
}

/// Every field of the details, as the API names them.
pub const FIELDS: [&str; 6] = [
    "legal_name",
    "address",
    "postcode",
    "city",
    "vat_regime",
    "iban",
];

/// The fields an invoice needs that the venue has not given, by their API
/// names: every field of the details when none are recorded, and the SIRET
/// of the organisation itself.
pub async fn missing(conn: &mut AsyncPgConnection, venue: i64) -> QueryResult<Vec<&'static str>> {
    let mut missing = Vec::new();
    let siret: Option<String> = organisations::table
        .find(venue)
        .select(organisations::siret)
        .first(conn)
        .await?;
    if siret.is_none() {
        missing.push("siret");
    }
    if venue_details(conn, venue).await?.is_none() {
        missing.extend([
            "legal_name",
            "address",
            "postcode",
            "city",
            "vat_regime",
            "iban",
        ]);
    }
    Ok(missing)
}

/// The 409 a venue gets when its invoice cannot be drawn up yet.
pub fn missing_problem(venue: i64, missing: &[&str]) -> ApiError {
    ApiError::new(
        ProblemType::Conflict,
        format!(
            "The venue has not recorded the invoicing details an invoice needs: {}. \
             They are recorded with PUT /api/v1/organisations/{venue}/invoicing, \
             or on the venue's page « Facturation ».",
            missing.join(", ")
        ),
    )
    .with(
        "missing",
        missing.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>(),
    )
}

pub async fn venue_details(
    conn: &mut AsyncPgConnection,
    venue: i64,
) -> QueryResult<Option<VenueDetails>> {
    venue_invoicing::table
        .find(venue)
        .select(VenueDetails::as_select())
        .first(conn)
        .await
        .optional()
}

/// Records (or replaces) a venue's details, after checking every field
/// against the venue's SIRET; all wrong fields are named at once.
pub async fn save_venue_details(
    conn: &mut AsyncPgConnection,
    venue: i64,
    user_id: i64,
    request: VenueDetailsRequest,
) -> Result<VenueDetails, ApiError> {
    let siret: Option<String> = organisations::table
        .find(venue)
        .select(organisations::siret)
        .first(conn)
        .await?;
    let checked = check_venue_details(&request, siret.as_deref().unwrap_or_default())?;
    let values = (
        venue_invoicing::organisation_id.eq(venue),
        venue_invoicing::legal_name.eq(&checked.legal_name),
        venue_invoicing::address.eq(&checked.address),
        venue_invoicing::postcode.eq(&checked.postcode),
        venue_invoicing::city.eq(&checked.city),
        venue_invoicing::vat_regime.eq(checked.vat_regime.as_str()),
        venue_invoicing::vat_exemption_reason.eq(&checked.vat_exemption_reason),
        venue_invoicing::vat_number.eq(&checked.vat_number),
        venue_invoicing::vat_rate_basis_points.eq(checked.vat_rate_basis_points),
        venue_invoicing::iban.eq(&checked.iban),
        venue_invoicing::bic.eq(&checked.bic),
        venue_invoicing::updated_by_user_id.eq(user_id),
        venue_invoicing::updated_at.eq(diesel::dsl::now),
    );
    Ok(diesel::insert_into(venue_invoicing::table)
        .values(values)
        .on_conflict(venue_invoicing::organisation_id)
        .do_update()
        .set(values)
        .returning(VenueDetails::as_returning())
        .get_result(conn)
        .await?)
}

/// The request with every field checked and normalised (trimmed text,
/// compact IBAN, BIC and VAT number).
fn check_venue_details(
    request: &VenueDetailsRequest,
    siret: &str,
) -> Result<VenueDetailsRequest, ApiError> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let text = |value: &str| crate::render::typeset::clean(value);
    let legal_name = text(&request.legal_name);
    if legal_name.is_empty() || legal_name.chars().count() > 200 {
        fail(
            "legal_name",
            "la raison sociale compte de 1 à 200 caractères".into(),
        );
    }
    let address = text(&request.address);
    if address.is_empty() || address.chars().count() > 300 {
        fail("address", "l'adresse compte de 1 à 300 caractères".into());
    }
    let postcode = request.postcode.trim().to_owned();
    if postcode.len() != 5 || !postcode.bytes().all(|b| b.is_ascii_digit()) {
        fail("postcode", "un code postal compte 5 chiffres".into());
    }
    let city = text(&request.city);
    if city.is_empty() || city.chars().count() > 100 {
        fail("city", "la commune compte de 1 à 100 caractères".into());
    }
    let optional = |value: &Option<String>| value.as_deref().map(text).filter(|v| !v.is_empty());
    let reason = optional(&request.vat_exemption_reason);
    let siren = siret.get(..9).unwrap_or_default();
    let vat_number = match optional(&request.vat_number) {
        Some(number) => match identifiers::vat_number(&number, siren) {
            Ok(number) => Some(number),
            Err(e) => {
                fail("vat_number", e.to_string());
                None
            }
        },
        None => None,
    };
    let mut rate = request.vat_rate_basis_points;
    match request.vat_regime {
        VatRegime::Exempt => {
            match &reason {
                None => fail(
                    "vat_exemption_reason",
                    "indiquez la mention d'exonération imprimée sur les factures, par exemple « TVA non applicable, art. 293 B du CGI »".into(),
                ),
                Some(r) if r.chars().count() > 200 => {
                    fail("vat_exemption_reason", "la mention compte au plus 200 caractères".into())
                }
                Some(_) => {}
            }
            if rate.is_some() {
                fail(
                    "vat_rate_basis_points",
                    "un lieu exonéré de TVA n'a pas de taux".into(),
                );
            }
        }
        VatRegime::Vat => {
            if optional(&request.vat_number).is_none() {
                fail(
                    "vat_number",
                    "un lieu assujetti à la TVA indique son numéro de TVA intracommunautaire"
                        .into(),
                );
            }
            if !rate.is_some_and(|r| VAT_RATES.contains(&r)) {
                fail(
                    "vat_rate_basis_points",
                    "choisissez le taux de TVA : 20 %, 10 %, 5,5 % ou 2,1 %".into(),
                );
                rate = None;
            }
            if reason.is_some() {
                fail(
                    "vat_exemption_reason",
                    "un lieu assujetti à la TVA n'a pas de mention d'exonération".into(),
                );
            }
        }
    }
    let iban = match identifiers::iban(&request.iban) {
        Ok(iban) => iban.as_str().to_owned(),
        Err(e) => {
            fail("iban", e.to_string());
            String::new()
        }
    };
    let bic = match optional(&request.bic) {
        Some(bic) => match identifiers::bic(&bic) {
            Ok(bic) => Some(bic),
            Err(e) => {
                fail("bic", e.to_string());
                None
            }
        },
        None => None,
    };
    if validate_siret(siret).is_err() {
        fail(
            "siret",
            "le SIRET de votre lieu manque : demandez à l'opérateur de le renseigner".into(),
        );
    }
    if !errors.is_empty() {
        return Err(validation(errors));
    }
    Ok(VenueDetailsRequest {
        legal_name,
        address,
        postcode,
        city,
        vat_regime: request.vat_regime,
        vat_exemption_reason: reason,
        vat_number,
        vat_rate_basis_points: rate,
        iban,
        bic,
    })
}

/// What `PUT /api/v1/programs/{id}/invoicing` takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyerDetailsRequest {
    /// The SIRET of the public buyer invoices are addressed to (BT-47).
    #[schema(pattern = r"^ *[0-9]{14} *$")]
    pub buyer_siret: String,
    /// The Chorus Pro "code service" of the buyer, if it asks for one (BT-10).
    #[schema(max_length = 100)]
    pub service_code: Option<String>,
    /// The "numéro d'engagement" (purchase order), if the buyer asks for one (BT-13).
    #[schema(max_length = 50)]
    pub engagement_number: Option<String>,
}

/// What a programme's invoices say of the buyer beyond its name and address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuyerDetails {
    pub program_id: i32,
    pub buyer_siret: String,
    pub service_code: Option<String>,
    pub engagement_number: Option<String>,
    /// `false` while the funder has recorded nothing: the buyer is then the
    /// funder itself, with no code service nor engagement number.
    pub recorded: bool,
}

/// The programme's buyer details, or those of its funder when none are recorded.
pub async fn buyer_details(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
) -> QueryResult<BuyerDetails> {
    let stored: Option<(String, Option<String>, Option<String>)> = program_invoicing::table
        .find(program.id)
        .select((
            program_invoicing::buyer_siret,
            program_invoicing::service_code,
            program_invoicing::engagement_number,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(match stored {
        Some((buyer_siret, service_code, engagement_number)) => BuyerDetails {
            program_id: program.id,
            buyer_siret,
            service_code,
            engagement_number,
            recorded: true,
        },
        None => {
            let siret: Option<String> = organisations::table
                .find(program.funder_organisation_id)
                .select(organisations::siret)
                .first(conn)
                .await?;
            BuyerDetails {
                program_id: program.id,
                buyer_siret: siret.unwrap_or_default(),
                service_code: None,
                engagement_number: None,
                recorded: false,
            }
        }
    })
}

pub async fn save_buyer_details(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    user_id: i64,
    request: BuyerDetailsRequest,
) -> Result<BuyerDetails, ApiError> {
    let mut errors = Vec::new();
    let siret = request.buyer_siret.trim().to_owned();
    if let Err(e) = validate_siret(&siret) {
        errors.push(FieldError {
            field: "buyer_siret".into(),
            message: e.to_string(),
        });
    }
    let mut optional = |field: &str, value: &Option<String>, max: usize| {
        let value = value
            .as_deref()
            .map(crate::render::typeset::clean)
            .filter(|v| !v.is_empty());
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            errors.push(FieldError {
                field: field.into(),
                message: format!("at most {max} characters"),
            });
        }
        value
    };
    let service_code = optional("service_code", &request.service_code, 100);
    let engagement_number = optional("engagement_number", &request.engagement_number, 50);
    if !errors.is_empty() {
        return Err(validation(errors));
    }
    let values = (
        program_invoicing::program_id.eq(program.id),
        program_invoicing::buyer_siret.eq(&siret),
        program_invoicing::service_code.eq(&service_code),
        program_invoicing::engagement_number.eq(&engagement_number),
        program_invoicing::updated_by_user_id.eq(user_id),
        program_invoicing::updated_at.eq(diesel::dsl::now),
    );
    diesel::insert_into(program_invoicing::table)
        .values(values)
        .on_conflict(program_invoicing::program_id)
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    Ok(BuyerDetails {
        program_id: program.id,
        buyer_siret: siret,
        service_code,
        engagement_number,
        recorded: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> VenueDetailsRequest {
        VenueDetailsRequest {
            legal_name: "  Association  Les Clés du numérique ".into(),
            address: "3 rue des Tanneurs".into(),
            postcode: "67000".into(),
            city: "Strasbourg".into(),
            vat_regime: VatRegime::Exempt,
            vat_exemption_reason: Some("TVA non applicable, art. 261-7-1° b du CGI".into()),
            vat_number: None,
            vat_rate_basis_points: None,
            iban: "fr76 3000 6000 0112 3456 7890 189".into(),
            bic: Some("agrifrpp".into()),
        }
    }

    const SIRET: &str = "35600000000048";

    #[test]
    fn good_details_come_back_normalised() {
        let checked = check_venue_details(&request(), SIRET).unwrap();
        assert_eq!(checked.legal_name, "Association Les Clés du numérique");
        assert_eq!(checked.iban, "FR7630006000011234567890189");
        assert_eq!(checked.bic.as_deref(), Some("AGRIFRPP"));
        let vat = VenueDetailsRequest {
            vat_regime: VatRegime::Vat,
            vat_exemption_reason: None,
            vat_number: Some("FR 39 356000000".into()),
            vat_rate_basis_points: Some(2000),
            ..request()
        };
        assert_eq!(
            check_venue_details(&vat, SIRET)
                .unwrap()
                .vat_number
                .as_deref(),
            Some("FR39356000000")
        );
    }

    #[test]
    fn every_wrong_field_is_named_in_french() {
        let wrong = VenueDetailsRequest {
            legal_name: " ".into(),
            postcode: "6700".into(),
            vat_regime: VatRegime::Vat,
            vat_number: Some("FR00356000000".into()),
            vat_rate_basis_points: Some(1900),
            iban: "FR7630006000011234567890188".into(),
            bic: Some("AGRI".into()),
            ..request()
        };
        let e = check_venue_details(&wrong, SIRET).unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "legal_name",
                "postcode",
                "vat_number",
                "vat_rate_basis_points",
                "vat_exemption_reason",
                "iban",
                "bic"
            ]
        );
        assert!(
            e.errors[2].message.contains("FR39356000000"),
            "{:?}",
            e.errors[2]
        );
        assert!(e.errors[5].message.contains("RIB"));
    }

    #[test]
    fn an_exempt_venue_gives_its_legal_mention() {
        let e = check_venue_details(
            &VenueDetailsRequest {
                vat_exemption_reason: None,
                ..request()
            },
            SIRET,
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "vat_exemption_reason");
        assert!(e.errors[0].message.contains("293 B"));
    }
}
