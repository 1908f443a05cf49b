//! What both backends share: their SQL (one text, table names differing only in a prefix) and,
//! through [`sql_store!`], the bodies of `Store` and `StoreTx`, which are the same text for
//! either database type.

/// The eight count columns, in `Status::ALL` order.
const COUNTS: &str =
    "n_waiting, n_running, n_passed, n_warning, n_failed, n_error, n_unknown, n_cancelled";

/// Every statement both backends run, with the backend's table prefix (`stpt.` or `stpt_`).
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) prefix: &'static str,
    /// A run's summary columns, table alias `r`.
    pub(crate) run_cols: &'static str,
    /// A machine by its name key (SQLite, which reads under its own lock).
    #[cfg(feature = "sqlite")]
    pub(crate) machine_by_key: String,
    /// A machine by its name key, locking the row (PostgreSQL).
    #[cfg(feature = "postgres")]
    pub(crate) machine_by_key_locked: String,
    pub(crate) ongoing_runs: String,
    pub(crate) scenario_states: String,
    pub(crate) scenario_state: String,
    pub(crate) first_waiting_test: String,
    pub(crate) running_test: String,
    pub(crate) machine_test: String,
    pub(crate) recorded_event: String,
    pub(crate) record_event: String,
    pub(crate) close_ongoing: String,
    pub(crate) update_test: String,
    pub(crate) update_scenario: String,
    pub(crate) update_run: String,
    pub(crate) upsert_machine: String,
    pub(crate) insert_run: String,
    pub(crate) set_latest_run: String,
    pub(crate) touch_machine: String,
    pub(crate) mark_silent: String,
    pub(crate) machines_page: String,
    pub(crate) machines_count: String,
    pub(crate) machine: String,
    pub(crate) machine_exists: String,
    /// A machine's version (PostgreSQL's optimistic reads check it).
    #[cfg(feature = "postgres")]
    pub(crate) machine_version: String,
    pub(crate) runs_page: String,
    pub(crate) runs_count: String,
    pub(crate) run_head: String,
    pub(crate) run_scenarios: String,
    pub(crate) run_tests: String,
    /// [`Sql::run_tests`] with each test's `seq`, as one row of JSON (SQLite, where each row
    /// costs a round trip to the connection's thread). The inner `ORDER BY` makes the run's
    /// rows be read in storage order; the array's order is not relied on.
    pub(crate) run_tests_json: String,
    /// `[id, seq]` of a run's tests, as one row of JSON (SQLite).
    pub(crate) test_ids_json: String,
    /// `[id, seq]` of a run's scenarios, as one row of JSON (SQLite).
    pub(crate) scenario_ids_json: String,
    pub(crate) item_master: String,
    pub(crate) item_scenario: String,
    pub(crate) item_test: String,
}

