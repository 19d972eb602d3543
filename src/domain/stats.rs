//! Usage of a programme, for its funder: where passes go and where they lie
//! unused while there is still time to act.
//!
//! Each book position counts once: a replacement voucher stands for the one
//! it replaces, so only the last voucher of each position is looked at. Its
//! state is the first that holds of: redeemed (a redemption not cancelled,
//! reversed or not: the voucher is used), revoked (its book), expired (past
//! its last valid day in the programme's time zone), else outstanding. So
//! `issued = redeemed + revoked + expired + outstanding`, in count and cents.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;

use super::programs::ProgramRow;
use super::themes;
use crate::db::schema::organisations;
use crate::http::problem::ApiError;

/// A number of vouchers and their face value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Figure {
    pub count: i64,
    pub cents: i64,
}

impl Figure {
    fn add(&mut self, other: Figure) {
        self.count += other.count;
        self.cents += other.cents;
    }
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Vouchers {
    pub issued: Figure,
    pub redeemed: Figure,
    /// Redemptions cancelled by their venue (the voucher was usable again).
    pub cancelled: Figure,
    /// Redemptions reversed by the funder (the voucher stays used, unpaid).
    pub reversed: Figure,
    pub expired: Figure,
    pub revoked: Figure,
    pub outstanding: Figure,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerUsage {
    pub issuer_organisation_id: i64,
    pub name: String,
    pub issued: Figure,
    pub redeemed: Figure,
    pub outstanding: Figure,
    pub usage_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VenueUsage {
    pub venue_organisation_id: i64,
    pub name: String,
    pub redeemed: Figure,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThemeUsage {
    pub theme: String,
    pub label: String,
    pub redeemed: Figure,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartementUsage {
    pub departement: String,
    pub issued: Figure,
    pub redeemed: Figure,
    pub outstanding: Figure,
}

/// A calendar month (`YYYY-MM`, programme time zone): vouchers issued then
/// (by their first book) and vouchers redeemed then.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthUsage {
    pub month: String,
    pub issued: Figure,
    pub redeemed: Figure,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Books issued, replacements not counted again.
    pub books_issued: i64,
    /// Redeemed over issued vouchers, between 0 and 1.
    pub usage_rate: f64,
    pub vouchers: Vouchers,
    pub by_issuer: Vec<IssuerUsage>,
    pub by_venue: Vec<VenueUsage>,
    pub by_theme: Vec<ThemeUsage>,
    pub by_departement: Vec<DepartementUsage>,
    pub by_month: Vec<MonthUsage>,
}

/// One group of the query: a dimension, its key, a voucher state and its figure.
#[derive(QueryableByName)]
struct Group {
    #[diesel(sql_type = Text)]
    dimension: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

/// The last voucher of each position is read once (materialised), then
/// grouped by every dimension. A position is used when any of its vouchers
/// has a redemption not cancelled: the one holding the position, else a
/// conflict the funder paid.
const GROUPS: &str = "
WITH latest AS MATERIALIZED (
    SELECT v.face_value_cents AS cents, b.issuer_organisation_id AS issuer,
           b.beneficiary_departement AS departement, u.venue_organisation_id AS venue,
           u.theme, to_char(u.redeemed_at AT TIME ZONE $3, 'YYYY-MM') AS redeemed_month,
           CASE WHEN u.voucher_id IS NOT NULL THEN 'redeemed'
                WHEN b.revoked_at IS NOT NULL THEN 'revoked'
                WHEN v.expires_on < $2 THEN 'expired'
                ELSE 'outstanding' END AS state
      FROM vouchers v
      JOIN books b ON b.id = v.book_id
      LEFT JOIN LATERAL (
          SELECT r.voucher_id, r.venue_organisation_id, r.theme, r.redeemed_at
            FROM redemptions r
           WHERE r.lineage_id = v.lineage_id AND r.position = v.position AND r.cancelled_at IS NULL
           ORDER BY r.second_payment, r.id
           LIMIT 1) u ON true
     WHERE v.program_id = $1
       AND NOT EXISTS (SELECT 1 FROM vouchers w WHERE w.replaces_voucher_id = v.id)
)
SELECT 'all' AS dimension, '' AS key, state, count(*) AS count, sum(cents)::bigint AS cents
  FROM latest GROUP BY state
UNION ALL
SELECT 'issuer', issuer::text, state, count(*), sum(cents)::bigint FROM latest GROUP BY issuer, state
UNION ALL
SELECT 'departement', departement, state, count(*), sum(cents)::bigint FROM latest GROUP BY departement, state
UNION ALL
SELECT 'venue', venue::text, state, count(*), sum(cents)::bigint FROM latest WHERE state = 'redeemed' GROUP BY venue, state
UNION ALL
SELECT 'theme', theme, state, count(*), sum(cents)::bigint FROM latest WHERE state = 'redeemed' GROUP BY theme, state
UNION ALL
SELECT 'month', redeemed_month, state, count(*), sum(cents)::bigint FROM latest WHERE state = 'redeemed' GROUP BY redeemed_month, state
UNION ALL
SELECT 'month', to_char(b.issued_on, 'YYYY-MM'), 'issued', count(*), sum(v.face_value_cents)::bigint
  FROM vouchers v JOIN books b ON b.id = v.book_id
 WHERE v.program_id = $1 AND v.replaces_voucher_id IS NULL
 GROUP BY 2
UNION ALL
SELECT 'undone', '', CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled' ELSE 'reversed' END,
       count(*), sum(face_value_cents)::bigint
  FROM redemptions
 WHERE program_id = $1 AND (cancelled_at IS NOT NULL OR reversed_at IS NOT NULL)
 GROUP BY 3
UNION ALL
SELECT 'books', '', 'issued', count(*), 0 FROM books WHERE program_id = $1 AND replaces_book_id IS NULL";

/// A programme's usage, in the contract's shape.
pub async fn of_program(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
) -> Result<Stats, ApiError> {
    let groups: Vec<Group> = diesel::sql_query(GROUPS)
        .bind::<Integer, _>(program.id)
        .bind::<Date, _>(program.today())
        .bind::<Text, _>(&program.time_zone)
        .load(conn)
        .await?;
    let mut tally = Tally::default();
    for group in groups {
        tally.add(group);
    }
    let ids: Vec<i64> = tally
        .issuers
        .keys()
        .chain(tally.venues.keys())
        .copied()
        .collect();
    let names: HashMap<i64, String> = organisations::table
        .filter(organisations::id.eq_any(ids))
        .select((organisations::id, organisations::name))
        .load(conn)
        .await?
        .into_iter()
        .collect();
    Ok(tally.into_stats(&names))
}

/// Figures by state (`redeemed`, `revoked`, `expired`, `outstanding`, plus
/// `issued` for months) for one key of a dimension.
type ByState = BTreeMap<String, Figure>;

#[derive(Default)]
struct Tally {
    all: ByState,
    undone: ByState,
    books: i64,
    issuers: BTreeMap<i64, ByState>,
    venues: BTreeMap<i64, ByState>,
    themes: BTreeMap<String, ByState>,
    departements: BTreeMap<String, ByState>,
    months: BTreeMap<String, ByState>,
}

impl Tally {
    fn add(&mut self, g: Group) {
        let figure = Figure {
            count: g.count,
            cents: g.cents,
        };
        let by_state = match g.dimension.as_str() {
            "all" => &mut self.all,
            "undone" => &mut self.undone,
            "books" => {
                self.books = g.count;
                return;
            }
            "issuer" => self
                .issuers
                .entry(g.key.parse().unwrap_or_default())
                .or_default(),
            "venue" => self
                .venues
                .entry(g.key.parse().unwrap_or_default())
                .or_default(),
            "theme" => self.themes.entry(g.key).or_default(),
            "departement" => self.departements.entry(g.key).or_default(),
            _ => self.months.entry(g.key).or_default(),
        };
        by_state.entry(g.state).or_default().add(figure);
    }

    fn into_stats(self, names: &HashMap<i64, String>) -> Stats {
        let name = |id: &i64| names.get(id).cloned().unwrap_or_default();
        let vouchers = Vouchers {
            issued: issued(&self.all),
            redeemed: state(&self.all, "redeemed"),
            cancelled: state(&self.undone, "cancelled"),
            reversed: state(&self.undone, "reversed"),
            expired: state(&self.all, "expired"),
            revoked: state(&self.all, "revoked"),
            outstanding: state(&self.all, "outstanding"),
        };
        Stats {
            books_issued: self.books,
            usage_rate: rate(vouchers.redeemed, vouchers.issued),
            vouchers,
            by_issuer: self
                .issuers
                .iter()
                .map(|(id, s)| IssuerUsage {
                    issuer_organisation_id: *id,
                    name: name(id),
                    issued: issued(s),
                    redeemed: state(s, "redeemed"),
                    outstanding: state(s, "outstanding"),
                    usage_rate: rate(state(s, "redeemed"), issued(s)),
                })
                .collect(),
            by_venue: self
                .venues
                .iter()
                .map(|(id, s)| VenueUsage {
                    venue_organisation_id: *id,
                    name: name(id),
                    redeemed: state(s, "redeemed"),
                })
                .collect(),
            by_theme: self
                .themes
                .iter()
                .map(|(code, s)| ThemeUsage {
                    theme: code.clone(),
                    label: themes::label(code).unwrap_or(code).to_owned(),
                    redeemed: state(s, "redeemed"),
                })
                .collect(),
            by_departement: self
                .departements
                .iter()
                .map(|(code, s)| DepartementUsage {
                    departement: code.clone(),
                    issued: issued(s),
                    redeemed: state(s, "redeemed"),
                    outstanding: state(s, "outstanding"),
                })
                .collect(),
            by_month: self
                .months
                .iter()
                .map(|(month, s)| MonthUsage {
                    month: month.clone(),
                    issued: state(s, "issued"),
                    redeemed: state(s, "redeemed"),
                })
                .collect(),
        }
    }
}

fn state(by_state: &ByState, name: &str) -> Figure {
    by_state.get(name).copied().unwrap_or_default()
}

/// Every voucher, whatever its state.
fn issued(by_state: &ByState) -> Figure {
    let mut all = Figure::default();
    for figure in by_state.values() {
        all.add(*figure);
    }
    all
}

fn rate(part: Figure, whole: Figure) -> f64 {
    if whole.count == 0 {
        0.0
    } else {
        // Four decimals are enough for a percentage with two.
        (part.count as f64 / whole.count as f64 * 10_000.0).round() / 10_000.0
    }
}
