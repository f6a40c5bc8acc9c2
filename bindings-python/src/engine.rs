//! `Engine`, `ManualClock`, `Decision` and `Permit`: thin, frozen wrappers around the core.
//! Every call here converts arguments and results; every decision is the core's.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use ratewise::{Clock, Decision, Dimension, Engine, ManualClock, Observation, Outcome, PermitId, Request, Status};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config;
use crate::error::{IntoPyResult, invalid_argument, to_py};

/// A settable clock for tests and simulations: `ManualClock(start_ms=0)`.
#[pyclass(module = "ratewise._native", name = "ManualClock", frozen)]
pub struct PyManualClock {
    inner: ManualClock,
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start_ms = 0))]
    fn new(#[pyo3(from_py_with = int64)] start_ms: i64) -> Self {
        PyManualClock {
            inner: ManualClock::new(start_ms),
        }
    }

    /// Moves the clock forward by `ms` milliseconds.
    fn advance(&self, py: Python<'_>, #[pyo3(from_py_with = int64)] ms: i64) -> PyResult<()> {
        if ms < 0 {
            return Err(invalid_argument(py, format!("ms must be >= 0, got {ms}")));
        }
        self.inner.advance(ms);
        Ok(())
    }

    /// The current time in milliseconds.
    #[getter]
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now_ms={})", self.inner.now_ms())
    }
}

/// The engine. Thread-safe: share one instance across threads.
#[pyclass(module = "ratewise._native", name = "Engine", frozen)]
pub struct PyEngine {
    inner: Arc<Engine>,
    clock: Option<Py<PyManualClock>>,
}

/// `(granted ticket ids, expired ticket ids)` of a poll.
type PollReport = (Vec<u64>, Vec<u64>);

fn polled(p: ratewise::Polled) -> PollReport {
    (
        p.granted.iter().map(|g| g.id.0).collect(),
        p.expired.iter().map(|(t, _)| t.0).collect(),
    )
}

fn count(py: Python<'_>, name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| invalid_argument(py, format!("{name} must be >= 0, got {value}")))
}

fn opt_count(py: Python<'_>, name: &str, value: Option<i64>) -> PyResult<Option<u64>> {
    value.map(|v| count(py, name, v)).transpose()
}

/// An `int` argument (`#[pyo3(from_py_with = int64)]`): one beyond 64 bits is
/// `InvalidArgumentError`, a `ValueError` like every other bad argument, not `OverflowError`.
fn int64(v: &Bound<'_, PyAny>) -> PyResult<i64> {
    v.extract::<i64>().map_err(|e| out_of_range(v, e, "[-2**63, 2**63)"))
}

/// An optional `int` argument, as [`int64`].
fn opt_int64(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if v.is_none() { Ok(None) } else { int64(v).map(Some) }
}

/// A permit or ticket id, as [`int64`]: an int outside `[0, 2**64)` is `InvalidArgumentError`.
fn id64(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    v.extract::<u64>().map_err(|e| out_of_range(v, e, "[0, 2**64)"))
}

/// `InvalidArgumentError` for an int outside `range` (an `OverflowError` of the conversion);
/// any other conversion error (a `str` given for an `int`) is kept.
fn out_of_range(v: &Bound<'_, PyAny>, e: PyErr, range: &str) -> PyErr {
    let py = v.py();
    if !e.is_instance_of::<PyOverflowError>(py) {
        return e;
    }
    let bits: u64 = v
        .call_method0("bit_length")
        .and_then(|b| b.extract())
        .unwrap_or(u64::MAX);
    let shown = if bits <= 128 {
        v.to_string()
    } else {
        format!("an integer of {bits} bits")
    };
    invalid_argument(
        py,
        format!("{shown} is out of range (integer arguments are in {range})"),
    )
}

/// A status given as a class name (`"rate_limited"`) or an HTTP code (`429`).
fn status(py: Python<'_>, status: &Bound<'_, PyAny>) -> PyResult<Status> {
    // Look at the type first: a failed extraction builds (and drops) a Python exception, which
    // would cost more than the whole decision.
    if let Ok(name) = status.cast::<PyString>() {
        return Status::from_str(&name.to_cow()?).py(py);
    }
    if status.is_instance_of::<PyInt>() {
        return Status::from_http(int64(status)?).py(py);
    }
    Err(invalid_argument(
        py,
        "status must be a class name (str) or an HTTP code (int)".into(),
    ))
}