impl Sql {
    pub(crate) fn new(p: &'static str) -> Self {
        let test_cols =
            "id, scenario_id, file_path, file_name, status, timestamp_start, timestamp_stop";
        let state_cols = format!("id, {COUNTS}, timestamp_start, timestamp_stop");
        let run_cols = "r.id, r.machine_id, r.planned_at, r.received_at, r.status, \
             r.scenario_count, r.n_waiting, r.n_running, r.n_passed, r.n_warning, r.n_failed, \
             r.n_error, r.n_unknown, r.n_cancelled, r.timestamp_start, r.timestamp_stop, \
             r.went_silent_at, r.kept";
        let aggregate_set = "status = $2, n_waiting = $3, n_running = $4, n_passed = $5, \
             n_warning = $6, n_failed = $7, n_error = $8, n_unknown = $9, n_cancelled = $10, \
             timestamp_start = $11, timestamp_stop = $12";
        let machine_cols = format!(
            "SELECT m.id, m.name, m.latest_run_id, m.last_seen, m.clock_offset_ms, \
             m.runner_timezone, m.quiet_after_secs, m.offline_after_secs, m.own_retention, \
             m.keep_days, m.keep_runs, r.status AS run_status \
             FROM {p}machines m LEFT JOIN {p}runs r ON r.id = m.latest_run_id"
        );
        let item_cols = "c.file_path, c.file_name, s.body AS script, c.status, \
             c.timestamp_start, c.timestamp_stop";
        // Scenarios say nothing about how they ended; their tests do.
        let no_failure = "CAST(NULL AS TEXT) AS failure_message, \
             CAST(NULL AS TEXT) AS failure_details";
        Sql {
            prefix: p,
            run_cols,
            #[cfg(feature = "sqlite")]
            machine_by_key: format!(
                "SELECT id, name, latest_run_id, clock_offset_ms, runner_timezone, version \
                 FROM {p}machines WHERE name_key = $1"
            ),
            #[cfg(feature = "postgres")]
            machine_by_key_locked: format!(
                "SELECT id, name, latest_run_id, clock_offset_ms, runner_timezone, version \
                 FROM {p}machines WHERE name_key = $1 FOR UPDATE"
            ),
            ongoing_runs: format!(
                "SELECT {state_cols} FROM {p}runs \
                 WHERE machine_id = $1 AND status IN ('waiting', 'running') \
                 AND timestamp_stop IS NULL ORDER BY id DESC"
            ),
            scenario_states: format!(
                "SELECT {state_cols} FROM {p}scenarios WHERE run_id = $1 ORDER BY seq"
            ),
            scenario_state: format!("SELECT {state_cols} FROM {p}scenarios WHERE id = $1"),
            first_waiting_test: format!(
                "SELECT {test_cols} FROM {p}tests \
                 WHERE run_id = $1 AND file_key = $2 AND status = 'waiting' \
                 AND file_path = $3 AND file_name = $4 ORDER BY seq LIMIT 1"
            ),
            // The run names its running test; the status check keeps a stale name harmless.
            running_test: format!(
                "SELECT {test_cols} FROM {p}tests WHERE id = \
                 (SELECT running_test_id FROM {p}runs WHERE id = $1) \
                 AND run_id = $1 AND status = 'running'"
            ),
            machine_test: format!(
                "SELECT t.id, t.scenario_id, t.file_path, t.file_name, t.status, \
                 t.timestamp_start, t.timestamp_stop FROM {p}tests t \
                 JOIN {p}runs r ON r.id = t.run_id WHERE t.id = $1 AND r.machine_id = $2"
            ),
            recorded_event: format!(
                "SELECT receipt, new_run_id FROM {p}events WHERE machine_id = $1 AND event_id = $2"
            ),
            record_event: format!(
                "INSERT INTO {p}events (machine_id, event_id, receipt, new_run_id, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5)"
            ),
            mark_silent: format!("UPDATE {p}runs SET went_silent_at = $2 WHERE id = $1"),
            close_ongoing: format!(
                "UPDATE {p}tests SET status = $2, \
                 timestamp_stop = CASE WHEN status = 'running' THEN $3 ELSE timestamp_stop END \
                 WHERE run_id = $1 AND status IN ('waiting', 'running')"
            ),
            update_test: format!(
                "UPDATE {p}tests SET status = $2, timestamp_start = $3, timestamp_stop = $4, \
                 failure_message = $6, failure_details = $7 WHERE id = $1 AND run_id = $5"
            ),
            update_scenario: format!(
                "UPDATE {p}scenarios SET {aggregate_set} WHERE id = $1 AND run_id = $13"
            ),
            update_run: format!(
                "UPDATE {p}runs SET {aggregate_set}, \
                 running_test_id = NULLIF(COALESCE($14, running_test_id), 0) \
                 WHERE id = $1 AND machine_id = $13"
            ),
            upsert_machine: format!(
                "INSERT INTO {p}machines (name, name_key) VALUES ($1, $2) \
                 ON CONFLICT (name_key) DO UPDATE SET name_key = excluded.name_key RETURNING id"
            ),
            insert_run: format!(
                "INSERT INTO {p}runs (machine_id, status, {COUNTS}, timestamp_start, \
                 timestamp_stop, planned_at, received_at, file_path, file_name, script_id, \
                 scenario_count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18) RETURNING id"
            ),
            set_latest_run: format!(
                "UPDATE {p}machines SET latest_run_id = $2, last_seen = $3, \
                 clock_offset_ms = COALESCE($4, clock_offset_ms), version = version + 1 \
                 WHERE id = $1 RETURNING version"
            ),
            touch_machine: format!(
                "UPDATE {p}machines SET last_seen = $2, \
                 clock_offset_ms = COALESCE($3, clock_offset_ms), version = version + 1 \
                 WHERE id = $1 RETURNING version"
            ),
            machines_page: format!("{machine_cols} ORDER BY m.name_key, m.id LIMIT $1 OFFSET $2"),
            machines_count: format!("SELECT COUNT(*) FROM {p}machines"),
            machine: format!("{machine_cols} WHERE m.id = $1"),
            machine_exists: format!("SELECT id FROM {p}machines WHERE id = $1"),
            #[cfg(feature = "postgres")]
            machine_version: format!("SELECT version FROM {p}machines WHERE id = $1"),
            runs_page: format!(
                "SELECT {run_cols} FROM {p}runs r WHERE r.machine_id = $1 \
                 ORDER BY r.id DESC LIMIT $2 OFFSET $3"
            ),
            runs_count: format!("SELECT COUNT(*) FROM {p}runs WHERE machine_id = $1"),
            run_head: format!(
                "SELECT {run_cols}, m.name AS machine_name, r.file_path, r.file_name \
                 FROM {p}runs r JOIN {p}machines m ON m.id = r.machine_id WHERE r.id = $1"
            ),
            run_scenarios: format!(
                "SELECT id, file_path, file_name, status, {COUNTS}, timestamp_start, \
                 timestamp_stop FROM {p}scenarios WHERE run_id = $1 ORDER BY seq"
            ),
            run_tests: format!("SELECT {test_cols} FROM {p}tests WHERE run_id = $1 ORDER BY seq"),
            run_tests_json: format!(
                "SELECT json_group_array(json_array(seq, {test_cols})) FROM \
                 (SELECT seq, {test_cols} FROM {p}tests WHERE run_id = $1 ORDER BY seq)"
            ),
            test_ids_json: format!(
                "SELECT json_group_array(json_array(id, seq)) FROM \
                 (SELECT id, seq FROM {p}tests WHERE run_id = $1 ORDER BY seq)"
            ),
            scenario_ids_json: format!(
                "SELECT json_group_array(json_array(id, seq)) FROM {p}scenarios WHERE run_id = $1"
            ),
            item_master: format!(
                "SELECT c.id AS run_id, c.machine_id, {item_cols}, {no_failure} FROM {p}runs c \
                 LEFT JOIN {p}scripts s ON s.id = c.script_id WHERE c.id = $1"
            ),
            item_scenario: format!(
                "SELECT c.run_id, r.machine_id, {item_cols}, {no_failure} FROM {p}scenarios c \
                 JOIN {p}runs r ON r.id = c.run_id \
                 LEFT JOIN {p}scripts s ON s.id = c.script_id WHERE c.id = $1"
            ),
            item_test: format!(
                "SELECT c.run_id, r.machine_id, {item_cols}, c.failure_message, \
                 c.failure_details FROM {p}tests c \
                 JOIN {p}runs r ON r.id = c.run_id \
                 LEFT JOIN {p}scripts s ON s.id = c.script_id WHERE c.id = $1"
            ),
        }
    }

