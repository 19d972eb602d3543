//! The beneficiary's own page: secret links to a book, and what the page
//! shows (the coupons, which are used and when, the validity, the venues
//! near home). Nothing personal: no reference, no postcode, no address.
//!
//! A link is a 128-bit random secret. Only its SHA-256 is stored
//! (`book_links`), so the secret exists only where it was printed or sent:
//! each printing of the book and each e-mail makes a link of its own, all
//! alive together until the social worker renews them (which kills every
//! earlier one) or the book is revoked or replaced (which kills them by the
//! book's state: the page of a dead book says it is no longer valid).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Date, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::books::{voucher_status, BookRow, VoucherStatus, USED};
use crate::http::problem::{ApiError, ProblemType};
use crate::voucher::typed_code;

/// Symbols of the secret's text form: Crockford Base32, as typed codes.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 128 bits in 5-bit symbols: 26 (the first holds 3 bits, so it is 0 to 7).
pub const SECRET_SYMBOLS: usize = 26;

/// The path of the page, and its short form printed on the cover.
pub const PAGE_PATH: &str = "/carnet";
pub const SHORT_PATH: &str = "/c";

/// A link's secret: 16 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in logs.
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn random() -> Secret {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Secret(bytes)
    }

    /// 26 Crockford Base32 symbols, most significant first.
    pub fn to_text(&self) -> String {
        let value = u128::from_be_bytes(self.0);
        (0..SECRET_SYMBOLS)
            .map(|i| {
                let shift = 5 * (SECRET_SYMBOLS - 1 - i);
                ALPHABET[((value >> shift) & 31) as usize] as char
            })
            .collect()
    }

    /// The text form in groups of four, for people to type.
    pub fn to_grouped_text(&self) -> String {
        let text = self.to_text();
        text.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Reads a typed or scanned secret: case-insensitive, hyphens and spaces
    /// ignored, I and L read as 1, O as 0. Anything else is `None`.
    pub fn parse(text: &str) -> Option<Secret> {
        let mut value: u128 = 0;
        let mut count = 0;
        for c in text.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                other => other,
            };
            let digit = ALPHABET.iter().position(|&a| a as char == c)? as u128;
            if count == 0 && digit > 7 {
                return None;
            }
            value = (value << 5) | digit;
            count += 1;
            if count > SECRET_SYMBOLS {
                return None;
            }
        }
        (count == SECRET_SYMBOLS).then(|| Secret(value.to_be_bytes()))
    }

    pub fn sha256(&self) -> Vec<u8> {
        Sha256::digest(self.0).to_vec()
    }
}

/// Why a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadeFor {
    Issue,
    Print,
    Email,
    Renew,
}

impl MadeFor {
    fn as_str(self) -> &'static str {
        match self {
            MadeFor::Issue => "issue",
            MadeFor::Print => "print",
            MadeFor::Email => "email",
            MadeFor::Renew => "renew",
        }
    }
}

/// The page's address for a secret: `{public_url}/c/{secret}`, what the QR
/// code holds.
pub fn page_url(public_url: &str, secret: &Secret) -> String {
    format!("{public_url}{SHORT_PATH}/{}", secret.to_text())
}

/// The same address in groups, to print under the QR code.
pub fn printed_url(public_url: &str, secret: &Secret) -> String {
    let host = public_url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    format!("{host}{SHORT_PATH}/{}", secret.to_grouped_text())
}

/// A link as printed on the cover and written in the e-mail.
#[derive(Debug, Clone)]
pub struct PrintedLink {
    /// The full address, what the QR code holds.
    pub url: String,
    /// The address to type, its secret in groups.
    pub printed: String,
}

/// A new link for a printing or an e-mail of the book; none for a revoked
/// book (its page is closed).
pub async fn link_for(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    made_for: MadeFor,
    user_id: Option<i64>,
    public_url: &str,
) -> Result<Option<PrintedLink>, ApiError> {
    if book.revoked_at.is_some() {
        return Ok(None);
    }
    let secret = mint(conn, book.id, made_for, user_id).await?;
    Ok(Some(PrintedLink {
        url: page_url(public_url, &secret),
        printed: printed_url(public_url, &secret),
    }))
}

