//! Raw SQL that PostgreSQL prepares once per connection.
//!
//! `diesel::sql_query` never keeps its statement prepared (its text could
//! change from call to call), so each call costs a round trip to parse and
//! describe it before the one that runs it. The statements of the hot paths
//! have a constant text: [`Prepared`] tells diesel so, and diesel's statement
//! cache keeps them prepared on each pooled connection.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::QueryResult;

/// One bound value, of SQL type `ST`.
trait Bind: Send {
    fn walk<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Value<ST, U>(U, PhantomData<fn() -> ST>);

impl<ST, U> Bind for Value<ST, U>
where
    Pg: HasSqlType<ST>,
    U: ToSql<ST, Pg> + Send,
    ST: 'static,
{
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, U>(&self.0)
    }
}

/// A statement whose text is the constant `sql`, named by `Id` (a type of
/// its own per statement) in diesel's cache, with its bind values. `$n` in
/// the text stands for the n-th value bound, as often as it appears. Loaded
/// like `sql_query`, into a `QueryableByName` row.
pub struct Prepared<Id: 'static> {
    sql: &'static str,
    binds: Vec<Box<dyn Bind>>,
    id: PhantomData<fn() -> Id>,
}

impl<Id: 'static> Prepared<Id> {
    pub fn new(sql: &'static str) -> Self {
        Prepared {
            sql,
            binds: Vec::new(),
            id: PhantomData,
        }
    }

    /// Binds the next `$n`.
    pub fn bind<ST, U>(mut self, value: U) -> Self
    where
        Pg: HasSqlType<ST>,
        U: ToSql<ST, Pg> + Send + 'static,
        ST: 'static,
    {
        self.binds
            .push(Box::new(Value::<ST, U>(value, PhantomData)));
        self
    }
}

impl<Id: 'static> QueryId for Prepared<Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Id: 'static> Query for Prepared<Id> {
    type SqlType = Untyped;
}

impl<Id: 'static> QueryFragment<Pg> for Prepared<Id> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // diesel writes each placeholder itself, numbering them in order: the
        // text goes in pieces, a bound value where each `$n` stood.
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let n: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                diesel::result::Error::QueryBuilderError("a `$` without a number".into())
            })?;
            let bind = n
                .checked_sub(1)
                .and_then(|i| self.binds.get(i))
                .ok_or_else(|| {
                    diesel::result::Error::QueryBuilderError(
                        format!("nothing bound for ${n}").into(),
                    )
                })?;
            bind.walk(out.reborrow())?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}
