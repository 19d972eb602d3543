//! The rules of the service, each applied in one database transaction.

pub mod accounts;
pub mod batch;
pub mod books;
pub mod devices;
pub mod idempotency;
pub mod organisations;
pub mod paris;
pub mod printing;
pub mod programs;
pub mod purge;
pub mod redemptions;
pub mod statements;
pub mod sync;
pub mod themes;
