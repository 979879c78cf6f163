#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::template(data));
