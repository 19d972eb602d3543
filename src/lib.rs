//! passnum: signed workshop vouchers for the French *pass numérique*.
//!
//! The module map and the flow of a redemption are in docs/architecture.md.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod geo;
pub mod http;
pub mod keys;
pub mod log;
pub mod logging;
pub mod mail;
pub mod render;
pub mod state;
pub mod voucher;
pub mod web;
