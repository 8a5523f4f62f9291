//! The fast path ([`DirectPlan::write_line`]) held to the general path on the same rows,
//! hostile, well-formed, and well-formed but for one flaw: a line it writes must be the very
//! bytes the general path writes, and when it declines it must leave the output as it was.
//! Well-formed rows must all go direct, and plain tests pin typical rows that go direct and
//! rows that must not.

use super::*;
use crate::transform::keys::{KeyForm, write_canonical_key};

/// What the two paths made of one row.
#[derive(Debug)]
struct BothPaths {
    /// The fast path's line; `None` when it answered `NotDirect` or a filter excluded the row.
    direct: Option<String>,
    /// The general path's outcome.
    general: Outcome,
}

/// Runs `line` through both paths under `plan`, as `transform_block` does: the fast path only
/// on a row that passes the filters, appending to output that already holds a line, with
/// `scratch` as earlier rows left it. Checks the fast path's contract, and says how it was
/// broken: `NotDirect` leaves the output as it was; a line written means the general path makes
/// a document and writes the very same bytes.
fn both_paths(
    plan: &TablePlan,
    shape: &RowShape,
    line: &str,
    parents: &ParentKeys,
    forms: &[Option<Vec<KeyForm>>],
    scratch: &mut Scratch,
) -> Result<BothPaths, String> {
    let row = Row::parse(line.as_bytes(), shape)
        .map_err(|e| format!("a valid line is a row: {e}\n{line}"))?;
    let fast = DirectPlan::compile(
        plan,
        shape,
        &Columns::new(shape, &plan.legacy_id.columns, &plan.fields),
    )
    .ok_or("the plan compiles for the fast path")?;
    let merged = MergedFields::new();
    let objects = Default::default();
    let lookups = Lookups {
        parents: vec![parents],
        forms: forms.to_vec(),
        merged: &merged,
        merged_forms: None,
        objects: &objects,
    };
    let columns = Columns::new(shape, &plan.legacy_id.columns, &plan.fields);
    let general = transform_row(&row, plan, &columns, &lookups);
    if !passes(&row, &plan.filters) {
        return Ok(BothPaths { direct: None, general });
    }
    let previous = b"{\"doc\":{\"legacyId\":\"0\"}}\n".to_vec();
    let mut out = previous.clone();
    let written = fast.write_line(&row, &lookups, scratch, &mut out);
    let shown = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if !out.starts_with(&previous) {
        return Err(format!("the fast path changed earlier output:\n{}for\n{line}", shown(&out)));
    }
    let appended = &out[previous.len()..];
    if written == Err(NotDirect) {
        if !appended.is_empty() {
            return Err(format!("NotDirect left\n{}in the output for\n{line}", shown(appended)));
        }
        return Ok(BothPaths { direct: None, general });
    }
    let Outcome::Document(transformed) = &general else {
        return Err(format!(
            "the fast path wrote\n{}but the general path gives {general:?}\nfor\n{line}",
            shown(appended)
        ));
    };
    let mut expected = Vec::new();
    crate::transform::write_document_line(transformed, plan, &mut expected);
    if appended != expected {
        return Err(format!(
            "the paths differ on\n{line}\nfast:    {}general: {}",
            shown(appended),
            shown(&expected)
        ));
    }
    if written != Ok(crate::transform::unique::id_hash(&transformed.legacy_id)) {
        return Err(format!("the fast path's legacy id hash differs for\n{line}"));
    }
    let direct = String::from_utf8(appended.to_vec()).map_err(|e| format!("not UTF-8: {e}"))?;
    Ok(BothPaths { direct: Some(direct), general })
}

