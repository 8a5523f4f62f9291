//! One raw value (docs/raw-format.md) → one Convex value, as a [`Conversion`] says. Pure.
//!
//! Nothing is rounded silently: a value the conversion cannot carry exactly is an error whose
//! message says why and which policy would keep it.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value as Raw;

use crate::calendar;
use crate::convex::{Value, rules};
use crate::plan::{Conversion, JsonKeyPolicy, JsonScalar};

/// 2^53: the largest integer range a Float64 holds exactly.
const MAX_SAFE_INTEGER: i128 = 9_007_199_254_740_992;

/// Why a value could not be converted; the field path is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// Path inside the value (`[3]`, `.key`), empty for the value itself.
    pub path: String,
    pub reason: String,
}

fn fail<T>(reason: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError { path: String::new(), reason: reason.into() })
}

/// Converts a non-null raw value, taking it: strings move into the Convex value uncopied.
pub fn convert(conversion: &Conversion, raw: Raw) -> Result<Value, ConvertError> {
    match (conversion, raw) {
        (Conversion::Boolean, Raw::Bool(b)) => Ok(Value::Boolean(b)),
        (Conversion::Float64, raw) => float64(&raw),
        (Conversion::Json { keys }, raw) => json(unwrap_json(raw), *keys),
        // serde_json keeps every digit of a number (`arbitrary_precision`) and sorts keys.
        (Conversion::JsonText, raw) => Ok(Value::String(unwrap_json(raw).to_string())),
        (Conversion::JsonScalar(ty), raw) => json_scalar(*ty, unwrap_json(raw)),
        (Conversion::Array(element), Raw::Array(items)) => array(element, items),
        // A Convex source's value, in Convex's own encoding: decoded, never reinterpreted.
        (Conversion::Convex(_), raw) => {
            Value::from_json(&raw).or_else(|e| fail(format!("not a Convex value: {}", e.kind)))
        }
        (Conversion::String, Raw::String(s)) => Ok(Value::String(s)),
        (conversion, Raw::String(s)) if carried_as_text(conversion) => from_text(conversion, &s),
        (Conversion::String, other) => Ok(Value::String(other.to_string())),
        (Conversion::Int8AsNumber | Conversion::Int8AsInt64, Raw::Number(n)) => {
            from_text(conversion, n.as_str())
        }
        (conversion, other) => {
            fail(format!("expected {}, found {}", expected(conversion), kind(&other)))
        }
    }
}

/// Converts a non-null value from its raw JSON text. Scalars carried as plain strings or
/// numbers convert without building a `serde_json::Value`; the rest is parsed first.
pub fn convert_text(conversion: &Conversion, text: &str) -> Result<Value, ConvertError> {
    match conversion {
        Conversion::Boolean if text == "true" => Ok(Value::Boolean(true)),
        Conversion::Boolean if text == "false" => Ok(Value::Boolean(false)),
        Conversion::Float64 if !text.starts_with('"') => exact_f64(text).map(Value::Float64),
        conversion if carried_as_text(conversion) => match plain_string(text) {
            Some(s) => from_text(conversion, s),
            None => convert(conversion, parse(text)?),
        },
        conversion => convert(conversion, parse(text)?),
    }
}

fn parse(text: &str) -> Result<Raw, ConvertError> {
    serde_json::from_str(text).or_else(|e| fail(format!("not valid JSON ({e})")))
}

/// The contents of a JSON string literal without escapes; `None` for anything else.
pub(super) fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    memchr::memchr2(b'\\', b'"', inner.as_bytes()).is_none().then_some(inner)
}

/// Conversions whose raw value is a JSON string (docs/raw-format.md).
fn carried_as_text(conversion: &Conversion) -> bool {
    matches!(
        conversion,
        Conversion::Int8AsNumber
            | Conversion::Int8AsInt64
            | Conversion::Int8AsString
            | Conversion::NumericAsNumber
            | Conversion::NumericAsString
            | Conversion::NumericAsCents
            | Conversion::NumericAsInt64
            | Conversion::String
            | Conversion::StringTrimEnd
            | Conversion::Enum { .. }
            | Conversion::TimestampMs { .. }
            | Conversion::TimestampIso
            | Conversion::DateString
            | Conversion::DateMs
            | Conversion::Bytes
    )
}

fn expected(conversion: &Conversion) -> &'static str {
    match conversion {
        Conversion::Boolean => "a boolean",
        Conversion::Array(_) => "an array",
        _ => "a string",
    }
}

/// The conversions of values the raw form carries as strings.
fn from_text(conversion: &Conversion, s: &str) -> Result<Value, ConvertError> {
    match conversion {
        Conversion::Int8AsNumber => {
            let value = int8(s)?;
            if i128::from(value).abs() > MAX_SAFE_INTEGER {
                return fail(format!(
                    "bigint {value} is beyond ±2^53 and would lose precision as a number; \
                     use policy `int64` or `string`"
                ));
            }
            Ok(Value::Float64(value as f64))
        }
        Conversion::Int8AsInt64 => Ok(Value::Int64(int8(s)?)),
        Conversion::Int8AsString
        | Conversion::NumericAsString
        | Conversion::TimestampIso
        | Conversion::String => Ok(Value::String(s.to_owned())),
        Conversion::StringTrimEnd => Ok(Value::String(s.trim_end_matches(' ').to_owned())),
        Conversion::NumericAsNumber => numeric_as_number(s),
        Conversion::NumericAsCents => numeric_as_cents(s),
        Conversion::NumericAsInt64 => numeric_as_int64(s),
        Conversion::Enum { labels } => {
            if !labels.iter().any(|l| l == s) {
                return fail(format!("`{s}` is not one of the enum's labels"));
            }
            Ok(Value::String(s.to_owned()))
        }
        Conversion::TimestampMs { offset_seconds } => timestamp_ms(s, *offset_seconds),
        Conversion::DateString => {
            let (year, _, _) = parse_date(s)?;
            if !(0..=9999).contains(&year) {
                return fail(format!(
                    "date {s} is outside years 0000-9999, which JavaScript's Date cannot \
                     read back from a plain string; use policy `ms`"
                ));
            }
            Ok(Value::String(s.to_owned()))
        }
        Conversion::DateMs => {
            let (year, month, day) = parse_date(s)?;
            let ms = i128::from(calendar::days_from_civil(year, i64::from(month), i64::from(day)))
                * 86_400_000;
            if ms.abs() > MAX_DATE_MS {
                // JavaScript reads a larger number as Invalid Date (and beyond 2^53 a double
                // does not even hold the day).
                return fail(format!(
                    "date {s} is outside JavaScript's Date range (years -271821 to 275760), so \
                     policy `ms` cannot carry it, and policy `string` holds years 0000-9999; \
                     leave such rows out with a filter on this column, or replace the value in \
                     PostgreSQL"
                ));
            }
            // Within ±2^53: exact as a double.
            Ok(Value::Float64(ms as f64))
        }
        Conversion::Bytes => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Value::Bytes)
            .or_else(|e| fail(format!("bytea is not valid base64 ({e})"))),
        other => fail(format!("expected {}, found a string", expected(other))),
    }
}

