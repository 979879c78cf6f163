//! Token usage of one exchange. Unknown is not zero: every count is an `Option`.

/// Where the counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageSource {
    /// Nothing known (e.g. the request failed before the provider answered).
    #[default]
    None,
    /// The provider's own accounting.
    Reported,
    /// Estimated by the gateway (the provider sent no usage, or the client left mid-stream).
    Estimated,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::None => "none",
            UsageSource::Reported => "reported",
            UsageSource::Estimated => "estimated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// All input tokens, cached and cache-written ones included (OpenAI's convention;
    /// Anthropic decoders add its separate cache counts in).
    pub input: Option<u64>,
    /// All output tokens, reasoning included (Gemini decoders add `thoughtsTokenCount`).
    pub output: Option<u64>,
    /// Input tokens served from the provider's prompt cache (a subset of `input`).
    pub cached_input: Option<u64>,
    /// Input tokens written to the provider's prompt cache (a subset of `input`;
    /// Anthropic `cache_creation_input_tokens`).
    pub cache_write: Option<u64>,
    /// Of `cache_write`, the tokens written with a 1-hour TTL (priced above 5-minute writes;
    /// Anthropic `cache_creation.ephemeral_1h_input_tokens`, Bedrock `cacheDetails` with
    /// `ttl: "1h"`). `None` when the provider reports no split.
    pub cache_write_1h: Option<u64>,
    /// Output tokens spent on reasoning (a subset of `output`).
    pub reasoning: Option<u64>,
    pub source: UsageSource,
}

impl Usage {
    /// A stream's later usage report: the counts it carries replace earlier ones (the IR's
    /// cumulative convention), and its source is the usage's.
    pub fn update(&mut self, new: &Usage) {
        self.input = new.input.or(self.input);
        self.output = new.output.or(self.output);
        self.cached_input = new.cached_input.or(self.cached_input);
        self.cache_write = new.cache_write.or(self.cache_write);
        self.cache_write_1h = new.cache_write_1h.or(self.cache_write_1h);
        self.reasoning = new.reasoning.or(self.reasoning);
        self.source = new.source;
    }

    pub fn total(&self) -> Option<u64> {
        match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        }
    }

    /// Counts by OpenTelemetry `gen_ai.token.type`, known counts only.
    pub fn by_type(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("input", self.input),
            ("output", self.output),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
            ("cache_write_1h", self.cache_write_1h),
            ("reasoning", self.reasoning),
        ]
        .into_iter()
        .filter_map(|(name, count)| count.map(|c| (name, c)))
    }
}

/// Tokens in `text_bytes` bytes of text the provider did not account for, from the byte count
/// alone: about four bytes of English per token for current BPE vocabularies (one division,
/// no look at the text; admission's estimate of a prompt is
/// `crate::quota::estimate::char_class_tokens`). Never zero for non-empty text.
pub fn tokens_from_byte_count(text_bytes: usize) -> u64 {
    (text_bytes as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hour_cache_writes_are_a_token_type_of_their_own() {
        let u = Usage { input: Some(1020), cache_write: Some(1000), cache_write_1h: Some(750), ..Usage::default() };
        let types: Vec<_> = u.by_type().collect();
        assert_eq!(types, [("input", 1020), ("cache_write", 1000), ("cache_write_1h", 750)]);
    }
}
