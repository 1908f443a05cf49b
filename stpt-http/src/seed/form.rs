//! Form-encoded and multipart bodies on the seed's runner paths, read as the seed read them.
//!
//! The seed's Django REST framework (3.9) gave its serializers a `QueryDict` and read nested
//! fields out of the flat names (`rest_framework.utils.html`): `a.b` is field `b` of object
//! `a`, `a[0]b` is field `b` of the first item of list `a` (items in index order, gaps closed
//! up), the last of repeated fields wins, and a field the serializer does not know is
//! ignored. A nullable field sent blank (`timestamp_start=`) is `null`. So a plan reads
//!
//! ```text
//! machine_name=rig-7&timestamp=2026-11-24 13:00:00
//! &master_scenario.file_path=/rig&master_scenario.file_name=master.py
//! &master_scenario.scenarios[0]file_path=/rig&master_scenario.scenarios[0]file_name=lamp.py
//! &master_scenario.scenarios[0]tests[0]file_path=/rig/lamp&master_scenario.scenarios[0]tests[0]file_name=on.py
//! ```
//!
//! [`nest`] turns such fields into the JSON the JSON path reads, so that both go through
//! the same payload types, rules and answers. stpt also takes `a[0].b` (the dot many form
//! builders put there), and answers `400` where the seed silently dropped what it could not
//! read: a name of one of the payload's fields that is not of this shape
//! (`master_scenario[file_name]`), or one path given two shapes (`a=x` and `a.b=y`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use stpt_core::{PlanPayload, TestStartPayload, TestStopPayload};

use crate::ApiError;
use crate::extract::malformed_form;

/// What the form reader needs to know of a payload: its top-level fields (others are
/// ignored, as the seed's serializers ignored them) and those a blank value makes `null`.
pub(crate) trait SeedForm {
    /// The payload's top-level fields.
    const FIELDS: &'static [&'static str];
    /// The nullable ones: blank in a form is `null`, as Django REST framework read it.
    const BLANK_IS_NULL: &'static [&'static str] = &[];
}

impl SeedForm for PlanPayload {
    const FIELDS: &'static [&'static str] = &["machine_name", "timestamp", "master_scenario"];
}

impl SeedForm for TestStartPayload {
    const FIELDS: &'static [&'static str] =
        &["machine_name", "file_path", "file_name", "timestamp_start"];
    const BLANK_IS_NULL: &'static [&'static str] = &["timestamp_start"];
}

impl SeedForm for TestStopPayload {
    const FIELDS: &'static [&'static str] = &[
        "machine_name",
        "file_path",
        "file_name",
        "status",
        "timestamp_stop",
    ];
    const BLANK_IS_NULL: &'static [&'static str] = &["timestamp_stop"];
}

/// The deepest name read: a plan's deepest, `master_scenario.scenarios[0]tests[0]file_name`,
/// has six parts.
const MAX_DEPTH: usize = 8;

/// One part of a field name: a field of an object, or an item of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Field(&'a str),
    Item(u64),
}

/// A value being built: text, an object, or a list by index.
#[derive(Debug)]
enum Node {
    Text(String),
    Object(BTreeMap<String, Node>),
    List(BTreeMap<u64, Node>),
}

impl Node {
    /// An empty node of the shape `next` needs (text at the end of a name).
    fn for_part(next: Option<&Part<'_>>) -> Node {
        match next {
            None => Node::Text(String::new()),
            Some(Part::Field(_)) => Node::Object(BTreeMap::new()),
            Some(Part::Item(_)) => Node::List(BTreeMap::new()),
        }
    }

    fn shape(&self) -> &'static str {
        match self {
            Node::Text(_) => "a value",
            Node::Object(_) => "fields (`.name`)",
            Node::List(_) => "list items (`[0]`)",
        }
    }

    fn into_json(self) -> Value {
        match self {
            Node::Text(text) => Value::String(text),
            Node::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(name, node)| (name, node.into_json()))
                    .collect::<Map<String, Value>>(),
            ),
            // In index order, gaps closed up, as the seed read them.
            Node::List(items) => Value::Array(items.into_values().map(Node::into_json).collect()),
        }
    }
}