/// Makes a new live link to `book_id` and returns its secret.
pub async fn mint(
    conn: &mut AsyncPgConnection,
    book_id: i64,
    made_for: MadeFor,
    user_id: Option<i64>,
) -> Result<Secret, ApiError> {
    let secret = Secret::random();
    diesel::sql_query(
        "INSERT INTO book_links (book_id, secret_sha256, made_for, created_by_user_id)
         VALUES ($1, $2, $3, $4)",
    )
    .bind::<BigInt, _>(book_id)
    .bind::<Bytea, _>(secret.sha256())
    .bind::<Text, _>(made_for.as_str())
    .bind::<Nullable<BigInt>, _>(user_id)
    .execute(conn)
    .await?;
    Ok(secret)
}

/// Kills every live link of the book and makes a new one, in one
/// transaction. A revoked book gets no new link (409).
pub async fn renew(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    user_id: i64,
) -> Result<(Secret, usize), ApiError> {
    if book.revoked_at.is_some() {
        return Err(ApiError::new(
            ProblemType::Conflict,
            "This book is revoked: its page stays closed. Give the replacement book instead.",
        ));
    }
    let id = book.id;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let killed = kill_all(conn, id).await?;
        Ok((mint(conn, id, MadeFor::Renew, Some(user_id)).await?, killed))
    })
    .await
}

/// Kills every live link of a book.
pub async fn kill_all(conn: &mut AsyncPgConnection, book_id: i64) -> Result<usize, ApiError> {
    Ok(diesel::sql_query(
        "UPDATE book_links SET killed_at = now() WHERE book_id = $1 AND killed_at IS NULL",
    )
    .bind::<BigInt, _>(book_id)
    .execute(conn)
    .await?)
}

/// How many live links a book has, for its issuer's page.
pub async fn live_links(conn: &mut AsyncPgConnection, book_id: i64) -> Result<i64, ApiError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM book_links WHERE book_id = $1 AND killed_at IS NULL",
    )
    .bind::<BigInt, _>(book_id)
    .get_result(conn)
    .await?;
    Ok(count.n)
}

/// What a secret leads to.
#[derive(Debug)]
pub enum Lookup {
    /// No link has this secret.
    Unknown,
    /// The link was killed, or its book revoked or replaced.
    Dead,
    Live(Box<BookRow>),
}

/// Finds the book behind a secret.
pub async fn lookup(conn: &mut AsyncPgConnection, secret: &Secret) -> Result<Lookup, ApiError> {
    use crate::db::schema::books;
    #[derive(QueryableByName)]
    struct Link {
        #[diesel(sql_type = BigInt)]
        book_id: i64,
        #[diesel(sql_type = Bool)]
        killed: bool,
    }
    let link: Option<Link> = diesel::sql_query(
        "SELECT book_id, killed_at IS NOT NULL AS killed FROM book_links WHERE secret_sha256 = $1",
    )
    .bind::<Bytea, _>(secret.sha256())
    .get_result(conn)
    .await
    .optional()?;
    let Some(link) = link else {
        return Ok(Lookup::Unknown);
    };
    if link.killed {
        return Ok(Lookup::Dead);
    }
    let book: BookRow = books::table
        .find(link.book_id)
        .select(BookRow::as_select())
        .first(conn)
        .await?;
    // A replaced book is revoked by its replacement.
    if book.revoked_at.is_some() {
        return Ok(Lookup::Dead);
    }
    Ok(Lookup::Live(Box::new(book)))
}

/// Requests to the page from one client address within the window.
pub const RATE_WINDOW_SECS: i64 = 10 * 60;
/// Most requests per client address per window.
pub const MAX_REQUESTS: i64 = 120;
/// Most requests with an unknown secret per client address per window.
pub const MAX_MISSES: i64 = 10;

