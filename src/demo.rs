//! `passnum serve --demo`: a demonstration data set, seeded idempotently.
//! Every account's password is `demo-passnum`. Development only.

use chrono::Months;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::auth::Role;
use crate::db::schema::{organisations, users};
use crate::domain::accounts;
use crate::domain::organisations::{self as orgs, NewOrganisation};
use crate::domain::paris;
use crate::http::problem::ApiError;

pub const PASSWORD: &str = "demo-passnum";

struct DemoOrg {
    email: &'static str,
    kind: Role,
    name: &'static str,
    siren: &'static str,
    address: &'static str,
    postcode: &'static str,
    commune_code: &'static str,
    coordinates: (f64, f64),
    phone: &'static str,
}

const ORGANISATIONS: [DemoOrg; 5] = [
    DemoOrg {
        email: "operateur@demo.passnum.test",
        kind: Role::Operator,
        name: "Opérateur passnum (démo)",
        siren: "90000001",
        address: "1 place de la République",
        postcode: "67000",
        commune_code: "67482",
        coordinates: (48.5876, 7.7547),
        phone: "03 88 00 00 01",
    },
    DemoOrg {
        email: "financeur@demo.passnum.test",
        kind: Role::Funder,
        name: "Collectivité d'Alsace (démo)",
        siren: "90000002",
        address: "Place du Quartier Blanc",
        postcode: "67000",
        commune_code: "67482",
        coordinates: (48.5734, 7.7667),
        phone: "03 88 00 00 02",
    },
    DemoOrg {
        email: "prescripteur@demo.passnum.test",
        kind: Role::Issuer,
        name: "Centre médico-social de Neudorf (démo)",
        siren: "90000003",
        address: "12 rue de Lunéville",
        postcode: "67100",
        commune_code: "67482",
        coordinates: (48.5684, 7.7601),
        phone: "03 88 00 00 03",
    },
    DemoOrg {
        email: "lieu@demo.passnum.test",
        kind: Role::Venue,
        name: "Médiathèque Malraux, atelier numérique (démo)",
        siren: "90000004",
        address: "1 presqu'île André Malraux",
        postcode: "67100",
        commune_code: "67482",
        coordinates: (48.5766, 7.7629),
        phone: "03 88 00 00 04",
    },
    DemoOrg {
        email: "lieu2@demo.passnum.test",
        kind: Role::Venue,
        name: "Espace numérique de Colmar (démo)",
        siren: "90000005",
        address: "7 place de la Mairie",
        postcode: "68000",
        commune_code: "68066",
        coordinates: (48.0794, 7.3585),
        phone: "03 89 00 00 05",
    },
];

/// Seeds the demo organisations and accounts, leaving existing ones as they are.
pub async fn seed(conn: &mut AsyncPgConnection) -> Result<(), ApiError> {
    // Hashed once, and only if an account is missing: a restart of the demo
    // costs no argon2 run.
    let mut hash: Option<String> = None;
    for demo in &ORGANISATIONS {
        let siret = siret_from(demo.siren, "0001");
        let existing: Option<i64> = organisations::table
            .filter(organisations::siret.eq(&siret))
            .select(organisations::id)
            .first(conn)
            .await
            .optional()?;
        let org = match existing {
            Some(id) => orgs::find(conn, id).await?,
            None => {
                let new = NewOrganisation {
                    kind: demo.kind,
                    name: demo.name.into(),
                    siret,
                    address: demo.address.into(),
                    postcode: demo.postcode.into(),
                    commune_code: demo.commune_code.into(),
                    latitude: Some(demo.coordinates.0),
                    longitude: Some(demo.coordinates.1),
                    phone: Some(demo.phone.into()),
                };
                orgs::create(conn, new).await?
            }
        };
        let today = paris::today();
        if org.role() == Role::Venue && !org.is_accredited_on(today) {
            let until = today.checked_add_months(Months::new(12)).unwrap_or(today);
            orgs::accredit(conn, &org, until).await?;
        }
        let user_exists: bool = diesel::select(diesel::dsl::exists(
            users::table.filter(users::email.eq(demo.email)),
        ))
        .get_result(conn)
        .await?;
        if !user_exists {
            let hash = match &hash {
                Some(hash) => hash.clone(),
                None => hash
                    .insert(accounts::hash_off_thread(PASSWORD.to_owned()).await?)
                    .clone(),
            };
            accounts::insert(conn, org.id, demo.email, &hash).await?;
        }
    }
    seed_program(conn).await?;
    tracing::info!("demo data seeded; every demo account's password is {PASSWORD}");
    Ok(())
}

pub const PROGRAM_NAME: &str = "Pass numérique Alsace (démo)";

/// A programme on the Bas-Rhin and the Haut-Rhin, with an allocation for the
/// demo issuer; both demo venues are inside it.
async fn seed_program(conn: &mut AsyncPgConnection) -> Result<(), ApiError> {
    use crate::db::schema::programs;
    let funder = org_of(conn, "financeur@demo.passnum.test").await?;
    let issuer = org_of(conn, "prescripteur@demo.passnum.test").await?;
    let existing: Option<i32> = programs::table
        .filter(programs::funder_organisation_id.eq(funder))
        .filter(programs::name.eq(PROGRAM_NAME))
        .select(programs::id)
        .first(conn)
        .await
        .optional()?;
    if existing.is_some() {
        return Ok(());
    }
    let today = paris::today();
    let new = crate::domain::programs::NewProgram {
        name: PROGRAM_NAME.into(),
        face_value_cents: 2_000,
        budget_cents: 20_000_000,
        issue_until: today.checked_add_months(Months::new(12)).unwrap_or(today),
        voucher_validity_days: 365,
        territory: crate::domain::programs::Territory {
            departements: vec!["67".into(), "68".into()],
        },
        time_zone: None,
    };
    let program = crate::domain::programs::create(conn, funder, new).await?;
    let row = crate::domain::programs::find_own(conn, program.id, funder).await?;
    crate::domain::programs::allocate(
        conn,
        &row,
        crate::domain::programs::NewAllocation {
            issuer_organisation_id: issuer,
            vouchers: 1_000,
        },
    )
    .await?;
    Ok(())
}

async fn org_of(conn: &mut AsyncPgConnection, email: &str) -> Result<i64, ApiError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(users::organisation_id)
        .first(conn)
        .await?)
}

/// A valid SIRET from an 8-digit SIREN stem and a 4-digit NIC stem: each
/// number gets the check digit that makes it Luhn-valid.
pub fn siret_from(siren_stem: &str, nic_stem: &str) -> String {
    let siren = format!("{siren_stem}{}", luhn_check_digit(siren_stem));
    let body = format!("{siren}{nic_stem}");
    format!("{body}{}", luhn_check_digit(&body))
}

fn luhn_check_digit(digits: &str) -> u32 {
    // Doubling starts with the rightmost digit of the stem, as the check
    // digit will sit to its right.
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                (d * 2) / 10 + (d * 2) % 10
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::validate_siret;

    #[test]
    fn demo_sirets_are_valid_and_distinct() {
        let sirets: Vec<String> = ORGANISATIONS
            .iter()
            .map(|o| siret_from(o.siren, "0001"))
            .collect();
        for s in &sirets {
            assert_eq!(s.len(), 14);
            validate_siret(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let mut unique = sirets.clone();
        unique.dedup();
        assert_eq!(unique.len(), sirets.len());
    }
}
