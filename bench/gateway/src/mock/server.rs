//! Sockets: accept, `TCP_NODELAY`, then HTTP/1.1 keep-alive or h2c (HTTP/2 with prior
//! knowledge), told apart by the client's first bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use super::api::Mock;

/// The HTTP/2 connection preface a client with prior knowledge sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accepts connections on `listener` forever, serving `mock` on each.
pub async fn serve(listener: TcpListener, mock: Arc<Mock>) -> std::io::Result<()> {
    loop {
        let (tcp, _peer): (TcpStream, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors and the like: transient under load; back off briefly
            // rather than spin or die.
            Err(e) if !is_fatal(&e) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        // Without it, a small response written after the head waits for the client's
        // delayed ACK (~40 ms on Linux): Nagle's algorithm on a keep-alive connection.
        let _ = tcp.set_nodelay(true);
        let mock = mock.clone();
        tokio::spawn(async move {
            let h2 = is_h2(&tcp).await;
            let io = TokioIo::new(tcp);
            let svc = service_fn(move |req| mock.clone().handle(req));
            // Errors here are a client going away mid-request: nothing to report.
            if h2 {
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
            } else {
                let _ = http1::Builder::new().keep_alive(true).serve_connection(io, svc).await;
            }
        });
    }
}

fn is_fatal(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    !matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut)
        && e.raw_os_error() != Some(24) // EMFILE
        && e.raw_os_error() != Some(23) // ENFILE
}

/// Whether the client opened with the HTTP/2 preface. An HTTP/1 request differs from it at the
/// first byte (`P` of `POST` then `O`, not `R`), so this rarely waits for more than one read.
async fn is_h2(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 24];
    for _ in 0..200 {
        let n = match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // A prefix of the preface so far: peek would return the same bytes at once, so wait
        // a little for the rest instead of spinning.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}
