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

/// An OpenAI-shaped upstream over TLS with `cert` (ALPN `h2` and `http/1.1`).
async fn tls_upstream(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> (u16, Arc<Seen>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = vec![cert.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
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

fn serve(dir: &Path, name: &str, upstream_port: u16, cert_file: &Path) -> Gateway {
    let config = json!({
        "providers": [{"name": "p", "model": "gpt-tls", "quotas": [
            {"dimension": "requests", "limit": 1000, "window": "minute"}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "p"}]}],
        "gateway": {"listen": "127.0.0.1:0", "ledger": false, "max_attempts": 1,
            "upstreams": {"p": {"api": "openai", "base_url": format!("https://127.0.0.1:{upstream_port}/v1")}}}
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

async fn chat(gw: &Gateway) -> (u16, Value) {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap())
}

fn work_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ratewise-serve-tls-{test}-{}", std::process::id()));
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
    let gw = serve(&dir, "trusted", port, &ca);
    for _ in 0..3 {
        let (status, body) = chat(&gw).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "over tls");
        // The deployment's model went upstream, the client's name came back.
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
    let gw = serve(&dir, "untrusted", port, &ca);
    let (status, body) = chat(&gw).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not connect to the provider"), "{message}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(seen.handshakes_failed.load(Ordering::SeqCst) >= 1);
}
