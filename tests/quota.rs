//! Budgets: windows with injected time, prices in micro-units, plans and overrides,
//! reserve/settle/release, clamping, and concurrency over the CAS store.

use llm_gateway::calendar::civil_from_days;
use llm_gateway::quota::budget::{self, counter_key};
use llm_gateway::quota::config::{validate_limits, validate_plans, validate_prices, validate_quota, RawPlan, RawQuota};
use llm_gateway::quota::headers::{go_duration, rate_limit_headers};
use llm_gateway::quota::money::{cost_of, format_micros, parse_micros, Decimal, RawPrice};
use llm_gateway::quota::store::CREATE_CAS;
use llm_gateway::quota::{
    release, reserve, settle, CasMismatch, Estimate, Interleaver, Limit, MemoryStore, Metric, Plans, Policy, Price,
    PriceTable, Rates, RejectReason, ReserveOptions, ReserveRequest, Store, TokenCounts, Window,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

mod common;
use common::Fixtures;

/// 2026-11-26 23:10:00 UTC.
const NOW: u64 = 1_795_734_600;

fn limit(name: &str, metric: Metric, amount: u64, window: Window) -> Limit {
    Limit { name: name.to_string(), metric, amount, window, models: None }
}

fn flat_price(input: &str, output: &str) -> Price {
    let rates = Rates {
        input: parse_micros(input).unwrap(),
        output: parse_micros(output).unwrap(),
        cached_input: parse_micros(input).unwrap(),
        cache_write: parse_micros(input).unwrap(),
        cache_write_1h: parse_micros(input).unwrap(),
        reasoning: parse_micros(output).unwrap(),
    };
    Price { rates, long_context: None }
}

fn no_clamp() -> ReserveOptions {
    ReserveOptions { clamp: false, ..ReserveOptions::default() }
}

fn request<'a>(
    limits: &'a [&'a Limit],
    price: Option<&'a Price>,
    input: u64,
    max_out: Option<u64>,
) -> ReserveRequest<'a> {
    ReserveRequest {
        consumer: "alice",
        limits,
        price,
        estimate: Estimate { input_tokens: input, max_output_tokens: max_out },
    }
}

// ---------------------------------------------------------------- windows

#[test]
fn minute_hour_day_windows_start_and_reset() {
    let t = NOW + 17; // 23:10:17
    assert_eq!(Window::Minute.reset_secs(t), 43);
    assert_eq!(Window::Hour.reset_secs(t), 49 * 60 + 43);
    assert_eq!(Window::Day.reset_secs(t), 49 * 60 + 43);
    assert_eq!(Window::Minute.id(t), t / 60);
    assert_eq!(Window::Minute.start(Window::Minute.id(t)), NOW);
    // The last second of a window still belongs to it; the next second starts a new one.
    let end = Window::Minute.end(Window::Minute.id(t));
    assert_eq!(Window::Minute.id(end - 1), Window::Minute.id(t));
    assert_eq!(Window::Minute.id(end), Window::Minute.id(t) + 1);
    assert_eq!(Window::Minute.reset_secs(end - 1), 1);
}

/// Days since the epoch of the first of `month` in `year`.
fn month_start(year: i64, month: i64) -> u64 {
    llm_gateway::calendar::days_from_civil(year, month, 1) as u64
}

#[test]
fn calendar_months_in_utc() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(NOW / 86_400), (2026, 11, 26));
    assert_eq!(month_start(2028, 3) - month_start(2028, 2), 29, "2028 is a leap year");
    assert_eq!(month_start(2100, 3) - month_start(2100, 2), 28, "2100 is not");
    let nov = Window::Month.id(NOW);
    assert_eq!(nov, (2026 - 1970) * 12 + 10);
    let dec_1 = month_start(2026, 12) * 86_400;
    assert_eq!(Window::Month.start(nov), month_start(2026, 11) * 86_400);
    assert_eq!(Window::Month.end(nov), dec_1);
    assert_eq!(Window::Month.id(dec_1 - 1), nov);
    assert_eq!(Window::Month.id(dec_1), nov + 1);
    assert_eq!(Window::Month.reset_secs(NOW), dec_1 - NOW);
    // December rolls into January of the next year.
    let jan_1 = month_start(2027, 1) * 86_400;
    assert_eq!(Window::Month.end(nov + 1), jan_1);
    assert_eq!(civil_from_days(jan_1 / 86_400), (2027, 1, 1));
}

proptest! {
    #[test]
    fn every_second_lies_in_its_window(t in 0u64..4_102_444_800) {
        for w in [Window::Minute, Window::Hour, Window::Day, Window::Month] {
            let id = w.id(t);
            prop_assert!(w.start(id) <= t && t < w.end(id), "{w:?} {t}");
            prop_assert_eq!(w.id(w.start(id)), id);
        }
    }
}

#[test]
fn go_durations_like_openai() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1), "1s");
    assert_eq!(go_duration(360), "6m0s");
    assert_eq!(go_duration(3661), "1h1m1s");
    assert_eq!(go_duration(90_000), "25h0m0s");
}

// ---------------------------------------------------------------- money

#[test]
fn decimal_strings_parse_exactly_into_micros() {
    assert_eq!(parse_micros("2.50"), Ok(2_500_000));
    assert_eq!(parse_micros("0.075"), Ok(75_000));
    assert_eq!(parse_micros("0.0028"), Ok(2_800));
    assert_eq!(parse_micros("15"), Ok(15_000_000));
    assert_eq!(parse_micros(".5"), Ok(500_000));
    assert_eq!(parse_micros("0.000001"), Ok(1));
    assert_eq!(parse_micros("1.2345678"), Err("\"1.2345678\" has more than 6 decimal places".to_string()));
    assert!(parse_micros("-1").is_err());
    assert!(parse_micros("1e3").is_err());
    assert!(parse_micros("").is_err());
    assert!(parse_micros("1.2.3").is_err());
    assert!(parse_micros("99999999999999999999").is_err());
    assert_eq!(format_micros(2_500_000), "2.5");
    assert_eq!(format_micros(75_000), "0.075");
    assert_eq!(format_micros(5_000_000), "5");
}

