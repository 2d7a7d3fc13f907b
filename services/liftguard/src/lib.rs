//! The `liftguard` binary's library: the commands, and the pieces the end-to-end tests
//! share with them (role wiring in [`serve`], the simulated gym driver in [`gym`]).
//!
//! Invariant: no domain logic here; this crate wires crates together and parses input.

pub mod admin;
pub mod admin_access;
pub mod analyze;
pub mod config;
pub mod demo;
pub mod gym;
pub mod recording;
pub mod replay;
pub mod report;
pub mod serve;
pub mod simulate;
