//! Benchmarks live beside this file: `cargo bench -p stpt-benches`.
