//! Matching a child's reference to its parent's key the way Postgres does.
//!
//! The raw form prints a value as Postgres prints it, and Postgres prints some equal values
//! differently: numeric `1.0` and `1.00`, float `0` and `-0`, citext `Ann` and `ann`, interval
//! `P1D` and `PT24H`, char(n) with its padding. A foreign key holds between such values, so a
//! reference is looked up by a *canonical form* per key column ([`KeyForm`]) and written with
//! the parent's legacy id exactly as the parent's document has it (import finds the parent by
//! that string). Where Postgres' equality cannot be reproduced (a nondeterministic collation, a
//! type whose equality is unknown here), [`forms`] refuses the reference before any row.

use std::borrow::Cow;
use std::fmt::Write as _;

use rustc_hash::{FxHashMap, FxHashSet};

use super::convert::{plain_string, string_form};
use crate::catalog::{Catalog, CitextLowering, Column, PgType, TableName};
use crate::plan::{ReferencePlan, TablePlan};

/// How one key column's printed value becomes the form two equal values share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The printed value is canonical: equal values print the same.
    Printed,
    /// numeric: trailing fraction zeros dropped, `-0` is `0`.
    Numeric,
    /// real/double: `-0` is `0`, NaN equals NaN; a `real` (`single`) is read as one, then
    /// compared as a double, as Postgres compares `real` with `double precision`.
    Float { single: bool },
    /// citext: lowercased as the database lowers it (citext compares `lower()` of both sides):
    /// per character by default, ASCII only under LC_CTYPE `C`, fully under ICU.
    Citext(Option<CitextLowering>),
    /// interval: its length in microseconds, a month as 30 days and a day as 24 hours
    /// (Postgres' `interval_cmp_value`).
    Interval,
    /// char(n): trailing spaces dropped, as bpchar compares (and casts to text).
    TrimEnd,
}

/// Types whose printed form is canonical, compared with a column of the same type. Others are
/// refused (their equality is unknown here).
const PRINTED_OTHER: [&str; 12] = [
    "macaddr", "macaddr8", "cidr", "money", "bit", "varbit", "timetz", "oid", "name", "char",
    "xid8", "pg_lsn",
];

/// A reference's key forms: the child's per column, and the parent's per legacy id column (the
/// same order). `None` when both print canonically: the printed keys are compared as they are.
pub struct ReferenceForms {
    pub child: Vec<KeyForm>,
    pub parent: Vec<KeyForm>,
}

impl ReferenceForms {
    pub fn is_printed(&self) -> bool {
        self.child.iter().chain(&self.parent).all(|f| *f == KeyForm::Printed)
    }
}

/// Why a reference's key cannot be matched as Postgres matches it.
pub struct Unmatchable {
    pub column: String,
    pub reason: String,
}

/// The key forms of `reference` of `table`, whose parent is `parent`.
pub fn forms(
    catalog: &Catalog,
    table: &TablePlan,
    reference: &ReferencePlan,
    parent: &TablePlan,
) -> Result<ReferenceForms, Unmatchable> {
    column_forms(
        catalog,
        &table.source,
        &reference.columns,
        &parent.source,
        &parent.legacy_id.columns,
    )
}

/// The key forms of `columns` of `table` matched to the legacy id columns of `parent`, in
/// order (a reference's key, or a merged table's `on`).
pub fn column_forms(
    catalog: &Catalog,
    table: &TableName,
    columns: &[String],
    parent: &TableName,
    legacy_id: &[String],
) -> Result<ReferenceForms, Unmatchable> {
    let mut forms = ReferenceForms { child: Vec::new(), parent: Vec::new() };
    let child_table = catalog.table(table);
    let parent_table = catalog.table(parent);
    for (child_column, parent_column) in columns.iter().zip(legacy_id) {
        let child = child_table.and_then(|t| t.column(child_column));
        let parent = parent_table.and_then(|t| t.column(parent_column));
        let (Some(child), Some(parent)) = (child, parent) else {
            forms.child.push(KeyForm::Printed);
            forms.parent.push(KeyForm::Printed);
            continue;
        };
        let child_form = child_form(child, parent)
            .map_err(|reason| Unmatchable { column: child_column.clone(), reason })?;
        forms.child.push(child_form);
        forms.parent.push(parent_form(parent));
    }
    Ok(forms)
}

