//! `?page=&page_size=` as the seed's paginator (Django REST framework's `PageNumberPagination`
//! with `max_page_size = 100`) read them: lenient about the size, strict about the page.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use std::collections::HashMap;
use stpt_core::PageRequest;

/// Which page was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageNumber {
    /// A page from 1.
    Number(u32),
    /// `page=last`.
    Last,
    /// Below 1 or not a number: the seed answered `404 {"detail": "Invalid page."}`.
    Invalid,
}

/// The page and page size of a seed list read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeedPagination {
    pub(crate) number: PageNumber,
    pub(crate) size: u32,
}

/// The query parameters of the seed's lists, for the documentation.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only documents the query `SeedPagination` reads.
pub(crate) struct SeedPageQuery {
    /// The page, from 1, or `last`; past the last page, below 1 or not a number is a `404`.
    #[param(example = "last")]
    page: Option<String>,
    /// Items per page: over 100 is 100; `0`, negative or not a number is 10.
    #[param(default = 10)]
    page_size: Option<String>,
}

impl SeedPagination {
    /// Reads `page` and `page_size` from a query string's pairs.
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Self {
        SeedPagination {
            number: page_number(query.get("page").map(String::as_str)),
            size: page_size(query.get("page_size").map(String::as_str)),
        }
    }
}

/// The seed took `page_size` through Python's `int()` and fell back to the default on
/// anything it could not take.
fn page_size(text: Option<&str>) -> u32 {
    let Some(text) = text.map(str::trim) else {
        return PageRequest::DEFAULT_SIZE;
    };
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return PageRequest::DEFAULT_SIZE;
    }
    match digits.parse::<u64>() {
        Ok(0) => PageRequest::DEFAULT_SIZE,
        Ok(size) => u32::try_from(size.min(u64::from(PageRequest::MAX_SIZE)))
            .unwrap_or(PageRequest::MAX_SIZE),
        // More digits than fit: far over the cap.
        Err(_) => PageRequest::MAX_SIZE,
    }
}

fn page_number(text: Option<&str>) -> PageNumber {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return PageNumber::Number(1);
    };
    if text == "last" {
        return PageNumber::Last;
    }
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return PageNumber::Invalid;
    }
    match digits.parse::<u32>() {
        Ok(0) | Err(_) => PageNumber::Invalid,
        Ok(number) => PageNumber::Number(number),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SeedPagination {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // An unreadable query string reads as no parameters, as Django read it.
        let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
            .map(|Query(query)| query)
            .unwrap_or_default();
        Ok(SeedPagination::from_query(&query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> SeedPagination {
        let query = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        SeedPagination::from_query(&query)
    }

    #[test]
    fn sizes_as_the_seed_took_them() {
        for (text, size) in [
            ("1000", 100),
            ("100", 100),
            ("7", 7),
            ("0", 10),
            ("abc", 10),
            ("-3", 10),
            ("", 10),
            ("99999999999999999999999", 100),
        ] {
            assert_eq!(read(&[("page_size", text)]).size, size, "page_size={text}");
        }
        assert_eq!(read(&[]).size, 10);
    }

    #[test]
    fn pages_as_the_seed_took_them() {
        assert_eq!(read(&[]).number, PageNumber::Number(1));
        assert_eq!(read(&[("page", "3")]).number, PageNumber::Number(3));
        assert_eq!(read(&[("page", "last")]).number, PageNumber::Last);
        for text in ["0", "-1", "abc", "1.5", "99999999999"] {
            assert_eq!(
                read(&[("page", text)]).number,
                PageNumber::Invalid,
                "page={text}"
            );
        }
    }
}