fn array(element: &Conversion, items: Vec<Raw>) -> Result<Value, ConvertError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let converted = match (item, element) {
            (Raw::Null, _) => Ok(Value::Null),
            (Raw::Array(_), element) if !matches!(element, Conversion::Json { .. }) => {
                fail("a multi-dimensional array; Convex schemas here hold one dimension")
            }
            (item, element) => convert(element, item),
        };
        out.push(converted.map_err(|e| prefix(e, &format!("[{i}]")))?);
    }
    Ok(Value::Array(out))
}

fn prefix(mut error: ConvertError, segment: &str) -> ConvertError {
    error.path.insert_str(0, segment);
    error
}

fn kind(raw: &Raw) -> &'static str {
    match raw {
        Raw::Null => "null",
        Raw::Bool(_) => "a boolean",
        Raw::Number(_) => "a number",
        Raw::String(_) => "a string",
        Raw::Array(_) => "an array",
        Raw::Object(_) => "an object",
    }
}

fn float64(raw: &Raw) -> Result<Value, ConvertError> {
    match raw {
        Raw::Number(n) => exact_f64(n.as_str()).map(Value::Float64),
        Raw::String(s) => match s.as_str() {
            "NaN" => Ok(Value::Float64(f64::NAN)),
            "Infinity" => Ok(Value::Float64(f64::INFINITY)),
            "-Infinity" => Ok(Value::Float64(f64::NEG_INFINITY)),
            other => fail(format!("expected a number, found the string `{other}`")),
        },
        other => fail(format!("expected a number, found {}", kind(other))),
    }
}

fn int8(digits: &str) -> Result<i64, ConvertError> {
    digits.parse().or_else(|_| fail(format!("`{digits}` is not a bigint")))
}

/// A decimal that reads back identically from the nearest double, as a double.
pub(super) fn exact_f64(decimal: &str) -> Result<f64, ConvertError> {
    // Whole numbers of up to 15 digits (json counts and ids) are exact as they are.
    let digits = decimal.strip_prefix('-').unwrap_or(decimal);
    if (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(whole) = decimal.parse::<i64>()
        && (whole != 0 || !decimal.starts_with('-'))
    {
        return Ok(whole as f64);
    }
    let value: f64 = decimal.parse().or_else(|_| fail(format!("`{decimal}` is not a number")))?;
    // A plain decimal of at most 15 significant digits always reads back from the nearest
    // double (a double holds 15.95 decimal digits): no need to spell it out again.
    if value.is_finite() && plain_short_decimal(decimal) {
        return Ok(value);
    }
    let same = value.is_finite()
        && canonical_decimal(decimal) == canonical_decimal(ryu::Buffer::new().format_finite(value));
    if same {
        Ok(value)
    } else {
        fail(format!(
            "{decimal} cannot be a Convex number without losing digits; use policy `string`"
        ))
    }
}

/// `-?digits(.digits)?` with at most 15 digits in all, and no exponent.
fn plain_short_decimal(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut digits = 0;
    let mut points = 0;
    for byte in body.bytes() {
        match byte {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return false,
        }
    }
    digits > 0 && digits <= 15 && points <= 1
}

/// A decimal's value as (negative, significant digits, exponent of the last digit), so that
/// `1.50`, `1.5` and `15e-1` compare equal. `None` for text that is not a plain decimal.
fn canonical_decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !integer.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{integer}{fraction}");
    let trimmed_end = digits.trim_end_matches('0');
    let significant = trimmed_end.trim_start_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    // Checked: the exponent may be anywhere in i64 (`1.5e-9223372036854775808`).
    let exponent = exponent
        .checked_sub(fraction.len() as i64)?
        .checked_add((digits.len() - trimmed_end.len()) as i64)?;
    Some((negative, significant.to_owned(), exponent))
}

