//! The gateway in-process (`ratewise_gateway::start` on port 0) against an upstream served by
//! the test itself, over real sockets: failover before the first byte, the settlement of a
//! stream's usage, a client that goes away, and a graceful shutdown. (The end-to-end suite with
//! the real SDKs is tests/gateway, in Python and Node.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::routing::post;
use ratewise::Dimension;
use ratewise_gateway::{Running, ServeConfig};
use serde_json::{Value, json};

#[derive(Default)]
struct Upstream {
    calls: AtomicUsize,
    overloaded: AtomicUsize,
}

/// An OpenAI-shaped upstream: model `busy` answers 529 `overloaded` (no work done), `slow`
/// waits 5 s, anything else answers (a stream of 3 chunks and a usage chunk when asked).
async fn upstream(state: Arc<Upstream>) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: String| {
            let state = state.clone();
            async move {
                state.calls.fetch_add(1, Ordering::SeqCst);
                let req: Value = serde_json::from_str(&body).unwrap();
                let model = req["model"].as_str().unwrap().to_string();
                if model == "busy" {
                    state.overloaded.fetch_add(1, Ordering::SeqCst);
                    return Response::builder()
                        .status(529)
                        .body(Body::from(r#"{"error":{"type":"overloaded_error","message":"busy"}}"#))
                        .unwrap();
                }
                if model == "slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let usage = json!({"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14});
                if req["stream"] == true {
                    let mut out = String::new();
                    for w in ["a", "b", "c"] {
                        let chunk = json!({"id": "x", "object": "chat.completion.chunk", "model": model,
                            "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]});
                        out.push_str(&format!("data: {chunk}\n\n"));
                    }
                    if req["stream_options"]["include_usage"] == true {
                        let chunk = json!({"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": usage});
                        out.push_str(&format!("data: {chunk}\n\n"));
                    }
                    out.push_str("data: [DONE]\n\n");
                    return Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from(out))
                        .unwrap();
                }
                let answer = json!({"id": "x", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "abc"}, "finish_reason": "stop"}],
                    "usage": usage});
                Response::builder()
                    .header("content-type", "application/json")
                    .header("x-ratelimit-remaining-requests", "99")
                    .body(Body::from(answer.to_string()))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

const DAY: &str = r#"{"dimension": "tokens", "limit": 1000000, "window": "day", "algorithm": "fixed_window"}"#;

/// A fresh SQLite ledger file for one test.
fn ledger_path(test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ratewise-gateway-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{test}.db"));
    let _ = std::fs::remove_file(&p);
    format!("sqlite:{}", p.display())
}

