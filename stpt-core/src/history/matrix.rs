//! The test × machine matrix of one master scenario: is it the test or the rig?

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{FlakyWindow, TestIdentity, TestKey};
use crate::{FileRef, MachineId, RunId, Status, TestId};

/// One test of a machine's latest run of the master scenario, as a backend reads it for
/// [`Matrix::assemble`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixEntry {
    /// The machine.
    pub machine_id: MachineId,
    /// Its name.
    pub machine_name: String,
    /// The machine's latest run of the master scenario.
    pub run_id: RunId,
    /// The test in that run.
    pub test_id: TestId,
    /// Its place in the run's plan (any increasing order).
    pub seq: i64,
    /// Its identity.
    pub identity: TestIdentity,
    /// Its status in that run.
    pub status: Status,
    /// The identity's latest outcomes on the machine.
    pub window: FlakyWindow,
}

/// The order of a matrix's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixSort {
    /// Plan order.
    #[default]
    Plan,
    /// Highest failure rate first, then plan order.
    FailureRate,
}

/// Rows are tests, columns machines, each cell a machine's latest result of the test with
/// its pass rate over the machine's [`FlakyWindow`]. A row failing everywhere points at the
/// test; a column failing everywhere points at the rig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Matrix {
    /// The master scenario.
    pub master: FileRef,
    /// The machines that ran it, by name.
    pub columns: Vec<MatrixColumn>,
    /// The tests, in the asked order.
    pub rows: Vec<MatrixRow>,
}

/// A machine of a [`Matrix`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatrixColumn {
    /// The machine.
    pub machine_id: MachineId,
    /// Its name.
    pub machine_name: String,
    /// Its latest run of the master scenario.
    pub run_id: RunId,
    /// Failures over outcomes in its cells' windows; `None` without outcomes.
    pub failure_rate: Option<f64>,
}

/// A test of a [`Matrix`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatrixRow {
    /// The identity.
    pub identity: TestIdentity,
    /// Its key.
    pub key: TestKey,
    /// One cell per column; `None` where that machine's run has no such test.
    pub cells: Vec<Option<MatrixCell>>,
    /// Failures over outcomes in its cells' windows; `None` without outcomes.
    pub failure_rate: Option<f64>,
}

/// A machine's latest result of a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatrixCell {
    /// The test in the machine's latest run.
    pub test_id: TestId,
    /// Its status there.
    pub status: Status,
    /// The identity's latest outcomes on the machine.
    pub window: FlakyWindow,
}

fn failure_rate<'a>(windows: impl Iterator<Item = &'a FlakyWindow>) -> Option<f64> {
    let (failures, outcomes) = windows.fold((0_u32, 0_u32), |(failures, outcomes), window| {
        (failures + window.failures(), outcomes + window.len())
    });
    (outcomes > 0).then(|| f64::from(failures) / f64::from(outcomes))
}

impl Matrix {
    /// The matrix of `master` from the tests of each machine's latest run of it. A test
    /// planned twice in a run shows its later result.
    pub fn assemble(master: FileRef, entries: Vec<MatrixEntry>, sort: MatrixSort) -> Matrix {
        let mut machines: BTreeMap<(String, MachineId), RunId> = BTreeMap::new();
        for entry in &entries {
            machines.insert((entry.machine_name.clone(), entry.machine_id), entry.run_id);
        }
        let column_of: HashMap<MachineId, usize> = machines
            .keys()
            .enumerate()
            .map(|(index, (_, id))| (*id, index))
            .collect();
        let width = machines.len();
        // Rows keyed by identity, ordered by the first place any run plans them.
        let mut rows: HashMap<TestKey, (i64, MatrixRow)> = HashMap::new();
        for entry in entries {
            let Some(&column) = column_of.get(&entry.machine_id) else {
                continue;
            };
            let key = entry.identity.key();
            let (first_seq, row) = rows.entry(key).or_insert_with(|| {
                (
                    entry.seq,
                    MatrixRow {
                        identity: entry.identity.clone(),
                        key,
                        cells: vec![None; width],
                        failure_rate: None,
                    },
                )
            });
            *first_seq = (*first_seq).min(entry.seq);
            let later = row.cells[column]
                .as_ref()
                .is_none_or(|cell| cell.test_id < entry.test_id);
            if later {
                row.cells[column] = Some(MatrixCell {
                    test_id: entry.test_id,
                    status: entry.status,
                    window: entry.window,
                });
            }
        }
        let mut rows: Vec<(i64, MatrixRow)> = rows.into_values().collect();
        for (_, row) in &mut rows {
            row.failure_rate = failure_rate(row.cells.iter().flatten().map(|cell| &cell.window));
        }
        rows.sort_by(|(a_seq, a), (b_seq, b)| {
            let by_rate = match sort {
                MatrixSort::Plan => std::cmp::Ordering::Equal,
                MatrixSort::FailureRate => b
                    .failure_rate
                    .unwrap_or(-1.0)
                    .total_cmp(&a.failure_rate.unwrap_or(-1.0)),
            };
            by_rate.then(a_seq.cmp(b_seq)).then(a.key.cmp(&b.key))
        });
        let rows: Vec<MatrixRow> = rows.into_iter().map(|(_, row)| row).collect();
        let columns = machines
            .into_iter()
            .enumerate()
            .map(
                |(index, ((machine_name, machine_id), run_id))| MatrixColumn {
                    machine_id,
                    machine_name,
                    run_id,
                    failure_rate: failure_rate(
                        rows.iter()
                            .filter_map(|row| row.cells[index].as_ref())
                            .map(|cell| &cell.window),
                    ),
                },
            )
            .collect();
        Matrix {
            master,
            columns,
            rows,
        }
    }
}
