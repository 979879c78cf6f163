//! What the proxy-wasm shell (`filter/`, wasm32 only) applies, decided here where native
//! tests reach it: the metric registry and its cap (`metric_registry`), the random roll
//! (`roll`), which header changes change something (`header_changes`), reading a trusted
//! source (`trusted`) and the deferred-header protocol between the module's two instances
//! (`deferred`). The shell keeps only the host calls, behind small traits or closures.

pub mod deferred;
pub mod header_changes;
pub mod metric_registry;
pub mod roll;
pub mod trusted;
