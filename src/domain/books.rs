//! Books of 5 or 10 signed vouchers: issuing one in a single transaction that
//! also spends the allocation, revoking, and replacing a lost one.

use chrono::{DateTime, Days, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ed25519_dalek::SigningKey;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::{normalise_email, Account};
use super::programs::{self, constraint, ProgramRow};
use super::sync;
use crate::auth::Role;
use crate::db::schema::{books, vouchers};
use crate::geo::{Communes, GeoError, GeoField};
use crate::http::problem::{ApiError, FieldError, ProblemType};
use crate::voucher::{typed_code, VoucherBody, BOOK_SIZES, MAX_VOUCHER_ID};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBook {
    pub program_id: i32,
    /// 5 or 10.
    #[schema(schema_with = crate::http::openapi::book_sizes)]
    pub size: i64,
    pub beneficiary: Beneficiary,
}

/// Who the book is for, as little as possible: the issuer's own file number,
/// a postcode (and the commune when the postcode spans départements), and an
/// email kept only until the book is sent. Never a name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Beneficiary {
    /// The issuer's own file number for this person, never a name.
    #[schema(min_length = 1, max_length = 64)]
    pub reference: String,
    #[schema(pattern = r"^ *[0-9]{5} *$")]
    pub postcode: String,
    /// Needed only when the postcode spans communes of several départements.
    #[schema(pattern = r"^ *([0-9][0-9AB][0-9]{3} *)?$")]
    pub commune_code: Option<String>,
    /// Kept until the book is sent to it.
    #[schema(
        max_length = 254,
        pattern = r"^ *([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){0,2}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,3} *)?$"
    )]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedVoucher {
    /// Decimal string: ids use all 63 bits.
    pub voucher_id: String,
    pub position: i16,
    /// The text the QR code holds.
    pub code: String,
    /// The code to type when the camera fails.
    pub typed_code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedBook {
    pub id: i64,
    pub program_id: i32,
    pub size: i16,
    pub expires_on: NaiveDate,
    pub vouchers: Vec<IssuedVoucher>,
    pub pdf_url: String,
    /// The beneficiary's own page (no login): a secret link, shown only in
    /// this answer (only its hash is kept). Printing or e-mailing the book
    /// makes links of their own.
    pub page_url: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = books)]
pub struct BookRow {
    pub id: i64,
    pub program_id: i32,
    pub issuer_organisation_id: i64,
    pub size: i16,
    pub issued_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub beneficiary_reference: Option<String>,
    pub beneficiary_postcode: Option<String>,
    pub beneficiary_commune_code: Option<String>,
    pub beneficiary_departement: String,
    pub beneficiary_email: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub replaces_book_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = vouchers)]
pub struct VoucherRow {
    pub id: i64,
    pub position: i16,
    pub expires_on: NaiveDate,
    pub face_value_cents: i64,
    pub code: String,
}

/// Where a voucher stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoucherStatus {
    Valid,
    Redeemed,
    Expired,
    Revoked,
}

/// A redemption wins over everything; then revocation; then the calendar.
pub fn voucher_status(
    redeemed: bool,
    revoked: bool,
    expires_on: NaiveDate,
    today: NaiveDate,
) -> VoucherStatus {
    if redeemed {
        VoucherStatus::Redeemed
    } else if revoked {
        VoucherStatus::Revoked
    } else if expires_on < today {
        VoucherStatus::Expired
    } else {
        VoucherStatus::Valid
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookVoucher {
    pub voucher_id: String,
    pub position: i16,
    pub code: String,
    pub typed_code: String,
    pub face_value_cents: i64,
    pub status: VoucherStatus,
}

/// A book as its issuer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Book {
    pub id: i64,
    pub program_id: i32,
    pub size: i16,
    pub issued_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub reference: Option<String>,
    pub postcode: Option<String>,
    /// Vouchers used so far (n of `size`).
    pub used: i64,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub replaces_book_id: Option<i64>,
    pub replaced_by_book_id: Option<i64>,
    /// Whether an email address is waiting for the book to be sent.
    pub email_pending: bool,
    pub pdf_url: String,
    /// Present on a single book, absent from lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vouchers: Option<Vec<BookVoucher>>,
}

/// Everything checked before the transaction: nothing here touches the database.
struct Checked {
    size: i16,
    reference: String,
    postcode: String,
    commune_code: Option<String>,
    departement: String,
    email: Option<String>,
}

/// What may be wrong with a beneficiary as given, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeneficiaryProblem {
    ReferenceMissing,
    ReferenceTooLong,
    PostcodeMissing,
    /// Postcode, commune code or their pair unknown or inconsistent.
    Place(GeoError),
    /// The beneficiary's département, outside the programme's territory.
    OutsideTerritory {
        departement: String,
        territory: Vec<String>,
    },
    EmailInvalid,
}

