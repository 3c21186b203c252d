//! The `backups` binary, run as a user would, against real local stores,
//! real Juju archives, GNU tar and openssl; cloud stores and MongoDB when
//! the test services run (`scripts/services start; . .services/env`).
//!
//! One test binary (like ripgrep's and cargo's), a module per area, one
//! harness in [`support`].
#![allow(clippy::unwrap_used)]

mod append_only;
mod cloud;
mod completions;
mod copy;
mod crash;
mod crypt;
mod diff;
mod disk;
mod edges;
mod forget;
mod ha;
mod hostile;
mod immutable;
mod interrupted;
mod json_style;
mod juju;
mod juju_profile;
mod lease;
mod lock_hooks;
mod mongo;
mod mongo_dumps;
mod pitr;
mod plan;
mod rebuild;
mod recovery;
mod refusals;
mod remote;
mod remote_security;
mod remote_services;
mod rewrite;
mod round_trip;
mod schedule;
mod schedule_notify;
mod schedule_status;
mod secrets;
mod server;
mod services;
mod sidecars;
mod sparse;
mod status_page;
mod store_paths;
mod support;
mod usability;
mod verify;
