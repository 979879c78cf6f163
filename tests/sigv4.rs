//! SigV4 against AWS's published "Signature Version 4 test suite" (the vectors as shipped in
//! aws/aws-sdk-js-v3 packages/signature-v4/src/suite.fixture.ts, credentials AKIDEXAMPLE /
//! wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, service "service", 20150830T123600Z),
//! RFC 4231 HMAC-SHA256 vectors, and Bedrock requests signed by botocore
//! (tests/fixtures/bedrock/sigv4_botocore.json, made by make_sigv4_botocore.py).

use llm_gateway::llm::bedrock::sigv4::{self, CanonicalInput, Credentials, SignRequest};
use llm_gateway::llm::bedrock::upstream_path;
use serde_json::Value;

mod common;
use common::Fixtures;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20150830T123600Z";
const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
const XDATE: (&str, &str) = ("X-Amz-Date", DATE);
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn suite(method: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &str) -> sigv4::Signature {
    let mut headers = vec![HOST, XDATE];
    headers.extend_from_slice(extra);
    let hash = sigv4::sha256_hex(body.as_bytes());
    let input = CanonicalInput { method, path, query, headers: &headers, payload_hash: &hash };
    sigv4::sign_canonical(&input, AKID, SECRET, "us-east-1", "service", DATE)
}

fn sig_of(s: &sigv4::Signature) -> &str {
    &s.signature
}

