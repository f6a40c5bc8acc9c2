//! The mock's response bodies: a whole buffer (JSON), or an SSE stream paced by a timer, with
//! the injected cuts and stalls, that counts how it ended.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::model::{Cut, Model, Stall};

/// A response body.
pub enum MockBody {
    /// The whole body at once (its length is known, so hyper sends `content-length`).
    Full(Option<Bytes>),
    /// Server-sent events (chunked).
    Sse(Box<SseBody>),
}

impl MockBody {
    /// A buffer.
    pub fn full(b: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(b.into()))
    }
}

/// An SSE stream of pre-built events.
pub struct SseBody {
    events: Vec<Bytes>,
    next: usize,
    chunk: Duration,
    cut: Option<Cut>,
    error_event: Option<Bytes>,
    stall: Option<Stall>,
    timer: Option<Pin<Box<Sleep>>>,
    waited: bool,
    ended: bool,
    model: Arc<Model>,
}

impl SseBody {
    /// Streams `events` with `chunk` between them. With no pacing and no fault the events go
    /// out as one frame: nothing could observe the difference but the cost of more writes.
    /// `error_event` is what a cut with an error status sends.
    pub fn new(
        mut events: Vec<Bytes>,
        chunk: Duration,
        cut: Option<Cut>,
        error_event: Option<Bytes>,
        stall: Option<Stall>,
        model: Arc<Model>,
    ) -> SseBody {
        if chunk.is_zero() && cut.is_none() && stall.is_none() && events.len() > 1 {
            let mut all = Vec::with_capacity(events.iter().map(Bytes::len).sum());
            for e in &events {
                all.extend_from_slice(e);
            }
            events = vec![Bytes::from(all)];
        }
        SseBody {
            events,
            next: 0,
            chunk,
            cut,
            error_event,
            stall: stall.filter(|s| s.after.is_some()),
            timer: None,
            waited: false,
            ended: false,
            model,
        }
    }

    fn sleep(&mut self, d: Duration) {
        let at = Instant::now() + d;
        match self.timer.as_mut() {
            Some(t) => t.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn end(&mut self, ok: bool, cut: bool) {
        self.ended = true;
        self.model.with_stats(|s| {
            s.count_status(200);
            if ok {
                s.ok += 1;
            }
            if cut {
                s.streams_cut += 1;
            }
        });
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.ended {
            // The client (or the server, on its behalf) gave up before the end: charged, not ok.
            self.ended = true;
            self.model.with_stats(|s| {
                s.count_status(200);
                s.aborted += 1;
            });
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Sse(s) => s.poll_event(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Sse(s) => s.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Sse(_) => SizeHint::default(),
        }
    }
}

impl SseBody {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if let Some(t) = self.timer.as_mut() {
                if t.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.timer = None;
            }
            if self.ended {
                return Poll::Ready(None);
            }
            // As in the Python mock, a cut always cuts: after `after` events, or after the
            // last one when the stream is shorter.
            let cut_now = self.cut.filter(|c| self.next >= c.after.min(self.events.len()));
            if cut_now.is_none() && self.next >= self.events.len() {
                self.end(true, false);
                return Poll::Ready(None);
            }
            if self.next > 0 && !self.waited {
                self.waited = true;
                let stall = self.stall.filter(|s| s.after == Some(self.next)).map(|s| s.duration);
                let mut pause = stall.unwrap_or(Duration::ZERO) + self.chunk;
                if cut_now.is_some() && pause.is_zero() {
                    // Let the server flush the events already sent: an aborted body would
                    // otherwise take the unflushed ones down with it.
                    pause = Duration::from_millis(1);
                }
                if !pause.is_zero() {
                    self.sleep(pause);
                    continue;
                }
            }
            self.waited = false;
            if cut_now.is_some() {
                self.end(false, true);
                return match self.error_event.take() {
                    Some(e) => Poll::Ready(Some(Ok(Frame::data(e)))),
                    // No terminating chunk: the client sees an incomplete chunked body.
                    None => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "mock: stream cut (injected fault)",
                    )))),
                };
            }
            let e = self.events[self.next].clone();
            self.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(e))));
        }
    }
}
