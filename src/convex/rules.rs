//! The limits and naming rules Convex enforces on documents, field names and table names.
//!
//! Sources: `crates/convex/sync_types/src/identifier.rs` (identifiers, field names),
//! `crates/value/src/{object,array}.rs` (1024 fields, 8192 items), `crates/common/src/document.rs`
//! (nesting 16, no top-level `_` fields), the `MAX_USER_SIZE` checks in
//! `crates/database/src/bootstrap_model/user_facing.rs`, and `docs/production/state/limits.mdx`.
//! Names are printed with control characters escaped.

use std::fmt;

use super::value::{Document, Value, document_size, push_index, push_key};

/// Convex's `MAX_USER_SIZE`: 1 MiB, measured with [`Value::size`].
pub const MAX_USER_SIZE: usize = 1 << 20;

/// What a stored document adds to the fields we send, at most, when Convex checks its size after
/// a patch: `_id` (3-byte name + 1 + a string of up to 37 characters + 2), `_creationTime`
/// (13 + 1 + 9) and the id itself (17 + 16 bytes, `DeveloperDocument::size`).
///
/// An insert only measures the fields we send, but a patch measures the stored document, and
/// every write `migrate` makes must survive being applied twice (an insert, then a patch).
pub const SYSTEM_FIELDS_SIZE: usize = (3 + 1 + 2 + 37) + (13 + 1 + 9) + (17 + 16);

/// The largest [`document_size`] a document we send may have.
pub const MAX_DOCUMENT_SIZE: usize = MAX_USER_SIZE - SYSTEM_FIELDS_SIZE;

/// Levels of nesting: the document is level 1, each object or array inside adds one.
pub const MAX_NESTING: usize = 16;

/// Items in one array.
pub const MAX_ARRAY_LEN: usize = 8192;

/// Fields in one object (`MAX_OBJECT_FIELDS` in `crates/value/src/object.rs`).
pub const MAX_OBJECT_FIELDS: usize = 1024;

/// Top-level fields of a document we send: Convex adds `_id` and `_creationTime` to the same
/// object before checking its field count (`ResolvedDocument::new_internal`).
pub const MAX_DOCUMENT_FIELDS: usize = MAX_OBJECT_FIELDS - 2;

/// Characters in an identifier: a table name or a top-level field name.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Characters in a nested object key.
pub const MAX_KEY_LEN: usize = 1024;

/// Indexes a table may have, its search and vector indexes included (Convex's documented
/// limit; the built-in `by_id` and `by_creation_time` do not count).
pub const MAX_INDEXES_PER_TABLE: usize = 32;

/// Fields an index may hold (`_creationTime` is appended to every index without counting).
pub const MAX_INDEX_FIELDS: usize = 16;

/// Index names every table has already: no schema may declare them.
pub const RESERVED_INDEX_NAMES: [&str; 2] = ["by_id", "by_creation_time"];