#[test]
fn json_numbers_parse_without_float_drift() {
    let read = |json: &str| serde_json::from_str::<Decimal>(json).unwrap().to_micros();
    assert_eq!(read("2.5"), Ok(2_500_000));
    assert_eq!(read("0.075"), Ok(75_000));
    assert_eq!(read("0.1"), Ok(100_000));
    assert_eq!(read("0.3"), Ok(300_000));
    assert_eq!(read("3"), Ok(3_000_000));
    assert_eq!(read("1e-6"), Ok(1));
    assert_eq!(read("\"0.30\""), Ok(300_000));
    assert!(read("-0.5").is_err());
    assert!(read("0.0000001").is_err());
}

#[test]
fn costs_are_integer_micro_usd_rounded_up_once() {
    // One token at $2.50 per million is 2.5 micro-USD: charged 3.
    assert_eq!(cost_of(1, 2_500_000), 3);
    assert_eq!(cost_of(1_000_000, 2_500_000), 2_500_000);
    assert_eq!(cost_of(0, 2_500_000), 0);
    // 0.1 + 0.2 is exactly 0.3 here: 1M tokens at $0.10 and 1M at $0.20.
    let p = flat_price("0.10", "0.20");
    assert_eq!(p.cost(&TokenCounts { input: 1_000_000, output: 1_000_000, ..TokenCounts::default() }), 300_000);
    // Components are summed before rounding: 1 input (2.5) + 1 output (10) = 12.5 -> 13, not 3 + 10.
    let gpt = flat_price("2.50", "10.00");
    assert_eq!(gpt.cost(&TokenCounts { input: 1, output: 1, ..TokenCounts::default() }), 13);
}

