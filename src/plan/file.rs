//! The plan files: finding them in the plan directory, reading each into a [`Layer`] that keeps
//! where every key was written, and merging the layers in version order.
//!
//! Reading checks what one file can check alone: the file name, TOML syntax, known keys, the
//! kind of every value and the words of enumerated values (`naming`, `policy`, …). Whether the
//! names fit the catalog is for `resolve`, which sees the merged layers.

use std::collections::{BTreeMap, btree_map};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

use super::error::{Location, PlanError, PlanErrorKind, suggest};
use super::model::{JsonKeyPolicy, JsonScalar, NullPolicy, OrphanPolicy, PathForm};
use crate::catalog::PgType;

/// One plan file as read from the plan directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSource {
    /// The file name: `0002_money_as_cents.toml`.
    pub name: String,
    /// The path as messages show it: the plan directory joined with the name.
    pub display: String,
    pub number: u64,
    pub bytes: Vec<u8>,
}

/// The number of a plan file name `NNNN_<words>.toml`; `None` for any other name.
pub fn file_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".toml")?;
    let (digits, words) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || words.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// The plan files of a plan directory, and the entries in it that are not plan files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDir {
    /// In number order.
    pub sources: Vec<PlanSource>,
    /// The names of the other entries, sorted; a folder's name ends with `/`.
    pub ignored: Vec<String>,
}

/// A name that looks meant as a plan file but is not one: a `.toml` file whose name starts with
/// a digit (`0002-users.toml`, `0002.toml`, `0002_.toml`). Ignoring it would silently leave a
/// change of the mapping out, so it is an error.
fn almost_a_plan_name(name: &str) -> bool {
    name.strip_suffix(".toml").is_some_and(|stem| stem.starts_with(|c: char| c.is_ascii_digit()))
}

/// Every plan file of `plan_dir`, in number order, and the names of the other entries.
///
/// Plan files are the files named `NNNN_<words>.toml`, each with a number no other file has.
/// Hidden entries (a name starting with `.`, such as `.gitkeep` or an editor's swap file) are
/// passed over without a word; every other entry (SQL migrations of sqlx, Prisma or Supabase,
/// `migration_lock.toml`, a README, folders) is ignored and listed in [`PlanDir::ignored`]. A
/// `.toml` file whose name starts with a digit but is not a plan name is an error.
pub fn read_dir(plan_dir: &Path) -> Result<PlanDir, PlanError> {
    let entries = match std::fs::read_dir(plan_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(PlanError::from(PlanErrorKind::DirMissing { dir: plan_dir.to_owned() }));
        }
        Err(source) => {
            return Err(PlanError::from(PlanErrorKind::ReadDir {
                dir: plan_dir.to_owned(),
                source,
            }));
        }
    };
    let mut sources: Vec<PlanSource> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| {
            PlanError::from(PlanErrorKind::ReadDir { dir: plan_dir.to_owned(), source })
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // `targets.toml` (the deployments, docs/targets.md) belongs in the plan dir too.
        if name.starts_with('.') || name == "targets.toml" {
            continue;
        }
        let is_file = path.is_file();
        let number = match file_number(&name) {
            Some(number) if is_file && entry.file_name().to_str().is_some() => number,
            _ if is_file && almost_a_plan_name(&name) => {
                return Err(PlanError::from(PlanErrorKind::BadFileName { file: path }));
            }
            _ => {
                ignored.push(if path.is_dir() { format!("{name}/") } else { name });
                continue;
            }
        };
        let bytes = std::fs::read(&path).map_err(|source| {
            PlanError::from(PlanErrorKind::ReadFile { file: path.clone(), source })
        })?;
        sources.push(PlanSource { name, display: path.display().to_string(), number, bytes });
    }
    ignored.sort();
    sources.sort_by(|a, b| a.number.cmp(&b.number).then_with(|| a.name.cmp(&b.name)));
    for pair in sources.windows(2) {
        if pair[0].number == pair[1].number {
            return Err(PlanError::from(PlanErrorKind::DuplicateNumber {
                number: pair[0].number,
                first: pair[0].display.clone(),
                second: pair[1].display.clone(),
            }));
        }
    }
    Ok(PlanDir { sources, ignored })
}

/// The warning for the entries of `plan_dir` that are not plan files, naming the first few.
pub fn ignored_warning(plan_dir: &Path, ignored: &[String]) -> Option<String> {
    const SHOWN: usize = 8;
    if ignored.is_empty() {
        return None;
    }
    let (first, rest) = ignored.split_at(ignored.len().min(SHOWN));
    let mut names = first.join(", ");
    if !rest.is_empty() {
        names.push_str(&format!(" and {} more", rest.len()));
    }
    let n = ignored.len();
    let (files, that) = if n == 1 { ("file", "is not a plan") } else { ("files", "are not plans") };
    Some(format!(
        "ignored {n} {files} in `{}` that {that} (NNNN_name.toml): {names}",
        plan_dir.display()
    ))
}

/// A value with the place it was written and its key path (`tables."public.users".target`).
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub at: Location,
    pub path: String,
}

/// How field names derive from column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    CamelCase,
    SnakeCase,
    Keep,
}

impl Naming {
    pub const CHOICES: [(&'static str, Naming); 3] = [
        ("camelCase", Naming::CamelCase),
        ("snake_case", Naming::SnakeCase),
        ("keep", Naming::Keep),
    ];
}

/// A value policy word; which words fit which type is checked against the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Number,
    Int64,
    String,
    Cents,
    Ms,
    Iso,
    /// A text column naming Supabase Storage objects: a `v.id("_storage")` field (per column
    /// only, with `bucket`, `form` and `orphans`).
    File,
}

impl Policy {
    pub const ALL: [Policy; 7] = [
        Policy::Number,
        Policy::Int64,
        Policy::String,
        Policy::Cents,
        Policy::Ms,
        Policy::Iso,
        Policy::File,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Number => "number",
            Policy::Int64 => "int64",
            Policy::String => "string",
            Policy::Cents => "cents",
            Policy::Ms => "ms",
            Policy::Iso => "iso",
            Policy::File => "file",
        }
    }

    fn choices(policies: impl IntoIterator<Item = Policy>) -> Vec<(&'static str, Policy)> {
        policies.into_iter().map(|p| (p.name(), p)).collect()
    }
}

