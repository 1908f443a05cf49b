//! Test duration histories and a run's remaining work, for both SQL backends (through
//! [`sql_durations!`]). A history is one row per identity and machine (machine 0: across
//! machines) holding its last samples as text ([`stpt_core::DurationHistory::to_text`]), so
//! an estimate is a primary-key lookup. Flushes take turns (on SQLite as a unit of work
//! through the one writer; on PostgreSQL on an advisory lock of their own, leaving the
//! machines' locks to their events).

/// Machine id of the histories across all machines.
pub(crate) const EVERYWHERE: i64 = 0;

/// Histories read or written by one statement of a flush (four binds each: under both
/// backends' bind limits).
pub(crate) const KEYS_PER_STATEMENT: usize = 500;

/// Implements `record_finished_now` and `remaining_work_now` for `$store`, whose
/// `begin_side_write` opens a unit of work for the flush of a machine still there (flushes take
/// turns) with a `tx` field and `finish_side_write`; `$json_rows` reads a run's remaining work as one row of JSON (SQLite).
macro_rules! sql_durations {
    (store: $store:ident, db: $db:ty, ts: $ts:path, json_rows: $json_rows:expr $(,)?) => {
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
                    let Some(mut unit) = self.begin_side_write(machine_id, &name).await? else {
                        continue;
                    };
                    // Each identity's two histories (this machine's, everywhere's), read once
                    // and written once a flush, a chunk of keys a statement.
                    let mut order: Vec<(i64, FileRef)> = Vec::new();
                    let mut added: HashMap<(i64, FileRef), Vec<i64>> = HashMap::new();
                    for (sample, millis) in samples
                        .iter()
                        .filter_map(|sample| Some((sample, sample.duration_sample()?)))
                    {
                        for owner in [machine_id, $crate::durations::EVERYWHERE] {
                            let key = (owner, sample.file.clone());
                            match added.get_mut(&key) {
                                Some(millis_added) => millis_added.push(millis),
                                None => {
                                    order.push(key.clone());
                                    added.insert(key, vec![millis]);
                                }
                            }
                        }
                    }
                    let mut stored: HashMap<(i64, FileRef), DurationHistory> =
                        HashMap::with_capacity(order.len());
                    for chunk in order.chunks($crate::durations::KEYS_PER_STATEMENT) {
                        let mut builder = ::sqlx::QueryBuilder::<$db>::new(
                            "WITH wanted (machine_id, file_path, file_name) AS (",
                        );
                        builder.push_values(chunk, |mut row, (owner, file)| {
                            row.push_bind(*owner)
                                .push_bind(file.file_path.as_str())
                                .push_bind(file.file_name.as_str());
                        });
                        builder.push(format!(
                            ") SELECT d.machine_id, d.file_path, d.file_name, d.samples \
                             FROM wanted w JOIN {p}durations d ON d.machine_id = w.machine_id \
                             AND d.file_path = w.file_path AND d.file_name = w.file_name"
                        ));
                        let rows: Vec<(i64, String, String, String)> = builder
                            .build_query_as()
                            .fetch_all(&mut *unit.tx)
                            .await
                            .db()?;
                        for (owner, file_path, file_name, text) in rows {
                            stored.insert(
                                (owner, FileRef { file_path, file_name }),
                                DurationHistory::from_text(&text),
                            );
                        }
                    }
                    for chunk in order.chunks($crate::durations::KEYS_PER_STATEMENT) {
                        let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                            "INSERT INTO {p}durations (machine_id, file_path, file_name, samples) "
                        ));
                        builder.push_values(chunk, |mut row, key| {
                            let mut history = stored.remove(key).unwrap_or_default();
                            for millis in added.get(key).into_iter().flatten() {
                                history.push(*millis);
                            }
                            row.push_bind(key.0)
                                .push_bind(key.1.file_path.as_str())
                                .push_bind(key.1.file_name.as_str())
                                .push_bind(history.to_text());
                        });
                        builder.push(
                            " ON CONFLICT (machine_id, file_path, file_name) \
                             DO UPDATE SET samples = excluded.samples",
                        );
                        builder.build().execute(&mut *unit.tx).await.db()?;
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