    /// `INSERT INTO <scripts> (hash, body) `: followed by values.
    pub(crate) fn insert_scripts_head(&self) -> String {
        format!("INSERT INTO {}scripts (hash, body) ", self.prefix)
    }

    /// `SELECT id, hash FROM <scripts> WHERE hash IN (`: followed by binds and `)`.
    pub(crate) fn script_ids_head(&self) -> String {
        format!(
            "SELECT id, hash FROM {}scripts WHERE hash IN (",
            self.prefix
        )
    }

    /// [`Sql::script_ids_head`] answering one row of JSON, `[[id, hex of hash], …]` (SQLite).
    pub(crate) fn script_ids_json_head(&self) -> String {
        format!(
            "SELECT json_group_array(json_array(id, hex(hash))) FROM {}scripts WHERE hash IN (",
            self.prefix
        )
    }

    /// Scenario insert head: 16 binds a row.
    pub(crate) fn insert_scenarios_head(&self) -> String {
        format!(
            "INSERT INTO {}scenarios (run_id, seq, file_path, file_name, script_id, status, \
             {COUNTS}, timestamp_start, timestamp_stop) ",
            self.prefix
        )
    }

    /// Test insert head: 10 binds a row.
    pub(crate) fn insert_tests_head(&self) -> String {
        format!(
            "INSERT INTO {}tests (run_id, scenario_id, seq, file_path, file_name, file_key, \
             script_id, status, identity_key, machine_id) ",
            self.prefix
        )
    }
}

/// Binds the 8 counts of an aggregate (`Status::ALL` order) to a query.
macro_rules! bind_counts {
    ($query:expr, $counts:expr) => {{
        let counts = $counts;
        let mut query = $query;
        for status in ::stpt_core::Status::ALL {
            query = query.bind($crate::rows::count_i64(counts.get(status)));
        }
        query
    }};
}

