//! Probe filter for the fallback design measurements (bench/fallback-probe/run.sh).
use proxy_wasm::hostcalls as h;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::RefCell;

thread_local! { static GLOBAL: RefCell<Vec<String>> = RefCell::new(Vec::new()); }

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(R { role: String::new() }) });
}}
struct R { role: String }
impl Context for R {}
impl RootContext for R {
    fn on_configure(&mut self, size: usize) -> bool {
        self.role = String::from_utf8_lossy(&h::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default()).into_owned();
        true
    }
    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> { Some(Box::new(S { role: self.role.clone(), id, t0: 0 })) }
    fn get_type(&self) -> Option<ContextType> { Some(ContextType::HttpContext) }
}
struct S { role: String, id: u32, t0: u128 }
impl Context for S {}
fn now() -> u128 { h::get_current_time().map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap_or(0) }
fn prop(p: &[&str]) -> String { match h::get_property(p.to_vec()) { Ok(Some(b)) => format!("{:?}", String::from_utf8_lossy(&b)), Ok(None) => "None".into(), Err(e) => format!("ERR{e:?}") } }
fn hdr(m: MapType, n: &str) -> String { format!("{:?}", h::get_map_value(m, n).ok().flatten()) }
impl S { fn log(&self, s: String) { let _ = h::log(LogLevel::Warn, &format!("PROBE {} ctx={} t={} {}", self.role, self.id, now() - self.t0, s)); } }
impl HttpContext for S {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        self.t0 = now();
        if self.role == "down" {
            let _ = h::set_property(vec!["wasm.plan"], Some(format!("plan-from-ctx-{}", self.id).as_bytes()));
            GLOBAL.with(|g| g.borrow_mut().push(format!("down{}", self.id)));
            self.log(format!("req eos={eos}"));
        } else {
            let g = GLOBAL.with(|g| g.borrow().join(","));
            self.log(format!("req eos={eos} plan={} global=[{}] attempt_hdr={} attempt_prop={} meta={} addr={} cluster={} reqid={} body_done?",
                prop(&["wasm.plan"]), g, hdr(MapType::HttpRequestHeaders, "x-envoy-attempt-count"),
                prop(&["upstream", "request_attempt_count"]), prop(&["xds", "upstream_host_metadata", "filter_metadata", "llm", "provider"]),
                prop(&["upstream", "address"]), prop(&["xds", "cluster_name"]), hdr(MapType::HttpRequestHeaders, "x-request-id")));
            GLOBAL.with(|g| g.borrow_mut().push(format!("up{}", self.id)));
            let _ = h::set_property(vec!["wasm.up_wrote"], Some(format!("up-ctx-{}", self.id).as_bytes()));
            let _ = h::set_map_value(MapType::HttpRequestHeaders, ":path", Some("/v1/chat/completions"));
            if self.role == "uplocal" && prop(&["xds", "upstream_host_metadata", "filter_metadata", "llm", "provider"]) == "\"first\"" {
                let r = h::reset_http_request();
                self.log(format!("reset -> {r:?}"));
                return Action::Pause;
            }
        }
        Action::Continue
    }
    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        self.log(format!("reqbody size={size} eos={eos}"));
        Action::Continue
    }
    fn on_http_response_headers(&mut self, _n: usize, eos: bool) -> Action {
        self.log(format!("resp status={} eos={eos} up_wrote={} details={} global=[{}] attempt_hdr={}", hdr(MapType::HttpResponseHeaders, ":status"), prop(&["wasm.up_wrote"]), prop(&["response","code_details"]), GLOBAL.with(|g| g.borrow().join(",")), hdr(MapType::HttpResponseHeaders, "x-probe-attempt")));
        if self.role == "uphold" {
            // The peek instance (after this one, nearer the codec) resumes us at the first event.
            let _ = h::set_property(vec!["wasm.holder"], Some(self.id.to_string().as_bytes()));
            return Action::Pause;
        }
        if self.role == "peek" { return Action::Continue; }
        if self.role.starts_with("up") {
            let _ = h::set_map_value(MapType::HttpResponseHeaders, "x-probe-attempt", Some(&format!("up{}", self.id)));
            if hdr(MapType::HttpResponseHeaders, ":status") != "Some(\"200\")" {
                let _ = h::set_map_value(MapType::HttpResponseHeaders, "x-llm-retry", Some("1"));
            }
        }
        Action::Continue
    }
    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        self.log(format!("respbody size={size} eos={eos}"));
        if self.role == "peek" {
            let holder = h::get_property(vec!["wasm.holder"]).ok().flatten().and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse::<u32>().ok());
            let body = h::get_buffer(BufferType::HttpResponseBody, 0, size).ok().flatten().unwrap_or_default();
            if let Some(holder) = holder.filter(|_| eos || body.windows(2).any(|w| w == b"\n\n")) {
                let _ = h::set_property(vec!["wasm.holder"], Some(b""));
                let switched = h::set_effective_context(holder);
                let resumed = switched.and_then(|_| h::resume_http_response());
                let _ = h::set_effective_context(self.id);
                self.log(format!("first event: resumed holder {holder}: {resumed:?}"));
            }
        }
        Action::Continue
    }
    fn on_log(&mut self) { self.log(format!("onlog up_wrote={} global=[{}]", prop(&["wasm.up_wrote"]), GLOBAL.with(|g| g.borrow().join(",")))); }
}
