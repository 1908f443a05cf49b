//! History reads and flaky windows for both SQL backends (through [`sql_history!`]).
//!
//! Every test row carries its identity's key (`identity_key`, [`stpt_core::history::TestKey`])
//! under an index with its id, so an identity's results newest first are an index range read;
//! identities are listed once in `test_identities` (search reads that small table, never the
//! tests); each (machine, identity) window of outcomes is one row of `flaky`, updated as
//! finished tests are flushed ([`stpt_core::Store::record_finished`]), with its flip count in a
//! column so the flakiest tests are an index read.

use stpt_core::history::{FlakyWindow, TestIdentity, TestResult};
use stpt_core::{FileRef, MachineId, Result, RunId, TestId};

use crate::rows::status;

/// Rows backfilled per statement batch when a store opens on rows from before identities.
pub(crate) const BACKFILL_BATCH: i64 = 5_000;

/// One row of an identity's history.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ResultRow {
    id: i64,
    run_id: i64,
    machine_id: i64,
    machine_name: String,
    status: String,
    timestamp_start: Option<chrono::DateTime<chrono::Utc>>,
    timestamp_stop: Option<chrono::DateTime<chrono::Utc>>,
}

impl ResultRow {
    pub(crate) fn result(self) -> Result<TestResult> {
        Ok(TestResult {
            test_id: TestId(self.id),
            run_id: RunId(self.run_id),
            machine_id: MachineId(self.machine_id),
            machine_name: self.machine_name,
            status: status("tests.status", &self.status)?,
            timestamp_start: self.timestamp_start,
            timestamp_stop: self.timestamp_stop,
        })
    }
}

/// An identity as `test_identities` stores it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IdentityRow {
    scenario_path: String,
    scenario_name: String,
    file_path: String,
    file_name: String,
}

impl IdentityRow {
    pub(crate) fn identity(self) -> TestIdentity {
        TestIdentity::new(
            FileRef {
                file_path: self.scenario_path,
                file_name: self.scenario_name,
            },
            FileRef {
                file_path: self.file_path,
                file_name: self.file_name,
            },
        )
    }
}

/// A window with what the flakiest list shows beside it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FlakyRow {
    machine_id: i64,
    machine_name: String,
    identity_key: i64,
    outcomes: String,
    #[sqlx(flatten)]
    identity: IdentityRow,
}

impl FlakyRow {
    pub(crate) fn flaky_test(self) -> stpt_core::history::FlakyTest {
        stpt_core::history::FlakyTest {
            identity: self.identity.identity(),
            key: stpt_core::history::TestKey::from_stored(self.identity_key),
            machine_id: MachineId(self.machine_id),
            machine_name: self.machine_name,
            window: FlakyWindow::from_text(&self.outcomes),
        }
    }
}

/// One test of a machine's latest run of a master, for the matrix.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MatrixRow {
    machine_id: i64,
    machine_name: String,
    run_id: i64,
    test_id: i64,
    seq: i64,
    status: String,
    outcomes: Option<String>,
    #[sqlx(flatten)]
    identity: IdentityRow,
}

impl MatrixRow {
    /// Rows from a JSON array of `[machine_id, machine_name, run_id, test_id, seq, status,
    /// outcomes, scenario_path, scenario_name, file_path, file_name]` arrays (SQLite).
    pub(crate) fn from_json(text: &str) -> Result<Vec<MatrixRow>> {
        type Json = (
            i64,
            String,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            String,
            String,
            String,
            String,
        );
        let rows: Vec<Json> = serde_json::from_str(text).map_err(stpt_core::Error::backend)?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    machine_id,
                    machine_name,
                    run_id,
                    test_id,
                    seq,
                    status,
                    outcomes,
                    scenario_path,
                    scenario_name,
                    file_path,
                    file_name,
                )| MatrixRow {
                    machine_id,
                    machine_name,
                    run_id,
                    test_id,
                    seq,
                    status,
                    outcomes,
                    identity: IdentityRow {
                        scenario_path,
                        scenario_name,
                        file_path,
                        file_name,
                    },
                },
            )
            .collect())
    }

    pub(crate) fn entry(self) -> Result<stpt_core::history::MatrixEntry> {
        Ok(stpt_core::history::MatrixEntry {
            machine_id: MachineId(self.machine_id),
            machine_name: self.machine_name,
            run_id: RunId(self.run_id),
            test_id: TestId(self.test_id),
            seq: self.seq,
            identity: self.identity.identity(),
            status: status("tests.status", &self.status)?,
            window: self
                .outcomes
                .as_deref()
                .map(FlakyWindow::from_text)
                .unwrap_or_default(),
        })
    }
}

