//! The HTTP surface: authentication, body limits and parsing, then [`proxy::run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, Request as HttpRequest, Response, StatusCode};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::{Api, VirtualKey, sha256_hex};
use crate::proxy::{self, Call};
use crate::reply::{Domain, Failure, json_response};
use crate::state::State;
use crate::upstream::Endpoint;

type Shared = Arc<State>;

/// The router of every endpoint.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/engine", get(admin_engine))
        .route("/admin/usage", get(admin_usage))
        .route("/admin/availability", get(admin_availability))
        .route("/admin/", get(admin_dashboard))
        .route(
            "/admin",
            get(|| async { axum::response::Redirect::permanent("/admin/") }),
        )
        .with_state(state)
}

async fn chat(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    handle(state, req, Api::OpenAi, Endpoint::Chat).await
}

async fn messages(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    handle(state, req, Api::Anthropic, Endpoint::Chat).await
}

async fn embeddings(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    handle(state, req, Api::OpenAi, Endpoint::Embeddings).await
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_string();
    }
    let n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    // The process id read once (`getpid` is a system call).
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    format!("rw-{:x}-{n:x}", PID.get_or_init(std::process::id))
}

async fn handle(state: Shared, req: HttpRequest<Body>, api: Api, endpoint: Endpoint) -> Response<Body> {
    let started = Instant::now();
    state.kick();
    let id = request_id(req.headers());
    let mut key_name = None;
    match prepare(&state, req, api, endpoint, started, id.clone(), &mut key_name).await {
        Ok(call) => proxy::run(state, call).await,
        Err(f) => {
            if let Some(mut line) = crate::ledger::Line::new(&state, started, &id, key_name.as_deref(), "-") {
                line.answered(f.status.as_u16(), f.domain.as_str());
            }
            state
                .metrics
                .requests
                .get_or_create(&crate::metrics::RequestLabels {
                    capability: "-".into(),
                    provider: "-".into(),
                    status: f.status.as_u16().to_string(),
                    domain: f.domain.as_str().into(),
                })
                .inc();
            let mut r = f.response(api);
            if let Ok(v) = id.parse() {
                r.headers_mut().insert("x-request-id", v);
            }
            r
        }
    }
}

/// The key a client sent (`Authorization: Bearer`, or Anthropic's `x-api-key`).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn authenticate(state: &State, headers: &HeaderMap) -> Result<Option<VirtualKey>, Failure> {
    let live = state.live.load();
    if live.gateway.keys.is_empty() {
        return Ok(None);
    }
    let unauthorized = |what: &str| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            what.to_string(),
            Domain::CallerAuth,
        )
        .code("invalid_api_key")
    };
    let Some(key) = presented_key(headers) else {
        return Err(unauthorized(
            "ratewise: an API key is required (Authorization: Bearer KEY or x-api-key)",
        ));
    };
    match live.gateway.keys.get(&sha256_hex(key)) {
        Some(k) => Ok(Some(k.clone())),
        None => Err(unauthorized("ratewise: unknown API key")),
    }
}