#[test]
fn cached_cache_write_and_reasoning_tokens_use_their_rates() {
    let raw: RawPrice = serde_json::from_str(
        r#"{"input": "3", "output": "15", "cached_input": "0.30", "cache_write": "3.75", "reasoning": "20"}"#,
    )
    .unwrap();
    let p = raw.validate("my-model").unwrap();
    let c = TokenCounts {
        input: 1_000_000,
        cached_input: 400_000,
        cache_write: 100_000,
        cache_write_1h: 0,
        output: 200_000,
        reasoning: 50_000,
    };
    // 500k fresh * 3 + 400k * 0.30 + 100k * 3.75 + 150k * 15 + 50k * 20 (micro-USD)
    let expected = 1_500_000 + 120_000 + 375_000 + 2_250_000 + 1_000_000;
    assert_eq!(p.cost(&c), expected);
    // Defaults: cached and cache writes at the input price, reasoning at the output price.
    let plain: RawPrice = serde_json::from_str(r#"{"input": "1", "output": "2"}"#).unwrap();
    let plain = plain.validate("my-model").unwrap();
    assert_eq!(plain.rates.cached_input, 1_000_000);
    assert_eq!(plain.rates.reasoning, 2_000_000);
}

#[test]
fn one_hour_cache_writes_cost_their_own_rate() {
    // claude-sonnet-4-5 (built-in table): input $3, 5-minute writes $3.75, 1-hour writes $6.
    let table = PriceTable::builtin().unwrap();
    let sonnet = table.get("claude-sonnet-4-5-20250929").unwrap();
    assert_eq!((sonnet.rates.cache_write, sonnet.rates.cache_write_1h), (3_750_000, 6_000_000));
    let c = TokenCounts {
        input: 1_000_000,
        cache_write: 300_000,
        cache_write_1h: 200_000,
        output: 10_000,
        ..TokenCounts::default()
    };
    // 700k fresh * 3 + 100k 5-minute writes * 3.75 + 200k 1-hour writes * 6 + 10k * 15 (micro-USD)
    assert_eq!(sonnet.cost(&c), 2_100_000 + 375_000 + 1_200_000 + 150_000);
    // A 1-hour count above all writes is held to the writes (it is their subset).
    let over = TokenCounts { cache_write_1h: 900_000, ..c };
    assert_eq!(sonnet.cost(&over), 2_100_000 + 300_000 * 6 + 150_000);
    // Reservations assume the dearest input token: a 1-hour write.
    assert_eq!(sonnet.max_cost(1000, 0), 6_000);
    // Bedrock's Claude is priced as Anthropic's.
    let bedrock = table.get("anthropic.claude-sonnet-4-5-20250929-v1:0").unwrap();
    assert_eq!(bedrock.rates.cache_write_1h, 6_000_000);
}

#[test]
fn one_hour_cache_write_price_defaults() {
    let price = |json: &str, model: &str| serde_json::from_str::<RawPrice>(json).unwrap().validate(model).unwrap();
    // A Claude id without the field: twice the input price (Anthropic's rule), in every tier.
    let claude = price(
        r#"{"input": "3", "output": "15", "cache_write": "3.75",
            "long_context": {"above_input_tokens": 200000, "input": "6", "output": "22.5"}}"#,
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    );
    assert_eq!(claude.rates.cache_write_1h, 6_000_000);
    assert_eq!(claude.long_context.unwrap().rates.cache_write_1h, 12_000_000);
    // Any other id: the (5-minute) cache write price, so its reservations do not change.
    let other = price(r#"{"input": "3", "output": "15", "cache_write": "3.75"}"#, "my-model");
    assert_eq!(other.rates.cache_write_1h, 3_750_000);
    assert_eq!(other.max_cost(1000, 0), 3_750);
    // Written: taken as is.
    let set = price(r#"{"input": "3", "output": "15", "cache_write_1h": "5.5"}"#, "claude-x");
    assert_eq!(set.rates.cache_write_1h, 5_500_000);
    // A bad amount names its field.
    let bad: RawPrice = serde_json::from_str(r#"{"input": "3", "output": "15", "cache_write_1h": "-1"}"#).unwrap();
    assert_eq!(bad.validate("claude-x").unwrap_err().0, "cache_write_1h");
}

#[test]
fn long_context_tier_prices_the_whole_request() {
    let raw: RawPrice = serde_json::from_str(
        r#"{"input": "1.25", "output": "10", "long_context": {"above_input_tokens": 200000, "input": "2.50", "output": "15"}}"#,
    )
    .unwrap();
    let p = raw.validate("my-model").unwrap();
    let at = |input| p.cost(&TokenCounts { input, output: 1000, ..TokenCounts::default() });
    assert_eq!(at(200_000), 250_000 + 10_000);
    assert_eq!(at(300_000), 750_000 + 15_000);
    // Reservations assume the dearer tier.
    assert_eq!(p.max_cost(1000, 1000), 2_500 + 15_000);
}

proptest! {
    #[test]
    fn max_cost_bounds_every_mix_of_token_kinds(
        input in 0u64..2_000_000, output in 0u64..200_000,
        cached in 0u64..2_000_000, write in 0u64..2_000_000, write_1h in 0u64..2_000_000,
        reasoning in 0u64..200_000,
    ) {
        let raw: RawPrice = serde_json::from_str(
            r#"{"input": "3", "output": "15", "cached_input": "0.30", "cache_write": "3.75", "reasoning": "20",
                "long_context": {"above_input_tokens": 200000, "input": "6", "output": "22.5"}}"#).unwrap();
        // A Claude id: 1-hour writes default to twice the input price, the dearest input rate.
        let p = raw.validate("claude-sonnet-4-5").unwrap();
        let c = TokenCounts { input, output, cached_input: cached, cache_write: write, cache_write_1h: write_1h, reasoning };
        prop_assert!(p.cost(&c) <= p.max_cost(input, output));
        // max_output_for is the exact inverse of max_cost.
        let budget = p.max_cost(input, output);
        let n = p.max_output_for(input, budget);
        prop_assert!(n >= output);
        prop_assert!(p.max_cost(input, n) <= budget);
        prop_assert!(p.max_cost(input, n + 1) > budget);
    }
}

#[test]
fn builtin_price_table_parses_and_covers_every_provider() {
    let table = PriceTable::builtin().unwrap();
    assert_eq!(table.as_of(), Some("2026-11-26"));
    for model in [
        "gpt-5.5",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "amazon.nova-pro-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "mistral-large-latest",
        "openai/gpt-oss-120b",
        "deepseek-v4-flash",
    ] {
        assert!(table.get(model).is_some(), "{model} has no price");
    }
    let mini = table.get("gpt-5.4-mini").unwrap();
    assert_eq!((mini.rates.input, mini.rates.cached_input, mini.rates.output), (750_000, 75_000, 4_500_000));
    // Dated snapshots fall back to the undated id.
    assert_eq!(table.get("gpt-4o-2024-08-06"), table.get("gpt-4o"));
    assert_eq!(table.get("claude-sonnet-4-5-20250929"), table.get("claude-sonnet-4-5"));
    assert!(table.get("gpt-4o-mini-2024-07-18").is_some());
    assert!(table.get("no-such-model").is_none());
}

// ---------------------------------------------------------------- config

fn plans(json: &str) -> Result<Plans, String> {
    let raw: BTreeMap<String, RawPlan> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    validate_plans("plans", &raw).map_err(|e| e.to_string())
}

#[test]
fn plan_config_errors_name_their_path() {
    let cases = [
        (r#"{"free": {"limits": [{"window": "minute"}]}}"#,
         "plans[\"free\"].limits[0]: a limit needs one of `tokens`, `input_tokens`, `output_tokens`, `requests` or `usd`"),
        (r#"{"free": {"limits": [{"window": "minute", "tokens": 1, "usd": "1"}]}}"#,
         "plans[\"free\"].limits[0]: a limit counts one thing: give only one of `tokens`, `input_tokens`, `output_tokens`, `requests`, `usd`"),
        (r#"{"free": {"limits": [{"window": "day", "usd": "1.2.3"}]}}"#,
         "plans[\"free\"].limits[0].usd: \"1.2.3\" is not a non-negative decimal number like \"2.50\""),
        (r#"{"free": {"limits": [{"window": "day", "tokens": 1}, {"window": "day", "tokens": 2}]}}"#,
         "plans[\"free\"].limits[1]: another limit is already named \"tokens-day\"; give this one a `name`"),
        (r#"{"free": {"limits": [{"name": "a:b", "window": "day", "tokens": 1}]}}"#,
         "plans[\"free\"].limits[0].name: \"a:b\" is not a valid limit name (1-64 characters: letters, digits, '-', '_', '.')"),
        (r#"{"free": {"models": []}}"#,
         "plans[\"free\"].models: must name at least one model (omit it to allow every model)"),
    ];
    for (json, expected) in cases {
        assert_eq!(plans(json).unwrap_err(), expected, "{json}");
    }
    let e = plans(r#"{"free": {"limits": [{"window": "week", "tokens": 1}]}}"#).unwrap_err();
    assert!(e.starts_with("unknown variant `week`"), "{e}");
    let e = plans(r#"{"free": {"limits": [{"window": "day", "tokens": 1, "burst": 2}]}}"#).unwrap_err();
    assert!(e.starts_with("unknown field `burst`"), "{e}");
}

#[test]
fn quota_and_price_sections_validate() {
    let p = plans(r#"{"free": {}}"#).unwrap();
    let q: RawQuota = serde_json::from_str(r#"{"default_plan": "gold"}"#).unwrap();
    assert_eq!(
        validate_quota("quota", Some(&q), &p).unwrap_err().to_string(),
        "quota.default_plan: no plan named \"gold\""
    );
    let q: RawQuota = serde_json::from_str(r#"{"min_output_tokens": 5000}"#).unwrap();
    assert_eq!(
        validate_quota("quota", Some(&q), &p).unwrap_err().to_string(),
        "quota.min_output_tokens: 5000 is more than default_max_output_tokens (4096)"
    );
    let q: RawQuota = serde_json::from_str(r#"{"default_plan": "free", "clamp_max_tokens": false}"#).unwrap();
    let settings = validate_quota("quota", Some(&q), &p).unwrap();
    assert!(!settings.reserve.clamp);

    let raw: BTreeMap<String, RawPrice> =
        serde_json::from_str(r#"{"gpt-4o": {"input": 2, "output": "8.00"}, "mine": {"input": "1", "output": "x"}}"#)
            .unwrap();
    assert_eq!(
        validate_prices("prices", Some(&raw)).unwrap_err().to_string(),
        "prices[\"mine\"].output: \"x\" is not a non-negative decimal number like \"2.50\""
    );
    let raw: BTreeMap<String, RawPrice> =
        serde_json::from_str(r#"{"gpt-4o": {"input": 2, "output": "8.00"}}"#).unwrap();
    let table = validate_prices("prices", Some(&raw)).unwrap();
    assert_eq!(table.get("gpt-4o").unwrap().rates.input, 2_000_000, "config overrides the built-in price");
}

#[test]
fn consumer_overrides_replace_plan_limits_by_name_and_model_groups_filter() {
    let p = plans(
        r#"{"small": {"limits": [
            {"name": "tpm", "window": "minute", "tokens": 1000},
            {"name": "rpm", "window": "minute", "requests": 10},
            {"name": "gpt4o-daily", "window": "day", "input_tokens": 500, "models": ["gpt-4o"]}
        ]}}"#,
    )
    .unwrap();
    let own = validate_limits(
        "consumers[\"alice\"].limits",
        &serde_json::from_str::<Vec<_>>(
            r#"[{"name": "tpm", "window": "minute", "tokens": 50}, {"window": "month", "usd": 1}]"#,
        )
        .unwrap(),
    )
    .unwrap();
    let settings = llm_gateway::quota::QuotaSettings { default_plan: Some("small".into()), ..Default::default() };
    let policy = Policy::new(settings, p, PriceTable::empty(), [("alice".to_string(), own)]);

    let names = |consumer, model| {
        let mut v: Vec<(String, u64)> =
            policy.limits_for(consumer, Some("small"), model).iter().map(|l| (l.name.clone(), l.amount)).collect();
        v.sort();
        v
    };
    assert_eq!(
        names("alice", "gpt-4o-mini"),
        [("rpm".into(), 10), ("tpm".into(), 50), ("usd-month".into(), 1_000_000)]
    );
    assert_eq!(names("bob", "gpt-4o-mini"), [("rpm".into(), 10), ("tpm".into(), 1000)]);
    assert_eq!(names("bob", "gpt-4o"), [("gpt4o-daily".into(), 500), ("rpm".into(), 10), ("tpm".into(), 1000)]);
    // No plan named: the default plan applies.
    assert_eq!(policy.limits_for("carol", None, "x").len(), 2);
    assert!(policy.counts_money());
}

// ---------------------------------------------------------------- reserve / settle / release

#[test]
fn reserve_settle_release_move_budget_between_reserved_and_used() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let rpm = limit("rpm", Metric::Requests, 2, Window::Minute);
    let limits = [&tpm, &rpm];

    let r = reserve(&store, &request(&limits, None, 100, Some(200)), &no_clamp(), NOW).unwrap();
    assert_eq!(budget::used(&store, "alice", &tpm, NOW), (0, 300));
    assert_eq!(r.max_tokens(), None, "the client's own max_tokens stands");
    let headers = r.headers(NOW);
    assert!(headers.contains(&("x-ratelimit-remaining-tokens".into(), "700".into())), "{headers:?}");
    assert!(headers.contains(&("x-ratelimit-remaining-requests".into(), "1".into())));
    assert!(headers.contains(&("x-ratelimit-reset-tokens".into(), "1m0s".into())));

    let s = settle(&store, r, &TokenCounts { input: 90, output: 40, ..TokenCounts::default() }, NOW + 5);
    assert_eq!(s.charged, [("tpm".to_string(), Metric::TotalTokens, 130), ("rpm".to_string(), Metric::Requests, 1)]);
    assert_eq!(budget::used(&store, "alice", &tpm, NOW), (130, 0));
    // The gauges: what remains once this request is settled, per limit.
    assert_eq!(s.remaining, [("tpm".to_string(), 870), ("rpm".to_string(), 1)]);

    let r = reserve(&store, &request(&limits, None, 100, Some(100)), &no_clamp(), NOW).unwrap();
    release(&store, r);
    assert_eq!(budget::used(&store, "alice", &tpm, NOW), (130, 0));
    assert_eq!(budget::used(&store, "alice", &rpm, NOW), (1, 0));
}

#[test]
fn a_refused_limit_rolls_back_the_others() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let rpm = limit("rpm", Metric::Requests, 1, Window::Minute);
    let limits = [&tpm, &rpm];
    let first = reserve(&store, &request(&limits, None, 10, Some(10)), &no_clamp(), NOW).unwrap();
    let refused = reserve(&store, &request(&limits, None, 10, Some(10)), &no_clamp(), NOW + 30).unwrap_err();
    assert_eq!(refused.reason, RejectReason::Exhausted);
    assert_eq!(refused.limit.name, "rpm");
    assert_eq!(refused.limit.remaining, 0);
    assert_eq!(refused.reset_secs(), 30);
    assert_eq!(budget::used(&store, "alice", &tpm, NOW), (0, 20), "tpm taken by the refused request was given back");
    let headers = refused.headers();
    assert_eq!(headers[0], ("retry-after".to_string(), "30".to_string()));
    assert!(headers.contains(&("x-ratelimit-limit-requests".into(), "1".into())));
    assert!(headers.contains(&("x-ratelimit-remaining-requests".into(), "0".into())));
    assert!(headers.contains(&("x-ratelimit-reset-requests".into(), "30s".into())));
    assert_eq!(refused.message(), "Rate limit reached for limit 'rpm' (1 requests per minute): retry in 30s.");
    release(&store, first);
}

#[test]
fn too_large_no_price_and_contention_are_distinct_reasons() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 100, Window::Minute);
    let e = reserve(&store, &request(&[&tpm], None, 500, Some(10)), &ReserveOptions::default(), NOW).unwrap_err();
    assert_eq!(e.reason, RejectReason::TooLarge);
    assert_eq!(e.message(), "Request too large for limit 'tpm' (100 tokens per minute).");

    let usd = limit("usd", Metric::MicroUsd, 1_000_000, Window::Month);
    let e = reserve(&store, &request(&[&usd], None, 5, Some(10)), &ReserveOptions::default(), NOW).unwrap_err();
    assert_eq!(e.reason, RejectReason::NoPrice);

    struct Busy;
    impl Store for Busy {
        fn get(&self, _: &str) -> Option<(Vec<u8>, u32)> {
            None
        }
        fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), CasMismatch> {
            Err(CasMismatch)
        }
    }
    let e = reserve(&Busy, &request(&[&tpm], None, 5, Some(10)), &ReserveOptions::default(), NOW).unwrap_err();
    assert_eq!(e.reason, RejectReason::Contention);
}

#[test]
fn clamping_lowers_max_tokens_to_what_the_budget_pays_for() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let out = limit("out", Metric::OutputTokens, 5000, Window::Day);
    let opts = ReserveOptions { min_output_tokens: 16, ..ReserveOptions::default() };
    // Asks for 2000 output with 100 input: only 900 fit the minute's 1000 total tokens.
    let r = reserve(&store, &request(&[&out, &tpm], None, 100, Some(2000)), &opts, NOW).unwrap();
    assert_eq!(r.output_tokens(), 900);
    assert_eq!(r.max_tokens(), Some(900));
    // The day's output limit was taken for 2000 first, then trimmed to 900.
    assert_eq!(budget::used(&store, "alice", &out, NOW), (0, 900));
    assert_eq!(budget::used(&store, "alice", &tpm, NOW), (0, 1000));
    // Nothing left this minute: refused, not clamped to zero.
    let e = reserve(&store, &request(&[&tpm], None, 1, Some(100)), &opts, NOW).unwrap_err();
    assert_eq!(e.reason, RejectReason::Exhausted);
    // Settling less frees the rest for the next request.
    settle(&store, r, &TokenCounts { input: 100, output: 300, ..TokenCounts::default() }, NOW);
    let r2 = reserve(&store, &request(&[&tpm], None, 100, None), &opts, NOW).unwrap();
    assert_eq!(r2.max_tokens(), Some(500), "no max_tokens from the client: the gateway must set one");
    // Below min_output_tokens a request is refused rather than clamped.
    let e = reserve(&store, &request(&[&tpm], None, 95, Some(100)), &opts, NOW).unwrap_err();
    assert_eq!(e.reason, RejectReason::Exhausted);
    release(&store, r2);
}

#[test]
fn money_limits_reserve_at_worst_case_and_settle_at_cost() {
    let store = MemoryStore::new();
    let price = flat_price("2.50", "10.00");
    let usd = limit("usd", Metric::MicroUsd, 10_000, Window::Month); // one cent
                                                                     // 1000 input cost 2500 micro-USD; 7500 left pays for 750 output tokens.
    let r =
        reserve(&store, &request(&[&usd], Some(&price), 1000, Some(4000)), &ReserveOptions::default(), NOW).unwrap();
    assert_eq!(r.max_tokens(), Some(750));
    assert_eq!(budget::used(&store, "alice", &usd, NOW), (0, 10_000));
    let s = settle(&store, r, &TokenCounts { input: 1000, output: 333, ..TokenCounts::default() }, NOW);
    assert_eq!(s.cost_micros, Some(2_500 + 3_330));
    assert_eq!(budget::used(&store, "alice", &usd, NOW), (5_830, 0));
    // 4170 left: 1000 input (2500) + 10 output (100) fit; 2000 input (5000) do not.
    let ok = reserve(&store, &request(&[&usd], Some(&price), 1000, Some(10)), &ReserveOptions::default(), NOW).unwrap();
    let e = reserve(&store, &request(&[&usd], Some(&price), 2000, Some(10)), &ReserveOptions::default(), NOW);
    assert_eq!(e.unwrap_err().reason, RejectReason::Exhausted);
    release(&store, ok);
}

#[test]
fn a_reservation_settles_in_the_window_it_was_made_in() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let t0 = NOW + 50; // 10 s before the minute ends
    let r = reserve(&store, &request(&[&tpm], None, 100, Some(800)), &no_clamp(), t0).unwrap();
    // The next minute starts empty: the long stream still running does not hold its budget.
    let t1 = NOW + 70;
    assert_eq!(budget::peek(&store, "alice", &tpm, t1).remaining, 1000);
    let r1 = reserve(&store, &request(&[&tpm], None, 100, Some(100)), &no_clamp(), t1).unwrap();
    // Settled after the rollover: charged to the old window, not the new one.
    settle(&store, r, &TokenCounts { input: 100, output: 700, ..TokenCounts::default() }, t1 + 5);
    assert_eq!(budget::used(&store, "alice", &tpm, t0), (800, 0));
    assert_eq!(budget::used(&store, "alice", &tpm, t1), (0, 200));
    // Two windows later the old slot is reused: a very late settlement has nothing to charge.
    let late = reserve(&store, &request(&[&tpm], None, 1, Some(1)), &no_clamp(), t1).unwrap();
    let t3 = NOW + 130; // slot of t0's window reused
    let again = reserve(&store, &request(&[&tpm], None, 10, Some(10)), &no_clamp(), t3).unwrap();
    let s = settle(&store, r1, &TokenCounts { input: 100, output: 100, ..TokenCounts::default() }, t3);
    assert_eq!(s.expired, 0, "t1's slot is still t1's window");
    assert_eq!(budget::used(&store, "alice", &tpm, t3), (0, 20), "t3's window untouched by t1's settlement");
    release(&store, late);
    release(&store, again);
    assert_eq!(budget::used(&store, "alice", &tpm, t3), (0, 0));
    let keys = store.keys();
    assert_eq!(keys.len(), 2, "two slots per limit and consumer: {keys:?}");
}

#[test]
fn settlement_after_slot_reuse_is_reported_expired() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let r = reserve(&store, &request(&[&tpm], None, 10, Some(10)), &no_clamp(), NOW).unwrap();
    let later = reserve(&store, &request(&[&tpm], None, 10, Some(10)), &no_clamp(), NOW + 120).unwrap();
    let s = settle(&store, r, &TokenCounts { input: 10, output: 10, ..TokenCounts::default() }, NOW + 125);
    assert_eq!((s.expired, s.charged.len()), (1, 0));
    assert_eq!(budget::used(&store, "alice", &tpm, NOW + 120), (0, 20), "the new window is not charged");
    release(&store, later);
}

