//! Request handling: routing, validation, token counting, and the answers in each API's real
//! shapes (JSON and SSE), errors included.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::body::{MockBody, SseBody};
use super::config::{Api, MockConfig};
use super::model::{Cut, Decision, FaultSpec, Model, Need, Stall, Stats, answer_text, ms};
use crate::format::{base64, json_str};
use crate::rng::Rng;

/// Largest request body read (the real APIs refuse far smaller ones; this only bounds memory).
const MAX_BODY: usize = 32 << 20;

/// The mock's shared state.
pub struct Mock {
    models: HashMap<String, Arc<Model>>,
    order: Vec<String>,
    config: MockConfig,
    rng: Rng,
    t0: Instant,
    unattributed: Mutex<Stats>,
}

type Reply = Response<MockBody>;
type Headers = Vec<(&'static str, String)>;

/// What an admitted request is sent with.
struct Admission {
    headers: Headers,
    latency: Duration,
    chunk: Duration,
    cut: Option<Cut>,
    stall: Option<Stall>,
}

impl Mock {
    /// A mock serving `config`.
    pub fn new(config: MockConfig) -> Mock {
        let models = config
            .models
            .iter()
            .map(|(n, c)| (n.clone(), Arc::new(Model::new(n, c.clone()))))
            .collect();
        Mock {
            models,
            order: config.models.iter().map(|(n, _)| n.clone()).collect(),
            config,
            rng: Rng::from_time(),
            t0: Instant::now(),
            unattributed: Mutex::new(Stats::default()),
        }
    }

    fn count_unattributed(&self, status: u16) {
        let mut u = self.unattributed.lock().unwrap_or_else(|e| e.into_inner());
        u.received += 1;
        u.count_status(status);
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let route = match (&parts.method, path) {
            (&Method::POST, "/v1/chat/completions") => Some((Api::OpenAi, false)),
            (&Method::POST, "/v1/embeddings") => Some((Api::OpenAi, true)),
            (&Method::POST, "/v1/messages") => Some((Api::Anthropic, false)),
            _ => None,
        };
        let raw = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.count_unattributed(400);
                return Ok(plain(400, &json!({"error": format!("cannot read the body: {e}")})));
            }
        };
        if path.starts_with("/_mock/") {
            return Ok(self.control(&parts.method, path, &raw));
        }
        let Some((api, embeddings)) = route else {
            self.count_unattributed(404);
            let api = if path.starts_with("/v1/messages") {
                Api::Anthropic
            } else {
                Api::OpenAi
            };
            let msg = format!("Unknown request URL: {} {path}.", parts.method);
            return Ok(error(api, 404, "invalid_request_error", &msg, Vec::new(), &self.rng));
        };
        if self.config.require_auth && !authorized(api, &parts.headers) {
            self.count_unattributed(401);
            let msg = match api {
                Api::OpenAi => {
                    "You didn't provide an API key. You need to provide your API key in an Authorization \
                                header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                }
                Api::Anthropic => "x-api-key header is required",
            };
            return Ok(error(api, 401, "authentication_error", msg, Vec::new(), &self.rng));
        }
        let body: Value = match serde_json::from_slice(&raw) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.count_unattributed(400);
                let msg = "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
                           using your HTTP library correctly.)";
                return Ok(error(api, 400, "invalid_request_error", msg, Vec::new(), &self.rng));
            }
        };
        let name = body.get("model").and_then(Value::as_str).unwrap_or("");
        let Some(model) = self.models.get(name).filter(|m| m.cfg.api == api).cloned() else {
            self.count_unattributed(404);
            let msg = match api {
                Api::OpenAi => format!("The model `{name}` does not exist or you do not have access to it."),
                Api::Anthropic => format!("model: {name}"),
            };
            return Ok(error(api, 404, "not_found_error", &msg, Vec::new(), &self.rng));
        };
        let reply = if embeddings {
            self.embeddings(&model, &body).await
        } else {
            self.generate(api, &model, &body).await
        };
        Ok(reply.unwrap_or_else(|e| *e))
    }

    async fn embeddings(&self, model: &Arc<Model>, body: &Value) -> Result<Reply, Box<Reply>> {
        let bad = |msg: &str, param: &str| {
            model.with_stats(|s| {
                s.received += 1;
                s.count_status(400);
            });
            Box::new(openai_error(
                400,
                "invalid_request_error",
                msg,
                Some(param),
                Some("invalid_value"),
                Vec::new(),
                &self.rng,
            ))
        };
        let Some((items, n)) = embedding_inputs(body.get("input")) else {
            return Err(bad(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                "input",
            ));
        };
        let dims = match body.get("dimensions") {
            None | Some(Value::Null) => 8,
            Some(d) => match d.as_u64().filter(|d| (1..=4096).contains(d)) {
                Some(d) => d as usize,
                None => return Err(bad("Invalid 'dimensions'.", "dimensions")),
            },
        };
        let a = self.admit(Api::OpenAi, model, &Need::generation(n, 0), false)?;
        wait(a.latency, a.stall).await;
        let b64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
        let mut out = String::with_capacity(64 + items.len() * (dims * 12 + 48));
        out.push_str("{\"object\":\"list\",\"data\":[");
        for (k, item) in items.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"object\":\"embedding\",\"index\":{k},\"embedding\":");
            let v = embedding_vector(item, dims);
            if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                out.push('"');
                out.push_str(&base64(&bytes));
                out.push('"');
            } else {
                out.push('[');
                for (j, x) in v.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{x:.6}");
                }
                out.push(']');
            }
            out.push('}');
        }
        let _ = write!(
            out,
            "],\"model\":{},\"usage\":{{\"prompt_tokens\":{n},\"total_tokens\":{n}}}}}",
            model.name_json
        );
        model.with_stats(|s| {
            s.count_status(200);
            s.ok += 1;
        });
        Ok(json_reply(Api::OpenAi, 200, out, a.headers, &self.rng))
    }

    async fn generate(&self, api: Api, model: &Arc<Model>, body: &Value) -> Result<Reply, Box<Reply>> {
        let max_tokens = validate(api, body).map_err(|(msg, param, code)| {
            model.with_stats(|s| {
                s.received += 1;
                s.count_status(400);
            });
            Box::new(match api {
                Api::OpenAi => openai_error(
                    400,
                    "invalid_request_error",
                    &msg,
                    Some(param),
                    Some(code),
                    Vec::new(),
                    &self.rng,
                ),
                Api::Anthropic => error(api, 400, "invalid_request_error", &msg, Vec::new(), &self.rng),
            })
        })?;
        let input = count_input_tokens(body, api);
        let configured = model.cfg.output_tokens;
        let output = max_tokens.map_or(configured, |m| m.min(configured));
        let truncated = max_tokens.is_some_and(|m| m < configured);
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let Admission {
            headers,
            latency,
            chunk,
            cut,
            stall,
        } = self.admit(api, model, &Need::generation(input, output), stream)?;
        wait(latency, stall).await;
        let text = if output == configured {
            model.default_text.clone()
        } else {
            answer_text(output)
        };
        if !stream {
            let out = match api {
                Api::OpenAi => openai_json(model, &text, input, output, truncated, &self.rng),
                Api::Anthropic => anthropic_json(model, &text, input, output, truncated, &self.rng),
            };
            model.with_stats(|s| {
                s.count_status(200);
                s.ok += 1;
            });
            return Ok(json_reply(api, 200, out, headers, &self.rng));
        }
        let events = match api {
            Api::OpenAi => {
                let usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
                openai_events(model, output, input, truncated, usage, &self.rng)
            }
            Api::Anthropic => anthropic_events(model, output, input, truncated, &self.rng),
        };
        let error_event = cut.and_then(|c| c.error_status).map(|s| stream_error_event(api, s));
        let sse = SseBody::new(
            events,
            chunk,
            cut,
            error_event,
            stall.filter(|s| s.after.is_some()),
            model.clone(),
        );
        let mut r = Response::new(MockBody::Sse(Box::new(sse)));
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        h.insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        add_headers(h, api, headers, &self.rng);
        Ok(r)
    }

    /// A decision turned into either what to send (headers, latency, pacing, faults) or the
    /// refusal to send.
    fn admit(&self, api: Api, model: &Model, need: &Need, stream: bool) -> Result<Admission, Box<Reply>> {
        match model.decide(need, stream, &self.rng) {
            Decision::Admitted {
                headers,
                latency,
                chunk,
                cut,
                stall,
            } => Ok(Admission {
                headers,
                latency,
                chunk,
                cut,
                stall,
            }),
            Decision::Limited { message, kind, headers } => Err(Box::new(match api {
                Api::OpenAi => openai_error(
                    429,
                    kind,
                    &message,
                    None,
                    Some("rate_limit_exceeded"),
                    headers,
                    &self.rng,
                ),
                Api::Anthropic => error(api, 429, "rate_limit_error", &message, headers, &self.rng),
            })),
            Decision::Fault {
                status,
                retry_after_s,
                mut headers,
            } => {
                if let Some(r) = retry_after_s {
                    headers.push(("retry-after", (r.ceil().max(0.0) as u64).to_string()));
                }
                Err(Box::new(fault_reply(api, status, headers, &self.rng)))
            }
        }
    }

    fn control(&self, method: &Method, path: &str, raw: &[u8]) -> Reply {
        match (method, path) {
            (&Method::GET, "/_mock/health") => plain(200, &json!({"ok": true})),
            (&Method::GET, "/_mock/config") => plain(200, &self.config.raw),
            (&Method::GET, "/_mock/stats") => plain(200, &self.stats()),
            (&Method::GET, "/_mock/faults") => plain(200, &self.faults()),
            (&Method::POST, "/_mock/reset") => {
                for m in self.models.values() {
                    m.reset();
                }
                *self.unattributed.lock().unwrap_or_else(|e| e.into_inner()) = Stats::default();
                plain(200, &json!({"ok": true}))
            }
            (&Method::POST, "/_mock/faults") => {
                let doc: Value = match serde_json::from_slice(if raw.is_empty() { b"{}" } else { raw }) {
                    Ok(v) => v,
                    Err(e) => return plain(400, &json!({"error": format!("invalid JSON: {e}")})),
                };
                let specs = match doc {
                    Value::Array(a) => a,
                    v => vec![v],
                };
                // Parse everything first, so that a bad entry applies nothing.
                let mut parsed = Vec::with_capacity(specs.len());
                for s in &specs {
                    match parse_fault(s, &self.models) {
                        Ok(p) => parsed.push(p),
                        Err(e) => return plain(400, &json!({"error": e})),
                    }
                }
                for (target, spec) in parsed {
                    for (name, m) in &self.models {
                        if target.as_deref().is_none_or(|t| t == name) {
                            m.apply(&spec);
                        }
                    }
                }
                plain(200, &self.faults())
            }
            _ => plain(404, &json!({"error": format!("unknown mock endpoint {method} {path}")})),
        }
    }

    fn stats(&self) -> Value {
        let mut models = serde_json::Map::new();
        let mut total = Stats::default();
        for name in &self.order {
            if let Some(m) = self.models.get(name) {
                let (s, v) = m.snapshot();
                total.add(&s);
                models.insert(name.clone(), v);
            }
        }
        let un = self.unattributed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        json!({"now_ms": self.t0.elapsed().as_secs_f64() * 1000.0, "models": models,
               "total": total.to_json(), "unattributed": un.to_json()})
    }

    fn faults(&self) -> Value {
        let mut out = serde_json::Map::new();
        for name in &self.order {
            if let Some(m) = self.models.get(name) {
                out.insert(name.clone(), m.faults_json());
            }
        }
        Value::Object(out)
    }
}

