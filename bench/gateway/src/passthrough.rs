//! A no-op HTTP/1.1 reverse proxy (`rw-passthrough`): every request forwarded unchanged to
//! one upstream over pooled keep-alive connections, the response streamed back. It does the
//! least any gateway must do — accept, parse, forward, relay — so its added latency is the
//! floor of what a proxy hop costs on the machine, against which a gateway's is read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::loadgen::Target;

type Sender = SendRequest<Incoming>;

/// The upstream and its idle connections.
pub struct Upstream {
    target: Target,
    idle: Mutex<Vec<Sender>>,
}

impl Upstream {
    /// An upstream at `target` (its path is ignored: requests keep theirs).
    pub fn new(target: Target) -> Upstream {
        Upstream {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, s: Sender) {
        if !s.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = client::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// The relayed response body; its upstream connection goes back to the pool when the body
/// ends (not before: HTTP/1.1 cannot start the next request until this response is read).
pub struct Relay {
    inner: Option<Incoming>,
    sender: Option<Sender>,
    upstream: Arc<Upstream>,
    error: Option<Bytes>,
}

impl Relay {
    fn give_back(&mut self) {
        if let Some(s) = self.sender.take() {
            self.upstream.put(s);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Ok(Frame::data(e))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.inner = None;
            this.give_back();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.error.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.error, &self.inner) {
            (Some(e), _) => SizeHint::with_exact(e.len() as u64),
            (None, Some(b)) => b.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

async fn forward(up: Arc<Upstream>, req: Request<Incoming>) -> Result<Response<Relay>, std::convert::Infallible> {
    let failed = |up: Arc<Upstream>, msg: String| {
        let mut r = Response::new(Relay {
            inner: None,
            sender: None,
            upstream: up,
            error: Some(Bytes::from(format!("{{\"error\": \"rw-passthrough: {msg}\"}}"))),
        });
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(r)
    };
    let mut sender = match up.take() {
        Some(s) => s,
        None => match up.connect().await {
            Ok(s) => s,
            Err(e) => return failed(up, e),
        },
    };
    if sender.ready().await.is_err() {
        sender = match up.connect().await {
            Ok(s) => s,
            Err(e) => return failed(up, e),
        };
    }
    match sender.send_request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Ok(Response::from_parts(
                parts,
                Relay {
                    inner: Some(body),
                    sender: Some(sender),
                    upstream: up,
                    error: None,
                },
            ))
        }
        Err(e) => failed(up, format!("upstream: {e}")),
    }
}

/// Accepts connections forever, forwarding every request to `up`.
pub async fn serve(listener: TcpListener, up: Arc<Upstream>) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        // As everywhere here: small writes must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let up = up.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| forward(up.clone(), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
