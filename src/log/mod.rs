//! The transparency log: every event that moves money (`redeemed`,
//! `cancelled`, `reversed`, `conflict_paid`, `statement_closed`) as one
//! entry of an append-only Merkle tree, published as C2SP tlog-tiles with a
//! signed tlog-checkpoint, so that anyone can check that nothing was removed
//! or changed after the fact (docs/transparency-log.md).
//!
//! Triggers write each event's entry (its bytes fixed then) in the
//! transaction that makes it; the sequencer (one at a time across instances)
//! gives the committed entries their index in batches, stores the tiles and
//! signs a checkpoint, all in one transaction (migration
//! `…400000_transparency_log`).
//!
//! `entry` the entries' canonical JSON, `tree` tiles and their C2SP paths,
//! `note` signed checkpoints, `sequencer`, `store` the reads `/log/…` serves,
//! `verify` the checks made from the public files alone (`passnum log
//! verify|prove`), `audit` the log against the database's rows.

pub mod audit;
pub mod entry;
pub mod note;
pub mod sequencer;
pub mod store;
pub mod tree;
pub mod verify;

/// The log's origin (and its key's name): `PASSNUM_LOG_ORIGIN`, else the
/// host of `PASSNUM_PUBLIC_URL` followed by `/log`.
pub fn default_origin(public_url: &str) -> String {
    let host = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    format!("{host}/log")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_origin_is_the_public_host() {
        assert_eq!(
            super::default_origin("https://pass.example.fr"),
            "pass.example.fr/log"
        );
        assert_eq!(
            super::default_origin("http://127.0.0.1:8080/app"),
            "127.0.0.1:8080/log"
        );
    }
}
