//! The shared LiveBus conformance suite against the in-process bus.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

stpt_core::live_bus_conformance_tests!(#[tokio::test] async fn() {
    stpt_core::InProcessBus::with_capacity(64)
});
