//! Rendering of vouchers for print and screen.
//!
//! [`qr`] turns a voucher's text form (`PN1:…`, voucher format v1) into a QR
//! code at error-correction level Q with a 4-module quiet zone, encoded once
//! and rendered as SVG, PNG, or a module matrix for vector (PDF) output.

pub mod book_pdf;
pub mod facturx;
pub mod invoice_pdf;
pub mod qr;
pub mod statement_pdf;
pub mod typeset;

pub use qr::{
    DarkRun, Mode, QrCode, QrError, MAX_PIXELS_PER_MODULE, MIN_PIXELS_PER_MODULE,
    QUIET_ZONE_MODULES,
};
