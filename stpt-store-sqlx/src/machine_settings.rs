//! Machine settings an admin changes, for both SQL backends (through
//! [`sql_machine_settings!`]). A change takes the machine's lock as a unit of work does and
//! bumps its version, so the machine's memory in any server instance is read again before the
//! next event uses it.

/// Implements `set_machine_timezone_now` for `$store`, whose `begin_tx` opens a locked unit
/// of work with a `tx` field (and `machine_name_of` from [`crate::delete::sql_deletes!`]).
macro_rules! sql_machine_settings {
    (store: $store:ident $(,)?) => {
        impl $store {
            pub(crate) async fn set_machine_timezone_now(
                &self,
                id: ::stpt_core::MachineId,
                timezone: Option<::stpt_core::RunnerTimezone>,
            ) -> ::stpt_core::Result<()> {
                let p = self.sql.prefix;
                let not_found =
                    || ::stpt_core::Error::not_found(::stpt_core::ItemKind::Machine, id.get());
                let name = self
                    .machine_name_of(
                        &format!("SELECT name FROM {p}machines WHERE id = $1"),
                        id.get(),
                    )
                    .await?
                    .ok_or_else(not_found)?;
                let mut unit = self.begin_tx(&name).await?;
                let done = ::sqlx::query(&format!(
                    "UPDATE {p}machines SET runner_timezone = $2, version = version + 1 \
                     WHERE id = $1"
                ))
                .bind(id.get())
                .bind(timezone.map(::stpt_core::RunnerTimezone::name))
                .execute(&mut *unit.tx)
                .await
                .db()?;
                // Deleted while this one waited for the lock.
                if done.rows_affected() == 0 {
                    return Err(not_found());
                }
                Box::new(unit).finish().await
            }
        }
    };
}

pub(crate) use sql_machine_settings;