/// A usage count as `_settle` takes it: `Some(None)` not reported, `Some(Some(n))` an int >= 0,
/// `None` anything else (the usage is then not used at all).
/// Any integer (an `int`, or a type with `__index__`, as `numpy.int64`) but a bool is taken.
fn usage_count(v: &Bound<'_, PyAny>) -> Option<Option<u64>> {
    if v.is_none() {
        return Some(None);
    }
    if v.cast::<PyBool>().is_ok() {
        return None;
    }
    v.extract::<u64>().ok().map(Some)
}

/// `_settle`'s headers: from an httpx `Headers`, only those the engine reads
/// ([`ratewise::is_signal_header`]), read from its raw `(name, lowercased name, value)` list;
/// from anything else, as [`headers`] takes them.
fn signal_headers(py: Python<'_>, h: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    if h.is_none() {
        return Ok(Vec::new());
    }
    let raw = match h.getattr(pyo3::intern!(py, "_list")) {
        Ok(raw) => raw,
        Err(_) => return headers(py, Some(h)),
    };
    let Ok(raw) = raw.cast::<PyList>() else {
        return headers(py, Some(h));
    };
    let mut out = Vec::with_capacity(raw.len().min(32));
    for entry in raw.iter() {
        let Ok(entry) = entry.cast::<PyTuple>() else {
            return headers(py, Some(h));
        };
        let (Ok(name), Ok(value)) = (entry.get_item(1), entry.get_item(2)) else {
            return headers(py, Some(h));
        };
        let (Ok(name), Ok(value)) = (name.cast::<PyBytes>(), value.cast::<PyBytes>()) else {
            return headers(py, Some(h));
        };
        // httpx keeps names and values as latin-1 bytes; a header the engine reads is ASCII.
        let Ok(name) = std::str::from_utf8(name.as_bytes()) else {
            continue;
        };
        if ratewise::is_signal_header(name) {
            out.push((name.to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
        }
    }
    Ok(out)
}

/// Headers from any mapping (`dict`, `httpx.Headers`) or an iterable of `(name, value)` pairs.
pub(crate) fn headers(py: Python<'_>, headers: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(h) = headers else { return Ok(Vec::new()) };
    if h.is_none() {
        return Ok(Vec::new());
    }
    // A dict (not a subclass, whose items() may be its own): its items as a list, so that a
    // value's __str__ cannot change what is being iterated.
    if let Ok(dict) = h.cast_exact::<PyDict>() {
        let items = dict.items();
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            out.push((text(&name)?, text(&value)?));
        }
        return Ok(out);
    }
    let items = if h.hasattr("items")? {
        h.call_method0("items")?
    } else {
        h.clone()
    };
    let not_headers = || invalid_argument(py, "headers must be a mapping or (name, value) pairs".into());
    let mut out = Vec::new();
    for item in items.try_iter().map_err(|_| not_headers())? {
        let item = item?;
        let pair: (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| not_headers())?;
        out.push((text(&pair.0)?, text(&pair.1)?));
    }
    Ok(out)
}

fn text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.extract::<String>() {
        return Ok(s);
    }
    if let Ok(b) = v.extract::<Vec<u8>>() {
        return Ok(String::from_utf8_lossy(&b).into_owned());
    }
    Ok(v.str()?.to_string())
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    py: Python<'_>,
    status_value: &Bound<'_, PyAny>,
    latency_ms: i64,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cached_input_tokens: Option<i64>,
    cache_write_input_tokens: Option<i64>,
    retry_after_ms: Option<i64>,
    header_map: Option<&Bound<'_, PyAny>>,
) -> PyResult<Outcome> {
    Ok(Outcome {
        status: status(py, status_value)?,
        latency_ms: count(py, "latency_ms", latency_ms)?,
        input_tokens: opt_count(py, "input_tokens", input_tokens)?,
        output_tokens: opt_count(py, "output_tokens", output_tokens)?,
        cached_input_tokens: opt_count(py, "cached_input_tokens", cached_input_tokens)?,
        cache_write_input_tokens: opt_count(py, "cache_write_input_tokens", cache_write_input_tokens)?,
        retry_after_ms: opt_count(py, "retry_after_ms", retry_after_ms)?,
        headers: headers(py, header_map)?,
    })
}

