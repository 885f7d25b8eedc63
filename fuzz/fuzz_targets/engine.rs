//! Engine operation sequences checked against a model (see `edgeq_fuzz::engine`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeq_fuzz::engine(data));
