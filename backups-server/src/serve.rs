//! Running the router alone: TLS (rustls, TLS 1.2 and 1.3, optional client
//! certificates), hyper's HTTP/1.1 with bounded headers and a header-read
//! timeout, and one log record per request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;

/// How long a client may take to send a request's headers (and to finish
/// the TLS handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a request's headers may take, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One request, as the log shows it: never the token, never the query.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The token's name (`-` without a valid token).
    pub token: String,
    /// The status answered.
    pub status: u16,
    /// The response body's length, when it is known up front.
    pub bytes: Option<u64>,
    /// From the request to the response's head.
    pub duration: Duration,
    /// Who connected.
    pub peer: Option<SocketAddr>,
}

impl std::fmt::Display for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.bytes.map_or("-".to_string(), |b| b.to_string());
        let peer = self.peer.map_or("-".to_string(), |p| p.to_string());
        write!(
            f,
            "{peer} {} {} token={} status={} bytes={bytes} duration={:.3}s",
            self.method,
            self.path,
            self.token,
            self.status,
            self.duration.as_secs_f64()
        )
    }
}

/// Where the log records go (the CLI: a line on stderr each).
pub type LogSink = Arc<dyn Fn(&RequestLog) + Send + Sync>;

/// `router` with a log record for every request sent to `sink`.
pub fn with_request_log(router: Router, sink: LogSink) -> Router {
    router.layer(middleware::from_fn_with_state(sink, log_request))
}

async fn log_request(State(sink): State<LogSink>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let response = next.run(request).await;
    let token = response
        .extensions()
        .get::<Caller>()
        .map_or("-".to_string(), |c| c.name.clone());
    sink(&RequestLog {
        method,
        path,
        token,
        status: response.status().as_u16(),
        bytes: response.body().size_hint().exact().or_else(|| {
            response
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        }),
        duration: started.elapsed(),
        peer,
    });
    response
}

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    /// The certificate, key or CA file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn tls_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(path, e))?;
    if certs.is_empty() {
        return Err(tls_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The server's TLS settings: its certificate chain and key (PEM), TLS 1.2
/// and 1.3 only, HTTP/1.1; with `client_ca`, a client certificate signed
/// by that CA is required as well as the token.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error(cert, e))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(ca)? {
                roots.add(c).map_err(|e| tls_error(ca, e))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| tls_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_error(key, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `router` on `listener` until `shutdown`: over TLS with `tls`,
/// else plain HTTP (the caller decides whether that is allowed: the CLI
/// only on loopback with --insecure-loopback). Each connection runs on its
/// own task; a client that stalls holds only its own connection.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of file descriptors and the like: wait and go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let app = router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(tcp, app).await,
                Some(a) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, a.accept(tcp)).await
                    {
                        connection(stream, app).await;
                    }
                }
            }
        });
    }
}

/// One HTTP/1.1 connection.
async fn connection<I>(io: I, app: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(100);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}
