//! The source database's shape, as `export` found it and every later stage reads it back from
//! `manifest.json`: tables, columns with their resolved types, keys, foreign keys and indexes.
//!
//! Plain data with serde; the queries that fill it live in `export::introspect`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema-qualified relation name, compared exactly as Postgres does (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self { schema: schema.into(), name: name.into() }
    }

    /// The name quoted for SQL: `"public"."Order Items"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The file stem used under `raw/`: `<schema>.<table>`, with every byte outside
    /// `[A-Za-z0-9_-]` percent-encoded so that any identifier makes one safe, unambiguous name.
    pub fn file_stem(&self) -> String {
        format!("{}.{}", file_component(&self.schema), file_component(&self.name))
    }
}

impl fmt::Display for TableName {
    /// `schema.table`, the form people type in `--tables`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an identifier for SQL the way `quote_ident` does, always: `a"b` → `"a""b"`.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn file_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Table,
    /// A partitioned parent: exported once through the parent, never per partition.
    Partitioned,
    View,
    MaterializedView,
    Foreign,
}

/// The catalog of every exported table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub tables: Vec<Table>,
}

impl Catalog {
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    #[serde(flatten)]
    pub name: TableName,
    pub kind: TableKind,
    pub columns: Vec<Column>,
    /// Column names of the primary key, in key order; empty when the table has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Unique constraints and plain unique indexes (no expressions, no predicate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// The planner's row estimate (`reltuples`, summed over partitions); absent when the table
    /// was never analyzed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
    /// For a partitioned table: the foreign keys its partitions declare and it does not (before
    /// Postgres 12 a partitioned table could not declare any); absent when there are none, and
    /// in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_keys: Option<PartitionKeys>,
    /// Every valid index of the table, the primary key's and the unique constraints' included,
    /// by name; empty in manifests written before indexes were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The declared type as Postgres prints it (`numeric(10,2)`, `text[]`, `public.mood`).
    pub sql_type: String,
    /// The type that decides the raw form and the value policy: domains resolved to their base.
    #[serde(rename = "type")]
    pub ty: PgType,
    /// True for array columns (any number of dimensions); `ty` is then the element type.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub array: bool,
    /// The domain the column was declared with, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub nullable: bool,
    /// A `GENERATED ALWAYS AS (...) STORED` column: derived data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
    /// The column's collation when it is nondeterministic (equal values may differ in bytes,
    /// e.g. a case-insensitive ICU collation); absent for deterministic collations and in
    /// manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nondeterministic_collation: Option<String>,
    /// For a citext column: how the database lowercases it when citext compares (citext
    /// always lowers under the database's default locale, whatever the column's collation);
    /// absent for the usual per-character Unicode lowering (a libc UTF-8 locale), and in
    /// manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citext_lowering: Option<CitextLowering>,
}

/// How citext lowercases, when not per character by Unicode's simple mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CitextLowering {
    /// ASCII letters only: a database whose LC_CTYPE is `C` or `POSIX` (`Ä` and `ä` differ).
    Ascii,
    /// Unicode's full mapping, as ICU lowers: `İ` becomes `i̇`, two characters.
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references: TableName,
    pub referenced_columns: Vec<String>,
}

/// The foreign keys a partitioned table's partitions declare rather than the table itself.
/// Only the partitions that hold rows count (leaves, at any depth).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionKeys {
    /// How many partitions hold rows.
    pub partitions: usize,
    /// Names of the foreign keys in [`Table::foreign_keys`] that every partition declares (same
    /// columns, same referenced table and columns) and the table does not: attached to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<String>,
    /// Foreign keys only some partitions declare: not carried, since rows of the other
    /// partitions need not have a parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial: Vec<PartialForeignKey>,
}

/// A foreign key declared on some partitions of a partitioned table but not all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialForeignKey {
    pub columns: Vec<String>,
    pub references: TableName,
    pub referenced_columns: Vec<String>,
    /// The partitions that declare it, in name order.
    pub declared_on: Vec<TableName>,
    /// The partitions that do not, in name order.
    pub missing_on: Vec<TableName>,
}

/// An index of a table, as `init` needs it to carry it over to Convex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    /// The access method: `btree`, `hash`, `gin`, `gist`, `brin`, `spgist`, …
    pub method: String,
    /// The key columns in order (`INCLUDE` columns left out).
    pub keys: Vec<IndexKey>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
    /// `UNIQUE NULLS NOT DISTINCT` (Postgres 15+): rows with NULLs in the key clash too. Without
    /// it, a row with a NULL in any key column never clashes with another.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nulls_not_distinct: bool,
    /// The `WHERE` of a partial index, as Postgres prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

impl Index {
    /// The key columns' names, when every key is a plain column.
    pub fn columns(&self) -> Option<Vec<&str>> {
        self.keys
            .iter()
            .map(|k| match k {
                IndexKey::Column(name) => Some(name.as_str()),
                IndexKey::Expression(_) => None,
            })
            .collect()
    }
}

/// One key of an index: `{"column": "email"}` or `{"expression": "lower(email)"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKey {
    Column(String),
    /// An expression, as Postgres prints it.
    Expression(String),
}

