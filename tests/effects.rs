//! Native tests of what the proxy-wasm shell applies (`llm_gateway::effects`): the metric
//! registry, its cap and the tick's aggregation; the random roll; header changes that change
//! nothing; trusted sources; the deferred-header protocol.

mod common;

use llm_gateway::auth::TrustedSource;
use llm_gateway::effects::deferred::{self, APPLIER_CONFIG};
use llm_gateway::effects::header_changes::{changes, header_in, remove_untrusted};
use llm_gateway::effects::metric_registry::{MetricHost, MetricRegistry, MAX_METRICS};
use llm_gateway::effects::roll::Roll;
use llm_gateway::effects::trusted::read_trusted;
use llm_gateway::engine::{HeaderOp, UNTRUSTED_REQUEST_HEADERS};
use llm_gateway::metrics::{MetricKind, Point};

/// The host's metric calls as made, in order.
#[derive(Default)]
struct FakeHost {
    calls: Vec<String>,
    next_id: u32,
    refuse_define: bool,
}

impl MetricHost for FakeHost {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.calls.push(format!("define {kind:?} {name}"));
        if self.refuse_define {
            return None;
        }
        self.next_id += 1;
        Some(self.next_id)
    }
    fn increment(&mut self, id: u32, offset: i64) {
        self.calls.push(format!("increment {id} {offset}"));
    }
    fn record(&mut self, id: u32, value: u64) {
        self.calls.push(format!("record {id} {value}"));
    }
}

fn point(kind: MetricKind, name: &str, value: u64) -> Point {
    Point { kind, name: name.to_string(), value }
}

fn set(name: &str, value: &str) -> HeaderOp {
    HeaderOp::Set(name.to_string(), value.to_string())
}