/// Implements `Store` for `$store` and `StoreTx` for `$tx` on database `$db`.
///
/// `$store` has fields `pool: Pool<$db>` and `sql: Arc<Sql>`, and inherent methods
/// `begin_tx(&self, &MachineName) -> Result<$tx>`, `read_tx(&self) -> Result<Transaction>` and
/// `remembered_test(&self, TestId) -> Option<TestLocation>` (a test of a remembered ongoing
/// run).
/// `$tx` has fields `tx` (a transaction or a guard that dereferences to a `$db` connection),
/// `machine: Option<MachineRecord>`, `sql: Arc<Sql>`, `known_identities: Arc<KnownIdentities>`
/// and `written_identities: Vec<i64>` (which the caller learns once the commit is durable),
/// and an inherent
/// `async fn finish(self: Box<Self>) -> Result<()>` that commits. `$ts` turns a `DateTime<Utc>` into the backend's bind value;
/// `$years` the years it can store and read back; `$max_binds` is the most bind parameters one
/// statement may carry; `$json_rows` reads a run's tests and a plan's new ids as one row of
/// JSON instead of a row each (SQLite, where every row crosses to the connection's thread).
macro_rules! sql_store {
    (store: $store:ident, tx: $tx:ident, db: $db:ty, ts: $ts:path, years: $years:expr, max_binds: $max_binds:expr, json_rows: $json_rows:expr $(,)?) => {
        impl $store {
            /// Run `id`'s header, read in `tx`; [`stpt_core::Error::NotFound`] if unknown.
            pub(crate) async fn run_head_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                id: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<$crate::rows::RunHeadRow> {
                let head: Option<$crate::rows::RunHeadRow> = ::sqlx::query_as(&self.sql.run_head)
                    .bind(id.get())
                    .fetch_optional(&mut **tx)
                    .await
                    .db()?;
                head.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::Run, id.get())
                })
            }
        }

        #[::async_trait::async_trait]
        impl ::stpt_core::Store for $store {
            async fn begin(
                &self,
                machine: &::stpt_core::MachineName,
            ) -> ::stpt_core::Result<Box<dyn ::stpt_core::StoreTx>> {
                self.begin_unit(machine).await
            }

            async fn machines(
                &self,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::MachineSummary>> {
                let rows: Vec<$crate::rows::MachineRow> = ::sqlx::query_as(&self.sql.machines_page)
                    .bind(i64::from(page.size()))
                    .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                let total: i64 = ::sqlx::query_scalar(&self.sql.machines_count)
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                let items = rows
                    .into_iter()
                    .map($crate::rows::MachineRow::summary)
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                Ok(::stpt_core::Page::new(
                    items,
                    page,
                    u64::try_from(total).unwrap_or_default(),
                ))
            }

            async fn machine(
                &self,
                id: ::stpt_core::MachineId,
            ) -> ::stpt_core::Result<::stpt_core::MachineSummary> {
                let row: Option<$crate::rows::MachineRow> = ::sqlx::query_as(&self.sql.machine)
                    .bind(id.get())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                row.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::Machine, id.get())
                })?
                .summary()
            }

            async fn runs(
                &self,
                machine: ::stpt_core::MachineId,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::RunSummary>> {
                let exists: Option<i64> = ::sqlx::query_scalar(&self.sql.machine_exists)
                    .bind(machine.get())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                if exists.is_none() {
                    return Err(::stpt_core::Error::not_found(
                        ::stpt_core::ItemKind::Machine,
                        machine.get(),
                    ));
                }
                let rows: Vec<$crate::rows::RunRow> = ::sqlx::query_as(&self.sql.runs_page)
                    .bind(machine.get())
                    .bind(i64::from(page.size()))
                    .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                let total: i64 = ::sqlx::query_scalar(&self.sql.runs_count)
                    .bind(machine.get())
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                let items = rows
                    .iter()
                    .map($crate::rows::RunRow::summary)
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                Ok(::stpt_core::Page::new(
                    items,
                    page,
                    u64::try_from(total).unwrap_or_default(),
                ))
            }

            async fn run(
                &self,
                id: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<::stpt_core::RunDetail> {
                // One snapshot for the three reads, so counts and tests agree.
                let mut tx = self.read_tx().await?;
                let head = self.run_head_in(&mut tx, id).await?;
                let scenarios: Vec<$crate::rows::ScenarioRow> =
                    ::sqlx::query_as(&self.sql.run_scenarios)
                        .bind(id.get())
                        .fetch_all(&mut *tx)
                        .await
                        .db()?;
                let tests = if $json_rows {
                    let text: String = ::sqlx::query_scalar(&self.sql.run_tests_json)
                        .bind(id.get())
                        .fetch_one(&mut *tx)
                        .await
                        .db()?;
                    $crate::rows::TestRow::from_json(&text)?
                } else {
                    ::sqlx::query_as(&self.sql.run_tests)
                        .bind(id.get())
                        .fetch_all(&mut *tx)
                        .await
                        .db()?
                };
                tx.commit().await.db()?;
                let mut scenarios = scenarios
                    .into_iter()
                    .map($crate::rows::ScenarioRow::view)
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                let index: ::std::collections::HashMap<i64, usize> = scenarios
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.id.get(), i))
                    .collect();
                for test in tests {
                    let scenario = test.scenario_id;
                    let test_id = test.id;
                    let slot = index.get(&scenario).copied().ok_or_else(|| {
                        ::stpt_core::Error::backend($crate::error::RowError::OrphanTest {
                            test: test_id,
                            scenario,
                        })
                    })?;
                    let view = test.view()?;
                    scenarios[slot].tests.push(view);
                }
                Ok(::stpt_core::RunDetail {
                    summary: head.run.summary()?,
                    machine_name: head.machine_name,
                    master: ::stpt_core::FileRef {
                        file_path: head.file_path,
                        file_name: head.file_name,
                    },
                    scenarios,
                })
            }

            async fn item(
                &self,
                item: ::stpt_core::ItemRef,
            ) -> ::stpt_core::Result<::stpt_core::ItemDetail> {
                let sql = match item {
                    ::stpt_core::ItemRef::MasterScenario(_) => &self.sql.item_master,
                    ::stpt_core::ItemRef::Scenario(_) => &self.sql.item_scenario,
                    ::stpt_core::ItemRef::Test(_) => &self.sql.item_test,
                };
                let row: Option<$crate::rows::ItemRow> = ::sqlx::query_as(sql)
                    .bind(item.raw_id())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                let row =
                    row.ok_or_else(|| ::stpt_core::Error::not_found(item.kind(), item.raw_id()))?;
                Ok(::stpt_core::ItemDetail {
                    item,
                    run_id: ::stpt_core::RunId(row.run_id),
                    machine_id: ::stpt_core::MachineId(row.machine_id),
                    status: $crate::rows::status("item status", &row.status)?,
                    file: ::stpt_core::FileRef {
                        file_path: row.file_path,
                        file_name: row.file_name,
                    },
                    script: row.script,
                    timestamp_start: row.timestamp_start,
                    timestamp_stop: row.timestamp_stop,
                    message: row.failure_message,
                    details: row.failure_details,
                })
            }

            async fn locate_test(
                &self,
                id: ::stpt_core::TestId,
            ) -> ::stpt_core::Result<::stpt_core::TestLocation> {
                if let Some(found) = self.remembered_test(id).await {
                    return Ok(found);
                }
                let item = ::stpt_core::Store::item(self, ::stpt_core::ItemRef::Test(id)).await?;
                let machine = ::stpt_core::Store::machine(self, item.machine_id).await?;
                Ok(::stpt_core::TestLocation {
                    machine: ::stpt_core::MachineName::new(machine.name)?,
                    run_id: item.run_id,
                    file: item.file,
                })
            }

            async fn record_finished(
                &self,
                samples: &[::stpt_core::FinishedTest],
            ) -> ::stpt_core::Result<()> {
                self.record_finished_now(samples).await
            }

            async fn remaining_work(
                &self,
                run: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<::stpt_core::RunRemaining> {
                self.remaining_work_now(run).await
            }

            async fn test_history(
                &self,
                key: ::stpt_core::history::TestKey,
                query: ::stpt_core::history::HistoryQuery,
            ) -> ::stpt_core::Result<::stpt_core::history::TestHistory> {
                self.test_history_now(key, query).await
            }

            async fn previous_run(
                &self,
                run: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<Option<::stpt_core::RunId>> {
                self.previous_run_now(run).await
            }

            async fn run_flakiness(
                &self,
                run: ::stpt_core::RunId,
                min_flips: u32,
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::TestFlakiness>> {
                self.run_flakiness_now(run, min_flips).await
            }

            async fn flaky_tests(
                &self,
                min_flips: u32,
                limit: u32,
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::FlakyTest>> {
                self.flaky_tests_now(min_flips, limit).await
            }

            async fn matrix_entries(
                &self,
                master: &::stpt_core::FileRef,
                machines: &[::stpt_core::MachineId],
            ) -> ::stpt_core::Result<Vec<::stpt_core::history::MatrixEntry>> {
                self.matrix_entries_now(master, machines).await
            }

            async fn search_runs(
                &self,
                search: &::stpt_core::history::RunSearch,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::history::RunListing>> {
                self.search_runs_now(search, page).await
            }

            async fn search_tests(
                &self,
                text: Option<&::stpt_core::history::TextFilter>,
                page: ::stpt_core::PageRequest,
            ) -> ::stpt_core::Result<::stpt_core::Page<::stpt_core::history::TestListing>> {
                self.search_tests_now(text, page).await
            }

            async fn delete_run(&self, id: ::stpt_core::RunId) -> ::stpt_core::Result<()> {
                self.delete_run_now(id, false).await.map(|_| ())
            }

            async fn prune_run(&self, id: ::stpt_core::RunId) -> ::stpt_core::Result<bool> {
                self.delete_run_now(id, true).await
            }

            async fn delete_machine(&self, id: ::stpt_core::MachineId) -> ::stpt_core::Result<()> {
                self.delete_machine_now(id).await
            }

            async fn set_machine_timezone(
                &self,
                id: ::stpt_core::MachineId,
                timezone: Option<::stpt_core::RunnerTimezone>,
            ) -> ::stpt_core::Result<()> {
                self.set_machine_timezone_now(id, timezone).await
            }

            async fn set_machine_timeouts(
                &self,
                id: ::stpt_core::MachineId,
                timeouts: ::stpt_core::MachineTimeouts,
            ) -> ::stpt_core::Result<()> {
                self.set_machine_timeouts_now(id, timeouts).await
            }

            async fn set_machine_retention(
                &self,
                id: ::stpt_core::MachineId,
                retention: Option<::stpt_core::RetentionPolicy>,
            ) -> ::stpt_core::Result<()> {
                self.set_machine_retention_now(id, retention).await
            }

            async fn set_run_kept(
                &self,
                id: ::stpt_core::RunId,
                kept: bool,
            ) -> ::stpt_core::Result<()> {
                self.set_run_kept_now(id, kept).await
            }
        }

        impl $tx {
            /// Reads the machine's ongoing runs in full into a memory, in the unit's
            /// transaction.
            pub(crate) async fn load_memory(
                &mut self,
                machine: ::stpt_core::MachineRecord,
                version: i64,
            ) -> ::stpt_core::Result<$crate::memory::MachineMemory> {
                let runs: Vec<$crate::rows::StateRow> = ::sqlx::query_as(&self.sql.ongoing_runs)
                    .bind(machine.id.get())
                    .fetch_all(&mut *self.tx)
                    .await
                    .db()?;
                let mut ongoing = Vec::with_capacity(runs.len());
                for run in runs {
                    let state = run.run_state()?;
                    let scenarios: Vec<$crate::rows::StateRow> =
                        ::sqlx::query_as(&self.sql.scenario_states)
                            .bind(state.id.get())
                            .fetch_all(&mut *self.tx)
                            .await
                            .db()?;
                    let tests = if $json_rows {
                        let text: String = ::sqlx::query_scalar(&self.sql.run_tests_json)
                            .bind(state.id.get())
                            .fetch_one(&mut *self.tx)
                            .await
                            .db()?;
                        $crate::rows::TestRow::from_json(&text)?
                    } else {
                        ::sqlx::query_as(&self.sql.run_tests)
                            .bind(state.id.get())
                            .fetch_all(&mut *self.tx)
                            .await
                            .db()?
                    };
                    ongoing.push(::stpt_core::RunIndex::new(
                        state,
                        scenarios
                            .iter()
                            .map($crate::rows::StateRow::scenario_state)
                            .collect::<::stpt_core::Result<_>>()?,
                        tests
                            .into_iter()
                            .map($crate::rows::TestRow::state)
                            .collect::<::stpt_core::Result<_>>()?,
                    ));
                }
                Ok($crate::memory::MachineMemory::new(
                    machine, version, ongoing,
                ))
            }

            /// Writes `changes` in the unit's transaction, without committing it: the
            /// machine's new version comes back with what was assigned.
            pub(crate) async fn write_changes(
                &mut self,
                changes: &::stpt_core::Changes,
            ) -> ::stpt_core::Result<(::stpt_core::Committed, i64)> {
                $crate::rows::check_years(changes, $years)?;
                let machine_id = match (&self.machine, &changes.new_run) {
                    (Some(machine), _) => machine.id.get(),
                    (None, Some(new_run)) => {
                        let name = new_run.plan.machine.as_str();
                        ::sqlx::query_scalar(&self.sql.upsert_machine)
                            .bind(name)
                            .bind(new_run.plan.machine.key())
                            .fetch_one(&mut *self.tx)
                            .await
                            .db()?
                    }
                    (None, None) => {
                        return Err(::stpt_core::Error::invariant(
                            "commit on a machine that does not exist",
                        ));
                    }
                };
                for work in &changes.runs {
                    self.apply_work(machine_id, work).await?;
                }
                let (new_run, version) = match &changes.new_run {
                    Some(new_run) => {
                        let (ids, version) = self
                            .insert_run(machine_id, new_run, changes.seen_at, changes.clock_offset)
                            .await?;
                        (Some(ids), version)
                    }
                    None => {
                        let version: i64 = ::sqlx::query_scalar(&self.sql.touch_machine)
                            .bind(machine_id)
                            .bind($ts(changes.seen_at))
                            .bind(changes.clock_offset.map(|offset| offset.millis()))
                            .fetch_one(&mut *self.tx)
                            .await
                            .db()?;
                        (None, version)
                    }
                };
                if let Some(record) = &changes.record {
                    ::sqlx::query(&self.sql.record_event)
                        .bind(machine_id)
                        .bind(record.event_id.as_str())
                        .bind(record.receipt.as_deref())
                        .bind(new_run.as_ref().map(|ids| ids.run_id.get()))
                        .bind($ts(changes.seen_at))
                        .execute(&mut *self.tx)
                        .await
                        .db()?;
                }
                Ok((
                    ::stpt_core::Committed {
                        machine_id: ::stpt_core::MachineId(machine_id),
                        new_run,
                    },
                    version,
                ))
            }

            /// Persists one run's work: the bulk close, the changed tests, scenarios, the run.
            async fn apply_work(
                &mut self,
                machine_id: i64,
                work: &::stpt_core::rules::RunWork,
            ) -> ::stpt_core::Result<()> {
                let run_id = work.run.id.get();
                if let Some(closed) = work.closed {
                    ::sqlx::query(&self.sql.close_ongoing)
                        .bind(run_id)
                        .bind(closed.status.as_str())
                        .bind($ts(closed.at))
                        .execute(&mut *self.tx)
                        .await
                        .db()?;
                    if let Some(since) = closed.silent_since {
                        ::sqlx::query(&self.sql.mark_silent)
                            .bind(run_id)
                            .bind($ts(since))
                            .execute(&mut *self.tx)
                            .await
                            .db()?;
                    }
                }
                for test in &work.tests {
                    let failure = test.failure.as_deref();
                    let done = ::sqlx::query(&self.sql.update_test)
                        .bind(test.id.get())
                        .bind(test.status.as_str())
                        .bind(test.timestamp_start.map($ts))
                        .bind(test.timestamp_stop.map($ts))
                        .bind(run_id)
                        .bind(failure.and_then(|f| f.message.as_deref()))
                        .bind(failure.and_then(|f| f.details.as_deref()))
                        .execute(&mut *self.tx)
                        .await
                        .db()?;
                    if done.rows_affected() != 1 {
                        return Err(::stpt_core::Error::not_found(
                            ::stpt_core::ItemKind::Test,
                            test.id.get(),
                        ));
                    }
                }
                for scenario in &work.scenarios {
                    let aggregate = &scenario.aggregate;
                    let query = ::sqlx::query(&self.sql.update_scenario)
                        .bind(scenario.id.get())
                        .bind(aggregate.status().as_str());
                    let done = bind_counts!(query, aggregate.counts)
                        .bind(aggregate.timestamp_start.map($ts))
                        .bind(aggregate.timestamp_stop.map($ts))
                        .bind(run_id)
                        .execute(&mut *self.tx)
                        .await
                        .db()?;
                    if done.rows_affected() != 1 {
                        return Err(::stpt_core::Error::not_found(
                            ::stpt_core::ItemKind::Scenario,
                            scenario.id.get(),
                        ));
                    }
                }
                let aggregate = &work.run.aggregate;
                let query = ::sqlx::query(&self.sql.update_run)
                    .bind(run_id)
                    .bind(aggregate.status().as_str());
                let done = bind_counts!(query, aggregate.counts)
                    .bind(aggregate.timestamp_start.map($ts))
                    .bind(aggregate.timestamp_stop.map($ts))
                    .bind(machine_id)
                    .bind($crate::rows::running_test_change(work))
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                if done.rows_affected() != 1 {
                    return Err(::stpt_core::Error::not_found(
                        ::stpt_core::ItemKind::Run,
                        run_id,
                    ));
                }
                Ok(())
            }

            /// Runs a multi-row insert; without `$json_rows`, adds the new rows' `(id, seq)` to
            /// `returned`.
            async fn insert_rows(
                &mut self,
                mut builder: ::sqlx::QueryBuilder<'_, $db>,
                returned: &mut Vec<(i64, i64)>,
            ) -> ::stpt_core::Result<()> {
                if $json_rows {
                    builder.build().execute(&mut *self.tx).await.db()?;
                } else {
                    builder.push(" RETURNING id, seq");
                    let ids: Vec<(i64, i64)> = builder
                        .build_query_as()
                        .fetch_all(&mut *self.tx)
                        .await
                        .db()?;
                    returned.extend(ids);
                }
                Ok(())
            }

            /// The `(id, seq)` of a run's new rows, read as one row of JSON by `sql`.
            async fn new_ids(
                &mut self,
                sql: &str,
                run_id: i64,
            ) -> ::stpt_core::Result<Vec<(i64, i64)>> {
                let text: String = ::sqlx::query_scalar(sql)
                    .bind(run_id)
                    .fetch_one(&mut *self.tx)
                    .await
                    .db()?;
                $crate::rows::id_pairs_from_json(&text)
            }

            /// Stores a plan: its scripts, the run, its scenarios and tests in bulk, and makes
            /// it the machine's latest run.
            async fn insert_run(
                &mut self,
                machine_id: i64,
                new_run: &::stpt_core::NewRun,
                seen_at: ::chrono::DateTime<::chrono::Utc>,
                clock_offset: Option<::stpt_core::ClockOffset>,
            ) -> ::stpt_core::Result<(::stpt_core::PlannedIds, i64)> {
                use $crate::rows::{PlanRows, in_plan_order};
                let max_binds: usize = $max_binds;
                let rows = PlanRows::new(new_run);

                // Scripts: each distinct text once.
                let mut script_ids: ::std::collections::HashMap<$crate::rows::ScriptHash, i64> =
                    ::std::collections::HashMap::with_capacity(rows.scripts.len());
                let scripts: Vec<(&$crate::rows::ScriptHash, &String)> =
                    rows.scripts.iter().collect();
                for chunk in scripts.chunks(max_binds / 2) {
                    let mut builder =
                        ::sqlx::QueryBuilder::<$db>::new(self.sql.insert_scripts_head());
                    builder.push_values(chunk, |mut b, (hash, body)| {
                        b.push_bind(hash.as_slice()).push_bind(body.as_str());
                    });
                    builder.push(" ON CONFLICT (hash) DO NOTHING");
                    builder.build().execute(&mut *self.tx).await.db()?;
                }
                for chunk in scripts.chunks(max_binds) {
                    let head = if $json_rows {
                        self.sql.script_ids_json_head()
                    } else {
                        self.sql.script_ids_head()
                    };
                    let mut builder = ::sqlx::QueryBuilder::<$db>::new(head);
                    let mut list = builder.separated(", ");
                    for (hash, _) in chunk {
                        list.push_bind(hash.as_slice());
                    }
                    builder.push(")");
                    let found: Vec<(i64, Vec<u8>)> = if $json_rows {
                        let text: String = builder
                            .build_query_scalar()
                            .fetch_one(&mut *self.tx)
                            .await
                            .db()?;
                        $crate::rows::script_ids_from_json(&text)?
                    } else {
                        builder
                            .build_query_as()
                            .fetch_all(&mut *self.tx)
                            .await
                            .db()?
                    };
                    for (id, hash) in found {
                        if let Ok(hash) = <$crate::rows::ScriptHash>::try_from(hash.as_slice()) {
                            script_ids.insert(hash, id);
                        }
                    }
                }
                let script_id =
                    |file: &$crate::rows::FileCols| -> ::stpt_core::Result<Option<i64>> {
                        file.script
                            .map(|hash| {
                                script_ids.get(&hash).copied().ok_or_else(|| {
                                    ::stpt_core::Error::backend(
                                        $crate::error::RowError::MissingScript,
                                    )
                                })
                            })
                            .transpose()
                    };

                // The run (its master scenario shares its row).
                let aggregate = &new_run.aggregate;
                let query = ::sqlx::query_scalar(&self.sql.insert_run)
                    .bind(machine_id)
                    .bind(aggregate.status().as_str());
                let run_id: i64 = bind_counts!(query, aggregate.counts)
                    .bind(aggregate.timestamp_start.map($ts))
                    .bind(aggregate.timestamp_stop.map($ts))
                    .bind($ts(new_run.timestamp))
                    .bind($ts(new_run.received_at))
                    .bind(rows.master.file_path.as_str())
                    .bind(rows.master.file_name.as_str())
                    .bind(script_id(&rows.master)?)
                    .bind(i64::try_from(rows.scenarios.len()).unwrap_or(i64::MAX))
                    .fetch_one(&mut *self.tx)
                    .await
                    .db()?;

                // Scenarios, in bulk.
                let mut returned = Vec::with_capacity(rows.scenarios.len());
                let scenario_scripts = rows
                    .scenarios
                    .iter()
                    .map(|s| script_id(&s.file))
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                let scenarios: Vec<_> = rows.scenarios.iter().zip(scenario_scripts).collect();
                for chunk in scenarios.chunks(max_binds / 16) {
                    let mut builder =
                        ::sqlx::QueryBuilder::<$db>::new(self.sql.insert_scenarios_head());
                    builder.push_values(chunk, |mut b, (scenario, script)| {
                        let aggregate = &scenario.aggregate;
                        b.push_bind(run_id)
                            .push_bind(scenario.seq)
                            .push_bind(scenario.file.file_path.as_str())
                            .push_bind(scenario.file.file_name.as_str())
                            .push_bind(*script)
                            .push_bind(aggregate.status().as_str());
                        for status in ::stpt_core::Status::ALL {
                            b.push_bind($crate::rows::count_i64(aggregate.counts.get(status)));
                        }
                        b.push_bind(aggregate.timestamp_start.map($ts))
                            .push_bind(aggregate.timestamp_stop.map($ts));
                    });
                    self.insert_rows(builder, &mut returned).await?;
                }
                if $json_rows {
                    let sql = ::std::sync::Arc::clone(&self.sql);
                    returned = self.new_ids(&sql.scenario_ids_json, run_id).await?;
                }
                let scenario_ids = in_plan_order(returned, rows.scenarios.len(), "scenarios")?;

                // Tests, in bulk.
                let mut returned = Vec::with_capacity(rows.tests.len());
                let test_rows = rows
                    .tests
                    .iter()
                    .map(|t| {
                        let scenario = scenario_ids.get(t.scenario).copied().ok_or_else(|| {
                            ::stpt_core::Error::backend($crate::error::RowError::InsertMismatch {
                                what: "scenarios",
                                expected: t.scenario + 1,
                                got: scenario_ids.len(),
                            })
                        })?;
                        Ok((t, scenario, script_id(&t.file)?))
                    })
                    .collect::<::stpt_core::Result<Vec<_>>>()?;
                for chunk in test_rows.chunks(max_binds / 10) {
                    let mut builder =
                        ::sqlx::QueryBuilder::<$db>::new(self.sql.insert_tests_head());
                    builder.push_values(chunk, |mut b, (test, scenario, script)| {
                        b.push_bind(run_id)
                            .push_bind(*scenario)
                            .push_bind(test.seq)
                            .push_bind(test.file.file_path.as_str())
                            .push_bind(test.file.file_name.as_str())
                            .push_bind(test.file_key)
                            .push_bind(*script)
                            .push_bind(::stpt_core::Status::Waiting.as_str())
                            .push_bind(test.identity_key)
                            .push_bind(machine_id);
                    });
                    self.insert_rows(builder, &mut returned).await?;
                }
                if $json_rows {
                    let sql = ::std::sync::Arc::clone(&self.sql);
                    returned = self.new_ids(&sql.test_ids_json, run_id).await?;
                }
                let test_ids = in_plan_order(returned, rows.tests.len(), "tests")?;

                // Identities, each once: the same tests are planned night after night, so
                // those known committed are not even upserted again.
                let new_identities: Vec<_> = rows
                    .identities
                    .iter()
                    .filter(|identity| !self.known_identities.contains(identity.key().get()))
                    .collect();
                for chunk in new_identities.chunks(max_binds / 6) {
                    let mut builder = ::sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {}test_identities (identity_key, scenario_path, \
                         scenario_name, file_path, file_name, search_text) ",
                        self.sql.prefix
                    ));
                    builder.push_values(chunk, |mut b, identity| {
                        b.push_bind(identity.key().get())
                            .push_bind(identity.scenario.file_path.as_str())
                            .push_bind(identity.scenario.file_name.as_str())
                            .push_bind(identity.test.file_path.as_str())
                            .push_bind(identity.test.file_name.as_str())
                            .push_bind(identity.search_text());
                    });
                    builder.push(" ON CONFLICT (identity_key) DO NOTHING");
                    builder.build().execute(&mut *self.tx).await.db()?;
                }
                self.written_identities
                    .extend(new_identities.iter().map(|identity| identity.key().get()));

                let version: i64 = ::sqlx::query_scalar(&self.sql.set_latest_run)
                    .bind(machine_id)
                    .bind(run_id)
                    .bind($ts(seen_at))
                    .bind(clock_offset.map(|offset| offset.millis()))
                    .fetch_one(&mut *self.tx)
                    .await
                    .db()?;

                let mut tests = test_ids.into_iter();
                let test_ids = rows
                    .tests_per_scenario
                    .iter()
                    .map(|n| tests.by_ref().take(*n).map(::stpt_core::TestId).collect())
                    .collect();
                Ok((
                    ::stpt_core::PlannedIds {
                        run_id: ::stpt_core::RunId(run_id),
                        scenario_ids: scenario_ids
                            .into_iter()
                            .map(::stpt_core::ScenarioId)
                            .collect(),
                        test_ids,
                    },
                    version,
                ))
            }
        }
    };
}