impl BeneficiaryProblem {
    /// The API's field name.
    pub fn field(&self) -> &'static str {
        match self {
            BeneficiaryProblem::ReferenceMissing | BeneficiaryProblem::ReferenceTooLong => {
                "beneficiary.reference"
            }
            BeneficiaryProblem::Place(e) if e.field() == GeoField::CommuneCode => {
                "beneficiary.commune_code"
            }
            BeneficiaryProblem::PostcodeMissing
            | BeneficiaryProblem::Place(_)
            | BeneficiaryProblem::OutsideTerritory { .. } => "beneficiary.postcode",
            BeneficiaryProblem::EmailInvalid => "beneficiary.email",
        }
    }

    /// The API's message, in English.
    pub fn message(&self) -> String {
        match self {
            BeneficiaryProblem::ReferenceMissing | BeneficiaryProblem::ReferenceTooLong => {
                "your file number for this person, 1 to 64 characters (never their name)".into()
            }
            BeneficiaryProblem::PostcodeMissing => "the postcode is required".into(),
            BeneficiaryProblem::Place(e) => e.to_string(),
            BeneficiaryProblem::OutsideTerritory {
                departement,
                territory,
            } => format!(
                "département {departement} is outside the programme's territory ({})",
                territory.join(", ")
            ),
            BeneficiaryProblem::EmailInvalid => "this is not an email address".into(),
        }
    }
}

/// A beneficiary as checked: every field, or every problem at once.
pub struct CheckedBeneficiary {
    reference: String,
    postcode: String,
    commune_code: Option<String>,
    departement: String,
    email: Option<String>,
}

/// Checks every field of `b` against `territory` (département codes) and
/// returns all the problems, not only the first.
pub fn check_beneficiary(
    b: &Beneficiary,
    territory: &[String],
) -> Result<CheckedBeneficiary, Vec<BeneficiaryProblem>> {
    let mut problems = Vec::new();
    let reference = b.reference.trim();
    if reference.is_empty() {
        problems.push(BeneficiaryProblem::ReferenceMissing);
    } else if reference.chars().count() > 64 {
        problems.push(BeneficiaryProblem::ReferenceTooLong);
    }
    let postcode = b.postcode.trim();
    let commune_code = b
        .commune_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let mut departement = None;
    if postcode.is_empty() {
        problems.push(BeneficiaryProblem::PostcodeMissing);
    } else {
        match Communes::shared().departement_for(postcode, commune_code) {
            Err(e) => problems.push(BeneficiaryProblem::Place(e)),
            Ok(d) if !territory.iter().any(|t| t == d.as_str()) => {
                problems.push(BeneficiaryProblem::OutsideTerritory {
                    departement: d.as_str().to_owned(),
                    territory: territory.to_vec(),
                })
            }
            Ok(d) => departement = Some(d.as_str().to_owned()),
        }
    }
    let email = match b.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(email) => match normalise_email(email) {
            Ok(email) => Some(email),
            Err(_) => {
                problems.push(BeneficiaryProblem::EmailInvalid);
                None
            }
        },
        None => None,
    };
    match departement {
        Some(departement) if problems.is_empty() => Ok(CheckedBeneficiary {
            reference: reference.to_owned(),
            postcode: postcode.to_owned(),
            commune_code: commune_code.map(str::to_owned),
            departement,
            email,
        }),
        _ => Err(problems),
    }
}

