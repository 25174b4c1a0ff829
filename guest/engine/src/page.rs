//! Pagination of list operations: every list is bounded and says how many matches exist.

use serde::Serialize;

/// The page size when a caller names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a caller may ask for: 200 incidents with the longest descriptions still
/// fit the host's 4 MiB cap on one tool output.
pub const MAX_LIMIT: u32 = 200;

/// Which slice of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items, between 1 and [`MAX_LIMIT`].
    pub limit: u32,
    /// Skip this many matching items first.
    pub offset: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl PageRequest {
    /// A request for `limit` items (clamped to 1..=[`MAX_LIMIT`]) after `offset`.
    pub fn new(limit: Option<u32>, offset: Option<u32>) -> Self {
        Self {
            limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            offset: offset.unwrap_or(0),
        }
    }
}

/// One page of a list, with the number of all matching items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items of this page, newest first.
    pub items: Vec<T>,
    /// How many items match in total, across all pages.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u32,
}