async fn wait(latency: Duration, stall: Option<Stall>) {
    let before_head = stall
        .filter(|s| s.after.is_none())
        .map_or(Duration::ZERO, |s| s.duration);
    let d = latency + before_head;
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn authorized(api: Api, headers: &hyper::HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    match api {
        Api::OpenAi => bearer,
        Api::Anthropic => bearer || headers.get("x-api-key").is_some_and(|v| !v.is_empty()),
    }
}

type Invalid = (String, &'static str, &'static str);

/// The request's output limit, or the API's 400 (message, param, code).
fn validate(api: Api, body: &Value) -> Result<Option<u64>, Invalid> {
    let bad = |m: &str, p: &'static str| (m.to_string(), p, "invalid_value");
    match body.get("messages") {
        Some(Value::Array(a)) if api == Api::OpenAi || !a.is_empty() => {}
        _ => {
            return Err(match api {
                Api::OpenAi => (
                    "Missing required parameter: 'messages'.".into(),
                    "messages",
                    "missing_required_parameter",
                ),
                Api::Anthropic => bad("messages: Field required", "messages"),
            });
        }
    }
    if let Some(t) = body.get("temperature").filter(|t| !t.is_null()) {
        let hi = if api == Api::OpenAi { 2.0 } else { 1.0 };
        match t.as_f64() {
            Some(x) if (0.0..=hi).contains(&x) => {}
            _ => {
                return Err(match api {
                    Api::OpenAi => bad(
                        &format!(
                            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."
                        ),
                        "temperature",
                    ),
                    Api::Anthropic => bad("temperature: range: 0..1", "temperature"),
                });
            }
        }
    }
    let (param, mt) = match api {
        Api::Anthropic => match body.get("max_tokens").filter(|v| !v.is_null()) {
            None => return Err(bad("max_tokens: Field required", "max_tokens")),
            Some(v) => ("max_tokens", Some(v)),
        },
        Api::OpenAi => match body.get("max_completion_tokens").filter(|v| !v.is_null()) {
            Some(v) => ("max_completion_tokens", Some(v)),
            None => ("max_tokens", body.get("max_tokens").filter(|v| !v.is_null())),
        },
    };
    match mt {
        None => Ok(None),
        Some(v) => match v.as_u64().filter(|n| *n >= 1) {
            Some(n) => Ok(Some(n)),
            None => Err(match api {
                Api::OpenAi => bad(
                    &format!(
                        "Invalid '{param}': integer below minimum value. Expected a value >= 1, but got {v} instead."
                    ),
                    param,
                ),
                Api::Anthropic => bad("max_tokens: Input should be greater than or equal to 1", param),
            }),
        },
    }
}

fn collect_chars(v: &Value, n: &mut usize) {
    match v {
        Value::String(s) => *n += s.chars().count(),
        Value::Array(a) => a.iter().for_each(|x| collect_chars(x, n)),
        Value::Object(o) => {
            if let Some(t) = o.get("text") {
                collect_chars(t, n);
            }
            if let Some(c) = o.get("content") {
                collect_chars(c, n);
            }
        }
        _ => {}
    }
}

fn text_tokens(v: &Value) -> u64 {
    let mut n = 0;
    collect_chars(v, &mut n);
    n.div_ceil(4) as u64
}

/// 3 + Σ over messages (4 + ceil(chars/4)), + ceil(chars(system)/4) (Anthropic), +
/// ceil(len(tools JSON)/4) — the Python mock's deterministic count.
pub fn count_input_tokens(body: &Value, api: Api) -> u64 {
    let mut total = 3;
    if let Some(Value::Array(msgs)) = body.get("messages") {
        for m in msgs {
            total += 4 + m.get("content").map_or(0, text_tokens);
        }
    }
    if api == Api::Anthropic
        && let Some(s) = body.get("system").filter(|s| !s.is_null())
    {
        total += text_tokens(s);
    }
    if let Some(t) = body.get("tools").filter(|t| !t.is_null()) {
        total += t.to_string().len().div_ceil(4) as u64;
    }
    total
}

fn embedding_inputs(input: Option<&Value>) -> Option<(Vec<&Value>, u64)> {
    let input = input?;
    let items: Vec<&Value> = match input {
        Value::String(_) => vec![input],
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_u64) => vec![input],
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        _ => return None,
    };
    let mut tokens = 0;
    for it in &items {
        tokens += match it {
            Value::String(s) => s.chars().count().div_ceil(4) as u64 + 1,
            Value::Array(a) if a.iter().all(Value::is_u64) => a.len() as u64,
            _ => return None,
        };
    }
    Some((items, tokens))
}

