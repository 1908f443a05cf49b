//! Machine and run settings an admin changes, for both SQL backends (through
//! [`sql_machine_settings!`]). A change takes the machine's lock as a unit of work does (on
//! SQLite, that also keeps it on the writer connection). The time zone, which units of work
//! read, also bumps the machine's version, so the machine's memory in any server instance is
//! read again before the next event uses it; the other settings are read by the pages, the
//! liveness watch and pruning only.

/// Implements `set_machine_timezone_now`, `set_machine_timeouts_now`,
/// `set_machine_retention_now` and `set_run_kept_now` for `$store`, whose `begin_tx` opens a
/// locked unit of work `$tx` on database `$db` with a `tx` field (and `machine_name_of` from
/// [`crate::delete::sql_deletes!`]).
macro_rules! sql_machine_settings {
    (store: $store:ident, tx: $tx:ident, db: $db:ty $(,)?) => {
        impl $store {
            /// A locked unit of work on machine `id`, or on the machine of run `id` with
            /// `kind` [`::stpt_core::ItemKind::Run`].
            async fn settings_unit(
                &self,
                kind: ::stpt_core::ItemKind,
                id: i64,
            ) -> ::stpt_core::Result<$tx> {
                let p = self.sql.prefix;
                let lookup = match kind {
                    ::stpt_core::ItemKind::Run => format!(
                        "SELECT m.name FROM {p}runs r JOIN {p}machines m ON m.id = r.machine_id \
                         WHERE r.id = $1"
                    ),
                    _ => format!("SELECT name FROM {p}machines WHERE id = $1"),
                };
                let name = self
                    .machine_name_of(&lookup, id)
                    .await?
                    .ok_or_else(|| ::stpt_core::Error::not_found(kind, id))?;
                self.begin_tx(&name).await
            }

            /// Runs `update` (with `id` as `$1`) in `unit` and commits it; not found if it
            /// changed no row (deleted while this one waited for the lock).
            async fn finish_setting<'q>(
                mut unit: $tx,
                kind: ::stpt_core::ItemKind,
                id: i64,
                update: ::sqlx::query::Query<'q, $db, <$db as ::sqlx::Database>::Arguments<'q>>,
            ) -> ::stpt_core::Result<()> {
                let done = update.execute(&mut *unit.tx).await.db()?;
                if done.rows_affected() == 0 {
                    return Err(::stpt_core::Error::not_found(kind, id));
                }
                Box::new(unit).finish().await
            }

            pub(crate) async fn set_machine_timezone_now(
                &self,
                id: ::stpt_core::MachineId,
                timezone: Option<::stpt_core::RunnerTimezone>,
            ) -> ::stpt_core::Result<()> {
                let kind = ::stpt_core::ItemKind::Machine;
                let unit = self.settings_unit(kind, id.get()).await?;
                let sql = format!(
                    "UPDATE {}machines SET runner_timezone = $2, version = version + 1 \
                     WHERE id = $1",
                    self.sql.prefix
                );
                let update = ::sqlx::query(&sql)
                    .bind(id.get())
                    .bind(timezone.map(::stpt_core::RunnerTimezone::name));
                Self::finish_setting(unit, kind, id.get(), update).await
            }

            pub(crate) async fn set_machine_timeouts_now(
                &self,
                id: ::stpt_core::MachineId,
                timeouts: ::stpt_core::MachineTimeouts,
            ) -> ::stpt_core::Result<()> {
                let kind = ::stpt_core::ItemKind::Machine;
                let unit = self.settings_unit(kind, id.get()).await?;
                let sql = format!(
                    "UPDATE {}machines SET quiet_after_secs = $2, offline_after_secs = $3 \
                     WHERE id = $1",
                    self.sql.prefix
                );
                let update = ::sqlx::query(&sql)
                    .bind(id.get())
                    .bind(timeouts.quiet_after_secs.map(i64::from))
                    .bind(timeouts.offline_after_secs.map(i64::from));
                Self::finish_setting(unit, kind, id.get(), update).await
            }

            pub(crate) async fn set_machine_retention_now(
                &self,
                id: ::stpt_core::MachineId,
                retention: Option<::stpt_core::RetentionPolicy>,
            ) -> ::stpt_core::Result<()> {
                let kind = ::stpt_core::ItemKind::Machine;
                let unit = self.settings_unit(kind, id.get()).await?;
                let sql = format!(
                    "UPDATE {}machines SET own_retention = $2, keep_days = $3, keep_runs = $4 \
                     WHERE id = $1",
                    self.sql.prefix
                );
                let own = retention.unwrap_or_default();
                let update = ::sqlx::query(&sql)
                    .bind(id.get())
                    .bind(retention.is_some())
                    .bind(own.keep_days.map(i64::from))
                    .bind(own.keep_runs_per_machine.map(i64::from));
                Self::finish_setting(unit, kind, id.get(), update).await
            }

            pub(crate) async fn set_run_kept_now(
                &self,
                id: ::stpt_core::RunId,
                kept: bool,
            ) -> ::stpt_core::Result<()> {
                let kind = ::stpt_core::ItemKind::Run;
                let unit = self.settings_unit(kind, id.get()).await?;
                let sql = format!("UPDATE {}runs SET kept = $2 WHERE id = $1", self.sql.prefix);
                let update = ::sqlx::query(&sql).bind(id.get()).bind(kept);
                Self::finish_setting(unit, kind, id.get(), update).await
            }
        }
    };
}

pub(crate) use sql_machine_settings;
