//! `ratewise serve` to an HTTPS upstream, as a real process: TLS verified against the platform's
//! roots (here `SSL_CERT_FILE` naming the test's own certificate), HTTP/2 chosen by ALPN, and an
//! untrusted certificate refused before anything is sent (502, nothing reaches the upstream).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    http2: AtomicUsize,
    handshakes_failed: AtomicUsize,
}

/// A TLS acceptor with `cert`, offering `alpn`, and a listener on a free loopback port.
async fn tls_listener(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    alpn: &[&[u8]],
) -> (tokio_rustls::TlsAcceptor, tokio::net::TcpListener, u16) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), listener, port)
}

/// An OpenAI-shaped upstream over TLS with `cert` (ALPN `h2` and `http/1.1`).
async fn tls_upstream(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> (u16, Arc<Seen>) {
    let (acceptor, listener, port) = tls_listener(cert, &[b"h2", b"http/1.1"]).await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, seen) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    seen.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        seen.requests.fetch_add(1, Ordering::SeqCst);
                        if req.version() == hyper::Version::HTTP_2 {
                            seen.http2.fetch_add(1, Ordering::SeqCst);
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let asked: Value = serde_json::from_slice(&body).unwrap();
                        let answer = json!({
                            "id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": asked["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
                        });
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen)
}

/// A running `ratewise serve` (killed when dropped).
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ratewise serve` with one HTTPS upstream on `upstream_port`, trusting `cert_file` only;
/// `settings`: more of the `gateway` object (`max_attempts` 1 unless given).
fn serve(dir: &Path, name: &str, upstream_port: u16, cert_file: &Path, settings: Value) -> Gateway {
    let mut gateway = json!({"listen": "127.0.0.1:0", "ledger": false, "max_attempts": 1,
        "upstreams": {"p": {"api": "openai", "base_url": format!("https://127.0.0.1:{upstream_port}/v1")}}});
    for (k, v) in settings.as_object().unwrap() {
        gateway[k] = v.clone();
    }
    let config = json!({
        "providers": [{"name": "p", "model": "gpt-tls", "quotas": [
            {"dimension": "requests", "limit": 1000, "window": "minute"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
        "gateway": gateway
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ratewise"))
        .arg("serve")
        .arg(&path)
        // The platform verifier reads the roots from here on Linux (rustls-native-certs).
        .env("SSL_CERT_FILE", cert_file)
        .env_remove("SSL_CERT_DIR")
        .env("RATEWISE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let first: Value = serde_json::from_str(&line).expect("the first line is the listening address");
    let addr = first["listening"].as_str().unwrap().to_string();
    Gateway { child, addr }
}

/// The answer's status, body and `x-ratewise-attempts`.
async fn chat_attempts(gw: &Gateway) -> (u16, Value, String) {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let attempts = r
        .headers()
        .get("x-ratewise-attempts")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
        attempts,
    )
}

/// The gateway's count of upstream attempts that settled as `outcome`.
async fn attempts_settled(gw: &Gateway, outcome: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", gw.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.contains("attempts_total") && l.contains(&label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

async fn chat(gw: &Gateway) -> (u16, Value) {
    let (status, body, _) = chat_attempts(gw).await;
    (status, body)
}

/// A fresh directory for one test (as cli.rs's `scratch`: under cargo's per-target tmp dir).
fn work_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-tls").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_verified_against_the_platform_roots_and_speaks_http2() {
    let dir = work_dir("trusted");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let (port, seen) = tls_upstream(&cert).await;
    let gw = serve(&dir, "trusted", port, &ca, json!({}));
    for _ in 0..3 {
        let (status, body) = chat(&gw).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "over tls");
        // The deployment's model went upstream (the client asked for the capability `chat`);
        // the answer is forwarded as the upstream wrote it.
        assert_eq!(body["model"], "gpt-tls");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
    assert_eq!(seen.http2.load(Ordering::SeqCst), 3, "ALPN chose HTTP/2");
    assert_eq!(seen.handshakes_failed.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_before_anything_is_sent() {
    let dir = work_dir("untrusted");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    // The gateway trusts another certificate only.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = dir.join("other.pem");
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let (port, seen) = tls_upstream(&cert).await;
    let gw = serve(&dir, "untrusted", port, &ca, json!({}));
    let (status, body) = chat(&gw).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not connect to the provider"), "{message}");
    // The handshake failed (the upstream may log it a moment after the gateway answered).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.handshakes_failed.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.handshakes_failed.load(Ordering::SeqCst) >= 1);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_ends_is_bounded_by_the_connect_timeout() {
    let dir = work_dir("stalled");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // Accepts TCP, then says nothing: the TLS handshake never completes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let gw = serve(
        &dir,
        "stalled",
        port,
        &ca,
        json!({"connect_timeout_ms": 300, "read_timeout_ms": 60_000}),
    );
    let started = std::time::Instant::now();
    let (status, body) = chat(&gw).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{body}"
    );
    // The connect timeout (DNS, TCP and TLS), not the 60 s read timeout.
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert_eq!(attempts_settled(&gw, "timeout").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_refused_unprocessed_is_cancelled_and_tried_again() {
    let dir = work_dir("refused");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let (acceptor, listener, port) = tls_listener(&cert, &[b"h2"]).await;
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    // A bare HTTP/2 server: the first stream is reset with REFUSED_STREAM (RFC 9113 §8.7: not
    // processed), the next ones are answered.
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                let mut conn = h2::server::handshake(tls).await.unwrap();
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let answer = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-tls",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "second"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}});
                    let head = hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(head, false).unwrap();
                    send.send_data(Bytes::from(answer.to_string()), true).unwrap();
                }
            });
        }
    });
    let gw = serve(&dir, "refused", port, &ca, json!({"max_attempts": 2}));
    let (status, body, attempts) = chat_attempts(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "second");
    assert_eq!(attempts, "2");
    assert_eq!(streams.load(Ordering::SeqCst), 2);
    // Nothing reached the provider the first time: refunded (cancelled), not a server error.
    assert_eq!(attempts_settled(&gw, "cancelled").await, 1);
    assert_eq!(attempts_settled(&gw, "server_error").await, 0);
}
