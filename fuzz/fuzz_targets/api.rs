//! Any sequence of requests into `Api::handle` (see `edgeq_fuzz::api`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeq_fuzz::api(data));