/// A Postgres type with value policies, as `[defaults.types]` names it.
#[derive(Debug)]
pub struct TypePolicies {
    /// The key under `[defaults.types]`.
    pub key: &'static str,
    pub ty: PgType,
    /// The type as the comments of `migrate init` name it.
    pub label: &'static str,
    /// The policies the type accepts, default first, each with what the comments of
    /// `migrate init` say of it (`""`: nothing).
    pub choices: &'static [(Policy, &'static str)],
}

pub const TYPE_COUNT: usize = 5;

/// Every type with value policies, in the order of `[defaults.types]`: the one table that
/// parsing, merging, resolving and `migrate init` read. Settings hold one policy per row, by
/// index.
pub static TYPE_POLICIES: [TypePolicies; TYPE_COUNT] = [
    TypePolicies {
        key: "int8",
        ty: PgType::Int8,
        label: "bigint",
        choices: &[
            (Policy::Number, "exact within ±2^53, else the row is rejected"),
            (Policy::Int64, ""),
            (Policy::String, ""),
        ],
    },
    TypePolicies {
        key: "numeric",
        ty: PgType::Numeric,
        label: "numeric",
        choices: &[
            (Policy::Number, "exact in a double, else rejected"),
            (Policy::String, ""),
            (Policy::Cents, "×100"),
            (Policy::Int64, ""),
        ],
    },
    TypePolicies {
        key: "timestamptz",
        ty: PgType::Timestamptz,
        label: "timestamp with time zone",
        choices: &[
            (Policy::Ms, "whole milliseconds since the epoch"),
            (Policy::Iso, "ISO 8601 with microseconds"),
        ],
    },
    TypePolicies {
        key: "timestamp",
        ty: PgType::Timestamp,
        label: "timestamp without time zone",
        choices: &[
            (Policy::Ms, "whole milliseconds, read at `timestamp_offset`"),
            (Policy::Iso, "microseconds kept"),
        ],
    },
    TypePolicies {
        key: "date",
        ty: PgType::Date,
        label: "date",
        choices: &[(Policy::String, "YYYY-MM-DD"), (Policy::Ms, "midnight UTC")],
    },
];

impl TypePolicies {
    /// The index and row of `ty`; `None` for a type without policies.
    pub fn of(ty: &PgType) -> Option<(usize, &'static TypePolicies)> {
        TYPE_POLICIES.iter().enumerate().find(|(_, t)| t.ty == *ty)
    }

    /// The index of the row whose key is `key`.
    pub fn index(key: &str) -> Option<usize> {
        TYPE_POLICIES.iter().position(|t| t.key == key)
    }

    pub fn default_policy(&self) -> Policy {
        self.choices[0].0
    }

    /// The policies the type accepts, default first.
    pub fn policies(&self) -> impl Iterator<Item = Policy> + 'static {
        self.choices.iter().map(|(p, _)| *p)
    }

    pub fn allows(&self, policy: Policy) -> bool {
        self.policies().any(|p| p == policy)
    }
}

pub const NULLS: [(&str, NullPolicy); 2] = [("omit", NullPolicy::Omit), ("null", NullPolicy::Null)];
pub const ORPHANS: [(&str, OrphanPolicy); 4] = [
    ("fail", OrphanPolicy::Fail),
    ("null", OrphanPolicy::Null),
    ("drop", OrphanPolicy::Drop),
    ("keep_legacy", OrphanPolicy::KeepLegacy),
];
pub const JSON_KEYS: [(&str, JsonKeyPolicy); 2] =
    [("rename", JsonKeyPolicy::Rename), ("reject", JsonKeyPolicy::Reject)];
/// The `type` of a field inside a json column; `any` (`None`) takes any JSON value.
pub const FIELD_TYPES: [(&str, Option<JsonScalar>); 4] = [
    ("any", None),
    ("string", Some(JsonScalar::String)),
    ("number", Some(JsonScalar::Number)),
    ("boolean", Some(JsonScalar::Boolean)),
];