/// A rule Convex would refuse the document for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("field name is empty")]
    FieldNameEmpty,
    #[error("field name `{}` starts with `$`, which Convex reserves", .name.escape_debug())]
    FieldNameDollar { name: String },
    #[error(
        "top-level field `{}` starts with `_`, which Convex reserves for system fields like `_id` \
         and `_creationTime`",
        .name.escape_debug()
    )]
    FieldNameSystem { name: String },
    #[error(
        "top-level field `{}` is not an identifier: use ASCII letters, digits and `_`, starting with a \
         letter",
        .name.escape_debug()
    )]
    FieldNameNotIdentifier { name: String },
    #[error(
        "top-level field name is {len} characters long, over the limit of {MAX_IDENTIFIER_LEN}"
    )]
    FieldNameTooLong { len: usize },
    #[error("object key is empty")]
    KeyEmpty,
    #[error("object key `{}` starts with `$`, which Convex reserves", .key.escape_debug())]
    KeyDollar { key: String },
    #[error("object key `{}` contains {character:?}: keys may only use printable ASCII", .key.escape_debug())]
    KeyNotPrintable { key: String, character: char },
    #[error("object key is {len} characters long, over the limit of {MAX_KEY_LEN}")]
    KeyTooLong { len: usize },
    #[error(
        "value is nested {depth} levels deep, over the limit of {MAX_NESTING} (the document is level 1)"
    )]
    TooNested { depth: usize },
    #[error("array has {len} elements, over the limit of {MAX_ARRAY_LEN}")]
    ArrayTooLong { len: usize },
    #[error("object has {count} fields, over the limit of {MAX_OBJECT_FIELDS}")]
    TooManyFields { count: usize },
    #[error(
        "document has {count} fields, over the limit of {MAX_DOCUMENT_FIELDS} (1024 less `_id` and \
         `_creationTime`)"
    )]
    DocumentTooManyFields { count: usize },
    #[error(
        "document is {size} bytes, over the limit of {MAX_DOCUMENT_SIZE} (1 MiB less room for `_id` and \
         `_creationTime`)"
    )]
    DocumentTooLarge { size: usize },
    #[error("table name is empty")]
    TableNameEmpty,
    #[error(
        "table name `{}` starts with `_`, which Convex reserves for system tables",
        .name.escape_debug()
    )]
    TableNameSystem { name: String },
    #[error(
        "table name `{}` is not an identifier: use ASCII letters, digits and `_`, starting with a letter",
        .name.escape_debug()
    )]
    TableNameNotIdentifier { name: String },
    #[error("table name is {len} characters long, over the limit of {MAX_IDENTIFIER_LEN}")]
    TableNameTooLong { len: usize },
}

/// The first rule a document breaks, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    /// Where in the document, like `meta.items[3].key`; empty for the document as a whole.
    pub path: String,
    pub rule: Rule,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "at `{}`: {}", self.path, self.rule)
        }
    }
}

/// Checks a document against Convex's rules before it is sent.
///
/// `Ok` means Convex's own checks on insert and on a later patch of the same fields will pass
/// (schema validation aside). Otherwise returns the first violation, in a fixed order: the
/// document's field count, then each field in key order, depth first (a container's nesting,
/// then its length, then its keys and items), and the document's size last.
pub fn check_document(doc: &Document) -> Result<(), Violation> {
    if doc.len() > MAX_DOCUMENT_FIELDS {
        return Err(Violation {
            path: String::new(),
            rule: Rule::DocumentTooManyFields { count: doc.len() },
        });
    }
    for (name, value) in doc {
        let found = check_field_name(name)
            .map_err(|rule| (rule, Vec::new()))
            .and_then(|()| check_value(value, 1));
        if let Err((rule, mut steps)) = found {
            // The path is spelled out only for a violation: checks stay allocation-free.
            steps.push(Step::Key(name));
            let mut path = String::new();
            for step in steps.iter().rev() {
                match step {
                    Step::Key(key) => push_key(&mut path, key),
                    Step::Index(i) => push_index(&mut path, *i),
                }
            }
            return Err(Violation { path, rule });
        }
    }
    let size = document_size(doc);
    if size > MAX_DOCUMENT_SIZE {
        return Err(Violation { path: String::new(), rule: Rule::DocumentTooLarge { size } });
    }
    Ok(())
}

/// One step of the path to a violation, collected innermost first while unwinding.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

type Found<'a> = Result<(), (Rule, Vec<Step<'a>>)>;

fn check_value(value: &Value, parent_depth: usize) -> Found<'_> {
    let depth = parent_depth + 1;
    match value {
        Value::Array(items) => {
            if depth > MAX_NESTING {
                return Err((Rule::TooNested { depth }, Vec::new()));
            }
            if items.len() > MAX_ARRAY_LEN {
                return Err((Rule::ArrayTooLong { len: items.len() }, Vec::new()));
            }
            for (i, item) in items.iter().enumerate() {
                check_value(item, depth).map_err(|(rule, mut steps)| {
                    steps.push(Step::Index(i));
                    (rule, steps)
                })?;
            }
        }
        Value::Object(fields) => {
            if depth > MAX_NESTING {
                return Err((Rule::TooNested { depth }, Vec::new()));
            }
            if fields.len() > MAX_OBJECT_FIELDS {
                return Err((Rule::TooManyFields { count: fields.len() }, Vec::new()));
            }
            for (key, item) in fields {
                check_object_key(key)
                    .map_err(|rule| (rule, Vec::new()))
                    .and_then(|()| check_value(item, depth))
                    .map_err(|(rule, mut steps)| {
                        steps.push(Step::Key(key));
                        (rule, steps)
                    })?;
            }
        }
        Value::Null
        | Value::Boolean(_)
        | Value::Float64(_)
        | Value::Int64(_)
        | Value::String(_)
        | Value::Bytes(_) => {}
    }
    Ok(())
}

