//! Finding runs and tests by name, status, machine and time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{TestIdentity, TestKey};
use crate::{Error, FileRef, MachineId, Result, RunSummary, Status};

/// A case-insensitive substring to look for, lowercased and with SQL `LIKE` wildcards escaped
/// by [`TextFilter::like_pattern`]. Always non-empty and at most [`TextFilter::MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextFilter(String);

impl TextFilter {
    /// The longest text searched for.
    pub const MAX_CHARS: usize = 200;

    /// The filter for `text`; `None` when it is empty or only whitespace.
    pub fn new(text: &str) -> Result<Option<TextFilter>> {
        let text = text.trim();
        if text.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid(
                "q",
                format!("at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok((!text.is_empty()).then(|| TextFilter(text.to_lowercase())))
    }

    /// The lowercased text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `haystack` contains the text, ignoring case.
    pub fn matches(&self, haystack: &str) -> bool {
        haystack.to_lowercase().contains(&self.0)
    }

    /// A `LIKE … ESCAPE '\'` pattern matching any text that contains this one.
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// Which runs to list, newest first. Every filter is optional; all given ones apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunSearch {
    /// Text in the master scenario's path or name.
    pub text: Option<TextFilter>,
    /// The run's status.
    pub status: Option<Status>,
    /// The run's machine.
    pub machine: Option<MachineId>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
}

impl RunSearch {
    /// Whether a run with this master and summary passes every filter.
    pub fn matches(&self, master: &FileRef, run: &RunSummary) -> bool {
        self.text
            .as_ref()
            .is_none_or(|text| text.matches(&format!("{}/{}", master.file_path, master.file_name)))
            && self.status.is_none_or(|status| run.status == status)
            && self.machine.is_none_or(|machine| run.machine_id == machine)
            && self.since.is_none_or(|since| run.received_at >= since)
            && self.until.is_none_or(|until| run.received_at < until)
    }
}

/// A run found by [`crate::Store::search_runs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunListing {
    /// The run.
    pub run: RunSummary,
    /// Its machine's name.
    pub machine_name: String,
    /// Its master scenario's file.
    pub master: FileRef,
}

/// A test identity found by [`crate::Store::search_tests`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestListing {
    /// The identity.
    pub identity: TestIdentity,
    /// Its key.
    pub key: TestKey,
}

impl TestListing {
    /// The listing of `identity`.
    pub fn new(identity: TestIdentity) -> Self {
        TestListing {
            key: identity.key(),
            identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_filters_escape_like_wildcards() {
        let filter = TextFilter::new(" 50%_Off\\ ").ok().flatten();
        let Some(filter) = filter else {
            panic!("a filter");
        };
        assert_eq!(filter.like_pattern(), "%50\\%\\_off\\\\%");
        assert!(filter.matches("PROMO 50%_OFF\\ now"));
        assert_eq!(TextFilter::new("   ").ok(), Some(None));
        assert!(TextFilter::new(&"x".repeat(201)).is_err());
    }
}
