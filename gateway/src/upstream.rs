//! Calls to the providers: one pooled HTTP client (keep-alive, HTTP/1.1 and HTTP/2 by ALPN,
//! `TCP_NODELAY`, rustls with the ring provider), the upstream's auth and headers, and the one
//! classification of a call that got no HTTP response (docs/design.md §6).

use std::time::Duration;

use bytes::Bytes;
use ratewise::Status;

use crate::config::{Api, Upstream};

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
    /// The connection failed before the request was written: nothing reached the provider
    /// (cancel the permit, try again).
    NotSent,
    /// No response head within the read timeout (`timeout`).
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

/// The shared HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    read_timeout: Duration,
}

/// The rustls crypto provider of this process: ring, as for the Redis store (aws-lc-rs would
/// need cmake to build). Installing twice is harmless.
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// A client with these timeouts (ms).
    pub fn new(connect_timeout_ms: u64, read_timeout_ms: u64) -> Result<Client, String> {
        crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .read_timeout(Duration::from_millis(read_timeout_ms))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .no_proxy()
            // A redirect would carry the provider's key (x-api-key, extra headers) to whatever
            // host it names, and turn a POST into a GET: the provider's answer is final.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        Ok(Client {
            http,
            read_timeout: Duration::from_millis(read_timeout_ms),
        })
    }

    /// Sends `body` to `upstream`'s `endpoint`; resolves at the response head.
    pub async fn send(
        &self,
        upstream: &Upstream,
        endpoint: Endpoint,
        body: Bytes,
    ) -> Result<reqwest::Response, NoResponse> {
        let url = match endpoint {
            Endpoint::Chat => &upstream.urls.0,
            Endpoint::Embeddings => &upstream.urls.1,
        };
        let mut req = self
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        let key = upstream.api_key.expose();
        if !key.is_empty() {
            req = match upstream.api {
                Api::OpenAi => req.bearer_auth(key),
                Api::Anthropic => req.header("x-api-key", key),
            };
        }
        for (name, value) in &upstream.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        match tokio::time::timeout(self.read_timeout, req.body(body).send()).await {
            Err(_) => Err(NoResponse::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

/// The class of a failed send (reqwest says which phase failed).
pub fn classify(e: &reqwest::Error) -> NoResponse {
    if e.is_timeout() {
        NoResponse::Timeout
    } else if e.is_connect() {
        NoResponse::NotSent
    } else {
        NoResponse::Lost
    }
}

/// The headers ratewise reads from a response, as pairs (a response has dozens of others).
pub fn signal_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
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