/// Runs `f` with the core request the keyword arguments describe.
fn with_request<T>(
    py: Python<'_>,
    lane: Option<&str>,
    input_tokens: i64,
    output_tokens: i64,
    exclude: Option<Vec<String>>,
    f: impl FnOnce(&Request<'_>) -> T,
) -> PyResult<T> {
    let exclude = exclude.unwrap_or_default();
    let refs: Vec<&str> = exclude.iter().map(String::as_str).collect();
    let req = Request {
        lane,
        input_tokens: count(py, "input_tokens", input_tokens)?,
        output_tokens: count(py, "output_tokens", output_tokens)?,
        exclude: &refs,
    };
    Ok(f(&req))
}

/// Runs `f` with the GIL released when the engine may wait on the network (a Redis store), so
/// other Python threads run meanwhile; with the memory store a call takes a microsecond and
/// keeps the GIL (releasing it would cost more than the call).
fn io<T: Send>(py: Python<'_>, engine: &Engine, f: impl FnOnce() -> T + Send) -> T {
    if engine.is_shared() { py.detach(f) } else { f() }
}

impl PyEngine {
    fn build(py: Python<'_>, config: ratewise::Config, clock: Option<Bound<'_, PyManualClock>>) -> PyResult<Self> {
        let core_clock = match &clock {
            Some(c) => Clock::Manual(c.get().inner.clone()),
            None => Clock::system(),
        };
        // Construction registers with a Redis store: a round trip, without the GIL.
        let inner = py.detach(|| Engine::with_clock(config, core_clock)).py(py)?;
        Ok(PyEngine {
            inner: Arc::new(inner),
            clock: clock.map(Bound::unbind),
        })
    }
}

#[pymethods]
impl PyEngine {
    /// `Engine(config, *, clock=None)`: `config` is a dict, JSON text or a path; `clock` a
    /// `ManualClock` (default: the system clock).
    #[new]
    #[pyo3(signature = (config, *, clock = None))]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>, clock: Option<Bound<'_, PyManualClock>>) -> PyResult<Self> {
        let config = config::from_py(py, config)?;
        PyEngine::build(py, config, clock)
    }

    /// An engine from a JSON configuration file.
    #[staticmethod]
    #[pyo3(signature = (path, *, clock = None))]
    fn from_file(py: Python<'_>, path: &Bound<'_, PyAny>, clock: Option<Bound<'_, PyManualClock>>) -> PyResult<Self> {
        let path: String = py.import("os")?.call_method1("fspath", (path,))?.extract()?;
        let config = ratewise::Config::from_file(path).py(py)?;
        PyEngine::build(py, config, clock)
    }

    /// An engine from JSON configuration text.
    #[staticmethod]
    #[pyo3(signature = (text, *, clock = None))]
    fn from_json(py: Python<'_>, text: &str, clock: Option<Bound<'_, PyManualClock>>) -> PyResult<Self> {
        let config = ratewise::Config::from_json(text).py(py)?;
        PyEngine::build(py, config, clock)
    }

    /// The manual clock the engine was built with, if any.
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyManualClock>> {
        self.clock.as_ref().map(|c| c.clone_ref(py))
    }

    /// The engine's clock reading in Unix milliseconds.
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    /// Which provider a request would go to now; changes no state.
    #[pyo3(signature = (capability, *, lane = None, input_tokens = 0, output_tokens = 0, exclude = None))]
    fn select(
        &self,
        py: Python<'_>,
        capability: &str,
        lane: Option<&str>,
        #[pyo3(from_py_with = int64)] input_tokens: i64,
        #[pyo3(from_py_with = int64)] output_tokens: i64,
        exclude: Option<Vec<String>>,
    ) -> PyResult<PyDecision> {
        let d = with_request(py, lane, input_tokens, output_tokens, exclude, |req| {
            self.inner.select(capability, req)
        })?;
        Ok(PyDecision { inner: d.py(py)? })
    }

    /// Selects and reserves atomically; returns a `Permit` (also a context manager).
    ///
    /// Without `timeout_ms` it decides now and raises `NoAvailableProviderError` (with
    /// `retry_after_ms`) when nothing is free. With `timeout_ms` it waits, in its lane's priority
    /// order, at most that long for a permit, blocking this thread but not the interpreter (the
    /// GIL is released while it waits).
    #[pyo3(signature = (capability, *, lane = None, input_tokens = 0, output_tokens = 0, exclude = None, timeout_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        py: Python<'_>,
        capability: &str,
        lane: Option<&str>,
        #[pyo3(from_py_with = int64)] input_tokens: i64,
        #[pyo3(from_py_with = int64)] output_tokens: i64,
        exclude: Option<Vec<String>>,
        #[pyo3(from_py_with = opt_int64)] timeout_ms: Option<i64>,
    ) -> PyResult<PyPermit> {
        let permit = match timeout_ms {
            None => with_request(py, lane, input_tokens, output_tokens, exclude, |req| {
                io(py, &self.inner, || self.inner.acquire(capability, req))
            })?,
            Some(ms) => with_request(py, lane, input_tokens, output_tokens, exclude, |req| {
                py.detach(|| self.inner.acquire_wait(capability, req, ms))
            })?,
        }
        .py(py)?;
        Ok(PyPermit::new(
            &self.inner,
            permit,
            count(py, "input_tokens", input_tokens)?,
            count(py, "output_tokens", output_tokens)?,
        ))
    }

    /// Waits at most `timeout_ms` for a permit without blocking the event loop:
    /// `permit = await engine.acquire_async("chat", timeout_ms=30_000)`. Cancelling the task
    /// withdraws the request (or returns the permit if it was just granted); nothing is lost.
    #[pyo3(signature = (capability, *, timeout_ms, lane = None, input_tokens = 0, output_tokens = 0, exclude = None))]
    #[allow(clippy::too_many_arguments)]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        capability: &str,
        #[pyo3(from_py_with = int64)] timeout_ms: i64,
        lane: Option<&str>,
        #[pyo3(from_py_with = int64)] input_tokens: i64,
        #[pyo3(from_py_with = int64)] output_tokens: i64,
        exclude: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        py.import("ratewise._waiting")?.getattr("acquire")?.call1((
            slf,
            capability,
            timeout_ms,
            lane,
            input_tokens,
            output_tokens,
            exclude,
        ))
    }

    /// Used by `acquire_async`: enqueues a waiter whose outcome is handed to `settle(future,
    /// permit, error)` on `event_loop` (through `call_soon_threadsafe`); returns the ticket.
    #[pyo3(signature = (event_loop, future, settle, capability, timeout_ms, lane, input_tokens, output_tokens, exclude))]
    #[allow(clippy::too_many_arguments)]
    fn _enqueue_async(
        &self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        settle: Py<PyAny>,
        capability: &str,
        #[pyo3(from_py_with = int64)] timeout_ms: i64,
        lane: Option<&str>,
        #[pyo3(from_py_with = int64)] input_tokens: i64,
        #[pyo3(from_py_with = int64)] output_tokens: i64,
        exclude: Option<Vec<String>>,
    ) -> PyResult<u64> {
        let tokens = (
            count(py, "input_tokens", input_tokens)?,
            count(py, "output_tokens", output_tokens)?,
        );
        let engine = Arc::downgrade(&self.inner);
        // Not delivered (the loop is closed, the interpreter is gone): the engine cancels the permit.
        let on_done: ratewise::OnDone = Box::new(move |result| {
            Python::try_attach(|py| {
                let args = match result {
                    Ok(permit) => {
                        let Some(e) = engine.upgrade() else { return false };
                        let permit = PyPermit::new(&e, permit, tokens.0, tokens.1);
                        match Py::new(py, permit) {
                            Ok(p) => (future, p.into_any(), py.None()),
                            Err(_) => return false,
                        }
                    }
                    Err(e) => (future, py.None(), to_py(py, &e).into_value(py).into_any()),
                };
                event_loop
                    .call_method1(py, "call_soon_threadsafe", (settle, args.0, args.1, args.2))
                    .is_ok()
            })
            .unwrap_or(false)
        });
        let ticket = with_request(py, lane, input_tokens, output_tokens, exclude, |req| {
            self.inner.enqueue_with(capability, req, timeout_ms, on_done)
        })?
        .py(py)?;
        Ok(ticket.0)
    }

    /// Records a call made without a permit (unreported token counts are 0, `requests` 1).
    #[pyo3(signature = (provider, status, *, latency_ms = 0, requests = None, input_tokens = None, output_tokens = None,
                        cached_input_tokens = None, cache_write_input_tokens = None, retry_after_ms = None, headers = None))]
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        py: Python<'_>,
        provider: &str,
        status: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = int64)] latency_ms: i64,
        #[pyo3(from_py_with = opt_int64)] requests: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] output_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cached_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cache_write_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] retry_after_ms: Option<i64>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let seen = Observation {
            outcome: outcome(
                py,
                status,
                latency_ms,
                input_tokens,
                output_tokens,
                cached_input_tokens,
                cache_write_input_tokens,
                retry_after_ms,
                headers,
            )?,
            requests: opt_count(py, "requests", requests)?,
        };
        io(py, &self.inner, || self.inner.observe(provider, &seen)).py(py)
    }

    /// Completes a permit by id (for callers that keep ids rather than `Permit` objects).
    #[pyo3(signature = (permit_id, status, *, latency_ms = 0, input_tokens = None, output_tokens = None,
                        cached_input_tokens = None, cache_write_input_tokens = None, retry_after_ms = None, headers = None))]
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = id64)] permit_id: u64,
        status: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = int64)] latency_ms: i64,
        #[pyo3(from_py_with = opt_int64)] input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] output_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cached_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cache_write_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] retry_after_ms: Option<i64>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PollReport> {
        let o = outcome(
            py,
            status,
            latency_ms,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_write_input_tokens,
            retry_after_ms,
            headers,
        )?;
        Ok(polled(
            io(py, &self.inner, || self.inner.complete(PermitId(permit_id), &o)).py(py)?,
        ))
    }

    /// Cancels a permit, or withdraws a waiting ticket, by id; returns what the poll it
    /// triggers did.
    fn cancel(&self, py: Python<'_>, #[pyo3(from_py_with = id64)] permit_id: u64) -> PyResult<PollReport> {
        Ok(polled(
            io(py, &self.inner, || self.inner.cancel(PermitId(permit_id))).py(py)?,
        ))
    }

    /// Adds a waiting request for at most `timeout_ms`, then polls. Returns the ticket id and
    /// what the poll did, as `(ticket, granted ticket ids, expired ticket ids)`; a granted
    /// ticket is a permit of the same id (complete it with `complete(ticket, ...)`).
    #[pyo3(signature = (capability, *, timeout_ms, lane = None, input_tokens = 0, output_tokens = 0, exclude = None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        py: Python<'_>,
        capability: &str,
        #[pyo3(from_py_with = int64)] timeout_ms: i64,
        lane: Option<&str>,
        #[pyo3(from_py_with = int64)] input_tokens: i64,
        #[pyo3(from_py_with = int64)] output_tokens: i64,
        exclude: Option<Vec<String>>,
    ) -> PyResult<(u64, Vec<u64>, Vec<u64>)> {
        let (ticket, p) = with_request(py, lane, input_tokens, output_tokens, exclude, |req| {
            io(py, &self.inner, || self.inner.enqueue(capability, req, timeout_ms))
        })?
        .py(py)?;
        let (granted, expired) = polled(p);
        Ok((ticket.0, granted, expired))
    }

    /// Grants waiting requests as capacity allows and expires those past their deadline:
    /// `(granted ticket ids, expired ticket ids)`.
    fn poll(&self, py: Python<'_>) -> PollReport {
        polled(io(py, &self.inner, || self.inner.poll()))
    }

    /// When a poll could next change something (Unix ms), or None when nothing waits.
    fn next_wake(&self) -> Option<i64> {
        self.inner.next_wake()
    }

    /// Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers).
    fn sync_headers(&self, py: Python<'_>, provider: &str, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let h = self::headers(py, Some(headers))?;
        io(py, &self.inner, || self.inner.sync_headers(provider, &h)).py(py)
    }

    /// Health of a provider now, in [0, 1].
    fn health(&self, py: Python<'_>, provider: &str) -> PyResult<f64> {
        self.inner.health(provider).py(py)
    }

    /// Units left in a dimension (the minimum over the provider's quotas of it), or None.
    fn remaining(&self, py: Python<'_>, provider: &str, dimension: &str) -> PyResult<Option<i64>> {
        let dim = Dimension::parse(dimension)
            .ok_or_else(|| invalid_argument(py, format!("unknown dimension '{dimension}'")))?;
        self.inner.remaining(provider, dim).py(py)
    }

    /// The provider's circuit: "closed", "open" or "half_open".
    fn circuit(&self, py: Python<'_>, provider: &str) -> PyResult<&'static str> {
        Ok(self.inner.circuit(provider).py(py)?.as_str())
    }

    /// The engine's state as a dict (stable paths: providers, lanes, counters, store).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.inner.snapshot().to_string();
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Adds or replaces a provider (a dict as in `providers[]`, or JSON text).
    fn upsert_provider(&self, py: Python<'_>, provider: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = config::to_value(py, provider, "provider")?;
        io(py, &self.inner, || self.inner.upsert_provider(&v)).py(py)
    }

    /// Adds or replaces a capability (a dict as in `capabilities[]`, or JSON text).
    fn upsert_capability(&self, py: Python<'_>, capability: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = config::to_value(py, capability, "capability")?;
        self.inner.upsert_capability(&v).py(py)
    }

    /// Removes a provider; it stays listed in its capabilities as unregistered.
    fn remove_provider(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.inner.remove_provider(name).py(py)
    }

    /// Removes a capability.
    fn remove_capability(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.inner.remove_capability(name).py(py)
    }

    fn __repr__(&self) -> String {
        let config = self.inner.config();
        format!(
            "Engine(providers={:?}, capabilities={:?})",
            config.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            config.capabilities.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
        )
    }
}

