//! Reads query results from PostgreSQL with `COPY (…) TO STDOUT` (text format): one stream
//! of rows with no per-row protocol objects, several times cheaper than row-by-row fetching
//! for the compiler's million-row tables.
//!
//! Text format (PostgreSQL docs, "COPY … File Formats"): a row per line, columns separated
//! by tabs, NULL written `\N`; tabs, newlines and backslashes inside values are backslash
//! escaped, so raw tab and newline bytes are always separators.

use futures_util::TryStreamExt;
use prost::bytes::BytesMut;
use sea_orm::sqlx::PgConnection;
use sea_orm::{DbErr, RuntimeErr};
use std::borrow::Cow;
use std::sync::Arc;

/// A sqlx error as sea-orm's query error.
pub fn query_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn malformed(what: &str) -> DbErr {
    DbErr::Custom(format!("COPY output: {what}"))
}

/// The fields of one line (UTF-8, checked once for the whole line: tabs are ASCII, so
/// every field is too).
pub struct Fields<'a> {
    rest: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(line: &'a str) -> Self {
        Self { rest: Some(line) }
    }

    fn raw(&mut self) -> Result<&'a str, DbErr> {
        let rest = self.rest.ok_or_else(|| malformed("too few columns"))?;
        Ok(match memchr::memchr(b'\t', rest.as_bytes()) {
            Some(tab) => {
                self.rest = Some(&rest[tab + 1..]);
                &rest[..tab]
            }
            None => {
                self.rest = None;
                rest
            }
        })
    }

    /// The next field: `None` for NULL, else its unescaped text.
    pub fn next_opt(&mut self) -> Result<Option<Cow<'a, str>>, DbErr> {
        let raw = self.raw()?;
        if raw == "\\N" {
            return Ok(None);
        }
        unescape(raw).map(Some)
    }

    pub fn text(&mut self) -> Result<String, DbErr> {
        self.next_opt()?
            .map(Cow::into_owned)
            .ok_or_else(|| malformed("NULL in a NOT NULL column"))
    }

    pub fn opt_text(&mut self) -> Result<Option<String>, DbErr> {
        Ok(self.next_opt()?.map(Cow::into_owned))
    }

    pub fn opt_int(&mut self) -> Result<Option<i64>, DbErr> {
        self.next_opt()?
            .map(|v| v.parse().map_err(|_| malformed("not an integer")))
            .transpose()
    }

    pub fn int(&mut self) -> Result<i64, DbErr> {
        self.opt_int()?
            .ok_or_else(|| malformed("NULL in a NOT NULL column"))
    }

    pub fn boolean(&mut self) -> Result<bool, DbErr> {
        match self.next_opt()?.as_deref() {
            Some("t") => Ok(true),
            Some("f") => Ok(false),
            _ => Err(malformed("not a boolean")),
        }
    }

    fn finish(self) -> Result<(), DbErr> {
        match self.rest {
            None => Ok(()),
            Some(_) => Err(malformed("too many columns")),
        }
    }
}

/// Undoes COPY's backslash escapes; borrows when there are none (the usual case).
fn unescape(raw: &str) -> Result<Cow<'_, str>, DbErr> {
    if memchr::memchr(b'\\', raw.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(raw));
    }
    // Octal escapes can spell any byte: the result is checked again.
    let raw = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = raw.get(i) else {
            return Err(malformed("trailing backslash"));
        };
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                // Up to three octal digits.
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' => {
                // One or two hex digits.
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push(b'x');
                } else {
                    out.push(value as u8);
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| malformed("not UTF-8"))
}

/// A row type read from COPY output.
pub trait FromCopy: Sized {
    fn from_copy(fields: &mut Fields<'_>) -> Result<Self, DbErr>;
}

/// Splits `data` into complete lines, parses each, and keeps an unfinished last line in
/// `pending`.
fn parse_lines<R: FromCopy>(
    pending: &mut BytesMut,
    data: &[u8],
    each: &mut impl FnMut(R),
) -> Result<(), DbErr> {
    let mut data = data;
    if !pending.is_empty() {
        // Complete the line begun in an earlier chunk.
        let Some(end) = memchr::memchr(b'\n', data) else {
            pending.extend_from_slice(data);
            return Ok(());
        };
        pending.extend_from_slice(&data[..end]);
        let line = pending.split();
        parse_line(&line, each)?;
        data = &data[end + 1..];
    }
    while let Some(end) = memchr::memchr(b'\n', data) {
        parse_line(&data[..end], each)?;
        data = &data[end + 1..];
    }
    pending.extend_from_slice(data);
    Ok(())
}

fn parse_line<R: FromCopy>(line: &[u8], each: &mut impl FnMut(R)) -> Result<(), DbErr> {
    let line = std::str::from_utf8(line).map_err(|_| malformed("not UTF-8"))?;
    let mut fields = Fields::new(line);
    let row = R::from_copy(&mut fields)?;
    fields.finish()?;
    each(row);
    Ok(())
}

/// Runs `COPY (select) TO STDOUT` on `conn` and hands every row to `each` as it arrives.
pub async fn rows<R: FromCopy>(
    conn: &mut PgConnection,
    select: &str,
    mut each: impl FnMut(R),
) -> Result<(), DbErr> {
    let mut stream = conn
        .copy_out_raw(&format!("COPY ({select}) TO STDOUT"))
        .await
        .map_err(query_error)?;
    let mut pending = BytesMut::new();
    while let Some(chunk) = stream.try_next().await.map_err(query_error)? {
        parse_lines(&mut pending, &chunk, &mut each)?;
        // Rows buffered in the socket come without waiting, so a large read would keep its
        // worker from every other task (node sessions sending the table as it compiles);
        // this yields whenever the task has used up tokio's budget.
        tokio::task::consume_budget().await;
    }
    if !pending.is_empty() {
        return Err(malformed("last line unterminated"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Row(String, Option<String>, Option<i64>, bool);

    impl FromCopy for Row {
        fn from_copy(f: &mut Fields<'_>) -> Result<Self, DbErr> {
            Ok(Row(f.text()?, f.opt_text()?, f.opt_int()?, f.boolean()?))
        }
    }

    fn parse(chunks: &[&[u8]]) -> Result<Vec<Row>, DbErr> {
        let mut rows = Vec::new();
        let mut pending = BytesMut::new();
        for chunk in chunks {
            parse_lines(&mut pending, chunk, &mut |r| rows.push(r))?;
        }
        assert!(pending.is_empty());
        Ok(rows)
    }

    #[test]
    fn rows_parse_across_chunk_boundaries_with_nulls_and_escapes() {
        let data = b"a\t\\N\t7\tt\nb\\tc\\\\d\\n\tx\\101\\x42\t\\N\tf\n";
        let expected = vec![
            Row("a".into(), None, Some(7), true),
            Row("b\tc\\d\n".into(), Some("xAB".into()), None, false),
        ];
        assert_eq!(parse(&[data]).unwrap_or_default(), expected);
        for split in 1..data.len() {
            let (x, y) = data.split_at(split);
            assert_eq!(
                parse(&[x, y]).unwrap_or_default(),
                expected,
                "split at {split}"
            );
        }
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        for bad in [
            &b"a\t\\N\t7\n"[..],
            b"a\t\\N\t7\tt\textra\n",
            b"\\N\t\\N\t7\tt\n",
            b"a\t\\N\tseven\tt\n",
            b"a\t\\N\t7\tyes\n",
            b"a\\\t\\N\t7\tt\n",
            b"\xff\t\\N\t7\tt\n",
        ] {
            assert!(parse(&[bad]).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