/// The form of a parent's key column: a function of its type alone, so that every reference to
/// a parent looks up the same keys.
pub fn parent_form(column: &Column) -> KeyForm {
    if column.array {
        return KeyForm::Printed;
    }
    match column.ty {
        PgType::Numeric => KeyForm::Numeric,
        PgType::Float4 => KeyForm::Float { single: true },
        PgType::Float8 => KeyForm::Float { single: false },
        PgType::Citext => KeyForm::Citext(column.citext_lowering),
        PgType::Interval => KeyForm::Interval,
        PgType::Bpchar => KeyForm::TrimEnd,
        _ => KeyForm::Printed,
    }
}

fn child_form(child: &Column, parent: &Column) -> Result<KeyForm, String> {
    for column in [child, parent] {
        if let Some(collation) = &column.nondeterministic_collation {
            return Err(format!(
                "`{}` is compared under the nondeterministic collation `{collation}`, whose \
                 equality migrate cannot reproduce",
                column.name
            ));
        }
    }
    let integer = |ty: &PgType| matches!(ty, PgType::Int2 | PgType::Int4 | PgType::Int8);
    let text = |ty: &PgType| matches!(ty, PgType::Text | PgType::Varchar);
    let unknown = || {
        Err(format!(
            "`{}` is {} and the parent's `{}` is {}: migrate does not know how Postgres compares \
             them, and their printed forms may differ for equal values",
            child.name, child.sql_type, parent.name, parent.sql_type
        ))
    };
    if child.array || parent.array {
        let same = child.array && parent.array && child.ty == parent.ty;
        return if same
            && parent_form(&Column { array: false, ..parent.clone() }) == KeyForm::Printed
        {
            Ok(KeyForm::Printed)
        } else {
            unknown()
        };
    }
    Ok(match (&parent.ty, &child.ty) {
        (p, c) if integer(p) && integer(c) => KeyForm::Printed,
        (PgType::Numeric, c) if integer(c) || *c == PgType::Numeric => KeyForm::Numeric,
        (PgType::Float4 | PgType::Float8, PgType::Float4) => KeyForm::Float { single: true },
        (PgType::Float4 | PgType::Float8, PgType::Float8) => KeyForm::Float { single: false },
        (PgType::Citext, PgType::Citext) => KeyForm::Citext(parent.citext_lowering),
        (PgType::Interval, PgType::Interval) => KeyForm::Interval,
        (PgType::Bpchar, c) if text(c) || *c == PgType::Bpchar => KeyForm::TrimEnd,
        // citext casts to text as it is; char(n) loses its padding.
        (p, c) if text(p) && (text(c) || *c == PgType::Citext) => KeyForm::Printed,
        (p, PgType::Bpchar) if text(p) => KeyForm::TrimEnd,
        (
            PgType::Bool
            | PgType::Uuid
            | PgType::Inet
            | PgType::Date
            | PgType::Time
            | PgType::Timestamp
            | PgType::Timestamptz
            | PgType::Bytea
            | PgType::Enum { .. },
            c,
        ) if *c == parent.ty => KeyForm::Printed,
        (PgType::Other(p), PgType::Other(c)) if p == c && PRINTED_OTHER.contains(&p.as_str()) => {
            KeyForm::Printed
        }
        _ => return unknown(),
    })
}

/// A raw value's string form, borrowed when it can be.
fn contents(text: &str) -> Cow<'_, str> {
    if !text.starts_with('"') {
        return Cow::Borrowed(text);
    }
    match plain_string(text) {
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Owned(string_form(text)),
    }
}

impl KeyForm {
    /// Appends the canonical form of a non-null raw value (JSON text) to `out`. A value that
    /// does not read as its form is kept as printed.
    pub fn write_canonical(self, text: &str, out: &mut String) {
        let value = contents(text);
        let value = value.as_ref();
        match self {
            KeyForm::Printed => out.push_str(value),
            KeyForm::Numeric => {
                let trimmed = if value.contains('.') {
                    value.trim_end_matches('0').trim_end_matches('.')
                } else {
                    value
                };
                out.push_str(if trimmed == "-0" { "0" } else { trimmed });
            }
            KeyForm::Float { single } => {
                let parsed =
                    if single { value.parse::<f32>().map(f64::from) } else { value.parse::<f64>() };
                match parsed {
                    Ok(0.0) => out.push('0'),
                    Ok(f) if f.is_nan() => out.push_str("NaN"),
                    Ok(f) if f.is_infinite() => {
                        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
                    }
                    Ok(f) => out.push_str(ryu::Buffer::new().format_finite(f)),
                    Err(_) => out.push_str(value),
                }
            }
            // Postgres lowers character by character (`towlower`), Unicode's simple mapping:
            // `İ` is `i`, where the full mapping makes it `i̇`, two characters. Only `İ` has a
            // full lowercase longer than one character, and its simple one is the first.
            KeyForm::Citext(None) => {
                out.extend(value.chars().filter_map(|c| c.to_lowercase().next()))
            }
            KeyForm::Citext(Some(CitextLowering::Ascii)) => {
                out.extend(value.chars().map(|c| c.to_ascii_lowercase()))
            }
            KeyForm::Citext(Some(CitextLowering::Full)) => {
                out.extend(value.chars().flat_map(char::to_lowercase))
            }
            KeyForm::Interval => match interval_micros(value) {
                Some(micros) => {
                    let _ = write!(out, "{micros}");
                }
                None => out.push_str(value),
            },
            KeyForm::TrimEnd => out.push_str(value.trim_end_matches(' ')),
        }
    }
}

