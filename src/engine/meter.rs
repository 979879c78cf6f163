//! What a response has shown so far: usage, generated text, first-token time.

use crate::llm::ir::StreamEvent;
use crate::usage::{Usage, UsageSource};

#[derive(Debug, Default)]
pub struct Meter {
    /// The provider's own report, once seen.
    pub usage: Usage,
    /// Generated text seen (for an estimate when no report comes).
    pub generated_bytes: usize,
    pub first_token_ms: Option<u64>,
}

impl Meter {
    /// A provider report: counts present replace earlier ones (streams report usage in
    /// several events, each cumulative).
    pub fn report(&mut self, reported: &Usage) {
        let u = &mut self.usage;
        let merge = |old: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *old = new;
            }
        };
        merge(&mut u.input, reported.input);
        merge(&mut u.output, reported.output);
        merge(&mut u.cached_input, reported.cached_input);
        merge(&mut u.cache_write, reported.cache_write);
        merge(&mut u.reasoning, reported.reasoning);
        u.source = UsageSource::Reported;
    }

    pub fn generated(&mut self, bytes: usize, now_ms: u64) {
        if bytes > 0 {
            self.generated_bytes += bytes;
            self.first_token_ms.get_or_insert(now_ms);
        }
    }

    /// Reads one decoded stream event.
    pub fn observe(&mut self, event: &StreamEvent, now_ms: u64) {
        match event {
            StreamEvent::Usage(usage) => self.report(usage),
            StreamEvent::TextDelta { text } | StreamEvent::ThinkingDelta { text } => self.generated(text.len(), now_ms),
            StreamEvent::ToolCallStart { name, .. } => self.generated(name.len(), now_ms),
            StreamEvent::ToolCallDelta { arguments, .. } => self.generated(arguments.len(), now_ms),
            _ => {}
        }
    }
}