/// A deterministic unit vector for `item` (an LCG seeded by an FNV-1a hash of its JSON).
fn embedding_vector(item: &Value, dims: usize) -> Vec<f64> {
    let mut seed: u32 = 0x811c_9dc5;
    for b in item.to_string().bytes() {
        seed = (seed ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let mut v: Vec<f64> = (0..dims)
        .map(|k| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345 + k as u32);
            f64::from(seed) / f64::from(u32::MAX) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn id(rng: &Rng, prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    rng.hex(&mut s, 24);
    s
}

fn unix_secs() -> u64 {
    crate::format::unix_now() as u64
}

fn openai_usage(out: &mut String, input: u64, output: u64) {
    let _ = write!(
        out,
        "{{\"prompt_tokens\":{input},\"completion_tokens\":{output},\"total_tokens\":{},\
         \"prompt_tokens_details\":{{\"cached_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0}}}}",
        input + output
    );
}

fn openai_json(model: &Model, text: &str, input: u64, output: u64, truncated: bool, rng: &Rng) -> String {
    let mut out = String::with_capacity(420 + text.len());
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"object\":\"chat.completion\",\"created\":{},\"model\":{},\"choices\":[{{\"index\":0,\
         \"message\":{{\"role\":\"assistant\",\"content\":\"{text}\",\"refusal\":null}},\"logprobs\":null,\
         \"finish_reason\":\"{}\"}}],\"usage\":",
        id(rng, "chatcmpl-"),
        unix_secs(),
        model.name_json,
        if truncated { "length" } else { "stop" }
    );
    openai_usage(&mut out, input, output);
    out.push_str(",\"system_fingerprint\":\"fp_mock\"}");
    out
}

fn anthropic_usage(out: &mut String, input: u64, output: u64) {
    let _ = write!(
        out,
        "{{\"input_tokens\":{input},\"output_tokens\":{output},\"cache_creation_input_tokens\":0,\
         \"cache_read_input_tokens\":0}}"
    );
}

fn anthropic_json(model: &Model, text: &str, input: u64, output: u64, truncated: bool, rng: &Rng) -> String {
    let mut out = String::with_capacity(320 + text.len());
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\
         \"text\":\"{text}\"}}],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":",
        id(rng, "msg_"),
        model.name_json,
        if truncated { "max_tokens" } else { "end_turn" }
    );
    anthropic_usage(&mut out, input, output);
    out.push('}');
    out
}

/// OpenAI chunks: the role, one per output token, the finish, the usage chunk when asked
/// for, then `[DONE]`. Every chunk shares one serialised prefix.
fn openai_events(model: &Model, output: u64, input: u64, truncated: bool, usage: bool, rng: &Rng) -> Vec<Bytes> {
    let prefix = format!(
        "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\
         \"system_fingerprint\":\"fp_mock\",\"choices\":",
        id(rng, "chatcmpl-"),
        unix_secs(),
        model.name_json
    );
    let tail = if usage { ",\"usage\":null}\n\n" } else { "}\n\n" };
    let chunk = |delta: &str, finish: Option<&str>| -> Bytes {
        let mut s = String::with_capacity(prefix.len() + delta.len() + 80);
        s.push_str(&prefix);
        let _ = write!(
            s,
            "[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{}}}]",
            finish.map_or("null".to_string(), |f| format!("\"{f}\""))
        );
        s.push_str(tail);
        Bytes::from(s)
    };
    let mut ev = Vec::with_capacity(output as usize + 4);
    ev.push(chunk("{\"role\":\"assistant\",\"content\":\"\"}", None));
    for k in 0..output {
        let sep = if k + 1 < output { " " } else { "" };
        ev.push(chunk(&format!("{{\"content\":\"tok{k}{sep}\"}}"), None));
    }
    ev.push(chunk("{}", Some(if truncated { "length" } else { "stop" })));
    if usage {
        let mut s = prefix.clone();
        s.push_str("[],\"usage\":");
        openai_usage(&mut s, input, output);
        s.push_str("}\n\n");
        ev.push(Bytes::from(s));
    }
    ev.push(Bytes::from_static(b"data: [DONE]\n\n"));
    ev
}

/// Anthropic's event sequence: message_start (usage with the input), content_block_start,
/// ping, one content_block_delta per token, content_block_stop, message_delta (the output
/// usage), message_stop.
fn anthropic_events(model: &Model, output: u64, input: u64, truncated: bool, rng: &Rng) -> Vec<Bytes> {
    let ev = |name: &str, data: &str| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut out = Vec::with_capacity(output as usize + 6);
    let mut start = format!(
        "{{\"type\":\"message_start\",\"message\":{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\
         \"model\":{},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
        id(rng, "msg_"),
        model.name_json
    );
    anthropic_usage(&mut start, input, 1);
    start.push_str("}}");
    out.push(ev("message_start", &start));
    out.push(ev(
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
    ));
    out.push(ev("ping", "{\"type\":\"ping\"}"));
    for k in 0..output {
        let sep = if k + 1 < output { " " } else { "" };
        out.push(ev(
            "content_block_delta",
            &format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"tok{k}{sep}\"}}}}"
            ),
        ));
    }
    out.push(ev(
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
    ));
    out.push(ev(
        "message_delta",
        &format!(
            "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{}\",\"stop_sequence\":null}},\
             \"usage\":{{\"output_tokens\":{output}}}}}",
            if truncated { "max_tokens" } else { "end_turn" }
        ),
    ));
    out.push(ev("message_stop", "{\"type\":\"message_stop\"}"));
    out
}