async fn prepare(
    state: &Shared,
    req: HttpRequest<Body>,
    api: Api,
    endpoint: Endpoint,
    started: Instant,
    request_id: String,
    key_name: &mut Option<String>,
) -> Result<Call, Failure> {
    let (parts, body) = req.into_parts();
    let key = authenticate(state, &parts.headers)?;
    // A refusal from here on is the key's: its ledger record names it.
    *key_name = key.as_ref().map(|k| k.name.clone());
    let live = state.live.load_full();
    let raw: Bytes = axum::body::to_bytes(body, live.gateway.max_body_bytes)
        .await
        .map_err(|_| {
            Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("ratewise: the body is over {} bytes", live.gateway.max_body_bytes),
                Domain::CallerInvalid,
            )
        })?;
    let body: Value = serde_json::from_slice(&raw)
        .map_err(|e| Failure::invalid(format!("ratewise: the body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(Failure::invalid("ratewise: the body must be a JSON object"));
    }
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return Err(Failure::invalid(
            "ratewise: `model` is required: a capability (or a provider) name",
        ));
    };
    // `model` names a capability, or a provider (pinned: the others of its capability excluded).
    let (capability, mut exclude) = if live.capabilities.contains_key(model) {
        (model.to_string(), Vec::new())
    } else if let Some((cap, providers)) = live
        .capability_order
        .iter()
        .filter_map(|c| live.capabilities.get(c).map(|p| (c, p)))
        .find(|(_, p)| p.iter().any(|n| n == model))
    {
        (cap.clone(), providers.iter().filter(|p| *p != model).cloned().collect())
    } else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("ratewise: the model '{model}' is no capability or provider of this gateway"),
            Domain::CallerInvalid,
        )
        .code("model_not_found"));
    };
    if let Some(k) = &key
        && let Some(allowed) = &k.capabilities
        && !allowed.iter().any(|c| c == &capability)
    {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!("ratewise: this key may not use '{capability}'"),
            Domain::CallerAuth,
        ));
    }
    if endpoint == Endpoint::Embeddings {
        // Only OpenAI-compatible upstreams embed.
        for p in live.capabilities.get(&capability).into_iter().flatten() {
            if live.upstreams.get(p).is_some_and(|u| u.api != Api::OpenAi) && !exclude.contains(p) {
                exclude.push(p.clone());
            }
        }
    }
    if live
        .capabilities
        .get(&capability)
        .is_some_and(|providers| providers.iter().all(|p| exclude.contains(p)))
    {
        return Err(Failure::invalid(format!(
            "ratewise: no provider of '{capability}' serves this endpoint (embeddings need an openai upstream)"
        )));
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let lane = match (header("x-ratewise-lane"), key.as_ref().and_then(|k| k.lanes.as_ref())) {
        (Some(asked), Some(allowed)) if !allowed.iter().any(|l| l == asked) => {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("ratewise: this key may not use the lane '{asked}'"),
                Domain::CallerAuth,
            ));
        }
        (Some(asked), _) if !live.lanes.iter().any(|l| l == asked) => {
            return Err(Failure::invalid(format!(
                "ratewise: unknown lane in x-ratewise-lane (lanes: {})",
                live.lanes.join(", ")
            )));
        }
        (Some(asked), _) => Some(asked.to_string()),
        (None, Some(allowed)) => allowed.first().cloned(),
        (None, None) => None,
    };
    let most = key
        .as_ref()
        .and_then(|k| k.timeout_ms)
        .unwrap_or(live.gateway.timeout_ms);
    let timeout_ms = match header("x-ratewise-timeout-ms") {
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| Failure::invalid("ratewise: x-ratewise-timeout-ms must be an integer of milliseconds"))?
            .min(most),
        None => most,
    };
    let directives = crate::cache::Directives::from_headers(&parts.headers).map_err(Failure::invalid)?;
    let settings = live.gateway.capabilities.get(&capability).cloned().unwrap_or_default();
    // The cache tenant: the key's team, else the key; without keys, one shared tenant.
    let tenant = key
        .as_ref()
        .map(|k| match &k.team {
            Some(team) => format!("team:{team}"),
            None => format!("key:{}", k.name),
        })
        .unwrap_or_default();
    let cache = crate::cache::plan(&settings.cache, directives, api, endpoint, &capability, &tenant, &body);
    let degraded = settings.degraded.enabled && key.as_ref().is_none_or(|k| k.degraded);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let client_wants_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let (input_tokens, output_tokens) = match endpoint {
        Endpoint::Embeddings => (ratewise::estimate_tokens(body.get("input").unwrap_or(&Value::Null)), 0),
        Endpoint::Chat => {
            let out = ["max_completion_tokens", "max_tokens"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_u64))
                .unwrap_or(live.gateway.default_max_tokens);
            (ratewise::estimate_tokens(&body), out)
        }
    };
    Ok(Call {
        client_api: api,
        endpoint,
        raw,
        body,
        stream,
        client_wants_usage,
        capability,
        exclude,
        lane,
        timeout_ms,
        input_tokens,
        output_tokens,
        request_id,
        key: key.map(|k| k.name),
        started,
        cache,
        settings,
        degraded,
    })
}

