//! The pages' tera templates: embedded in the binary, registered under `stpt/`, overridable
//! by name through [`HttpConfig::with_template`](crate::HttpConfig::with_template).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use tera::{Context, Tera};

/// Every built-in template, by the name an embedder overrides it with.
pub(crate) const BUILTIN: [(&str, &str); 21] = [
    ("stpt/base.html", include_str!("../../templates/base.html")),
    (
        "stpt/pagination.html",
        include_str!("../../templates/pagination.html"),
    ),
    (
        "stpt/machines.html",
        include_str!("../../templates/machines.html"),
    ),
    (
        "stpt/machine.html",
        include_str!("../../templates/machine.html"),
    ),
    ("stpt/run.html", include_str!("../../templates/run.html")),
    (
        "stpt/history.html",
        include_str!("../../templates/history.html"),
    ),
    (
        "stpt/search.html",
        include_str!("../../templates/search.html"),
    ),
    (
        "stpt/flaky.html",
        include_str!("../../templates/flaky.html"),
    ),
    (
        "stpt/matrix.html",
        include_str!("../../templates/matrix.html"),
    ),
    ("stpt/wall.html", include_str!("../../templates/wall.html")),
    (
        "stpt/wall_grid.html",
        include_str!("../../templates/wall_grid.html"),
    ),
    ("stpt/item.html", include_str!("../../templates/item.html")),
    (
        "stpt/error.html",
        include_str!("../../templates/error.html"),
    ),
    (
        "stpt/macros.html",
        include_str!("../../templates/macros.html"),
    ),
    ("stpt/docs.html", include_str!("../../templates/docs.html")),
    (
        "stpt/login.html",
        include_str!("../../templates/login.html"),
    ),
    (
        "stpt/logout.html",
        include_str!("../../templates/logout.html"),
    ),
    (
        "stpt/password_reset.html",
        include_str!("../../templates/password_reset.html"),
    ),
    (
        "stpt/password_change.html",
        include_str!("../../templates/password_change.html"),
    ),
    (
        "stpt/admin.html",
        include_str!("../../templates/admin.html"),
    ),
    (
        "stpt/token_created.html",
        include_str!("../../templates/token_created.html"),
    ),
];

/// A template that does not parse, or a page that does not render.
#[derive(Debug)]
pub struct TemplateError(tera::Error);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tera puts the useful part (which variable, which line) in the source chain.
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The compiled templates.
#[derive(Debug)]
pub(crate) struct Templates {
    tera: Tera,
}

impl Templates {
    /// The built-in templates with `overrides` (name → source) replacing or adding some.
    pub(crate) fn build(overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut sources: BTreeMap<&str, &str> = BUILTIN.iter().copied().collect();
        for (name, source) in overrides {
            sources.insert(name.as_str(), source.as_str());
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.set_escape_fn(escape_html);
        tera.add_raw_templates(sources).map_err(TemplateError)?;
        Ok(Templates { tera })
    }

    /// The built-in templates, or, should an override break them, the built-in ones alone
    /// (the failure is logged): a bad override must not take the pages down.
    pub(crate) fn build_or_builtin(overrides: &BTreeMap<String, String>) -> Self {
        match Self::build(overrides) {
            Ok(templates) => templates,
            Err(error) => {
                tracing::error!(%error, "template overrides rejected; serving the built-in templates");
                Self::build(&BTreeMap::new()).unwrap_or_else(|error| {
                    tracing::error!(%error, "built-in templates do not compile");
                    Templates {
                        tera: Tera::default(),
                    }
                })
            }
        }
    }

    /// Renders template `name` with `context`.
    pub(crate) fn render(
        &self,
        name: &str,
        context: &impl Serialize,
    ) -> Result<String, TemplateError> {
        let context = Context::from_serialize(context).map_err(TemplateError)?;
        self.tera.render(name, &context).map_err(TemplateError)
    }
}

/// HTML escaping for text and quoted attribute values. Unlike tera's default it leaves `/`
/// alone (it needs no escaping in either place), so URLs stay readable in the markup.
fn escape_html(input: &str) -> String {
    let mut output = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => output.push_str("&amp;"),
            '<' => output.push_str("&lt;"),
            '>' => output.push_str("&gt;"),
            '"' => output.push_str("&quot;"),
            '\'' => output.push_str("&#x27;"),
            c => output.push(c),
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_compile() {
        assert!(Templates::build(&BTreeMap::new()).is_ok());
    }

    #[test]
    fn documented_names_are_the_builtin_ones() {
        let mut builtin: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
        let mut documented = crate::HttpConfig::TEMPLATE_NAMES.to_vec();
        builtin.sort_unstable();
        documented.sort_unstable();
        assert_eq!(builtin, documented);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<img src=x onerror="alert('1')">&/"#),
            "&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;/"
        );
    }
}
