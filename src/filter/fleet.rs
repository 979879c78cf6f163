//! The rate-limit service calls of fleet-wide budgets (`quota::fleet`), sent as gRPC over
//! the host's HTTP callouts. Why not `proxy_grpc_call`: the SDK panics (killing the worker's
//! VM) on the status Envoy returns for an unknown cluster, and a callout the SDK did not
//! register never reaches the module; its HTTP callout returns that status as an error.

use super::host;
use crate::quota::fleet::{self, Fleet, Verdict};
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

/// Sends one unary call; the token of the callout, or why it could not be sent.
pub fn call(fleet: &Fleet, method: &str, message: &[u8]) -> Result<u32, String> {
    let path = format!("/{}/{method}", fleet::SERVICE);
    let headers = vec![
        (":method", "POST"),
        (":path", path.as_str()),
        (":authority", fleet.authority.as_str()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    let body = fleet::grpc_frame(message);
    host::tally(host::Call::Callout);
    proxy_wasm::hostcalls::dispatch_http_call(
        &fleet.cluster,
        headers,
        Some(&body),
        Vec::new(),
        Duration::from_millis(fleet.timeout_ms),
    )
    .map_err(|status| format!("cluster {:?}: {status:?}", fleet.cluster))
}

/// Whether the service counted the report whose answer just arrived.
pub fn report_taken(num_headers: usize, body_size: usize) -> bool {
    answer(num_headers, body_size).0 == 0
}

/// The verdict of the check whose answer just arrived (`num_headers` 0: no answer, e.g. a
/// timeout or a refused connection).
pub fn verdict(fleet: &Fleet, num_headers: usize, body_size: usize) -> Verdict {
    let (status, message) = answer(num_headers, body_size);
    fleet.verdict(status, &message)
}

/// The gRPC status and message of the callout answer being delivered.
fn answer(num_headers: usize, body_size: usize) -> (u32, Vec<u8>) {
    if num_headers == 0 {
        (14, Vec::new())
    } else {
        let headers = host::headers(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let trailers = host::headers(MapType::HttpCallResponseTrailers).unwrap_or_default();
        let find = |map: &[(String, String)], name: &str| {
            map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let grpc_status = find(&trailers, "grpc-status").or_else(|| find(&headers, "grpc-status"));
        let body = host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
        let (status, message) = fleet::grpc_answer(find(&headers, ":status").as_deref(), grpc_status.as_deref(), &body);
        (status, message.to_vec())
    }
}
