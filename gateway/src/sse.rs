//! Server-sent events, read incrementally from an upstream body and written to a client.
//!
//! The reader splits on blank lines (LF or CRLF), joins multi-line `data:`, ignores comments
//! (`: ping`) and fields it does not use (`id:`, `retry:`), and keeps an event split across
//! chunks until its end arrives. Its buffer is bounded: an event larger than the limit is an
//! error, not unbounded memory.

use bytes::{Bytes, BytesMut};

/// One event: its `event:` name (empty when none) and its `data:` joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field.
    pub event: String,
    /// The `data:` lines.
    pub data: String,
}

/// An incremental SSE reader.
#[derive(Debug)]
pub struct Reader {
    buf: BytesMut,
    /// Bytes of `buf` already searched for an event's end (no rescans: linear in the input).
    scanned: usize,
    max_event_bytes: usize,
}

/// An event bigger than the reader's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

impl Reader {
    /// A reader that refuses events over `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Reader {
        Reader {
            buf: BytesMut::new(),
            scanned: 0,
            max_event_bytes,
        }
    }

    /// Adds `chunk` and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, skip)) = find_end(&self.buf, self.scanned.saturating_sub(2)) {
            let raw = self.buf.split_to(end + skip);
            self.scanned = 0;
            if let Some(e) = parse(&raw[..end]) {
                out.push(e);
            }
        }
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_event_bytes {
            return Err(TooLarge);
        }
        Ok(out)
    }
}

/// The end of the first event: `(index of the blank line, its length)`.
fn find_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn parse(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let mut event = String::new();
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = value.to_string(),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    data.map(|data| Event { event, data })
}

/// `data: <json>\n\n` (a value of several lines is written as several `data:` lines).
pub fn data(json: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + 8);
    data_lines(&mut b, json);
    b.extend_from_slice(b"\n");
    b.freeze()
}

/// `event: <name>\ndata: <json>\n\n`.
pub fn named(event: &str, json: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(event.len() + json.len() + 16);
    b.extend_from_slice(b"event: ");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\n");
    data_lines(&mut b, json);
    b.extend_from_slice(b"\n");
    b.freeze()
}

fn data_lines(b: &mut BytesMut, value: &str) {
    for line in value.split('\n') {
        b.extend_from_slice(b"data: ");
        b.extend_from_slice(line.as_bytes());
        b.extend_from_slice(b"\n");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut r = Reader::new(1 << 20);
        assert_eq!(r.push(b"event: message_start\ndata: {\"a\"").unwrap(), vec![]);
        let got = r
            .push(b":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n")
            .unwrap();
        assert_eq!(
            got,
            vec![
                Event {
                    event: "message_start".into(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    event: String::new(),
                    data: "x\ny".into()
                },
                Event {
                    event: String::new(),
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn an_event_over_the_limit_is_refused() {
        let mut r = Reader::new(8);
        assert_eq!(r.push(b"data: 0123456789"), Err(TooLarge));
    }

    #[test]
    fn writers() {
        assert_eq!(&data("{}")[..], b"data: {}\n\n");
        assert_eq!(&named("ping", "{}")[..], b"event: ping\ndata: {}\n\n");
        // Several lines stay several data lines, and read back as they were.
        let two = data("x\ny");
        assert_eq!(&two[..], b"data: x\ndata: y\n\n");
        let mut r = Reader::new(64);
        assert_eq!(r.push(&two).unwrap()[0].data, "x\ny");
    }

    #[test]
    fn an_end_split_across_pushes_is_found() {
        let mut r = Reader::new(64);
        assert!(r.push(b"data: a\n").unwrap().is_empty());
        assert_eq!(r.push(b"\ndata: b\n\n").unwrap().len(), 2);
    }
}