#[test]
fn keys_are_created_with_a_cas_no_key_carries() {
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let key = counter_key("alice", &tpm, Window::Minute.id(NOW));
    assert_eq!(key, format!("llmgw:q:tpm:minute:{}:alice", Window::Minute.id(NOW) % 2));
    // Another worker creates the key between our get (missing) and our set.
    store.set(&key, b"x", Some(CREATE_CAS)).unwrap();
    assert_eq!(store.set(&key, b"y", Some(CREATE_CAS)), Err(CasMismatch));
}

// ---------------------------------------------------------------- concurrency

#[derive(Debug, Clone)]
struct Job {
    input: u64,
    max_out: Option<u64>,
    /// Fractions (0..=100 %) of the reserved input and output actually consumed.
    used_in: u64,
    used_out: u64,
    fail: bool,
}

fn job() -> impl Strategy<Value = Job> {
    (1u64..400, prop::option::of(1u64..1500), 0u64..=100, 0u64..=100, prop::bool::weighted(0.1))
        .prop_map(|(input, max_out, used_in, used_out, fail)| Job { input, max_out, used_in, used_out, fail })
}

struct Tally {
    admitted: std::cell::Cell<u64>,
    charged: std::cell::RefCell<BTreeMap<String, u64>>,
}

fn run_job(
    store: &dyn Store,
    job: &Job,
    limits: &[&Limit],
    price: &Price,
    opts: &ReserveOptions,
    now: u64,
    tally: &Tally,
) {
    let req = ReserveRequest {
        consumer: "alice",
        limits,
        price: Some(price),
        estimate: Estimate { input_tokens: job.input, max_output_tokens: job.max_out },
    };
    let Ok(r) = reserve(store, &req, opts, now) else { return };
    tally.admitted.set(tally.admitted.get() + 1);
    if job.fail {
        release(store, r);
        return;
    }
    let actual = TokenCounts {
        input: r.input_tokens() * job.used_in / 100,
        output: r.output_tokens() * job.used_out / 100,
        ..TokenCounts::default()
    };
    let s = settle(store, r, &actual, now);
    assert_eq!(s.failed + s.expired, 0);
    let mut charged = tally.charged.borrow_mut();
    for (name, _, amount) in s.charged {
        *charged.entry(name).or_default() += amount;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Workers interrupt each other between any two store operations. With clamping on and
    /// actual usage within the reservation, no budget is ever exceeded, every counter ends with
    /// nothing reserved, and what the store holds as used is exactly what settlements charged.
    #[test]
    fn interleaved_workers_never_exceed_the_budget(
        jobs in prop::collection::vec(job(), 1..40),
        schedule in prop::collection::vec(any::<bool>(), 0..400),
    ) {
        let store = MemoryStore::new();
        let tpm = limit("tpm", Metric::TotalTokens, 5000, Window::Minute);
        let out = limit("out", Metric::OutputTokens, 3000, Window::Hour);
        let rpm = limit("rpm", Metric::Requests, 25, Window::Minute);
        let usd = limit("usd", Metric::MicroUsd, 20_000, Window::Day);
        let limits = [&tpm, &out, &rpm, &usd];
        let price = flat_price("2.50", "10.00");
        let opts = ReserveOptions { min_output_tokens: 8, default_max_output_tokens: 1000, ..ReserveOptions::default() };
        let tally = Tally { admitted: 0.into(), charged: BTreeMap::new().into() };
        let mut decisions = schedule.into_iter().cycle();
        let interleaver = Interleaver::new(&store, move || decisions.next().unwrap_or(false));
        for j in &jobs {
            let (limits, price, opts, tally) = (&limits, &price, &opts, &tally);
            interleaver.push(move |s: &dyn Store| run_job(s, j, limits, price, opts, NOW, tally));
        }
        interleaver.run_all();

        let charged = tally.charged.borrow();
        for l in limits {
            let (used, reserved) = budget::used(&store, "alice", l, NOW);
            prop_assert_eq!(reserved, 0, "{} still reserved", l.name);
            prop_assert!(used <= l.amount, "{} used {} of {}", l.name, used, l.amount);
            prop_assert_eq!(used, charged.get(&l.name).copied().unwrap_or(0), "{} charged", l.name);
        }
        prop_assert!(tally.admitted.get() <= 25);
    }
}

#[test]
fn threads_racing_on_one_store_never_exceed_the_budget() {
    let store = Arc::new(MemoryStore::new());
    let tpm = Arc::new(limit("tpm", Metric::TotalTokens, 20_000, Window::Minute));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (store, tpm) = (Arc::clone(&store), Arc::clone(&tpm));
            std::thread::spawn(move || {
                let mut charged = 0;
                for i in 0..300u64 {
                    let limits = [&*tpm];
                    let req = ReserveRequest {
                        consumer: "alice",
                        limits: &limits,
                        price: None,
                        estimate: Estimate { input_tokens: 20 + (i * 7 + t) % 50, max_output_tokens: Some(200) },
                    };
                    if let Ok(r) = reserve(&*store, &req, &ReserveOptions::default(), NOW) {
                        let actual = TokenCounts {
                            input: r.input_tokens(),
                            output: r.output_tokens() / 2,
                            ..Default::default()
                        };
                        let s = settle(&*store, r, &actual, NOW);
                        assert_eq!(s.failed, 0);
                        charged += s.charged[0].2;
                    }
                }
                charged
            })
        })
        .collect();
    let charged: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let (used, reserved) = budget::used(&*store, "alice", &tpm, NOW);
    assert_eq!(reserved, 0);
    assert_eq!(used, charged, "every settled token is counted exactly once");
    assert!(used <= 20_000, "used {used}");
    assert!(used > 19_000, "the budget is used up to its end, not refused early: {used}");
}

