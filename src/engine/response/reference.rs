//! The stream passthrough against the code it replaced (kept here verbatim as the oracle:
//! every event decoded, scanned into owned keys, `choices` read by serde, every event
//! re-encoded when rewriting): the same bytes for every chunk, the same meter, the same
//! end-of-stream decisions, at every split of many streams, odd ones included.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::json_scan::Member;

struct Reference {
    decoder: SseDecoder,
    rewrite: bool,
    broken: bool,
    terminated: bool,
    tail: Vec<u8>,
    events: Vec<SseEvent>,
    responses_api: bool,
}

enum OldKeep {
    Same,
    As(String),
    Drop,
}

impl Reference {
    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, now_ms: u64) -> Rewrite {
        if self.broken {
            return Some(Vec::new());
        }
        if !self.rewrite {
            remember_tail(&mut self.tail, chunk);
        }
        let mut failed = self.decoder.feed(chunk, &mut self.events).err();
        if end && failed.is_none() {
            failed = self.decoder.finish(&mut self.events).err();
        }
        let mut out = self.rewrite.then(Vec::new);
        for event in self.events.drain(..) {
            let members = json_scan::top_level_members(event.data.as_bytes());
            self.terminated |= old_ends(&event, members.as_deref().ok(), self.responses_api);
            let keep = old_observe(&event, members.ok(), meter, now_ms, self.rewrite, self.responses_api);
            if let Some(out) = out.as_mut() {
                match keep {
                    OldKeep::Drop => {}
                    OldKeep::As(data) => encode_event_with_data(&event, &data, out),
                    OldKeep::Same => encode_event(&event, out),
                }
            }
        }
        if let Some(error) = failed {
            self.broken = true;
            let out = out.get_or_insert_with(Vec::new);
            encode_openai_stream_error(&format!("llm-gateway: {error}; stream ended"), out);
        } else if end && !self.terminated {
            let out = out.get_or_insert_with(|| chunk.to_vec());
            let separator = if self.rewrite { b"".as_slice() } else { event_separator(&self.tail) };
            out.extend_from_slice(separator);
            encode_openai_stream_error("llm-gateway: provider stream ended early", out);
        }
        out
    }

    fn abandon(&mut self, meter: &mut Meter, now_ms: u64) {
        let mut events = std::mem::take(&mut self.events);
        let _ = self.decoder.finish(&mut events);
        for event in &events {
            let members = json_scan::top_level_members(event.data.as_bytes()).ok();
            old_observe(event, members, meter, now_ms, false, self.responses_api);
        }
    }
}

fn old_ends(event: &SseEvent, members: Option<&[Member]>, responses_api: bool) -> bool {
    let trimmed = event.data.trim();
    if trimmed == "[DONE]" {
        return true;
    }
    let rescanned;
    let (data, members) = match members {
        Some(members) => (event.data.as_str(), members),
        None if trimmed.len() != event.data.len() => match json_scan::top_level_members(trimmed.as_bytes()) {
            Ok(members) => {
                rescanned = members;
                (trimmed, rescanned.as_slice())
            }
            Err(_) => return false,
        },
        None => return false,
    };
    if json_scan::find(members, "error").is_some() {
        return true;
    }
    let kind = json_scan::find(members, "type").and_then(|m| data.as_bytes().get(m.value.clone()));
    responses_api
        && matches!(
            kind,
            Some(b"\"response.completed\"" | b"\"response.failed\"" | b"\"response.incomplete\"" | b"\"error\"")
        )
}

fn old_observe(
    event: &SseEvent,
    members: Option<Vec<Member>>,
    meter: &mut Meter,
    now_ms: u64,
    rewrite: bool,
    responses_api: bool,
) -> OldKeep {
    if responses_api {
        // The old `event_usage(event)` / `event_text_bytes(event)`: serde on the decoded data.
        if let Some(usage) = openai_responses::event_usage(event.event.as_deref(), event.data.as_bytes()) {
            meter.report(&usage);
        }
        meter
            .generated(openai_responses::event_text_bytes(event.event.as_deref(), event.data.as_bytes(), None), now_ms);
        return OldKeep::Same;
    }
    let data = event.data.as_bytes();
    let Some(members) = members else {
        return OldKeep::Same;
    };
    let info = openai::inspect_chunk(data, &members);
    if let Some(reported) = &info.usage {
        meter.report(reported);
    }
    meter.generated(info.generated_bytes, now_ms);
    if !rewrite {
        return OldKeep::Same;
    }
    if info.usage_only {
        return OldKeep::Drop;
    }
    match json_scan::find(&members, "usage") {
        Some(m) if data.get(m.value.clone()) == Some(b"null") => {
            let patched = json_scan::apply_edits(data, &[json_scan::remove_member(data, &members, m)]);
            let data =
                String::from_utf8(patched).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            OldKeep::As(data)
        }
        _ => OldKeep::Same,
    }
}