/// The error event a provider sends inside a stream that fails after it started.
fn stream_error_event(api: Api, status: u16) -> Bytes {
    match api {
        Api::OpenAi => Bytes::from(format!(
            "data: {}\n\n",
            openai_error_body(&fault_openai(status), None, None)
        )),
        Api::Anthropic => {
            let (typ, msg) = fault_anthropic(status);
            Bytes::from(format!("event: error\ndata: {}\n\n", anthropic_error_body(typ, &msg)))
        }
    }
}

fn fault_openai(status: u16) -> (&'static str, String) {
    match status {
        503 | 529 => ("server_error", "The server is overloaded or not ready yet.".into()),
        429 => (
            "requests",
            "Rate limit reached for requests (injected fault). Please try again later.".into(),
        ),
        500 => (
            "server_error",
            "The server had an error while processing your request. Sorry about that!".into(),
        ),
        s if s < 500 => ("invalid_request_error", format!("Injected error {s}")),
        s => ("server_error", format!("Injected error {s}")),
    }
}

fn fault_anthropic(status: u16) -> (&'static str, String) {
    match status {
        529 => ("overloaded_error", "Overloaded".into()),
        429 => (
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit (injected fault).".into(),
        ),
        500 => ("api_error", "Internal server error".into()),
        503 => ("api_error", "Service unavailable".into()),
        s if s < 500 => ("invalid_request_error", format!("Injected error {s}")),
        s => ("api_error", format!("Injected error {s}")),
    }
}