#[test]
fn overspend_without_clamping_is_bounded_by_the_excess_over_reservations() {
    // The client sent no max_tokens and clamping is off: 100 output tokens are reserved
    // (default) but 250 come back. Admission still held the line; settlement charges the truth.
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let opts = ReserveOptions { clamp: false, default_max_output_tokens: 100, ..ReserveOptions::default() };
    let mut excess = 0;
    let mut held = Vec::new();
    while let Ok(r) = reserve(&store, &request(&[&tpm], None, 100, None), &opts, NOW) {
        assert_eq!(r.max_tokens(), None, "not clamping: the body is left alone");
        held.push(r);
    }
    assert_eq!(held.len(), 5);
    for r in held {
        let actual = TokenCounts { input: 100, output: 250, ..TokenCounts::default() };
        excess += actual.total() - (r.input_tokens() + r.output_tokens());
        settle(&store, r, &actual, NOW);
    }
    let (used, _) = budget::used(&store, "alice", &tpm, NOW);
    assert_eq!(used, 1750);
    assert!(used <= tpm.amount + excess);
}

#[test]
fn rate_limit_headers_pick_the_tightest_limit() {
    let status = |name: &str, metric, limit, remaining, reset_secs| llm_gateway::quota::LimitStatus {
        name: name.to_string(),
        metric,
        window: Window::Minute,
        limit,
        remaining,
        reset_secs,
    };
    let headers = rate_limit_headers(&[
        status("tpm", Metric::TotalTokens, 10_000, 9_000, 20),
        status("tpd", Metric::InputTokens, 100_000, 500, 3600),
        status("usd", Metric::MicroUsd, 5, 0, 99),
    ]);
    assert_eq!(
        headers,
        [
            ("x-ratelimit-limit-tokens".to_string(), "100000".to_string()),
            ("x-ratelimit-remaining-tokens".to_string(), "500".to_string()),
            ("x-ratelimit-reset-tokens".to_string(), "1h0m0s".to_string()),
        ]
    );
}

