//! Where a request's time goes inside the module (cargo feature `callback-profile`, off in
//! every normal build): each downstream callback, and the end's access-log record and metric
//! points, timed with the host's nanosecond clock (so host calls made inside a phase count in
//! it; Envoy's own work between callbacks does not), summed per VM and logged at `info` every
//! 10,000 requests as microseconds per request. BENCHMARKS.md ("Module CPU") shows how to
//! run it under `make bench`. Without the feature a scope is an empty value: no clock read,
//! no code.

/// The timed parts of an exchange.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    Log,
    /// Inside the response body or log callback that ends the exchange.
    LogRecord,
    /// Inside the response body or log callback that ends the exchange.
    MetricPoints,
}

#[cfg(not(feature = "callback-profile"))]
mod imp {
    use super::Phase;

    /// Nothing is timed without the feature.
    pub struct Scope;

    #[inline(always)]
    pub fn scope(_phase: Phase) -> Scope {
        Scope
    }
}

#[cfg(feature = "callback-profile")]
mod imp {
    use super::Phase;
    use crate::filter::host;
    use proxy_wasm::types::LogLevel;
    use std::cell::RefCell;

    const PHASES: [&str; 7] =
        ["request_headers", "request_body", "response_headers", "response_body", "log", "log_record", "metric_points"];
    /// Requests (request-header callbacks) per logged line.
    const EVERY: u64 = 10_000;

    #[derive(Default)]
    struct Sums {
        nanos: [u64; 7],
        calls: [u64; 7],
    }

    thread_local! {
        static SUMS: RefCell<Sums> = RefCell::new(Sums::default());
    }

    /// Times its phase until dropped.
    pub struct Scope {
        phase: Phase,
        start: u64,
    }

    pub fn scope(phase: Phase) -> Scope {
        Scope { phase, start: host::raw_nanos() }
    }

    impl Drop for Scope {
        fn drop(&mut self) {
            let spent = host::raw_nanos().saturating_sub(self.start);
            let index = self.phase as usize;
            let line = SUMS.with(|sums| {
                let mut sums = sums.borrow_mut();
                let Sums { nanos, calls } = &mut *sums;
                if let (Some(n), Some(c)) = (nanos.get_mut(index), calls.get_mut(index)) {
                    *n += spent;
                    *c += 1;
                }
                let requests = sums.calls.first().copied().unwrap_or(0);
                if !matches!(self.phase, Phase::RequestHeaders) || requests < EVERY {
                    return None;
                }
                let parts: Vec<String> = PHASES
                    .iter()
                    .zip(sums.nanos.iter().zip(&sums.calls))
                    .map(|(name, (n, c))| format!("{name}={:.2}us/{c}", *n as f64 / 1000.0 / requests as f64))
                    .collect();
                *sums = Sums::default();
                Some(format!(
                    "llm-gateway profile, per request over {requests} requests (us/calls): {}",
                    parts.join(" ")
                ))
            });
            if let Some(line) = line {
                host::log(LogLevel::Info, &line);
            }
        }
    }
}

pub use imp::scope;