/// Where a request goes, and why.
#[pyclass(module = "ratewise._native", name = "Decision", frozen)]
pub struct PyDecision {
    inner: Decision,
}

fn breakdown<'py>(py: Python<'py>, d: &Decision) -> PyResult<Bound<'py, PyDict>> {
    let b = PyDict::new(py);
    b.set_item("quota", d.breakdown.quota)?;
    b.set_item("health", d.breakdown.health)?;
    b.set_item("priority", d.breakdown.priority)?;
    b.set_item("latency", d.breakdown.latency)?;
    b.set_item("cost", d.breakdown.cost)?;
    Ok(b)
}

#[pymethods]
impl PyDecision {
    /// The chosen provider.
    #[getter]
    fn provider(&self) -> &str {
        &self.inner.provider
    }

    /// The upstream model to call on it (the provider's `model`, by default its name).
    #[getter]
    fn model(&self) -> &str {
        &self.inner.model
    }

    /// Its score in [0, 1].
    #[getter]
    fn score(&self) -> f64 {
        self.inner.score
    }

    /// Its score terms: quota, health, priority, latency, cost.
    #[getter]
    fn breakdown<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        breakdown(py, &self.inner)
    }

    /// Other eligible providers, best first, as (provider, score).
    #[getter]
    fn alternatives(&self) -> Vec<(String, f64)> {
        self.inner
            .alternatives
            .iter()
            .map(|a| (a.provider.to_string(), a.score))
            .collect()
    }

    /// Ineligible providers in capability order, as (provider, reason).
    #[getter]
    fn skipped(&self) -> Vec<(String, String)> {
        self.inner
            .skipped
            .iter()
            .map(|s| (s.provider.to_string(), s.reason.code()))
            .collect()
    }

    fn __repr__(&self) -> String {
        decision_repr(&self.inner)
    }
}