/// Implements `StoreTx` for `$tx` (see [`sql_store!`]) with every read a query in the unit's
/// transaction.
macro_rules! sql_store_tx {
    (tx: $tx:ident $(,)?) => {
        #[::async_trait::async_trait]
        impl ::stpt_core::StoreTx for $tx {
            fn machine(&self) -> Option<&::stpt_core::MachineRecord> {
                self.machine.as_ref()
            }

            async fn ongoing_runs(
                &mut self,
            ) -> ::stpt_core::Result<Vec<::stpt_core::rules::RunState>> {
                let Some(machine) = &self.machine else {
                    return Ok(Vec::new());
                };
                let rows: Vec<$crate::rows::StateRow> = ::sqlx::query_as(&self.sql.ongoing_runs)
                    .bind(machine.id.get())
                    .fetch_all(&mut *self.tx)
                    .await
                    .db()?;
                rows.iter().map($crate::rows::StateRow::run_state).collect()
            }

            async fn scenarios(
                &mut self,
                run: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<Vec<::stpt_core::rules::ScenarioState>> {
                let rows: Vec<$crate::rows::StateRow> = ::sqlx::query_as(&self.sql.scenario_states)
                    .bind(run.get())
                    .fetch_all(&mut *self.tx)
                    .await
                    .db()?;
                rows.iter()
                    .map($crate::rows::StateRow::scenario_state)
                    .collect()
            }

            async fn scenario(
                &mut self,
                id: ::stpt_core::ScenarioId,
            ) -> ::stpt_core::Result<::stpt_core::rules::ScenarioState> {
                let row: Option<$crate::rows::StateRow> =
                    ::sqlx::query_as(&self.sql.scenario_state)
                        .bind(id.get())
                        .fetch_optional(&mut *self.tx)
                        .await
                        .db()?;
                row.ok_or_else(|| {
                    ::stpt_core::Error::not_found(::stpt_core::ItemKind::Scenario, id.get())
                })?
                .scenario_state()
            }

            async fn first_waiting_test(
                &mut self,
                run: ::stpt_core::RunId,
                file_path: &str,
                file_name: &str,
            ) -> ::stpt_core::Result<Option<::stpt_core::rules::TestState>> {
                let row: Option<$crate::rows::TestRow> =
                    ::sqlx::query_as(&self.sql.first_waiting_test)
                        .bind(run.get())
                        .bind($crate::rows::file_key(file_path, file_name))
                        .bind(file_path)
                        .bind(file_name)
                        .fetch_optional(&mut *self.tx)
                        .await
                        .db()?;
                row.map($crate::rows::TestRow::state).transpose()
            }

            async fn running_test(
                &mut self,
                run: ::stpt_core::RunId,
            ) -> ::stpt_core::Result<Option<::stpt_core::rules::TestState>> {
                let row: Option<$crate::rows::TestRow> = ::sqlx::query_as(&self.sql.running_test)
                    .bind(run.get())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                row.map($crate::rows::TestRow::state).transpose()
            }

            async fn test(
                &mut self,
                id: ::stpt_core::TestId,
            ) -> ::stpt_core::Result<Option<::stpt_core::rules::TestState>> {
                let Some(machine) = &self.machine else {
                    return Ok(None);
                };
                let row: Option<$crate::rows::TestRow> = ::sqlx::query_as(&self.sql.machine_test)
                    .bind(id.get())
                    .bind(machine.id.get())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                row.map($crate::rows::TestRow::state).transpose()
            }

            async fn recorded_event(
                &mut self,
                event_id: &str,
            ) -> ::stpt_core::Result<Option<::stpt_core::RecordedEvent>> {
                let Some(machine) = &self.machine else {
                    return Ok(None);
                };
                let row: Option<(Option<String>, Option<i64>)> =
                    ::sqlx::query_as(&self.sql.recorded_event)
                        .bind(machine.id.get())
                        .bind(event_id)
                        .fetch_optional(&mut *self.tx)
                        .await
                        .db()?;
                Ok(row.map(|(receipt, new_run)| ::stpt_core::RecordedEvent {
                    receipt,
                    new_run: new_run.map(::stpt_core::RunId),
                }))
            }

            async fn confirm(&mut self) -> ::stpt_core::Result<()> {
                // Read in the locked transaction: always current.
                Ok(())
            }

            async fn commit(
                mut self: Box<Self>,
                changes: ::stpt_core::Changes,
            ) -> ::stpt_core::Result<::stpt_core::Committed> {
                let (committed, _version) = self.write_changes(&changes).await?;
                self.finish().await?;
                Ok(committed)
            }
        }
    };
}

pub(crate) use {bind_counts, sql_store, sql_store_tx};
