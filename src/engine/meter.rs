//! What a response has shown so far: usage, generated text, first-token time.

use crate::llm::ir::StreamEvent;
use crate::usage::{tokens_from_byte_count, Usage, UsageSource};

#[derive(Debug, Default)]
pub struct Meter {
    /// The provider's own report, once seen.
    pub usage: Usage,
    /// Generated text seen (for an estimate when no report comes).
    pub generated_bytes: usize,
    pub first_token_ms: Option<u64>,
    /// The last report came after the last output seen, so it covers all of it. A report
    /// followed by more output is partial (Anthropic's `message_start` counts 1 output token,
    /// a stream cut or abandoned before its final usage event) and is not trusted below the
    /// estimate.
    pub report_is_final: bool,
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
        merge(&mut u.cache_write_1h, reported.cache_write_1h);
        merge(&mut u.reasoning, reported.reasoning);
        u.source = UsageSource::Reported;
        self.report_is_final = true;
    }

    pub fn generated(&mut self, bytes: usize, now_ms: u64) {
        if bytes > 0 {
            self.report_is_final = false;
            self.generated_bytes += bytes;
            self.first_token_ms.get_or_insert(now_ms);
        }
    }

    /// The usage to record and settle for an answered request: the provider's report where it
    /// is complete, otherwise the estimate from the prompt and from the output delivered.
    /// A side the report leaves out is estimated; an answer cut short is charged at least
    /// what was generated. Never 0 output when output reached the client.
    pub fn settled_usage(&self, input_estimate: u64) -> Usage {
        let output_estimate = tokens_from_byte_count(self.generated_bytes);
        let reported = &self.usage;
        if reported.source != UsageSource::Reported {
            return Usage {
                input: Some(input_estimate),
                output: Some(output_estimate),
                source: UsageSource::Estimated,
                ..Usage::default()
            };
        }
        let input = reported.input.unwrap_or(input_estimate);
        let output = match reported.output {
            Some(out) if self.report_is_final => out,
            Some(out) => out.max(output_estimate),
            None => output_estimate,
        };
        let exact = reported.input.is_some() && reported.output == Some(output);
        Usage {
            input: Some(input),
            output: Some(output),
            source: if exact { UsageSource::Reported } else { UsageSource::Estimated },
            ..*reported
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