/// A top-level field name of a document we send: an identifier of at most 64 characters, not
/// starting with `_` (Convex's own `_id` and `_creationTime` are assigned by Convex, never sent).
pub fn check_field_name(name: &str) -> Result<(), Rule> {
    if name.is_empty() {
        return Err(Rule::FieldNameEmpty);
    }
    if name.starts_with('$') {
        return Err(Rule::FieldNameDollar { name: name.to_owned() });
    }
    if name.starts_with('_') {
        return Err(Rule::FieldNameSystem { name: name.to_owned() });
    }
    if !is_identifier(name) {
        return Err(Rule::FieldNameNotIdentifier { name: name.to_owned() });
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(Rule::FieldNameTooLong { len: name.len() });
    }
    Ok(())
}

/// A key of an object nested in a document: not empty, printable ASCII (space to `~`), not
/// starting with `$`, at most 1024 characters. A leading `_` is allowed, though Convex's docs
/// advise against it.
pub fn check_object_key(key: &str) -> Result<(), Rule> {
    if key.is_empty() {
        return Err(Rule::KeyEmpty);
    }
    if key.starts_with('$') {
        return Err(Rule::KeyDollar { key: key.to_owned() });
    }
    // Every byte before the first one outside printable ASCII is ASCII: it starts a character.
    if let Some(at) = key.bytes().position(|b| !matches!(b, b' '..=b'~')) {
        let character = key[at..].chars().next().expect("a character starts at a non-ASCII byte");
        return Err(Rule::KeyNotPrintable { key: key.to_owned(), character });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Rule::KeyTooLong { len: key.len() });
    }
    Ok(())
}

/// A table name: an identifier of at most 64 characters, not starting with `_` (system tables).
pub fn check_table_name(name: &str) -> Result<(), Rule> {
    if name.is_empty() {
        return Err(Rule::TableNameEmpty);
    }
    if name.starts_with('_') {
        return Err(Rule::TableNameSystem { name: name.to_owned() });
    }
    if !is_identifier(name) {
        return Err(Rule::TableNameNotIdentifier { name: name.to_owned() });
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(Rule::TableNameTooLong { len: name.len() });
    }
    Ok(())
}