/// Chat chunks' data, usual and odd.
const CHAT: &[&str] = &[
    r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" idle"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"a\"b\\n\n\t\u00e9\u20ac\ud83d\ude00\/\u0000"}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"héllo wörld 😀 €"}}],"usage":null}"#,
    r#"{"usage":null,"id":"x","choices":[{"delta":{"content":"first"}}]}"#,
    r#"{"usage":null}"#,
    r#"{ "usage" : null }"#,
    r#"{"choices":[{"delta":{"content":"\"usage\":null,"}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"x","usage":null}}],"note":"\"usage\":null"}"#,
    r#"{"usage":null,"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"choices":[]}"#,
    r#"{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"usage":null,"choices":[]}"#,
    r#"{"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":50,"total_tokens":462,"prompt_tokens_details":{"cached_tokens":12}}}"#,
    r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
    r#"{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"bb"}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"a","content":"b"}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"a"},"delta":{"content":"b"}}]}"#,
    r#"{"choices":[{"delta":{"content":5}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":null,"refusal":"no"}}],"usage":null}"#,
    r#"{"choices":[{"delta":null},{"delta":{}},{}],"usage":null}"#,
    r#"{"choices":[{"delta":["a","b"]}],"usage":null}"#,
    r#"{"choices":[[{"content":"as an array"}]],"usage":null}"#,
    r#"{"choices":[null],"usage":null}"#,
    r#"{"choices":null,"usage":null}"#,
    r#"{"choices":{"delta":{"content":"x"}},"usage":null}"#,
    r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"get_weather","arguments":""}}]}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Par"}},{"function":null},{}]}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","name":"b"}}]}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a"},"function":{"name":"b"}}]}}]}"#,
    r#"{"choices":[{"delta":{"tool_calls":null,"tool_calls":[]}}]}"#,
    r#"{"choices":[{"delta":{"tool_calls":[1]}}]}"#,
    r#"{"choices":[{"delta":{"reasoning_content":"think \u00e9","content":"x"}},{"delta":{"content":"second"}}],"usage":null}"#,
    r#"  {  "choices" : [ { "delta" : { "content" : "spaced" } } ] , "usage" : null  }  "#,
    r#"{"\u0075sage":null,"choices":[{"delta":{"con\u0074ent":"abc"}}]}"#,
    r#"{"choices":[{"d\u0065lta":{"content":"abc"}}],"usage":null}"#,
    r#"{"choices":[{"delta":{"content":"abc","extra":{"deep":[[[{"a":[1,2,{"b":null}]}]]]}}}],"usage":null}"#,
    r#"{"error":{"message":"boom","type":"server_error"}}"#,
    r#"{"a":"#,
    r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
    "[DONE]",
    " [DONE] ",
    "not json",
    r#"{"type":"error","message":"x"}"#,
    "{}",
];