fn special_numeric(decimal: &str) -> Option<f64> {
    match decimal {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn numeric_as_number(decimal: &str) -> Result<Value, ConvertError> {
    match special_numeric(decimal) {
        Some(special) => Ok(Value::Float64(special)),
        // numeric has no negative zero: `-0.000` is zero.
        None => exact_f64(decimal).map(|f| Value::Float64(if f == 0.0 { 0.0 } else { f })),
    }
}

/// Splits a plain decimal into sign, integer digits and fraction digits.
fn split_decimal(decimal: &str) -> Option<(bool, &str, &str)> {
    let (negative, rest) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (integer, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!integer.is_empty() && digits(integer) && digits(fraction))
        .then_some((negative, integer, fraction))
}

fn numeric_as_cents(decimal: &str) -> Result<Value, ConvertError> {
    let Some((negative, integer, fraction)) = split_decimal(decimal) else {
        return fail(format!("numeric {decimal} has no value in cents"));
    };
    let (cents, rest) = fraction.split_at(fraction.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return fail(format!(
            "numeric {decimal} has fractions of a cent; use policy `string` or `number`"
        ));
    }
    let amount: i128 = format!("{integer}{cents:0<2}").parse().unwrap_or(i128::MAX);
    if amount > MAX_SAFE_INTEGER {
        return fail(format!("numeric {decimal} in cents is beyond ±2^53; use policy `string`"));
    }
    let amount = if negative { -amount } else { amount };
    Ok(Value::Float64(amount as f64))
}

fn numeric_as_int64(decimal: &str) -> Result<Value, ConvertError> {
    let whole = split_decimal(decimal)
        .filter(|(_, _, fraction)| fraction.bytes().all(|b| b == b'0'))
        .and_then(|(negative, integer, _)| {
            let value: i128 = integer.parse().ok()?;
            i64::try_from(if negative { -value } else { value }).ok()
        });
    match whole {
        Some(value) => Ok(Value::Int64(value)),
        None => {
            fail(format!("numeric {decimal} is not an integer within int64; use policy `string`"))
        }
    }
}

/// `YYYY-MM-DD` with the raw form's year rules (`-0001`, `+10000`).
fn parse_date(date: &str) -> Result<(i64, u32, u32), ConvertError> {
    if is_infinity(date) {
        return fail(format!(
            "date {date} has no Convex form under either date policy (`string` and `ms` need a \
             real day); leave such rows out with a filter on this column (`not_equals = \
             \"{date}\"`), or replace the value in PostgreSQL"
        ));
    }
    let invalid =
        || ConvertError { path: String::new(), reason: format!("`{date}` is not a date") };
    let (year_text, rest) = date
        .get(1..)
        .and_then(|t| t.find('-').map(|i| date.split_at(i + 1)))
        .ok_or_else(invalid)?;
    let year: i64 = year_text.trim_start_matches('+').parse().map_err(|_| invalid())?;
    let mut parts = rest.trim_start_matches('-').splitn(2, '-');
    let month: u32 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(invalid)?;
    let day: u32 =
        parts.next().and_then(|d| d.get(..2)).and_then(|d| d.parse().ok()).ok_or_else(invalid)?;
    // Postgres' dates end in 5874897 AD: a bound that keeps the millisecond arithmetic within
    // i64, and a date must exist (the calendar gives it back unchanged).
    if year.abs() > MAX_YEAR
        || calendar::civil_from_days(calendar::days_from_civil(
            year,
            i64::from(month),
            i64::from(day),
        )) != (year, i64::from(month), i64::from(day))
    {
        return Err(invalid());
    }
    Ok((year, month, day))
}

fn is_infinity(value: &str) -> bool {
    value == "infinity" || value == "-infinity"
}

/// Beyond Postgres' years (4714 BC to 5874897 AD) with room to spare.
const MAX_YEAR: i64 = 10_000_000;

/// JavaScript's `Date` holds ±8.64e15 ms around the epoch (years -271821 to 275760).
pub const MAX_DATE_MS: i128 = 8_640_000_000_000_000;

/// `YYYY-MM-DDTHH:MM:SS.ffffff[Z]` → whole milliseconds since the epoch, as `Date.now()` gives
/// them: the millisecond that contains the instant (rounded down, also before 1970).
/// Sub-millisecond digits are dropped ([`drops_sub_ms`] tells which values lose some); an
/// instant outside JavaScript's `Date` range is an error. Naive values are read at
/// `offset_seconds` east of UTC.
fn timestamp_ms(timestamp: &str, offset_seconds: i32) -> Result<Value, ConvertError> {
    if is_infinity(timestamp) {
        return fail(format!(
            "{timestamp} is no number of milliseconds; use policy `iso`, which keeps it as the \
             string \"{timestamp}\""
        ));
    }
    let micros = match usual_timestamp_micros(timestamp, offset_seconds) {
        Some(micros) => micros,
        None => any_timestamp_micros(timestamp, offset_seconds)?,
    };
    floor_ms(timestamp, micros).map(Value::Float64)
}

/// The millisecond that contains `micros`, when JavaScript's `Date` can hold it.
fn floor_ms(timestamp: &str, micros: i128) -> Result<f64, ConvertError> {
    let ms = micros.div_euclid(1000);
    if ms.abs() > MAX_DATE_MS {
        return fail(format!(
            "timestamp {timestamp} is outside JavaScript's Date range (±8.64e15 ms around 1970, \
             years -271821 to 275760), so policy `ms` cannot carry it; use policy `iso`, which \
             keeps it exactly as a string"
        ));
    }
    // Within ±2^53: exact as a double.
    Ok(ms as f64)
}

/// Whether policy `ms` drops digits of this raw timestamp (JSON text, or its contents):
/// microseconds that are not a multiple of 1000.
pub fn drops_sub_ms(text: &str) -> bool {
    let bytes = text.trim_end_matches('"').trim_end_matches('Z').as_bytes();
    match memchr::memrchr(b'.', bytes) {
        Some(point) => bytes.get(point + 4..).is_some_and(|rest| rest.iter().any(|&b| b != b'0')),
        None => false,
    }
}

/// How many values of a raw timestamp (or timestamp array) JSON text lose sub-millisecond
/// digits under policy `ms`.
pub fn sub_ms_dropped(text: &str, array: bool) -> u64 {
    if !array {
        return u64::from(drops_sub_ms(text));
    }
    // Raw timestamps are strings without escapes: every other piece between quotes is one.
    text.split('"').skip(1).step_by(2).map(|item| u64::from(drops_sub_ms(item))).sum()
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f…][Z]` with a four-digit year and
/// one to six fraction digits, which is how the export spells nearly every timestamp: the
/// same result as [`any_timestamp_micros`] without its searches. `None` for anything else.
fn usual_timestamp_micros(timestamp: &str, offset_seconds: i32) -> Option<i128> {
    let (text, offset) = match timestamp.as_bytes().strip_suffix(b"Z") {
        Some(text) => (text, 0),
        None => (timestamp.as_bytes(), i64::from(offset_seconds)),
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 19 || separators.iter().any(|&(at, byte)| text[at] != byte) {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0i64, |n, &d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (number(&text[0..4])?, number(&text[5..7])?, number(&text[8..10])?);
    let (hours, minutes, seconds) =
        (number(&text[11..13])?, number(&text[14..16])?, number(&text[17..19])?);
    let micros = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            number(fraction)? * 10i64.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=calendar::days_in_month(year, month)).contains(&day) {
        return None;
    }
    let seconds = calendar::days_from_civil(year, month, day) * 86_400
        + hours * 3600
        + minutes * 60
        + seconds
        - offset;
    Some(i128::from(seconds) * 1_000_000 + i128::from(micros))
}

/// Microseconds since the epoch for every timestamp spelling the raw form allows.
fn any_timestamp_micros(timestamp: &str, offset_seconds: i32) -> Result<i128, ConvertError> {
    let (year, month, day) = parse_date(timestamp)?;
    let invalid = || ConvertError {
        path: String::new(),
        reason: format!("`{timestamp}` is not a timestamp"),
    };
    let time = timestamp.split_once('T').map(|(_, t)| t).ok_or_else(invalid)?;
    let (time, offset) = match time.strip_suffix('Z') {
        Some(time) => (time, 0),
        None => (time, i64::from(offset_seconds)),
    };
    let field = |range: std::ops::Range<usize>| time.get(range).and_then(|s| s.parse::<i64>().ok());
    let (hours, minutes, seconds) = (
        field(0..2).ok_or_else(invalid)?,
        field(3..5).ok_or_else(invalid)?,
        field(6..8).ok_or_else(invalid)?,
    );
    let micros = match time.get(9..) {
        Some(fraction) if !fraction.is_empty() => format!("{fraction:0<6}")
            .get(..6)
            .and_then(|f| f.parse::<i64>().ok())
            .ok_or_else(invalid)?,
        _ => 0,
    };
    let seconds = calendar::days_from_civil(year, i64::from(month), i64::from(day)) * 86_400
        + hours * 3600
        + minutes * 60
        + seconds
        - offset;
    Ok(i128::from(seconds) * 1_000_000 + i128::from(micros))
}

/// A value found inside a json column, held to the field's declared `type`.
fn json_scalar(ty: JsonScalar, raw: Raw) -> Result<Value, ConvertError> {
    match (ty, raw) {
        (JsonScalar::String, Raw::String(s)) => Ok(Value::String(s)),
        (JsonScalar::Boolean, Raw::Bool(b)) => Ok(Value::Boolean(b)),
        (JsonScalar::Number, Raw::Number(n)) => {
            exact_f64(n.as_str()).map(Value::Float64).or_else(|_| {
                fail(format!(
                    "json number {n} cannot be a Convex number without losing digits; declare \
                     the field `type = \"any\"` and keep the column (its `policy = \"string\"` \
                     keeps every digit)"
                ))
            })
        }
        (ty, other) => {
            let (name, word) = match ty {
                JsonScalar::String => ("a string", "string"),
                JsonScalar::Number => ("a number", "number"),
                JsonScalar::Boolean => ("a boolean", "boolean"),
            };
            fail(format!(
                "expected {name} (the field's `type = \"{word}\"`), found {}; declare \
                 `type = \"any\"` to take any JSON value",
                kind(&other)
            ))
        }
    }
}