#[test]
fn nested_interleavings_do_hit_cas_conflicts_and_still_hold() {
    // Every second store operation (a worker's write, right after its read) first runs the next
    // pending worker: that worker's read is then stale when it writes, and so on down the chain.
    let store = MemoryStore::new();
    let tpm = limit("tpm", Metric::TotalTokens, 1000, Window::Minute);
    let limits = [&tpm];
    let price = flat_price("1", "1");
    let opts = ReserveOptions::default();
    let tally = Tally { admitted: 0.into(), charged: BTreeMap::new().into() };
    let jobs: Vec<Job> =
        (0..12).map(|i| Job { input: 50 + i, max_out: Some(100), used_in: 100, used_out: 100, fail: false }).collect();
    let mut flip = false;
    let interleaver = Interleaver::new(&store, move || {
        flip = !flip;
        !flip
    });
    for j in &jobs {
        let (limits, price, opts, tally) = (&limits, &price, &opts, &tally);
        interleaver.push(move |s: &dyn Store| run_job(s, j, limits, price, opts, NOW, tally));
    }
    interleaver.run_all();
    let (writes, mismatches) = store.stats();
    assert!(mismatches > 0, "no conflict was simulated ({writes} writes)");
    let (used, reserved) = budget::used(&store, "alice", &tpm, NOW);
    assert_eq!(reserved, 0);
    assert!(used <= 1000);
    assert_eq!(used, tally.charged.borrow()["tpm"]);
    assert!(tally.admitted.get() >= 6, "admitted {}", tally.admitted.get());
}

