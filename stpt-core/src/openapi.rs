//! OpenAPI schemas (feature `openapi`) for the types whose serde is written by hand: the derived
//! ones would describe the Rust layout, not the wire.

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::{MachineStatus, Status, StatusCounts};

/// A timestamp as a runner sends it: Python's naive `str(datetime.now())`
/// (`2018-12-30 13:01:57.461401`, read in the machine's runner time zone), the same with a
/// `T`, or RFC 3339.
///
/// Only a schema: fields holding one are [`RunnerTime`](crate::RunnerTime).
#[derive(Debug, Clone, Copy)]
pub struct RunnerTimestamp;

impl PartialSchema for RunnerTimestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A runner timestamp: naive `YYYY-MM-DD HH:MM:SS[.ffffff]` (Python's \
                 `str(datetime.now())`, read in the machine's runner time zone: UTC unless the \
                 server's `--runner-timezone` or an admin says otherwise), the same with `T` \
                 between date and time, or RFC 3339 with `Z` or an offset (kept as given). \
                 Years 1 to 9999.",
            ))
            .examples([
                serde_json::json!("2018-12-30 13:01:57.461401"),
                serde_json::json!("2018-12-30T13:01:57Z"),
            ])
            .into()
    }
}

impl ToSchema for RunnerTimestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RunnerTimestamp")
    }
}

/// Serialised as `{"waiting": 0, "running": 1, "passed": 3, ...}`: every status, always.
impl PartialSchema for StatusCounts {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "How many tests are in each status: one non-negative integer per status, \
                 every status always present.",
            ));
        let mut example = serde_json::Map::new();
        for status in Status::ALL {
            object = object
                .property(
                    status.as_str(),
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .minimum(Some(0)),
                )
                .required(status.as_str());
            let count = match status {
                Status::Passed => 3,
                Status::Running => 1,
                Status::Waiting => 2,
                _ => 0,
            };
            example.insert(status.as_str().to_owned(), count.into());
        }
        object
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ))
            .examples([serde_json::Value::Object(example)])
            .into()
    }
}

impl ToSchema for StatusCounts {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StatusCounts")
    }
}

/// A status name, or `not-available` for a machine without a run.
impl PartialSchema for MachineStatus {
    fn schema() -> RefOr<Schema> {
        let names = Status::ALL
            .into_iter()
            .map(|status| MachineStatus::Run(status).as_str())
            .chain([MachineStatus::NotAvailable.as_str()]);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The status of the machine's latest run, or `not-available` when it has none.",
            ))
            .enum_values(Some(names))
            .examples([serde_json::json!("running")])
            .into()
    }
}

impl ToSchema for MachineStatus {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MachineStatus")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_json<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).expect("schemas serialise")
    }

    #[test]
    fn status_counts_schema_names_every_status_the_serializer_writes() {
        let schema = schema_json::<StatusCounts>();
        let written = serde_json::to_value(StatusCounts::new()).expect("serialises");
        let mut documented: Vec<&str> = schema["required"]
            .as_array()
            .expect("required list")
            .iter()
            .filter_map(|name| name.as_str())
            .collect();
        let mut keys: Vec<&str> = written
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        keys.sort_unstable();
        assert_eq!(documented, keys);
    }

    #[test]
    fn machine_status_schema_lists_every_wire_name() {
        let schema = schema_json::<MachineStatus>();
        let listed = schema["enum"].as_array().expect("enum values");
        assert_eq!(listed.len(), 9);
        for status in Status::ALL
            .into_iter()
            .map(MachineStatus::Run)
            .chain([MachineStatus::NotAvailable])
        {
            let wire = serde_json::to_value(status).expect("serialises");
            assert!(listed.contains(&wire), "{wire} missing");
        }
    }

    #[test]
    fn every_timestamp_example_parses() {
        let schema = schema_json::<RunnerTimestamp>();
        for example in schema["examples"].as_array().expect("examples") {
            let text = example.as_str().expect("a string");
            assert!(crate::parse_timestamp(text).is_some(), "{text}");
        }
    }
}