/// The word a plan file uses for `value` among `choices`.
pub fn word<T: PartialEq>(choices: &[(&'static str, T)], value: &T) -> &'static str {
    choices.iter().find(|(_, v)| v == value).map(|(w, _)| *w).expect("every value has a word")
}

/// A TOML value kept as written, to be checked against a column's type by `resolve`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Integer(i128),
    /// The value and its digits as written (`12.50`), which numeric columns keep exactly.
    Float {
        value: f64,
        text: String,
    },
    String(String),
    Datetime(Datetime),
    Array(Vec<Literal>),
    Table(BTreeMap<String, Literal>),
}

/// Everything one file or the merged files say; `None` and empty maps mean "not said".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    pub defaults: Defaults,
    /// `[finalize]`: what `migrate finalize` does after go-live.
    pub finalize: FinalizeOptions,
    /// By the table key as written (`public.users`).
    pub tables: BTreeMap<String, TableEntry>,
    /// `[files]`: where Supabase Storage objects' bytes are read from.
    pub files: FilesEntry,
}

/// `[files]`: `source = "file:///…"` or `"s3://…"` (src/files/source.rs reads it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilesEntry {
    pub source: Option<At<String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalizeOptions {
    /// `keep_legacy_ids = true`: finalize drops the `by_legacy_id` indexes but leaves the
    /// legacy id fields in the documents.
    pub keep_legacy_ids: Option<At<bool>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    pub naming: Option<At<Naming>>,
    pub legacy_id_field: Option<At<String>>,
    pub nulls: Option<At<NullPolicy>>,
    pub orphans: Option<At<OrphanPolicy>>,
    pub json_keys: Option<At<JsonKeyPolicy>>,
    /// Seconds east of UTC.
    pub timestamp_offset: Option<At<i32>>,
    /// `[defaults.types]`, by the index of [`TYPE_POLICIES`].
    pub types: [Option<At<Policy>>; TYPE_COUNT],
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableEntry {
    /// Where the table key was last written, and its path (`tables."public.users"`).
    pub at: Location,
    pub path: String,
    pub target: Option<At<String>>,
    pub legacy_id: Option<At<Vec<At<String>>>>,
    pub drop: Option<At<Vec<At<String>>>>,
    pub skip: Option<At<bool>>,
    pub merge_into: Option<At<String>>,
    pub on: Option<At<Vec<At<String>>>>,
    pub filter: Option<At<Vec<FilterEntry>>>,
    /// By column name.
    pub columns: BTreeMap<String, ColumnEntry>,
    /// By reference key (columns comma-joined, or the constraint name; a reference with `to`
    /// and `columns` may have any name).
    pub references: BTreeMap<String, ReferenceEntry>,
    /// Fields found inside json columns, by field name.
    pub fields: BTreeMap<String, FieldEntry>,
    /// The Convex component the table's documents go to (auth presets: `betterAuth`).
    pub component: Option<At<String>>,
    /// An auth preset's reshaping of each document (`supabase_user`, …).
    pub shape: Option<At<String>>,
    /// One more Convex index, on these columns' fields, beside those carried from the source
    /// (a natural key the source does not index, such as a member's organization and user).
    pub index: Option<At<Vec<At<String>>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnEntry {
    pub at: Location,
    pub path: String,
    pub field: Option<At<String>>,
    pub policy: Option<At<Policy>>,
    pub default: Option<At<Literal>>,
    pub json_keys: Option<At<JsonKeyPolicy>>,
    /// For char(n): whether the padding is trimmed (the default).
    pub trim: Option<At<bool>>,
    /// With `policy = "file"`: the Supabase Storage bucket the values name objects of.
    pub bucket: Option<At<String>>,
    /// With `policy = "file"`: how the values spell an object.
    pub form: Option<At<PathForm>>,
    /// With `policy = "file"`: what a value naming no object becomes.
    pub orphans: Option<At<OrphanPolicy>>,
}

/// `fields.<name>`: a field whose value is found inside a json column.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldEntry {
    pub at: Location,
    pub path: String,
    /// The json column, then the keys inside it (`raw_user_meta_data.full_name`).
    pub from: Option<At<Vec<String>>>,
    /// `None` inside: `any`.
    pub ty: Option<At<Option<JsonScalar>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceEntry {
    pub at: Location,
    pub path: String,
    pub field: Option<At<String>>,
    pub orphans: Option<At<OrphanPolicy>>,
    /// A reference the database does not declare: the parent table (`schema.table`).
    pub to: Option<At<String>>,
    /// With `to`: the referencing columns, in the order of the parent's legacy id columns;
    /// default the key's columns, comma-joined.
    pub columns: Option<At<Vec<At<String>>>>,
}

/// One `[[filter]]` entry: a column and exactly one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEntry {
    pub column: At<String>,
    pub condition: At<FilterCondition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterCondition {
    IsNull(bool),
    Equals(Literal),
    NotEquals(Literal),
    In(Vec<Literal>),
}

const TOP_KEYS: [&str; 4] = ["defaults", "tables", "finalize", "files"];
const FINALIZE_KEYS: [&str; 1] = ["keep_legacy_ids"];
const FILES_KEYS: [&str; 1] = ["source"];
const DEFAULT_KEYS: [&str; 7] =
    ["naming", "legacy_id_field", "nulls", "orphans", "json_keys", "timestamp_offset", "types"];
const TABLE_KEYS: [&str; 13] = [
    "target",
    "legacy_id",
    "drop",
    "skip",
    "merge_into",
    "on",
    "filter",
    "columns",
    "references",
    "fields",
    "index",
    "component",
    "shape",
];
const COLUMN_KEYS: [&str; 8] =
    ["field", "policy", "default", "json_keys", "trim", "bucket", "form", "orphans"];
const FIELD_KEYS: [&str; 2] = ["from", "type"];
const REFERENCE_KEYS: [&str; 4] = ["field", "orphans", "to", "columns"];
const FILTER_KEYS: [&str; 5] = ["column", "is_null", "equals", "not_equals", "in"];

/// `key` as a TOML key: bare when it can be, else a quoted string.
pub fn quote_key(key: &str) -> String {
    let key = toml_writer::TomlKeyBuilder::new(key);
    toml_writer::ToTomlKey::to_toml_key(&key.as_unquoted().unwrap_or_else(|| key.as_basic()))
}

/// `value` as a TOML basic string: one line, every character TOML does not allow raw escaped
/// (by the toml crates' own writer).
pub fn quote_string(value: &str) -> String {
    toml_writer::ToTomlValue::to_toml_value(&toml_writer::TomlStringBuilder::new(value).as_basic())
}

/// `path.key`, the key quoted when it must be.
pub fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() { quote_key(key) } else { format!("{path}.{}", quote_key(key)) }
}

/// Reads one plan file.
pub fn parse(source: &PlanSource) -> Result<Layer, PlanError> {
    let text = match std::str::from_utf8(&source.bytes) {
        Ok(text) => text,
        Err(error) => {
            let line =
                1 + source.bytes[..error.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            return Err(PlanError::from(PlanErrorKind::NotUtf8 {
                at: Location { file: source.display.clone(), line },
            }));
        }
    };
    let reader = Reader::new(&source.display, text);
    let document = DeTable::parse(text).map_err(|error| {
        PlanError::from(PlanErrorKind::InvalidToml {
            at: reader.at(error.span().unwrap_or(0..0)),
            message: error.message().trim_end().to_owned(),
        })
    })?;
    reader.layer(document.get_ref())
}

/// Applies `later` over `earlier`: key by key, later wins; lists are replaced whole.
pub fn merge(earlier: &mut Layer, later: Layer) {
    over(&mut earlier.finalize.keep_legacy_ids, later.finalize.keep_legacy_ids);
    let d = &mut earlier.defaults;
    let l = later.defaults;
    over(&mut d.naming, l.naming);
    over(&mut d.legacy_id_field, l.legacy_id_field);
    over(&mut d.nulls, l.nulls);
    over(&mut d.orphans, l.orphans);
    over(&mut d.json_keys, l.json_keys);
    over(&mut d.timestamp_offset, l.timestamp_offset);
    for (slot, later) in d.types.iter_mut().zip(l.types) {
        over(slot, later);
    }
    merge_entries(&mut earlier.tables, later.tables);
    over(&mut earlier.files.source, later.files.source);
}

/// An entry that a later file's entry of the same key applies over, key by key.
trait MergeEntry {
    fn merge(&mut self, later: Self);
}

/// Applies `later`'s entries over `earlier`'s: new keys are added, known keys merged.
fn merge_entries<E: MergeEntry>(earlier: &mut BTreeMap<String, E>, later: BTreeMap<String, E>) {
    for (key, entry) in later {
        match earlier.entry(key) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
            btree_map::Entry::Occupied(slot) => slot.into_mut().merge(entry),
        }
    }
}

impl MergeEntry for TableEntry {
    fn merge(&mut self, later: Self) {
        self.at = later.at;
        over(&mut self.target, later.target);
        over(&mut self.legacy_id, later.legacy_id);
        over(&mut self.drop, later.drop);
        over(&mut self.skip, later.skip);
        over(&mut self.merge_into, later.merge_into);
        over(&mut self.on, later.on);
        over(&mut self.filter, later.filter);
        merge_entries(&mut self.columns, later.columns);
        merge_entries(&mut self.references, later.references);
        merge_entries(&mut self.fields, later.fields);
        over(&mut self.component, later.component);
        over(&mut self.shape, later.shape);
    }
}

impl MergeEntry for FieldEntry {
    fn merge(&mut self, later: Self) {
        self.at = later.at;
        over(&mut self.from, later.from);
        over(&mut self.ty, later.ty);
    }
}

impl MergeEntry for ColumnEntry {
    fn merge(&mut self, later: Self) {
        self.at = later.at;
        over(&mut self.field, later.field);
        over(&mut self.policy, later.policy);
        over(&mut self.default, later.default);
        over(&mut self.json_keys, later.json_keys);
        over(&mut self.trim, later.trim);
        over(&mut self.bucket, later.bucket);
        over(&mut self.form, later.form);
        over(&mut self.orphans, later.orphans);
    }
}

impl MergeEntry for ReferenceEntry {
    fn merge(&mut self, later: Self) {
        self.at = later.at;
        over(&mut self.field, later.field);
        over(&mut self.orphans, later.orphans);
        over(&mut self.to, later.to);
        over(&mut self.columns, later.columns);
    }
}

fn over<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// One key of a TOML table, with its place and full path.
struct Entry<'t, 'i> {
    key: &'t str,
    key_at: Location,
    value: &'t Value<'i>,
    path: String,
}

/// Turns one file's TOML tree into a [`Layer`], locating every problem.
struct Reader<'a> {
    file: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { file, line_starts }
    }

    fn at(&self, span: Range<usize>) -> Location {
        let line = self.line_starts.partition_point(|&start| start <= span.start);
        Location { file: self.file.to_owned(), line: line.max(1) }
    }

    /// The keys of `table` in file order, each checked against `allowed`.
    fn entries<'t, 'i>(
        &self,
        table: &'t DeTable<'i>,
        path: &str,
        allowed: &[&'static str],
    ) -> Result<Vec<Entry<'t, 'i>>, PlanError> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| {
                let name: &str = key.get_ref();
                let key_at = self.at(key.span());
                if !allowed.is_empty() && !allowed.contains(&name) {
                    return Err(PlanError::from(PlanErrorKind::UnknownKey {
                        at: key_at,
                        key: name.to_owned(),
                        path: path.to_owned(),
                        expected: allowed.to_vec(),
                        suggestion: suggest(name, allowed.iter().copied()),
                    }));
                }
                Ok(Entry { key: name, key_at, value, path: key_path(path, name) })
            })
            .collect()
    }

    fn wrong_type(&self, value: &Value<'_>, path: &str, expected: &'static str) -> PlanError {
        PlanError::from(PlanErrorKind::WrongType {
            at: self.at(value.span()),
            path: path.to_owned(),
            expected,
            found: kind(value.get_ref()),
        })
    }

    fn table<'t, 'i>(&self, entry: &Entry<'t, 'i>) -> Result<&'t DeTable<'i>, PlanError> {
        match entry.value.get_ref() {
            DeValue::Table(table) => Ok(table),
            _ => Err(self.wrong_type(entry.value, &entry.path, "a table")),
        }
    }

    fn located<T>(&self, value: T, span: Range<usize>, path: &str) -> At<T> {
        At { value, at: self.at(span), path: path.to_owned() }
    }

    fn string(&self, value: &Value<'_>, path: &str) -> Result<At<String>, PlanError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(self.located(s.to_string(), value.span(), path)),
            _ => Err(self.wrong_type(value, path, "a string")),
        }
    }

    fn boolean(&self, entry: &Entry<'_, '_>) -> Result<At<bool>, PlanError> {
        match entry.value.get_ref() {
            DeValue::Boolean(b) => Ok(self.located(*b, entry.value.span(), &entry.path)),
            _ => Err(self.wrong_type(entry.value, &entry.path, "`true` or `false`")),
        }
    }

    fn string_list(&self, entry: &Entry<'_, '_>) -> Result<At<Vec<At<String>>>, PlanError> {
        let DeValue::Array(items) = entry.value.get_ref() else {
            return Err(self.wrong_type(entry.value, &entry.path, "a list of strings"));
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get_ref() {
                DeValue::String(s) => {
                    Ok(self.located(s.to_string(), item.span(), &format!("{}[{i}]", entry.path)))
                }
                _ => Err(self.wrong_type(item, &format!("{}[{i}]", entry.path), "a string")),
            })
            .collect::<Result<_, _>>()?;
        Ok(self.located(items, entry.value.span(), &entry.path))
    }

    /// A string that must be one of `choices`' words.
    fn choice<T: Copy>(
        &self,
        entry: &Entry<'_, '_>,
        choices: &[(&'static str, T)],
    ) -> Result<At<T>, PlanError> {
        let word = self.string(entry.value, &entry.path)?;
        match choices.iter().find(|(w, _)| *w == word.value) {
            Some((_, value)) => Ok(At { value: *value, at: word.at, path: word.path }),
            None => Err(PlanError::from(PlanErrorKind::InvalidValue {
                at: word.at,
                path: word.path,
                expected: format!(
                    "one of {}",
                    choices.iter().map(|(w, _)| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                ),
                suggestion: suggest(&word.value, choices.iter().map(|(w, _)| *w)),
                value: word.value,
            })),
        }
    }

    fn literal(&self, value: &Value<'_>, path: &str) -> Result<Literal, PlanError> {
        Ok(match value.get_ref() {
            DeValue::Boolean(b) => Literal::Bool(*b),
            DeValue::String(s) => Literal::String(s.to_string()),
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Literal::Integer(n),
                Err(_) => {
                    return Err(PlanError::from(PlanErrorKind::Invalid {
                        at: self.at(value.span()),
                        path: path.to_owned(),
                        reason: format!("`{i}` is not an integer this tool can read"),
                        hint: None,
                    }));
                }
            },
            DeValue::Float(f) => {
                let text = f.as_str().to_owned();
                let parsed = match text.trim_start_matches(['+', '-']) {
                    "nan" => Some(f64::NAN),
                    "inf" if text.starts_with('-') => Some(f64::NEG_INFINITY),
                    "inf" => Some(f64::INFINITY),
                    _ => text.parse().ok(),
                };
                match parsed {
                    Some(value) => Literal::Float { value, text },
                    None => {
                        return Err(PlanError::from(PlanErrorKind::Invalid {
                            at: self.at(value.span()),
                            path: path.to_owned(),
                            reason: format!("`{text}` is not a number this tool can read"),
                            hint: None,
                        }));
                    }
                }
            }
            DeValue::Datetime(d) => Literal::Datetime(*d),
            DeValue::Array(items) => Literal::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.literal(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(table) => Literal::Table(
                table
                    .iter()
                    .map(|(k, v)| {
                        let key: &str = k.get_ref();
                        Ok((key.to_owned(), self.literal(v, &key_path(path, key))?))
                    })
                    .collect::<Result<_, PlanError>>()?,
            ),
        })
    }

    fn layer(&self, document: &DeTable<'_>) -> Result<Layer, PlanError> {
        let mut layer = Layer::default();
        for entry in self.entries(document, "", &TOP_KEYS)? {
            match entry.key {
                "defaults" => layer.defaults = self.defaults(&entry)?,
                "finalize" => {
                    for e in self.entries(self.table(&entry)?, &entry.path, &FINALIZE_KEYS)? {
                        layer.finalize.keep_legacy_ids = Some(self.boolean(&e)?);
                    }
                }
                "files" => {
                    for e in self.entries(self.table(&entry)?, &entry.path, &FILES_KEYS)? {
                        // `source`, the only key.
                        layer.files.source = Some(self.string(e.value, &e.path)?);
                    }
                }
                _ => {
                    // `tables`: any key names a table; the catalog decides whether it exists.
                    for table in self.entries(self.table(&entry)?, &entry.path, &[])? {
                        let parsed = self.table_entry(&table)?;
                        layer.tables.insert(table.key.to_owned(), parsed);
                    }
                }
            }
        }
        Ok(layer)
    }

    fn defaults(&self, entry: &Entry<'_, '_>) -> Result<Defaults, PlanError> {
        let mut d = Defaults::default();
        for e in self.entries(self.table(entry)?, &entry.path, &DEFAULT_KEYS)? {
            match e.key {
                "naming" => d.naming = Some(self.choice(&e, &Naming::CHOICES)?),
                "legacy_id_field" => d.legacy_id_field = Some(self.string(e.value, &e.path)?),
                "nulls" => d.nulls = Some(self.choice(&e, &NULLS)?),
                "orphans" => d.orphans = Some(self.choice(&e, &ORPHANS)?),
                "json_keys" => d.json_keys = Some(self.choice(&e, &JSON_KEYS)?),
                "timestamp_offset" => {
                    let text = self.string(e.value, &e.path)?;
                    let Some(seconds) = parse_offset(&text.value) else {
                        return Err(PlanError::from(PlanErrorKind::InvalidValue {
                            at: text.at,
                            path: text.path,
                            value: text.value,
                            expected: "an offset from UTC such as `+00:00` or `-05:30`".into(),
                            suggestion: None,
                        }));
                    };
                    d.timestamp_offset = Some(At { value: seconds, at: text.at, path: text.path });
                }
                _ => {
                    let keys: Vec<_> = TYPE_POLICIES.iter().map(|t| t.key).collect();
                    for t in self.entries(self.table(&e)?, &e.path, &keys)? {
                        let i = TypePolicies::index(t.key).expect("a checked key");
                        let choices = Policy::choices(TYPE_POLICIES[i].policies());
                        d.types[i] = Some(self.choice(&t, &choices)?);
                    }
                }
            }
        }
        Ok(d)
    }

    fn table_entry(&self, entry: &Entry<'_, '_>) -> Result<TableEntry, PlanError> {
        let mut t = TableEntry {
            at: entry.key_at.clone(),
            path: entry.path.clone(),
            target: None,
            legacy_id: None,
            drop: None,
            skip: None,
            merge_into: None,
            on: None,
            filter: None,
            columns: BTreeMap::new(),
            references: BTreeMap::new(),
            fields: BTreeMap::new(),
            component: None,
            shape: None,
            index: None,
        };
        for e in self.entries(self.table(entry)?, &entry.path, &TABLE_KEYS)? {
            match e.key {
                "target" => t.target = Some(self.string(e.value, &e.path)?),
                "component" => t.component = Some(self.string(e.value, &e.path)?),
                "shape" => t.shape = Some(self.string(e.value, &e.path)?),
                "legacy_id" => t.legacy_id = Some(self.string_list(&e)?),
                "drop" => t.drop = Some(self.string_list(&e)?),
                "index" => t.index = Some(self.string_list(&e)?),
                "skip" => t.skip = Some(self.boolean(&e)?),
                "merge_into" => t.merge_into = Some(self.string(e.value, &e.path)?),
                "on" => t.on = Some(self.string_list(&e)?),
                "filter" => t.filter = Some(self.filters(&e)?),
                "columns" => {
                    for c in self.entries(self.table(&e)?, &e.path, &[])? {
                        t.columns.insert(c.key.to_owned(), self.column(&c)?);
                    }
                }
                "fields" => {
                    for f in self.entries(self.table(&e)?, &e.path, &[])? {
                        t.fields.insert(f.key.to_owned(), self.field(&f)?);
                    }
                }
                _ => {
                    for r in self.entries(self.table(&e)?, &e.path, &[])? {
                        t.references.insert(r.key.to_owned(), self.reference(&r)?);
                    }
                }
            }
        }
        Ok(t)
    }

    fn column(&self, entry: &Entry<'_, '_>) -> Result<ColumnEntry, PlanError> {
        let mut c = ColumnEntry {
            at: entry.key_at.clone(),
            path: entry.path.clone(),
            field: None,
            policy: None,
            default: None,
            json_keys: None,
            trim: None,
            bucket: None,
            form: None,
            orphans: None,
        };
        for e in self.entries(self.table(entry)?, &entry.path, &COLUMN_KEYS)? {
            match e.key {
                "field" => c.field = Some(self.string(e.value, &e.path)?),
                "policy" => c.policy = Some(self.choice(&e, &Policy::choices(Policy::ALL))?),
                "default" => {
                    let value = self.literal(e.value, &e.path)?;
                    c.default = Some(self.located(value, e.value.span(), &e.path));
                }
                "trim" => c.trim = Some(self.boolean(&e)?),
                "bucket" => c.bucket = Some(self.string(e.value, &e.path)?),
                "form" => c.form = Some(self.choice(&e, &PathForm::CHOICES)?),
                "orphans" => c.orphans = Some(self.choice(&e, &ORPHANS)?),
                _ => c.json_keys = Some(self.choice(&e, &JSON_KEYS)?),
            }
        }
        Ok(c)
    }

    fn field(&self, entry: &Entry<'_, '_>) -> Result<FieldEntry, PlanError> {
        let mut f =
            FieldEntry { at: entry.key_at.clone(), path: entry.path.clone(), from: None, ty: None };
        for e in self.entries(self.table(entry)?, &entry.path, &FIELD_KEYS)? {
            match e.key {
                "from" => f.from = Some(self.json_path(&e)?),
                _ => f.ty = Some(self.choice(&e, &FIELD_TYPES)?),
            }
        }
        Ok(f)
    }

    /// `from`: `"column.key.key"`, or a list `["column", "key.with.dots"]` for names holding a
    /// `.`; a column and at least one key.
    fn json_path(&self, entry: &Entry<'_, '_>) -> Result<At<Vec<String>>, PlanError> {
        let segments = match entry.value.get_ref() {
            DeValue::String(s) => self.located(
                s.split('.').map(str::to_owned).collect(),
                entry.value.span(),
                &entry.path,
            ),
            DeValue::Array(_) => {
                let list = self.string_list(entry)?;
                let names: Vec<String> = list.value.into_iter().map(|s| s.value).collect();
                At { value: names, at: list.at, path: list.path }
            }
            _ => return Err(self.wrong_type(entry.value, &entry.path, "a string or a list")),
        };
        if segments.value.len() < 2 || segments.value.iter().any(String::is_empty) {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: segments.at,
                path: segments.path,
                reason: format!(
                    "`{}` is not a json column followed by the keys inside it",
                    segments.value.join(".")
                ),
                hint: Some(
                    "write `from = \"column.key\"` (`\"column.key.inner_key\"` deeper), or a \
                     list such as `[\"column\", \"key.with.dots\"]` when a name holds a `.`"
                        .into(),
                ),
            }));
        }
        Ok(segments)
    }

    fn reference(&self, entry: &Entry<'_, '_>) -> Result<ReferenceEntry, PlanError> {
        let mut r = ReferenceEntry {
            at: entry.key_at.clone(),
            path: entry.path.clone(),
            field: None,
            orphans: None,
            to: None,
            columns: None,
        };
        for e in self.entries(self.table(entry)?, &entry.path, &REFERENCE_KEYS)? {
            match e.key {
                "field" => r.field = Some(self.string(e.value, &e.path)?),
                "to" => r.to = Some(self.string(e.value, &e.path)?),
                "columns" => r.columns = Some(self.string_list(&e)?),
                _ => r.orphans = Some(self.choice(&e, &ORPHANS)?),
            }
        }
        Ok(r)
    }

    fn filters(&self, entry: &Entry<'_, '_>) -> Result<At<Vec<FilterEntry>>, PlanError> {
        let DeValue::Array(items) = entry.value.get_ref() else {
            return Err(self.wrong_type(entry.value, &entry.path, "a list of tables"));
        };
        let mut filters = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", entry.path);
            let DeValue::Table(table) = item.get_ref() else {
                return Err(self.wrong_type(item, &path, "a table"));
            };
            let mut column = None;
            let mut conditions = Vec::new();
            for e in self.entries(table, &path, &FILTER_KEYS)? {
                let condition = match e.key {
                    "column" => {
                        column = Some(self.string(e.value, &e.path)?);
                        continue;
                    }
                    "is_null" => FilterCondition::IsNull(self.boolean(&e)?.value),
                    "equals" => FilterCondition::Equals(self.literal(e.value, &e.path)?),
                    "not_equals" => FilterCondition::NotEquals(self.literal(e.value, &e.path)?),
                    _ => match self.literal(e.value, &e.path)? {
                        Literal::Array(values) => FilterCondition::In(values),
                        _ => return Err(self.wrong_type(e.value, &e.path, "a list")),
                    },
                };
                conditions.push(self.located(condition, e.value.span(), &e.path));
            }
            let at = self.at(item.span());
            let Some(column) = column else {
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at,
                    path,
                    reason: "a filter needs `column`".into(),
                    hint: Some("write `column = \"…\"` and one condition".into()),
                }));
            };
            if conditions.len() != 1 {
                let found = if conditions.is_empty() {
                    "none".to_owned()
                } else {
                    conditions
                        .iter()
                        .map(|c| format!("`{}`", c.path.rsplit('.').next().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at,
                    path,
                    reason: format!("a filter needs exactly one condition, found {found}"),
                    hint: Some(
                        "use one of `is_null`, `equals`, `not_equals`, `in`; every filter must \
                         hold, so write two filters for two conditions"
                            .into(),
                    ),
                }));
            }
            let condition = conditions.pop().expect("one condition");
            filters.push(FilterEntry { column, condition });
        }
        Ok(self.located(filters, entry.value.span(), &entry.path))
    }
}