fn check_book(new: &NewBook, program: &ProgramRow) -> Result<Checked, ApiError> {
    let size = match u8::try_from(new.size) {
        Ok(size) if BOOK_SIZES.contains(&size) => Some(i16::from(size)),
        _ => None,
    };
    let beneficiary = check_beneficiary(&new.beneficiary, &program.territory);
    match (size, beneficiary) {
        (Some(size), Ok(b)) => Ok(Checked {
            size,
            reference: b.reference,
            postcode: b.postcode,
            commune_code: b.commune_code,
            departement: b.departement,
            email: b.email,
        }),
        (size, beneficiary) => {
            // Every problem at once, the size first.
            let mut errors = Vec::new();
            if size.is_none() {
                errors.push(FieldError {
                    field: "size".into(),
                    message: "a book holds 5 or 10 vouchers".into(),
                });
            }
            for p in beneficiary.err().unwrap_or_default() {
                errors.push(FieldError {
                    field: p.field().into(),
                    message: p.message(),
                });
            }
            let detail: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            let mut e = ApiError::new(ProblemType::ValidationError, detail.join("; "));
            e.errors = errors;
            Err(e)
        }
    }
}

/// Refuses issuing on a closed programme or past its last issue date.
fn check_open_for_issuing(program: &ProgramRow) -> Result<(), ApiError> {
    if program.closed_at.is_some() {
        return Err(ApiError::new(
            ProblemType::ProgramClosed,
            "The programme is closed.",
        ));
    }
    if program.today() > program.issue_until {
        return Err(ApiError::new(
            ProblemType::ProgramClosed,
            format!("The programme issued books until {}.", program.issue_until),
        ));
    }
    Ok(())
}

/// A new voucher id: random in 1..2^63-1, so ids reveal nothing and fit a BIGINT.
fn new_voucher_id() -> u64 {
    rand::thread_rng().gen_range(1..=MAX_VOUCHER_ID)
}

/// Signs the vouchers of one book (pure: done before the transaction).
fn sign_vouchers(
    kid: u8,
    key: &SigningKey,
    program_id: i32,
    expires_on: NaiveDate,
    size: i16,
    positions: &[i16],
) -> Result<Vec<(u64, i16, String)>, ApiError> {
    positions
        .iter()
        .map(|&position| {
            let id = new_voucher_id();
            let narrow = |_| {
                ApiError::internal("a programme id, position or size out of the voucher's range")
            };
            let body = VoucherBody {
                kid,
                voucher_id: id,
                program_id: u32::try_from(program_id).map_err(narrow)?,
                expires_on,
                position: u8::try_from(position).map_err(narrow)?,
                book_size: u8::try_from(size).map_err(narrow)?,
            };
            let signed = body
                .sign(key)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((id, position, signed.to_text()))
        })
        .collect()
}

pub fn pdf_url(public_url: &str, book_id: i64) -> String {
    format!("{public_url}/api/v1/books/{book_id}/pdf")
}