/// A column's base type, after resolving domains. Types `migrate` has no special handling for
/// are [`PgType::Other`] and travel as their text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Varchar,
    Bpchar,
    Citext,
    Uuid,
    Inet,
    Json,
    Jsonb,
    Bytea,
    Date,
    Time,
    Interval,
    Timestamp,
    Timestamptz,
    Tsvector,
    /// A user-defined enum: its qualified name and labels in sort order.
    Enum {
        name: String,
        labels: Vec<String>,
    },
    /// Anything else, by its qualified type name.
    Other(String),
    /// A field of a Convex deployment read as a source (`export --from-convex`): its validator
    /// as the deployment's schema exports it (`{"type": "int64"}`, `{"type": "array", "value":
    /// …}`). Raw values are in Convex's tagged encoding and pass through as they are.
    Convex(Box<serde_json::Value>),
}

impl PgType {
    /// Maps a built-in type name (`pg_type.typname`) to a type; `None` for names this enum does
    /// not list.
    pub fn builtin(typname: &str) -> Option<PgType> {
        Some(match typname {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => PgType::Numeric,
            "text" => PgType::Text,
            "varchar" => PgType::Varchar,
            "bpchar" => PgType::Bpchar,
            "citext" => PgType::Citext,
            "uuid" => PgType::Uuid,
            "inet" => PgType::Inet,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "bytea" => PgType::Bytea,
            "date" => PgType::Date,
            "time" => PgType::Time,
            "interval" => PgType::Interval,
            "timestamp" => PgType::Timestamp,
            "timestamptz" => PgType::Timestamptz,
            "tsvector" => PgType::Tsvector,
            _ => return None,
        })
    }

    /// The name written to the manifest: the built-in name, `enum`, or the other type's name.
    pub fn name(&self) -> &str {
        match self {
            PgType::Bool => "bool",
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float4 => "float4",
            PgType::Float8 => "float8",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Varchar => "varchar",
            PgType::Bpchar => "bpchar",
            PgType::Citext => "citext",
            PgType::Uuid => "uuid",
            PgType::Inet => "inet",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
            PgType::Bytea => "bytea",
            PgType::Date => "date",
            PgType::Time => "time",
            PgType::Interval => "interval",
            PgType::Timestamp => "timestamp",
            PgType::Timestamptz => "timestamptz",
            PgType::Tsvector => "tsvector",
            PgType::Enum { .. } => "enum",
            PgType::Other(name) => name,
            PgType::Convex(_) => "convex",
        }
    }
}

/// The manifest form: `{"name": "int8"}`, `{"name": "enum", "enum": "public.mood", "labels": [...]}`,
/// `{"name": "point", "other": true}`.
#[derive(Serialize, Deserialize)]
struct PgTypeRepr {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "enum")]
    enum_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    other: bool,
    /// The validator of a [`PgType::Convex`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    validator: Option<serde_json::Value>,
}

impl Serialize for PgType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repr = match self {
            PgType::Enum { name, labels } => PgTypeRepr {
                name: "enum".into(),
                enum_name: Some(name.clone()),
                labels: Some(labels.clone()),
                other: false,
                validator: None,
            },
            PgType::Other(name) => PgTypeRepr {
                name: name.clone(),
                enum_name: None,
                labels: None,
                other: true,
                validator: None,
            },
            PgType::Convex(validator) => PgTypeRepr {
                name: "convex".into(),
                enum_name: None,
                labels: None,
                other: false,
                validator: Some((**validator).clone()),
            },
            builtin => PgTypeRepr {
                name: builtin.name().to_owned(),
                enum_name: None,
                labels: None,
                other: false,
                validator: None,
            },
        };
        repr.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PgType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = PgTypeRepr::deserialize(deserializer)?;
        if repr.other {
            return Ok(PgType::Other(repr.name));
        }
        if let Some(validator) = repr.validator.filter(|_| repr.name == "convex") {
            return Ok(PgType::Convex(Box::new(validator)));
        }
        if repr.name == "enum" {
            return Ok(PgType::Enum {
                name: repr.enum_name.unwrap_or_default(),
                labels: repr.labels.unwrap_or_default(),
            });
        }
        PgType::builtin(&repr.name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown type `{}`", repr.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(TableName::new("public", "Order Items").quoted(), r#""public"."Order Items""#);
    }

    #[test]
    fn file_stems_are_safe_and_unambiguous() {
        assert_eq!(TableName::new("public", "users").file_stem(), "public.users");
        assert_eq!(TableName::new("public", "Order Items").file_stem(), "public.Order%20Items");
        assert_eq!(TableName::new("a.b", "c").file_stem(), "a%2Eb.c");
        assert_ne!(TableName::new("a.b", "c").file_stem(), TableName::new("a", "b.c").file_stem());
        assert_eq!(TableName::new("s", "x/../y").file_stem(), "s.x%2F%2E%2E%2Fy");
    }

    #[test]
    fn types_round_trip_through_the_manifest_form() {
        let types = [
            PgType::Int8,
            PgType::Timestamptz,
            PgType::Enum { name: "public.mood".into(), labels: vec!["ok".into(), "sad".into()] },
            PgType::Other("point".into()),
            PgType::Other("enum".into()),
            PgType::Convex(Box::new(serde_json::json!({"type": "int64"}))),
        ];
        for ty in types {
            let json = serde_json::to_string(&ty).unwrap();
            let back: PgType = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ty, "{json}");
        }
    }
}
