//! Keptn's "family A" pagination: an offset carried in a string `nextPageKey`, default page size 20,
//! `"0"` marking the last page.

use serde::Deserialize;

/// Page size used when a client sends none.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// Query parameters of a family-A list endpoint.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to return (default 20).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page_size: Option<String>,
    /// Where the next page starts, from the previous page's `nextPageKey`.
    pub next_page_key: Option<String>,
}

/// One page cut from a longer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Offset of the next page as Keptn writes it; `"0"` when this is the last page.
    pub next_page_key: String,
    pub total_count: usize,
}

/// For `#[serde(skip_serializing_if)]`: Keptn omits a `totalCount` of zero.
pub fn is_zero<T: Default + PartialEq>(count: &T) -> bool {
    *count == T::default()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pageSize '{0}': it must be a positive number")]
pub struct PageSizeError(pub String);

impl PageQuery {
    /// The requested page size; `0` or absent means the default.
    pub fn page_size(&self) -> Result<usize, PageSizeError> {
        match self.page_size.as_deref() {
            None | Some("") => Ok(DEFAULT_PAGE_SIZE),
            Some(raw) => match raw.parse::<i64>() {
                Ok(0) => Ok(DEFAULT_PAGE_SIZE),
                Ok(size) if size > 0 => Ok(size as usize),
                _ => Err(PageSizeError(raw.to_owned())),
            },
        }
    }

    /// The requested offset; anything that is not a number counts as 0, as in Keptn.
    pub fn offset(&self) -> usize {
        self.next_page_key.as_deref().and_then(|key| key.parse().ok()).unwrap_or(0)
    }

    /// Cuts the requested page out of `items`, which must already be sorted.
    pub fn paginate<T>(&self, items: Vec<T>) -> Result<Page<T>, PageSizeError> {
        let page_size = self.page_size()?;
        let total_count = items.len();
        let offset = self.offset().min(total_count);
        let end = offset.saturating_add(page_size).min(total_count);
        let next_page_key = if end < total_count { end.to_string() } else { "0".to_owned() };
        let items = items.into_iter().skip(offset).take(end - offset).collect();
        Ok(Page { items, next_page_key, total_count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(size: Option<&str>, key: Option<&str>) -> PageQuery {
        PageQuery { page_size: size.map(str::to_owned), next_page_key: key.map(str::to_owned) }
    }

    #[test]
    fn pages_walk_the_list_and_end_with_zero_key() {
        let items: Vec<u32> = (0..5).collect();
        let first = query(Some("2"), None).paginate(items.clone()).unwrap();
        assert_eq!(first.items, vec![0, 1]);
        assert_eq!(first.next_page_key, "2");
        assert_eq!(first.total_count, 5);
        let last = query(Some("2"), Some("4")).paginate(items.clone()).unwrap();
        assert_eq!(last.items, vec![4]);
        assert_eq!(last.next_page_key, "0");
        let beyond = query(Some("2"), Some("9")).paginate(items).unwrap();
        assert!(beyond.items.is_empty());
        assert_eq!(beyond.next_page_key, "0");
    }

    #[test]
    fn defaults_and_bad_values() {
        assert_eq!(query(None, None).page_size().unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(query(Some("0"), None).page_size().unwrap(), DEFAULT_PAGE_SIZE);
        assert!(query(Some("-1"), None).page_size().is_err());
        assert!(query(Some("ten"), None).page_size().is_err());
        assert_eq!(query(None, Some("abc")).offset(), 0);
    }
}