/// The parent table's legacy ids for the fast path's targets: `7`, and ids that look like
/// composite keys (a text legacy id may hold anything).
fn fuzz_parents() -> ParentKeys {
    ParentKeys::from_iter(["7".to_owned(), "[]".to_owned(), r#"["7"]"#.to_owned()])
}

/// [`both_paths`] on a case's row under the fuzz plan.
fn fast_path_agrees(case: &Case, scratch: &mut Scratch) -> Result<BothPaths, TestCaseError> {
    let (line, shape) = case_line(case);
    both_paths(&plan(case), &shape, &line, &fuzz_parents(), &[], scratch)
        .map_err(TestCaseError::fail)
}

// Well-formed raw values: what the fast path is for.

/// Blanks a JSON writer may put between tokens (Postgres' jsonb output puts spaces).
fn blank() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n", " \t\r\n "])
}

/// `s` as a JSON string literal, each character written plainly or, where `escapes` says,
/// as a `\u` escape (`\/` for `/`), as any JSON writer may.
fn spelled(s: &str, escapes: &[bool]) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        match (escapes.get(i).copied().unwrap_or(false), c) {
            (true, '/') => out.push_str("\\/"),
            (true, c) => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            (false, c) => {
                let plain = quoted(&c.to_string());
                out.push_str(&plain[1..plain.len() - 1]);
            }
        }
    }
    out.push('"');
    out
}

/// Strings from `contents` as JSON literals, half of them with some characters escaped.
fn spelled_strings(contents: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let escapes = prop_oneof![Just(Vec::new()), vec(prop::bool::weighted(0.2), 0..24)];
    (contents, escapes).prop_map(|(s, escapes)| spelled(&s, &escapes))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-zA-Z0-9 ,.-]{0,16}",
        2 => any::<String>(),
        1 => prop::sample::select(vec![
            "a\"b\\n", "a\"b\\", "line\nbreak\ttab\r", "\u{0}\u{8}\u{c}\u{1f}\u{7f}",
            "café ☕ 日本 🦀", "\u{2028}\u{2029}\u{feff}", "/", "",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json_string() -> impl Strategy<Value = String> {
    spelled_strings(text())
}

/// JSON numbers a double holds exactly as written.
fn exact_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| ryu::Buffer::new().format_finite(f).to_owned()),
        "-?(0|[1-9][0-9]{0,8})\\.[0-9]{1,6}",
        "-?[1-9](\\.[0-9]{1,5})?[eE][+-]?[0-9]{1,2}",
        prop::sample::select(vec!["0", "-0", "-0.0", "1E5", "9007199254740992", "1e308"])
            .prop_map(str::to_owned),
    ]
}

/// Object keys Convex takes and the fast path reads as written: printable ASCII, not starting
/// with `$`, none of the characters JSON escapes (`"`, `\`).
fn plain_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-c]{1,2}",
        1 => "[ !#%-\\[\\]-~][ !#-\\[\\]-~]{0,8}",
        1 => prop::sample::select(vec!["_id", "a b", "_", "~", "A", "a$", "0"])
            .prop_map(str::to_owned),
    ]
}

fn array_text(items: &[String], blank: &str) -> String {
    format!("[{blank}{}{blank}]", items.join(&format!(",{blank}")))
}

/// A well-formed JSON value as text, nested a few levels, keys as [`plain_key`], each once.
fn plain_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => Just("null".to_owned()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        2 => exact_number(),
        3 => json_string(),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..5), blank())
                .prop_map(|(items, blank)| array_text(&items, blank)),
            (vec((plain_key(), inner), 0..5), blank()).prop_map(|(fields, blank)| {
                let mut seen = HashSet::new();
                let fields: Vec<String> = fields
                    .into_iter()
                    .filter(|(key, _)| seen.insert(key.clone()))
                    .map(|(key, value)| format!("{}:{blank}{value}", quoted(&key)))
                    .collect();
                format!("{{{blank}{}{blank}}}", fields.join(&format!(",{blank}")))
            }),
        ]
    })
}

fn pattern(regex: &str) -> impl Strategy<Value = String> + use<> {
    proptest::string::string_regex(regex).expect("a regex")
}

