//! Properties of the value conversions, each checked against an independent computation (our own
//! calendar arithmetic, `ryu`, `str::parse::<f64>`), never against the code under test.
//!
//! Every conversion runs twice: through [`convert`] on the parsed raw value and through
//! [`convert_text`] on its JSON text (the path `transform` streams through); both must agree.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value as Raw;

use super::{ConvertError, convert, convert_text};
use crate::convex::Value;
use crate::plan::{Conversion, JsonKeyPolicy};

/// 2^53, written out independently of the module's constant.
const TWO_POW_53: i64 = 1 << 53;

/// Both ways in must give the same answer; returns it.
fn run(conversion: &Conversion, raw: Raw) -> Result<Value, ConvertError> {
    let text = raw.to_string();
    let from_value = convert(conversion, raw);
    let from_text = convert_text(conversion, &text);
    assert_eq!(from_value, from_text, "convert and convert_text disagree on {text}");
    from_value
}

fn text(s: impl Into<String>) -> Raw {
    Raw::String(s.into())
}

fn float_bits(value: &Result<Value, ConvertError>) -> Option<u64> {
    match value {
        Ok(Value::Float64(f)) => Some(f.to_bits()),
        _ => None,
    }
}

/// An i64 from all over the range, but often close to ±2^53 and to zero.
fn bigint() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        (-1_000i64..=1_000, any::<bool>()).prop_map(|(d, negative)| if negative {
            -TWO_POW_53 + d
        } else {
            TWO_POW_53 + d
        }),
        -1_000_000i64..1_000_000,
        Just(i64::MIN),
        Just(i64::MAX),
    ]
}

// ---- calendar arithmetic of our own (not Hinnant's, which convert.rs uses) ----

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of years 1..=9999: whole years since 0001-01-01, then the
/// months of this year, then the day.
fn days_since_epoch(year: i64, month: u32, day: u32) -> i64 {
    const BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let past_years = year - 1;
    let before_year = 365 * past_years + past_years / 4 - past_years / 100 + past_years / 400;
    let leap_day = i64::from(month > 2 && is_leap(year));
    // 0001-01-01 is 719_162 days before 1970-01-01.
    before_year + BEFORE_MONTH[month as usize - 1] + leap_day + i64::from(day) - 1 - 719_162
}

/// The double nearest to `micros / 1000` exactly: its decimal text, parsed (correctly rounded).
/// Policy `ms`: the millisecond that contains the instant, as `Date.now()` counts them.
fn floor_ms(micros: i128) -> f64 {
    micros.div_euclid(1000) as f64
}

#[derive(Debug, Clone)]
struct Instant {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
}