/// The raw JSON text of the value at `path` (object keys, outermost first) inside `text`, a
/// raw json value (docs/raw-format.md, whose wrapper `{"$json": …}` is unwrapped first), in
/// the raw form again: an object whose only key is `$json` comes back wrapped, so that
/// converting it unwraps exactly that. `None` when a key is missing, a value on the way is not
/// an object, or the value there is JSON null: the field is absent, as for SQL NULL. A key that
/// appears twice in an object on the way (`json` keeps both) is an error: which one is meant
/// cannot be told.
pub fn json_at_path<'t>(
    text: &'t str,
    path: &[String],
) -> Result<Option<std::borrow::Cow<'t, str>>, ConvertError> {
    let mut current = text.trim();
    let mut entries = object_entries(current)?;
    if let Some([(key, inner)]) = entries.as_deref()
        && key == "$json"
    {
        current = inner.get();
        entries = object_entries(current)?;
    }
    for (depth, key) in path.iter().enumerate() {
        let Some(object) = entries else { return Ok(None) };
        let mut found = object.iter().filter(|(k, _)| k == key);
        current = match (found.next(), found.next()) {
            (None, _) => return Ok(None),
            (Some((_, value)), None) => value.get(),
            (Some(_), Some(_)) => {
                let within = match depth {
                    0 => "the value".to_owned(),
                    _ => format!("`{}`", path[..depth].join(".")),
                };
                let times = object.iter().filter(|(k, _)| k == key).count();
                return fail(format!(
                    "key `{key}` appears {times} times in {within}: which value the field takes \
                     cannot be told (make the keys unique in the source; `jsonb` keeps only the \
                     last)"
                ));
            }
        };
        entries = object_entries(current)?;
    }
    if current == "null" {
        return Ok(None);
    }
    Ok(Some(match entries.as_deref() {
        Some([(key, _)]) if key == "$json" => format!("{{\"$json\":{current}}}").into(),
        _ => current.into(),
    }))
}

/// The members of the JSON object `text`, in order, repeated keys included; `None` when `text`
/// is another JSON value.
fn object_entries(text: &str) -> Result<Option<Members<'_>>, ConvertError> {
    if !text.starts_with('{') {
        return Ok(None);
    }
    match serde_json::from_str::<Entries<'_>>(text) {
        Ok(Entries(entries)) => Ok(Some(entries)),
        Err(e) => fail(format!("not valid JSON ({e})")),
    }
}