#[test]
fn hmac_rfc4231() {
    let tc1 = sigv4::hmac_sha256(&[0x0b; 20], b"Hi There");
    assert_eq!(sigv4::hex(&tc1), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    let tc2 = sigv4::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(sigv4::hex(&tc2), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    let tc6 = sigv4::hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
    assert_eq!(sigv4::hex(&tc6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    assert_eq!(sigv4::sha256_hex(b""), sigv4::EMPTY_SHA256);
}

#[test]
fn suite_get_vanilla_intermediates() {
    let s = suite("GET", "/", "", &[], "");
    assert_eq!(
        s.canonical_request,
        format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\nhost;x-amz-date\n{}", sigv4::EMPTY_SHA256)
    );
    assert_eq!(
        s.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn suite_post_vanilla_query_string_to_sign() {
    let s = suite("POST", "/", "Param1=value1", &[], "");
    assert_eq!(
        s.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd"
    );
    assert_eq!(sig_of(&s), "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
}

#[test]
fn suite_post_x_www_form_urlencoded() {
    let s = suite("POST", "/", "", &[("Content-Type", "application/x-www-form-urlencoded")], "Param1=value1");
    assert_eq!(
        s.canonical_request,
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
    assert_eq!(
        s.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
    );
    assert_eq!(
        s.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    );
    let p =
        suite("POST", "/", "", &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], "Param1=value1");
    assert_eq!(sig_of(&p), "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe");
}

#[test]
fn suite_signatures() {
    let cases: Vec<(&str, sigv4::Signature, &str)> = vec![
        ("get-vanilla-query", suite("GET", "/", "", &[], ""), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        (
            "get-vanilla-empty-query-key",
            suite("GET", "/", "Param1=value1", &[], ""),
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        ),
        (
            "get-vanilla-query-order-key-case",
            suite("GET", "/", "Param2=value2&Param1=value1", &[], ""),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-vanilla-query-unreserved",
            suite(
                "GET",
                "/",
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                &[],
                "",
            ),
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        (
            "get-vanilla-utf8-query",
            suite("GET", "/", "%E1%88%B4=bar", &[], ""),
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
        (
            "get-unreserved",
            suite("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", &[], ""),
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
        ("get-utf8", suite("GET", "/\u{1234}", "", &[], ""), "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        (
            "get-header-key-duplicate",
            suite("GET", "/", "", &[("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], ""),
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        ),
        (
            "get-header-value-order",
            suite(
                "GET",
                "/",
                "",
                &[("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
                "",
            ),
            "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        ),
        (
            "get-header-value-trim",
            suite("GET", "/", "", &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")], ""),
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        ),
        ("post-vanilla", suite("POST", "/", "", &[], ""), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        (
            "post-header-key-case",
            suite("post", "/", "", &[], ""),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "post-header-key-sort",
            suite("POST", "/", "", &[("My-Header1", "value1")], ""),
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        ),
        (
            "post-header-value-case",
            suite("POST", "/", "", &[("My-Header1", "VALUE1")], ""),
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        ),
        (
            "post-vanilla-empty-query-value",
            suite("POST", "/", "Param1=value1", &[], ""),
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        ),
        (
            "post-vanilla-query-nonunreserved",
            suite(
                "POST",
                "/",
                "%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D",
                &[],
                "",
            ),
            "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
        ),
        (
            "post-vanilla-query-space",
            suite("POST", "/", "p=", &[], ""),
            "e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b",
        ),
        (
            "post-sts-header-before",
            suite("POST", "/", "", &[("X-Amz-Security-Token", STS_TOKEN)], ""),
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(_, s, want)| s.signature != *want)
        .map(|(name, s, want)| format!("{name}: got {} want {want}\n{}", s.signature, s.canonical_request))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn canonical_uri_double_encodes_non_s3_paths() {
    let path = upstream_path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/x.y-v1:0", false);
    assert_eq!(path, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fx.y-v1%3A0/converse");
    assert_eq!(
        sigv4::canonical_uri(&path),
        "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Ainference-profile%252Fx.y-v1%253A0/converse"
    );
    assert_eq!(sigv4::canonical_uri(""), "/");
}

#[test]
fn botocore_bedrock_vectors() {
    let raw = Fixtures("bedrock").read("sigv4_botocore.json");
    let cases: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let s = |k: &str| c[k].as_str().unwrap().to_owned();
        let (host, path, body, amz_date) = (s("host"), s("path"), s("body"), s("amz_date"));
        let token = c["session_token"].as_str();
        let mut headers =
            vec![("content-type", "application/json"), ("host", host.as_str()), ("x-amz-date", amz_date.as_str())];
        if let Some(t) = token {
            headers.push(("x-amz-security-token", t));
        }
        let hash = sigv4::sha256_hex(body.as_bytes());
        let input = CanonicalInput { method: "POST", path: &path, query: "", headers: &headers, payload_hash: &hash };
        let sig = sigv4::sign_canonical(&input, AKID, SECRET, "us-east-1", "bedrock", &amz_date);
        assert_eq!(sig.canonical_request, s("canonical_request"), "{}", s("name"));
        assert_eq!(sig.string_to_sign, s("string_to_sign"), "{}", s("name"));
        assert_eq!(sig.authorization, s("authorization"), "{}", s("name"));
    }
}

#[test]
fn sign_returns_the_headers_to_set() {
    let creds = Credentials { access_key: AKID.into(), secret_key: SECRET.into(), session_token: Some("tok".into()) };
    let path = upstream_path("anthropic.claude-3-haiku-20240307-v1:0", true);
    let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let hash = sigv4::sha256_hex(body);
    let req = SignRequest {
        method: "POST",
        host: "bedrock-runtime.us-east-1.amazonaws.com",
        path: &path,
        query: "",
        headers: &[("content-type", "application/json"), ("host", "ignored.example")],
        payload_hash: &hash,
        region: "us-east-1",
        service: "bedrock",
        amz_date: "20240115T093000Z",
    };
    let headers = sigv4::sign(&req, &creds);
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]);
    assert!(headers[0].1.starts_with(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
    ));
    assert_eq!(headers[2].1, hash);
    // Same as signing the canonical input by hand.
    let manual = sigv4::sign_canonical(
        &CanonicalInput {
            method: "POST",
            path: &path,
            query: "",
            headers: &[
                ("content-type", "application/json"),
                ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
                ("x-amz-content-sha256", &hash),
                ("x-amz-date", "20240115T093000Z"),
                ("x-amz-security-token", "tok"),
            ],
            payload_hash: &hash,
        },
        AKID,
        SECRET,
        "us-east-1",
        "bedrock",
        "20240115T093000Z",
    );
    assert_eq!(headers[0].1, manual.authorization);
    // Unsigned payload: the literal goes into both the header and the canonical request.
    let unsigned = sigv4::sign(&SignRequest { payload_hash: sigv4::UNSIGNED_PAYLOAD, ..req }, &creds);
    assert_eq!(unsigned[2].1, "UNSIGNED-PAYLOAD");
    assert_ne!(unsigned[0].1, headers[0].1);
}

#[test]
fn amz_date_from_unix_seconds() {
    assert_eq!(sigv4::amz_date(1_440_938_160), "20150830T123600Z");
    assert_eq!(sigv4::amz_date(951_782_400), "20000229T000000Z");
    assert_eq!(sigv4::amz_date(0), "19700101T000000Z");
    assert_eq!(sigv4::amz_date(4_102_444_799), "20991231T235959Z");
}

#[test]
fn credentials_debug_hides_secrets() {
    let c = Credentials { access_key: "AKID".into(), secret_key: "s3cr3t".into(), session_token: Some("t0k3n".into()) };
    let d = format!("{c:?}");
    assert!(d.contains("AKID") && !d.contains("s3cr3t") && !d.contains("t0k3n"), "{d}");
}

/// A request signed by this module with the fake provider's default secret; the Python test
/// integration/test_fakes.py replays it against the fake, which verifies it with its
/// own (independent) SigV4 code.
#[test]
fn request_for_the_fake_provider() {
    let creds = Credentials { access_key: "AKIDFAKE".into(), secret_key: "fake-secret".into(), session_token: None };
    let model = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0";
    let path = upstream_path(model, false);
    let body = r#"{"messages":[{"role":"user","content":[{"text":"signed by rust"}]}]}"#;
    let hash = sigv4::sha256_hex(body.as_bytes());
    let host = "127.0.0.1";
    let headers = sigv4::sign(
        &SignRequest {
            method: "POST",
            host,
            path: &path,
            query: "",
            headers: &[("content-type", "application/json")],
            payload_hash: &hash,
            region: "us-east-1",
            service: "bedrock",
            amz_date: "20240115T093000Z",
        },
        &creds,
    );
    let mut h = serde_json::Map::new();
    h.insert("content-type".into(), "application/json".into());
    for (k, v) in headers {
        h.insert(k, v.into());
    }
    let out = serde_json::json!({"signed_host": host, "path": path, "body": body, "headers": h});
    let text = serde_json::to_string_pretty(&out).unwrap() + "\n";
    // Read by integration/test_fakes.py too, hence a name outside the stage scheme.
    Fixtures("bedrock").golden("sigv4_fake_request.json", &text);
}
