//! Identifier newtypes. Backends assign them; they are positive and never reused.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub i64);

        impl $name {
            /// The raw number, for storage and URLs.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(raw: i64) -> Self {
                $name(raw)
            }
        }
    };
}

/// Also used for the account ids.
#[cfg(feature = "accounts")]
pub(crate) use id_type;

id_type!(
    /// A machine (test rig).
    MachineId
);
id_type!(
    /// A run: one execution of a master scenario. The run's master scenario is addressed by the
    /// same id.
    RunId
);
id_type!(
    /// A scenario within a run.
    ScenarioId
);
id_type!(
    /// A test case within a scenario.
    TestId
);