fn fault_reply(api: Api, status: u16, headers: Headers, rng: &Rng) -> Reply {
    match api {
        Api::OpenAi => {
            let (typ, msg) = fault_openai(status);
            let code = (status == 429).then_some("rate_limit_exceeded");
            openai_error(status, typ, &msg, None, code, headers, rng)
        }
        Api::Anthropic => {
            let (typ, msg) = fault_anthropic(status);
            error(api, status, typ, &msg, headers, rng)
        }
    }
}

fn openai_error_body((typ, msg): &(&str, String), param: Option<&str>, code: Option<&str>) -> String {
    let mut s = String::with_capacity(msg.len() + 80);
    s.push_str("{\"error\":{\"message\":");
    json_str(&mut s, msg);
    s.push_str(",\"type\":");
    json_str(&mut s, typ);
    for (k, v) in [("param", param), ("code", code)] {
        let _ = write!(s, ",\"{k}\":");
        match v {
            Some(v) => json_str(&mut s, v),
            None => s.push_str("null"),
        }
    }
    s.push_str("}}");
    s
}

fn anthropic_error_body(typ: &str, msg: &str) -> String {
    let mut s = String::with_capacity(msg.len() + 64);
    s.push_str("{\"type\":\"error\",\"error\":{\"type\":");
    json_str(&mut s, typ);
    s.push_str(",\"message\":");
    json_str(&mut s, msg);
    s.push_str("}}");
    s
}

