//! The printable book: gathers what the PDF shows (programme, funder, issuer,
//! the nearest venues, the coupons) and hands it to the renderer.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::books::{vouchers_of, BookRow};
use super::carnet::{self, MadeFor, PrintedLink};
use super::organisations::Organisation;
use super::programs::ProgramRow;
use crate::db::schema::{organisations, programs};
use crate::geo::Communes;
use crate::http::problem::ApiError;
use crate::render::book_pdf::{self, BookPdf, PageLink, PdfCoupon, PdfVenue, PrivacyNotice};
use crate::voucher::typed_code;

/// How many venues the cover lists.
pub const VENUES_ON_COVER: usize = 5;

/// A rendered book and the name of its programme.
pub struct RenderedBook {
    pub pdf: Vec<u8>,
    pub program_name: String,
}

/// Renders the book as an A4 PDF; `page_link` (the beneficiary's page) is
/// printed on the cover.
pub async fn render_book(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    privacy_contact: &str,
    page_link: Option<&PrintedLink>,
) -> Result<RenderedBook, ApiError> {
    let program: ProgramRow = programs::table
        .find(book.program_id)
        .select(ProgramRow::as_select())
        .first(conn)
        .await?;
    let funder = super::organisations::find(conn, program.funder_organisation_id).await?;
    let issuer = super::organisations::find(conn, book.issuer_organisation_id).await?;
    let venues = nearest_venues(conn, &program, book, &issuer).await?;
    let vouchers = vouchers_of(conn, book.id).await?;

    let typed: Vec<String> = vouchers
        .iter()
        .map(|(v, _)| typed_code::encode(v.id as u64).unwrap_or_default())
        .collect();
    let coupons: Vec<PdfCoupon> = vouchers
        .iter()
        .zip(&typed)
        .map(|((v, _), typed_code)| PdfCoupon {
            position: v.position as u8,
            code: &v.code,
            typed_code,
        })
        .collect();
    let communes = Communes::shared();
    let pdf_venues: Vec<PdfVenue> = venues
        .iter()
        .map(|(venue, distance)| PdfVenue {
            name: &venue.name,
            address: venue.address.as_deref().unwrap_or_default(),
            postcode: venue.postcode.as_deref().unwrap_or_default(),
            commune: venue
                .commune_code
                .as_deref()
                .and_then(|c| communes.commune(c))
                .map(|c| c.name())
                .unwrap_or_default(),
            phone: venue.phone.as_deref(),
            distance_km: *distance,
        })
        .collect();
    let retention = "Vos données sont effacées 12 mois après la fin de validité du carnet.";
    let controller = format!(
        "{} (financeur) et {} (organisme qui remet le carnet)",
        funder.name, issuer.name
    );
    let document = BookPdf {
        program_name: &program.name,
        funder_name: &funder.name,
        issuer_name: &issuer.name,
        issuer_phone: issuer.phone.as_deref(),
        issued_on: book.issued_on,
        expires_on: book.expires_on,
        reference: book.beneficiary_reference.as_deref().unwrap_or("—"),
        venues: &pdf_venues,
        coupons: &coupons,
        book_size: book.size as u8,
        privacy: PrivacyNotice {
            controller: &controller,
            contact: privacy_contact,
            retention,
        },
        page_link: page_link.map(|link| PageLink {
            url: &link.url,
            printed: &link.printed,
        }),
    };
    let pdf = book_pdf::render(&document)
        .map_err(|e| ApiError::internal(format!("the book could not be rendered: {e}")))?;
    Ok(RenderedBook {
        pdf,
        program_name: program.name.clone(),
    })
}