/// Whether `client_ip` may ask for a page now (counted in PostgreSQL, so
/// every instance sees the same requests). Old rows of the address go.
pub async fn may_ask(conn: &mut AsyncPgConnection, client_ip: &str) -> Result<bool, ApiError> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        total: i64,
        #[diesel(sql_type = BigInt)]
        misses: i64,
    }
    diesel::sql_query(
        "DELETE FROM book_link_requests
          WHERE client_ip = $1 AND at < now() - make_interval(secs => $2)",
    )
    .bind::<Text, _>(client_ip)
    .bind::<diesel::sql_types::Double, _>(RATE_WINDOW_SECS as f64)
    .execute(conn)
    .await?;
    let counts: Counts = diesel::sql_query(
        "SELECT count(*) AS total, count(*) FILTER (WHERE NOT hit) AS misses
           FROM book_link_requests WHERE client_ip = $1",
    )
    .bind::<Text, _>(client_ip)
    .get_result(conn)
    .await?;
    Ok(counts.total < MAX_REQUESTS && counts.misses < MAX_MISSES)
}

/// Counts one request of `client_ip`: `hit` when the secret was known.
pub async fn count_request(
    conn: &mut AsyncPgConnection,
    client_ip: &str,
    hit: bool,
) -> Result<(), ApiError> {
    diesel::sql_query("INSERT INTO book_link_requests (client_ip, hit) VALUES ($1, $2)")
        .bind::<Text, _>(client_ip)
        .bind::<Bool, _>(hit)
        .execute(conn)
        .await?;
    Ok(())
}

/// One coupon as the page shows it.
#[derive(Debug, Clone)]
pub struct PageCoupon {
    pub position: i16,
    pub code: String,
    pub typed_code: String,
    pub status: VoucherStatus,
    /// When it was used, and where (the beneficiary may see it).
    pub used_at: Option<DateTime<Utc>>,
    pub used_at_venue: Option<String>,
}

/// A venue near home, as the page shows it.
#[derive(Debug, Clone)]
pub struct PageVenue {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub postcode: String,
    pub commune: String,
    pub phone: Option<String>,
    pub opening_hours: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    pub distance_km: Option<f64>,
    /// In the beneficiary's commune.
    pub home: bool,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct Page {
    pub program_name: String,
    pub book_size: i16,
    pub expires_on: NaiveDate,
    pub today: NaiveDate,
    pub time_zone: chrono_tz::Tz,
    pub coupons: Vec<PageCoupon>,
    /// Accredited venues: they take the coupons.
    pub venues: Vec<PageVenue>,
    /// Listed venues (national directory): other places that can help.
    pub other_places: Vec<PageVenue>,
}

/// How many venues of each kind the page lists.
pub const VENUES_ON_PAGE: usize = 5;

/// Gathers the page of a live book.
pub async fn page(conn: &mut AsyncPgConnection, book: &BookRow) -> Result<Page, ApiError> {
    use crate::db::schema::programs;
    let (program_name, time_zone, territory): (String, String, Vec<String>) = programs::table
        .find(book.program_id)
        .select((programs::name, programs::time_zone, programs::territory))
        .first(conn)
        .await?;
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(super::paris::DEFAULT_TIME_ZONE);
    let today = super::paris::today_in(tz);

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = SmallInt)]
        position: i16,
        #[diesel(sql_type = Date)]
        expires_on: NaiveDate,
        #[diesel(sql_type = Text)]
        code: String,
        #[diesel(sql_type = Bool)]
        used: bool,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        used_at: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Text>)]
        venue: Option<String>,
    }
    // The live redemption of each coupon's position (with this voucher, or
    // with the one it replaced), as `USED` defines "used".
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT v.id, v.position, v.expires_on, v.code, {USED} AS used, r.redeemed_at AS used_at, o.name AS venue
           FROM vouchers v
           LEFT JOIN LATERAL (
                SELECT r.redeemed_at, r.venue_organisation_id FROM redemptions r
                 WHERE r.lineage_id = v.lineage_id AND r.position = v.position
                   AND r.cancelled_at IS NULL AND NOT r.second_payment
                 ORDER BY r.redeemed_at LIMIT 1) r ON true
           LEFT JOIN organisations o ON o.id = r.venue_organisation_id
          WHERE v.book_id = $1 ORDER BY v.position"
    ))
    .bind::<BigInt, _>(book.id)
    .load(conn)
    .await?;
    let coupons = rows
        .into_iter()
        .map(|r| PageCoupon {
            position: r.position,
            typed_code: typed_code::encode(r.id as u64).unwrap_or_default(),
            code: r.code,
            status: voucher_status(r.used, false, r.expires_on, today),
            used_at: r.used.then_some(r.used_at).flatten(),
            used_at_venue: r.used.then_some(r.venue).flatten(),
        })
        .collect();

    let (venues, other_places) = venues_near(conn, book, &territory, today).await?;
    Ok(Page {
        program_name,
        book_size: book.size,
        expires_on: book.expires_on,
        today,
        time_zone: tz,
        coupons,
        venues,
        other_places,
    })
}

