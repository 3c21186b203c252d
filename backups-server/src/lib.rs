//! backups-server: the backups facade. The operations of backups-core
//! (list, show, download, upload, remove, forget, verify, labels, notes,
//! create) over HTTPS, for holders of bearer tokens with a role each
//! (`read`, `append`, `operator`), so the machine that is backed up never
//! holds the store's credentials nor a token that may delete.
//!
//! - [`router`]: the routes, for a controller to mount in its own API
//!   server; [`ServerState`] holds the store, the [`Tokens`] and limits.
//! - [`serve`]: the router alone over TLS ([`tls_config`]) with bounded
//!   headers and a log record per request ([`with_request_log`]);
//!   `backups serve` is this.
//! - [`RemoteBackups`]: the client, the [`backups_core::Backups`]
//!   contract over a server; `backups --remote URL` is this.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use backups_core::{Storage, StoreBackups};
//! use backups_server::{ServerState, Tokens, router};
//!
//! let backups = StoreBackups::new(Storage::from_url("/var/backups", Vec::<(String, String)>::new())?);
//! let tokens = Tokens::load("/etc/backups/tokens".as_ref())?;
//! let app = router(Arc::new(ServerState::new(backups, tokens)));
//! // Mount `app` in the controller's axum server, or:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let tls = backups_server::tls_config("cert.pem".as_ref(), "key.pem".as_ref(), None)?;
//! backups_server::serve(app, listener, Some(Arc::new(tls)), Default::default()).await?;
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod error;
mod page;
mod restore;
mod routes;
mod serve;
mod shapes;
mod state;
mod status;
mod transfer;

pub use crate::{
    auth::{Caller, Role, TOKEN_COOKIE, Tokens, TokensError, generate_token, token_line},
    client::RemoteBackups,
    error::{ApiError, ErrorKind, kind_of},
    routes::router,
    serve::{LogSink, RequestLog, TlsError, serve, tls_config, with_request_log},
    state::{BackupMaker, CreateOptions, DEFAULT_MAX_UPLOAD, PLAN_TTL, Restorer, ServerState},
    transfer::{SHA1_HEADER, STORED_SHA256_HEADER},
};
