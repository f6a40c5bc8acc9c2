//! Calls to the providers: one pooled HTTP client (hyper-util; keep-alive, HTTP/1.1 and HTTP/2
//! by ALPN, `TCP_NODELAY`, rustls with the ring provider and the platform's roots), the
//! upstream's auth and headers, and the one classification of a call that got no HTTP
//! response (docs/design.md §6).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use ratewise::Status;

use crate::config::Upstream;

/// What the gateway asks an upstream for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI `POST /chat/completions`, Anthropic `POST /v1/messages`.
    Chat,
    /// OpenAI `POST /embeddings`.
    Embeddings,
}

/// Why a send got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoResponse {
    /// Nothing reached the provider: the connection failed before the request was written,
    /// or an HTTP/2 server refused the stream unprocessed (cancel the permit, try again).
    NotSent,
    /// No connection within the connect timeout, or no response head within the read
    /// timeout (`timeout`).
    Timeout,
    /// The connection was lost after sending (`server_error`: the estimates stay charged).
    Lost,
}

impl NoResponse {
    /// The outcome to settle with (`None`: cancel).
    pub fn status(self) -> Option<Status> {
        match self {
            NoResponse::NotSent => None,
            NoResponse::Timeout => Some(Status::Timeout),
            NoResponse::Lost => Some(Status::ServerError),
        }
    }
}

/// The shared HTTP client: hyper-util's pooled client over hyper-rustls (no redirects, no
/// retries of its own beyond a request that never left a stale pooled connection).
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    read_timeout: Duration,
}

type HttpClient = hyper_util::client::legacy::Client<
    ConnectWithin<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>>,
    http_body_util::Full<Bytes>,
>;

/// A connector whose whole connect (DNS, TCP and the TLS handshake) must end within `timeout`:
/// past it, an `io::ErrorKind::TimedOut` error (a transport timeout, [`classify`]).
#[derive(Clone)]
pub struct ConnectWithin<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<hyper::Uri> for ConnectWithin<C>
where
    C: tower_service::Service<hyper::Uri>,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(done) => done.map_err(Into::into),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within the connect timeout ({} ms)", timeout.as_millis()),
                )
                .into()),
            }
        })
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// The rustls crypto provider of this process: ring, as for the Redis store (aws-lc-rs would
/// need cmake to build). Installing twice is harmless.
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// A client with these timeouts (ms).
    pub fn new(connect_timeout_ms: u64, read_timeout_ms: u64) -> Result<Client, String> {
        use rustls_platform_verifier::ConfigVerifierExt;
        crypto();
        // The platform's roots (on Linux: the system store, or SSL_CERT_FILE / SSL_CERT_DIR).
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| format!("cannot build the upstream TLS configuration: {e}"))?;
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        // Per address (the connector splits it among a host's addresses, and tries the next
        // one when it runs out); `ConnectWithin` below bounds the whole connect, TLS included.
        tcp.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
        // A peer gone silently (a NAT or load balancer dropping an idle connection) is found
        // within ~30 s, idle or not (TCP_USER_TIMEOUT on Linux; keepalive probes elsewhere),
        // instead of a request on it waiting out the read timeout.
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        tcp.set_keepalive_interval(Some(Duration::from_secs(15)));
        tcp.set_keepalive_retries(Some(3));
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        tcp.set_tcp_user_timeout(Some(Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let connector = ConnectWithin {
            inner: https,
            timeout: Duration::from_millis(connect_timeout_ms),
        };
        let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Client {
            http,
            read_timeout: Duration::from_millis(read_timeout_ms),
        })
    }

    /// Sends `body` to `upstream`'s `endpoint`; resolves at the response head.
    pub async fn send(&self, upstream: &Upstream, endpoint: Endpoint, body: Bytes) -> Result<Response, NoResponse> {
        let uri = match endpoint {
            Endpoint::Chat => &upstream.urls.0,
            Endpoint::Embeddings => &upstream.urls.1,
        };
        let mut req = hyper::Request::new(http_body_util::Full::new(body));
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = uri.clone();
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        // The key's header and the extra headers, made (and marked sensitive) with the
        // configuration.
        for (name, value) in &upstream.sent_headers {
            h.append(name.clone(), value.clone());
        }
        match tokio::time::timeout(self.read_timeout, self.http.request(req)).await {
            Err(_) => Err(NoResponse::Timeout),
            Ok(Ok(resp)) => Ok(Response {
                inner: resp,
                read_timeout: self.read_timeout,
            }),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

/// An upstream's answer: its head, and its body read as it comes.
#[derive(Debug)]
pub struct Response {
    inner: hyper::Response<hyper::body::Incoming>,
    read_timeout: Duration,
}

impl Response {
    /// The status.
    pub fn status(&self) -> hyper::StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The body's bytes as they arrive; a read that waits longer than the read timeout ends it
    /// with a timeout. Dropping the stream drops the connection's request (closing it when the
    /// body was not read to its end).
    pub fn bytes_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
        let timeout = self.read_timeout;
        futures_util::stream::unfold(Some(self.inner.into_body()), move |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout(timeout, body.frame()).await {
                    Err(_) => return Some((Err(BodyError::timeout()), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(BodyError::cut(&e)), None)),
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                        // Trailers: nothing to relay.
                    }
                }
            }
        })
    }
}

/// Why an answer's body stopped before its end.
#[derive(Debug, Clone)]
pub struct BodyError {
    timeout: bool,
    message: String,
}

impl BodyError {
    fn timeout() -> BodyError {
        BodyError {
            timeout: true,
            message: "no data within the read timeout".into(),
        }
    }

    fn cut(e: &hyper::Error) -> BodyError {
        BodyError {
            timeout: e.is_timeout(),
            message: e.to_string(),
        }
    }

    /// The read timeout ended it.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The class of a failed send (docs/design.md §6): a transport timeout anywhere in the error's
/// causes (a connect past the connect timeout, TCP's own) is `Timeout`; no connection, a
/// request dropped before it was written, or an HTTP/2 stream the server refused unprocessed
/// (`REFUSED_STREAM`, or a graceful `GOAWAY`: RFC 9113 §8.7), is `NotSent`; anything else after
/// the request left is `Lost`.
pub fn classify(e: &hyper_util::client::legacy::Error) -> NoResponse {
    let (mut timed_out, mut unprocessed) = (false, false);
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let mut next = s.source();
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            // An io::Error's `source()` skips the error it wraps (TLS wraps its own): walk it.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
            }
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            timed_out |= h.is_timeout();
            // Dropped before it was ever written (a connection closing under a queued request).
            unprocessed |= h.is_canceled();
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            unprocessed |= h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)));
        }
        source = next;
    }
    if timed_out {
        NoResponse::Timeout
    } else if e.is_connect() || unprocessed {
        NoResponse::NotSent
    } else {
        NoResponse::Lost
    }
}

/// The headers ratewise reads from a response, as pairs (a response has dozens of others).
pub fn signal_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        // Exactly the headers the engine reads (its own predicate, not a copy of its list).
        if ratewise::is_signal_header(name.as_str())
            && let Ok(v) = value.to_str()
        {
            out.push((name.as_str().to_string(), v.to_string()));
        }
    }
    out
}
