//! The live statement: every redemption of a date range that is payable now
//! (neither cancelled nor reversed), closed or not, streamed from PostgreSQL
//! to the client as CSV or JSON. Rows are formatted as they arrive and sent
//! in chunks through a small bounded channel, so memory stays flat however
//! long the statement: a slow client slows the query, it does not fill memory.

use bytes::Bytes;
use chrono::NaiveDate;
use diesel::sql_types::{Date, Integer, Text};
use diesel_async::RunQueryDsl;
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::super::programs::ProgramRow;
use super::csv::{self, Line};
use crate::db::Connection;
use crate::http::problem::ApiError;

/// How the live statement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// The range asked for, inclusive, in the programme's time zone.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Chunks of about this size go to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks formatted ahead of a slow client, at most.
const AHEAD: usize = 4;

const QUERY: &str = "SELECT r.id AS redemption_id, 'redemption' AS kind, r.redeemed_at, r.venue_organisation_id,
        o.siret::text AS venue_siret, o.name AS venue_name, r.voucher_id, v.position, r.theme,
        r.held_on, r.face_value_cents AS amount_cents
   FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id JOIN organisations o ON o.id = r.venue_organisation_id
  WHERE r.program_id = $1 AND r.cancelled_at IS NULL AND r.reversed_at IS NULL
    AND r.redeemed_at >= ($2::date)::timestamp AT TIME ZONE $4
    AND r.redeemed_at < ($3::date + 1)::timestamp AT TIME ZONE $4
  ORDER BY r.redeemed_at, r.id";

/// Starts the query on `conn` and returns the body's chunks, or the error that
/// kept the query from starting (an error once bytes are sent ends the body).
pub async fn stream(
    mut conn: Connection,
    program: &ProgramRow,
    range: Range,
    format: Format,
) -> Result<mpsc::Receiver<Result<Bytes, std::io::Error>>, ApiError> {
    let (program_id, tz) = (program.id, program.time_zone.clone());
    let (chunks, receiver) = mpsc::channel(AHEAD);
    let (started, start) = oneshot::channel::<Result<(), ApiError>>();
    tokio::spawn(async move {
        let rows = diesel::sql_query(QUERY)
            .bind::<Integer, _>(program_id)
            .bind::<Date, _>(range.from)
            .bind::<Date, _>(range.to)
            .bind::<Text, _>(tz)
            .load_stream::<Line>(&mut conn)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                let _ = started.send(Err(e.into()));
                return;
            }
        };
        if started.send(Ok(())).is_err() {
            return;
        }
        let mut writer = Writer::new(format, program_id, range);
        let result: Result<(), diesel::result::Error> = async {
            futures_util::pin_mut!(rows);
            while let Some(line) = rows.try_next().await? {
                writer.push(&line);
                if writer.buffer.len() >= CHUNK && chunks.send(Ok(writer.take())).await.is_err() {
                    return Ok(()); // the client went away
                }
            }
            Ok(())
        }
        .await;
        let last = match result {
            Ok(()) => Ok(writer.finish()),
            Err(e) => {
                tracing::error!(error = %e, "the live statement stopped part way");
                Err(std::io::Error::other("the live statement stopped part way"))
            }
        };
        let _ = chunks.send(last).await;
    });
    match start.await {
        Ok(Ok(())) => Ok(receiver),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::internal("the live statement task ended early")),
    }
}

/// Formats lines into the body, with the totals a JSON reader gets at the end.
struct Writer {
    format: Format,
    buffer: String,
    count: u64,
    cents: i64,
}

#[derive(Serialize)]
struct Totals {
    total_count: u64,
    total_cents: i64,
}

impl Writer {
    fn new(format: Format, program_id: i32, range: Range) -> Self {
        let buffer = match format {
            Format::Csv => csv::start(),
            Format::Json => format!(
                "{{\"program_id\":{program_id},\"from\":\"{}\",\"to\":\"{}\",\"lines\":[",
                range.from, range.to
            ),
        };
        Writer {
            format,
            buffer,
            count: 0,
            cents: 0,
        }
    }

    fn push(&mut self, line: &Line) {
        match self.format {
            Format::Csv => csv::push_line(&mut self.buffer, None, line),
            Format::Json => {
                if self.count > 0 {
                    self.buffer.push(',');
                }
                // A Line always serialises: strings, numbers and dates only.
                if let Ok(json) = serde_json::to_string(line) {
                    self.buffer.push_str(&json);
                }
            }
        }
        self.count += 1;
        self.cents += line.amount_cents;
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::replace(
            &mut self.buffer,
            String::with_capacity(CHUNK + 1024),
        ))
    }

    fn finish(mut self) -> Bytes {
        if self.format == Format::Json {
            let totals = serde_json::to_string(&Totals {
                total_count: self.count,
                total_cents: self.cents,
            })
            .unwrap_or_default();
            // `{"total_count":…}` continues the open object after the lines.
            self.buffer.push_str("],");
            self.buffer.push_str(totals.trim_start_matches('{'));
        }
        self.take()
    }
}