/// The canonical key of a reference's (non-null) raw values, in the form of a legacy id: one
/// value's canonical form, or a compact JSON array of them.
pub fn write_canonical_key<'a>(
    texts: impl Iterator<Item = &'a str>,
    forms: &[KeyForm],
    out: &mut String,
) {
    out.clear();
    let mut texts = texts;
    let (Some(first), second) = (texts.next(), texts.next()) else {
        return;
    };
    let Some(second) = second else {
        // One column, the usual case: no allocation once `out` has grown.
        forms[0].write_canonical(first, out);
        return;
    };
    let parts: Vec<String> = [first, second]
        .into_iter()
        .chain(texts)
        .zip(forms)
        .map(|(text, form)| {
            let mut part = String::new();
            form.write_canonical(text, &mut part);
            part
        })
        .collect();
    out.push_str(&serde_json::to_string(&parts).expect("strings serialize"));
}

/// An interval in Postgres' `iso_8601` output (`P1Y2M3DT4H5M6.5S`, `P-1D`, `PT-0.5S`, `PT0S`)
/// as microseconds, a month as 30 days and a day as 24 hours. `None` for anything else
/// (`infinity`).
fn interval_micros(text: &str) -> Option<i128> {
    const DAY: i128 = 86_400_000_000;
    let mut rest = text.strip_prefix('P')?.as_bytes();
    let mut in_time = false;
    let mut total: i128 = 0;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'T' && !in_time {
            in_time = true;
            rest = tail;
            continue;
        }
        let negative = first == b'-';
        let body = if negative { tail } else { rest };
        let end = body.iter().position(|b| !b.is_ascii_digit() && *b != b'.')?;
        let (number, after) = body.split_at(end);
        let (&unit, tail) = after.split_first()?;
        let number = std::str::from_utf8(number).ok()?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: i128 = whole.parse().ok()?;
        if !(fraction.is_empty() || in_time && unit == b'S') || fraction.len() > 6 {
            return None;
        }
        let micros_of_fraction: i128 =
            if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().ok()? };
        let amount = match (in_time, unit) {
            (false, b'Y') => whole * 12 * 30 * DAY,
            (false, b'M') => whole * 30 * DAY,
            (false, b'D') => whole * DAY,
            (true, b'H') => whole * 3_600_000_000,
            (true, b'M') => whole * 60_000_000,
            (true, b'S') => whole * 1_000_000 + micros_of_fraction,
            _ => return None,
        };
        total += if negative { -amount } else { amount };
        rest = tail;
    }
    Some(total)
}

/// The legacy ids of the parent rows references may point at, and, when some key column prints
/// non-canonically, each canonical key with the legacy id its document has.
#[derive(Debug, Default)]
pub struct ParentKeys {
    printed: FxHashSet<String>,
    /// Canonical key → the parent's printed legacy id.
    canonical: Option<FxHashMap<String, String>>,
}

impl FromIterator<String> for ParentKeys {
    fn from_iter<I: IntoIterator<Item = String>>(ids: I) -> Self {
        ParentKeys { printed: ids.into_iter().collect(), canonical: None }
    }
}

impl ParentKeys {
    /// Keys of a parent whose legacy id columns have `forms`.
    pub fn new(forms: &[KeyForm]) -> Self {
        let canonical = forms.iter().any(|f| *f != KeyForm::Printed);
        ParentKeys { printed: FxHashSet::default(), canonical: canonical.then(FxHashMap::default) }
    }

    pub fn is_canonical(&self) -> bool {
        self.canonical.is_some()
    }