impl Instant {
    /// The raw form without the zone letter: `YYYY-MM-DDTHH:MM:SS.ffffff`.
    fn naive(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// Microseconds since the epoch of this wall-clock time read in UTC.
    fn micros_since_epoch(&self) -> i128 {
        let seconds = days_since_epoch(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second;
        i128::from(seconds) * 1_000_000 + i128::from(self.micros)
    }
}

fn instant() -> impl Strategy<Value = Instant> {
    (1i64..=9999, 1u32..=12, 1u32..=31, 0i64..24, 0i64..60, 0i64..60, 0i64..1_000_000).prop_map(
        |(year, month, day, hour, minute, second, micros)| Instant {
            year,
            month,
            day: day.min(days_in_month(year, month)),
            hour,
            minute,
            second,
            micros,
        },
    )
}

/// A date in the raw form's year rules: `-0001`, `0000`, `+10000`.
fn raw_date(year: i64, month: u32, day: u32) -> String {
    let year = match year {
        ..0 => format!("-{:04}", -year),
        10_000.. => format!("+{year}"),
        _ => format!("{year:04}"),
    };
    format!("{year}-{month:02}-{day:02}")
}

// ---- decimals ----

/// Significant digits and the power of ten of the last one (`12.50` → `("125", -1)`); zero is
/// `("", 0)`. Accepts `-`, a fraction and an `e` exponent.
fn significant(decimal: &str) -> (bool, String, i64) {
    let (negative, rest) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap()),
        None => (rest, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{integer}{fraction}");
    let without_trailing = all.trim_end_matches('0');
    let power = exponent - fraction.len() as i64 + (all.len() - without_trailing.len()) as i64;
    let digits = without_trailing.trim_start_matches('0').to_owned();
    if digits.is_empty() { (false, digits, 0) } else { (negative, digits, power) }
}

/// `digits × 10^power` as a plain decimal (no exponent), as Postgres prints numeric, with
/// `extra_zeros` more fraction digits.
fn plain_decimal(negative: bool, digits: &str, power: i64, extra_zeros: usize) -> String {
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::from(if negative { "-" } else { "" });
    let fraction_len = if power < 0 { (-power) as usize } else { 0 };
    let mut all = digits.to_owned();
    if power > 0 {
        all.push_str(&"0".repeat(power as usize));
    }
    if all.len() <= fraction_len {
        all.insert_str(0, &"0".repeat(fraction_len - all.len() + 1));
    }
    let (integer, fraction) = all.split_at(all.len() - fraction_len);
    out.push_str(integer);
    if fraction_len + extra_zeros > 0 {
        out.push('.');
        out.push_str(fraction);
        out.push_str(&"0".repeat(extra_zeros));
    }
    out
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        (NORMAL | SUBNORMAL | ZERO | POSITIVE | NEGATIVE),
        // integers and short decimals, the common case of money and measures
        (-1_000_000_000i64..1_000_000_000, 0u32..6)
            .prop_map(|(n, scale)| n as f64 / 10f64.powi(scale as i32)),
    ]
    .prop_filter("finite", |f: &f64| f.is_finite())
}

/// `digits` with 17 to 40 significant digits, the first and last non-zero, placed anywhere.
fn long_decimal() -> impl Strategy<Value = String> {
    ("[1-9][0-9]{15,38}[1-9]", -30i64..30, any::<bool>()).prop_map(|(digits, shift, negative)| {
        let power = shift - digits.len() as i64 + 1;
        plain_decimal(negative, &digits, power, 0)
    })
}

// ---- json ----

/// Keys Convex accepts as they are: printable ASCII, not empty, not starting with `$`.
fn valid_key() -> impl Strategy<Value = String> {
    "[ -#%-~][ -~]{0,8}"
}

/// The part after an optional `$`: printable ASCII starting with neither `$` nor `_`, so a
/// renamed `$x` (`_x`) never meets another key of its object.
fn key_suffix() -> impl Strategy<Value = String> {
    "[ -#%-^`-~][ -~]{0,8}"
}

fn json_leaf() -> impl Strategy<Value = Raw> {
    prop_oneof![
        Just(Raw::Null),
        any::<bool>().prop_map(Raw::Bool),
        (-1_000_000i64..1_000_000).prop_map(Raw::from),
        ".{0,12}".prop_map(Raw::String),
    ]
}

/// JSON whose object keys are all valid Convex keys.
fn plain_json() -> impl Strategy<Value = Raw> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Raw::Array),
            btree_map(valid_key(), inner, 0..6).prop_map(|m| Raw::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON where any key may start with `$`.
fn dollar_json() -> impl Strategy<Value = Raw> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Raw::Array),
            btree_map(key_suffix(), (any::<bool>(), inner), 0..6).prop_map(|m| {
                Raw::Object(
                    m.into_iter()
                        .map(|(suffix, (dollar, value))| {
                            (if dollar { format!("${suffix}") } else { suffix }, value)
                        })
                        .collect(),
                )
            }),
        ]
    })
}

/// The Convex value a JSON value should become, keys passed through `key`.
fn expected_json(raw: &Raw, key: &dyn Fn(&str) -> String) -> Value {
    match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Boolean(*b),
        Raw::Number(n) => Value::Float64(n.as_f64().unwrap()),
        Raw::String(s) => Value::String(s.clone()),
        Raw::Array(items) => Value::Array(items.iter().map(|i| expected_json(i, key)).collect()),
        Raw::Object(object) => Value::Object(
            object.iter().map(|(k, v)| (key(k), expected_json(v, key))).collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn has_dollar_key(raw: &Raw) -> bool {
    match raw {
        Raw::Array(items) => items.iter().any(has_dollar_key),
        Raw::Object(object) => object.iter().any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
        _ => false,
    }
}

fn keys_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|i| keys_of(i, out)),
        Value::Object(object) => {
            for (k, v) in object {
                out.push(k.clone());
                keys_of(v, out);
            }
        }
        _ => {}
    }
}

fn is_wrapper_lookalike(raw: &Raw) -> bool {
    matches!(raw, Raw::Object(o) if o.len() == 1 && o.contains_key("$json"))
}