fn decision_repr(d: &Decision) -> String {
    let alts: Vec<String> = d
        .alternatives
        .iter()
        .map(|a| format!("('{}', {:.3})", a.provider, a.score))
        .collect();
    let skipped: Vec<String> = d
        .skipped
        .iter()
        .map(|s| format!("('{}', '{}')", s.provider, s.reason))
        .collect();
    format!(
        "Decision(provider='{}', score={:.3}, alternatives=[{}], skipped=[{}])",
        d.provider,
        d.score,
        alts.join(", "),
        skipped.join(", ")
    )
}

/// A reservation on one provider. Complete it with what happened, or cancel it if the call was
/// never sent. As a context manager: a normal exit completes it as a success with the
/// estimates; an exception carrying an HTTP status completes it with that status (and the
/// response's headers); a timeout completes it as `timeout`; any other exception cancels it.
#[pyclass(module = "ratewise._native", name = "Permit", frozen)]
pub struct PyPermit {
    engine: Arc<Engine>,
    id: PermitId,
    decision: Decision,
    input_tokens: u64,
    output_tokens: u64,
    started: Instant,
    done: AtomicBool,
}

impl PyPermit {
    fn new(engine: &Arc<Engine>, permit: ratewise::Permit, input_tokens: u64, output_tokens: u64) -> Self {
        PyPermit {
            engine: engine.clone(),
            id: permit.id,
            decision: permit.decision,
            input_tokens,
            output_tokens,
            started: Instant::now(),
            done: AtomicBool::new(false),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn finish(&self, py: Python<'_>, outcome: Option<&Outcome>) -> PyResult<()> {
        let result = io(py, &self.engine, || match outcome {
            Some(o) => self.engine.complete(self.id, o).map(|_| ()),
            None => self.engine.cancel(self.id).map(|_| ()),
        });
        if result.is_ok() {
            self.done.store(true, Ordering::Release);
        }
        result.py(py)
    }
}

#[pymethods]
impl PyPermit {
    /// The permit's id (completing or cancelling it twice raises UnknownPermitError).
    #[getter]
    fn id(&self) -> u64 {
        self.id.0
    }

    /// The provider the call must go to.
    #[getter]
    fn provider(&self) -> &str {
        &self.decision.provider
    }

    /// The upstream model to call (the provider's `model`, by default its name).
    #[getter]
    fn model(&self) -> &str {
        &self.decision.model
    }

    /// The decision that granted the permit.
    #[getter]
    fn decision(&self) -> PyDecision {
        PyDecision {
            inner: self.decision.clone(),
        }
    }

    /// Settles the permit with the call's outcome. `latency_ms` defaults to the time since
    /// acquire; token counts not given are "not reported" (the estimate stands).
    #[pyo3(signature = (status, *, latency_ms = None, input_tokens = None, output_tokens = None,
                        cached_input_tokens = None, cache_write_input_tokens = None, retry_after_ms = None, headers = None))]
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = opt_int64)] latency_ms: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] output_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cached_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] cache_write_input_tokens: Option<i64>,
        #[pyo3(from_py_with = opt_int64)] retry_after_ms: Option<i64>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let latency = latency_ms.unwrap_or_else(|| i64::try_from(self.elapsed_ms()).unwrap_or(i64::MAX));
        let o = outcome(
            py,
            status,
            latency,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_write_input_tokens,
            retry_after_ms,
            headers,
        )?;
        self.finish(py, Some(&o))
    }

    /// The call was never sent: refunds every reservation.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, None)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, exc = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let outcome = match exc.filter(|e| !e.is_none()) {
            None => Some(Outcome {
                latency_ms: self.elapsed_ms(),
                input_tokens: Some(self.input_tokens),
                output_tokens: Some(self.output_tokens),
                ..Outcome::new(Status::Success)
            }),
            Some(e) => {
                // What an exception says is Python's business (ratewise/_context.py).
                let found = py
                    .import("ratewise._context")?
                    .call_method1("outcome_from_exception", (e,))?;
                if found.is_none() {
                    None
                } else {
                    let (status_value, header_map): (Bound<'_, PyAny>, Bound<'_, PyAny>) = found.extract()?;
                    let latency = i64::try_from(self.elapsed_ms()).unwrap_or(i64::MAX);
                    Some(outcome(
                        py,
                        &status_value,
                        latency,
                        None,
                        None,
                        None,
                        None,
                        None,
                        Some(&header_map),
                    )?)
                }
            }
        };
        self.finish(py, outcome.as_ref())
    }

    /// The SDK wrappers' settlement (ratewise/_wrap.py; not public API): `complete(status,
    /// latency_ms=..., input_tokens=..., ...)` with the usage the provider reported, in one
    /// crossing. A usage count that is not an int >= 0, or usage the engine refuses (more cached
    /// than input), settles on the estimates instead; an expired permit is ignored (its charges
    /// stand). `headers`: an httpx `Headers` (its raw list is read, and only the headers the
    /// engine reads are copied), any other mapping or pairs (copied whole), or None.
    #[pyo3(signature = (status_value, latency_ms, input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens, headers, /))]
    #[allow(clippy::too_many_arguments)]
    fn _settle(
        &self,
        py: Python<'_>,
        status_value: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = int64)] latency_ms: i64,
        input_tokens: &Bound<'_, PyAny>,
        output_tokens: &Bound<'_, PyAny>,
        cached_input_tokens: &Bound<'_, PyAny>,
        cache_write_input_tokens: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let counts = [
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_write_input_tokens,
        ]
        .map(usage_count);
        let mut o = Outcome {
            latency_ms: count(py, "latency_ms", latency_ms)?,
            headers: signal_headers(py, headers)?,
            ..Outcome::new(status(py, status_value)?)
        };
        if counts.iter().all(Option::is_some) {
            [
                o.input_tokens,
                o.output_tokens,
                o.cached_input_tokens,
                o.cache_write_input_tokens,
            ] = counts.map(Option::flatten);
        }
        let mut result = io(py, &self.engine, || self.engine.complete(self.id, &o).map(|_| ()));
        if matches!(result, Err(ratewise::Error::InvalidArgument(_))) && o.input_tokens.or(o.output_tokens).is_some() {
            [
                o.input_tokens,
                o.output_tokens,
                o.cached_input_tokens,
                o.cache_write_input_tokens,
            ] = [None; 4];
            result = io(py, &self.engine, || self.engine.complete(self.id, &o).map(|_| ()));
        }
        match result {
            Ok(()) | Err(ratewise::Error::UnknownPermit(_)) => {
                self.done.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(e).py(py),
        }
    }

    fn __repr__(&self) -> String {
        format!("Permit(id={}, provider='{}')", self.id.0, self.decision.provider)
    }
}