async fn gateway(base: &str, ledger: &str) -> Running {
    let text = format!(
        r#"{{"providers": [
              {{"name": "first", "model": "busy", "quotas": [{DAY}]}},
              {{"name": "second", "model": "good", "quotas": [{DAY}]}},
              {{"name": "sloth", "model": "slow", "quotas": [{DAY}]}}],
            "capabilities": [
              {{"name": "chat", "providers": [{{"provider": "first", "priority": 10}}, {{"provider": "second", "priority": 1}}]}},
              {{"name": "lazy", "providers": [{{"provider": "sloth"}}]}}],
            "gateway": {{"listen": "127.0.0.1:0", "shutdown_grace_ms": 2000,
              "ledger": {{"url": "{ledger}", "flush_ms": 10}},
              "admin_key_sha256": "69a5265506c94c77b787a7d7377b7685a0eff82e33920a71e7ee22cd6154953e", "upstreams": {{
              "first": {{"api": "openai", "base_url": "{base}"}},
              "second": {{"api": "openai", "base_url": "{base}"}},
              "sloth": {{"api": "openai", "base_url": "{base}"}}}}}}}}"#
    );
    ratewise_gateway::start(ServeConfig::from_json(&text).unwrap(), None)
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn used(gw: &Running, provider: &str) -> i64 {
    1_000_000 - gw.engine().remaining(provider, Dimension::Tokens).unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_529_fails_over_before_the_first_byte_and_the_usage_settles_exactly() {
    let up = Arc::new(Upstream::default());
    let base = upstream(up.clone()).await;
    let ledger = ledger_path("failover");
    let gw = gateway(&base, &ledger).await;
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let r = client()
        .post(&url)
        .body(r#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratewise-provider"], "second");
    assert_eq!(r.headers()["x-ratewise-attempts"], "2");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "abc");
    assert_eq!(up.overloaded.load(Ordering::SeqCst), 1);
    assert_eq!(used(&gw, "first"), 0); // overloaded: no work, refunded
    assert_eq!(used(&gw, "second"), 14); // the reported usage, not the estimate

    // A stream: the usage chunk the gateway asked for is hidden, and settles exactly.
    let r = client()
        .post(&url)
        .body(r#"{"model": "second", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("data: ").count(), 4, "{text}"); // 3 chunks and [DONE]
    assert!(!text.contains("\"usage\""), "{text}");
    assert_eq!(used(&gw, "second"), 28);

    // The dashboard: a browser is asked for the admin key (Basic auth), then sees the page.
    let admin = format!("http://{}/admin/", gw.addr);
    let r = client().get(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong = client()
        .get(&admin)
        .header("authorization", "Basic b3BzOm5vcGU=")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let mut html = String::new();
    for _ in 0..100 {
        let r = client()
            .get(&admin)
            .header("authorization", "Basic b3BzOmFkbWluLWtleQ==")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        html = r.text().await.unwrap();
        if html.contains("<b>2</b>requests") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(html.contains("<b>2</b>requests"), "{html}");
    assert!(html.contains("<td>second<td>100.00%"), "{html}");
    assert!(html.contains("<td>good<td>"), "spend per model: {html}");
    gw.shutdown().await;

    // The ledger: one record per request, the tokens exactly as settled; the availability
    // log: the 529, the move to the next provider, two successes.
    let cfg = ratewise_ledger::LedgerConfig::new(&ledger);
    let mut reader = ratewise_ledger::Reader::open(&cfg).unwrap();
    let q = |group_by| ratewise_ledger::UsageQuery {
        from_ms: 0,
        to_ms: i64::MAX,
        group_by,
    };
    use ratewise_ledger::GroupBy;
    let rows = reader.usage(&q(vec![GroupBy::Provider, GroupBy::Model])).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].group[0].as_str(), rows[0].group[1].as_str()),
        ("second", "good")
    );
    assert_eq!(rows[0].requests, 2);
    assert_eq!(rows[0].input_tokens + rows[0].output_tokens, 28);
    assert_eq!(rows[0].errors, 0);
    let avail = reader.availability(0, i64::MAX).unwrap();
    let first = avail.iter().find(|r| r.provider == "first").unwrap();
    assert_eq!(
        (first.outcomes, first.overloaded, first.fallbacks, first.successes),
        (1, 1, 1, 0)
    );
    let second = avail.iter().find(|r| r.provider == "second").unwrap();
    assert_eq!(
        (second.outcomes, second.successes, second.availability),
        (2, 2, Some(1.0))
    );
    assert!(second.latency_p50_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_settles_the_call_interrupted_at_once() {
    let up = Arc::new(Upstream::default());
    let base = upstream(up.clone()).await;
    let ledger = ledger_path("goes-away");
    let gw = gateway(&base, &ledger).await;
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let call = client()
        .post(&url)
        .timeout(Duration::from_millis(300))
        .body(r#"{"model": "lazy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7}"#)
        .send();
    assert!(call.await.unwrap_err().is_timeout());
    // The permit is settled long before the upstream's 5 s: interrupted keeps the estimate.
    let mut settled = false;
    for _ in 0..100 {
        let snap = gw.engine().snapshot();
        if snap["providers"]["sloth"]["in_flight"] == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(settled, "the permit is still in flight");
    assert!(used(&gw, "sloth") > 7, "the estimate stays charged");
    assert_eq!(
        gw.engine().health("sloth").unwrap(),
        1.0,
        "interrupted tells health nothing"
    );
    gw.shutdown().await;
    // Its ledger record says the client left (499, caller_closed), at the provider it was at.
    let rows = ratewise_ledger::Reader::open(&ratewise_ledger::LedgerConfig::new(&ledger))
        .unwrap()
        .usage(&ratewise_ledger::UsageQuery {
            from_ms: 0,
            to_ms: i64::MAX,
            group_by: vec![ratewise_ledger::GroupBy::Capability],
        })
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].group[0].as_str(), rows[0].requests, rows[0].errors),
        ("lazy", 1, 1)
    );
}

/// A webhook receiver: answers 503 to the first delivery (the sender retries), 200 after, and
/// keeps every body.
async fn webhook(got: Arc<parking_lot::Mutex<Vec<Value>>>) -> String {
    let seen = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let got = got.clone();
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                got.lock().push(serde_json::from_str(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook?token=hook-secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_opening_and_low_availability_post_alerts_once_each() {
    let up = Arc::new(Upstream::default());
    let base = upstream(up.clone()).await;
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let hook = webhook(got.clone()).await;
    let ledger = ledger_path("alerts");
    let text = format!(
        r#"{{"providers": [{{"name": "down", "model": "busy", "quotas": [{DAY}]}}],
            "capabilities": [{{"name": "chat", "providers": [{{"provider": "down"}}]}}],
            "health": {{"cooldown_after": 2, "overload_hold_ms": 0}},
            "gateway": {{"listen": "127.0.0.1:0", "timeout_ms": 200, "max_attempts": 1,
              "ledger": {{"url": "{ledger}", "flush_ms": 10}},
              "alerts": {{"webhook_url": "{hook}", "min_interval_s": 300,
                "availability": {{"below": 0.5, "window_s": 60, "min_outcomes": 2, "check_every_s": 1}}}},
              "upstreams": {{"down": {{"api": "openai", "base_url": "{base}"}}}}}}}}"#
    );
    let gw = ratewise_gateway::start(ServeConfig::from_json(&text).unwrap(), None)
        .await
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    for _ in 0..3 {
        let r = client()
            .post(&url)
            .body(r#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}"#)
            .send()
            .await
            .unwrap();
        assert!(!r.status().is_success(), "{}", r.status());
    }
    // The circuit opened on the second 529 (the third call was refused at once, never sent).
    assert_eq!(up.overloaded.load(Ordering::SeqCst), 2);
    let kinds = || {
        got.lock()
            .iter()
            .map(|v| v["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if kinds().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two more checks of availability pass: still one alert of each kind.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut k = kinds();
    k.sort();
    assert_eq!(k, ["availability_low", "circuit_opened"], "{:?}", got.lock());
    let alerts = got.lock().clone();
    let opened = alerts.iter().find(|v| v["kind"] == "circuit_opened").unwrap();
    assert_eq!(
        (opened["subject"].as_str(), opened["details"]["last_outcome"].as_str()),
        (Some("down"), Some("overloaded"))
    );
    let low = alerts.iter().find(|v| v["kind"] == "availability_low").unwrap();
    assert_eq!(
        (
            low["details"]["availability"].as_f64(),
            low["details"]["outcomes"].as_u64()
        ),
        (Some(0.0), Some(2))
    );
    let metrics = client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"ratewise_gateway_alerts_total{kind="circuit_opened",result="sent"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kind="availability_low",result="suppressed""#),
        "{metrics}"
    );
    assert!(!metrics.contains("hook-secret"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_budget_share_posts_an_alert() {
    let up = Arc::new(Upstream::default());
    let base = upstream(up.clone()).await;
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let hook = webhook(got.clone()).await;
    let text = format!(
        r#"{{"providers": [{{"name": "ok", "model": "good", "quotas": [{DAY}]}}],
            "capabilities": [{{"name": "chat", "providers": [{{"provider": "ok"}}]}}],
            "gateway": {{"listen": "127.0.0.1:0", "ledger": false,
              "keys": [{{"name": "team-a", "sha256": "e5c4224ebc9128d62514e9289e8e299c92872e2590deb3afac3ca0b84afb26a8",
                "quotas": [{{"dimension": "requests", "limit": 4, "window": "day", "algorithm": "fixed_window"}}]}}],
              "alerts": {{"webhook_url": "{hook}", "budget_share": 0.5}},
              "upstreams": {{"ok": {{"api": "openai", "base_url": "{base}"}}}}}}}}"#
    );
    let gw = ratewise_gateway::start(ServeConfig::from_json(&text).unwrap(), None)
        .await
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let call = || {
        client()
            .post(&url)
            .bearer_auth("team-key")
            .body(r#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}"#)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    // 1 of 4: under the share; the watcher (every 5 s) stays quiet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    // 2 of 4 = 50%: the next check fires (the receiver refuses the first delivery: retried).
    for _ in 0..160 {
        if !got.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alerts = got.lock().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["kind"].as_str(), alerts[0]["subject"].as_str()),
        (Some("budget_share"), Some("team-a"))
    );
    assert_eq!(
        (
            alerts[0]["details"]["dimension"].as_str(),
            alerts[0]["details"]["used_share"].as_f64()
        ),
        (Some("requests"), Some(0.5))
    );
    gw.shutdown().await;
}
