//! Group commit: online redemptions that arrive together are written in one
//! statement, so in one transaction with one WAL flush, each with its own
//! outcome.
//!
//! There is no timer. At most [`GroupCommit::start`]'s `in_flight` groups run
//! at once; the redemptions that arrive while they run wait in the queue and
//! form the next group. Alone on a quiet server, a redemption goes at once,
//! by itself; under load, groups grow by themselves with the load.
//!
//! A group is one call of `redemptions::judge_many`, its members in voucher
//! order (so that two groups take positions in the same order). If the
//! statement fails, each member is judged again on its own: the failure of
//! one (a rival's Idempotency-Key, say) never fails the others.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::redemptions::{self, Judgement, RedeemArgs};
use crate::db::Pool;
use crate::http::problem::{ApiError, ProblemType};

/// The most redemptions written by one statement.
const MAX_GROUP: usize = 64;

type Reply = oneshot::Sender<Result<diesel::QueryResult<Judgement>, ApiError>>;

/// The queue of online redemptions waiting to be written.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<(RedeemArgs, Reply)>,
}

impl GroupCommit {
    /// Starts the writer on the current runtime; `in_flight` groups at most
    /// run at once (each on a pooled connection).
    pub fn start(pool: Pool, in_flight: usize) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(pool, waiting, in_flight.max(1)));
        GroupCommit { queue }
    }

    /// Judges one online redemption as a member of the next group.
    pub(super) async fn judge(
        &self,
        args: RedeemArgs,
    ) -> Result<diesel::QueryResult<Judgement>, ApiError> {
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::new(ProblemType::Unavailable, "The server is stopping.");
        self.queue.send((args, reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_groups(
    pool: Pool,
    mut waiting: mpsc::UnboundedReceiver<(RedeemArgs, Reply)>,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            write(&pool, group).await;
            drop(slot);
        });
    }
}

async fn write(pool: &Pool, mut group: Vec<(RedeemArgs, Reply)>) {
    group.sort_by_key(|(args, _)| args.voucher_id());
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => {
            let why = format!("The database is unavailable: {e}.");
            for (_, reply) in group {
                let _ = reply.send(Err(ApiError::new(ProblemType::Unavailable, why.clone())));
            }
            return;
        }
    };
    if group.len() > 1 {
        let all: Vec<RedeemArgs> = group.iter().map(|(args, _)| args.clone()).collect();
        if let Ok(judged) = redemptions::judge_many(&mut conn, &all).await {
            if judged.len() == group.len() {
                for ((_, reply), j) in group.into_iter().zip(judged) {
                    let _ = reply.send(Ok(Ok(j)));
                }
                return;
            }
        }
        tracing::debug!(
            members = group.len(),
            "a group failed; its members go one by one"
        );
    }
    for (args, reply) in group {
        let _ = reply.send(Ok(redemptions::judge(&mut conn, &args).await));
    }
}
