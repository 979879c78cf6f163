//! The `log` facade's backend in the module: the core's `log::debug!` and friends reach the
//! host's log through [`host::log`], counted with the other host calls and never panicking.
//! proxy-wasm 0.2's own logger (`proxy_wasm::set_log_level`) does the same job but unwraps the
//! host's answer and bypasses `host.rs`; this one replaces it, panic hook included.

use super::host;
use proxy_wasm::types::LogLevel;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            host::log(host_level(record.level()), &format!("llm-gateway: {}", record.args()));
        }
    }

    fn flush(&self) {}
}

fn host_level(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

/// Installs the logger (records above `level` are dropped before any host call) and a panic
/// hook that reports a panic to the host's log before the module aborts.
pub fn init(level: log::LevelFilter) {
    // Fails only when a logger is already set (a second VM start): that one stays.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
    std::panic::set_hook(Box::new(|info| host::log(LogLevel::Critical, &info.to_string())));
}
