//! Fallback until a stream's first event, within Envoy's retries.
//!
//! Envoy forwards an attempt's response headers at once, so a stream that dies after its
//! 200 headers and before its first event would reach the client as a reset. With a second
//! upstream instance of the module, `{"role": "first-event"}`, placed after the attempt
//! instance (nearer the codec), the attempt pauses a 200 stream's headers: the router has
//! seen no response yet, so the per-try timeout keeps running and a reset is a reset
//! before the response, which Envoy retries. The watcher instance still sees the body
//! (it is before the paused filter) and, once the first event is complete, resumes the
//! attempt (measured with bench/fallback-probe: `run.sh dies ok ok uphold`).

use super::fallback::{Attempt, AttemptPlan};
use super::Gateway;

/// Filter state set by the watcher instance on each attempt's request: the attempt may
/// only hold a stream when a watcher will resume it.
pub const FIRST_EVENT_WATCH_STATE: &str = "llm_first_event_watch";
/// Filter state: the context id of the attempt holding its stream's headers.
pub const FIRST_EVENT_HOLDER_STATE: &str = "llm_first_event_holder";
/// The attempt-log reason of a stream held until its first event (an attempt that keeps
/// it died before that event).
pub const NO_FIRST_EVENT_REASON: &str = "no_first_event";
/// The plugin configuration of the watcher instance.
pub const FIRST_EVENT_CONFIG: &str = r#"{"role": "first-event"}"#;

/// How a stream's events are framed, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: an event ends with an empty line.
    Sse,
    /// `application/vnd.amazon.eventstream` (Bedrock): a message starts with its total
    /// length (4 bytes, big-endian).
    EventStream,
}

impl Framing {
    pub fn of(content_type: Option<&str>) -> Option<Framing> {
        let media = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "text/event-stream" => Some(Framing::Sse),
            "application/vnd.amazon.eventstream" => Some(Framing::EventStream),
            _ => None,
        }
    }
}

/// Finds the end of a stream's first event in chunks as they arrive (split anywhere).
#[derive(Debug, Clone)]
pub struct FirstEventScan {
    framing: Framing,
    /// SSE: the last bytes of the previous chunk (an empty line may span chunks).
    tail: Vec<u8>,
    /// Eventstream: the first bytes seen (the length prefix), and the count of all bytes.
    prefix: Vec<u8>,
    seen: usize,
}

impl FirstEventScan {
    pub fn new(framing: Framing) -> Self {
        FirstEventScan { framing, tail: Vec::new(), prefix: Vec::new(), seen: 0 }
    }

    /// True once the first event is complete (with this chunk or before).
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        match self.framing {
            Framing::Sse => {
                let mut window = std::mem::take(&mut self.tail);
                window.extend_from_slice(chunk);
                let done = window.windows(2).any(|w| w == b"\n\n") || window.windows(4).any(|w| w == b"\r\n\r\n");
                let keep = window.len().saturating_sub(3);
                self.tail = window.get(keep..).map(<[u8]>::to_vec).unwrap_or_default();
                done
            }
            Framing::EventStream => {
                self.seen = self.seen.saturating_add(chunk.len());
                let missing = 4usize.saturating_sub(self.prefix.len());
                self.prefix.extend(chunk.iter().take(missing));
                let Ok(prefix) = <[u8; 4]>::try_from(self.prefix.as_slice()) else { return false };
                let total = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
                self.seen >= total
            }
        }
    }
}

impl Gateway {
    /// Per attempt, at response headers: whether to hold a stream until its first event
    /// (a 2xx stream with a body to come, while a target of the chain is left). The shell
    /// holds only when the watcher instance announced itself.
    pub fn waits_for_first_event(
        &self,
        plan: &AttemptPlan,
        status: u16,
        content_type: Option<&str>,
        body_follows: bool,
        tried: &[Attempt],
    ) -> bool {
        (200..300).contains(&status)
            && body_follows
            && Framing::of(content_type).is_some()
            && self.next_untried(plan, tried).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_first_event_ends_with_an_empty_line_split_anywhere() {
        let stream = b"event: message_start\ndata: {}\n\nevent: ping\n\n";
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            let mut scan = FirstEventScan::new(Framing::Sse);
            let first = scan.feed(a);
            let end = b"event: message_start\ndata: {}\n\n".len();
            assert_eq!(first, split >= end, "split at {split}");
            assert!(first || scan.feed(b), "split at {split}");
        }
        let mut scan = FirstEventScan::new(Framing::Sse);
        assert!(!scan.feed(b"data: {}\r\n\r"));
        assert!(scan.feed(b"\n"));
        let mut scan = FirstEventScan::new(Framing::Sse);
        assert!(!scan.feed(b"data: {\"x\": 1}\n"));
        assert!(!scan.feed(b""));
    }

    #[test]
    fn eventstream_first_message_is_its_length() {
        let mut message = 20u32.to_be_bytes().to_vec();
        message.extend([0u8; 16]);
        for split in 0..message.len() {
            let mut scan = FirstEventScan::new(Framing::EventStream);
            let (a, b) = message.split_at(split);
            assert!(!scan.feed(a) || split == message.len());
            assert!(scan.feed(b), "split at {split}");
        }
        let mut scan = FirstEventScan::new(Framing::EventStream);
        assert!(!scan.feed(&u32::MAX.to_be_bytes()));
        assert!(!scan.feed(&[0; 1000]));
    }

    #[test]
    fn framing_from_content_type() {
        assert_eq!(Framing::of(Some("text/event-stream; charset=utf-8")), Some(Framing::Sse));
        assert_eq!(Framing::of(Some("application/vnd.amazon.eventstream")), Some(Framing::EventStream));
        assert_eq!(Framing::of(Some("application/json")), None);
        assert_eq!(Framing::of(None), None);
    }
}
