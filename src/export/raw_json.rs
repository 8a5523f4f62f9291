//! Postgres binary wire values → the raw JSON form of `docs/raw-format.md`.
//!
//! Every function appends to an output buffer and never rounds: `int8` and `numeric` become
//! strings of digits, timestamps keep microseconds, `infinity` and `NaN` are spelled out, bytea
//! is base64, arrays keep their dimensions and NULL elements, json/jsonb are copied as JSON text.
//! This is the hot path of `export`: no allocation per value.

use base64::Engine;

/// How a column's values arrive in binary COPY. Types not listed here are selected as `::text`
/// and arrive as [`Wire::Text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    /// Written as a JSON string: `"9223372036854775807"`.
    Int8,
    Float4,
    Float8,
    /// Written as a JSON string with every digit: `"3.14"`, `"NaN"`, `"Infinity"`.
    Numeric,
    /// UTF-8 text (text, varchar, char, citext, enum labels, and `::text` casts).
    Text,
    Uuid,
    Json,
    Jsonb,
    /// Written as a base64 string.
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
}

/// A value the binary form does not allow; the caller adds table, row and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(message.into()))
}

/// Appends one non-NULL value (or array, when `array`) as JSON.
pub fn write_value(
    wire: Wire,
    array: bool,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if array { write_array(wire, bytes, out) } else { write_scalar(wire, bytes, out) }
}