/// The programme's venues accredited today: those of the beneficiary's
/// commune first, then the others by straight-line distance from the issuing
/// organisation.
async fn nearest_venues(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    book: &BookRow,
    issuer: &Organisation,
) -> Result<Vec<(Organisation, Option<f64>)>, ApiError> {
    let candidates: Vec<Organisation> = organisations::table
        .filter(organisations::kind.eq("venue"))
        .filter(organisations::departement.eq_any(&program.territory))
        .select(Organisation::as_select())
        .load(conn)
        .await?;
    let today = program.today();
    let home_communes: Vec<String> = match &book.beneficiary_commune_code {
        Some(code) => vec![code.clone()],
        None => book
            .beneficiary_postcode
            .as_deref()
            .map(|p| {
                Communes::shared()
                    .communes_for_postcode(p)
                    .map(|c| c.code().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let origin = issuer.latitude.zip(issuer.longitude);
    let mut venues: Vec<(Organisation, Option<f64>)> = candidates
        .into_iter()
        .filter(|v| v.is_accredited_on(today))
        .map(|v| {
            let distance = origin
                .zip(v.latitude.zip(v.longitude))
                .map(|(from, to)| distance_km(from, to));
            (v, distance)
        })
        .collect();
    venues.sort_by(|(a, da), (b, db)| {
        let home = |v: &Organisation| {
            !v.commune_code
                .as_ref()
                .is_some_and(|c| home_communes.contains(c))
        };
        home(a)
            .cmp(&home(b))
            .then(da.unwrap_or(f64::MAX).total_cmp(&db.unwrap_or(f64::MAX)))
            .then(a.id.cmp(&b.id))
    });
    venues.truncate(VENUES_ON_COVER);
    Ok(venues)
}

/// Great-circle distance in kilometres (haversine), between (lat, lon) pairs.
pub fn distance_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lon1) = (from.0.to_radians(), from.1.to_radians());
    let (lat2, lon2) = (to.0.to_radians(), to.1.to_radians());
    let a = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

/// When the book was emailed successfully, oldest first.
pub async fn sent_at(
    conn: &mut AsyncPgConnection,
    book_id: i64,
) -> Result<Vec<chrono::DateTime<chrono::Utc>>, ApiError> {
    use crate::db::schema::book_sends;
    Ok(book_sends::table
        .filter(book_sends::book_id.eq(book_id))
        .filter(book_sends::outcome.eq("sent"))
        .select(book_sends::at)
        .order(book_sends::id)
        .load(conn)
        .await?)
}

/// Emails the book; records the attempt; deletes the stored address once sent.
/// A new link to the beneficiary's page, then the book rendered with it on
/// its cover: what downloading the PDF gives.
pub async fn print_book(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    user_id: i64,
    privacy_contact: &str,
    public_url: &str,
) -> Result<RenderedBook, ApiError> {
    let link = carnet::link_for(conn, book, MadeFor::Print, Some(user_id), public_url).await?;
    render_book(conn, book, privacy_contact, link.as_ref()).await
}

/// Emails the book, with a new link to the beneficiary's page in the
/// message and on the cover; records the attempt; deletes the stored
/// address once sent.
pub async fn send_book(
    conn: &mut AsyncPgConnection,
    mailer: &crate::mail::Mailer,
    book: &BookRow,
    user_id: i64,
    email: Option<String>,
    privacy_contact: &str,
    public_url: &str,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    use crate::db::schema::{book_sends, books};
    use crate::http::problem::ProblemType;

    if book.revoked_at.is_some() {
        return Err(ApiError::new(
            ProblemType::Conflict,
            "This book is revoked: send its replacement instead.",
        ));
    }
    let to = match email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => super::accounts::normalise_email(e)?,
        None => book.beneficiary_email.clone().ok_or_else(|| {
            ApiError::invalid_field("email", "no address was given for this book: give one")
        })?,
    };
    let link = carnet::link_for(conn, book, MadeFor::Email, Some(user_id), public_url).await?;
    let rendered = render_book(conn, book, privacy_contact, link.as_ref()).await?;
    let outcome = mailer
        .send_book(
            &to,
            &rendered.program_name,
            rendered.pdf,
            link.as_ref().map(|l| l.url.as_str()),
        )
        .await;
    let (label, error) = match &outcome {
        Ok(()) => ("sent", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let at: chrono::DateTime<chrono::Utc> = diesel::insert_into(book_sends::table)
        .values((
            book_sends::book_id.eq(book.id),
            book_sends::user_id.eq(user_id),
            book_sends::outcome.eq(label),
            book_sends::error.eq(&error),
        ))
        .returning(book_sends::at)
        .get_result(conn)
        .await?;
    match outcome {
        Ok(()) => {
            // Kept only until the book is sent.
            diesel::update(books::table.find(book.id))
                .set(books::beneficiary_email.eq(None::<String>))
                .execute(conn)
                .await?;
            Ok(at)
        }
        Err(e) => {
            tracing::warn!(book = book.id, error = %e, "book not sent");
            Err(ApiError::unavailable(format!(
                "{e}. The book is still issued; try sending it again later."
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::distance_km;

    #[test]
    fn strasbourg_to_colmar_is_about_64_km() {
        let d = distance_km((48.5734, 7.7521), (48.0794, 7.3585));
        assert!((60.0..68.0).contains(&d), "{d}");
        assert_eq!(distance_km((48.0, 7.0), (48.0, 7.0)), 0.0);
    }
}