// ---------------------------------------------------------------- item 24: reservations lapse

fn ttl_options(ttl: u64) -> ReserveOptions {
    ReserveOptions { clamp: false, reservation_ttl_secs: ttl, ..ReserveOptions::default() }
}

#[test]
fn a_reservation_that_never_settles_lapses_after_its_ttl() {
    // A monthly budget: without expiry a request whose VM reloaded would hold it all month.
    let store = MemoryStore::new();
    let monthly = limit("monthly", Metric::TotalTokens, 1_000, Window::Month);
    let limits = [&monthly];
    let opts = ttl_options(300);
    let lost = reserve(&store, &request(&limits, None, 100, Some(800)), &opts, NOW).unwrap();
    // The VM holding `lost` is gone: it is never settled nor released.
    std::mem::forget(lost);
    let big = request(&limits, None, 100, Some(800));
    let refused = reserve(&store, &big, &opts, NOW + 60).unwrap_err();
    assert_eq!(refused.reason, RejectReason::Exhausted);
    assert_eq!(budget::used(&store, "alice", &monthly, NOW + 60), (0, 900));
    // Still held just before the TTL, given back after it (plus at most a quarter TTL of rounding).
    assert!(reserve(&store, &big, &opts, NOW + 299).is_err());
    assert_eq!(budget::used(&store, "alice", &monthly, NOW + 300 + 75), (0, 0));
    let admitted = reserve(&store, &big, &opts, NOW + 300 + 75).unwrap();
    let settled = settle(&store, admitted, &TokenCounts { input: 90, output: 10, ..TokenCounts::default() }, NOW + 400);
    assert_eq!(settled.charged, vec![("monthly".to_string(), Metric::TotalTokens, 100)]);
    assert_eq!(budget::used(&store, "alice", &monthly, NOW + 400), (100, 0));
}

#[test]
fn a_request_that_outlives_its_hold_is_still_charged_and_frees_nobody_else() {
    let store = MemoryStore::new();
    let daily = limit("daily", Metric::TotalTokens, 1_000, Window::Day);
    let limits = [&daily];
    let opts = ttl_options(60);
    let slow = reserve(&store, &request(&limits, None, 100, Some(300)), &opts, NOW).unwrap();
    // Its hold lapses; another request reserves after that.
    let later = reserve(&store, &request(&limits, None, 100, Some(300)), &opts, NOW + 120).unwrap();
    assert_eq!(budget::used(&store, "alice", &daily, NOW + 120), (0, 400));
    // The slow one settles: its usage is charged, the later hold is untouched.
    settle(&store, slow, &TokenCounts { input: 100, output: 250, ..TokenCounts::default() }, NOW + 130);
    assert_eq!(budget::used(&store, "alice", &daily, NOW + 130), (350, 400));
    release(&store, later);
    assert_eq!(budget::used(&store, "alice", &daily, NOW + 131), (350, 0));
}

#[test]
fn counters_keep_a_fixed_size_whatever_the_traffic() {
    let store = MemoryStore::new();
    let daily = limit("daily", Metric::Requests, 1_000_000, Window::Day);
    let limits = [&daily];
    let opts = ttl_options(40);
    // A reservation every 3 seconds for 20 minutes, none settled (all VMs lost).
    for i in 0..400 {
        let r = reserve(&store, &request(&limits, None, 1, Some(1)), &opts, NOW + i * 3).unwrap();
        std::mem::forget(r);
    }
    let key = counter_key("alice", &daily, Window::Day.id(NOW));
    let (value, _) = store.get(&key).unwrap();
    assert_eq!(value.len(), 113, "version, window, used, 6 holds");
    // Only the reservations of the last TTL (plus rounding) are still held.
    let (_, held) = budget::used(&store, "alice", &daily, NOW + 399 * 3);
    assert!((14..=18).contains(&held), "held {held}");
}

