//! The first-event watcher: the module as a second upstream HTTP filter, after the attempt
//! instance (nearer the codec). It announces itself on each attempt's request; when the
//! attempt holds a stream's headers (`engine::first_event`), it watches the body, which it
//! still sees, and resumes the attempt once the first event is complete or the stream ends.

use super::attempt::report;
use super::host::{self, OrWarn};
use crate::engine::{FirstEventScan, Framing, FIRST_EVENT_HOLDER_STATE, FIRST_EVENT_WATCH_STATE};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

pub struct Watcher {
    context_id: u32,
    scan: Option<FirstEventScan>,
}

impl Watcher {
    pub fn new(context_id: u32) -> Self {
        Watcher { context_id, scan: None }
    }

    /// The holding attempt's context id, once (the state is cleared).
    fn take_holder() -> Option<u32> {
        let raw = host::property(&[FIRST_EVENT_HOLDER_STATE]).ok().flatten()?;
        let id = std::str::from_utf8(&raw).ok()?.parse::<u32>().ok()?;
        host::set_property(&[FIRST_EVENT_HOLDER_STATE], b"").or_warn("clearing the first-event holder");
        Some(id)
    }

    /// The first event is complete (or the stream ended): the attempt goes on. Envoy runs
    /// the resume once this callback returns, before the chunk moves on.
    fn resume_holder(&mut self) {
        self.scan = None;
        let Some(holder) = Self::take_holder() else { return };
        report(|a| a.reason = "ok".to_string());
        if host::set_effective_context(holder).is_ok() {
            host::resume_response().or_warn("resuming the held attempt");
        }
        host::set_effective_context(self.context_id).or_warn("restoring the effective context");
    }
}

impl Context for Watcher {}

impl HttpContext for Watcher {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        host::set_property(&[FIRST_EVENT_WATCH_STATE], b"1").or_warn("announcing the first-event watcher");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // Runs before the attempt's (encoding goes from the codec up): any stream may be held.
        let content_type = host::header(MapType::HttpResponseHeaders, "content-type").ok().flatten();
        self.scan = Framing::of(content_type.as_deref()).map(FirstEventScan::new);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let Some(scan) = self.scan.as_mut() else { return Action::Continue };
        let chunk = host::buffer(BufferType::HttpResponseBody, 0, size).unwrap_or_default();
        if scan.feed(&chunk) || end_of_stream {
            self.resume_holder();
        }
        Action::Continue
    }

    /// A body that ends with trailers ends without `end_of_stream` in the body callback.
    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if self.scan.is_some() {
            self.resume_holder();
        }
        Action::Continue
    }
}
