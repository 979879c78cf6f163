//! The VM's metric registry: metric ids by full name (defined on first use, shared by the
//! VM's streams), the cap on distinct series, and the counters and gauges gathered in the VM
//! until the root context's tick hands them to the host.
//!
//! Counter increments and gauge values are handed to the host on the tick: one host call per
//! changed series per tick instead of one per request, and Prometheus shows the same sums
//! (counters) and last values (gauges), at most a tick later. Histogram points go to the host
//! at once: each value is a point of its own, which no aggregate could reproduce exactly.

use crate::metrics::{MetricKind, Point};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The registry's maps hash with [`NameHasher`].
type Map<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// A fast multiply-rotate hash (the Fx hash of rustc), eight bytes a step: a request looks
/// up 6 to 10 names of ~200 bytes, and SipHash (std's default, built to resist chosen keys)
/// cost more than the rest of the registry. No client chooses a name: every label value
/// comes from the configuration or a fixed set (`crate::metrics`), and the cap bounds them.
#[derive(Debug, Default, Clone, Copy)]
pub struct NameHasher(u64);

impl NameHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word.iter_mut().zip(rest).for_each(|(w, b)| *w = *b);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-VM cap on distinct metric names: labels are bounded by the config, this bounds even a
/// config with thousands of models.
pub const MAX_METRICS: usize = 20_000;

/// The host's metric calls (the shell's `host.rs`; a recording fake in native tests). A
/// failed call is the implementation's to report.
pub trait MetricHost {
    /// Defines a metric; its id, or `None` when the host refused.
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32, offset: i64);
    fn record(&mut self, id: u32, value: u64);
}

/// See the module doc.
#[derive(Debug)]
pub struct MetricRegistry {
    ids: Map<String, u32>,
    cap: usize,
    full_warned: bool,
    /// Counter increments not yet handed to the host, by metric id.
    counters: Map<u32, u64>,
    /// The latest value of each gauge not yet handed to the host, by metric id.
    gauges: Map<u32, u64>,
}

impl Default for MetricRegistry {
    fn default() -> Self {
        MetricRegistry::with_cap(MAX_METRICS)
    }
}

impl MetricRegistry {
    /// A registry holding at most `cap` distinct series.
    pub fn with_cap(cap: usize) -> Self {
        MetricRegistry {
            ids: Map::default(),
            cap,
            full_warned: false,
            counters: Map::default(),
            gauges: Map::default(),
        }
    }

    /// Distinct series defined so far.
    pub fn defined(&self) -> usize {
        self.ids.len()
    }

    /// One point of an exchange: its series defined on first use (dropped past the cap,
    /// warned once), a counter or gauge gathered, a histogram point recorded at once.
    pub fn record(&mut self, point: &Point, host: &mut impl MetricHost) {
        self.record_named(point.kind, &point.name, point.value, host);
    }

    /// [`MetricRegistry::record`] of a point given by its parts (`metrics::each_point`).
    pub fn record_named(&mut self, kind: MetricKind, name: &str, value: u64, host: &mut impl MetricHost) {
        let Some(id) = self.id(kind, name, host) else { return };
        match kind {
            // Defined (so the series exists at 0) but not incremented by 0.
            MetricKind::Counter if value == 0 => {}
            MetricKind::Counter => {
                let sum = self.counters.entry(id).or_insert(0);
                *sum = sum.saturating_add(value);
            }
            MetricKind::Gauge => {
                self.gauges.insert(id, value);
            }
            MetricKind::Histogram => host.record(id, value),
        }
    }

    /// The series' id: known, newly defined, or `None` (the cap reached, or the host refused).
    fn id(&mut self, kind: MetricKind, name: &str, host: &mut impl MetricHost) -> Option<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        if self.ids.len() >= self.cap {
            if !std::mem::replace(&mut self.full_warned, true) {
                log::warn!("metric limit reached; new label combinations are dropped");
            }
            return None;
        }
        let id = host.define(kind, name)?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    /// Hands the gathered counter increments and gauge values to the host (each changed
    /// series once) and forgets them.
    pub fn flush(&mut self, host: &mut impl MetricHost) {
        for (id, sum) in self.counters.drain() {
            host.increment(id, i64::try_from(sum).unwrap_or(i64::MAX));
        }
        for (id, value) in self.gauges.drain() {
            host.record(id, value);
        }
    }
}