/// The TOML kind of a value, for messages.
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// `+HH:MM` or `-HH:MM` (up to ±15:59, as Postgres allows) as seconds east of UTC.
pub fn parse_offset(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let number = |s: &str| -> Option<i32> {
        if s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let hours = number(&text[1..3])?;
    let minutes = number(&text[4..6])?;
    if hours > 15 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Seconds east of UTC as `+HH:MM`.
pub fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, text: &str) -> PlanSource {
        PlanSource {
            name: name.into(),
            display: format!("migrations/{name}"),
            number: file_number(name).unwrap(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn files_source_is_read_and_a_later_file_wins() {
        let mut layer = parse_text("[files]\nsource = \"file:///srv/copy\"\n").unwrap();
        assert_eq!(layer.files.source.as_ref().unwrap().value, "file:///srv/copy");
        merge(&mut layer, parse_text("[files]\nsource = \"s3://\"\n").unwrap());
        assert_eq!(layer.files.source.unwrap().value, "s3://");
    }

    fn parse_text(text: &str) -> Result<Layer, PlanError> {
        parse(&source("0002_x.toml", text))
    }

    fn error(text: &str) -> (String, Option<String>) {
        let error = parse_text(text).unwrap_err();
        (error.to_string(), error.hint())
    }

    #[test]
    fn file_names_carry_a_number_and_words() {
        assert_eq!(file_number("0001_initial.toml"), Some(1));
        assert_eq!(file_number("12_money_as_cents.toml"), Some(12));
        assert_eq!(file_number("0001.toml"), None);
        assert_eq!(file_number("0001_.toml"), None);
        assert_eq!(file_number("_x.toml"), None);
        assert_eq!(file_number("a1_x.toml"), None);
        assert_eq!(file_number("0001_initial.toml.bak"), None);
        assert_eq!(file_number("0001_initial.TOML"), None);
    }

    #[test]
    fn keys_are_quoted_only_when_they_must_be() {
        assert_eq!(quote_key("balance"), "balance");
        assert_eq!(quote_key("public.users"), r#""public.users""#);
        assert_eq!(quote_key("item name"), r#""item name""#);
        assert_eq!(quote_key(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote_key(""), r#""""#);
        assert_eq!(quote_string("a\\b\u{1}"), r#""a\\b\u0001""#);
        assert_eq!(
            key_path(r#"tables."public.users""#, "item name"),
            r#"tables."public.users"."item name""#
        );
    }

    #[test]
    fn offsets_read_and_print_as_hours_and_minutes() {
        assert_eq!(parse_offset("+00:00"), Some(0));
        assert_eq!(parse_offset("-05:30"), Some(-19800));
        assert_eq!(parse_offset("+14:00"), Some(50400));
        assert_eq!(parse_offset("+16:00"), None);
        assert_eq!(parse_offset("0:00"), None);
        assert_eq!(parse_offset("+1:000"), None);
        assert_eq!(format_offset(-19800), "-05:30");
        assert_eq!(format_offset(0), "+00:00");
    }

    #[test]
    fn a_file_reads_into_located_values() {
        let layer = parse_text(
            r#"
[defaults]
naming = "snake_case"
timestamp_offset = "+02:00"

[defaults.types]
numeric = "cents"

[tables."public.users"]
target = "people"
drop = ["password_hash"]
columns.balance = { field = "balanceCents", policy = "cents", default = 0 }

[[tables."public.users".filter]]
column = "status"
in = ["active", "invited"]

[tables."public.posts".references.author_id]
orphans = "keep_legacy"
"#,
        )
        .unwrap();
        assert_eq!(layer.defaults.naming.as_ref().unwrap().value, Naming::SnakeCase);
        assert_eq!(layer.defaults.timestamp_offset.as_ref().unwrap().value, 7200);
        let numeric =
            layer.defaults.types[TypePolicies::index("numeric").unwrap()].as_ref().unwrap();
        assert_eq!(numeric.value, Policy::Cents);
        assert_eq!(numeric.at.line, 7);
        assert_eq!(numeric.path, "defaults.types.numeric");
        let users = &layer.tables["public.users"];
        assert_eq!(users.at.line, 9);
        assert_eq!(users.target.as_ref().unwrap().value, "people");
        let balance = &users.columns["balance"];
        assert_eq!(balance.path, r#"tables."public.users".columns.balance"#);
        assert_eq!(balance.default.as_ref().unwrap().value, Literal::Integer(0));
        assert_eq!(balance.policy.as_ref().unwrap().at.line, 12);
        let filters = &users.filter.as_ref().unwrap().value;
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0].column.value, "status");
        assert_eq!(
            filters[0].condition.value,
            FilterCondition::In(vec![
                Literal::String("active".into()),
                Literal::String("invited".into())
            ])
        );
        assert_eq!(filters[0].condition.at.line, 16);
        let reference = &layer.tables["public.posts"].references["author_id"];
        assert_eq!(reference.orphans.as_ref().unwrap().value, OrphanPolicy::KeepLegacy);
    }

    #[test]
    fn mistakes_name_the_file_line_and_key() {
        let (message, hint) =
            error("[tables.\"public.users\".columns.balance]\nfield = \"b\"\npolcy = \"cents\"\n");
        assert_eq!(
            message,
            r#"migrations/0002_x.toml:3: unknown key `polcy` in `tables."public.users".columns.balance`"#
        );
        assert_eq!(hint.as_deref(), Some("did you mean `policy`?"));

        let (message, hint) = error("[defaults]\nnaming = \"camelcase\"\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:2: `defaults.naming` cannot be `camelcase`: expected one of \
             `camelCase`, `snake_case`, `keep`"
        );
        assert_eq!(hint.as_deref(), Some("did you mean `camelCase`?"));

        let (message, _) = error("[tables.\"public.users\"]\nskip = \"yes\"\n");
        assert_eq!(
            message,
            r#"migrations/0002_x.toml:2: `tables."public.users".skip` must be `true` or `false`, not a string"#
        );

        let (message, hint) = error("\n\nfrobnicate = 1\n");
        assert_eq!(message, "migrations/0002_x.toml:3: unknown key `frobnicate` at the top level");
        assert_eq!(
            hint.as_deref(),
            Some("expected one of `defaults`, `tables`, `finalize`, `files`")
        );

        let (message, _) = error("[files]\nsource = \"s3://\"\nbucket = \"x\"\n");
        assert_eq!(message, "migrations/0002_x.toml:3: unknown key `bucket` in `files`");

        let (message, _) = error("[defaults.types]\nint8 = \"cents\"\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:2: `defaults.types.int8` cannot be `cents`: expected one of \
             `number`, `int64`, `string`"
        );

        let (message, _) = error("[tables.x]\nlegacy_id = [\"a\", 1]\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:2: `tables.x.legacy_id[1]` must be a string, not an integer"
        );
    }

    #[test]
    fn invalid_toml_keeps_the_parsers_message_with_the_line() {
        let (message, _) = error("[defaults]\nnaming = camelCase\n");
        assert!(message.starts_with("migrations/0002_x.toml:2: invalid TOML: "), "{message}");
        assert!(message.contains("string values must be quoted"), "{message}");
        let (message, _) = error("[a]\nx = 1\n[a]\n");
        assert!(message.starts_with("migrations/0002_x.toml:3: invalid TOML: "), "{message}");
        let error =
            parse(&PlanSource { bytes: b"a = 1\n\xff".to_vec(), ..source("0001_a.toml", "") })
                .unwrap_err();
        assert_eq!(error.to_string(), "migrations/0001_a.toml:2: the file is not UTF-8 text");
    }

    #[test]
    fn a_filter_holds_one_condition() {
        let (message, _) = error("[[tables.t.filter]]\ncolumn = \"a\"\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:1: `tables.t.filter[0]`: a filter needs exactly one \
             condition, found none"
        );
        let (message, _) = error(
            "[[tables.t.filter]]\ncolumn = \"a\"\nis_null = true\n[[tables.t.filter]]\ncolumn = \"a\"\nis_null = true\nequals = 1\n",
        );
        assert_eq!(
            message,
            "migrations/0002_x.toml:4: `tables.t.filter[1]`: a filter needs exactly one \
             condition, found `is_null`, `equals`"
        );
        let (message, _) = error("[[tables.t.filter]]\nis_null = true\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:1: `tables.t.filter[0]`: a filter needs `column`"
        );
        let (message, _) = error("[[tables.t.filter]]\ncolumn = \"a\"\nin = 1\n");
        assert_eq!(
            message,
            "migrations/0002_x.toml:3: `tables.t.filter[0].in` must be a list, not an integer"
        );
    }

    #[test]
    fn later_layers_win_key_by_key_and_replace_lists() {
        let mut merged = parse(&source(
            "0001_a.toml",
            r#"
[defaults]
nulls = "null"
[tables.t]
target = "first"
drop = ["a", "b"]
columns.c = { field = "see", policy = "cents" }
"#,
        ))
        .unwrap();
        let later = parse(&source(
            "0002_b.toml",
            r#"
[tables.t]
drop = ["b"]
columns.c = { policy = "string" }
columns.d = { field = "dee" }
"#,
        ))
        .unwrap();
        merge(&mut merged, later);
        assert_eq!(merged.defaults.nulls.as_ref().unwrap().value, NullPolicy::Null);
        let t = &merged.tables["t"];
        assert_eq!(t.target.as_ref().unwrap().value, "first");
        let drop: Vec<_> =
            t.drop.as_ref().unwrap().value.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(drop, ["b"]);
        assert_eq!(t.drop.as_ref().unwrap().at.file, "migrations/0002_b.toml");
        let c = &t.columns["c"];
        assert_eq!(c.field.as_ref().unwrap().value, "see");
        assert_eq!(c.policy.as_ref().unwrap().value, Policy::String);
        assert_eq!(c.policy.as_ref().unwrap().at.file, "migrations/0002_b.toml");
        assert_eq!(t.columns["d"].field.as_ref().unwrap().value, "dee");
    }

    #[test]
    fn the_directory_lists_numbered_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| std::fs::write(dir.path().join(name), "").unwrap();
        write("0010_later.toml");
        write("0002_second.toml");
        write("1_first.toml");
        write(".gitkeep");
        let names: Vec<_> =
            read_dir(dir.path()).unwrap().sources.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["1_first.toml", "0002_second.toml", "0010_later.toml"]);

        write("0001_again.toml");
        let error = read_dir(dir.path()).unwrap_err();
        assert!(
            matches!(error.kind(), PlanErrorKind::DuplicateNumber { number: 1, .. }),
            "{error}"
        );
        std::fs::remove_file(dir.path().join("0001_again.toml")).unwrap();

        write("notes.md");
        write("20240101_init.sql");
        write("migration_lock.toml");
        std::fs::create_dir(dir.path().join("20240102_users")).unwrap();
        let listed = read_dir(dir.path()).unwrap();
        assert_eq!(listed.sources.len(), 3);
        assert_eq!(
            listed.ignored,
            ["20240101_init.sql", "20240102_users/", "migration_lock.toml", "notes.md"]
        );
        assert_eq!(
            ignored_warning(Path::new("migrations"), &listed.ignored).unwrap(),
            "ignored 4 files in `migrations` that are not plans (NNNN_name.toml): \
             20240101_init.sql, 20240102_users/, migration_lock.toml, notes.md"
        );

        for almost in ["0002-users.toml", "0003.toml", "0004_.toml"] {
            write(almost);
            let error = read_dir(dir.path()).unwrap_err();
            assert!(
                error.to_string().contains(&format!("{almost}` is not a plan file")),
                "{error}"
            );
            std::fs::remove_file(dir.path().join(almost)).unwrap();
        }

        let missing = read_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing.kind(), PlanErrorKind::DirMissing { .. }));
    }
}