/// Issues a book: the allocation is spent and the book and its vouchers are
/// stored in one transaction, so concurrent requests can never overspend.
pub async fn issue(
    conn: &mut AsyncPgConnection,
    issuer: &Account,
    signer: (u8, SigningKey),
    new: NewBook,
    public_url: &str,
) -> Result<IssuedBook, ApiError> {
    let program =
        programs::find_visible(conn, new.program_id, Role::Issuer, issuer.organisation.id)
            .await
            .map_err(|e| match e.kind {
                ProblemType::NotFound => ApiError::invalid_field(
                    "program_id",
                    "no programme you can issue from has this id",
                ),
                _ => e,
            })?;
    let checked = check_book(&new, &program)?;
    check_open_for_issuing(&program)?;

    let issued_on = program.today();
    let expires_on = issued_on
        .checked_add_days(Days::new(program.voucher_validity_days as u64))
        .ok_or_else(|| ApiError::internal("expiry date overflow"))?;
    let (kid, key) = signer;
    let (program_id, size) = (program.id, checked.size);
    // Signing is CPU work: off the async workers, so other requests go on.
    let signed = tokio::task::spawn_blocking(move || {
        let positions: Vec<i16> = (1..=size).collect();
        sign_vouchers(kid, &key, program_id, expires_on, size, &positions)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let secret = super::carnet::Secret::random();

    // One statement, one transaction: the allocation spent (under its row
    // lock and check constraint), the book, its vouchers, its first link.
    use diesel::sql_types::{Array, BigInt, Date, Integer, Nullable, SmallInt, Text};
    #[derive(QueryableByName)]
    struct Issued {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    struct Issue;
    let issued: Option<Issued> = crate::db::prepared::Prepared::<Issue>::new(
        "WITH spent AS (
            UPDATE allocations SET used_vouchers = used_vouchers + $4
             WHERE program_id = $1 AND issuer_organisation_id = $2 RETURNING program_id),
         book AS (
            INSERT INTO books (program_id, issuer_organisation_id, issued_by_user_id, size, issued_on, expires_on,
                               beneficiary_reference, beneficiary_postcode, beneficiary_commune_code,
                               beneficiary_departement, beneficiary_email)
            SELECT program_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM spent
            RETURNING id, lineage_id),
         coupons AS (
            INSERT INTO vouchers (id, book_id, lineage_id, program_id, kid, position, expires_on, face_value_cents, code)
            SELECT c.id, book.id, book.lineage_id, $1, $12, c.position, $6, $13, c.code
              FROM book, unnest($14::bigint[], $15::smallint[], $16::text[]) AS c (id, position, code)),
         link AS (
            INSERT INTO book_links (book_id, secret_sha256, made_for, created_by_user_id)
            SELECT id, $17, 'issue', $3 FROM book)
         SELECT id FROM book",
    )
    .bind::<Integer, _>(program.id)
    .bind::<BigInt, _>(issuer.organisation.id)
    .bind::<BigInt, _>(issuer.user.id)
    .bind::<SmallInt, _>(checked.size)
    .bind::<Date, _>(issued_on)
    .bind::<Date, _>(expires_on)
    .bind::<Text, _>(checked.reference.clone())
    .bind::<Text, _>(checked.postcode.clone())
    .bind::<Nullable<Text>, _>(checked.commune_code.clone())
    .bind::<Text, _>(checked.departement.clone())
    .bind::<Nullable<Text>, _>(checked.email.clone())
    .bind::<SmallInt, _>(i16::from(kid))
    .bind::<BigInt, _>(program.face_value_cents)
    .bind::<Array<BigInt>, _>(signed.iter().map(|(id, _, _)| *id as i64).collect::<Vec<_>>())
    .bind::<Array<SmallInt>, _>(signed.iter().map(|(_, p, _)| *p).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(signed.iter().map(|(_, _, c)| c.clone()).collect::<Vec<_>>())
    .bind::<diesel::sql_types::Bytea, _>(secret.sha256())
    .get_result(conn)
    .await
    .optional()
    .map_err(|e| {
        constraint(
            e,
            "allocations_within_quota",
            ProblemType::QuotaExceeded,
            "Your allocation for this programme is used up; ask the funder for more.",
        )
    })?;
    let book_id = issued
        .ok_or_else(|| {
            ApiError::invalid_field("program_id", "you have no allocation in this programme")
        })?
        .id;
    Ok(IssuedBook {
        id: book_id,
        program_id: program.id,
        size: checked.size,
        expires_on,
        vouchers: signed
            .iter()
            .map(|(id, position, code)| issued_voucher(*id, *position, code))
            .collect(),
        pdf_url: pdf_url(public_url, book_id),
        page_url: super::carnet::page_url(public_url, &secret),
    })
}

fn issued_voucher(id: u64, position: i16, code: &str) -> IssuedVoucher {
    IssuedVoucher {
        voucher_id: id.to_string(),
        position,
        code: code.to_owned(),
        typed_code: typed_code::encode(id).unwrap_or_default(),
    }
}

/// What every voucher of one new book shares.
struct NewVouchers {
    book_id: i64,
    lineage_id: i64,
    program_id: i32,
    kid: u8,
    expires_on: NaiveDate,
    face_value_cents: i64,
}

async fn insert_vouchers(
    conn: &mut AsyncPgConnection,
    book: NewVouchers,
    signed: &[(u64, i16, String)],
    replaces: Option<&[i64]>,
) -> QueryResult<()> {
    let rows: Vec<_> = signed
        .iter()
        .enumerate()
        .map(|(i, (id, position, code))| {
            (
                vouchers::id.eq(*id as i64),
                vouchers::book_id.eq(book.book_id),
                vouchers::lineage_id.eq(book.lineage_id),
                vouchers::program_id.eq(book.program_id),
                vouchers::kid.eq(i16::from(book.kid)),
                vouchers::position.eq(*position),
                vouchers::expires_on.eq(book.expires_on),
                vouchers::face_value_cents.eq(book.face_value_cents),
                vouchers::code.eq(code.clone()),
                vouchers::replaces_voucher_id.eq(replaces.map(|r| r[i])),
            )
        })
        .collect();
    diesel::insert_into(vouchers::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// The book if it belongs to `issuer`; another organisation's is not found.
pub async fn find_own(
    conn: &mut AsyncPgConnection,
    id: i64,
    issuer: i64,
) -> Result<BookRow, ApiError> {
    books::table
        .find(id)
        .filter(books::issuer_organisation_id.eq(issuer))
        .select(BookRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No book {id}.")))
}

/// Whether a voucher is used: its position was redeemed, with this voucher
/// or, unless it was replaced, with another of its position. So a
/// replacement shows the state of its position, and a replaced voucher only
/// its own redemption.
pub(super) const USED: &str = "EXISTS (
    SELECT 1 FROM redemptions r
     WHERE r.lineage_id = v.lineage_id AND r.position = v.position
       AND r.cancelled_at IS NULL AND NOT r.second_payment
       AND (r.voucher_id = v.id OR NOT EXISTS (SELECT 1 FROM vouchers w WHERE w.replaces_voucher_id = v.id)))";

/// The vouchers of a book, in position order, with whether each is used.
pub async fn vouchers_of(
    conn: &mut AsyncPgConnection,
    book_id: i64,
) -> Result<Vec<(VoucherRow, bool)>, ApiError> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(embed)]
        voucher: VoucherRow,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        used: bool,
    }
    let rows: Vec<State> = diesel::sql_query(format!(
        "SELECT v.id, v.position, v.expires_on, v.face_value_cents, v.code, {USED} AS used
           FROM vouchers v WHERE v.book_id = $1 ORDER BY v.position"
    ))
    .bind::<diesel::sql_types::BigInt, _>(book_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|s| (s.voucher, s.used)).collect())
}

/// A book with its progress, and with each voucher when `with_vouchers`.
pub async fn present(
    conn: &mut AsyncPgConnection,
    row: BookRow,
    public_url: &str,
    with_vouchers: bool,
) -> Result<Book, ApiError> {
    let vouchers = vouchers_of(conn, row.id).await?;
    let used = vouchers.iter().filter(|(_, redeemed)| *redeemed).count() as i64;
    let replaced_by: Option<i64> = books::table
        .filter(books::replaces_book_id.eq(row.id))
        .select(books::id)
        .first(conn)
        .await
        .optional()?;
    let revoked = row.revoked_at.is_some();
    let vouchers = if with_vouchers {
        // Statuses follow the calendar of the programme's time zone; a list
        // of books shows no status and skips this query.
        let time_zone: String = crate::db::schema::programs::table
            .find(row.program_id)
            .select(crate::db::schema::programs::time_zone)
            .first(conn)
            .await?;
        let today =
            super::paris::today_in(time_zone.parse().unwrap_or(super::paris::DEFAULT_TIME_ZONE));
        Some(
            vouchers
                .into_iter()
                .map(|(v, redeemed)| BookVoucher {
                    voucher_id: v.id.to_string(),
                    position: v.position,
                    typed_code: typed_code::encode(v.id as u64).unwrap_or_default(),
                    code: v.code,
                    face_value_cents: v.face_value_cents,
                    status: voucher_status(redeemed, revoked, v.expires_on, today),
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(Book {
        id: row.id,
        program_id: row.program_id,
        size: row.size,
        issued_on: row.issued_on,
        expires_on: row.expires_on,
        reference: row.beneficiary_reference,
        postcode: row.beneficiary_postcode,
        used,
        revoked_at: row.revoked_at,
        revoked_reason: row.revoked_reason,
        replaces_book_id: row.replaces_book_id,
        replaced_by_book_id: replaced_by,
        email_pending: row.beneficiary_email.is_some(),
        pdf_url: pdf_url(public_url, row.id),
        vouchers,
    })
}

/// How a list of books is filtered by beneficiary reference.
#[derive(Debug, Clone, Copy)]
pub enum ReferenceFilter<'r> {
    /// Every book.
    Any,
    /// Exactly this reference (the API's `?reference=`).
    Exact(&'r str),
    /// References containing this text, whatever its case (the page's search).
    Containing(&'r str),
}

impl<'r> ReferenceFilter<'r> {
    fn text(self) -> Option<&'r str> {
        match self {
            ReferenceFilter::Any => None,
            ReferenceFilter::Exact(r) | ReferenceFilter::Containing(r) => {
                Some(r.trim()).filter(|r| !r.is_empty())
            }
        }
    }
}

/// `text` as a LIKE pattern matching it anywhere, its own `%`, `_` and `\` taken literally.
fn containing_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An issuer's books, filtered by beneficiary reference.
fn books_of<'a>(issuer: i64, filter: ReferenceFilter<'_>) -> books::BoxedQuery<'a, diesel::pg::Pg> {
    let mut query = books::table
        .filter(books::issuer_organisation_id.eq(issuer))
        .into_boxed();
    match (filter, filter.text()) {
        (_, None) => {}
        (ReferenceFilter::Containing(_), Some(text)) => {
            query = query.filter(books::beneficiary_reference.ilike(containing_pattern(text)));
        }
        (_, Some(text)) => {
            query = query.filter(books::beneficiary_reference.eq(text.to_owned()));
        }
    }
    query
}

/// One page of an issuer's books, newest last, optionally by reference.
pub async fn list(
    conn: &mut AsyncPgConnection,
    issuer: i64,
    reference: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<BookRow>, ApiError> {
    let filter = reference.map_or(ReferenceFilter::Any, ReferenceFilter::Exact);
    Ok(books_of(issuer, filter)
        .filter(books::id.gt(after))
        .select(BookRow::as_select())
        .order(books::id)
        .limit(limit)
        .load(conn)
        .await?)
}

/// One page of an issuer's books, newest first, before book `before` if given.
pub async fn list_newest(
    conn: &mut AsyncPgConnection,
    issuer: i64,
    reference: ReferenceFilter<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<BookRow>, ApiError> {
    Ok(books_of(issuer, reference)
        .filter(books::id.lt(before.unwrap_or(i64::MAX)))
        .select(BookRow::as_select())
        .order(books::id.desc())
        .limit(limit)
        .load(conn)
        .await?)
}

/// Revokes a book: its unredeemed vouchers stop being redeemable.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    reason: &str,
) -> Result<(), ApiError> {
    let reason = super::check_reason(reason)?.to_owned();
    let id = book.id;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let updated = diesel::update(books::table.find(id).filter(books::revoked_at.is_null()))
            .set((
                books::revoked_at.eq(diesel::dsl::now),
                books::revoked_reason.eq(&reason),
            ))
            .execute(conn)
            .await?;
        if updated == 0 {
            return Err(ApiError::new(
                ProblemType::Conflict,
                "The book is already revoked.",
            ));
        }
        sync::record_revoked_book(conn, id).await?;
        Ok(())
    })
    .await
}

/// Replaces a lost book: the old one is revoked and a new one holds new
/// vouchers for its unredeemed positions only, with the same size, positions
/// and expiry. It uses no allocation, and each new voucher stands for the one
/// it replaces, so the programme's committed amount does not change.
///
/// The book's row is locked for update before its positions are read:
/// redemptions of its vouchers (which hold it in share mode) finish first and
/// are seen, and later ones find the book revoked.
pub async fn replace(
    conn: &mut AsyncPgConnection,
    book: &BookRow,
    issuer: &Account,
    signer: (u8, SigningKey),
    reason: &str,
    public_url: &str,
) -> Result<IssuedBook, ApiError> {
    let reason = super::check_reason(reason)?.to_owned();
    let program =
        programs::find_visible(conn, book.program_id, Role::Issuer, issuer.organisation.id).await?;
    if program.closed_at.is_some() {
        return Err(ApiError::new(
            ProblemType::ProgramClosed,
            "The programme is closed.",
        ));
    }
    // Checked here, not left to the table's constraints: a 410 that says why.
    if book.expires_on < program.today() {
        return Err(ApiError::new(
            ProblemType::VoucherExpired,
            format!(
                "This book expired on {}: a replacement, valid as long, would be expired too.",
                book.expires_on
            ),
        ));
    }
    // Signing is pure and done before the transaction: a new voucher for
    // every position of the book; those found redeemed under the lock are dropped.
    let all = vouchers_of(conn, book.id).await?;
    let positions: Vec<i16> = all.iter().map(|(v, _)| v.position).collect();
    let (kid, key) = signer;
    let signed = sign_vouchers(
        kid,
        &key,
        program.id,
        book.expires_on,
        book.size,
        &positions,
    )?;
    let user_id = issuer.user.id;
    let (new_id, kept, secret) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let lineage_id: i64 = books::table
                .find(book.id)
                .select(books::lineage_id)
                .for_update()
                .first(conn)
                .await?;
            let replaced: bool = diesel::select(diesel::dsl::exists(
                books::table.filter(books::replaces_book_id.eq(book.id)),
            ))
            .get_result(conn)
            .await?;
            if replaced {
                return Err(ApiError::new(
                    ProblemType::Conflict,
                    "This book was already replaced.",
                ));
            }
            let unredeemed: Vec<VoucherRow> = vouchers_of(conn, book.id)
                .await?
                .into_iter()
                .filter(|(_, used)| !used)
                .map(|(v, _)| v)
                .collect();
            if unredeemed.is_empty() {
                return Err(ApiError::new(
                    ProblemType::Conflict,
                    "Every voucher of this book has been used: there is nothing to replace.",
                ));
            }
            let kept: Vec<(u64, i16, String)> = signed
                .iter()
                .filter(|(_, position, _)| unredeemed.iter().any(|v| v.position == *position))
                .cloned()
                .collect();
            let replaces: Vec<i64> = kept
                .iter()
                .filter_map(|(_, position, _)| {
                    unredeemed
                        .iter()
                        .find(|v| v.position == *position)
                        .map(|v| v.id)
                })
                .collect();
            let face_value = unredeemed[0].face_value_cents;
            let revoked_now = diesel::update(
                books::table
                    .find(book.id)
                    .filter(books::revoked_at.is_null()),
            )
            .set((
                books::revoked_at.eq(diesel::dsl::now),
                books::revoked_reason.eq(&reason),
            ))
            .execute(conn)
            .await?;
            if revoked_now == 1 {
                sync::record_revoked_book(conn, book.id).await?;
            }
            let new_id: i64 = diesel::insert_into(books::table)
                .values((
                    books::program_id.eq(book.program_id),
                    books::issuer_organisation_id.eq(book.issuer_organisation_id),
                    books::issued_by_user_id.eq(user_id),
                    books::size.eq(book.size),
                    books::issued_on.eq(program.today()),
                    books::expires_on.eq(book.expires_on),
                    books::beneficiary_reference.eq(&book.beneficiary_reference),
                    books::beneficiary_postcode.eq(&book.beneficiary_postcode),
                    books::beneficiary_commune_code.eq(&book.beneficiary_commune_code),
                    books::beneficiary_departement.eq(&book.beneficiary_departement),
                    books::beneficiary_email.eq(&book.beneficiary_email),
                    // Its lineage_id is the old book's (the books_lineage trigger).
                    books::replaces_book_id.eq(book.id),
                ))
                .returning(books::id)
                .get_result(conn)
                .await
                .map_err(|e| match e {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => ApiError::new(ProblemType::Conflict, "This book was already replaced."),
                    other => other.into(),
                })?;
            insert_vouchers(
                conn,
                NewVouchers {
                    book_id: new_id,
                    lineage_id,
                    program_id: program.id,
                    kid,
                    expires_on: book.expires_on,
                    face_value_cents: face_value,
                },
                &kept,
                Some(&replaces),
            )
            .await?;
            let secret =
                super::carnet::mint(conn, new_id, super::carnet::MadeFor::Issue, Some(user_id))
                    .await?;
            Ok((new_id, kept, secret))
        })
        .await?;
    Ok(IssuedBook {
        id: new_id,
        program_id: program.id,
        size: book.size,
        expires_on: book.expires_on,
        vouchers: kept
            .iter()
            .map(|(id, position, code)| issued_voucher(*id, *position, code))
            .collect(),
        pdf_url: pdf_url(public_url, new_id),
        page_url: super::carnet::page_url(public_url, &secret),
    })
}

/// The text form of a voucher, if it belongs to one of `issuer`'s books.
pub async fn voucher_code(
    conn: &mut AsyncPgConnection,
    voucher_id: i64,
    issuer: i64,
) -> Result<Option<String>, ApiError> {
    Ok(vouchers::table
        .inner_join(books::table)
        .filter(vouchers::id.eq(voucher_id))
        .filter(books::issuer_organisation_id.eq(issuer))
        .select(vouchers::code)
        .first(conn)
        .await
        .optional()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_search_pattern_takes_wildcards_literally() {
        assert_eq!(super::containing_pattern("0042"), "%0042%");
        assert_eq!(super::containing_pattern(r"a%b_c\"), r"%a\%b\_c\\%");
    }
}