/// Responses API events: (type, data).
const RESPONSES: &[(&str, &str)] = &[
    ("response.created", r#"{"type":"response.created","response":{"id":"r","status":"in_progress","usage":null}}"#),
    (
        "response.output_text.delta",
        r#"{"type":"response.output_text.delta","item_id":"i","output_index":0,"content_index":0,"delta":"Hel\"lo \u00e9"}"#,
    ),
    ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":"héllo 😀"}"#),
    ("response.output_text.delta", r#"{"type":"response.output_text.d\u0065lta","delta":"x"}"#),
    ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":"a","delta":"b"}"#),
    ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":null}"#),
    ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":5}"#),
    ("response.output_text.delta", r#"{"type":5,"delta":"abc"}"#),
    ("response.output_text.delta", r#"{"type":"x","type":"y","delta":"abc"}"#),
    ("response.output_text.delta", r#"{"delta":"abc","response":{"id":"r"}}"#),
    ("response.output_text.delta", r#"{"delta":"abc","response":null}"#),
    ("response.output_text.delta", r#"{"de\u006cta":"abc"}"#),
    (
        "response.function_call_arguments.delta",
        r#"{"type":"response.function_call_arguments.delta","delta":"{\"a\":1}"}"#,
    ),
    ("response.audio.delta", r#"{"type":"response.audio.delta","delta":"AAAA"}"#),
    (
        "response.completed",
        r#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}}"#,
    ),
    (
        "response.incomplete",
        r#"{"type":"response.incomplete","response":{"id":"r","usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7}}}"#,
    ),
    ("error", r#"{"type":"error","message":"x"}"#),
];

/// Ways of putting an event on the wire: the encoder's own form and every other.
fn wire(kind: Option<&str>, data: &str, form: usize) -> Vec<u8> {
    let event = kind.map(|k| format!("event: {k}\n")).unwrap_or_default();
    let s = match form {
        0 => format!("{event}data: {data}\n\n"),
        1 => format!("{event}data:{data}\n\n"),
        2 => format!("{}data: {data}\r\n\r\n", event.replace('\n', "\r\n")),
        3 => format!("{}data: {data}\r\r", event.replace('\n', "\r")),
        4 => format!("id: 7\n{event}data: {data}\n\n"),
        5 => format!("retry: 100\n{event}data: {data}\n\n"),
        6 => format!(": keep-alive\n{event}data: {data}\n\n"),
        7 => format!("{event}data: {data}\ndata: {data}\n\n"),
        8 => format!("{}data: {data}\n\n", kind.map(|k| format!("event:{k}\n")).unwrap_or_default()),
        9 => format!("event:\ndata: {data}\n\n"),
        10 => format!("{event}data: {data}\nfoo: bar\n\n"),
        _ => format!("{event}data:  {data}\n\n"),
    };
    s.into_bytes()
}

struct Run {
    outputs: Vec<Rewrite>,
    usage: crate::usage::Usage,
    generated: usize,
    first_token: Option<u64>,
    final_report: bool,
    terminated: bool,
    broken: bool,
}

fn compare(stream: &[u8], cuts: &[usize], rewrite: bool, responses_api: bool, max: usize, abandon: bool) {
    let mut new = OpenAiSse::new(max, rewrite, responses_api);
    let mut old = Reference {
        decoder: SseDecoder::new(max),
        rewrite,
        broken: false,
        terminated: false,
        tail: Vec::new(),
        events: Vec::new(),
        responses_api,
    };
    let (mut new_meter, mut old_meter) = (Meter::default(), Meter::default());
    let (mut new_out, mut old_out) = (Vec::new(), Vec::new());
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < stream.len()));
    bounds.push(stream.len());
    for (i, pair) in bounds.windows(2).enumerate() {
        let chunk = &stream[pair[0]..pair[1]];
        let end = !abandon && i + 2 == bounds.len();
        new_out.push(new.chunk(&mut new_meter, chunk, end, i as u64));
        old_out.push(old.chunk(&mut old_meter, chunk, end, i as u64));
    }
    if abandon {
        new.decoder_abandon(&mut new_meter, 99);
        old.abandon(&mut old_meter, 99);
    }
    let run = |outputs, m: &Meter, terminated, broken| Run {
        outputs,
        usage: m.usage,
        generated: m.generated_bytes,
        first_token: m.first_token_ms,
        final_report: m.report_is_final,
        terminated,
        broken,
    };
    let (a, b) =
        (run(new_out, &new_meter, new.terminated, new.broken), run(old_out, &old_meter, old.terminated, old.broken));
    let context = || {
        format!(
            "stream {:?} cut at {cuts:?}, rewrite {rewrite}, responses {responses_api}, max {max}, abandon {abandon}",
            String::from_utf8_lossy(stream)
        )
    };
    for (i, (x, y)) in a.outputs.iter().zip(&b.outputs).enumerate() {
        assert_eq!(
            x.as_ref().map(|v| String::from_utf8_lossy(v)),
            y.as_ref().map(|v| String::from_utf8_lossy(v)),
            "chunk {i} of {}",
            context()
        );
        assert_eq!(x, y, "chunk {i} bytes of {}", context());
    }
    assert_eq!(a.usage, b.usage, "usage of {}", context());
    assert_eq!(a.generated, b.generated, "generated bytes of {}", context());
    assert_eq!(a.first_token, b.first_token, "first token of {}", context());
    assert_eq!(a.final_report, b.final_report, "report_is_final of {}", context());
    assert_eq!(a.terminated, b.terminated, "terminated of {}", context());
    assert_eq!(a.broken, b.broken, "broken of {}", context());
}

impl OpenAiSse {
    fn decoder_abandon(&mut self, meter: &mut Meter, now_ms: u64) {
        let mut body = ResponseBody::OpenAiSse(Box::new(std::mem::replace(self, OpenAiSse::new(1, false, false))));
        body.abandon(meter, now_ms);
        if let ResponseBody::OpenAiSse(s) = body {
            *self = *s;
        }
    }
}

/// Every way to cut `stream` in two, byte-at-a-time, and a few three-way cuts.
fn all_feedings(stream: &[u8], run: impl Fn(&[usize])) {
    run(&[]);
    for i in 1..stream.len() {
        run(&[i]);
    }
    run(&(1..stream.len()).collect::<Vec<_>>());
    let n = stream.len();
    for (a, b) in [(n / 3, 2 * n / 3), (1, n - 1), (n / 2, n / 2 + 1)] {
        run(&[a, b]);
    }
}

fn configs(stream: &[u8], responses_api: bool) {
    for rewrite in [true, false] {
        for max in [1 << 20, 96] {
            all_feedings(stream, |cuts| compare(stream, cuts, rewrite, responses_api, max, false));
        }
        compare(stream, &[stream.len() / 2], rewrite, responses_api, 1 << 20, true);
        compare(stream, &[], rewrite, responses_api, 1 << 20, true);
    }
}

#[test]
fn chat_events_in_every_form_at_every_split() {
    let first = wire(None, CHAT[1], 0);
    for data in CHAT {
        for form in 0..12 {
            let mut stream = first.clone();
            stream.extend(wire(None, data, form));
            stream.extend(wire(None, CHAT[0], 0));
            configs(&stream, false);
        }
    }
}

#[test]
fn responses_events_in_every_form_at_every_split() {
    let (k0, d0) = RESPONSES[1];
    for (kind, data) in RESPONSES {
        for form in 0..12 {
            let mut stream = wire(Some(k0), d0, 0);
            stream.extend(wire(Some(kind), data, form));
            stream.extend(wire(None, data, form));
            configs(&stream, true);
        }
    }
}

#[test]
fn odd_framing_at_every_split() {
    let canonical = wire(None, CHAT[1], 0);
    let odd: &[&[u8]] = &[
        b"\xEF\xBB\xBFdata: {\"choices\":[],\"usage\":null}\n\n",
        b"data: \n\n",
        b"data:\n\n",
        b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}],\"usage\":null}\n\n",
        b"data: \xff\n\n",
        b"event: \xffbad\ndata: {\"usage\":null}\n\n",
        b"data: {\"usage\":null}\n",
        b"data: {\"usage\":null}",
        b"data: {\"usage\":null}\r",
        b"\n\n\n",
        b"data: {\"usage\":null}\n\ndata: [DONE]\n\n",
        b"data: {\"usage\":null,\"pad\":\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"}\n\n",
        b"event: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\ndata: {}\n\n",
        b"data: {\"usage\":null,\"pad\":\"012345678901234567890123456789012345678901234567890123456789012345678901234\"}\n\n",
    ];
    for bytes in odd {
        for responses_api in [false, true] {
            let mut stream = bytes.to_vec();
            stream.extend_from_slice(&canonical);
            configs(&stream, responses_api);
            let mut stream = canonical.clone();
            stream.extend_from_slice(bytes);
            configs(&stream, responses_api);
        }
    }
}

/// A generated mix of everything above, cut at pseudo-random points.
#[test]
fn random_mixes() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..400 {
        let responses_api = round % 3 == 0;
        let mut stream = Vec::new();
        for _ in 0..1 + next(8) {
            let form = if next(3) == 0 { next(12) } else { 0 };
            if responses_api && next(4) != 0 {
                let (kind, data) = RESPONSES[next(RESPONSES.len())];
                stream.extend(wire(Some(kind), data, form));
            } else {
                stream.extend(wire(None, CHAT[next(CHAT.len())], form));
            }
        }
        let mut cuts: Vec<usize> = (0..next(6)).map(|_| next(stream.len() + 1)).collect();
        cuts.sort_unstable();
        for rewrite in [true, false] {
            for max in [1 << 20, 160] {
                compare(&stream, &cuts, rewrite, responses_api, max, false);
                compare(&stream, &cuts, rewrite, responses_api, max, round % 2 == 0);
            }
        }
    }
}