/// Implements the history reads (`*_now`), the flaky windows' update and the identity
/// backfill for `$store` on `$db`; `$ts` binds a time; `$collate` makes `ORDER BY` on text
/// compare code points, as every backend lists; `$json_rows` reads the matrix's rows as one
/// row of JSON (SQLite, where each row costs a round trip to the connection's thread).
macro_rules! sql_history {
    (store: $store:ident, db: $db:ty, ts: $ts:path, collate: $collate:expr, json_rows: $json_rows:expr $(,)?) => {
        impl $store {
            pub(crate) async fn test_history_now(
                &self,
                key: ::stpt_core::history::TestKey,
                query: ::stpt_core::history::HistoryQuery,
            ) -> ::stpt_core::Result<::stpt_core::history::TestHistory> {
                let p = self.sql.prefix;
                let identity: Option<$crate::history::IdentityRow> = ::sqlx::query_as(&format!(
                    "SELECT scenario_path, scenario_name, file_path, file_name \
                     FROM {p}test_identities WHERE identity_key = $1"
                ))
                .bind(key.get())
                .fetch_optional(&self.pool)
                .await
                .db()?;
                let identity = identity.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::TestIdentity, key.get())
                })?;
                let limit = query.effective_limit();
                let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT t.id, t.run_id, r.machine_id, m.name AS machine_name, t.status, \
                     t.timestamp_start, t.timestamp_stop FROM {p}tests t \
                     JOIN {p}runs r ON r.id = t.run_id JOIN {p}machines m ON m.id = r.machine_id \
                     WHERE t.identity_key = "
                ));
                builder.push_bind(key.get());
                if let Some(machine) = query.machine {
                    builder.push(" AND t.machine_id = ").push_bind(machine.get());
                }
                if let Some(status) = query.status {
                    builder.push(" AND t.status = ").push_bind(status.as_str());
                }
                if let Some(before) = query.before {
                    builder.push(" AND t.id < ").push_bind(before.get());
                }
                builder
                    .push(" ORDER BY t.id DESC LIMIT ")
                    .push_bind(i64::from(limit) + 1);
                let rows: Vec<$crate::history::ResultRow> =
                    builder.build_query_as().fetch_all(&self.pool).await.db()?;
                let results = rows
                    .into_iter()
                    .map($crate::history::ResultRow::result)
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                Ok(::stpt_core::history::TestHistory::from_rows(
                    identity.identity(),
                    results,
                    limit,
                ))
            }

            pub(crate) async fn previous_run_now(
                &self,
                run: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<Option<::stpt_core::RunId>> {
                let p = self.sql.prefix;
                let found: Option<(Option<i64>,)> = ::sqlx::query_as(&format!(
                    "SELECT (SELECT MAX(b.id) FROM {p}runs b WHERE b.file_name = r.file_name \
                     AND b.file_path = r.file_path AND b.machine_id = r.machine_id \
                     AND b.id < r.id) FROM {p}runs r WHERE r.id = $1"
                ))
                .bind(run.get())
                .fetch_optional(&self.pool)
                .await
                .db()?;
                match found {
                    None => Err(::stpt_core::Error::not_found(
                        ::stpt_core::ItemKind::Run,
                        run.get(),
                    )),
                    Some((previous,)) => Ok(previous.map(::stpt_core::RunId)),
                }
            }

            pub(crate) async fn run_flakiness_now(
                &self,
                run: ::stpt_core::RunId,
                min_flips: u32,
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::TestFlakiness>> {
                let p = self.sql.prefix;
                let machine: Option<i64> =
                    ::sqlx::query_scalar(&format!("SELECT machine_id FROM {p}runs WHERE id = $1"))
                        .bind(run.get())
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                let machine = machine.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::Run, run.get())
                })?;
                let rows: Vec<(i64, i64, String)> = ::sqlx::query_as(&format!(
                    "SELECT t.id, t.identity_key, f.outcomes FROM {p}tests t \
                     JOIN {p}flaky f ON f.machine_id = $2 AND f.identity_key = t.identity_key \
                     WHERE t.run_id = $1 AND f.flips >= $3 ORDER BY t.seq"
                ))
                .bind(run.get())
                .bind(machine)
                .bind(i64::from(min_flips))
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows
                    .into_iter()
                    .map(|(id, key, outcomes)| ::stpt_core::history::TestFlakiness {
                        test_id: ::stpt_core::TestId(id),
                        key: ::stpt_core::history::TestKey::from_stored(key),
                        window: ::stpt_core::history::FlakyWindow::from_text(&outcomes),
                    })
                    .collect())
            }

            pub(crate) async fn flaky_tests_now(
                &self,
                min_flips: u32,
                limit: u32,
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::FlakyTest>> {
                let p = self.sql.prefix;
                let collate: &str = $collate;
                let rows: Vec<$crate::history::FlakyRow> = ::sqlx::query_as(&format!(
                    "SELECT f.machine_id, m.name AS machine_name, f.identity_key, f.outcomes, \
                     i.scenario_path, i.scenario_name, i.file_path, i.file_name \
                     FROM {p}flaky f JOIN {p}machines m ON m.id = f.machine_id \
                     JOIN {p}test_identities i ON i.identity_key = f.identity_key \
                     WHERE f.flips >= $1 ORDER BY f.flips DESC, m.name{collate}, f.identity_key \
                     LIMIT $2"
                ))
                .bind(i64::from(min_flips))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .db()?;
                Ok(rows
                    .into_iter()
                    .map($crate::history::FlakyRow::flaky_test)
                    .collect())
            }

            pub(crate) async fn matrix_entries_now(
                &self,
                master: &::stpt_core::FileRef,
                machines: &[::stpt_core::MachineId],
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::MatrixEntry>> {
                let p = self.sql.prefix;
                // A matrix is thousands of rows: on SQLite they are read as one row of JSON.
                let json_head = if $json_rows {
                    "SELECT json_group_array(json_array(machine_id, machine_name, run_id, \
                     test_id, seq, status, outcomes, scenario_path, scenario_name, file_path, \
                     file_name)) FROM ("
                } else {
                    ""
                };
                let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                    "{json_head}SELECT l.machine_id, m.name AS machine_name, l.run_id, \
                     t.id AS test_id, t.seq, t.status, f.outcomes, \
                     s.file_path AS scenario_path, s.file_name AS scenario_name, \
                     t.file_path, t.file_name \
                     FROM (SELECT machine_id, MAX(id) AS run_id FROM {p}runs WHERE file_name = "
                ));
                builder
                    .push_bind(master.file_name.as_str())
                    .push(" AND file_path = ")
                    .push_bind(master.file_path.as_str());
                if !machines.is_empty() {
                    builder.push(" AND machine_id IN (");
                    let mut list = builder.separated(", ");
                    for machine in machines {
                        list.push_bind(machine.get());
                    }
                    builder.push(")");
                }
                builder.push(format!(
                    " GROUP BY machine_id) l JOIN {p}machines m ON m.id = l.machine_id \
                     JOIN {p}tests t ON t.run_id = l.run_id \
                     JOIN {p}scenarios s ON s.id = t.scenario_id \
                     LEFT JOIN {p}flaky f ON f.machine_id = l.machine_id \
                     AND f.identity_key = t.identity_key"
                ));
                let rows: Vec<$crate::history::MatrixRow> = if $json_rows {
                    builder.push(")");
                    let text: String =
                        builder.build_query_scalar().fetch_one(&self.pool).await.db()?;
                    $crate::history::MatrixRow::from_json(&text)?
                } else {
                    builder.build_query_as().fetch_all(&self.pool).await.db()?
                };
                rows.into_iter()
                    .map($crate::history::MatrixRow::entry)
                    .collect()
            }

            pub(crate) async fn search_runs_now(
                &self,
                search: &::stpt_core::history::RunSearch,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::history::RunListing>> {
                let p = self.sql.prefix;
                let filter = |builder: &mut ::sqlx::QueryBuilder<'_, $db>| {
                    builder.push(" WHERE 1 = 1");
                    if let Some(text) = &search.text {
                        builder
                            .push(" AND lower(r.file_path || '/' || r.file_name) LIKE ")
                            .push_bind(text.like_pattern())
                            .push(" ESCAPE '\\'");
                    }
                    if let Some(status) = search.status {
                        builder.push(" AND r.status = ").push_bind(status.as_str());
                    }
                    if let Some(machine) = search.machine {
                        builder.push(" AND r.machine_id = ").push_bind(machine.get());
                    }
                    if let Some(since) = search.since {
                        builder.push(" AND r.received_at >= ").push_bind($ts(since));
                    }
                    if let Some(until) = search.until {
                        builder.push(" AND r.received_at < ").push_bind($ts(until));
                    }
                };
                let mut count =
                    ::sqlx::QueryBuilder::<$db>::new(format!("SELECT COUNT(*) FROM {p}runs r"));
                filter(&mut count);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.db()?;
                let run_cols = self.sql.run_cols;
                let mut rows = ::sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {run_cols}, m.name AS machine_name, r.file_path, r.file_name \
                     FROM {p}runs r JOIN {p}machines m ON m.id = r.machine_id"
                ));
                filter(&mut rows);
                rows.push(" ORDER BY r.id DESC LIMIT ")
                    .push_bind(i64::from(page.size()))
                    .push(" OFFSET ")
                    .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
                let found: Vec<$crate::rows::RunHeadRow> =
                    rows.build_query_as().fetch_all(&self.pool).await.db()?;
                let items = found
                    .into_iter()
                    .map(|head| {
                        Ok(::stpt_core::history::RunListing {
                            run: head.run.summary()?,
                            machine_name: head.machine_name,
                            master: ::stpt_core::FileRef {
                                file_path: head.file_path,
                                file_name: head.file_name,
                            },
                        })
                    })
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                Ok(::stpt_core::Page::new(
                    items,
                    page,
                    u64::try_from(total).unwrap_or_default(),
                ))
            }

            pub(crate) async fn search_tests_now(
                &self,
                text: Option<&::stpt_core::history::TextFilter>,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::history::TestListing>> {
                let p = self.sql.prefix;
                let collate: &str = $collate;
                let filter = |builder: &mut ::sqlx::QueryBuilder<'_, $db>| {
                    if let Some(text) = text {
                        builder
                            .push(" WHERE search_text LIKE ")
                            .push_bind(text.like_pattern())
                            .push(" ESCAPE '\\'");
                    }
                };
                let mut count = ::sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT COUNT(*) FROM {p}test_identities"
                ));
                filter(&mut count);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.db()?;
                let mut rows = ::sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT scenario_path, scenario_name, file_path, file_name \
                     FROM {p}test_identities"
                ));
                filter(&mut rows);
                rows.push(format!(
                    " ORDER BY file_name{collate}, file_path{collate}, \
                     scenario_name{collate}, scenario_path{collate} LIMIT "
                ))
                .push_bind(i64::from(page.size()))
                .push(" OFFSET ")
                .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
                let found: Vec<$crate::history::IdentityRow> =
                    rows.build_query_as().fetch_all(&self.pool).await.db()?;
                let items = found
                    .into_iter()
                    .map(|row| ::stpt_core::history::TestListing::new(row.identity()))
                    .collect();
                Ok(::stpt_core::Page::new(
                    items,
                    page,
                    u64::try_from(total).unwrap_or_default(),
                ))
            }

            /// Adds the outcomes of `samples` (all of machine `machine_id`) to their
            /// identities' windows, in `tx`: one read and one write per window touched.
            pub(crate) async fn push_outcomes_in(
                &self,
                tx: &mut <$db as ::sqlx::Database>::Connection,
                machine_id: i64,
                samples: &[&::stpt_core::FinishedTest],
            ) -> ::stpt_core::Result<()> {
                use ::std::collections::HashMap;
                use ::stpt_core::history::{FlakyWindow, Outcome};
                let p = self.sql.prefix;
                let counted: Vec<&&::stpt_core::FinishedTest> = samples
                    .iter()
                    .filter(|sample| Outcome::of(sample.status).is_some())
                    .collect();
                if counted.is_empty() {
                    return Ok(());
                }
                let mut keys: HashMap<i64, i64> = HashMap::with_capacity(counted.len());
                for chunk in counted.chunks(500) {
                    let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT id, identity_key FROM {p}tests \
                         WHERE identity_key IS NOT NULL AND id IN ("
                    ));
                    let mut list = builder.separated(", ");
                    for sample in chunk {
                        list.push_bind(sample.test_id.get());
                    }
                    builder.push(")");
                    let found: Vec<(i64, i64)> =
                        builder.build_query_as().fetch_all(&mut *tx).await.db()?;
                    keys.extend(found);
                }
                // Every window this flush moves, read in one statement a chunk and written
                // the same way (the machine's lock is held meanwhile).
                let mut order: Vec<i64> = Vec::new();
                let mut added: HashMap<i64, Vec<::stpt_core::Status>> = HashMap::new();
                for sample in counted {
                    // A test deleted meanwhile: nothing to add it to.
                    let Some(&key) = keys.get(&sample.test_id.get()) else {
                        continue;
                    };
                    match added.get_mut(&key) {
                        Some(statuses) => statuses.push(sample.status),
                        None => {
                            order.push(key);
                            added.insert(key, vec![sample.status]);
                        }
                    }
                }
                let mut windows: HashMap<i64, FlakyWindow> = HashMap::with_capacity(order.len());
                for chunk in order.chunks(500) {
                    let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT identity_key, outcomes FROM {p}flaky WHERE machine_id = "
                    ));
                    builder.push_bind(machine_id).push(" AND identity_key IN (");
                    let mut list = builder.separated(", ");
                    for key in chunk {
                        list.push_bind(*key);
                    }
                    builder.push(")");
                    let found: Vec<(i64, String)> =
                        builder.build_query_as().fetch_all(&mut *tx).await.db()?;
                    windows.extend(
                        found
                            .into_iter()
                            .map(|(key, text)| (key, FlakyWindow::from_text(&text))),
                    );
                }
                for chunk in order.chunks(500) {
                    let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {p}flaky (machine_id, identity_key, outcomes, flips, failures) "
                    ));
                    builder.push_values(chunk, |mut row, key| {
                        let mut window = windows.remove(key).unwrap_or_default();
                        for status in added.get(key).into_iter().flatten() {
                            window.push_status(*status);
                        }
                        row.push_bind(machine_id)
                            .push_bind(*key)
                            .push_bind(window.to_text())
                            .push_bind(i64::from(window.flips()))
                            .push_bind(i64::from(window.failures()));
                    });
                    builder.push(
                        " ON CONFLICT (machine_id, identity_key) DO UPDATE SET \
                         outcomes = excluded.outcomes, flips = excluded.flips, \
                         failures = excluded.failures",
                    );
                    builder.build().execute(&mut *tx).await.db()?;
                }
                Ok(())
            }

            /// Gives tests stored before identities existed their identity key, in batches,
            /// and lists their identities. Runs when the store migrates; a no-op once done.
            pub(crate) async fn backfill_identities(&self) -> ::stpt_core::Result<u64> {
                let p = self.sql.prefix;
                let mut done = 0_u64;
                loop {
                    let rows: Vec<(i64, String, String, String, String)> =
                        ::sqlx::query_as(&format!(
                            "SELECT t.id, s.file_path, s.file_name, t.file_path, t.file_name \
                             FROM {p}tests t JOIN {p}scenarios s ON s.id = t.scenario_id \
                             WHERE t.identity_key IS NULL LIMIT $1"
                        ))
                        .bind($crate::history::BACKFILL_BATCH)
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    if rows.is_empty() {
                        break;
                    }
                    let mut tx = self.pool.begin().await.db()?;
                    let mut listed = ::std::collections::HashSet::new();
                    for (id, scenario_path, scenario_name, file_path, file_name) in &rows {
                        let identity = ::stpt_core::history::TestIdentity::new(
                            ::stpt_core::FileRef {
                                file_path: scenario_path.clone(),
                                file_name: scenario_name.clone(),
                            },
                            ::stpt_core::FileRef {
                                file_path: file_path.clone(),
                                file_name: file_name.clone(),
                            },
                        );
                        let key = identity.key();
                        ::sqlx::query(&format!(
                            "UPDATE {p}tests SET identity_key = $1 WHERE id = $2"
                        ))
                        .bind(key.get())
                        .bind(*id)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                        if listed.insert(key) {
                            self.list_identity_in(&mut *tx, &identity).await?;
                        }
                    }
                    tx.commit().await.db()?;
                    done += rows.len() as u64;
                    ::tracing::info!(tests = done, "test identities backfilled");
                }
                Ok(done)
            }

            async fn list_identity_in(
                &self,
                tx: &mut <$db as ::sqlx::Database>::Connection,
                identity: &::stpt_core::history::TestIdentity,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                ::sqlx::query(&format!(
                    "INSERT INTO {p}test_identities (identity_key, scenario_path, \
                     scenario_name, file_path, file_name, search_text) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (identity_key) DO NOTHING"
                ))
                .bind(identity.key().get())
                .bind(identity.scenario.file_path.as_str())
                .bind(identity.scenario.file_name.as_str())
                .bind(identity.test.file_path.as_str())
                .bind(identity.test.file_name.as_str())
                .bind(identity.search_text())
                .execute(&mut *tx)
                .await
                .db()?;
                Ok(())
            }
        }
    };
}
pub(crate) use sql_history;