async fn models(Extract(state): Extract<Shared>, headers: HeaderMap) -> Response<Body> {
    let key = match authenticate(&state, &headers) {
        Ok(k) => k,
        Err(f) => return f.response(Api::OpenAi),
    };
    let live = state.live.load();
    let data: Vec<Value> = live
        .capability_order
        .iter()
        .filter(|c| {
            key.as_ref()
                .and_then(|k| k.capabilities.as_ref())
                .is_none_or(|allowed| allowed.contains(c))
        })
        .map(|c| {
            let providers: Vec<Value> = live
                .capabilities
                .get(c)
                .into_iter()
                .flatten()
                .map(|p| {
                    json!({
                        "name": p,
                        "model": live.models.get(p),
                        "api": live.upstreams.get(p).map(|u| u.api.as_str()),
                        "health": state.engine.health(p).ok(),
                        "circuit": state.engine.circuit(p).ok().map(|c| c.as_str()),
                    })
                })
                .collect();
            json!({"id": c, "object": "model", "created": 0, "owned_by": "ratewise", "providers": providers})
        })
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

async fn readyz(Extract(state): Extract<Shared>) -> Response<Body> {
    if state.draining.load(Ordering::Acquire) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "draining"}),
        );
    }
    json_response(StatusCode::OK, &json!({"ready": true}))
}

async fn metrics(Extract(state): Extract<Shared>) -> Response<Body> {
    let live = state.live.load();
    for p in live.models.keys() {
        let label = crate::metrics::provider(p);
        if let Ok(c) = state.engine.circuit(p) {
            let v = match c {
                ratewise::CircuitState::Closed => 0,
                ratewise::CircuitState::HalfOpen => 1,
                ratewise::CircuitState::Open => 2,
            };
            state.metrics.circuit.get_or_create(&label).set(v);
        }
        if let Ok(h) = state.engine.health(p) {
            state
                .metrics
                .health_ppm
                .get_or_create(&label)
                .set((h * 1e6).round() as i64);
        }
    }
    for (capability, bytes) in state.cache.sizes() {
        state
            .metrics
            .cache_bytes
            .get_or_create(&crate::metrics::CapabilityLabels { capability })
            .set(bytes as i64);
    }
    if let Some(b) = &state.books {
        let m = &state.metrics;
        for (counter, now) in [
            (&m.ledger_written, b.ledger.written()),
            (&m.ledger_dropped, b.ledger.dropped()),
            (&m.ledger_failed_writes, b.ledger.failed_writes()),
        ] {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
    }
    let mut r = Response::new(Body::from(state.metrics.encode()));
    if let Ok(v) = "application/openmetrics-text; version=1.0.0; charset=utf-8".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

/// The 401 to answer when the admin key is not presented (or none is configured).
fn not_admin(state: &State, headers: &HeaderMap) -> Option<Response<Body>> {
    let live = state.live.load();
    let allowed = match (&live.gateway.admin_key_sha256, presented_key(headers)) {
        (Some(hash), Some(k)) => &sha256_hex(k) == hash,
        (Some(hash), None) => basic_password(headers).is_some_and(|k| &sha256_hex(&k) == hash),
        _ => false,
    };
    if allowed {
        return None;
    }
    Some(
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "ratewise: the admin key is required",
            Domain::CallerAuth,
        )
        .response(Api::OpenAi),
    )
}

/// The password of `Authorization: Basic` (any user name): how a browser sends the admin key.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = headers.get("authorization")?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.1.to_string())
}