fn openai_error(
    status: u16,
    typ: &str,
    msg: &str,
    param: Option<&str>,
    code: Option<&str>,
    headers: Headers,
    rng: &Rng,
) -> Reply {
    let body = openai_error_body(&(typ, msg.to_string()), param, code);
    json_reply(Api::OpenAi, status, body, headers, rng)
}

/// An error in `api`'s shape (OpenAI errors without param or code).
fn error(api: Api, status: u16, typ: &str, msg: &str, headers: Headers, rng: &Rng) -> Reply {
    match api {
        Api::OpenAi => openai_error(status, typ, msg, None, None, headers, rng),
        Api::Anthropic => json_reply(api, status, anthropic_error_body(typ, msg), headers, rng),
    }
}

fn add_headers(h: &mut hyper::HeaderMap, api: Api, headers: Headers, rng: &Rng) {
    let (name, prefix) = match api {
        Api::OpenAi => ("x-request-id", "req_"),
        Api::Anthropic => ("request-id", "req_"),
    };
    if let Ok(v) = HeaderValue::from_str(&id(rng, prefix)) {
        h.insert(HeaderName::from_static(name), v);
    }
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(HeaderName::from_static(k), v);
        }
    }
}

fn json_reply(api: Api, status: u16, body: String, headers: Headers, rng: &Rng) -> Reply {
    let mut r = Response::new(MockBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_headers(h, api, headers, rng);
    r
}

/// A `/_mock/*` answer.
fn plain(status: u16, v: &Value) -> Reply {
    let mut r = Response::new(MockBody::full(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

const FAULT_KEYS: &[&str] = &[
    "model",
    "clear",
    "status",
    "count",
    "for_ms",
    "retry_after_s",
    "cut_stream_after",
    "error_status",
    "stall_ms",
    "stall_after",
    "latency_ms",
    "chunk_ms",
];

/// One entry of `POST /_mock/faults`: the model it targets (`None`: all) and what it sets.
fn parse_fault(v: &Value, models: &HashMap<String, Arc<Model>>) -> Result<(Option<String>, FaultSpec), String> {
    let o = v.as_object().ok_or("a fault must be an object")?;
    if let Some(k) = o.keys().find(|k| !FAULT_KEYS.contains(&k.as_str())) {
        return Err(format!("unknown fault key '{k}' (known: {})", FAULT_KEYS.join(", ")));
    }
    let target = match o.get("model").and_then(Value::as_str) {
        None | Some("*") => None,
        Some(m) if models.contains_key(m) => Some(m.to_string()),
        Some(m) => return Err(format!("unknown model '{m}'")),
    };
    let num = |k: &str| -> Result<Option<f64>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Some)
                .ok_or_else(|| format!("{k}: must be a number >= 0")),
        }
    };
    let status_code = |k: &str| -> Result<Option<u16>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|s| (400..=599).contains(s))
                .map(|s| Some(s as u16))
                .ok_or_else(|| format!("{k}: must be a 4xx/5xx code")),
        }
    };
    let count = num("count")?.map_or(1, |c| c as u64);
    let mut spec = FaultSpec {
        clear: o.get("clear").and_then(Value::as_bool) == Some(true),
        ..FaultSpec::default()
    };
    if let Some(status) = status_code("status")? {
        spec.status = Some((status, count, num("for_ms")?, num("retry_after_s")?));
    }
    if let Some(after) = num("cut_stream_after")? {
        let cut = Cut {
            after: after as usize,
            error_status: status_code("error_status")?,
        };
        spec.cut = Some((cut, count));
    }
    if let Some(t) = num("stall_ms")? {
        let stall = Stall {
            duration: ms(t),
            after: num("stall_after")?.map(|k| k as usize),
        };
        spec.stall = Some((stall, count));
    }
    if o.contains_key("latency_ms") {
        spec.latency_ms = Some(num("latency_ms")?);
    }
    if o.contains_key("chunk_ms") {
        spec.chunk_ms = Some(num("chunk_ms")?);
    }
    Ok((target, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_match_the_python_mock() {
        let b = json!({"messages": [{"role": "user", "content": "hello world!"},
                                     {"role": "user", "content": [{"type": "text", "text": "abcde"}]}]});
        assert_eq!(count_input_tokens(&b, Api::OpenAi), 3 + 4 + 3 + 4 + 2);
        let a = json!({"system": "abcd", "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(count_input_tokens(&a, Api::Anthropic), 3 + 4 + 1 + 1);
        let two = json!(["abcd", "abcde"]);
        let (items, n) = embedding_inputs(Some(&two)).unwrap();
        assert_eq!((items.len(), n), (2, 2 + 3));
        assert_eq!(embedding_inputs(Some(&json!([1, 2, 3]))).unwrap().1, 3);
        assert!(embedding_inputs(Some(&json!([]))).is_none());
    }

    #[test]
    fn validation_as_the_apis_do_it() {
        assert_eq!(
            validate(Api::OpenAi, &json!({"messages": [], "max_tokens": 5})),
            Ok(Some(5))
        );
        assert_eq!(validate(Api::OpenAi, &json!({"messages": []})), Ok(None));
        assert_eq!(validate(Api::OpenAi, &json!({})).unwrap_err().1, "messages");
        assert_eq!(
            validate(Api::OpenAi, &json!({"messages": [], "temperature": 3}))
                .unwrap_err()
                .1,
            "temperature"
        );
        assert_eq!(
            validate(Api::Anthropic, &json!({"messages": [{"role": "user", "content": "x"}]}))
                .unwrap_err()
                .0,
            "max_tokens: Field required"
        );
    }

    #[test]
    fn bodies_are_valid_json_in_the_real_shapes() {
        let m = Model::new("gpt-x", crate::mock::config::ModelConfig::new(Api::OpenAi));
        let rng = Rng::new(3);
        let v: Value = serde_json::from_str(&openai_json(&m, "tok0 tok1", 10, 2, false, &rng)).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "tok0 tok1");
        assert_eq!(v["usage"]["total_tokens"], 12);
        let v: Value = serde_json::from_str(&anthropic_json(&m, "tok0", 10, 1, true, &rng)).unwrap();
        assert_eq!(v["stop_reason"], "max_tokens");
        let ev = openai_events(&m, 2, 10, false, true, &rng);
        assert_eq!(ev.len(), 1 + 2 + 1 + 1 + 1);
        for e in &ev[..ev.len() - 1] {
            let text = std::str::from_utf8(e).unwrap();
            let data: Value = serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
            assert_eq!(data["object"], "chat.completion.chunk");
        }
        assert_eq!(&ev[ev.len() - 1][..], b"data: [DONE]\n\n");
        let ev = anthropic_events(&m, 2, 10, false, &rng);
        let names: Vec<String> = ev
            .iter()
            .map(|e| std::str::from_utf8(e).unwrap().lines().next().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "event: message_start",
                "event: content_block_start",
                "event: ping",
                "event: content_block_delta",
                "event: content_block_delta",
                "event: content_block_stop",
                "event: message_delta",
                "event: message_stop"
            ]
        );
        for e in &ev {
            let text = std::str::from_utf8(e).unwrap();
            let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            let _: Value = serde_json::from_str(data).unwrap();
        }
        let err: Value = serde_json::from_str(
            std::str::from_utf8(&stream_error_event(Api::Anthropic, 529))
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()[6..]
                .trim(),
        )
        .unwrap();
        assert_eq!(err["error"]["type"], "overloaded_error");
    }
}