/// Where distances are measured from: the middle of the venues of the
/// beneficiary's commune when there are some, else the issuing office.
///
/// (Kept apart so that a better origin, such as the commune's own
/// coordinates, replaces this one function.)
async fn origin(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    home_communes: &[String],
) -> Result<Option<(f64, f64)>, ApiError> {
    #[derive(QueryableByName)]
    struct Point {
        #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
        lat: Option<f64>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
        lon: Option<f64>,
    }
    let home: Point = diesel::sql_query(
        "SELECT avg(latitude) AS lat, avg(longitude) AS lon FROM organisations
          WHERE kind = 'venue' AND commune_code = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(home_communes)
    .get_result(conn)
    .await?;
    if let (Some(lat), Some(lon)) = (home.lat, home.lon) {
        return Ok(Some((lat, lon)));
    }
    let office: Point = diesel::sql_query(
        "SELECT latitude AS lat, longitude AS lon FROM organisations WHERE id = $1",
    )
    .bind::<BigInt, _>(book.issuer_organisation_id)
    .get_result(conn)
    .await?;
    Ok(office.lat.zip(office.lon))
}

/// The programme's accredited venues and the listed ones, each list nearest
/// first (the beneficiary's commune first of all), at most
/// [`VENUES_ON_PAGE`] of each.
async fn venues_near(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    territory: &[String],
    today: NaiveDate,
) -> Result<(Vec<PageVenue>, Vec<PageVenue>), ApiError> {
    use crate::geo::Communes;
    let communes = Communes::shared();
    let home_communes: Vec<String> = match &book.beneficiary_commune_code {
        Some(code) => vec![code.clone()],
        None => book
            .beneficiary_postcode
            .as_deref()
            .map(|p| {
                communes
                    .communes_for_postcode(p)
                    .map(|c| c.code().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let origin = origin(conn, book, &home_communes).await?;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        address: String,
        #[diesel(sql_type = Text)]
        postcode: String,
        #[diesel(sql_type = Text)]
        commune_code: String,
        #[diesel(sql_type = Nullable<Text>)]
        phone: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        opening_hours: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Double)]
        latitude: f64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        longitude: f64,
        #[diesel(sql_type = Bool)]
        accredited: bool,
        #[diesel(sql_type = Bool)]
        home: bool,
    }
    // Accreditation as `Organisation::is_accredited_on` says, on the
    // programme's today; distances are ranked in SQL over the département(s)
    // of the programme, so 18,000 listed venues never come back whole.
    let (lat, lon) = origin.unwrap_or((f64::NAN, f64::NAN));
    let rows: Vec<Row> = diesel::sql_query(
        "WITH candidates AS (
            SELECT o.id, o.name, o.address, o.postcode::text AS postcode, o.commune_code::text AS commune_code,
                   o.phone, d.opening_hours, o.latitude, o.longitude,
                   (o.accredited_since <= now() AND o.accredited_until >= $2
                    AND (o.accreditation_withdrawn_at IS NULL OR o.accreditation_withdrawn_at > now()))
                   IS TRUE AS accredited,
                   coalesce(o.commune_code = ANY($3), false) AS home,
                   (o.latitude - $4) ^ 2 + ((o.longitude - $5) * cos(radians($4))) ^ 2 AS d2
              FROM organisations o LEFT JOIN venue_details d ON d.organisation_id = o.id
             WHERE o.kind = 'venue' AND o.departement = ANY($1))
         (SELECT id, name, address, postcode, commune_code, phone, opening_hours, latitude, longitude, accredited, home
            FROM candidates WHERE accredited ORDER BY home DESC, d2, id LIMIT $6)
         UNION ALL
         (SELECT id, name, address, postcode, commune_code, phone, opening_hours, latitude, longitude, accredited, home
            FROM candidates WHERE NOT accredited AND id IN (SELECT organisation_id FROM venue_details)
           ORDER BY home DESC, d2, id LIMIT $6)",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(territory)
    .bind::<Date, _>(today)
    .bind::<diesel::sql_types::Array<Text>, _>(&home_communes)
    .bind::<diesel::sql_types::Double, _>(lat)
    .bind::<diesel::sql_types::Double, _>(lon)
    .bind::<BigInt, _>(VENUES_ON_PAGE as i64)
    .load(conn)
    .await?;
    let mut venues = Vec::new();
    let mut others = Vec::new();
    for r in rows {
        let venue = PageVenue {
            id: r.id,
            distance_km: origin
                .map(|from| super::printing::distance_km(from, (r.latitude, r.longitude))),
            commune: communes
                .commune(&r.commune_code)
                .map(|c| c.name().to_owned())
                .unwrap_or_default(),
            name: r.name,
            address: r.address,
            postcode: r.postcode,
            phone: r.phone,
            opening_hours: r.opening_hours,
            latitude: r.latitude,
            longitude: r.longitude,
            home: r.home,
        };
        if r.accredited {
            venues.push(venue);
        } else {
            others.push(venue);
        }
    }
    Ok((venues, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_back_from_their_text_forms() {
        for _ in 0..200 {
            let secret = Secret::random();
            let text = secret.to_text();
            assert_eq!(text.len(), SECRET_SYMBOLS);
            assert!(text.as_bytes()[0] <= b'7', "{text}");
            assert_eq!(Secret::parse(&text), Some(secret.clone()));
            assert_eq!(
                Secret::parse(&secret.to_grouped_text()),
                Some(secret.clone())
            );
            assert_eq!(Secret::parse(&text.to_lowercase()), Some(secret.clone()));
        }
        let ones = Secret([0xff; 16]);
        assert_eq!(ones.to_text(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(
            Secret::parse("0000000000000000000000000O"),
            Some(Secret([0; 16]))
        );
        assert_eq!(
            Secret::parse("0000000000000000000000000L"),
            Secret::parse("00000000000000000000000001")
        );
    }

    #[test]
    fn refuses_what_is_not_a_secret() {
        for bad in [
            "",
            "0000000000000000000000000",   // 25 symbols
            "000000000000000000000000000", // 27
            "8000000000000000000000000000",
            "80000000000000000000000000", // more than 128 bits
            "0000000000000000000000000U", // U is never valid
            "000000000000000000000000/0",
            "0000000000000000000000000é",
        ] {
            assert_eq!(Secret::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn urls_hold_the_secret_and_print_in_groups() {
        let secret = Secret([0xab; 16]);
        let url = page_url("https://pass.example.org", &secret);
        assert_eq!(
            url,
            format!("https://pass.example.org/c/{}", secret.to_text())
        );
        let printed = printed_url("https://pass.example.org", &secret);
        assert!(printed.starts_with("pass.example.org/c/"), "{printed}");
        assert_eq!(printed.matches('-').count(), 6, "{printed}");
        assert_eq!(
            Secret::parse(printed.rsplit('/').next().unwrap_or_default()),
            Some(secret)
        );
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::random();
        assert!(!format!("{secret:?}").contains(&secret.to_text()));
    }
}