/// An object's members as written: keys borrowed when they have no escapes, values as text.
type Members<'a> = Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>;

struct Entries<'a>(Members<'a>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// An object key, borrowed from the text when it holds no escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(s.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(s.to_owned().into()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Raw json values wrap JSON null and `{"$json": …}` lookalikes as `{"$json": value}`.
fn unwrap_json(raw: Raw) -> Raw {
    match raw {
        Raw::Object(mut object) if object.len() == 1 && object.contains_key("$json") => {
            object.remove("$json").expect("checked above")
        }
        other => other,
    }
}

fn json(raw: Raw, keys: JsonKeyPolicy) -> Result<Value, ConvertError> {
    Ok(match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Boolean(b),
        Raw::Number(n) => Value::Float64(exact_f64(n.as_str()).or_else(|_| {
            fail(format!(
                "json number {n} cannot be a Convex number without losing digits; set \
                 `policy = \"string\"` on this column to keep the whole value as its JSON text"
            ))
        })?),
        Raw::String(s) => Value::String(s),
        Raw::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| json(item, keys).map_err(|e| prefix(e, &format!("[{i}]"))))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Object(object) => {
            let mut out = BTreeMap::new();
            for (key, value) in object {
                let converted = json(value, keys).map_err(|e| prefix(e, &format!(".{key}")))?;
                let name = match (rules::check_object_key(&key), keys) {
                    (Ok(()), _) => key,
                    (Err(rule), JsonKeyPolicy::Reject) => {
                        return Err(prefix(
                            ConvertError { path: String::new(), reason: rule.to_string() },
                            &format!(".{key}"),
                        ));
                    }
                    (Err(_), JsonKeyPolicy::Rename) => {
                        let name = renamed_key(&key);
                        if out.contains_key(&name) {
                            return fail(format!(
                                "key `{key}` renamed to `{name}` clashes with another key of the object"
                            ));
                        }
                        name
                    }
                };
                if let Some(_clash) = out.insert(name.clone(), converted) {
                    return fail(format!("key `{name}` clashes with a renamed key of the object"));
                }
            }
            Value::Object(out)
        }
    })
}

/// A key that appears more than once in one object of a json value (Postgres `json` keeps
/// them all; `jsonb` and Convex keep one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Where the object sits inside the value (`[3]`, `.key`), empty for the value itself.
    pub path: String,
    pub key: String,
    /// How many times the key appears in that object.
    pub times: usize,
}

/// The first repeated key of an object inside `text`, the raw JSON text of a value of
/// `conversion`; `None` when the conversion holds no json or no key repeats. The general path
/// parses into `serde_json::Value`, which keeps the last of repeated keys: this pass over the
/// text is what notices that the others would be lost.
pub fn duplicate_json_key(conversion: &Conversion, text: &str) -> Option<DuplicateKey> {
    let holds_json = match conversion {
        Conversion::Json { .. } => true,
        Conversion::Array(element) => matches!(**element, Conversion::Json { .. }),
        _ => false,
    };
    if !holds_json || memchr::memchr(b'{', text.as_bytes()).is_none() {
        return None;
    }
    let found = std::cell::RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let _ = serde::de::DeserializeSeed::deserialize(KeyCheck { found: &found }, &mut deserializer);
    found.into_inner().map(|(mut segments, key, times): (Vec<String>, String, usize)| {
        segments.reverse();
        DuplicateKey { path: segments.concat(), key, times }
    })
}

/// Walks a JSON value without building it, stopping at the first object with a repeated key:
/// `found` then holds the path's segments (innermost first), the key and its count.
#[derive(Clone, Copy)]
struct KeyCheck<'a> {
    found: &'a std::cell::RefCell<Option<(Vec<String>, String, usize)>>,
}

impl KeyCheck<'_> {
    /// Adds the segment of the child that failed to the path, when a repeated key was found.
    fn inside<E>(&self, segment: impl FnOnce() -> String) -> impl FnOnce(E) -> E {
        move |error| {
            if let Some((segments, _, _)) = self.found.borrow_mut().as_mut() {
                segments.push(segment());
            }
            error
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyCheck<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyCheck<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(KeyCheck { found: self.found })
            .map_err(self.inside(|| format!("[{index}]")))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    /// With `arbitrary_precision`, a number arrives here too, as a map of one key.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(KeyCheck { found: self.found })
                .map_err(self.inside(|| format!(".{key}")))?;
            keys.push(key);
        }
        keys.sort_unstable();
        let Some(at) = keys.windows(2).position(|pair| pair[0] == pair[1]) else {
            return Ok(());
        };
        let times = keys[at..].iter().take_while(|k| **k == keys[at]).count();
        *self.found.borrow_mut() = Some((Vec::new(), keys.swap_remove(at), times));
        Err(serde::de::Error::custom("a repeated key"))
    }
}

