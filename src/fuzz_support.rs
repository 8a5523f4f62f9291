//! What the property targets (`convex::fuzz`, `transform::fuzz`, `import::batches::fuzz` and
//! the raw-line tests in `transform::row`) share: their run configuration, and strategies for
//! inputs that are hard on parsers.

use proptest::prelude::*;

/// A property test's configuration: `cases` cases, each target's default (a few seconds at most
/// in a debug build), unless `PROPTEST_CASES` asks for another count, for a longer run:
/// `PROPTEST_CASES=100000 cargo nextest run --lib fuzz`. Failures are not persisted: a failing
/// case is printed, shrunk, and reproduced from that.
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// JSON number texts as they may appear in a raw line or a document: beyond f64 and i64,
/// signed zeros, exponents at the ends of i64.
pub fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| ryu::Buffer::new().format_finite(f).to_owned()),
        "-?(0|[1-9][0-9]{0,39})(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,22})?",
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "-0.0",
            "0e9223372036854775807",
            "0.0e9223372036854775807",
            "1.5e-9223372036854775808",
            "1e-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999999999999999",
            "9007199254740993",
        ])
        .prop_map(str::to_owned),
    ]
}
