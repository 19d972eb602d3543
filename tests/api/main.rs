//! Integration tests: the real server on port 0, over HTTP, against a real
//! PostgreSQL cluster that this test run starts and stops.
//!
//! One binary for every integration test keeps link time down; each test gets
//! a fresh database cloned from a migrated template, so tests run in parallel.

mod abuse;
mod accounts;
mod authorisation;
mod books;
mod carnet;
mod conservation;
mod database;
mod directory;
mod foundation;
mod helpers;
mod histories;
mod invoices;
mod keys;
mod log;
mod offline;
mod printing;
mod races;
mod redemptions;
mod shutdown;
mod statements;
mod venue_pages;
mod web;
