//! The integration tests, one module per area, linked once: every module talks to real
//! servers (HTTP, databases where configured, processes, Backstage from npm) through
//! `backstage::testing` or its own clients.
//!
//! What linking alone changes (linked `#[service_factory]`s, orphan modules, a service cycle)
//! lives in the `linked` and `cycle` test binaries: registrations are process-wide.

mod support;

mod actions;
mod audit;
mod auth;
mod clients;
mod config;
mod conformance;
mod database;
mod harness;
mod hygiene;
mod interop;
mod modules;
mod openapi;
mod permissions;
mod platform;
mod process;
mod reliability;
mod services;
mod startup;
mod url_reader;
mod wire;