#[test]
fn version_1_counters_are_read_and_their_reservations_dropped() {
    let store = MemoryStore::new();
    let daily = limit("daily", Metric::TotalTokens, 1_000, Window::Day);
    let key = counter_key("alice", &daily, Window::Day.id(NOW));
    let mut v1 = vec![1u8];
    for word in [Window::Day.id(NOW), 100, 700] {
        v1.extend_from_slice(&u64::to_le_bytes(word));
    }
    store.set(&key, &v1, None).unwrap();
    let limits = [&daily];
    let opts = ttl_options(60);
    // The old layout had no expiry: its reservations are dropped at once, its usage kept.
    assert_eq!(budget::used(&store, "alice", &daily, NOW), (100, 0));
    let r = reserve(&store, &request(&limits, None, 100, Some(200)), &opts, NOW).unwrap();
    assert_eq!(budget::used(&store, "alice", &daily, NOW), (100, 300));
    assert_eq!(store.get(&key).unwrap().0.len(), 113, "rewritten in the new layout");
    release(&store, r);
}

#[test]
fn reservation_ttl_is_validated() {
    let plans = Plans::default();
    let quota = |ttl: u64| {
        let raw: RawQuota = serde_json::from_value(serde_json::json!({"reservation_ttl_secs": ttl})).unwrap();
        validate_quota("quota", Some(&raw), &plans).map(|s| s.reserve.reservation_ttl_secs).map_err(|e| e.to_string())
    };
    assert_eq!(quota(120), Ok(120));
    assert_eq!(quota(0), Err("quota.reservation_ttl_secs: must be greater than 0".to_string()));
    assert_eq!(quota(86_401), Err("quota.reservation_ttl_secs: must be at most 86400 (a day)".to_string()));
    assert_eq!(validate_quota("quota", None, &plans).unwrap().reserve.reservation_ttl_secs, 600);
}

// ---------------------------------------------------------------- item 24: unlisted consumers

#[test]
fn unlisted_consumers_past_the_cap_share_a_pool_and_the_store_stays_bounded() {
    let raw: BTreeMap<String, RawPlan> = serde_json::from_value(
        serde_json::json!({"free": {"limits": [{"name": "rpd", "window": "day", "requests": 3}]}}),
    )
    .unwrap();
    let plans = validate_plans("plans", &raw).unwrap();
    let quota: RawQuota = serde_json::from_value(serde_json::json!({"max_unlisted_consumers": 2})).unwrap();
    let settings = validate_quota("quota", Some(&quota), &plans).unwrap();
    let policy = Policy::new(settings, plans, PriceTable::empty(), []).with_listed_consumers(["alice".to_string()]);
    let store = MemoryStore::new();
    let estimate = Estimate { input_tokens: 1, max_output_tokens: Some(1) };
    let admit = |consumer: &str| policy.reserve(&store, consumer, Some("free"), "m", "m", estimate, NOW);
    // 200 distinct unlisted identities (an IdP's users, or names sprayed at a trusted header).
    let mut admitted = 0;
    for i in 0..200 {
        if let Ok(r) = admit(&format!("user-{i}")) {
            admitted += 1;
            std::mem::forget(r);
        }
    }
    // user-0 and user-1 were admitted on counters of their own; the other 198 share one pool
    // of 3 requests.
    assert_eq!(admitted, 2 + 3);
    // 2 registry entries, the registry count, 2 own counters and the pool's: nothing per
    // later identity.
    let keys = store.keys();
    assert_eq!(keys.len(), 2 + 1 + 2 + 1, "bounded store: {keys:?}");
    assert!(keys.contains(&counter_key(
        ";unlisted;free",
        policy.plans().get("free").unwrap().limits.first().unwrap(),
        Window::Day.id(NOW)
    )));
    // The first two keep their own counters; listed consumers are not registered at all.
    let first = admit("user-0").unwrap();
    assert_eq!(first.consumer(), "user-0");
    release(&store, first);
    let alice = admit("alice").unwrap();
    assert_eq!(alice.consumer(), "alice");
    release(&store, alice);
    assert!(!store.keys().iter().any(|k| k == "llmgw:u:alice"));
    let late = admit("user-150");
    assert_eq!(late.unwrap_err().reason, RejectReason::Exhausted, "the pool is spent");
}

#[test]
fn max_unlisted_consumers_is_validated() {
    let plans = Plans::default();
    let raw: RawQuota = serde_json::from_value(serde_json::json!({"max_unlisted_consumers": 2_000_000})).unwrap();
    assert_eq!(
        validate_quota("quota", Some(&raw), &plans).unwrap_err().to_string(),
        "quota.max_unlisted_consumers: must be at most 1000000 (every one keeps store keys for good)"
    );
    assert_eq!(validate_quota("quota", None, &plans).unwrap().max_unlisted_consumers, 10_000);
}

#[test]
fn a_one_hour_cache_write_answer_costs_the_table_figure() {
    use llm_gateway::llm::{dialect::decode_response, ir::ProviderDialect};
    // The passthrough path reads an Anthropic answer's usage with the dialect's decoder.
    let body = Fixtures("anthropic").read("response_cache_1h.json");
    let usage = decode_response(ProviderDialect::Anthropic, &body).unwrap().usage;
    let counts = TokenCounts::from_usage(&usage, TokenCounts::default());
    assert_eq!((counts.input, counts.cache_write, counts.cache_write_1h, counts.output), (1020, 1000, 750, 12));
    let table = PriceTable::builtin().unwrap();
    // 20 fresh * $3 + 250 5-minute writes * $3.75 + 750 1-hour writes * $6 + 12 * $15 per million:
    // 60 + 937.5 + 4500 + 180 = 5677.5 micro-USD, rounded up once.
    assert_eq!(table.get("claude-sonnet-4-5-20250929").unwrap().cost(&counts), 5678);
}
