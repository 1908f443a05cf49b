//! A virtual test machine: runs random plans against an stpt server, as rigs do.
//!
//! `cargo run -p stpt-server --bin stpt-virtual-machine -- --help`

use clap::Parser;
use std::time::Duration;
use stpt_server::virtual_machine::{Protocol, VirtualMachine, VirtualMachineConfig};

/// Drive an stpt server like one or more test rigs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Options {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    server: String,
    /// The machine's name (with several machines, `-1`, `-2`, ... are appended).
    #[arg(long, default_value = "virtual-rig")]
    name: String,
    /// How many machines run concurrently.
    #[arg(long, default_value_t = 1)]
    machines: usize,
    /// Scenarios per plan.
    #[arg(long, default_value_t = 4)]
    scenarios: usize,
    /// Tests per scenario.
    #[arg(long, default_value_t = 5)]
    tests: usize,
    /// Mean test duration in milliseconds.
    #[arg(long, default_value_t = 1500)]
    speed_ms: u64,
    /// Plans each machine runs (0: forever).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The API to speak.
    #[arg(long, value_enum, default_value_t = Protocol::Seed)]
    protocol: Protocol,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runner token, sent as `Authorization: Bearer`; needed unless the server accepts
    /// tokenless runners from here.
    #[arg(long, env = "STPT_TOKEN")]
    token: Option<String>,
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut machines = tokio::task::JoinSet::new();
    for n in 0..options.machines.max(1) {
        let name = if options.machines > 1 {
            format!("{}-{}", options.name, n + 1)
        } else {
            options.name.clone()
        };
        let machine = VirtualMachine::new(VirtualMachineConfig {
            server: options.server.clone(),
            name,
            scenarios: options.scenarios,
            tests_per_scenario: options.tests,
            mean_test_duration: Duration::from_millis(options.speed_ms),
            protocol: options.protocol,
            seed: options.seed.wrapping_add(n as u64),
            token: options.token.clone(),
        });
        let runs = (options.runs > 0).then_some(options.runs);
        machines.spawn(machine.run_forever(runs));
    }
    while machines.join_next().await.is_some() {}
}