    /// Adds a parent's legacy id and its canonical key; `Err` with the other legacy id when two
    /// keys share a canonical form (then migrate's equality is coarser than Postgres').
    pub fn insert(&mut self, legacy_id: String, canonical: Option<String>) -> Result<(), String> {
        if let (Some(map), Some(canonical)) = (self.canonical.as_mut(), canonical) {
            match map.get(&canonical) {
                Some(other) if *other != legacy_id => return Err(other.clone()),
                Some(_) => {}
                None => {
                    map.insert(canonical, legacy_id.clone());
                }
            }
        }
        self.printed.insert(legacy_id);
        Ok(())
    }

    /// Whether a parent has this printed legacy id.
    pub fn contains(&self, legacy_id: &str) -> bool {
        self.printed.contains(legacy_id)
    }

    /// The legacy id of the parent whose canonical key is `canonical`.
    pub fn find(&self, canonical: &str) -> Option<&str> {
        match &self.canonical {
            Some(map) => map.get(canonical).map(String::as_str),
            None => self.printed.get(canonical).map(String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(form: KeyForm, text: &str) -> String {
        let mut out = String::new();
        form.write_canonical(text, &mut out);
        out
    }

    #[test]
    fn equal_values_share_a_canonical_form() {
        let numeric = |t| canonical(KeyForm::Numeric, t);
        assert_eq!(numeric(r#""1.00""#), "1");
        assert_eq!(numeric(r#""1.0""#), "1");
        assert_eq!(numeric(r#""10""#), "10");
        assert_eq!(numeric("10"), "10");
        assert_eq!(numeric(r#""2.50""#), "2.5");
        assert_eq!(numeric(r#""-0.000""#), "0");
        assert_eq!(numeric(r#""NaN""#), "NaN");
        let double = |t| canonical(KeyForm::Float { single: false }, t);
        assert_eq!(double("-0.0"), double("0.0"));
        assert_eq!(double(r#""NaN""#), "NaN");
        assert_eq!(double("1.5"), "1.5");
        // a real 0.1 is not the double 0.1, as in Postgres
        assert_ne!(canonical(KeyForm::Float { single: true }, "0.1"), double("0.1"));
        assert_eq!(canonical(KeyForm::Float { single: true }, "1.5"), double("1.5"));
        assert_eq!(canonical(KeyForm::Citext(None), r#""Ann@X.com""#), "ann@x.com");
        assert_eq!(canonical(KeyForm::Citext(None), r#""İSTANBUL""#), "istanbul");
        let ascii = KeyForm::Citext(Some(CitextLowering::Ascii));
        assert_eq!(canonical(ascii, r#""ÄB""#), "Äb");
        let full = KeyForm::Citext(Some(CitextLowering::Full));
        assert_eq!(canonical(full, r#""İ""#), "i\u{307}");
        assert_eq!(canonical(KeyForm::TrimEnd, r#""ab  ""#), "ab");
    }

    #[test]
    fn intervals_compare_by_length_as_postgres_does() {
        let micros = |t| interval_micros(t).unwrap();
        assert_eq!(micros("P1D"), micros("PT24H"));
        assert_eq!(micros("P1M"), micros("P30D"));
        assert_eq!(micros("P1Y"), micros("P360D"));
        assert_eq!(micros("PT-1H"), micros("PT-60M"));
        assert_eq!(
            micros("P1Y2M3DT4H5M6.5S"),
            ((420 + 3) * 86_400 + 4 * 3600 + 5 * 60 + 6) as i128 * 1_000_000 + 500_000
        );
        assert_eq!(micros("PT-0.000001S"), -1);
        assert_eq!(micros("P-1DT1H"), -23 * 3_600_000_000);
        assert_eq!(micros("PT0S"), 0);
        assert_eq!(interval_micros("infinity"), None);
        assert_eq!(interval_micros("P1.5D"), None);
    }

    #[test]
    fn parent_keys_find_the_printed_id_and_refuse_keys_they_would_merge() {
        let mut keys = ParentKeys::new(&[KeyForm::Numeric]);
        keys.insert("1.0".into(), Some("1".into())).unwrap();
        assert_eq!(keys.find("1"), Some("1.0"));
        assert!(keys.contains("1.0"));
        assert_eq!(keys.insert("1.00".into(), Some("1".into())), Err("1.0".into()));
        let printed: ParentKeys = ["7".to_owned()].into_iter().collect();
        assert_eq!(printed.find("7"), Some("7"));
    }
}
