//! `/docs/`: the OpenAPI document as a page, rendered here from the document itself (no
//! script, nothing fetched from elsewhere).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;

/// A JSON value that keeps the order of object keys as written (the document lists paths and
/// properties in declaration order; `serde_json::Value` would sort them).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Json::String(text)) => Some(text),
            _ => None,
        }
    }

    fn array(&self, key: &str) -> &[Json] {
        match self.get(key) {
            Some(Json::Array(items)) => items,
            _ => &[],
        }
    }

    fn entries(&self, key: &str) -> &[(String, Json)] {
        match self.get(key) {
            Some(Json::Object(entries)) => entries,
            _ => &[],
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    fn pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(value) => value.serialize(serializer),
            Json::String(value) => serializer.serialize_str(value),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(entries) => {
                serializer.collect_map(entries.iter().map(|(key, value)| (key, value)))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }

            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
                Ok(Json::Bool(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
                Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
            }

            fn visit_str<E>(self, value: &str) -> Result<Json, E> {
                Ok(Json::String(value.to_owned()))
            }

            fn visit_string<E>(self, value: String) -> Result<Json, E> {
                Ok(Json::String(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}

/// A piece of prose: text, or `code` (between backticks in the document).
#[derive(Debug, Serialize)]
struct Span {
    code: bool,
    text: String,
}

/// Prose split into paragraphs of spans.
fn prose(text: Option<&str>) -> Vec<Vec<Span>> {
    text.unwrap_or("")
        .split("\n\n")
        .map(str::trim)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| {
            paragraph
                .split('`')
                .enumerate()
                .filter(|(_, text)| !text.is_empty())
                .map(|(index, text)| Span {
                    code: index % 2 == 1,
                    text: text.to_owned(),
                })
                .collect()
        })
        .collect()
}

/// A type as shown: `before`, then a link to a schema, then `after`.
#[derive(Debug, Default, Serialize)]
struct TypeView {
    before: String,
    link: Option<String>,
    anchor: Option<String>,
    after: String,
}

#[derive(Debug, Serialize)]
struct FieldView {
    name: String,
    r#type: TypeView,
    required: bool,
    description: Vec<Vec<Span>>,
}

#[derive(Debug, Serialize)]
struct ParamView {
    name: String,
    location: String,
    r#type: TypeView,
    required: bool,
    description: Vec<Vec<Span>>,
}

#[derive(Debug, Serialize)]
struct BodyView {
    content_type: String,
    /// Other content types the body may be sent as (the seed's runner paths take forms).
    also: Vec<String>,
    r#type: TypeView,
    description: Vec<Vec<Span>>,
    fields: Vec<FieldView>,
    example: String,
}

#[derive(Debug, Serialize)]
struct ResponseView {
    status: String,
    success: bool,
    description: Vec<Vec<Span>>,
    content_type: Option<String>,
    r#type: Option<TypeView>,
    example: Option<String>,
}

#[derive(Debug, Serialize)]
struct OperationView {
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: Vec<Vec<Span>>,
    params: Vec<ParamView>,
    request: Option<BodyView>,
    responses: Vec<ResponseView>,
}

#[derive(Debug, Serialize)]
struct TagView {
    name: String,
    anchor: String,
    description: Vec<Vec<Span>>,
    operations: Vec<OperationView>,
}

#[derive(Debug, Serialize)]
struct SchemaView {
    name: String,
    anchor: String,
    r#type: TypeView,
    description: Vec<Vec<Span>>,
    fields: Vec<FieldView>,
    variants: Vec<VariantView>,
    example: String,
}

#[derive(Debug, Serialize)]
struct VariantView {
    description: Vec<Vec<Span>>,
    fields: Vec<FieldView>,
}

/// Everything the docs template shows, built once from the document.
#[derive(Debug, Serialize)]
pub(crate) struct DocsView {
    title: String,
    version: String,
    openapi: String,
    description: Vec<Vec<Span>>,
    tags: Vec<TagView>,
    schemas: Vec<SchemaView>,
}

impl DocsView {
    /// The view of `document`.
    pub(crate) fn new(document: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_string(document)
            .ok()
            .and_then(|text| serde_json::from_str::<Json>(&text).ok())
            .unwrap_or(Json::Null);
        DocsView::of(&document)
    }

    /// How many operations the page shows.
    #[cfg(test)]
    pub(crate) fn operations_shown(&self) -> usize {
        self.tags.iter().map(|tag| tag.operations.len()).sum()
    }

    /// How many schemas the page shows.
    #[cfg(test)]
    pub(crate) fn schemas_shown(&self) -> usize {
        self.schemas.len()
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The anchor of a schema's section.
fn schema_anchor(name: &str) -> String {
    format!("schema-{}", slug(name))
}

fn slug(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// The component name a `$ref` points to.
fn ref_name(schema: &Json) -> Option<&str> {
    schema
        .str("$ref")
        .map(|target| target.rsplit('/').next().unwrap_or(target))
}

impl DocsView {
    fn of(document: &Json) -> Self {
        let schemas = Schemas(
            document
                .get("components")
                .map_or(&[][..], |c| c.entries("schemas")),
        );
        let info = document.get("info");
        let mut tags: Vec<TagView> = document
            .array("tags")
            .iter()
            .filter_map(|tag| {
                let name = tag.str("name")?;
                Some(TagView {
                    name: name.to_owned(),
                    anchor: format!("tag-{}", slug(name)),
                    description: prose(tag.str("description")),
                    operations: Vec::new(),
                })
            })
            .collect();
        for (path, item) in document.entries("paths") {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let view = schemas.operation(method, path, operation);
                let tag = operation
                    .array("tags")
                    .first()
                    .and_then(Json::as_str)
                    .unwrap_or("other");
                match tags.iter_mut().find(|t| t.name == tag) {
                    Some(existing) => existing.operations.push(view),
                    None => tags.push(TagView {
                        name: tag.to_owned(),
                        anchor: format!("tag-{}", slug(tag)),
                        description: Vec::new(),
                        operations: vec![view],
                    }),
                }
            }
        }
        tags.retain(|tag| !tag.operations.is_empty());
        DocsView {
            title: info
                .and_then(|i| i.str("title"))
                .unwrap_or("API")
                .to_owned(),
            version: info.and_then(|i| i.str("version")).unwrap_or("").to_owned(),
            openapi: document.str("openapi").unwrap_or("").to_owned(),
            description: prose(info.and_then(|i| i.str("description"))),
            tags,
            schemas: schemas.views(),
        }
    }
}

/// The document's component schemas, to resolve `$ref`s.
#[derive(Clone, Copy)]
struct Schemas<'a>(&'a [(String, Json)]);

/// How deep examples follow nested schemas.
const MAX_DEPTH: usize = 12;

impl<'a> Schemas<'a> {
    fn get(&self, name: &str) -> Option<&'a Json> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Follows a `$ref` (or a lone `allOf` around one).
    fn resolve(&self, schema: &'a Json) -> &'a Json {
        let mut current = schema;
        for _ in 0..MAX_DEPTH {
            if let Some(target) = ref_name(current).and_then(|name| self.get(name)) {
                current = target;
            } else if let [only] = current.array("allOf") {
                current = only;
            } else {
                break;
            }
        }
        current
    }

    fn operation(&self, method: &str, path: &str, operation: &Json) -> OperationView {
        let params = operation
            .array("parameters")
            .iter()
            .map(|param| ParamView {
                name: param.str("name").unwrap_or("").to_owned(),
                location: param.str("in").unwrap_or("").to_owned(),
                r#type: param
                    .get("schema")
                    .map(|s| self.type_view(s))
                    .unwrap_or_default(),
                required: matches!(param.get("required"), Some(Json::Bool(true))),
                description: prose(param.str("description")),
            })
            .collect();
        let request = operation.get("requestBody").and_then(|body| {
            let contents = body.entries("content");
            let (content_type, content) = contents.first()?;
            let schema = content.get("schema")?;
            Some(BodyView {
                content_type: content_type.clone(),
                also: contents
                    .iter()
                    .skip(1)
                    .map(|(kind, _)| kind.clone())
                    .collect(),
                r#type: self.type_view(schema),
                description: prose(body.str("description")),
                fields: self.fields(self.resolve(schema)),
                example: content
                    .get("example")
                    .cloned()
                    .unwrap_or_else(|| self.example(schema, 0))
                    .pretty(),
            })
        });
        let responses = operation
            .entries("responses")
            .iter()
            .map(|(status, response)| {
                let content = response.entries("content").first();
                let schema = content.and_then(|(_, c)| c.get("schema"));
                ResponseView {
                    status: status.clone(),
                    success: status.starts_with('2'),
                    description: prose(response.str("description")),
                    content_type: content.map(|(kind, _)| kind.clone()),
                    r#type: schema.map(|s| self.type_view(s)),
                    example: content.and_then(|(kind, c)| {
                        if let Some(example) = c.get("example") {
                            return Some(example.pretty());
                        }
                        let schema = schema?;
                        // The document itself is too large to show as an example.
                        (kind.contains("json") && ref_name(schema).is_some())
                            .then(|| self.example(schema, 0).pretty())
                    }),
                }
            })
            .collect();
        OperationView {
            anchor: format!("op-{method}-{}", slug(path)),
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            summary: operation.str("summary").unwrap_or("").to_owned(),
            description: prose(operation.str("description")),
            params,
            request,
            responses,
        }
    }

    fn views(&self) -> Vec<SchemaView> {
        self.0
            .iter()
            .map(|(name, schema)| {
                let variants = schema
                    .array("oneOf")
                    .iter()
                    .filter(|variant| {
                        variant
                            .get("type")
                            .is_some_and(|t| *t != Json::String("null".into()))
                    })
                    .map(|variant| VariantView {
                        description: prose(variant.str("description")),
                        fields: self.fields(self.resolve(variant)),
                    })
                    .collect();
                SchemaView {
                    name: name.clone(),
                    anchor: schema_anchor(name),
                    r#type: self.type_view(schema),
                    description: prose(schema.str("description")),
                    fields: self.fields(schema),
                    variants,
                    example: self.example(schema, 0).pretty(),
                }
            })
            .collect()
    }

    fn fields(&self, schema: &Json) -> Vec<FieldView> {
        let required = schema.array("required");
        schema
            .entries("properties")
            .iter()
            .map(|(name, property)| FieldView {
                name: name.clone(),
                r#type: self.type_view(property),
                required: required.iter().any(|r| r.as_str() == Some(name)),
                description: prose(
                    property
                        .str("description")
                        .or_else(|| self.resolve(property).str("description")),
                ),
            })
            .collect()
    }

    /// A short description of a schema's type, linking a named schema.
    fn type_view(&self, schema: &Json) -> TypeView {
        if let Some(name) = ref_name(schema) {
            return TypeView {
                link: Some(name.to_owned()),
                anchor: Some(schema_anchor(name)),
                ..TypeView::default()
            };
        }
        for key in ["oneOf", "anyOf"] {
            let variants = schema.array(key);
            if variants.is_empty() {
                continue;
            }
            let (nulls, others): (Vec<&Json>, Vec<&Json>) =
                variants.iter().partition(|v| v.str("type") == Some("null"));
            if let ([_], [only]) = (nulls.as_slice(), others.as_slice()) {
                let mut view = self.type_view(only);
                view.after.push_str(" or null");
                return view;
            }
            let labels: Vec<String> = others.iter().map(|v| self.label(v)).collect();
            let mut text = format!("one of: {}", labels.join(" | "));
            if !nulls.is_empty() {
                text.push_str(" | null");
            }
            return TypeView {
                before: text,
                ..TypeView::default()
            };
        }
        if let [only] = schema.array("allOf") {
            return self.type_view(only);
        }
        let (kind, nullable) = schema_type(schema);
        let mut view = match kind.as_str() {
            "array" => {
                let mut items = schema
                    .get("items")
                    .map(|items| self.type_view(items))
                    .unwrap_or_default();
                items.before.insert_str(0, "array of ");
                items
            }
            "" => TypeView {
                before: "any JSON".to_owned(),
                ..TypeView::default()
            },
            _ => {
                let mut text = kind.clone();
                if let Some(format) = schema.str("format") {
                    text.push_str(&format!(" ({format})"));
                }
                let values: Vec<String> = schema
                    .array("enum")
                    .iter()
                    .map(|v| match v {
                        Json::String(s) => s.clone(),
                        other => serde_json::to_string(other).unwrap_or_default(),
                    })
                    .collect();
                if !values.is_empty() {
                    text.push_str(": ");
                    text.push_str(&values.join(" | "));
                }
                TypeView {
                    before: text,
                    ..TypeView::default()
                }
            }
        };
        if nullable {
            view.after.push_str(" or null");
        }
        view
    }

    fn label(&self, schema: &Json) -> String {
        let view = self.type_view(schema);
        format!(
            "{}{}{}",
            view.before,
            view.link.as_deref().unwrap_or(""),
            view.after
        )
    }

    /// An example value: the schema's own, or one made from its type.
    fn example(&self, schema: &Json, depth: usize) -> Json {
        if depth > MAX_DEPTH {
            return Json::Null;
        }
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(example) = schema.array("examples").first() {
            return example.clone();
        }
        if let Some(target) = ref_name(schema).and_then(|name| self.get(name)) {
            return self.example(target, depth + 1);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(first) = schema
                .array(key)
                .iter()
                .find(|v| v.str("type") != Some("null"))
            {
                return self.example(first, depth + 1);
            }
        }
        if let [only] = schema.array("allOf") {
            return self.example(only, depth + 1);
        }
        if let Some(first) = schema.array("enum").first() {
            return first.clone();
        }
        let (kind, _) = schema_type(schema);
        match kind.as_str() {
            "object" => Json::Object(
                schema
                    .entries("properties")
                    .iter()
                    .map(|(name, property)| (name.clone(), self.example(property, depth + 1)))
                    .collect(),
            ),
            "array" => Json::Array(
                schema
                    .get("items")
                    .map(|items| vec![self.example(items, depth + 1)])
                    .unwrap_or_default(),
            ),
            "string" => Json::String(
                match schema.str("format") {
                    Some("date-time") => "2026-11-24T13:02:01Z",
                    _ => "string",
                }
                .to_owned(),
            ),
            "integer" => Json::Number(
                schema
                    .get("minimum")
                    .and_then(|m| match m {
                        Json::Number(n) => n.as_i64(),
                        _ => None,
                    })
                    .map_or(1_i64, |min| min.max(1))
                    .into(),
            ),
            "number" => Json::Number(1.into()),
            "boolean" => Json::Bool(false),
            _ => Json::Null,
        }
    }
}

/// A schema's type without `null`, and whether `null` is allowed too.
fn schema_type(schema: &Json) -> (String, bool) {
    match schema.get("type") {
        Some(Json::String(kind)) => (kind.clone(), false),
        Some(Json::Array(kinds)) => {
            let names: Vec<&str> = kinds.iter().filter_map(Json::as_str).collect();
            let nullable = names.contains(&"null");
            let kind = names
                .iter()
                .find(|k| **k != "null")
                .copied()
                .unwrap_or(if nullable { "null" } else { "" });
            (kind.to_owned(), nullable)
        }
        _ if !schema.entries("properties").is_empty() => ("object".to_owned(), false),
        _ => (String::new(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_key_order() {
        let json: Json =
            serde_json::from_str(r#"{"b": 1, "a": [true, null, "x"], "c": {"z": 1.5, "y": -2}}"#)
                .expect("parses");
        assert_eq!(
            serde_json::to_string(&json).expect("serialises"),
            r#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":-2}}"#
        );
    }

    #[test]
    fn prose_marks_code() {
        let paragraphs = prose(Some("Use `page` here.\n\nSecond"));
        assert_eq!(paragraphs.len(), 2);
        assert!(paragraphs[0][1].code);
        assert_eq!(paragraphs[0][1].text, "page");
        assert!(!paragraphs[0][2].code);
    }
}
