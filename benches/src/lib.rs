//! Shared pieces of the benchmarks (`cargo bench -p stpt-benches`).

use chrono::Utc;
use stpt_core::{MachineName, Plan, PlannedScenario, ScriptFile};

/// A script file at `/t`.
pub fn file(name: String) -> ScriptFile {
    ScriptFile {
        file_path: "/t".to_owned(),
        file_name: name,
        script: Some("run()\n".to_owned()),
    }
}

/// A plan for `machine` of `tests` tests named `t0.py`, `t1.py`, … at `/t`, 100 per scenario.
pub fn plan(machine: &str, tests: usize) -> Plan {
    Plan {
        machine: MachineName::new(machine).expect("valid machine name"),
        timestamp: Utc::now().into(),
        master: file("master.py".to_owned()),
        scenarios: (0..tests.div_ceil(100))
            .map(|s| PlannedScenario {
                file: file(format!("s{s}.py")),
                tests: (s * 100..tests.min((s + 1) * 100))
                    .map(|t| file(format!("t{t}.py")))
                    .collect(),
            })
            .collect(),
    }
}