/// A raw value (JSON text) that `conversion` takes.
fn valid_value(conversion: &Conversion) -> BoxedStrategy<String> {
    const SAFE: i64 = 1 << 53;
    let quote = |s: String| quoted(&s);
    let date = "(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])";
    match conversion {
        Conversion::Boolean => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        Conversion::Float64 => prop_oneof![
            4 => exact_number(),
            1 => prop::sample::select(vec!["\"NaN\"", "\"Infinity\"", "\"-Infinity\""])
                .prop_map(str::to_owned),
        ]
        .boxed(),
        Conversion::Int8AsNumber => prop_oneof![
            (-SAFE..=SAFE).prop_map(|i| quoted(&i.to_string())),
            (-SAFE..=SAFE).prop_map(|i| i.to_string()),
        ]
        .boxed(),
        Conversion::Int8AsInt64 => prop_oneof![
            any::<i64>().prop_map(|i| quoted(&i.to_string())),
            any::<i64>().prop_map(|i| i.to_string()),
        ]
        .boxed(),
        Conversion::Int8AsString => any::<i64>().prop_map(|i| quoted(&i.to_string())).boxed(),
        Conversion::NumericAsNumber => prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,6})?".prop_map(quote),
            1 => any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| quoted(ryu::Buffer::new().format_finite(f))),
            1 => prop::sample::select(vec!["\"NaN\"", "\"Infinity\"", "\"-Infinity\""])
                .prop_map(str::to_owned),
        ]
        .boxed(),
        Conversion::NumericAsString => "-?[0-9]{1,30}(\\.[0-9]{1,20})?".prop_map(quote).boxed(),
        Conversion::NumericAsCents => "-?[0-9]{1,12}(\\.[0-9]{1,2})?".prop_map(quote).boxed(),
        Conversion::NumericAsInt64 => "-?[0-9]{1,18}(\\.0{1,3})?".prop_map(quote).boxed(),
        Conversion::String | Conversion::StringTrimEnd | Conversion::TimestampIso => {
            json_string().boxed()
        }
        Conversion::JsonScalar(JsonScalar::String) => json_string().boxed(),
        Conversion::JsonScalar(JsonScalar::Number) => exact_number().boxed(),
        Conversion::JsonScalar(JsonScalar::Boolean) => {
            any::<bool>().prop_map(|b| b.to_string()).boxed()
        }
        Conversion::Enum { labels } => {
            spelled_strings(prop::sample::select(labels.clone())).boxed()
        }
        Conversion::TimestampMs { .. } => spelled_strings(pattern(&format!(
            "[12][0-9]{{3}}-{date}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,6}})?Z?"
        )))
        .boxed(),
        Conversion::DateString => spelled_strings(pattern(&format!("[0-9]{{4}}-{date}"))).boxed(),
        Conversion::DateMs => {
            // Years JavaScript's Date holds: beyond 275760, policy `ms` rejects the date.
            spelled_strings(pattern(&format!("[+-]?[0-9]{{4,5}}-{date}"))).boxed()
        }
        Conversion::Json { .. } | Conversion::JsonText => plain_json().boxed(),
        Conversion::Bytes => vec(any::<u8>(), 0..32)
            .prop_map(|bytes| quoted(&base64::engine::general_purpose::STANDARD.encode(bytes)))
            .boxed(),
        Conversion::Array(element) => {
            let item = prop_oneof![1 => Just("null".to_owned()), 4 => valid_value(element)];
            (vec(item, 0..6), blank()).prop_map(|(items, blank)| array_text(&items, blank)).boxed()
        }
        // A Convex source's scalars: numbers, strings, tagged int64 and bytes (objects and arrays
        // take the general path, which checks Convex's rules).
        Conversion::Convex(_) => {
            let tagged = |tag: &'static str| {
                move |bytes: Vec<u8>| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    format!("{{\"{tag}\":\"{b64}\"}}")
                }
            };
            prop_oneof![
                exact_number(),
                json_string(),
                any::<i64>().prop_map(|i| i.to_le_bytes().to_vec()).prop_map(tagged("$integer")),
                vec(any::<u8>(), 0..8).prop_map(tagged("$bytes")),
            ]
            .boxed()
        }
    }
}

