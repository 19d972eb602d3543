//! passnum: signed workshop vouchers for the French *pass numérique*.

pub mod geo;
pub mod render;
pub mod voucher;