/// docs/plan-format.md: a leading `$` becomes `_`, every character outside printable ASCII
/// becomes `_`, an empty key becomes `_`.
fn renamed_key(key: &str) -> String {
    let mut out: String =
        key.chars().map(|c| if (' '..='~').contains(&c) { c } else { '_' }).collect();
    if out.starts_with('$') {
        out.replace_range(..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The string form of a raw value given as JSON text, for legacy ids: a string's contents,
/// a number's or boolean's JSON text.
pub fn string_form(text: &str) -> String {
    match plain_string(text) {
        Some(s) => s.to_owned(),
        None if text.starts_with('"') => {
            serde_json::from_str(text).unwrap_or_else(|_| text.to_owned())
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(conversion: Conversion, raw: Raw) -> Value {
        let shown = raw.to_string();
        convert(&conversion, raw).unwrap_or_else(|e| panic!("{shown}: {e:?}"))
    }

    fn err(conversion: Conversion, raw: Raw) -> String {
        let e = convert(&conversion, raw).expect_err("should be rejected");
        if e.path.is_empty() { e.reason } else { format!("{}: {}", e.path, e.reason) }
    }

    #[test]
    fn bigint_policies() {
        assert_eq!(
            ok(Conversion::Int8AsNumber, json!("9007199254740992")),
            Value::Float64(9007199254740992.0)
        );
        assert_eq!(ok(Conversion::Int8AsNumber, json!("-42")), Value::Float64(-42.0));
        assert!(err(Conversion::Int8AsNumber, json!("9007199254740993")).contains("beyond ±2^53"));
        assert_eq!(
            ok(Conversion::Int8AsInt64, json!("-9223372036854775808")),
            Value::Int64(i64::MIN)
        );
        assert_eq!(
            ok(Conversion::Int8AsString, json!("9223372036854775807")),
            Value::String("9223372036854775807".into())
        );
        assert!(err(Conversion::Int8AsInt64, json!("12x")).contains("not a bigint"));
    }

    #[test]
    fn numeric_policies() {
        assert_eq!(ok(Conversion::NumericAsNumber, json!("1.500")), Value::Float64(1.5));
        assert_eq!(ok(Conversion::NumericAsNumber, json!("0.1")), Value::Float64(0.1));
        assert_eq!(ok(Conversion::NumericAsNumber, json!("-0.000")), Value::Float64(0.0));
        let nan = ok(Conversion::NumericAsNumber, json!("NaN"));
        assert!(matches!(nan, Value::Float64(f) if f.is_nan()));
        assert!(
            err(Conversion::NumericAsNumber, json!("123456789012345678901234567890"))
                .contains("without losing digits")
        );
        assert!(
            err(Conversion::NumericAsNumber, json!("0.1000000000000000000001"))
                .contains("use policy `string`")
        );
        assert_eq!(ok(Conversion::NumericAsCents, json!("12.34")), Value::Float64(1234.0));
        assert_eq!(ok(Conversion::NumericAsCents, json!("-0.5")), Value::Float64(-50.0));
        assert_eq!(ok(Conversion::NumericAsCents, json!("7.000")), Value::Float64(700.0));
        assert!(err(Conversion::NumericAsCents, json!("0.125")).contains("fractions of a cent"));
        assert!(err(Conversion::NumericAsCents, json!("NaN")).contains("no value in cents"));
        assert_eq!(ok(Conversion::NumericAsInt64, json!("42.00")), Value::Int64(42));
        assert!(err(Conversion::NumericAsInt64, json!("42.5")).contains("not an integer"));
        assert!(
            err(Conversion::NumericAsInt64, json!("99999999999999999999")).contains("within int64")
        );
        assert_eq!(ok(Conversion::NumericAsString, json!("1.50")), Value::String("1.50".into()));
    }

    #[test]
    fn floats_and_their_specials() {
        assert_eq!(ok(Conversion::Float64, json!(0.1)), Value::Float64(0.1));
        assert_eq!(ok(Conversion::Float64, json!(-32768)), Value::Float64(-32768.0));
        assert!(
            matches!(ok(Conversion::Float64, json!("-Infinity")), Value::Float64(f) if f == f64::NEG_INFINITY)
        );
        assert!(
            matches!(ok(Conversion::Float64, json!(-0.0)), Value::Float64(f) if f == 0.0 && f.is_sign_negative())
        );
    }

    #[test]
    fn timestamps_become_milliseconds() {
        let ms =
            |raw: &str, offset| ok(Conversion::TimestampMs { offset_seconds: offset }, json!(raw));
        assert_eq!(ms("1970-01-01T00:00:00.000000Z", 0), Value::Float64(0.0));
        assert_eq!(ms("2024-02-29T12:00:00.123000Z", 0), Value::Float64(1_709_208_000_123.0));
        // whole milliseconds, as `Date.now()` gives them: the millisecond containing the instant
        assert_eq!(ms("2024-02-29T12:00:00.123456Z", 0), Value::Float64(1_709_208_000_123.0));
        assert_eq!(ms("1969-12-31T23:59:59.999000Z", 0), Value::Float64(-1.0));
        assert_eq!(ms("1969-12-31T23:59:59.999500Z", 0), Value::Float64(-1.0));
        assert_eq!(ms("1969-12-31T23:59:59.999999Z", 0), Value::Float64(-1.0));
        assert_eq!(ms("3000-01-01T00:00:00.000003Z", 0), Value::Float64(32_503_680_000_000.0));
        // the edges of JavaScript's Date: ±8.64e15 ms
        assert_eq!(ms("+275760-09-13T00:00:00.000000Z", 0), Value::Float64(8.64e15));
        assert_eq!(ms("-271821-04-20T00:00:00.000000Z", 0), Value::Float64(-8.64e15));
        let beyond = err(
            Conversion::TimestampMs { offset_seconds: 0 },
            json!("+275760-09-13T00:00:00.001000Z"),
        );
        assert!(
            beyond.contains("outside JavaScript's Date range") && beyond.contains("`iso`"),
            "{beyond}"
        );
        assert!(
            err(
                Conversion::TimestampMs { offset_seconds: 0 },
                json!("+294276-12-31T00:00:00.000000Z")
            )
            .contains("outside JavaScript's Date range")
        );
        assert!(drops_sub_ms(r#""2024-02-29T12:00:00.123456Z""#));
        assert!(drops_sub_ms("2024-02-29T12:00:00.123001"));
        assert!(!drops_sub_ms(r#""2024-02-29T12:00:00.123000Z""#));
        assert!(!drops_sub_ms(r#""infinity""#));
        assert_eq!(
            sub_ms_dropped(
                r#"["2024-01-01T00:00:00.000001Z",null,"2024-01-01T00:00:00.000000Z"]"#,
                true
            ),
            1
        );
        // naive timestamps read at +02:00 are two hours earlier in UTC
        assert_eq!(ms("1970-01-01T02:00:00.000000", 7200), Value::Float64(0.0));
        assert!(
            err(Conversion::TimestampMs { offset_seconds: 0 }, json!("infinity"))
                .contains("policy `iso`")
        );
        assert_eq!(
            ok(Conversion::TimestampIso, json!("infinity")),
            Value::String("infinity".into())
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            ok(Conversion::DateString, json!("2024-02-29")),
            Value::String("2024-02-29".into())
        );
        assert_eq!(ok(Conversion::DateMs, json!("1970-01-02")), Value::Float64(86_400_000.0));
        assert_eq!(
            ok(Conversion::DateMs, json!("-0001-12-31")),
            Value::Float64((calendar::days_from_civil(-1, 12, 31) * 86_400_000) as f64)
        );
        assert!(err(Conversion::DateString, json!("-0044-03-15")).contains("policy `ms`"));
        // The last day JavaScript's Date holds, and the first it does not.
        assert_eq!(ok(Conversion::DateMs, json!("+275760-09-13")), Value::Float64(8.64e15));
        for beyond in ["+275760-09-14", "+5874897-12-31"] {
            assert!(err(Conversion::DateMs, json!(beyond)).contains("JavaScript's Date range"));
        }
        assert!(err(Conversion::DateString, json!("+10000-01-01")).contains("outside years"));
        // No date policy keeps infinity: the reason names none, only what does work.
        for conversion in [Conversion::DateMs, Conversion::DateString] {
            let reason = err(conversion, json!("-infinity"));
            assert!(reason.contains(r#"filter on this column (`not_equals = "-infinity"`)"#));
            assert!(!reason.contains("`iso`"), "{reason}");
        }
    }

    #[test]
    fn json_values_keys_and_wrappers() {
        let keys = JsonKeyPolicy::Rename;
        let value =
            ok(Conversion::Json { keys }, json!({"a": [1, 2.5, null], "$ref": "x", "größe": true}));
        let Value::Object(object) = value else { panic!("object expected") };
        assert_eq!(object.keys().collect::<Vec<_>>(), ["_ref", "a", "gr__e"]);
        assert_eq!(ok(Conversion::Json { keys }, json!({"$json": null})), Value::Null);
        assert_eq!(
            ok(Conversion::Json { keys }, json!({"$json": {"$json": 1}})),
            Value::Object(BTreeMap::from([("_json".to_owned(), Value::Float64(1.0))]))
        );
        assert!(err(Conversion::Json { keys }, json!({"$a": 1, "_a": 2})).contains("clashes"));
        assert_eq!(
            err(Conversion::Json { keys: JsonKeyPolicy::Reject }, json!({"ok": {"$bad": 1}}))
                .split(':')
                .next(),
            Some(".ok.$bad")
        );
        let big: Raw = serde_json::from_str(r#"{"n": 12345678901234567890123}"#).unwrap();
        assert!(err(Conversion::Json { keys }, big).starts_with(".n: "));
    }

    #[test]
    fn repeated_json_keys_are_found_with_their_path() {
        let json = Conversion::Json { keys: JsonKeyPolicy::Rename };
        let found = |conversion: &Conversion, text: &str| {
            duplicate_json_key(conversion, text).map(|d| (d.path, d.key, d.times))
        };
        assert_eq!(found(&json, r#"{"dup":1,"dup":2}"#), Some(("".into(), "dup".into(), 2)));
        assert_eq!(
            found(&json, r#"{"a":[0,{"k":1,"x":2,"k":[],"k":3}]}"#),
            Some((".a[1]".into(), "k".into(), 3))
        );
        // Escapes are decoded before keys are compared.
        assert_eq!(found(&json, r#"{"a":1,"\u0061":2}"#), Some(("".into(), "a".into(), 2)));
        let jsons = Conversion::Array(Box::new(json.clone()));
        assert_eq!(
            found(&jsons, r#"[{"a":1},{"b":1,"b":1}]"#),
            Some(("[1]".into(), "b".into(), 2))
        );
        for unique in [r#"{"a":{"a":1},"b":12345678901234567890123}"#, "[1,2]", r#""{}""#] {
            assert_eq!(found(&json, unique), None, "{unique}");
        }
        // Only json holds objects.
        assert_eq!(found(&Conversion::String, r#"{"a":1,"a":2}"#), None);
    }

    #[test]
    fn arrays_keep_nulls_and_refuse_more_dimensions() {
        let conversion = Conversion::Array(Box::new(Conversion::Int8AsNumber));
        assert_eq!(
            ok(conversion.clone(), json!(["1", null])),
            Value::Array(vec![Value::Float64(1.0), Value::Null])
        );
        assert_eq!(
            err(conversion.clone(), json!(["1", "9007199254740993"])).split(':').next(),
            Some("[1]")
        );
        assert!(err(conversion, json!([["1"], ["2"]])).contains("multi-dimensional"));
        let jsons = Conversion::Array(Box::new(Conversion::Json { keys: JsonKeyPolicy::Rename }));
        assert_eq!(
            ok(jsons, json!([[1], {"$json": null}])),
            Value::Array(vec![Value::Array(vec![Value::Float64(1.0)]), Value::Null])
        );
    }

    #[test]
    fn bytes_enums_strings_and_legacy_forms() {
        assert_eq!(ok(Conversion::Bytes, json!("AP8=")), Value::Bytes(vec![0, 255]));
        assert!(
            err(Conversion::Enum { labels: vec!["a".into()] }, json!("b")).contains("not one of")
        );
        assert_eq!(ok(Conversion::String, json!("10.0.0.1")), Value::String("10.0.0.1".into()));
        assert_eq!(string_form("42"), "42");
        assert_eq!(string_form(r#""42""#), "42");
        assert_eq!(string_form(r#""a\"b""#), "a\"b");
        assert_eq!(convert_text(&Conversion::Int8AsNumber, r#""-42""#), Ok(Value::Float64(-42.0)));
        assert_eq!(
            convert_text(&Conversion::String, r#""tab\there""#),
            Ok(Value::String("tab\there".into()))
        );
        assert_eq!(convert_text(&Conversion::Boolean, "true"), Ok(Value::Boolean(true)));
        assert!(convert_text(&Conversion::Boolean, r#""yes""#).is_err());
        assert_eq!(convert_text(&Conversion::Float64, "0.5"), Ok(Value::Float64(0.5)));
    }

    #[test]
    fn char_padding_is_trimmed_at_the_end_only() {
        let trim = Conversion::StringTrimEnd;
        assert_eq!(
            ok(trim.clone(), json!("English             ")),
            Value::String("English".into())
        );
        assert_eq!(ok(trim.clone(), json!("  a b  ")), Value::String("  a b".into()));
        // Only spaces pad: a tab or a no-break space is part of the value.
        assert_eq!(ok(trim.clone(), json!("a\t\u{a0} ")), Value::String("a\t\u{a0}".into()));
        assert_eq!(ok(trim.clone(), json!("    ")), Value::String(String::new()));
        assert_eq!(convert_text(&trim, r#""x\" ""#), Ok(Value::String("x\"".into())));
        let array = Conversion::Array(Box::new(trim));
        assert_eq!(
            ok(array, json!(["ab  ", null])),
            Value::Array(vec![Value::String("ab".into()), Value::Null])
        );
    }

    fn at(text: &str, path: &[&str]) -> Result<Option<String>, String> {
        let path: Vec<String> = path.iter().map(|k| (*k).to_owned()).collect();
        json_at_path(text, &path).map(|found| found.map(|t| t.into_owned())).map_err(|e| e.reason)
    }

    #[test]
    fn a_value_inside_json_is_found_by_its_keys() {
        let meta = r#"{"full_name":"Ada Lovelace","address":{"city":"London","zip":null},"n":1.5}"#;
        assert_eq!(at(meta, &["full_name"]), Ok(Some(r#""Ada Lovelace""#.into())));
        assert_eq!(at(meta, &["address", "city"]), Ok(Some(r#""London""#.into())));
        assert_eq!(at(meta, &["address"]), Ok(Some(r#"{"city":"London","zip":null}"#.into())));
        assert_eq!(at(meta, &["n"]), Ok(Some("1.5".into())));
        // Missing, JSON null, and through a value that is no object: absent.
        assert_eq!(at(meta, &["avatar"]), Ok(None));
        assert_eq!(at(meta, &["address", "zip"]), Ok(None));
        assert_eq!(at(meta, &["full_name", "first"]), Ok(None));
        assert_eq!(at("[1,2]", &["0"]), Ok(None));
        assert_eq!(at("null", &["a"]), Ok(None));
        // An escaped key is the key it spells.
        assert_eq!(at(r#"{"na\u006de":"x"}"#, &["name"]), Ok(Some(r#""x""#.into())));
        // The raw form's wrapper: JSON null, and an object whose only key is `$json`.
        assert_eq!(at(r#"{"$json":null}"#, &["a"]), Ok(None));
        assert_eq!(at(r#"{"$json":{"$json":{"a":1}}}"#, &["$json", "a"]), Ok(Some("1".into())));
        // ... which a value found there gets back, so that converting it unwraps only that.
        assert_eq!(at(r#"{"a":{"$json":2}}"#, &["a"]), Ok(Some(r#"{"$json":{"$json":2}}"#.into())));
        let json = Conversion::Json { keys: JsonKeyPolicy::Rename };
        let found = at(r#"{"a":{"$json":2}}"#, &["a"]).unwrap().unwrap();
        let expected = Value::Object(BTreeMap::from([("_json".to_owned(), Value::Float64(2.0))]));
        assert_eq!(convert_text(&json, &found), Ok(expected));
        // A key on the way that `json` holds twice: which one is meant cannot be told.
        let twice = at(r#"{"a":{"b":1,"b":2}}"#, &["a", "b"]).unwrap_err();
        assert!(twice.contains("key `b` appears 2 times in `a`"), "{twice}");
        assert_eq!(at(r#"{"a":1,"a":2,"b":3}"#, &["b"]), Ok(Some("3".into())));
    }

    #[test]
    fn a_value_inside_json_is_held_to_its_declared_type() {
        let string = Conversion::JsonScalar(JsonScalar::String);
        let number = Conversion::JsonScalar(JsonScalar::Number);
        let boolean = Conversion::JsonScalar(JsonScalar::Boolean);
        assert_eq!(convert_text(&string, r#""Ada""#), Ok(Value::String("Ada".into())));
        assert_eq!(convert_text(&number, "2.5"), Ok(Value::Float64(2.5)));
        assert_eq!(convert_text(&boolean, "false"), Ok(Value::Boolean(false)));
        let refused = convert_text(&string, "42").unwrap_err().reason;
        assert!(
            refused.contains("expected a string (the field's `type = \"string\"`), found a number")
        );
        // A string of digits is no number, nor `"NaN"` a float: the JSON type decides.
        assert!(convert_text(&number, r#""42""#).is_err());
        assert!(convert_text(&number, r#""NaN""#).is_err());
        assert!(convert_text(&boolean, r#""true""#).is_err());
        let digits = convert_text(&number, "12345678901234567890123").unwrap_err().reason;
        assert!(digits.contains("without losing digits"), "{digits}");
    }

    #[test]
    fn canonical_decimals_compare_by_value() {
        assert_eq!(canonical_decimal("1.50"), canonical_decimal("15e-1"));
        assert_eq!(canonical_decimal("1e21"), canonical_decimal("1000000000000000000000"));
        assert_eq!(canonical_decimal("-0.0"), canonical_decimal("0"));
        assert_ne!(canonical_decimal("0.1"), canonical_decimal("0.10000000000000001"));
        assert_eq!(canonical_decimal("abc"), None);
    }
}

#[cfg(test)]
mod props;
