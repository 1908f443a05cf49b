//! Test duration histories and a run's remaining work, for both SQL backends (through
//! [`sql_durations!`]). A history is one row per identity and machine (machine 0: across
//! machines) holding its last samples as text ([`stpt_core::DurationHistory::to_text`]), so
//! an estimate is a primary-key lookup. Histories are written under the machine's lock, as
//! a unit of work is, so on SQLite they go through the one writer.

/// Machine id of the histories across all machines.
pub(crate) const EVERYWHERE: i64 = 0;

/// Implements `record_finished_now` and `remaining_work_now` for `$store`, whose
/// `begin_tx` opens a locked unit of work with a `tx` field and whose unit has
/// `finish_side_write`; `$json_rows` reads a run's remaining work as one row of JSON (SQLite).
macro_rules! sql_durations {
    (store: $store:ident, ts: $ts:path, json_rows: $json_rows:expr $(,)?) => {
        impl $store {
            pub(crate) async fn record_finished_now(
                &self,
                samples: &[::stpt_core::FinishedTest],
            ) -> ::stpt_core::Result<()> {
                use ::std::collections::{BTreeMap, HashMap};
                use ::stpt_core::{DurationHistory, FileRef};
                let p = self.sql.prefix;
                let mut by_machine: BTreeMap<i64, Vec<&::stpt_core::FinishedTest>> =
                    BTreeMap::new();
                for sample in samples {
                    by_machine
                        .entry(sample.machine_id.get())
                        .or_default()
                        .push(sample);
                }
                for (machine_id, samples) in by_machine {
                    let name = self
                        .machine_name_of(
                            &format!("SELECT name FROM {p}machines WHERE id = $1"),
                            machine_id,
                        )
                        .await?;
                    // A machine deleted meanwhile: its results are gone, and so are these.
                    let Some(name) = name else { continue };
                    let mut unit = self.begin_tx(&name).await?;
                    let mut histories: HashMap<(i64, FileRef), DurationHistory> = HashMap::new();
                    let mut order: Vec<(i64, FileRef)> = Vec::new();
                    for (sample, millis) in samples
                        .iter()
                        .filter_map(|sample| Some((sample, sample.duration_sample()?)))
                    {
                        for owner in [machine_id, $crate::durations::EVERYWHERE] {
                            let key = (owner, sample.file.clone());
                            if !histories.contains_key(&key) {
                                let text: Option<String> = ::sqlx::query_scalar(&format!(
                                    "SELECT samples FROM {p}durations WHERE machine_id = $1 \
                                     AND file_path = $2 AND file_name = $3"
                                ))
                                .bind(owner)
                                .bind(sample.file.file_path.as_str())
                                .bind(sample.file.file_name.as_str())
                                .fetch_optional(&mut *unit.tx)
                                .await
                                .db()?;
                                let history = text
                                    .as_deref()
                                    .map(DurationHistory::from_text)
                                    .unwrap_or_default();
                                histories.insert(key.clone(), history);
                                order.push(key.clone());
                            }
                            if let Some(history) = histories.get_mut(&key) {
                                history.push(millis);
                            }
                        }
                    }
                    for key in order {
                        let Some(history) = histories.get(&key) else {
                            continue;
                        };
                        ::sqlx::query(&format!(
                            "INSERT INTO {p}durations (machine_id, file_path, file_name, samples) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (machine_id, file_path, file_name) \
                             DO UPDATE SET samples = excluded.samples"
                        ))
                        .bind(key.0)
                        .bind(key.1.file_path.as_str())
                        .bind(key.1.file_name.as_str())
                        .bind(history.to_text())
                        .execute(&mut *unit.tx)
                        .await
                        .db()?;
                    }
                    self.push_outcomes_in(&mut *unit.tx, machine_id, &samples)
                        .await?;
                    Box::new(unit).finish_side_write().await?;
                }
                Ok(())
            }

            pub(crate) async fn remaining_work_now(
                &self,
                id: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<::stpt_core::RunRemaining> {
                let p = self.sql.prefix;
                let mut tx = self.read_tx().await?;
                let head = self.run_head_in(&mut tx, id).await?;
                // The run's waiting and running tests, each with its identity's histories:
                // two primary-key lookups a test, no sort and no grouping in the database
                // (both cost more than the lookups on SQLite); grouped by identity here.
                let tests = format!(
                    "SELECT t.seq, t.file_path, t.file_name, t.status, t.id, t.timestamp_start, \
                     m.samples AS on_machine, g.samples AS everywhere \
                     FROM {p}tests t \
                     LEFT JOIN {p}durations m ON m.machine_id = $2 \
                     AND m.file_path = t.file_path AND m.file_name = t.file_name \
                     LEFT JOIN {p}durations g ON g.machine_id = {everywhere} \
                     AND g.file_path = t.file_path AND g.file_name = t.file_name \
                     WHERE t.run_id = $1 AND t.status IN ('waiting', 'running')",
                    everywhere = $crate::durations::EVERYWHERE,
                );
                let rows: Vec<$crate::rows::RemainingRow> = if $json_rows {
                    let text: String = ::sqlx::query_scalar(&format!(
                        "SELECT json_group_array(json_array(seq, file_path, file_name, status, \
                         id, timestamp_start, on_machine, everywhere)) FROM ({tests})"
                    ))
                    .bind(id.get())
                    .bind(head.run.machine_id())
                    .fetch_one(&mut *tx)
                    .await
                    .db()?;
                    $crate::rows::RemainingRow::from_json(&text)?
                } else {
                    ::sqlx::query_as(&tests)
                        .bind(id.get())
                        .bind(head.run.machine_id())
                        .fetch_all(&mut *tx)
                        .await
                        .db()?
                };
                Ok(::stpt_core::RunRemaining {
                    run: head.run.summary()?,
                    work: $crate::rows::RemainingRow::work(rows)?,
                })
            }
        }
    };
}
pub(crate) use sql_durations;