fn wrapped(raw: Raw) -> Raw {
    Raw::Object([("$json".to_owned(), raw)].into_iter().collect())
}

fn json(keys: JsonKeyPolicy) -> Conversion {
    Conversion::Json { keys }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn int8_as_number_takes_exactly_the_safe_integers(value in bigint()) {
        let result = run(&Conversion::Int8AsNumber, text(value.to_string()));
        if (-TWO_POW_53..=TWO_POW_53).contains(&value) {
            let Ok(Value::Float64(f)) = result else {
                panic!("{value} within ±2^53 rejected: {result:?}")
            };
            prop_assert_eq!(f as i64, value);
            prop_assert_eq!(f, value as f64);
        } else {
            let reason = result.expect_err("beyond ±2^53 must be rejected").reason;
            prop_assert!(reason.contains("`int64`") && reason.contains("`string`"), "{}", reason);
        }
    }

    #[test]
    fn int8_as_int64_and_as_string_keep_every_bigint(value in bigint()) {
        prop_assert_eq!(
            run(&Conversion::Int8AsInt64, text(value.to_string())),
            Ok(Value::Int64(value))
        );
        prop_assert_eq!(
            run(&Conversion::Int8AsString, text(value.to_string())),
            Ok(Value::String(value.to_string()))
        );
    }

    #[test]
    fn numeric_as_cents_is_exact_within_the_safe_range(
        cents in prop_oneof![
            -TWO_POW_53..=TWO_POW_53,
            -100_000i64..100_000,
            (0i64..1000).prop_map(|d| TWO_POW_53 - d),
            (0i64..1000).prop_map(|d| d - TWO_POW_53),
        ],
        extra_zeros in 0usize..=3,
    ) {
        let sign = if cents < 0 { "-" } else { "" };
        let magnitude = cents.unsigned_abs();
        let decimal =
            format!("{sign}{}.{:02}{}", magnitude / 100, magnitude % 100, "0".repeat(extra_zeros));
        let result = run(&Conversion::NumericAsCents, text(decimal.clone()));
        prop_assert_eq!(float_bits(&result), Some((cents as f64).to_bits()), "{}: {:?}", decimal, result);
    }

    #[test]
    fn numeric_as_cents_refuses_beyond_the_safe_range(
        over in 1i64..1_000_000_000,
        negative in any::<bool>(),
    ) {
        let magnitude = TWO_POW_53 as u64 + over as u64;
        let sign = if negative { "-" } else { "" };
        let decimal = format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100);
        let result = run(&Conversion::NumericAsCents, text(decimal.clone()));
        let reason = result.expect_err("beyond ±2^53 cents must be rejected").reason;
        prop_assert!(reason.contains("beyond ±2^53"), "{}: {}", decimal, reason);
    }

    #[test]
    fn numeric_as_cents_refuses_fractions_of_a_cent(
        cents in -TWO_POW_53..=TWO_POW_53,
        third in 1u8..=9,
        more in "[0-9]{0,4}",
    ) {
        let sign = if cents < 0 { "-" } else { "" };
        let magnitude = cents.unsigned_abs();
        let decimal = format!("{sign}{}.{:02}{third}{more}", magnitude / 100, magnitude % 100);
        let result = run(&Conversion::NumericAsCents, text(decimal.clone()));
        let reason = result.expect_err("a third decimal must be rejected").reason;
        prop_assert!(reason.contains("fractions of a cent"), "{}: {}", decimal, reason);
    }

    #[test]
    fn numeric_as_number_reads_every_shortest_double_back(value in finite_f64()) {
        let shortest = ryu::Buffer::new().format_finite(value).to_owned();
        // numeric has no negative zero: `-0` is zero
        let expected = if value == 0.0 { 0.0f64 } else { value };
        let result = run(&Conversion::NumericAsNumber, text(shortest.clone()));
        prop_assert_eq!(float_bits(&result), Some(expected.to_bits()), "{}: {:?}", shortest, result);
    }

    #[test]
    fn numeric_as_number_reads_the_plain_numeric_form_of_every_double(
        value in finite_f64(),
        extra_zeros in 0usize..4,
    ) {
        // as Postgres prints numeric: no exponent, trailing zeros up to the scale
        let (negative, digits, power) = significant(ryu::Buffer::new().format_finite(value));
        let decimal = plain_decimal(negative, &digits, power, extra_zeros);
        let expected = if value == 0.0 { 0.0f64 } else { value };
        let result = run(&Conversion::NumericAsNumber, text(decimal.clone()));
        prop_assert_eq!(float_bits(&result), Some(expected.to_bits()), "{}: {:?}", decimal, result);
    }

    #[test]
    fn numeric_as_number_refuses_digits_a_double_cannot_hold(decimal in long_decimal()) {
        let nearest: f64 = decimal.parse().unwrap();
        let shortest = significant(ryu::Buffer::new().format_finite(nearest));
        let given = significant(&decimal);
        prop_assert!(given.1.len() >= 17);
        let result = run(&Conversion::NumericAsNumber, text(decimal.clone()));
        if given == shortest {
            // 17 digits can be the shortest form itself; then it is exact
            prop_assert_eq!(float_bits(&result), Some(nearest.to_bits()), "{}", decimal);
        } else {
            let reason = result.expect_err("digits beyond the double must be rejected").reason;
            prop_assert!(
                reason.contains("without losing digits") && reason.contains("`string`"),
                "{}: {}", decimal, reason
            );
        }
    }

    #[test]
    fn timestamptz_becomes_the_same_instant_in_milliseconds(at in instant()) {
        let raw = format!("{}Z", at.naive());
        let expected = floor_ms(at.micros_since_epoch());
        // and the digits it drops are counted exactly when there are some
        prop_assert_eq!(super::drops_sub_ms(&raw), at.micros % 1000 != 0, "{}", raw);
        for offset_seconds in [0, 3600, -34_200] {
            // a zone-less offset never applies to a UTC instant
            let result = run(&Conversion::TimestampMs { offset_seconds }, text(raw.clone()));
            prop_assert_eq!(
                float_bits(&result), Some(expected.to_bits()),
                "{} (expected {}): {:?}", raw, expected, result
            );
        }
    }

    #[test]
    fn ms_rejects_exactly_the_instants_beyond_javascript_s_date(
        year in 275_000i64..=276_000,
        month in 1u32..=12,
        day in 1u32..=28,
        of_day in 0i64..86_400_000_000,
    ) {
        let (seconds, micros) = (of_day / 1_000_000, of_day % 1_000_000);
        let raw = format!(
            "{}T{:02}:{:02}:{:02}.{micros:06}Z",
            raw_date(year, month, day), seconds / 3600, seconds / 60 % 60, seconds % 60
        );
        let ms = (i128::from(days_since_epoch(year, month, day)) * 86_400_000_000
            + i128::from(of_day))
        .div_euclid(1000);
        let result = run(&Conversion::TimestampMs { offset_seconds: 0 }, text(raw.clone()));
        if ms <= 8_640_000_000_000_000 {
            prop_assert_eq!(float_bits(&result), Some((ms as f64).to_bits()), "{}", raw);
        } else {
            let reason = result.expect_err("beyond JavaScript's Date").reason;
            prop_assert!(reason.contains("outside JavaScript's Date range"), "{}: {}", raw, reason);
        }
    }

    #[test]
    fn the_usual_timestamp_shortcut_agrees_with_the_general_reader(
        timestamp in "[0-9]{4}-(0[1-9]|1[0-2]|[0-9]{2})-(0[1-9]|[12][0-9]|3[01]|[0-9]{2})\
                      T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,7})?Z?",
        offset_seconds in prop_oneof![Just(0), -18 * 3600i32..=18 * 3600],
    ) {
        let general = super::any_timestamp_micros(&timestamp, offset_seconds);
        match super::usual_timestamp_micros(&timestamp, offset_seconds) {
            Some(micros) => prop_assert_eq!(general, Ok(micros), "{}", timestamp),
            // Left to the general reader: an impossible date, or no or over six fraction digits.
            None => {
                let fraction = timestamp.trim_end_matches('Z').split_once('.').map(|(_, f)| f.len());
                prop_assert!(
                    general.is_err() || matches!(fraction, Some(0 | 7..)),
                    "{} was valid and usual: {:?}", timestamp, general
                );
            }
        }
    }

    #[test]
    fn a_naive_timestamp_is_read_at_the_offset(
        at in instant(),
        offset_seconds in -18 * 3600i32..=18 * 3600,
    ) {
        // a wall-clock time `offset_seconds` east of UTC happened that much earlier in UTC
        let raw = at.naive();
        let expected =
            floor_ms(at.micros_since_epoch() - i128::from(offset_seconds) * 1_000_000);
        let result = run(&Conversion::TimestampMs { offset_seconds }, text(raw.clone()));
        prop_assert_eq!(
            float_bits(&result), Some(expected.to_bits()),
            "{} at {}s (expected {}): {:?}", raw, offset_seconds, expected, result
        );
        // at offset 0 it is the UTC instant
        prop_assert_eq!(
            run(&Conversion::TimestampMs { offset_seconds: 0 }, text(raw.clone())),
            run(&Conversion::TimestampMs { offset_seconds: 0 }, text(format!("{raw}Z")))
        );
    }

    #[test]
    fn date_string_takes_years_0000_to_9999_only(
        year in prop_oneof![-20_000i64..=20_000, -2i64..=2, 9_998i64..=10_001],
        month in 1u32..=12,
        day in 1u32..=28,
    ) {
        let date = raw_date(year, month, day);
        let result = run(&Conversion::DateString, text(date.clone()));
        if (0..=9999).contains(&year) {
            prop_assert_eq!(result, Ok(Value::String(date)));
        } else {
            let reason = result.expect_err("a year outside 0000-9999 must be rejected").reason;
            prop_assert!(reason.contains("outside years 0000-9999"), "{}: {}", date, reason);
            prop_assert!(reason.contains("`ms`"), "{}: {}", date, reason);
        }
    }

    #[test]
    fn date_ms_is_midnight_utc(at in instant()) {
        let date = raw_date(at.year, at.month, at.day);
        let expected = (days_since_epoch(at.year, at.month, at.day) * 86_400_000) as f64;
        let result = run(&Conversion::DateMs, text(date.clone()));
        prop_assert_eq!(float_bits(&result), Some(expected.to_bits()), "{}: {:?}", date, result);
    }

    #[test]
    fn json_with_valid_keys_keeps_its_structure(raw in plain_json()) {
        let expected = expected_json(&raw, &str::to_owned);
        for keys in [JsonKeyPolicy::Rename, JsonKeyPolicy::Reject] {
            prop_assert_eq!(run(&json(keys), raw.clone()), Ok(expected.clone()));
            // the raw form's wrapper is taken off
            prop_assert_eq!(run(&json(keys), wrapped(raw.clone())), Ok(expected.clone()));
        }
    }

    #[test]
    fn json_dollar_keys_are_renamed_or_rejected(raw in dollar_json()) {
        prop_assume!(!is_wrapper_lookalike(&raw));
        let rename = |k: &str| match k.strip_prefix('$') {
            Some(rest) => format!("_{rest}"),
            None => k.to_owned(),
        };
        let expected = expected_json(&raw, &rename);

        let renamed = run(&json(JsonKeyPolicy::Rename), raw.clone());
        prop_assert_eq!(renamed.clone(), Ok(expected.clone()));
        let mut keys = Vec::new();
        keys_of(&renamed.unwrap(), &mut keys);
        prop_assert!(keys.iter().all(|k| !k.starts_with('$')), "{:?}", keys);

        // wrapped as the raw form wraps `{"$json": …}` lookalikes, the result is the same
        prop_assert_eq!(run(&json(JsonKeyPolicy::Rename), wrapped(raw.clone())), Ok(expected));

        let rejected = run(&json(JsonKeyPolicy::Reject), raw.clone());
        if has_dollar_key(&raw) {
            let error = rejected.expect_err("a `$` key must be rejected under `reject`");
            prop_assert!(error.path.contains(".$"), "{:?}", error);
        } else {
            prop_assert!(rejected.is_ok(), "{:?}", rejected);
        }
    }

    #[test]
    fn the_raw_json_wrapper_unwraps_exactly_once(raw in dollar_json()) {
        // `{"$json": v}` is v, whatever v is; a lookalike inside it is an ordinary object
        let rename = |k: &str| match k.strip_prefix('$') {
            Some(rest) => format!("_{rest}"),
            None => k.to_owned(),
        };
        let expected = expected_json(&raw, &rename);
        prop_assert_eq!(run(&json(JsonKeyPolicy::Rename), wrapped(raw.clone())), Ok(expected));
        prop_assert_eq!(
            run(&json(JsonKeyPolicy::Rename), wrapped(wrapped(raw.clone()))),
            Ok(Value::Object(BTreeMap::from([(
                "_json".to_owned(),
                expected_json(&raw, &rename)
            )])))
        );
    }
}