/// A json column holding a value `conversion` takes at `path` (as [`valid_value`] when the path
/// is empty), among other keys, or no value there at all: the key missing, JSON null, a
/// value on the way that is no object.
fn valid_at(path: &[String], conversion: &Conversion) -> BoxedStrategy<String> {
    let Some((key, rest)) = path.split_first() else { return valid_value(conversion) };
    let inner = valid_at(rest, conversion);
    let (key, wrapped) = (key.clone(), key == "$json");
    let object = (inner, vec((plain_key(), plain_json()), 0..3), any::<bool>(), blank()).prop_map(
        move |(value, others, first, blank)| {
            let mut fields: Vec<String> = others
                .into_iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| format!("{}:{blank}{v}", quoted(&k)))
                .collect();
            let own = format!("{}:{blank}{value}", quoted(&key));
            if first {
                fields.insert(0, own)
            } else {
                fields.push(own)
            }
            let text = format!("{{{}}}", fields.join(","));
            // An object whose only key is `$json` is the raw form's wrapper: wrap it again.
            if wrapped && fields.len() == 1 { format!("{{\"$json\":{text}}}") } else { text }
        },
    );
    prop_oneof![
        6 => object,
        1 => Just("{}".to_owned()),
        1 => Just(r#"{"$json":null}"#.to_owned()),
        1 => Just("[1]".to_owned()),
    ]
    .boxed()
}

/// A default for a field of `conversion`: none, or a scalar the conversion takes (the fast
/// path leaves containers to the general path, which checks them with the document).
fn valid_default(conversion: &Conversion) -> BoxedStrategy<Option<Raw>> {
    match conversion {
        Conversion::Json { .. } | Conversion::Array(_) => Just(None).boxed(),
        conversion => prop::option::weighted(
            0.3,
            valid_value(conversion).prop_map(|t| serde_json::from_str(&t).expect("JSON")),
        )
        .boxed(),
    }
}

/// A case whose every value its conversion takes, whose legacy id is not null and whose parent,
/// if any, exists: a row that must go direct.
fn valid_case() -> impl Strategy<Value = Case> {
    let values: Vec<_> = conversions()
        .iter()
        .enumerate()
        .map(|(i, c)| prop::option::weighted(0.8, valid_at(&path(i), c)))
        .collect();
    let defaults: Vec<_> = conversions()
        .iter()
        .enumerate()
        .map(|(i, c)| if path(i).is_empty() { valid_default(c) } else { Just(None).boxed() })
        .collect();
    let id = prop_oneof![
        json_string(),
        any::<u32>().prop_map(|n| n.to_string()),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(|s| quoted(&s)),
    ];
    // The parent `7`, also as a number and with its digit escaped.
    let parent = prop::sample::select(vec![None, Some("\"7\""), Some("7"), Some("\"\\u0037\"")])
        .prop_map(|p| p.map(str::to_owned));
    (
        prop_oneof![Just(NullPolicy::Omit), Just(NullPolicy::Null)],
        orphan_policy(),
        defaults,
        id,
        parent,
        values,
    )
        .prop_map(|(nulls, orphans, defaults, id, parent, values)| Case {
            nulls,
            orphans,
            filter: None,
            defaults,
            id: Some(id),
            parent,
            values,
        })
}

/// A [`valid_case`] with one flaw: a value, the legacy id or the parent replaced by any raw
/// value (often one the conversion refuses, an orphan, a null legacy id), a null column with a
/// default of any kind, or a filter.
fn flawed_case() -> impl Strategy<Value = Case> {
    let fields = conversions().len();
    (valid_case(), 0..fields + 4, 0..fields, raw_value(), json_text(), condition()).prop_map(
        move |(mut case, flaw, field, raw, json, condition)| {
            match flaw {
                flaw if flaw < fields => case.values[flaw] = Some(raw),
                flaw if flaw == fields => case.id = Some(raw),
                flaw if flaw == fields + 1 => case.parent = Some(raw),
                flaw if flaw == fields + 2 => {
                    case.values[field] = None;
                    case.defaults[field] = serde_json::from_str(&json).ok();
                }
                _ => case.filter = Some((field, condition)),
            }
            case
        },
    )
}