/// `GET /admin/`: the dashboard (admin key; a browser is asked for it by Basic auth, any user
/// name, the key as the password). `?window=24h` (or from/to) sets the window.
async fn admin_dashboard(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    if let Some(mut r) = not_admin(&state, req.headers()) {
        if let Ok(v) = "Basic realm=\"ratewise admin\", charset=\"UTF-8\"".parse() {
            r.headers_mut().insert("www-authenticate", v);
        }
        return r;
    }
    let q = query_pairs(req.uri());
    let (from_ms, to_ms) = match crate::reports::window(&q, std::time::Duration::from_secs(86_400)) {
        Ok(w) => w,
        Err(e) => return bad_query(e),
    };
    let window = q.iter().find(|(k, _)| k == "window").map_or_else(
        || {
            if q.iter().any(|(k, _)| k == "from") {
                "custom".into()
            } else {
                "24h".into()
            }
        },
        |(_, v)| v.clone(),
    );
    let page = match &state.books {
        None => Ok(None),
        Some(_) => {
            let st = state.clone();
            tokio::task::spawn_blocking(move || {
                st.books
                    .as_ref()
                    .map(|b| crate::dashboard::Page::read(b, from_ms, to_ms, window).map(|p| p.render()))
                    .transpose()
            })
            .await
            .unwrap_or(Ok(None))
        }
    };
    let html = match page {
        Ok(Some(h)) => h,
        Ok(None) => "<!doctype html><title>ratewise</title><p>The ledger is off (gateway.ledger: false): there is nothing to show.</p>\n".into(),
        Err(e) => {
            tracing::error!(error = %e, "the dashboard's ledger queries failed");
            format!("<!doctype html><title>ratewise</title><p>The ledger cannot be read: {}</p>\n", crate::dashboard::esc(&e.to_string()))
        }
    };
    let mut r = Response::new(Body::from(html));
    if let Ok(v) = "text/html; charset=utf-8".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn admin_engine(Extract(state): Extract<Shared>, headers: HeaderMap) -> Response<Body> {
    if let Some(r) = not_admin(&state, &headers) {
        return r;
    }
    let mut snapshot = state.blocking(|| state.engine.snapshot());
    if let (Some(b), Some(map)) = (&state.budgets, snapshot.as_object_mut()) {
        map.insert("key_budgets".into(), state.blocking(|| b.snapshot()));
    }
    json_response(StatusCode::OK, &snapshot)
}

fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn bad_query(message: String) -> Response<Body> {
    Failure::new(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        format!("ratewise: {message}"),
        Domain::CallerInvalid,
    )
    .response(Api::OpenAi)
}

/// Runs a ledger report on a blocking thread (it queries the database).
async fn report(
    state: Shared,
    f: impl FnOnce(&crate::ledger::Books) -> Result<Value, ratewise_ledger::LedgerError> + Send + 'static,
) -> Response<Body> {
    if state.books.is_none() {
        return Failure::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "ratewise: the ledger is off (gateway.ledger: false)",
            Domain::CallerInvalid,
        )
        .response(Api::OpenAi);
    }
    let done = tokio::task::spawn_blocking(move || state.books.as_ref().map(f)).await;
    match done {
        Ok(Some(Ok(v))) => json_response(StatusCode::OK, &v),
        Ok(Some(Err(e))) => {
            tracing::error!(error = %e, "a ledger report failed");
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                format!("ratewise: {e}"),
                Domain::Gateway,
            )
            .response(Api::OpenAi)
        }
        _ => Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "ratewise: the report failed",
            Domain::Gateway,
        )
        .response(Api::OpenAi),
    }
}

/// `GET /admin/usage?from=&to=&window=&group_by=key,capability,provider,model` (admin key).
async fn admin_usage(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    if let Some(r) = not_admin(&state, req.headers()) {
        return r;
    }
    let q = query_pairs(req.uri());
    let (from_ms, to_ms) = match crate::reports::window(&q, std::time::Duration::from_secs(86_400)) {
        Ok(w) => w,
        Err(e) => return bad_query(e),
    };
    let group_by = match crate::reports::group_by(&q) {
        Ok(g) => g,
        Err(e) => return bad_query(e),
    };
    let query = ratewise_ledger::UsageQuery {
        from_ms,
        to_ms,
        group_by,
    };
    report(state, move |b| {
        b.usage(&query).map(|rows| crate::reports::usage_json(&query, &rows))
    })
    .await
}

/// `GET /admin/availability?window=5m` (or from/to; admin key).
async fn admin_availability(Extract(state): Extract<Shared>, req: HttpRequest<Body>) -> Response<Body> {
    if let Some(r) = not_admin(&state, req.headers()) {
        return r;
    }
    let q = query_pairs(req.uri());
    let (from_ms, to_ms) = match crate::reports::window(&q, std::time::Duration::from_secs(300)) {
        Ok(w) => w,
        Err(e) => return bad_query(e),
    };
    report(state, move |b| {
        b.availability(from_ms, to_ms)
            .map(|rows| crate::reports::availability_json(from_ms, to_ms, &rows))
    })
    .await
}
