//! The rules of the service, each applied in one database transaction.

pub mod accounts;
pub mod batch;
pub mod books;
pub mod devices;
pub mod idempotency;
pub mod organisations;
pub mod paris;
pub mod programs;
pub mod redemptions;
pub mod sync;
pub mod themes;
