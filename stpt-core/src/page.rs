//! Pagination as the seed had it: pages numbered from 1, ten items by default, at most 100.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which page of a list to read. Always valid once built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageRequest {
    number: u32,
    size: u32,
}

impl PageRequest {
    /// Items per page when none is asked for.
    pub const DEFAULT_SIZE: u32 = 10;
    /// The largest page size accepted.
    pub const MAX_SIZE: u32 = 100;

    /// Page `number` (from 1) of `size` items (1 to [`Self::MAX_SIZE`]).
    pub fn new(number: u32, size: u32) -> Result<Self> {
        if number == 0 {
            return Err(Error::invalid("page", "pages are numbered from 1"));
        }
        if size == 0 || size > Self::MAX_SIZE {
            return Err(Error::invalid(
                "page_size",
                format!("must be between 1 and {}", Self::MAX_SIZE),
            ));
        }
        Ok(PageRequest { number, size })
    }

    /// The first page of `size` items.
    pub fn first(size: u32) -> Result<Self> {
        Self::new(1, size)
    }

    /// The page number, from 1.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Items per page.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// How many items come before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.number - 1) * u64::from(self.size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            number: 1,
            size: Self::DEFAULT_SIZE,
        }
    }
}

/// One page of a list, with the total count of the whole list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The request this page answers.
    pub request: PageRequest,
    /// Items in the whole list.
    pub total: u64,
}

impl<T> Page<T> {
    /// A page of `items` answering `request`, out of `total`.
    pub fn new(items: Vec<T>, request: PageRequest, total: u64) -> Self {
        Page {
            items,
            request,
            total,
        }
    }

    /// Pages in the whole list; an empty list has one (empty) page, as the seed's paginator.
    pub fn total_pages(&self) -> u32 {
        let pages = self.total.div_ceil(u64::from(self.request.size)).max(1);
        u32::try_from(pages).unwrap_or(u32::MAX)
    }

    /// Whether a later page exists.
    pub fn has_next(&self) -> bool {
        self.request.number < self.total_pages()
    }

    /// Whether an earlier page exists.
    pub fn has_previous(&self) -> bool {
        self.request.number > 1
    }

    /// Whether this page lies past the last one.
    pub fn is_past_end(&self) -> bool {
        self.request.number > self.total_pages()
    }

    /// This page, or [`Error::NotFound`] ([`crate::ItemKind::Page`]) when it lies past the
    /// last one: how the lists of the API answer such a request.
    pub fn within_range(self) -> Result<Self> {
        if self.is_past_end() {
            return Err(Error::not_found(
                crate::ItemKind::Page,
                i64::from(self.request.number()),
            ));
        }
        Ok(self)
    }

    /// The same page with its items converted.
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(convert).collect(),
            request: self.request,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(PageRequest::new(0, 10).is_err());
        assert!(PageRequest::new(1, 0).is_err());
        assert!(PageRequest::new(1, 101).is_err());
        assert!(PageRequest::new(1, 100).is_ok());
    }

    #[test]
    fn page_arithmetic() {
        let request = PageRequest::new(2, 10).unwrap();
        assert_eq!(request.offset(), 10);
        let page = Page::new(vec![0; 10], request, 25);
        assert_eq!(page.total_pages(), 3);
        assert!(page.has_next() && page.has_previous() && !page.is_past_end());
        let empty = Page::<u8>::new(vec![], PageRequest::default(), 0);
        assert_eq!(empty.total_pages(), 1);
        assert!(!empty.is_past_end());
        let past = Page::<u8>::new(vec![], PageRequest::new(4, 10).unwrap(), 25);
        assert!(past.is_past_end());
    }
}
