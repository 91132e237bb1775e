//! How a list is asked for (DESIGN §5, §12): the cursor form (`limit`, `after`; newest
//! first) or Kapso's numbered pages (`page`, `per_page`; oldest first, so that rows
//! arriving while a client pages land on the last page and no row is skipped or repeated).

use super::{ApiError, LIST_DEFAULT, LIST_MAX};

/// The raw paging parameters of a list request.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawPaging<'a> {
    pub limit: Option<&'a str>,
    pub after: Option<&'a str>,
    pub page: Option<&'a str>,
    pub per_page: Option<&'a str>,
}

/// A list request's paging, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging<'a> {
    Cursor {
        limit: usize,
        /// The cursor of the previous page, not yet parsed (each list has its own form).
        after: Option<&'a str>,
    },
    Numbered {
        page: usize,
        per_page: usize,
    },
}

/// One answer of a list: a cursor page or a numbered page.
#[derive(Clone, Debug, PartialEq)]
pub enum Listed<T, C> {
    Cursor { rows: Vec<T>, after: Option<C> },
    Numbered(NumberedPage<T>),
}

/// A numbered page with what Kapso's `meta` says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberedPage<T> {
    pub rows: Vec<T>,
    pub page: usize,
    pub per_page: usize,
    pub total_count: usize,
}

impl<T> NumberedPage<T> {
    pub fn total_pages(&self) -> usize {
        self.total_count.div_ceil(self.per_page.max(1))
    }
}

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// A count parameter `name` within `range`; `code` when it is not.
fn count(
    code: &'static str,
    name: &str,
    raw: Option<&str>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    let Some(raw) = present(raw) else {
        return Ok(default);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            let bounds = if *range.end() == usize::MAX {
                format!("at least {}", range.start())
            } else {
                format!("{}-{}", range.start(), range.end())
            };
            ApiError::field(code, name, format!("{name} must be an integer, {bounds}"))
        })
}

/// The cursor form's `limit`.
pub fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    count("invalid_limit", "limit", raw, LIST_DEFAULT, 1..=LIST_MAX)
}

impl<'a> RawPaging<'a> {
    /// `page` or `per_page` asks for numbered pages, which `limit` and `after` cannot join.
    pub fn parse(self) -> Result<Paging<'a>, ApiError> {
        let numbered = present(self.page).is_some() || present(self.per_page).is_some();
        if !numbered {
            return Ok(Paging::Cursor {
                limit: limit(self.limit)?,
                after: present(self.after),
            });
        }
        for (name, value) in [("limit", self.limit), ("after", self.after)] {
            if present(value).is_some() {
                return Err(ApiError::field(
                    "invalid_paging",
                    name,
                    format!(
                        "{name} belongs to the cursor form; use page and per_page, or limit and after"
                    ),
                ));
            }
        }
        Ok(Paging::Numbered {
            page: count("invalid_page", "page", self.page, 1, 1..=usize::MAX)?,
            per_page: count(
                "invalid_per_page",
                "per_page",
                self.per_page,
                LIST_DEFAULT,
                1..=LIST_MAX,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        limit: &str,
        after: &str,
        page: &str,
        per_page: &str,
    ) -> Result<Paging<'static>, String> {
        let leak = |s: &str| -> Option<&'static str> {
            (!s.is_empty()).then(|| &*Box::leak(s.to_owned().into_boxed_str()))
        };
        RawPaging {
            limit: leak(limit),
            after: leak(after),
            page: leak(page),
            per_page: leak(per_page),
        }
        .parse()
        .map_err(|e| format!("{} {}", e.code, e.field.unwrap_or_default()))
    }

    #[test]
    fn the_cursor_form_is_the_default_and_numbered_pages_are_asked_for() {
        assert_eq!(
            parse("", "", "", ""),
            Ok(Paging::Cursor {
                limit: LIST_DEFAULT,
                after: None
            })
        );
        assert_eq!(
            parse("5", "x", "", ""),
            Ok(Paging::Cursor {
                limit: 5,
                after: Some("x")
            })
        );
        assert_eq!(
            parse("", "", "3", ""),
            Ok(Paging::Numbered {
                page: 3,
                per_page: LIST_DEFAULT
            })
        );
        assert_eq!(
            parse("", "", "", "100"),
            Ok(Paging::Numbered {
                page: 1,
                per_page: 100
            })
        );
    }

    #[test]
    fn bad_paging_names_its_field() {
        for (case, field) in [
            (("", "", "0", ""), "invalid_page page"),
            (("", "", "x", ""), "invalid_page page"),
            (("", "", "1", "101"), "invalid_per_page per_page"),
            (("", "", "1", "0"), "invalid_per_page per_page"),
            (("5", "", "1", ""), "invalid_paging limit"),
            (("", "c", "", "10"), "invalid_paging after"),
            (("0", "", "", ""), "invalid_limit limit"),
        ] {
            let (limit, after, page, per_page) = case;
            assert_eq!(
                parse(limit, after, page, per_page),
                Err(field.to_owned()),
                "{case:?}"
            );
        }
    }

    #[test]
    fn total_pages_rounds_up() {
        let page = |total_count, per_page| NumberedPage::<()> {
            rows: Vec::new(),
            page: 1,
            per_page,
            total_count,
        };
        assert_eq!(page(0, 20).total_pages(), 0);
        assert_eq!(page(20, 20).total_pages(), 1);
        assert_eq!(page(21, 20).total_pages(), 2);
    }
}