/// The class of an HTTP status code: "success", "rate_limited", "overloaded", ... A 429 whose
/// error body type says the account is out of credit (`insufficient_quota`) is "forbidden".
#[pyfunction]
#[pyo3(signature = (code, error_type = None))]
pub fn status_from_http(
    py: Python<'_>,
    #[pyo3(from_py_with = int64)] code: i64,
    error_type: Option<&str>,
) -> PyResult<&'static str> {
    Ok(Status::from_http_with_error_type(code, error_type).py(py)?.as_str())
}

/// The class of an error event inside a 2xx stream by its error type (docs/design.md §6):
/// "overloaded", "rate_limited", "forbidden", "client_error" or "server_error"; `None` for no type.
#[pyfunction]
#[pyo3(signature = (error_type = None))]
pub fn status_from_error_event(error_type: Option<&str>) -> Option<&'static str> {
    Status::from_error_event(error_type).map(|s| s.as_str())
}

/// Whether another attempt can succeed after an outcome of `status` ("rate_limited",
/// "overloaded", "server_error", "timeout"): what the SDK wrappers retry (docs/design.md §6).
#[pyfunction]
pub fn is_retryable(py: Python<'_>, status: &str) -> PyResult<bool> {
    Ok(status.parse::<Status>().py(py)?.is_retryable())
}

/// A conservative estimate of a request's input tokens (docs/design.md §12): `messages` is a
/// list of messages or a request body (dicts, lists, str, numbers), counted as the core counts
/// them in every language.
#[pyfunction]
pub fn estimate_tokens(py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<u64> {
    crate::config::estimate(py, messages)
}