/// The JSON that `fields` (names and values, in body order) stand for, for payload `T`.
pub(crate) fn nest<T: SeedForm>(
    fields: impl IntoIterator<Item = (String, String)>,
) -> Result<Value, ApiError> {
    let mut root = Node::Object(BTreeMap::new());
    for (name, value) in fields {
        // A name the payload does not have is ignored, whatever its shape.
        let top = name.split(['.', '[', ']']).next().unwrap_or_default();
        if T::FIELDS.contains(&top) {
            insert(&mut root, &parse_name(&name)?, value)?;
        }
    }
    let Node::Object(fields) = root else {
        return Ok(Value::Null);
    };
    let mut object = Map::new();
    for (name, node) in fields {
        let value = match node {
            Node::Text(text) if text.is_empty() && T::BLANK_IS_NULL.contains(&name.as_str()) => {
                Value::Null
            }
            node => node.into_json(),
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

/// Puts `value` at `parts` below `root`; `400` where an earlier field gave a part of the
/// way another shape.
fn insert(root: &mut Node, parts: &[Part<'_>], value: String) -> Result<(), ApiError> {
    let conflict = |depth: usize, had: &Node| {
        let wanted = Node::for_part(parts.get(depth));
        malformed_form(format!(
            "form field `{}`: `{}` is given both as {} and as {}; JSON can say only one",
            shown(&display(parts)),
            shown(&display(&parts[..depth])),
            had.shape(),
            wanted.shape()
        ))
    };
    let mut node = root;
    for (depth, part) in parts.iter().enumerate() {
        let next = parts.get(depth + 1);
        node = match (node, part) {
            (Node::Object(fields), Part::Field(field)) => fields
                .entry((*field).to_owned())
                .or_insert_with(|| Node::for_part(next)),
            (Node::List(items), Part::Item(index)) => {
                items.entry(*index).or_insert_with(|| Node::for_part(next))
            }
            (other, _) => return Err(conflict(depth, other)),
        };
    }
    match node {
        // The last of repeated fields wins, as in the seed.
        Node::Text(text) => {
            *text = value;
            Ok(())
        }
        other => Err(conflict(parts.len(), other)),
    }
}

/// A name as an error message shows it: cut to 120 characters, as a client may send any.
pub(crate) fn shown(name: &str) -> String {
    let kept = crate::security::text::clip(name, 120);
    if kept.len() < name.len() {
        format!("{kept}…")
    } else {
        kept.to_owned()
    }
}

/// A name as the error messages show it: `master_scenario.scenarios[0].file_name`.
fn display(parts: &[Part<'_>]) -> String {
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Field(field) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(field);
            }
            Part::Item(index) => {
                text.push('[');
                text.push_str(&index.to_string());
                text.push(']');
            }
        }
    }
    text
}

/// The parts of a field name, or a `400` saying how the seed's names look.
fn parse_name(name: &str) -> Result<Vec<Part<'_>>, ApiError> {
    let malformed = || {
        malformed_form(format!(
            "form field `{}` is not a name the seed's forms use: a field of an object is \
             `master_scenario.file_name`, of a list item `master_scenario.scenarios[0]file_name`",
            shown(name)
        ))
    };
    let mut parts = Vec::new();
    let mut rest = name;
    'fields: loop {
        let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
        if end == 0 {
            return Err(malformed());
        }
        parts.push(Part::Field(&rest[..end]));
        rest = &rest[end..];
        loop {
            if parts.len() > MAX_DEPTH {
                return Err(malformed_form(format!(
                    "form field `{}` is nested deeper than any field of the seed's payloads",
                    shown(name)
                )));
            }
            if rest.is_empty() {
                return Ok(parts);
            }
            if let Some(after) = rest.strip_prefix('.') {
                rest = after;
                continue 'fields;
            }
            let Some(after) = rest.strip_prefix('[') else {
                return Err(malformed());
            };
            let close = after.find(']').ok_or_else(malformed)?;
            let digits = &after[..close];
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(malformed());
            }
            parts.push(Part::Item(digits.parse().map_err(|_| malformed())?));
            rest = &after[close + 1..];
            // After an item: the end, another item, `.field`, or (the seed's way) `field`.
            if !(rest.is_empty() || rest.starts_with(['[', '.'])) {
                continue 'fields;
            }
        }
    }
}