/// `[A-Za-z][A-Za-z0-9_]*`: Convex's `check_valid_identifier` (`[A-Za-z_][A-Za-z0-9_]*`, not
/// only underscores) for the names that reach it here, as the callers refuse a leading `_` first.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn document<const N: usize>(fields: [(&str, Value); N]) -> Document {
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// `levels` arrays, one inside the other, around `null`.
    fn nested_arrays(levels: usize) -> Value {
        (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
    }

    fn wide_object(fields: usize) -> BTreeMap<String, Value> {
        (0..fields).map(|i| (format!("f{i}"), Value::Null)).collect()
    }

    #[test]
    fn each_rule_names_the_first_violation_and_its_path() {
        let long_name = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        let long_key = "k".repeat(MAX_KEY_LEN + 1);
        let long_key_path = format!("meta.{long_key}");
        let cases: Vec<(&str, Document, &str, &str)> = vec![
            ("empty field name", document([("", Value::Null)]), "[\"\"]", "field name is empty"),
            (
                "`$` field",
                document([("$x", Value::Null)]),
                "[\"$x\"]",
                "field name `$x` starts with `$`, which Convex reserves",
            ),
            (
                "`_id` sent",
                document([("_id", Value::String("z43zp6c3e75gkmz1kfwj6mbbx5sw281h".into()))]),
                "_id",
                "top-level field `_id` starts with `_`, which Convex reserves for system fields like `_id` \
                 and `_creationTime`",
            ),
            (
                "`_creationTime` sent",
                document([("_creationTime", Value::Float64(1.0))]),
                "_creationTime",
                "top-level field `_creationTime` starts with `_`, which Convex reserves for system fields \
                 like `_id` and `_creationTime`",
            ),
            (
                "field name with a space",
                document([("first name", Value::Null)]),
                "[\"first name\"]",
                "top-level field `first name` is not an identifier: use ASCII letters, digits and `_`, \
                 starting with a letter",
            ),
            (
                "field name starting with a digit",
                document([("2fa", Value::Null)]),
                "[\"2fa\"]",
                "top-level field `2fa` is not an identifier: use ASCII letters, digits and `_`, starting \
                 with a letter",
            ),
            (
                "field name over 64 characters",
                document([(long_name.as_str(), Value::Null)]),
                long_name.as_str(),
                "top-level field name is 65 characters long, over the limit of 64",
            ),
            (
                "empty nested key",
                document([("meta", object([("", Value::Null)]))]),
                "meta[\"\"]",
                "object key is empty",
            ),
            (
                "`$` nested key",
                document([("meta", object([("$type", Value::Null)]))]),
                "meta[\"$type\"]",
                "object key `$type` starts with `$`, which Convex reserves",
            ),
            (
                "non-ASCII nested key",
                document([("meta", Value::Array(vec![object([("café", Value::Null)])]))]),
                "meta[0][\"café\"]",
                "object key `café` contains 'é': keys may only use printable ASCII",
            ),
            (
                "control character in a nested key",
                document([("meta", object([("a\tb", Value::Null)]))]),
                "meta[\"a\\tb\"]",
                "object key `a\\tb` contains '\\t': keys may only use printable ASCII",
            ),
            (
                "nested key over 1024 characters",
                document([("meta", object([(long_key.as_str(), Value::Null)]))]),
                long_key_path.as_str(),
                "object key is 1025 characters long, over the limit of 1024",
            ),
            (
                "17 levels: 16 arrays inside the document",
                document([("deep", nested_arrays(16))]),
                "deep[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
                "value is nested 17 levels deep, over the limit of 16 (the document is level 1)",
            ),
            (
                "array over 8192 items",
                document([(
                    "list",
                    object([("items", Value::Array(vec![Value::Int64(0); 8193]))]),
                )]),
                "list.items",
                "array has 8193 elements, over the limit of 8192",
            ),
            (
                "nested object over 1024 fields",
                document([("wide", Value::Object(wide_object(1025)))]),
                "wide",
                "object has 1025 fields, over the limit of 1024",
            ),
            (
                "document over 1022 fields",
                wide_object(1023),
                "",
                "document has 1023 fields, over the limit of 1022 (1024 less `_id` and `_creationTime`)",
            ),
            (
                "document too large",
                document([("blob", Value::Bytes(vec![0; MAX_DOCUMENT_SIZE]))]),
                "",
                "document is 1048486 bytes, over the limit of 1048477 (1 MiB less room for `_id` and \
                 `_creationTime`)",
            ),
        ];
        for (what, doc, path, message) in cases {
            let violation = check_document(&doc).expect_err(what);
            assert_eq!(violation.path, path, "path for {what}");
            assert_eq!(violation.rule.to_string(), message, "message for {what}");
        }
    }

    #[test]
    fn documents_at_each_limit_pass() {
        let at_limit = document([
            ("deep", nested_arrays(15)),
            ("list", Value::Array(vec![Value::Null; MAX_ARRAY_LEN])),
            ("wide", Value::Object(wide_object(MAX_OBJECT_FIELDS))),
            ("meta", object([("_private", Value::Null), (" ~!x", Value::Null)])),
            (&"a".repeat(MAX_IDENTIFIER_LEN), Value::Null),
        ]);
        assert_eq!(check_document(&at_limit), Ok(()));
        assert_eq!(check_document(&wide_object(MAX_DOCUMENT_FIELDS)), Ok(()));

        // 2 + ("blob" 4 + 1) + (2 + n) = MAX_DOCUMENT_SIZE exactly.
        let n = MAX_DOCUMENT_SIZE - 9;
        let largest = document([("blob", Value::Bytes(vec![0; n]))]);
        assert_eq!(document_size(&largest), MAX_DOCUMENT_SIZE);
        assert_eq!(check_document(&largest), Ok(()));
        let one_more = document([("blob", Value::Bytes(vec![0; n + 1]))]);
        assert!(matches!(
            check_document(&one_more),
            Err(Violation { rule: Rule::DocumentTooLarge { .. }, .. })
        ));
    }

    #[test]
    fn the_first_violation_in_key_order_wins() {
        let doc = document([
            ("b", object([("$late", Value::Null)])),
            ("a", Value::Array(vec![Value::Null, object([("", Value::Null)])])),
        ]);
        let violation = check_document(&doc).expect_err("two violations");
        assert_eq!(violation.path, "a[1][\"\"]");
        assert_eq!(violation.to_string(), "at `a[1][\"\"]`: object key is empty");
    }

    #[test]
    fn nesting_counts_the_document_and_empty_containers() {
        // `[[...[]...]]` with the innermost empty array at level 17.
        let mut deep = Value::Array(vec![]);
        for _ in 0..15 {
            deep = Value::Array(vec![deep]);
        }
        let violation = check_document(&document([("x", deep)])).expect_err("17 levels");
        assert_eq!(violation.rule, Rule::TooNested { depth: 17 });
        assert_eq!(check_document(&document([("x", nested_arrays(15))])), Ok(()));
    }

    #[test]
    fn field_names() {
        let cases: Vec<(&str, Result<(), Rule>)> = vec![
            ("name", Ok(())),
            ("userId2", Ok(())),
            ("snake_case_", Ok(())),
            ("", Err(Rule::FieldNameEmpty)),
            ("$id", Err(Rule::FieldNameDollar { name: "$id".into() })),
            ("_", Err(Rule::FieldNameSystem { name: "_".into() })),
            ("_id", Err(Rule::FieldNameSystem { name: "_id".into() })),
            ("9lives", Err(Rule::FieldNameNotIdentifier { name: "9lives".into() })),
            ("kebab-case", Err(Rule::FieldNameNotIdentifier { name: "kebab-case".into() })),
            ("naïve", Err(Rule::FieldNameNotIdentifier { name: "naïve".into() })),
        ];
        for (name, expected) in cases {
            assert_eq!(check_field_name(name), expected, "field name {name:?}");
        }
    }

    #[test]
    fn table_names() {
        let cases: Vec<(String, Result<(), Rule>)> = vec![
            ("users".into(), Ok(())),
            ("order_items2".into(), Ok(())),
            ("a".repeat(64), Ok(())),
            ("".into(), Err(Rule::TableNameEmpty)),
            ("_tables".into(), Err(Rule::TableNameSystem { name: "_tables".into() })),
            (
                "public.users".into(),
                Err(Rule::TableNameNotIdentifier { name: "public.users".into() }),
            ),
            ("1st".into(), Err(Rule::TableNameNotIdentifier { name: "1st".into() })),
            ("a".repeat(65), Err(Rule::TableNameTooLong { len: 65 })),
        ];
        for (name, expected) in cases {
            assert_eq!(check_table_name(&name), expected, "table name {name:?}");
        }
        assert_eq!(
            Rule::TableNameSystem { name: "_tables".into() }.to_string(),
            "table name `_tables` starts with `_`, which Convex reserves for system tables"
        );
    }

    #[test]
    fn system_fields_size_is_what_a_stored_document_adds() {
        // A stored document is the sent fields plus `_id` and `_creationTime`, measured with the
        // same size function, plus 33 bytes for the id (`DeveloperDocument::size`).
        let sent = document([("name", Value::String("Ada".into()))]);
        let mut stored = sent.clone();
        stored.insert("_id".into(), Value::String("x".repeat(37)));
        stored.insert("_creationTime".into(), Value::Float64(1.7e12));
        assert_eq!(document_size(&stored) + 33, document_size(&sent) + SYSTEM_FIELDS_SIZE);
    }
}
