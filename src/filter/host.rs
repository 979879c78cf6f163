//! The only file that calls the host. The SDK's `hostcalls` panic on any status they do
//! not expect (and on non-UTF-8 header values); a panic kills the worker's VM. So these
//! wrappers declare the proxy-wasm ABI imports themselves and turn every status into a
//! `Result`.

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::ptr::null_mut;

/// A host status other than Ok (the raw ABI code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

type HostResult<T> = Result<T, HostError>;

/// The kinds of host call, for the per-kind breakdown of the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Log,
    Clock,
    HeaderGet,
    HeaderPairs,
    HeaderSet,
    HeaderRemove,
    BufferGet,
    BufferSet,
    LocalReply,
    PropertyGet,
    PropertySet,
    MetricDefine,
    MetricIncrement,
    MetricRecord,
    SharedGet,
    SharedSet,
    Resume,
    Callout,
    EffectiveContext,
}

const CALL_KINDS: usize = Call::EffectiveContext as usize + 1;

impl Call {
    const NAMES: [&'static str; CALL_KINDS] = [
        "log",
        "clock",
        "header_get",
        "header_pairs",
        "header_set",
        "header_remove",
        "buffer_get",
        "buffer_set",
        "local_reply",
        "property_get",
        "property_set",
        "metric_define",
        "metric_increment",
        "metric_record",
        "shared_get",
        "shared_set",
        "resume",
        "http_call",
        "effective_context",
    ];
}

thread_local! {
    /// Host calls made by this VM since the last [`take_calls`], by kind (each wrapper below
    /// counts itself; `tally` is a plain increment, no host call).
    static CALLS: std::cell::Cell<[u32; CALL_KINDS]> = const { std::cell::Cell::new([0; CALL_KINDS]) };
}

/// Counts one host call of `kind` (the wrappers below, and calls made through the SDK).
pub fn tally(kind: Call) {
    CALLS.with(|c| {
        let mut counts = c.get();
        if let Some(n) = counts.get_mut(kind as usize) {
            *n = n.wrapping_add(1);
        }
        c.set(counts);
    });
}

/// Runs `work` without counting its host calls (work shared by many requests, such as the
/// tick's metric flush, is no one request's cost).
pub fn uncounted(work: impl FnOnce()) {
    let before = CALLS.with(std::cell::Cell::get);
    work();
    CALLS.with(|c| c.set(before));
}

/// Host calls since the previous take: the total and the non-zero kinds (`clock=3 log=1`).
/// With `LLM_GATEWAY_COUNT_HOST_CALLS` set, the shell logs this when an exchange ends (the
/// calls of one request when requests arrive one at a time on one worker; see
/// integration/test_host_calls.py).
pub fn take_calls() -> (u64, String) {
    let counts = CALLS.with(|c| c.replace([0; CALL_KINDS]));
    let total = counts.iter().map(|&n| u64::from(n)).sum();
    let kinds: Vec<String> =
        Call::NAMES.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(name, n)| format!("{name}={n}")).collect();
    (total, kinds.join(" "))
}

extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
}

