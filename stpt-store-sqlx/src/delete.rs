//! Deleting runs and machines, for both SQL backends (through [`sql_deletes!`]). Each delete
//! takes the machine's lock as a unit of work does (the advisory lock on PostgreSQL, the
//! write lock on SQLite), so it never interleaves with an event on that machine.

/// Implements `delete_run_now` and `delete_machine_now` for `$store`, whose `begin_tx`
/// opens a locked unit of work with a `tx` field.
macro_rules! sql_deletes {
    (store: $store:ident $(,)?) => {
        impl $store {
            /// The name of the machine `machine_id`, or of the machine of run `run_id`.
            async fn machine_name_of(
                &self,
                sql: &str,
                id: i64,
            ) -> ::stpt_core::Result<Option<::stpt_core::MachineName>> {
                let name: Option<String> = ::sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                name.map(::stpt_core::MachineName::new).transpose()
            }

            /// Deletes run `id`; with `only_prunable`, only if it is finished, not kept
            /// and not its machine's latest run, checked under the machine's lock (which
            /// `set_run_kept` takes too). Answers whether it deleted.
            pub(crate) async fn delete_run_now(
                &self,
                id: ::stpt_core::RunId,
                only_prunable: bool,
            ) -> ::stpt_core::Result<bool> {
                let p = self.sql.prefix;
                let not_found =
                    || ::stpt_core::Error::not_found(::stpt_core::ItemKind::Run, id.get());
                let name = self
                    .machine_name_of(
                        &format!(
                            "SELECT m.name FROM {p}runs r JOIN {p}machines m ON m.id = r.machine_id \
                             WHERE r.id = $1"
                        ),
                        id.get(),
                    )
                    .await?
                    .ok_or_else(not_found)?;
                let mut unit = self.begin_tx(&name).await?;
                let row: Option<(i64, bool, String, Option<i64>)> = ::sqlx::query_as(&format!(
                    "SELECT r.machine_id, r.kept, r.status, m.latest_run_id FROM {p}runs r \
                     JOIN {p}machines m ON m.id = r.machine_id WHERE r.id = $1"
                ))
                .bind(id.get())
                .fetch_optional(&mut *unit.tx)
                .await
                .db()?;
                // Another deleter may have got there while this one waited for the lock.
                let (machine, kept, status, latest) = row.ok_or_else(not_found)?;
                let ongoing = $crate::rows::status("status", &status)?.is_ongoing();
                if only_prunable && (kept || ongoing || latest == Some(id.get())) {
                    Box::new(unit).finish_side_write().await?;
                    return Ok(false);
                }
                ::sqlx::query(&format!(
                    "UPDATE {p}machines SET version = version + 1, latest_run_id = \
                     (SELECT MAX(id) FROM {p}runs WHERE machine_id = $2 AND id <> $1) WHERE id = $2"
                ))
                .bind(id.get())
                .bind(machine)
                .execute(&mut *unit.tx)
                .await
                .db()?;
                for statement in [
                    format!("DELETE FROM {p}events WHERE new_run_id = $1"),
                    format!(
                        "DELETE FROM {p}tests WHERE scenario_id IN \
                         (SELECT id FROM {p}scenarios WHERE run_id = $1)"
                    ),
                    format!("DELETE FROM {p}scenarios WHERE run_id = $1"),
                    format!("DELETE FROM {p}runs WHERE id = $1"),
                ] {
                    ::sqlx::query(&statement)
                        .bind(id.get())
                        .execute(&mut *unit.tx)
                        .await
                        .db()?;
                }
                Box::new(unit).finish().await?;
                Ok(true)
            }

            pub(crate) async fn delete_machine_now(
                &self,
                id: ::stpt_core::MachineId,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                let not_found =
                    || ::stpt_core::Error::not_found(::stpt_core::ItemKind::Machine, id.get());
                let name = self
                    .machine_name_of(&format!("SELECT name FROM {p}machines WHERE id = $1"), id.get())
                    .await?
                    .ok_or_else(not_found)?;
                let mut unit = self.begin_tx(&name).await?;
                let done = ::sqlx::query(&format!(
                    "UPDATE {p}machines SET latest_run_id = NULL WHERE id = $1"
                ))
                .bind(id.get())
                .execute(&mut *unit.tx)
                .await
                .db()?;
                if done.rows_affected() == 0 {
                    return Err(not_found());
                }
                for statement in [
                    format!("DELETE FROM {p}events WHERE machine_id = $1"),
                    format!(
                        "DELETE FROM {p}tests WHERE scenario_id IN (SELECT s.id FROM {p}scenarios s \
                         JOIN {p}runs r ON r.id = s.run_id WHERE r.machine_id = $1)"
                    ),
                    format!(
                        "DELETE FROM {p}scenarios WHERE run_id IN \
                         (SELECT id FROM {p}runs WHERE machine_id = $1)"
                    ),
                    format!("DELETE FROM {p}runs WHERE machine_id = $1"),
                    format!("DELETE FROM {p}machines WHERE id = $1"),
                    // After the machine's row: a flush holding that row finishes first, and
                    // what it wrote goes too.
                    format!("DELETE FROM {p}durations WHERE machine_id = $1"),
                    format!("DELETE FROM {p}flaky WHERE machine_id = $1"),
                ] {
                    ::sqlx::query(&statement)
                        .bind(id.get())
                        .execute(&mut *unit.tx)
                        .await
                        .db()?;
                }
                Box::new(unit).finish().await
            }
        }
    };
}

pub(crate) use sql_deletes;