fn write_scalar(wire: Wire, b: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    match wire {
        Wire::Bool => {
            out.extend_from_slice(if fixed::<1>(b)?[0] != 0 { b"true" } else { b"false" })
        }
        Wire::Int2 => write_int(out, i16::from_be_bytes(fixed(b)?)),
        Wire::Int4 => write_int(out, i32::from_be_bytes(fixed(b)?)),
        Wire::Int8 => {
            out.push(b'"');
            write_int(out, i64::from_be_bytes(fixed(b)?));
            out.push(b'"');
        }
        Wire::Float4 => write_float(out, f32::from_be_bytes(fixed(b)?)),
        Wire::Float8 => write_float(out, f64::from_be_bytes(fixed(b)?)),
        Wire::Numeric => write_numeric(b, out)?,
        Wire::Text => crate::json_text::write_string(out, utf8(b)?),
        Wire::Uuid => write_uuid(&fixed::<16>(b)?, out),
        Wire::Json => write_json_text(b, out)?,
        Wire::Jsonb => match b.split_first() {
            Some((1, text)) => write_json_text(text, out)?,
            Some((version, _)) => return err(format!("unsupported jsonb version {version}")),
            None => return err("empty jsonb value"),
        },
        Wire::Bytea => {
            out.push(b'"');
            let start = out.len();
            let encoded_len = base64::encoded_len(b.len(), true).unwrap_or(0);
            out.resize(start + encoded_len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .expect("buffer sized by encoded_len");
            out.truncate(start + written);
            out.push(b'"');
        }
        Wire::Date => write_date(i32::from_be_bytes(fixed(b)?), out),
        Wire::Timestamp => write_timestamp(i64::from_be_bytes(fixed(b)?), false, out),
        Wire::Timestamptz => write_timestamp(i64::from_be_bytes(fixed(b)?), true, out),
    }
    Ok(())
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], DecodeError> {
    b.try_into().map_err(|_| DecodeError(format!("expected {N} bytes, got {}", b.len())))
}

fn utf8(b: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(b).map_err(|e| DecodeError(format!("text is not valid UTF-8 ({e})")))
}

fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_float<F: ryu::Float + Into<f64> + Copy>(out: &mut Vec<u8>, value: F) {
    let wide: f64 = value.into();
    if wide.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if wide.is_infinite() {
        out.extend_from_slice(if wide > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

/// `numeric` in binary: ndigits, weight, sign, dscale (all 16-bit), then base-10000 digits.
/// Written the way Postgres prints it: exactly `dscale` decimals.
fn write_numeric(b: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if b.len() < 8 {
        return err("numeric value shorter than its header");
    }
    let ndigits = u16::from_be_bytes([b[0], b[1]]) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as i32;
    if b.len() != 8 + 2 * ndigits {
        return err("numeric value length does not match its digit count");
    }
    let digit = |i: i32| -> u16 {
        if i < 0 || i as usize >= ndigits {
            0
        } else {
            let at = 8 + 2 * i as usize;
            u16::from_be_bytes([b[at], b[at + 1]])
        }
    };
    match sign {
        0x0000 => out.push(b'"'),
        0x4000 => out.extend_from_slice(b"\"-"),
        0xC000 => {
            out.extend_from_slice(b"\"NaN\"");
            return Ok(());
        }
        0xD000 => {
            out.extend_from_slice(b"\"Infinity\"");
            return Ok(());
        }
        0xF000 => {
            out.extend_from_slice(b"\"-Infinity\"");
            return Ok(());
        }
        other => return err(format!("unknown numeric sign 0x{other:04x}")),
    }
    if weight < 0 {
        out.push(b'0');
    } else {
        write_int(out, digit(0));
        for i in 1..=weight {
            write_group(out, digit(i), 4);
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let mut remaining = dscale;
        let mut i = weight + 1;
        while remaining > 0 {
            let take = remaining.min(4);
            write_group(out, digit(i), take as usize);
            remaining -= take;
            i += 1;
        }
    }
    out.push(b'"');
    Ok(())
}

/// Writes the first `take` of the four decimal digits of a base-10000 group.
fn write_group(out: &mut Vec<u8>, group: u16, take: usize) {
    let digits = [
        b'0' + (group / 1000) as u8,
        b'0' + (group / 100 % 10) as u8,
        b'0' + (group / 10 % 10) as u8,
        b'0' + (group % 10) as u8,
    ];
    out.extend_from_slice(&digits[..take]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_uuid(b: &[u8; 16], out: &mut Vec<u8>) {
    out.push(b'"');
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 0xf) as usize]);
    }
    out.push(b'"');
}

/// Copies json/jsonb text, which Postgres has already validated, dropping the whitespace
/// between tokens so a value spanning lines stays on its JSONL line. Keys, strings and number
/// spellings are kept byte for byte (a jsonb number keeps all its digits).
///
/// JSON `null` is written `{"$json":null}` so that it differs from SQL NULL (`null`), and an
/// object whose only key is `$json` is wrapped the same way so the wrapper stays unambiguous:
/// a reader unwraps any object whose only key is `$json`.
fn write_json_text(text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    copy_json_compact(text, out)?;
    if needs_json_wrapper(&out[start..]) {
        let value = out.split_off(start);
        out.extend_from_slice(b"{\"$json\":");
        out.extend_from_slice(&value);
        out.push(b'}');
    }
    Ok(())
}

fn needs_json_wrapper(compact: &[u8]) -> bool {
    if compact == b"null" {
        return true;
    }
    // Only an object that might have `$json` (perhaps spelled with escapes) as its only key
    // needs a real look; that is rare enough to parse.
    let might = compact.first() == Some(&b'{')
        && (contains(compact, b"$json") || contains(compact, b"\\u"));
    might
        && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(compact)
            .is_ok_and(|object| object.len() == 1 && object.contains_key("$json"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn copy_json_compact(text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    utf8(text)?;
    out.reserve(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            if byte == b'"' {
                in_string = true;
            }
            out.push(byte);
        }
    }
    if in_string {
        return err("json text ends inside a string");
    }
    Ok(())
}

/// Days between 1970-01-01 and 2000-01-01, the Postgres epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn write_date(days: i32, out: &mut Vec<u8>) {
    match days {
        i32::MAX => out.extend_from_slice(b"\"infinity\""),
        i32::MIN => out.extend_from_slice(b"\"-infinity\""),
        days => {
            out.push(b'"');
            write_civil_date(days as i64, out);
            out.push(b'"');
        }
    }
}

fn write_timestamp(micros: i64, utc: bool, out: &mut Vec<u8>) {
    match micros {
        i64::MAX => out.extend_from_slice(b"\"infinity\""),
        i64::MIN => out.extend_from_slice(b"\"-infinity\""),
        micros => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            let of_day = micros.rem_euclid(MICROS_PER_DAY);
            out.push(b'"');
            write_civil_date(days, out);
            out.push(b'T');
            let seconds = of_day / 1_000_000;
            write_padded(out, seconds / 3600, 2);
            out.push(b':');
            write_padded(out, seconds / 60 % 60, 2);
            out.push(b':');
            write_padded(out, seconds % 60, 2);
            out.push(b'.');
            write_padded(out, of_day % 1_000_000, 6);
            if utc {
                out.push(b'Z');
            }
            out.push(b'"');
        }
    }
}

/// Writes `YYYY-MM-DD` for a day count from 2000-01-01 (proleptic Gregorian, astronomical
/// years: year 0 is 1 BC, written `0000`; before that `-0001`; after 9999 `+10000`).
fn write_civil_date(pg_days: i64, out: &mut Vec<u8>) {
    let (year, month, day) = crate::calendar::civil_from_days(pg_days + PG_EPOCH_DAYS);
    if year < 0 {
        out.push(b'-');
    } else if year > 9999 {
        out.push(b'+');
    }
    write_padded(out, year.abs(), 4);
    out.push(b'-');
    write_padded(out, month, 2);
    out.push(b'-');
    write_padded(out, day, 2);
}

fn write_padded(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits.as_bytes());
}

/// Binary arrays: ndim, has-null flag, element oid, (length, lower bound) per dimension, then
/// each element as length + bytes (-1 for NULL) in row-major order. Written as nested arrays;
/// lower bounds are not kept (see docs/raw-format.md).
fn write_array(wire: Wire, b: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let mut reader = Reader { bytes: b, at: 0 };
    let ndim = reader.i32()?;
    reader.i32()?; // has-null flag: NULL elements are seen one by one
    reader.i32()?; // element type oid: the catalog already said what the elements are
    if ndim == 0 {
        out.extend_from_slice(b"[]");
        return Ok(());
    }
    if !(1..=6).contains(&ndim) {
        return err(format!("array with {ndim} dimensions"));
    }
    let mut dims = [0usize; 6];
    for dim in dims.iter_mut().take(ndim as usize) {
        let len = reader.i32()?;
        reader.i32()?; // lower bound
        *dim =
            usize::try_from(len).map_err(|_| DecodeError(format!("array dimension of {len}")))?;
    }
    write_dimension(wire, &dims[..ndim as usize], &mut reader, out)?;
    if reader.at != b.len() {
        return err("array has bytes after its last element");
    }
    Ok(())
}

fn write_dimension(
    wire: Wire,
    dims: &[usize],
    reader: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.push(b'[');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(b',');
        }
        if dims.len() > 1 {
            write_dimension(wire, &dims[1..], reader, out)?;
        } else {
            match reader.field()? {
                None => out.extend_from_slice(b"null"),
                Some(element) => write_scalar(wire, element, out)?,
            }
        }
    }
    out.push(b']');
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return err("array value is truncated");
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("took 4 bytes")))
    }

    fn field(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            len if len >= 0 => Ok(Some(self.take(len as usize)?)),
            len => err(format!("element length {len}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(wire: Wire, bytes: &[u8]) -> String {
        let mut out = Vec::new();
        write_value(wire, false, bytes, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn integers_keep_every_digit_and_int8_is_a_string() {
        assert_eq!(json(Wire::Int2, &(-32768i16).to_be_bytes()), "-32768");
        assert_eq!(json(Wire::Int4, &2147483647i32.to_be_bytes()), "2147483647");
        assert_eq!(json(Wire::Int8, &i64::MIN.to_be_bytes()), "\"-9223372036854775808\"");
        assert_eq!(json(Wire::Int8, &i64::MAX.to_be_bytes()), "\"9223372036854775807\"");
    }

    #[test]
    fn floats_round_trip_and_spell_non_finite_values() {
        assert_eq!(json(Wire::Float8, &0.1f64.to_be_bytes()), "0.1");
        assert_eq!(json(Wire::Float4, &0.1f32.to_be_bytes()), "0.1");
        assert_eq!(json(Wire::Float8, &(-0.0f64).to_be_bytes()), "-0.0");
        assert_eq!(json(Wire::Float8, &f64::NAN.to_be_bytes()), "\"NaN\"");
        assert_eq!(json(Wire::Float8, &f64::NEG_INFINITY.to_be_bytes()), "\"-Infinity\"");
        assert_eq!(json(Wire::Float4, &f32::INFINITY.to_be_bytes()), "\"Infinity\"");
    }

    #[test]
    fn numerics_print_like_postgres() {
        // 123.45: weight 0, digits [123, 4500], dscale 2
        assert_eq!(json(Wire::Numeric, &numeric(0, 0, 2, &[123, 4500])), "\"123.45\"");
        // -0.0001: weight -1, digits [1], dscale 4
        assert_eq!(json(Wire::Numeric, &numeric(-1, 0x4000, 4, &[1])), "\"-0.0001\"");
        // 0.00000001: weight -2, digits [1] (1e-8 = 0001 in the second fractional group)
        assert_eq!(json(Wire::Numeric, &numeric(-2, 0, 8, &[1])), "\"0.00000001\"");
        // 10000 with scale 3: weight 1, digits [1]
        assert_eq!(json(Wire::Numeric, &numeric(1, 0, 3, &[1])), "\"10000.000\"");
        assert_eq!(json(Wire::Numeric, &numeric(0, 0, 0, &[])), "\"0\"");
        assert_eq!(json(Wire::Numeric, &numeric(0, 0xC000, 0, &[])), "\"NaN\"");
        assert_eq!(json(Wire::Numeric, &numeric(0, 0xD000, 0, &[])), "\"Infinity\"");
        assert_eq!(json(Wire::Numeric, &numeric(0, 0xF000, 0, &[])), "\"-Infinity\"");
        // 30 significant digits: 123456789012345678901234567890
        let digits = [12, 3456, 7890, 1234, 5678, 9012, 3456, 7890];
        assert_eq!(
            json(Wire::Numeric, &numeric(7, 0, 0, &digits)),
            "\"123456789012345678901234567890\""
        );
        assert!(write_numeric(&[0, 1, 0, 0], &mut Vec::new()).is_err());
    }

    #[test]
    fn strings_are_escaped_for_json() {
        assert_eq!(json(Wire::Text, "a\"b\\c\nd\u{1}é".as_bytes()), r#""a\"b\\c\nd\u0001é""#);
        assert!(write_value(Wire::Text, false, &[0xff, 0xfe], &mut Vec::new()).is_err());
    }

    #[test]
    fn json_text_loses_whitespace_between_tokens_only() {
        let text = b"{\"a b\": [1, 2.50,\n  \"x \\\" y\"], \"n\": 1e400}";
        assert_eq!(json(Wire::Json, text), r#"{"a b":[1,2.50,"x \" y"],"n":1e400}"#);
        let mut jsonb = vec![1u8];
        jsonb.extend_from_slice(b"{\"k\": null}");
        assert_eq!(json(Wire::Jsonb, &jsonb), r#"{"k":null}"#);
    }

    #[test]
    fn json_null_and_lookalikes_of_the_wrapper_are_wrapped() {
        assert_eq!(json(Wire::Json, b" null "), r#"{"$json":null}"#);
        assert_eq!(json(Wire::Json, br#"{"$json": 1}"#), r#"{"$json":{"$json":1}}"#);
        assert_eq!(json(Wire::Json, br#"{"\u0024json": 1}"#), r#"{"$json":{"\u0024json":1}}"#);
        assert_eq!(json(Wire::Json, br#"{"$json": 1, "a": 2}"#), r#"{"$json":1,"a":2}"#);
        assert_eq!(json(Wire::Json, br#"[null]"#), r#"[null]"#);
        assert_eq!(json(Wire::Json, br#""null""#), r#""null""#);
        let mut out = Vec::new();
        let mut element = vec![1u8];
        element.extend_from_slice(b"null");
        write_scalar(Wire::Jsonb, &element, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"$json":null}"#);
    }

    #[test]
    fn uuid_bytea_and_bool() {
        let uuid: [u8; 16] = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0";
        assert_eq!(json(Wire::Uuid, &uuid), "\"12345678-9abc-def0-1234-56789abcdef0\"");
        assert_eq!(json(Wire::Bytea, b"\x00\xffhi"), "\"AP9oaQ==\"");
        assert_eq!(json(Wire::Bytea, b""), "\"\"");
        assert_eq!(json(Wire::Bool, &[1]), "true");
        assert!(write_value(Wire::Bool, false, &[], &mut Vec::new()).is_err());
    }

    #[test]
    fn dates_and_timestamps_keep_microseconds_and_infinity() {
        assert_eq!(json(Wire::Date, &0i32.to_be_bytes()), "\"2000-01-01\"");
        assert_eq!(json(Wire::Date, &(-10957i32).to_be_bytes()), "\"1970-01-01\"");
        assert_eq!(json(Wire::Date, &i32::MAX.to_be_bytes()), "\"infinity\"");
        assert_eq!(json(Wire::Date, &i32::MIN.to_be_bytes()), "\"-infinity\"");
        // 4714-11-24 BC (astronomical -4713), Julian day 0, is the earliest date Postgres accepts.
        assert_eq!(json(Wire::Date, &(-2451545i32).to_be_bytes()), "\"-4713-11-24\"");
        // 2024-02-29 23:59:59.999999 UTC
        let micros = (8825i64 * 86_400 + 86_399) * 1_000_000 + 999_999;
        assert_eq!(
            json(Wire::Timestamptz, &micros.to_be_bytes()),
            "\"2024-02-29T23:59:59.999999Z\""
        );
        assert_eq!(json(Wire::Timestamp, &(-1i64).to_be_bytes()), "\"1999-12-31T23:59:59.999999\"");
        assert_eq!(json(Wire::Timestamptz, &i64::MAX.to_be_bytes()), "\"infinity\"");
        assert_eq!(json(Wire::Timestamp, &i64::MIN.to_be_bytes()), "\"-infinity\"");
    }

    fn int4_array(dims: &[(i32, i32)], elements: &[Option<i32>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(dims.len() as i32).to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&23u32.to_be_bytes());
        for (len, lower) in dims {
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&lower.to_be_bytes());
        }
        for element in elements {
            match element {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn arrays_keep_dimensions_and_null_elements() {
        let mut out = Vec::new();
        write_value(Wire::Int4, true, &int4_array(&[(3, 1)], &[Some(1), None, Some(3)]), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "[1,null,3]");
        out.clear();
        let two_by_two = int4_array(&[(2, 1), (2, 1)], &[Some(1), Some(2), None, Some(4)]);
        write_value(Wire::Int4, true, &two_by_two, &mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "[[1,2],[null,4]]");
        out.clear();
        write_value(Wire::Int4, true, &int4_array(&[], &[]), &mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "[]");
        let truncated = &int4_array(&[(3, 1)], &[Some(1), Some(2), Some(3)])[..30];
        assert!(write_value(Wire::Int4, true, truncated, &mut Vec::new()).is_err());
    }
}
