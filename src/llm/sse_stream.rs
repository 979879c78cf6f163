//! What every SSE-based provider stream decoder shares (OpenAI, Anthropic, Gemini): incremental
//! framing, ending exactly once (`Done` or one `Error`, then nothing), and what a body that
//! stops without the provider's end marker becomes. Each provider supplies only its per-event
//! decoding ([`EventDecoder`]).

use super::ir::{ErrorKind, ProviderError, StreamEvent};
use crate::config::Limits;
use crate::stream::sse::{SseDecoder, SseEvent};

/// Whether the stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The decoder pushed the stream's last event (`Done` or an `Error`).
    End,
}

/// A provider's per-event decoding.
pub trait EventDecoder: Default {
    /// Start of the message for a framing error (an event beyond the bound, bad UTF-8...).
    const FRAMING_ERROR: &'static str;

    /// Decodes one event into `out`.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow;

    /// The body ended without the end marker: whether that still is a complete answer (`Done`)
    /// rather than a stream cut short (an `Error`).
    fn complete_without_marker(&self) -> bool;
}

/// The stream's last event: a server-side failure (HTTP 502 for the client).
pub fn stream_error(message: String) -> StreamEvent {
    StreamEvent::Error(ProviderError { kind: ErrorKind::Server, status: 502, message })
}

/// Pushes [`stream_error`] and ends the stream.
pub fn fail(out: &mut Vec<StreamEvent>, message: String) -> Flow {
    out.push(stream_error(message));
    Flow::End
}

/// An incremental decoder of one provider's SSE stream into IR events.
#[derive(Debug)]
pub struct SseStream<D> {
    sse: SseDecoder,
    /// Reused between feeds.
    events: Vec<SseEvent>,
    ended: bool,
    /// The framing failed (an event beyond the bound): the stream ended on the gateway's error.
    framing_failed: bool,
    decoder: D,
}

impl<D: EventDecoder> Default for SseStream<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: EventDecoder> SseStream<D> {
    /// A decoder bounded by the configuration's default event size.
    pub fn new() -> Self {
        Self::with_event_limit(Limits::default().max_sse_event_bytes)
    }

    /// A decoder that holds at most `max_event_bytes` for one event (the configured
    /// `limits.max_sse_event_bytes`); a larger event ends the stream with an error.
    pub fn with_event_limit(max_event_bytes: usize) -> Self {
        SseStream {
            sse: SseDecoder::new(max_event_bytes),
            events: Vec::new(),
            ended: false,
            framing_failed: false,
            decoder: D::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let result = self.sse.feed(chunk, &mut self.events);
        self.drain(out);
        if let Err(e) = result {
            self.framing_failed |= !self.ended;
            self.fail(out, format!("{}: {e}", D::FRAMING_ERROR));
        }
    }

    /// Whether the stream ended because its framing failed (an event beyond the bound): the
    /// gateway's error, which a passthrough must still tell the client.
    pub fn framing_failed(&self) -> bool {
        self.framing_failed
    }

    /// The body ended: flushes what is buffered, then ends the stream if the provider did not.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let result = self.sse.finish(&mut self.events);
        self.drain(out);
        if let Err(e) = result {
            self.fail(out, format!("{}: {e}", D::FRAMING_ERROR));
        }
        if self.ended {
            return;
        }
        if self.decoder.complete_without_marker() {
            self.ended = true;
            out.push(StreamEvent::Done);
        } else {
            self.fail(out, "provider stream ended early".to_string());
        }
    }

    fn fail(&mut self, out: &mut Vec<StreamEvent>, message: String) {
        if !self.ended {
            self.ended = fail(out, message) == Flow::End;
        }
    }

    fn drain(&mut self, out: &mut Vec<StreamEvent>) {
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            if self.ended {
                break;
            }
            self.ended = self.decoder.event(&event, out) == Flow::End;
        }
        // Keep the allocation for the next feed.
        self.events = events;
    }
}