fn check(status: u32) -> HostResult<()> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of bytes the host allocated through the SDK's `proxy_on_memory_allocate`.
///
/// # Safety
/// `data`/`size` must come from a host call that just returned Ok.
unsafe fn take_host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// A status of NotFound is `Ok(None)`.
fn optional(status: u32, data: *mut u8, size: usize) -> HostResult<Option<Vec<u8>>> {
    match status {
        // SAFETY: the host returned Ok with this allocation.
        OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

pub fn log(level: LogLevel, message: &str) {
    tally(Call::Log);
    // SAFETY: pointer and length of a live str.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

thread_local! {
    /// The clock read of the current callback, when one runs inside a [`ClockScope`].
    static CLOCK: std::cell::Cell<(bool, Option<u64>)> = const { std::cell::Cell::new((false, None)) };
}

/// One clock read per callback: inside a scope (held for the length of a callback) the first
/// read is remembered and every later read in that callback returns it (each read is a host
/// call, several microseconds in V8; a callback lasts microseconds). Outside any scope each
/// read asks the host.
pub struct ClockScope(());

impl ClockScope {
    pub fn enter() -> Self {
        CLOCK.with(|c| c.set((true, None)));
        ClockScope(())
    }
}

impl Drop for ClockScope {
    fn drop(&mut self) {
        CLOCK.with(|c| c.set((false, None)));
    }
}

/// The host clock in nanoseconds, read each time and not counted as a call of the exchange:
/// only `filter::profile` (feature `callback-profile`) times itself with it.
#[cfg(feature = "callback-profile")]
pub fn raw_nanos() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: writes one u64 we own.
    match unsafe { proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => nanos,
        _ => 0,
    }
}

/// Host wall clock in milliseconds since the epoch (0 if the host refuses).
pub fn now_ms() -> u64 {
    now_nanos() / 1_000_000
}

/// Host wall clock in nanoseconds since the epoch (0 if the host refuses).
pub fn now_nanos() -> u64 {
    let (scoped, cached) = CLOCK.with(std::cell::Cell::get);
    if let Some(nanos) = cached.filter(|_| scoped) {
        return nanos;
    }
    tally(Call::Clock);
    let mut nanos = 0u64;
    // SAFETY: writes one u64 we own.
    let nanos = match unsafe { proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => nanos,
        _ => 0,
    };
    if scoped {
        CLOCK.with(|c| c.set((true, Some(nanos))));
    }
    nanos
}

pub fn header(map: MapType, name: &str) -> HostResult<Option<String>> {
    tally(Call::HeaderGet);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: key is a live str; the host writes an allocation we then own.
    let status = unsafe { proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size) };
    Ok(optional(status, data, size)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Every header of a map in one host call.
pub fn headers(map: MapType) -> HostResult<Vec<(String, String)>> {
    tally(Call::HeaderPairs);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an allocation we then own.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    Ok(optional(status, data, size)?.map(|bytes| crate::header_map::decode(&bytes)).unwrap_or_default())
}

pub fn set_header(map: MapType, name: &str, value: &str) -> HostResult<()> {
    tally(Call::HeaderSet);
    // SAFETY: live strs.
    check(unsafe { proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn remove_header(map: MapType, name: &str) -> HostResult<()> {
    tally(Call::HeaderRemove);
    // SAFETY: live str.
    match unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) } {
        OK | NOT_FOUND => Ok(()),
        other => Err(HostError(other)),
    }
}

pub fn buffer(kind: BufferType, start: usize, max: usize) -> HostResult<Vec<u8>> {
    tally(Call::BufferGet);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes an allocation we then own.
    let status = unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) };
    Ok(optional(status, data, size)?.unwrap_or_default())
}

pub fn set_buffer(kind: BufferType, start: usize, size: usize, value: &[u8]) -> HostResult<()> {
    tally(Call::BufferSet);
    // SAFETY: live slice.
    check(unsafe { proxy_set_buffer_bytes(kind as u32, start, size, value.as_ptr(), value.len()) })
}

pub fn send_response(status: u16, headers: &[(String, String)], body: &[u8]) -> HostResult<()> {
    tally(Call::LocalReply);
    let headers = crate::header_map::encode(headers);
    let details = "llm_gateway";
    // SAFETY: live buffers for the duration of the call.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn property(path: &[&str]) -> HostResult<Option<Vec<u8>>> {
    tally(Call::PropertyGet);
    let path = property_path(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: live path; the host writes an allocation we then own.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    optional(status, data, size)
}

pub fn set_property(path: &[&str], value: &[u8]) -> HostResult<()> {
    tally(Call::PropertySet);
    let path = property_path(path);
    // SAFETY: live buffers.
    check(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

pub fn define_metric(kind: MetricType, name: &str) -> HostResult<u32> {
    tally(Call::MetricDefine);
    let mut id = 0u32;
    // SAFETY: live str; writes one u32 we own.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> HostResult<()> {
    tally(Call::MetricIncrement);
    // SAFETY: plain values.
    check(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> HostResult<()> {
    tally(Call::MetricRecord);
    // SAFETY: plain values.
    check(unsafe { proxy_record_metric(id, value) })
}

/// Host shared data (all workers, survives VM reloads): value and CAS token.
pub fn shared_data(key: &str) -> HostResult<Option<(Vec<u8>, u32)>> {
    tally(Call::SharedGet);
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: live key; the host writes an allocation we then own, and one u32.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    Ok(optional(status, data, size)?.map(|bytes| (bytes, cas)))
}

/// Writes shared data; `cas` 0 writes unconditionally, otherwise the host refuses a stale token.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> HostResult<()> {
    tally(Call::SharedSet);
    // SAFETY: live buffers.
    check(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

/// Lets a request paused by a callback go on (`StreamType::HttpRequest`).
pub fn resume_request() -> HostResult<()> {
    tally(Call::Resume);
    // SAFETY: plain value.
    check(unsafe { proxy_continue_stream(proxy_wasm::types::StreamType::HttpRequest as u32) })
}

/// Lets a response paused by a callback go on (`StreamType::HttpResponse`); Envoy defers it
/// until the current VM call returns.
pub fn resume_response() -> HostResult<()> {
    tally(Call::Resume);
    // SAFETY: plain value.
    check(unsafe { proxy_continue_stream(proxy_wasm::types::StreamType::HttpResponse as u32) })
}

/// Makes later host calls act on another context of this VM (an error-code hop resumes the
/// downstream instance's stream); fails when that stream is gone.
pub fn set_effective_context(context_id: u32) -> HostResult<()> {
    tally(Call::EffectiveContext);
    // SAFETY: plain value.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// A host write whose failure is logged (`log::warn!`, through `logger.rs`), not swallowed.
/// The success path makes no call; the failure's log line is one `proxy_log`, whose own
/// status is not checked (so a failing log cannot recurse), and formats only a code.
pub trait OrWarn {
    fn or_warn(self, what: &str);
}

impl<T> OrWarn for HostResult<T> {
    fn or_warn(self, what: &str) {
        if let Err(HostError(status)) = self {
            log::warn!("{what} failed (host status {status})");
        }
    }
}

/// The metric registry's host calls (`effects::metric_registry`).
pub struct HostMetrics;

impl crate::effects::metric_registry::MetricHost for HostMetrics {
    fn define(&mut self, kind: crate::metrics::MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            crate::metrics::MetricKind::Counter => MetricType::Counter,
            crate::metrics::MetricKind::Histogram => MetricType::Histogram,
            crate::metrics::MetricKind::Gauge => MetricType::Gauge,
        };
        define_metric(kind, name).ok()
    }

    fn increment(&mut self, id: u32, offset: i64) {
        increment_metric(id, offset).or_warn("metric increment");
    }

    fn record(&mut self, id: u32, value: u64) {
        record_metric(id, value).or_warn("metric record");
    }
}
