//! Organisations: checked against the SIRET rules and the list of French
//! communes; venues' accreditation.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::db::schema::organisations;
use crate::geo::{validate_siret, Communes};
use crate::http::problem::{ApiError, FieldError, ProblemType};

/// What `POST /api/v1/organisations` accepts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    pub kind: Role,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// 14 digits; its SIREN (the first 9) and the whole SIRET pass the Luhn check.
    #[schema(pattern = r"^[0-9]{14}$")]
    pub siret: String,
    #[schema(min_length = 1, max_length = 300)]
    pub address: String,
    /// One of the commune's postcodes.
    #[schema(pattern = r"^[0-9]{5}$")]
    pub postcode: String,
    /// INSEE code of a current commune or municipal arrondissement.
    #[schema(pattern = r"^[0-9][0-9AB][0-9]{3}$")]
    pub commune_code: String,
    /// Venues give coordinates, the others may.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: Option<f64>,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: Option<f64>,
    /// 6 to 15 digits; spaces, dots, dashes, parentheses and + allowed.
    #[schema(pattern = r"^[ +.()-]*([0-9][ +.()-]*){6,15}$")]
    pub phone: Option<String>,
}

/// An organisation as the API shows it.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = organisations)]
pub struct Organisation {
    pub id: i64,
    #[diesel(deserialize_as = String)]
    #[schema(value_type = Role)]
    pub kind: RoleText,
    pub name: String,
    pub siret: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub commune_code: Option<String>,
    pub departement: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub phone: Option<String>,
    /// Venues: accredited from this instant…
    pub accredited_since: Option<DateTime<Utc>>,
    /// …to this day inclusive, unless withdrawn.
    pub accredited_until: Option<NaiveDate>,
    pub accreditation_withdrawn_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The kind column, read back as a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RoleText(pub Role);

impl From<String> for RoleText {
    fn from(s: String) -> Self {
        // The column's CHECK constraint admits the four kinds only.
        RoleText(Role::parse(&s).unwrap_or(Role::Venue))
    }
}

impl Organisation {
    pub fn role(&self) -> Role {
        self.kind.0
    }

    /// Whether a venue is accredited now, on `today`.
    pub fn is_accredited_on(&self, today: NaiveDate) -> bool {
        self.is_accredited_at(Utc::now(), today)
    }

    /// Whether a venue was accredited at instant `at`, which fell on `day`
    /// (a calendar day in the time zone that matters to the caller).
    pub fn is_accredited_at(&self, at: DateTime<Utc>, day: NaiveDate) -> bool {
        let started = self.accredited_since.is_some_and(|since| since <= at);
        let not_withdrawn = self.accreditation_withdrawn_at.is_none_or(|w| w > at);
        started && not_withdrawn && self.accredited_until.is_some_and(|until| day <= until)
    }
}

/// Checks every field, reporting all that are wrong at once.
pub fn validate(new: &NewOrganisation) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        fail("name", "the name must be 1 to 200 characters".into());
    }
    if let Err(e) = validate_siret(&new.siret) {
        fail("siret", e.to_string());
    }
    let address = new.address.trim();
    if address.is_empty() || address.chars().count() > 300 {
        fail("address", "the address must be 1 to 300 characters".into());
    }
    let departement =
        match Communes::shared().commune_with_postcode(&new.commune_code, &new.postcode) {
            Ok(commune) => Some(commune.departement().as_str().to_owned()),
            Err(e) => {
                let field = match e.field() {
                    crate::geo::GeoField::Postcode => "postcode",
                    _ => "commune_code",
                };
                fail(field, e.to_string());
                None
            }
        };
    match (new.latitude, new.longitude) {
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                fail("latitude", "a latitude is between -90 and 90".into());
            }
            if !(-180.0..=180.0).contains(&lon) {
                fail("longitude", "a longitude is between -180 and 180".into());
            }
        }
        (None, None) if new.kind != Role::Venue => {}
        (None, None) => fail(
            "latitude",
            "a venue gives its coordinates (latitude and longitude)".into(),
        ),
        (None, _) => fail("latitude", "give latitude and longitude together".into()),
        (_, None) => fail("longitude", "give latitude and longitude together".into()),
    }
    if let Some(phone) = &new.phone {
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        let allowed = phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +.-()".contains(c));
        if !allowed || !(6..=15).contains(&digits) {
            fail(
                "phone",
                "a phone number has 6 to 15 digits (spaces, dots, dashes and + allowed)".into(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(validation(errors));
    }
    Ok(departement.unwrap_or_default())
}

pub fn validation(errors: Vec<FieldError>) -> ApiError {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let mut error = ApiError::new(ProblemType::ValidationError, detail);
    error.errors = errors;
    error
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    new: NewOrganisation,
) -> Result<Organisation, ApiError> {
    let departement = validate(&new)?;
    diesel::insert_into(organisations::table)
        .values((
            organisations::kind.eq(new.kind.as_str()),
            organisations::name.eq(new.name.trim()),
            organisations::siret.eq(&new.siret),
            organisations::address.eq(new.address.trim()),
            organisations::postcode.eq(&new.postcode),
            organisations::commune_code.eq(&new.commune_code),
            organisations::departement.eq(departement),
            organisations::latitude.eq(new.latitude),
            organisations::longitude.eq(new.longitude),
            organisations::phone.eq(new.phone.as_deref().map(str::trim)),
        ))
        .returning(Organisation::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => ApiError::new(
                ProblemType::Conflict,
                format!("An organisation with SIRET {} exists already.", new.siret),
            ),
            other => other.into(),
        })
}

pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> Result<Organisation, ApiError> {
    organisations::table
        .find(id)
        .select(Organisation::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No organisation {id}.")))
}

/// One page of organisations in id order, optionally of one kind.
pub async fn list(
    conn: &mut AsyncPgConnection,
    kind: Option<Role>,
    after: i64,
    limit: i64,
) -> Result<Vec<Organisation>, ApiError> {
    let mut query = organisations::table
        .select(Organisation::as_select())
        .filter(organisations::id.gt(after))
        .order(organisations::id)
        .limit(limit)
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(organisations::kind.eq(kind.as_str()));
    }
    Ok(query.load(conn).await?)
}

/// Accredits a venue until `valid_until` (inclusive), lifting any withdrawal.
pub async fn accredit(
    conn: &mut AsyncPgConnection,
    venue: &Organisation,
    valid_until: NaiveDate,
) -> Result<Organisation, ApiError> {
    require_venue(venue)?;
    if valid_until < super::paris::today() {
        return Err(ApiError::invalid_field(
            "valid_until",
            "the date is in the past",
        ));
    }
    Ok(diesel::update(organisations::table.find(venue.id))
        .set((
            organisations::accredited_since.eq(diesel::dsl::now),
            organisations::accredited_until.eq(valid_until),
            organisations::accreditation_withdrawn_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(Organisation::as_returning())
        .get_result(conn)
        .await?)
}

/// Withdraws a venue's accreditation from now on.
pub async fn withdraw_accreditation(
    conn: &mut AsyncPgConnection,
    venue: &Organisation,
) -> Result<(), ApiError> {
    require_venue(venue)?;
    diesel::update(organisations::table.find(venue.id))
        .set(organisations::accreditation_withdrawn_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

fn require_venue(org: &Organisation) -> Result<(), ApiError> {
    if org.role() == Role::Venue {
        Ok(())
    } else {
        Err(ApiError::new(
            ProblemType::Conflict,
            format!(
                "Organisation {} is not a venue: only venues are accredited.",
                org.id
            ),
        ))
    }
}
