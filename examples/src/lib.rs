//! Examples live beside this file: `cargo run -p stpt-examples --example <name>`.