/// Any case of the fuzz plan: hostile ([`case`]), well-formed ([`valid_case`]) or well-formed
/// but for one flaw ([`flawed_case`]).
fn mixed_case() -> impl Strategy<Value = Case> {
    prop_oneof![1 => case(), 1 => valid_case(), 2 => flawed_case()]
}

/// The fast path's contract on rows of every kind, one scratch for all as in a block of rows.
/// Enough of them must go direct for the comparison to mean something.
#[test]
fn the_fast_path_writes_what_the_general_path_writes() {
    let scratch = RefCell::new(Scratch::default());
    let (rows, direct) = (Cell::new(0u32), Cell::new(0u32));
    let mut runner = TestRunner::new(config(384));
    let result = runner.run(&mixed_case(), |case| {
        let both = fast_path_agrees(&case, &mut scratch.borrow_mut())?;
        rows.set(rows.get() + 1);
        direct.set(direct.get() + u32::from(both.direct.is_some()));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (rows, direct) = (rows.get(), direct.get());
    // About a third do: the well-formed cases and the flawed ones whose flaw is harmless.
    assert!(direct * 4 >= rows, "only {direct} of {rows} rows went direct");
}

proptest! {
    #![proptest_config(config(512))]

    /// Rows of well-formed values all go direct (and agree with the general path).
    #[test]
    fn well_formed_rows_take_the_fast_path(case in valid_case()) {
        let both = fast_path_agrees(&case, &mut Scratch::default())?;
        prop_assert!(
            both.direct.is_some(),
            "did not go direct:\n{}\nthe general path gives {:?}",
            case_line(&case).0,
            both.general
        );
    }
}

// ---- rows that must go direct, and rows the fast path must leave to the general path ----

/// Posts with a uuid legacy id and the usual columns, `author_id` referencing users.
fn posts_plan() -> TablePlan {
    let field = |column: &str, field: &str, conversion| FieldPlan {
        column: column.into(),
        field: field.into(),
        conversion,
        default: None,
        optional: true,
        path: Vec::new(),
    };
    TablePlan {
        source: TableName::new("public", "posts"),
        target: "posts".into(),
        legacy_id: LegacyId { field: "legacyId".into(), columns: vec!["id".into()] },
        fields: vec![
            field("title", "title", Conversion::String),
            field("created_at", "createdAt", Conversion::TimestampMs { offset_seconds: 0 }),
            field("price", "price", Conversion::NumericAsNumber),
            field("meta", "meta", Conversion::Json { keys: JsonKeyPolicy::Rename }),
            field("tags", "tags", Conversion::Array(Box::new(Conversion::String))),
        ],
        references: vec![ReferencePlan {
            constraint: "posts_author_id_fkey".into(),
            columns: vec!["author_id".into()],
            field: "authorId".into(),
            parent: TableName::new("public", "users"),
            parent_target: "users".into(),
            orphans: OrphanPolicy::Fail,
            optional: true,
        }],
        files: Vec::new(),
        filters: Vec::new(),
        merges: Vec::new(),
        nulls: NullPolicy::Omit,
        indexes: Default::default(),
        component: None,
    }
}

/// Both paths on `line`, a row of a raw file with `plan`'s columns; the parents are users `7`
/// and `["acme","7"]`. Panics on a breach of the fast path's contract.
fn posts_row(plan: &TablePlan, line: &str) -> BothPaths {
    posts_row_among(plan, line, &["7", r#"["acme","7"]"#]).unwrap_or_else(|e| panic!("{e}"))
}

/// [`both_paths`] on `line`, a row of a raw file with `plan`'s columns, and `parents`.
fn posts_row_among(plan: &TablePlan, line: &str, parents: &[&str]) -> Result<BothPaths, String> {
    let columns = plan
        .legacy_id
        .columns
        .iter()
        .chain(plan.fields.iter().map(|f| &f.column))
        .chain(plan.references.iter().flat_map(|r| &r.columns));
    let mut names: Vec<&str> = Vec::new();
    for column in columns {
        if !names.contains(&column.as_str()) {
            names.push(column);
        }
    }
    let shape = RowShape::new(names);
    let parents = parents.iter().map(|p| (*p).to_owned()).collect();
    both_paths(plan, &shape, line, &parents, &[], &mut Scratch::default())
}

/// The line the fast path writes for `line`, which must go direct.
fn direct_line(plan: &TablePlan, line: &str) -> String {
    let both = posts_row(plan, line);
    both.direct.unwrap_or_else(|| {
        panic!("did not go direct:\n{line}\nthe general path gives {:?}", both.general)
    })
}

const UUID: &str = "0b5e8a4c-3f7d-4c2e-9a61-8d2f6c1e7b90";

#[test]
fn a_typical_row_goes_direct() {
    let line = r#"{"id":"0b5e8a4c-3f7d-4c2e-9a61-8d2f6c1e7b90","title":"Hello, \"world\"\n","created_at":"2024-02-29T12:00:00.123456Z","price":"19.99","meta":{"b":{"c":{"d":[1,2.5,-0.75,1e3,-0]}},"a":"a\"b\\n","n":null,"t":true,"s":"caf\u00e9 ☕","list":[{"x":1},[],{}]},"tags":["red",null,"a\"b","blue"],"author_id":null}"#;
    let expected = format!(
        "{}{}{}{}{}{}\n",
        r#"{"doc":{"createdAt":1709208000123.0,"#,
        format_args!(r#""legacyId":"{UUID}","#),
        r#""meta":{"a":"a\"b\\n","b":{"c":{"d":[1.0,2.5,-0.75,1000.0,{"$float":"AAAAAAAAAIA="}]}},"#,
        r#""list":[{"x":1.0},[],{}],"n":null,"s":"café ☕","t":true},"price":19.99,"#,
        r#""tags":["red",null,"a\"b","blue"],"#,
        r#""title":"Hello, \"world\"\n"}}"#,
    );
    assert_eq!(direct_line(&posts_plan(), line), expected);

    // The same row spelled with blanks, as Postgres prints jsonb, and escapes: the same line.
    let spaced = r#"{"id": "0b5e8a4c-3f7d-4c2e-9a61-8d2f6c1e7b90", "title": "Hello, \u0022world\"\u000a", "created_at": "2024-02-29T12:00:00.123456Z", "price": "19.99", "meta": {"b": {"c": {"d": [1, 2.5, -0.75, 1e3, -0]}}, "a": "a\"b\\n", "n": null, "t": true, "s": "café \u2615", "list": [ {"x": 1}, [ ], { } ] }, "tags": [ "red", null, "a\"b", "blue" ], "author_id": null}"#;
    assert_eq!(direct_line(&posts_plan(), spaced), expected);
}

#[test]
fn a_row_with_a_found_reference_goes_direct_with_its_refs() {
    let refs = r#","refs":{"authorId":{"table":"users","legacyId":"7"}}}"#;
    for author in [r#""7""#, "7", r#""\u0037""#] {
        let line = format!(r#"{{"id":"{UUID}","title":"x","author_id":{author}}}"#);
        let expected = format!(r#"{{"doc":{{"legacyId":"{UUID}","title":"x"}}{refs}"#) + "\n";
        assert_eq!(direct_line(&posts_plan(), &line), expected);
    }
}

/// Found by `the_fast_path_writes_what_the_general_path_writes`: a reference that is not a
/// plain string (a number, an escaped string) must be looked up by its own key.
#[test]
fn a_reference_that_is_no_plain_string_is_looked_up_by_its_own_key() {
    // A user whose legacy id is the text `[]`; post 1's author `8` is no user.
    for author in ["8", r#""\u0038""#] {
        let line = format!(r#"{{"id":"1","author_id":{author}}}"#);
        let both = posts_row_among(&posts_plan(), &line, &["[]"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both.direct, None, "{line}");
        assert!(matches!(both.general, Outcome::Rejected(_)), "{:?}", both.general);
    }
}

#[test]
fn a_composite_legacy_id_and_reference_go_direct() {
    let mut plan = posts_plan();
    plan.legacy_id.columns = vec!["org".into(), "n".into()];
    plan.references[0].columns = vec!["org".into(), "author_id".into()];
    let line = r#"{"org":"acme","n":42,"title":"x","author_id":7}"#;
    assert_eq!(
        direct_line(&plan, line),
        concat!(
            r#"{"doc":{"legacyId":"[\"acme\",\"42\"]","title":"x"},"#,
            r#""refs":{"authorId":{"table":"users","legacyId":"[\"acme\",\"7\"]"}}}"#,
            "\n"
        )
    );
}

#[test]
fn nesting_goes_direct_up_to_convex_s_limit() {
    // The document is level 1 and `meta` level 2: 15 containers inside reach level 16.
    for kind in [0, 2] {
        for (levels, direct) in [(15, true), (16, false)] {
            let line = format!(r#"{{"id":"1","meta":{}}}"#, nest("1", levels, kind));
            let both = posts_row(&posts_plan(), &line);
            assert_eq!(both.direct.is_some(), direct, "{line}");
            assert_eq!(matches!(both.general, Outcome::Document(_)), direct, "{line}");
        }
    }
}

/// The general path's measure of the document `line` makes, which must be one.
fn document_size_of(line: &str) -> usize {
    match posts_row(&posts_plan(), line).general {
        Outcome::Document(transformed) => document_size(&transformed.document),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn a_document_goes_direct_up_to_convex_s_size_limit() {
    // Each `x` of the padding adds a byte: in a top-level string, in a string deep in json
    // among escapes and numbers, in an item of a text[] beside a reference.
    let templates = [
        r#"{"id":"1","title":"PAD"}"#,
        r#"{"id":"a\"b","meta":{"a":[1.5,"\u00e9\n",{"b":"PAD"}],"c":null},"tags":["x",null]}"#,
        r#"{"id":"1","price":"-0","tags":["a\"b",null,"PAD"],"author_id":"7"}"#,
    ];
    for template in templates {
        let padded = |len| template.replace("PAD", &"x".repeat(len));
        let len = MAX_DOCUMENT_SIZE - document_size_of(&padded(0));
        for (len, direct) in [(len, true), (len + 1, false)] {
            let both = posts_row(&posts_plan(), &padded(len));
            assert_eq!(both.direct.is_some(), direct, "{template} padded with {len} bytes");
            assert_eq!(matches!(both.general, Outcome::Document(_)), direct);
        }
    }
}

#[test]
fn arrays_objects_and_keys_go_direct_up_to_convex_s_lengths() {
    let items = |n: usize| vec!["0"; n].join(",");
    let fields = |n: usize| (0..n).map(|i| format!(r#""k{i}":0"#)).collect::<Vec<_>>().join(",");
    let lines = |n: usize| {
        [
            format!(r#"{{"id":"1","meta":[{}]}}"#, items(n)),
            format!(r#"{{"id":"1","tags":[{}]}}"#, items(n).replace('0', r#""a""#)),
            format!(r#"{{"id":"1","meta":{{{}}}}}"#, fields(n)),
        ]
    };
    for (n, direct) in [(8192, true), (8193, false)] {
        for line in &lines(n)[..2] {
            assert_eq!(posts_row(&posts_plan(), line).direct.is_some(), direct, "{n} items");
        }
    }
    for (n, direct) in [(1024, true), (1025, false)] {
        assert_eq!(posts_row(&posts_plan(), &lines(n)[2]).direct.is_some(), direct, "{n} fields");
    }
    for (n, direct) in [(1024, true), (1025, false)] {
        let line = format!(r#"{{"id":"1","meta":{{"{}":0}}}}"#, "k".repeat(n));
        assert_eq!(posts_row(&posts_plan(), &line).direct.is_some(), direct, "a key of {n}");
    }
}

#[test]
fn rows_the_fast_path_cannot_vouch_for_go_the_general_way() {
    // What the general path makes of the row: a document (a key renamed) or a reject (a
    // repeated key, whose other values would be lost).
    let (document, rejected) = (true, false);
    let big = format!(r#"{{"id":"1","title":"{}"}}"#, "x".repeat(1 << 20));
    let cases = [
        ("an orphan", r#"{"id":"1","author_id":"99"}"#, rejected),
        ("a null legacy id", r#"{"id":null,"title":"x"}"#, rejected),
        ("a key starting with `$`", r#"{"id":"1","meta":{"a":{"$ref":1}}}"#, document),
        ("the raw json wrapper", r#"{"id":"1","meta":{"$json":null}}"#, document),
        ("a key beyond ASCII", r#"{"id":"1","meta":{"größe":1}}"#, document),
        ("an escaped key", r#"{"id":"1","meta":{"a\"b":1}}"#, document),
        ("a repeated key", r#"{"id":"1","meta":{"a":1,"a":2}}"#, rejected),
        ("a key repeated once escaped", r#"{"id":"1","meta":{"a":1,"\u0061":2}}"#, rejected),
        ("a number a double cannot hold", r#"{"id":"1","meta":[1e400]}"#, rejected),
        (
            "a numeric with too many digits",
            r#"{"id":"1","price":"0.1000000000000000000001"}"#,
            rejected,
        ),
        ("a timestamp that is not one", r#"{"id":"1","created_at":"yesterday"}"#, rejected),
        ("an array of arrays", r#"{"id":"1","tags":[["a"]]}"#, rejected),
        ("a document over 1 MiB", &big, rejected),
    ];
    for (what, line, becomes_document) in cases {
        let both = posts_row(&posts_plan(), line);
        assert_eq!(both.direct, None, "{what} went direct");
        let expected = match both.general {
            Outcome::Document(_) => becomes_document,
            Outcome::Rejected(_) => !becomes_document,
            _ => false,
        };
        assert!(expected, "{what}: the general path gives {:?}", both.general);
    }
}

/// A decimal `whole.fraction` spelled with `zeros` more trailing zeros, as numeric columns of
/// other scales print it.
fn numeric_spelling(whole: i32, fraction: &str, zeros: usize) -> String {
    let fraction = format!("{fraction}{}", "0".repeat(zeros));
    if fraction.is_empty() { whole.to_string() } else { format!("{whole}.{fraction}") }
}

proptest! {
    #![proptest_config(config(256))]

    /// A reference matched by canonical form (numeric keys of other scales) goes direct, and
    /// both paths write the parent's legacy id as the parent has it.
    #[test]
    fn canonical_references_agree_on_both_paths(
        whole in -1000i32..1000,
        fraction in "[0-9]{0,3}",
        parent_zeros in 0usize..3,
        child_zeros in 0usize..3,
    ) {
        let parent = numeric_spelling(whole, &fraction, parent_zeros);
        let child = numeric_spelling(whole, &fraction, child_zeros);
        let mut parents = ParentKeys::new(&[KeyForm::Numeric]);
        let mut canonical = String::new();
        let quoted = format!("\"{parent}\"");
        write_canonical_key([quoted.as_str()].into_iter(), &[KeyForm::Numeric], &mut canonical);
        parents.insert(parent.clone(), Some(canonical)).unwrap();
        let plan = posts_plan();
        let line = format!(r#"{{"id":"{UUID}","title":"t","author_id":"{child}"}}"#);
        let shape = RowShape::new(["id", "title", "created_at", "price", "meta", "tags", "author_id"]);
        let forms = [Some(vec![KeyForm::Numeric])];
        let both = both_paths(&plan, &shape, &line, &parents, &forms, &mut Scratch::default())
            .map_err(TestCaseError::fail)?;
        let direct = both.direct.ok_or_else(|| TestCaseError::fail(format!("not direct: {line}")))?;
        let expected = format!(r#""refs":{{"authorId":{{"table":"users","legacyId":"{parent}"}}}}"#);
        prop_assert!(direct.contains(&expected), "{}", direct);
    }
}