/// `json` (an object) as the form fields the seed's names give it, in order: the inverse
/// of [`nest`] (a `null` is left out), for the documentation's examples.
pub(crate) fn flatten(json: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, name: String, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Object(fields) => {
                for (field, value) in fields {
                    let name = if name.is_empty() || name.ends_with(']') {
                        format!("{name}{field}")
                    } else {
                        format!("{name}.{field}")
                    };
                    walk(value, name, out);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, format!("{name}[{index}]"), out);
                }
            }
            Value::String(text) => out.push((name, text.clone())),
            other => out.push((name, other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(json, String::new(), &mut out);
    out
}

/// The same fields as a JSON object, as the documentation shows a form's example.
pub(crate) fn flattened_example(json: &Value) -> Value {
    Value::Object(
        flatten(json)
            .into_iter()
            .map(|(name, text)| (name, Value::String(text)))
            .collect(),
    )
}

/// A body sent as `application/x-www-form-urlencoded` or `multipart/form-data`, as the seed
/// took it: the JSON body's fields by flat names. A field of an object is
/// `master_scenario.file_name`, of a list item `master_scenario.scenarios[0]file_name` (or
/// `…[0].file_name`); items go in index order; a repeated field's last value counts; a
/// blank `timestamp_start` or `timestamp_stop` is `null`; other names are ignored. A
/// multipart file part counts as its text, so `curl -F script=@test.py` sends a script.
/// The same rules and answers as the JSON body apply.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Only documents the form bodies; `nest` reads them.
pub(crate) struct SeedFormBody(BTreeMap<String, String>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn names_split_as_the_seed_read_them() {
        use Part::{Field, Item};
        assert_eq!(parse_name("machine_name").unwrap(), [Field("machine_name")]);
        assert_eq!(
            parse_name("master_scenario.scenarios[10]tests[2]file_name").unwrap(),
            [
                Field("master_scenario"),
                Field("scenarios"),
                Item(10),
                Field("tests"),
                Item(2),
                Field("file_name")
            ]
        );
        assert_eq!(
            parse_name("master_scenario.scenarios[0].file_name").unwrap(),
            parse_name("master_scenario.scenarios[0]file_name").unwrap(),
            "the dot after an item is taken too"
        );
        assert_eq!(
            parse_name("a[0][1]").unwrap(),
            [Field("a"), Item(0), Item(1)]
        );
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "[0]a",
            "a[",
            "a[]b",
            "a[x]",
            "a[-1]",
            "a]",
            "master_scenario[file_name]",
            "a[99999999999999999999999]",
        ] {
            let error = parse_name(bad).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            assert!(
                error.message().contains("master_scenario.file_name"),
                "{bad}"
            );
        }
        let long = format!("master_scenario[{}]", "x".repeat(100_000));
        assert!(parse_name(&long).unwrap_err().message().len() < 400, "cut");
        let deep = format!("a{}", ".a".repeat(100_000));
        let error = parse_name(&deep).unwrap_err();
        assert!(error.message().contains("nested deeper"));
        assert!(
            error.message().len() < 300,
            "the name is cut in the message"
        );
    }

    #[test]
    fn a_plan_nests_like_its_json() {
        let plan = nest::<PlanPayload>(fields(&[
            ("machine_name", "rig-7"),
            ("timestamp", "2026-11-24 13:00:00"),
            ("master_scenario.file_path", "/rig"),
            ("master_scenario.file_name", "master.py"),
            ("master_scenario.script", ""),
            ("master_scenario.scenarios[1]file_name", "second.py"),
            ("master_scenario.scenarios[0]file_name", "first.py"),
            ("master_scenario.scenarios[0]tests[7]file_name", "b.py"),
            ("master_scenario.scenarios[0]tests[3].file_name", "a.py"),
            ("csrfmiddlewaretoken", "ignored, as the seed ignored it"),
            ("extra[weird]..name", "ignored whatever its shape"),
            ("machine_name", "rig-8"),
        ]))
        .unwrap();
        assert_eq!(
            plan,
            json!({
                "machine_name": "rig-8",
                "timestamp": "2026-11-24 13:00:00",
                "master_scenario": {
                    "file_path": "/rig",
                    "file_name": "master.py",
                    "script": "",
                    "scenarios": [
                        {"file_name": "first.py", "tests": [{"file_name": "a.py"}, {"file_name": "b.py"}]},
                        {"file_name": "second.py"}
                    ]
                }
            })
        );
    }

    #[test]
    fn blank_nullable_fields_are_null() {
        let start =
            nest::<TestStartPayload>(fields(&[("machine_name", "rig"), ("timestamp_start", "")]))
                .unwrap();
        assert_eq!(
            start,
            json!({"machine_name": "rig", "timestamp_start": null})
        );
        let stop =
            nest::<TestStopPayload>(fields(&[("status", ""), ("timestamp_stop", "")])).unwrap();
        assert_eq!(stop, json!({"status": "", "timestamp_stop": null}));
        // Not nullable: blank stays blank, and the payload's rules refuse it.
        let plan = nest::<PlanPayload>(fields(&[("timestamp", "")])).unwrap();
        assert_eq!(plan, json!({"timestamp": ""}));
    }

    #[test]
    fn one_path_in_two_shapes_is_refused() {
        for pairs in [
            &[("master_scenario", "x"), ("master_scenario.file_name", "y")][..],
            &[("master_scenario.file_name", "y"), ("master_scenario", "x")][..],
            &[
                ("master_scenario.scenarios[0]", "x"),
                ("master_scenario.scenarios[0]file_name", "y"),
            ][..],
            &[
                ("master_scenario.scenarios[0]file_name", "y"),
                ("master_scenario.scenarios.file_name", "x"),
            ][..],
        ] {
            let error = nest::<PlanPayload>(fields(pairs)).unwrap_err();
            assert_eq!(error.status(), 400, "{pairs:?}");
            assert!(
                error.message().contains("is given both as"),
                "{}",
                error.message()
            );
        }
        let error = nest::<PlanPayload>(fields(&[
            ("master_scenario.scenarios[0]file_name", "y"),
            ("master_scenario.scenarios[0]", "x"),
        ]))
        .unwrap_err();
        assert!(
            error
                .message()
                .contains("`master_scenario.scenarios[0]` is given both as"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn flattened_examples_nest_back() {
        let plan = crate::schemas::examples::plan();
        let fields = flatten(&plan);
        assert!(
            fields
                .iter()
                .any(|(name, _)| name == "master_scenario.scenarios[0]tests[1]file_name")
        );
        let mut without_nulls = plan.clone();
        strip_nulls(&mut without_nulls);
        assert_eq!(nest::<PlanPayload>(fields).unwrap(), without_nulls);
    }

    fn strip_nulls(value: &mut Value) {
        match value {
            Value::Object(fields) => {
                fields.retain(|_, value| !value.is_null());
                fields.values_mut().for_each(strip_nulls);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
}
