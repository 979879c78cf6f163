//! A probe filter for the benchmark: it makes the kinds of host calls llm-gateway makes on a
//! routed OpenAI request (read from a trace of the module), switched on group by group by its
//! plugin configuration, and does no other work. `bench/bench.py` (BENCH_PROBE=1) runs it
//! under the same load as scenario (b) to price each group in Envoy CPU time per request.
//!
//! Groups (all off by default):
//! - `read`: 3 request-header reads, 2 `get_property` of dynamic metadata, 1 clock read
//! - `headers`: set `:path` and `x-llm-gateway-cluster` (the same values: a re-route),
//!   set `authorization`, remove 6 absent credential headers and `content-length`
//! - `body`: the request body read at end of stream and replaced by the same bytes
//! - `props`: 3 `set_property` (filter state) on request headers, 7 at the response's end
//! - `response`: read `:status` and `content-type`, read each response body chunk
//! - `metrics`: 5 histogram records and 5 counter increments at the response's end

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot::default()) });
}}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Groups {
    read: bool,
    headers: bool,
    body: bool,
    props: bool,
    response: bool,
    metrics: bool,
}

#[derive(Default)]
struct ProbeRoot {
    groups: Groups,
    metrics: Vec<(u32, MetricType)>,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        self.groups = if raw.is_empty() {
            Groups::default()
        } else {
            match serde_json::from_slice(&raw) {
                Ok(groups) => groups,
                Err(_) => return false,
            }
        };
        for i in 0..5 {
            for kind in [MetricType::Histogram, MetricType::Counter] {
                let name = format!("probe_{i}_{kind:?};model=gpt-4o-mini");
                if let Ok(id) = hostcalls::define_metric(kind, &name) {
                    self.metrics.push((id, kind));
                }
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe { groups: self.groups, metrics: self.metrics.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    groups: Groups,
    metrics: Vec<(u32, MetricType)>,
}

impl Probe {
    fn finish(&self) {
        if self.groups.props {
            for key in ["llm_input_tokens", "llm_output_tokens", "llm_total_tokens", "llm_usage_source", "llm_duration_ms", "llm_ttft_ms", "llm_status"] {
                let _ = hostcalls::set_property(vec![key], Some(b"412"));
            }
        }
        if self.groups.metrics {
            for (id, kind) in &self.metrics {
                let _ = match kind {
                    MetricType::Counter => hostcalls::increment_metric(*id, 412),
                    _ => hostcalls::record_metric(*id, 412),
                };
            }
        }
    }
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let g = self.groups;
        let mut path = String::from("/v1/chat/completions");
        if g.read {
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":method");
            if let Ok(Some(p)) = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path") {
                path = p;
            }
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, "x-llm-model");
            let _ = hostcalls::get_property(vec!["metadata", "filter_metadata", "llm", "model"]);
            let _ = hostcalls::get_property(vec!["metadata", "filter_metadata", "llm", "body_error"]);
            let _ = hostcalls::get_current_time();
        }
        if g.props {
            let _ = hostcalls::set_property(vec!["llm_model"], Some(b"bench-gpt"));
            let _ = hostcalls::set_property(vec!["llm_provider"], Some(b"bench-openai"));
            let _ = hostcalls::set_property(vec!["llm_target_model"], Some(b"gpt-4o-mini"));
        }
        if g.headers {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-llm-gateway-cluster", Some("upstream"));
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, ":path", Some(&path));
            for name in ["x-llm-model", "authorization", "x-api-key", "api-key", "x-goog-api-key"] {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
            }
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "authorization", Some("Bearer sk-bench-upstream"));
        }
        if g.headers || g.body {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "content-length");
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.groups.body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if let Ok(Some(body)) = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &body);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.groups.response {
            let _ = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status");
            let _ = hostcalls::get_map_value(MapType::HttpResponseHeaders, "content-type");
        }
        if end_of_stream {
            self.finish();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.groups.response && body_size > 0 {
            let _ = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size);
            let _ = hostcalls::get_current_time();
        }
        if end_of_stream {
            self.finish();
        }
        Action::Continue
    }
}