fn remove(name: &str) -> HeaderOp {
    HeaderOp::Remove(name.to_string())
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn counters_are_summed_in_the_vm_and_handed_over_once_per_tick() {
    let (mut registry, mut host) = (MetricRegistry::default(), FakeHost::default());
    for value in [2, 3, 5] {
        registry.record(&point(MetricKind::Counter, "requests", value), &mut host);
    }
    assert_eq!(host.calls, ["define Counter requests"], "one definition, no increment before the tick");
    registry.flush(&mut host);
    assert_eq!(host.calls[1..], ["increment 1 10"]);
    registry.flush(&mut host);
    assert_eq!(host.calls.len(), 2, "nothing new: the next tick makes no call");
}

#[test]
fn a_zero_counter_is_defined_but_never_incremented() {
    let (mut registry, mut host) = (MetricRegistry::default(), FakeHost::default());
    registry.record(&point(MetricKind::Counter, "errors", 0), &mut host);
    registry.flush(&mut host);
    assert_eq!(host.calls, ["define Counter errors"]);
}

#[test]
fn gauges_hand_over_their_last_value_and_histograms_record_every_point_at_once() {
    let (mut registry, mut host) = (MetricRegistry::default(), FakeHost::default());
    registry.record(&point(MetricKind::Gauge, "remaining", 7), &mut host);
    registry.record(&point(MetricKind::Gauge, "remaining", 4), &mut host);
    registry.record(&point(MetricKind::Histogram, "latency", 12), &mut host);
    registry.record(&point(MetricKind::Histogram, "latency", 30), &mut host);
    assert_eq!(host.calls, ["define Gauge remaining", "define Histogram latency", "record 2 12", "record 2 30"]);
    registry.flush(&mut host);
    assert_eq!(host.calls[4..], ["record 1 4"]);
}

#[test]
fn a_counter_sum_past_i64_is_handed_over_saturated() {
    let (mut registry, mut host) = (MetricRegistry::default(), FakeHost::default());
    registry.record(&point(MetricKind::Counter, "bytes", u64::MAX), &mut host);
    registry.record(&point(MetricKind::Counter, "bytes", 9), &mut host);
    registry.flush(&mut host);
    assert_eq!(host.calls[1..], [format!("increment 1 {}", i64::MAX)]);
}

#[test]
fn past_the_cap_new_series_are_dropped_with_one_warning_and_known_ones_still_count() {
    let (mut registry, mut host) = (MetricRegistry::with_cap(2), FakeHost::default());
    let ((), lines) = common::logged(|| {
        for name in ["a", "b", "c", "d"] {
            registry.record(&point(MetricKind::Counter, name, 1), &mut host);
        }
        registry.record(&point(MetricKind::Counter, "a", 1), &mut host);
    });
    assert_eq!(registry.defined(), 2);
    assert_eq!(host.calls, ["define Counter a", "define Counter b"], "no definition past the cap");
    let warnings: Vec<_> = lines.iter().filter(|l| l.contains("metric limit reached")).collect();
    assert_eq!(warnings.len(), 1, "warned once: {lines:?}");
    assert!(warnings[0].starts_with("WARN"), "{lines:?}");
    registry.flush(&mut host);
    let mut flushed = host.calls[2..].to_vec();
    flushed.sort();
    assert_eq!(flushed, ["increment 1 2", "increment 2 1"]);
    assert_eq!(MetricRegistry::default().defined(), 0);
    assert_eq!(MAX_METRICS, 20_000);
}

#[test]
fn a_series_the_host_refused_is_asked_again_next_time() {
    let mut registry = MetricRegistry::default();
    let mut host = FakeHost { refuse_define: true, ..FakeHost::default() };
    registry.record(&point(MetricKind::Counter, "a", 1), &mut host);
    host.refuse_define = false;
    registry.record(&point(MetricKind::Counter, "a", 1), &mut host);
    registry.flush(&mut host);
    assert_eq!(host.calls, ["define Counter a", "define Counter a", "increment 1 1"]);
}

#[test]
fn the_roll_is_xorshift64_and_never_sticks_at_zero() {
    let mut roll = Roll::seeded(0);
    let first = roll.next_value();
    // xorshift64 (13, 7, 17) from the state 1.
    let mut x: u64 = 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    assert_eq!(first, x);
    let values: Vec<u64> = (0..1000).map(|_| roll.next_value()).collect();
    assert!(values.iter().all(|&v| v != 0));
    let distinct: std::collections::HashSet<_> = values.iter().collect();
    assert_eq!(distinct.len(), values.len());
    // Spread: about half the values fall in each half of a weighted choice.
    let low = values.iter().filter(|&&v| v % 100 < 50).count();
    assert!((400..600).contains(&low), "{low} of 1000 below the half");
    assert_eq!(Roll::seeded(6), Roll::seeded(7), "the seed's low bit is set");
}

#[test]
fn header_ops_that_change_nothing_are_dropped() {
    let mut map = headers(&[("x-a", "1"), ("x-b", "2")]);
    let ops = vec![set("x-a", "1"), set("x-b", "3"), remove("x-c"), remove("x-a"), set("X-D", "4")];
    assert_eq!(changes(&mut map, ops), vec![set("x-b", "3"), remove("x-a"), set("X-D", "4")]);
    assert_eq!(map, headers(&[("x-b", "3"), ("X-D", "4")]));
}

#[test]
fn a_later_header_op_sees_the_earlier_ones() {
    let mut map = headers(&[]);
    let ops = vec![set("x-a", "1"), set("x-a", "1"), remove("x-a"), remove("x-a"), set("x-a", "2")];
    assert_eq!(changes(&mut map, ops), vec![set("x-a", "1"), remove("x-a"), set("x-a", "2")]);
    assert_eq!(header_in(&map, "X-A"), Some("2"));
}

#[test]
fn untrusted_request_headers_are_removed_from_the_request_and_the_copy() {
    let untrusted = UNTRUSTED_REQUEST_HEADERS[0];
    let mut map = headers(&[(":path", "/v1/chat"), (untrusted, "forged"), ("x-keep", "1")]);
    let upper = untrusted.to_ascii_uppercase();
    map.push((upper.clone(), "forged too".to_string()));
    let removals = remove_untrusted(&mut map);
    assert_eq!(removals, vec![remove(untrusted), remove(&upper)]);
    assert_eq!(map, headers(&[(":path", "/v1/chat"), ("x-keep", "1")]));
    assert!(remove_untrusted(&mut map).is_empty());
}

#[test]
fn a_trusted_header_is_read_from_the_request_headers_without_a_host_read() {
    let map = headers(&[("x-consumer", "team-a")]);
    let source = TrustedSource::Header("x-consumer".to_string());
    let read = read_trusted(&source, &map, |_| panic!("no property read for a header"));
    assert_eq!(read.as_deref(), Some("team-a"));
    assert_eq!(read_trusted(&TrustedSource::Header("x-other".into()), &map, |_| None), None);
}

#[test]
fn trusted_metadata_is_read_under_filter_metadata() {
    let source = TrustedSource::Metadata(vec!["envoy.filters.http.jwt_authn".into(), "sub".into()]);
    let mut asked = Vec::new();
    let read = read_trusted(&source, &[], |path| {
        asked = path.iter().map(|s| s.to_string()).collect();
        Some(b"user-\xff".to_vec())
    });
    assert_eq!(asked, ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "sub"]);
    assert_eq!(read.as_deref(), Some("user-\u{fffd}"), "non-UTF-8 read lossily");
    assert_eq!(read_trusted(&source, &[], |_| None), None);
}

#[test]
fn deferred_headers_round_trip_to_the_applier_as_sets() {
    let signed = headers(&[("authorization", "AWS4-HMAC-SHA256 ..."), ("x-amz-date", "20260101T000000Z")]);
    let state = deferred::encode(&signed).expect("headers to defer");
    assert_eq!(
        deferred::applier_ops(&state),
        vec![set("authorization", "AWS4-HMAC-SHA256 ..."), set("x-amz-date", "20260101T000000Z")]
    );
    assert_eq!(deferred::encode(&[]), None, "nothing deferred: no filter state written");
    assert!(deferred::applier_ops(deferred::CLEARED).is_empty(), "a cleared state applies nothing");
    assert!(deferred::applier_ops(b"\xff\xff\xff\xff garbage").is_empty());
}

#[test]
fn role_configs_match_whitespace_insensitively_and_nothing_else() {
    assert!(deferred::is_role_config(br#" { "role" : "apply-deferred-headers" } "#, APPLIER_CONFIG));
    assert!(deferred::is_role_config(b"{\n\"role\":\"apply-deferred-headers\"}\n", APPLIER_CONFIG));
    assert!(!deferred::is_role_config(br#"{"role": "attempt"}"#, APPLIER_CONFIG));
    assert!(!deferred::is_role_config(br#"{"role": "apply-deferred-headers", "x": 1}"#, APPLIER_CONFIG));
}
