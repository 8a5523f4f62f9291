//! The merged plan files checked against the catalog and turned into the concrete [`Plan`]:
//! every table's fate, target, legacy id, fields, references, filters and merges.
//!
//! Choices docs/plan-format.md leaves open, made here (each also noted where it is made):
//! - A `columns` entry for a legacy-id or foreign-key column makes that column a plain field as
//!   well (e.g. keep `email` as a field when it is the legacy id); without an entry such columns
//!   are not plain fields, but for the columns of a legacy id of several columns, which are
//!   (`drop` leaves one out; a foreign-key column among them is its reference's field). A
//!   reference the plan declares (`to`) is the exception: its columns are never plain fields,
//!   since `init` wrote a `columns` entry for them before it was declared.
//! - A reference on a primary-key column named `id` (a table extending another one to one) is
//!   named after its parent: `userId` ([`reference_field_of`]).
//! - char(n) values lose their padding unless the column says `trim = false`; legacy ids keep
//!   the exported text (references find parents by Postgres' comparison anyway).
//! - `drop` wins over a `columns` entry, so a later file can drop a column an earlier file lists.
//! - A table that merges into another ignores its own `target` and `legacy_id`, and its foreign
//!   keys (other than the one to the target) stay plain fields: [`MergePlan`] holds no references.
//! - A foreign key whose parent is skipped, merged or not exported keeps its columns as plain
//!   fields; a `references` entry for it is not an error (a later file may skip the parent) and
//!   is reported in [`Plan::warnings`].
//! - Reference fields follow the `naming` policy like every field: `author_id` → `authorId`
//!   under camelCase; a composite key gives the name of `<parent target>_id`.
//! - `default` and filter values are stored in the raw form of docs/raw-format.md (bigint and
//!   numeric as strings, timestamps in the export's form), so that transform converts them with
//!   the same code as exported values: `default = 0` on a bigint column is `"0"`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Number, Value};
use toml::value::Datetime;

use super::codegen::LEDGER_TABLE;
use super::error::{Location, MergeProblem, PlanError, PlanErrorKind, suggest};
use super::file::{
    self, At, ColumnEntry, FieldEntry, FilterCondition, FilterEntry, Layer, Literal, Naming,
    Policy, ReferenceEntry, TYPE_COUNT, TYPE_POLICIES, TableEntry, TypePolicies, key_path,
    quote_key,
};
use super::model::{
    AuthShape, ComponentTable, Condition, Conversion, FieldPlan, FileColumnPlan, Indexes,
    JsonKeyPolicy, LegacyId, MergePlan, NullPolicy, OrphanPolicy, Plan, ReferencePlan, RowFilter,
    TablePlan,
};
use crate::calendar;
use crate::catalog::{Catalog, Column, ForeignKey, PgType, Table, TableName};
use crate::convex::rules::{self, MAX_ARRAY_LEN, MAX_IDENTIFIER_LEN, Rule};

mod declared;
mod file_columns;

/// The field holding the legacy id unless `legacy_id_field` says otherwise.
pub const DEFAULT_LEGACY_ID_FIELD: &str = "legacyId";

/// The `[defaults]` once every file is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub naming: Naming,
    pub legacy_id_field: String,
    pub nulls: NullPolicy,
    pub orphans: OrphanPolicy,
    pub json_keys: JsonKeyPolicy,
    /// Seconds east of UTC at which naive timestamps are read.
    pub timestamp_offset: i32,
    /// `[defaults.types]`, by the index of [`TYPE_POLICIES`].
    pub types: [Policy; TYPE_COUNT],
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            naming: Naming::CamelCase,
            legacy_id_field: DEFAULT_LEGACY_ID_FIELD.into(),
            nulls: NullPolicy::Omit,
            orphans: OrphanPolicy::Fail,
            json_keys: JsonKeyPolicy::Rename,
            timestamp_offset: 0,
            types: std::array::from_fn(|i| TYPE_POLICIES[i].default_policy()),
        }
    }
}

impl Settings {
    fn from_layer(layer: &Layer) -> Self {
        let d = &layer.defaults;
        let base = Settings::default();
        fn get<T: Clone>(value: &Option<At<T>>, default: T) -> T {
            value.as_ref().map_or(default, |v| v.value.clone())
        }
        Settings {
            naming: get(&d.naming, base.naming),
            legacy_id_field: get(&d.legacy_id_field, base.legacy_id_field),
            nulls: get(&d.nulls, base.nulls),
            orphans: get(&d.orphans, base.orphans),
            json_keys: get(&d.json_keys, base.json_keys),
            timestamp_offset: get(&d.timestamp_offset, base.timestamp_offset),
            types: std::array::from_fn(|i| get(&d.types[i], base.types[i])),
        }
    }

    /// The policy of `[defaults.types]` for a type, when the type has policies.
    pub fn type_policy(&self, ty: &PgType) -> Option<Policy> {
        TypePolicies::of(ty).map(|(i, _)| self.types[i])
    }
}

/// The policies a type accepts, default first; none for types without policies.
pub fn policies(ty: &PgType) -> Vec<Policy> {
    TypePolicies::of(ty).map_or_else(Vec::new, |(_, t)| t.policies().collect())
}

// ---------------------------------------------------------------------------------------------
// Names

/// The words of a name: runs of ASCII letters and digits, split where the case turns from lower
/// to upper (`createdOn`) and before the last capital of a run of capitals (`HTTPServer`). Every
/// other character (`_`, spaces, quotes, non-ASCII) breaks words.
pub fn words(name: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let bytes = name.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                words.push(&name[s..i]);
            }
            continue;
        }
        match start {
            None => start = Some(i),
            Some(s) if b.is_ascii_uppercase() && i > s => {
                let prev = bytes[i - 1];
                let next_lower = bytes.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                if prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower)
                {
                    words.push(&name[s..i]);
                    start = Some(i);
                }
            }
            Some(_) => {}
        }
    }
    if let Some(s) = start {
        words.push(&name[s..]);
    }
    words
}

/// `created_at` → `createdAt`, `Order Items` → `orderItems`, `HTTPServer` → `httpServer`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, word) in words(name).into_iter().enumerate() {
        let lower = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// `DisplayName` → `display_name`, `Order Items` → `order_items`.
pub fn snake_case(name: &str) -> String {
    words(name).into_iter().map(str::to_ascii_lowercase).collect::<Vec<_>>().join("_")
}

/// The Convex table a source table becomes by default: camelCase of the table name in schema
/// `public`, of `<schema>_<table>` in any other (`auth.users` → `authUsers`).
pub fn default_target(table: &TableName) -> String {
    if table.schema == "public" {
        camel_case(&table.name)
    } else {
        camel_case(&format!("{}_{}", table.schema, table.name))
    }
}

/// The field a column becomes under the naming policy.
pub fn field_name(naming: Naming, column: &str) -> String {
    match naming {
        Naming::CamelCase => camel_case(column),
        Naming::SnakeCase => snake_case(column),
        Naming::Keep => column.to_owned(),
    }
}

/// Why Convex would refuse `name` as a top-level field name, if it would, in the short words
/// plan errors and `migrate init` give ([`rules::check_field_name`] decides).
pub fn identifier_problem(name: &str) -> Option<&'static str> {
    check_field(name).err()
}

/// [`rules::check_field_name`], its rule in the words of [`identifier_phrase`].
fn check_field(name: &str) -> Result<(), &'static str> {
    rules::check_field_name(name).map_err(|rule| identifier_phrase(name, &rule))
}

/// [`rules::check_table_name`], its rule in the words of [`identifier_phrase`]; and the name of
/// the generated module's ledger table ([`LEDGER_TABLE`]) is taken.
fn check_table(name: &str) -> Result<(), &'static str> {
    rules::check_table_name(name).map_err(|rule| identifier_phrase(name, &rule))?;
    if name == LEDGER_TABLE {
        return Err("the generated convex/migrate.ts keeps its ledger in that table");
    }
    Ok(())
}

/// `component` and `shape` of a table entry: the component must be an identifier, the shape
/// one [`AuthShape`] knows, and a shape needs a component.
fn component_table(entry: Option<&TableEntry>) -> Result<Option<ComponentTable>, PlanError> {
    let Some(entry) = entry else { return Ok(None) };
    let invalid = |at: &Location, path: String, reason: String, hint: &str| {
        PlanError::from(PlanErrorKind::Invalid {
            at: at.clone(),
            path,
            reason,
            hint: Some(hint.into()),
        })
    };
    let shape = match &entry.shape {
        None => None,
        Some(shape) => {
            let found = AuthShape::CHOICES.iter().find(|(name, _)| *name == shape.value);
            let names: Vec<_> = AuthShape::CHOICES.iter().map(|(name, _)| *name).collect();
            let Some((_, found)) = found else {
                return Err(invalid(
                    &shape.at,
                    format!("{}.shape", entry.path),
                    format!("unknown shape `{}`", shape.value),
                    &format!("the shapes are {}", names.join(", ")),
                ));
            };
            Some(*found)
        }
    };
    match &entry.component {
        None => match &entry.shape {
            Some(s) => Err(invalid(
                &s.at,
                format!("{}.shape", entry.path),
                "a shape applies only to a table of a component".into(),
                "add `component = \"betterAuth\"`, as the auth presets write it",
            )),
            None => Ok(None),
        },
        Some(component) => {
            let name = &component.value;
            let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(invalid(
                    &component.at,
                    format!("{}.component", entry.path),
                    format!("`{name}` is not a component name"),
                    "a component is named like a Convex identifier: `betterAuth`",
                ));
            }
            Ok(Some(ComponentTable { name: name.clone(), shape }))
        }
    }
}

/// The phrase below is written for this limit.
const _: () = assert!(MAX_IDENTIFIER_LEN == 64);

/// The short phrase for a rule `name` breaks as a table or top-level field name.
///
/// [`Rule`] has one "not an identifier" rule where the phrases tell a bad first character from a
/// bad later one, so for that rule the first character of `name` picks the phrase.
fn identifier_phrase(name: &str, rule: &Rule) -> &'static str {
    match rule {
        Rule::FieldNameEmpty | Rule::TableNameEmpty => "it is empty",
        Rule::FieldNameSystem { .. } | Rule::TableNameSystem { .. } => {
            "a leading `_` is reserved for Convex's system fields"
        }
        Rule::FieldNameDollar { .. } => "it must start with an ASCII letter",
        Rule::FieldNameNotIdentifier { .. } | Rule::TableNameNotIdentifier { .. } => {
            if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                "it may hold only ASCII letters, digits and `_`"
            } else {
                "it must start with an ASCII letter"
            }
        }
        Rule::FieldNameTooLong { .. } | Rule::TableNameTooLong { .. } => {
            "it is longer than 64 characters"
        }
        // The name checks give none of the rules about values.
        _ => "Convex refuses it as a name",
    }
}

/// The legacy id a table gets by default: its primary key, else its first unique key.
pub fn default_legacy_id(table: &Table) -> Option<Vec<String>> {
    if !table.primary_key.is_empty() {
        Some(table.primary_key.clone())
    } else {
        table.unique_keys.first().cloned()
    }
}

/// The key `migrate init` writes for a foreign key: its columns, comma-joined, unless another
/// foreign key of the table has the same columns; then its constraint name.
pub fn reference_key(table: &Table, fk: &ForeignKey) -> String {
    let shared = table.foreign_keys.iter().filter(|other| other.columns == fk.columns).count() > 1;
    if shared { fk.name.clone() } else { fk.columns.join(",") }
}

/// The field a reference gets by default: the single column's field name, or for a composite
/// key the field name of `<parent target>_id`.
pub fn default_reference_field(naming: Naming, fk: &ForeignKey, parent_target: &str) -> String {
    match fk.columns.as_slice() {
        [column] => field_name(naming, column),
        _ => field_name(naming, &format!("{parent_target}_id")),
    }
}

/// The field a reference gets by default, as [`default_reference_field`] gives it, but for a
/// foreign key on one column of the primary key whose name does not say what it refers to
/// (`profiles.id` → `auth.users`, a table extending another one to one): its field is named
/// after the parent table in the singular, `userId`, so that it reads as a reference rather
/// than as the document's own id. When another column's field (by `naming`) or the legacy id
/// field already has that name, the plain default stays.
pub fn reference_field_of(
    naming: Naming,
    table: &Table,
    fk: &ForeignKey,
    parent_target: &str,
    legacy_id_field: &str,
) -> String {
    let plain = default_reference_field(naming, fk, parent_target);
    let [column] = fk.columns.as_slice() else { return plain };
    if !table.primary_key.contains(column) || reads_as_reference(column) {
        return plain;
    }
    let singular = pluralizer::pluralize(&fk.references.name, 1, false);
    let named = field_name(naming, &format!("{singular}_id"));
    let taken = named == legacy_id_field
        || table.columns.iter().any(|c| c.name != *column && field_name(naming, &c.name) == named);
    if taken || check_field(&named).is_err() { plain } else { named }
}

/// `user_id`, `authorId`: a name of several words whose last is `id`.
fn reads_as_reference(column: &str) -> bool {
    let words = words(column);
    words.len() > 1 && words.last().is_some_and(|w| w.eq_ignore_ascii_case("id"))
}

/// Whether a column is left out unless the plan lists it: generated columns and tsvector.
pub fn dropped_by_default(column: &Column) -> bool {
    column.generated || column.ty == PgType::Tsvector
}

// ---------------------------------------------------------------------------------------------
// Resolution

/// What becomes of a source table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate<'c> {
    Migrated,
    Skipped,
    Merged { into: &'c Table },
}

/// Reads every plan file of `plan_dir` in number order, merges them and resolves the result
/// against `catalog`. A directory without plan files means every default.
///
/// The hash covers each file's name and bytes, in order, so that renaming, editing, adding or
/// removing a file changes it.
pub fn load(plan_dir: &Path, catalog: &Catalog) -> Result<Plan, PlanError> {
    load_with(plan_dir, catalog, None)
}

/// [`load`] with one more layer after the plan dir's files (a target's row filters, from
/// `targets.toml`), which the hash leaves out: the plan, and so the deployed module, is the
/// same for every target.
pub fn load_with(
    plan_dir: &Path,
    catalog: &Catalog,
    extra: Option<&file::PlanSource>,
) -> Result<Plan, PlanError> {
    let file::PlanDir { sources, ignored } = file::read_dir(plan_dir)?;
    warn_ignored_once(plan_dir, &ignored);
    let mut layer = Layer::default();
    for source in sources.iter().chain(extra) {
        file::merge(&mut layer, file::parse(source)?);
    }
    resolve(&layer, catalog, hash(&sources))
}

/// The hash of the plan in `plan_dir`, as [`load`] gives it, without resolving the plan.
pub fn current_hash(plan_dir: &Path) -> Result<String, PlanError> {
    Ok(hash(&file::read_dir(plan_dir)?.sources))
}

/// `blake3:<hex>` of each file's name and bytes, in order.
fn hash(sources: &[file::PlanSource]) -> String {
    let mut hasher = blake3::Hasher::new();
    for source in sources {
        // Lengths first, so that no two different sequences of files hash the same.
        hasher.update(&(source.name.len() as u64).to_le_bytes());
        hasher.update(source.name.as_bytes());
        hasher.update(&(source.bytes.len() as u64).to_le_bytes());
        hasher.update(&source.bytes);
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}

/// The tables of `catalog` that have no key to take a legacy id from and that the plan files
/// of `plan_dir` neither give a legacy id nor skip nor merge: what stops `migrate init`'s plan
/// from loading until a person chooses. Empty when the files cannot be read or parsed (loading
/// says why).
pub fn keyless_tables(plan_dir: &Path, catalog: &Catalog) -> Vec<String> {
    let Ok(dir) = file::read_dir(plan_dir) else {
        return Vec::new();
    };
    let mut layer = Layer::default();
    for source in &dir.sources {
        let Ok(parsed) = file::parse(source) else {
            return Vec::new();
        };
        file::merge(&mut layer, parsed);
    }
    catalog
        .tables
        .iter()
        .filter(|table| default_legacy_id(table).is_none())
        .map(|table| table.name.to_string())
        .filter(|key| match layer.tables.get(key) {
            None => true,
            Some(entry) => {
                !entry.skip.as_ref().is_some_and(|s| s.value)
                    && entry.merge_into.is_none()
                    && entry.legacy_id.as_ref().is_none_or(|l| l.value.is_empty())
            }
        })
        .collect()
}

/// Warns about the entries of `plan_dir` that are not plan files, once per process for the same
/// directory and entries (`migrate run` loads the plan in more than one step).
fn warn_ignored_once(plan_dir: &Path, ignored: &[String]) {
    static WARNED: std::sync::Mutex<Vec<(std::path::PathBuf, Vec<String>)>> =
        std::sync::Mutex::new(Vec::new());
    let Some(warning) = file::ignored_warning(plan_dir, ignored) else {
        return;
    };
    let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (plan_dir.to_owned(), ignored.to_vec());
    if !warned.contains(&key) {
        warned.push(key);
        tracing::warn!("{warning}");
    }
}

/// The merged files against the catalog: the plan, or the first problem found.
pub fn resolve(layer: &Layer, catalog: &Catalog, hash: String) -> Result<Plan, PlanError> {
    let mut plan = Resolver::new(layer, catalog)?.run(hash)?;
    plan.files = layer.files.source.as_ref().map(|source| super::model::FilesPlan {
        source: source.value.clone(),
        at: format!("{} {}", source.at, source.path),
    });
    Ok(plan)
}

struct Resolver<'a> {
    catalog: &'a Catalog,
    /// Each catalog table by the `schema.table` key the plan files name it with.
    tables: HashMap<String, &'a Table>,
    settings: Settings,
    /// The plan's entry of each table it mentions.
    entries: HashMap<&'a TableName, &'a TableEntry>,
    /// The `references` entry of each foreign key, by table and constraint name (a declared
    /// reference's name is its key).
    reference_entries: HashMap<(&'a TableName, &'a str), (&'a str, &'a ReferenceEntry)>,
    /// The references each table's entry declares (`to`), in key order.
    declared: HashMap<&'a TableName, Vec<declared::Declared<'a>>>,
    fates: HashMap<&'a TableName, Fate<'a>>,
    /// Where `defaults.legacy_id_field` was set, if it was.
    legacy_id_field_at: Option<Location>,
    targets: HashMap<&'a TableName, String>,
    /// The legacy id columns of each migrated table.
    legacy_ids: HashMap<&'a TableName, Vec<String>>,
    warnings: Vec<String>,
    /// Columns of types without a policy, for one warning line.
    textual: Vec<String>,
    /// The plan has `[files]`: columns may name files (`policy = "file"`).
    moves_files: bool,
}

/// Who already holds a field name in a Convex table, for clash messages.
struct Holder {
    what: String,
    at: Option<Location>,
}

type Fields = BTreeMap<String, Holder>;

fn claim(
    fields: &mut Fields,
    target: &str,
    field: &str,
    what: String,
    at: Option<Location>,
) -> Result<(), PlanError> {
    if let Some(first) = fields.get(field) {
        return Err(PlanError::from(PlanErrorKind::DuplicateField {
            at: at.or_else(|| first.at.clone()),
            target: target.to_owned(),
            field: field.to_owned(),
            first: first.what.clone(),
            second: what,
        }));
    }
    fields.insert(field.to_owned(), Holder { what, at });
    Ok(())
}

/// Each table of `catalog` by its `schema.table` key; when two tables print alike (a `.` inside
/// a name), the first in catalog order.
fn tables_by_key(catalog: &Catalog) -> HashMap<String, &Table> {
    let mut tables = HashMap::with_capacity(catalog.tables.len());
    for table in &catalog.tables {
        tables.entry(table.name.to_string()).or_insert(table);
    }
    tables
}

/// `table`, named at `at` and `path`, is not in the catalog.
fn unknown_table(catalog: &Catalog, at: &Location, path: &str, table: &str) -> PlanError {
    let names: Vec<String> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
    PlanError::from(PlanErrorKind::UnknownTable {
        at: at.clone(),
        path: path.to_owned(),
        table: table.to_owned(),
        suggestion: suggest(table, names.iter().map(String::as_str)),
    })
}

/// The key of `table`'s entry, then `keys` in turn: `tables."public.users".columns.email`.
fn table_key(table: &TableName, keys: &[&str]) -> String {
    keys.iter().fold(key_path("tables", &table.to_string()), |path, key| key_path(&path, key))
}

/// Where a Convex name comes from, for [`PlanErrorKind::InvalidName`]: where it was set (or
/// the entry it belongs to), how messages name its origin, and the key that sets it.
struct NameOrigin {
    at: Option<Location>,
    origin: String,
    key: String,
}

/// Fails when `check` refuses `name` as a Convex `what` (`table` or `field`) name.
fn check_name(
    check: fn(&str) -> Result<(), &'static str>,
    what: &'static str,
    name: &str,
    origin: impl FnOnce() -> NameOrigin,
) -> Result<(), PlanError> {
    let Err(reason) = check(name) else {
        return Ok(());
    };
    let NameOrigin { at, origin, key } = origin();
    Err(PlanError::from(PlanErrorKind::InvalidName {
        at,
        what,
        name: name.to_owned(),
        origin,
        reason,
        key,
    }))
}

/// The warning for a foreign key whose columns stay plain fields, `why` being the reason
/// (`which is skipped`).
fn keeps_legacy(table: &Table, fk: &ForeignKey, why: &str) -> String {
    let (who, s) = if fk.columns.len() == 1 { ("it", "s") } else { ("they", "") };
    format!(
        "{} references `{}`, {why}: {who} keep{s} the legacy value as a plain field",
        backticked_columns(table, &fk.columns),
        fk.references,
    )
}

fn column_path(table: &Table, column: &str) -> String {
    format!("{}.{column}", table.name)
}

impl<'a> Resolver<'a> {
    fn new(layer: &'a Layer, catalog: &'a Catalog) -> Result<Self, PlanError> {
        let settings = Settings::from_layer(layer);
        let legacy_id_field_at = layer.defaults.legacy_id_field.as_ref().map(|f| f.at.clone());
        check_name(check_field, "field", &settings.legacy_id_field, || NameOrigin {
            at: legacy_id_field_at.clone(),
            origin: "`defaults.legacy_id_field`".into(),
            key: "defaults.legacy_id_field".into(),
        })?;
        let mut resolver = Resolver {
            catalog,
            tables: tables_by_key(catalog),
            settings,
            entries: HashMap::new(),
            reference_entries: HashMap::new(),
            declared: HashMap::new(),
            fates: HashMap::new(),
            legacy_id_field_at,
            targets: HashMap::new(),
            legacy_ids: HashMap::new(),
            warnings: Vec::new(),
            textual: Vec::new(),
            moves_files: layer.files.source.is_some(),
        };
        for (key, entry) in &layer.tables {
            let Some(&table) = resolver.tables.get(key) else {
                return Err(unknown_table(catalog, &entry.at, &entry.path, key));
            };
            resolver.check_names(table, entry)?;
            resolver.entries.insert(&table.name, entry);
        }
        Ok(resolver)
    }

    /// Every column and reference the entry names exists; lists hold no column twice.
    fn check_names(&mut self, table: &'a Table, entry: &'a TableEntry) -> Result<(), PlanError> {
        let unknown_column = |name: &At<String>| {
            PlanError::from(PlanErrorKind::UnknownColumn {
                at: name.at.clone(),
                path: name.path.clone(),
                table: table.name.to_string(),
                column: name.value.clone(),
                suggestion: suggest(&name.value, table.columns.iter().map(|c| c.name.as_str())),
            })
        };
        for (name, column) in &entry.columns {
            if table.column(name).is_none() {
                return Err(unknown_column(&At {
                    value: name.clone(),
                    at: column.at.clone(),
                    path: column.path.clone(),
                }));
            }
        }
        for list in [&entry.legacy_id, &entry.drop, &entry.on, &entry.index].into_iter().flatten() {
            for (i, name) in list.value.iter().enumerate() {
                if table.column(&name.value).is_none() {
                    return Err(unknown_column(name));
                }
                if list.value[..i].iter().any(|earlier| earlier.value == name.value) {
                    return Err(PlanError::from(PlanErrorKind::Invalid {
                        at: name.at.clone(),
                        path: list.path.clone(),
                        reason: format!("column `{}` is listed twice", name.value),
                        hint: None,
                    }));
                }
            }
        }
        // A skipped table needs no legacy id: `migrate init` writes `legacy_id = []` for a table
        // without a key, and `skip = true` in a later file is one way forward.
        let skipped = entry.skip.as_ref().is_some_and(|s| s.value);
        let legacy_id = entry.legacy_id.as_ref().filter(|_| !skipped);
        for list in [legacy_id, entry.on.as_ref()].into_iter().flatten() {
            if list.value.is_empty() {
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at: list.at.clone(),
                    path: list.path.clone(),
                    reason: "the list is empty".into(),
                    hint: Some("list the columns that identify a row".into()),
                }));
            }
        }
        for filter in entry.filter.iter().flat_map(|f| &f.value) {
            if table.column(&filter.column.value).is_none() {
                return Err(unknown_column(&filter.column));
            }
        }
        for (name, field) in &entry.fields {
            let Some(from) = &field.from else {
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at: field.at.clone(),
                    path: field.path.clone(),
                    reason: format!("field `{name}` needs `from`"),
                    hint: Some(
                        "name the json column and the keys inside it: \
                         `from = \"raw_user_meta_data.full_name\"`"
                            .into(),
                    ),
                }));
            };
            let column_name =
                At { value: from.value[0].clone(), at: from.at.clone(), path: from.path.clone() };
            let column =
                table.column(&column_name.value).ok_or_else(|| unknown_column(&column_name))?;
            if column.array || !matches!(column.ty, PgType::Json | PgType::Jsonb) {
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at: from.at.clone(),
                    path: from.path.clone(),
                    reason: format!(
                        "`from` starts at column `{}` of type `{}`, not a json or jsonb column",
                        column_path(table, &column.name),
                        column.sql_type
                    ),
                    hint: Some(
                        "a field from `from` is a value inside a json or jsonb column: \
                         `column.key`"
                            .into(),
                    ),
                }));
            }
        }
        if let (Some(skip), Some(merge)) = (&entry.skip, &entry.merge_into)
            && skip.value
        {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: merge.at.clone(),
                path: merge.path.clone(),
                reason: format!("table `{}` is skipped and merged at once", table.name),
                hint: Some(format!("remove `merge_into`, or set `skip = false` ({})", skip.at)),
            }));
        }
        for (key, reference) in &entry.references {
            let name = match &reference.to {
                None => match_reference(table, key, reference)?.name.as_str(),
                Some(to) => {
                    match declared::check(table, key, reference, to, &self.tables, self.catalog)? {
                        declared::Checked::Database(fk) => fk.name.as_str(),
                        declared::Checked::Declared(d) => {
                            self.declared.entry(&table.name).or_default().push(d);
                            key.as_str()
                        }
                    }
                }
            };
            let slot = (&table.name, name);
            if let Some((other, _)) = self.reference_entries.insert(slot, (key, reference)) {
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at: reference.at.clone(),
                    path: reference.path.clone(),
                    reason: format!(
                        "`references.{}` names the same foreign key `{}`",
                        quote_key(other),
                        name
                    ),
                    hint: Some("keep one of the two entries".into()),
                }));
            }
        }
        Ok(())
    }

    fn entry(&self, table: &TableName) -> Option<&'a TableEntry> {
        self.entries.get(table).copied()
    }

    fn run(mut self, hash: String) -> Result<Plan, PlanError> {
        self.decide_fates()?;
        self.decide_targets()?;
        let mut tables = Vec::new();
        let mut fields_of = Vec::new();
        for table in &self.catalog.tables {
            if self.fates[&table.name] == Fate::Migrated {
                let (plan, fields) = self.table_plan(table)?;
                tables.push(plan);
                fields_of.push(fields);
            }
        }
        for table in &self.catalog.tables {
            if let Fate::Merged { into } = self.fates[&table.name] {
                let index = tables
                    .iter()
                    .position(|t| t.source == into.name)
                    .expect("a merge target is migrated");
                let merge = self.merge_plan(table, &tables[index], &mut fields_of[index])?;
                tables[index].merges.push(merge);
            }
        }
        for table in &self.catalog.tables {
            if self.fates[&table.name] == Fate::Migrated {
                let declared = self.declared.get(&table.name).map_or(&[][..], Vec::as_slice);
                self.warnings.extend(declared::partition_warnings(table, declared));
            }
        }
        for table in &mut tables {
            // A component's tables have the component's schema and indexes, not the source's.
            if table.component.is_none() {
                let extra = self.entry(&table.source).and_then(|e| e.index.as_ref());
                let extra: Vec<String> = extra
                    .map(|i| i.value.iter().map(|c| c.value.clone()).collect())
                    .unwrap_or_default();
                table.indexes = super::indexes::derive(self.catalog, table, &extra);
            }
        }
        let skipped = self
            .catalog
            .tables
            .iter()
            .filter(|t| self.fates[&t.name] == Fate::Skipped)
            .map(|t| t.name.clone())
            .collect();
        if !self.textual.is_empty() {
            self.warnings.push(format!(
                "columns of types without a policy travel as their text form: {}",
                self.textual.join(", ")
            ));
        }
        Ok(Plan { tables, skipped, hash, warnings: self.warnings, files: None })
    }

    fn decide_fates(&mut self) -> Result<(), PlanError> {
        for table in &self.catalog.tables {
            let entry = self.entry(&table.name);
            let fate = match entry {
                Some(TableEntry { skip: Some(skip), .. }) if skip.value => Fate::Skipped,
                Some(TableEntry { merge_into: Some(into), .. }) => {
                    let Some(&target) = self.tables.get(&into.value) else {
                        return Err(unknown_table(self.catalog, &into.at, &into.path, &into.value));
                    };
                    if target.name == table.name {
                        return Err(PlanError::from(PlanErrorKind::MergeTarget {
                            at: into.at.clone(),
                            table: table.name.to_string(),
                            target: into.value.clone(),
                            problem: MergeProblem::Itself,
                        }));
                    }
                    Fate::Merged { into: target }
                }
                _ => Fate::Migrated,
            };
            self.fates.insert(&table.name, fate);
        }
        for table in &self.catalog.tables {
            let Fate::Merged { into } = self.fates[&table.name] else { continue };
            let problem = match self.fates[&into.name] {
                Fate::Migrated => continue,
                Fate::Skipped => MergeProblem::Skipped,
                Fate::Merged { into: further } => {
                    MergeProblem::Merged { into: further.name.to_string() }
                }
            };
            let at = self.entry(&table.name).and_then(|e| e.merge_into.as_ref()).expect("merged");
            return Err(PlanError::from(PlanErrorKind::MergeTarget {
                at: at.at.clone(),
                table: table.name.to_string(),
                target: into.name.to_string(),
                problem,
            }));
        }
        Ok(())
    }

    fn decide_targets(&mut self) -> Result<(), PlanError> {
        let mut taken: HashMap<String, (&TableName, Option<Location>)> = HashMap::new();
        for table in &self.catalog.tables {
            if self.fates[&table.name] != Fate::Migrated {
                continue;
            }
            let entry = self.entry(&table.name);
            let set = entry.and_then(|e| e.target.as_ref());
            let target = set.map_or_else(|| default_target(&table.name), |t| t.value.clone());
            let at = set.map(|t| t.at.clone());
            check_name(check_table, "table", &target, || NameOrigin {
                at: at.clone().or_else(|| entry.map(|e| e.at.clone())),
                origin: match set {
                    Some(_) => format!("target of `{}`", table.name),
                    None => format!("the default name of `{}`", table.name),
                },
                key: table_key(&table.name, &["target"]),
            })?;
            if let Some((first, first_at)) = taken.get(&target) {
                return Err(PlanError::from(PlanErrorKind::DuplicateTarget {
                    also: at.as_ref().and(first_at.clone()),
                    at: at.clone().or_else(|| first_at.clone()),
                    first: first.to_string(),
                    second: table.name.to_string(),
                    target,
                }));
            }
            taken.insert(target.clone(), (&table.name, at));
            self.targets.insert(&table.name, target);
            let legacy_id = match entry.and_then(|e| e.legacy_id.as_ref()) {
                Some(list) => list.value.iter().map(|c| c.value.clone()).collect(),
                None => default_legacy_id(table).ok_or_else(|| {
                    PlanError::from(PlanErrorKind::NoLegacyId {
                        at: entry.map(|e| e.at.clone()),
                        table: table.name.to_string(),
                    })
                })?,
            };
            self.legacy_ids.insert(&table.name, legacy_id);
        }
        Ok(())
    }

    fn table_plan(&mut self, table: &'a Table) -> Result<(TablePlan, Fields), PlanError> {
        let entry = self.entry(&table.name);
        let target = self.targets[&table.name].clone();
        let legacy_columns = self.legacy_ids[&table.name].clone();
        let mut fields = Fields::new();
        claim(
            &mut fields,
            &target,
            &self.settings.legacy_id_field,
            "the legacy id".into(),
            self.legacy_id_field_at.clone(),
        )?;

        let mut references = Vec::new();
        let mut referenced: Vec<&str> = Vec::new();
        let declared = self.declared_foreign_keys(table)?;
        for fk in table.foreign_keys.iter().chain(&declared) {
            let reference_entry = self.reference_entries.get(&(&table.name, fk.name.as_str()));
            let parent_fate = self.fates.get(&fk.references).copied();
            // Import finds the parent by its legacy id, so the key must reference exactly the
            // parent's legacy id columns; the reference holds the columns in that order.
            let columns = match parent_fate {
                Some(Fate::Migrated) => {
                    reference_columns(fk, &self.legacy_ids[&fk.references]).ok_or("")
                }
                _ => Err(""),
            };
            let Ok(columns) = columns else {
                let why = match parent_fate {
                    None => "which was not exported".to_owned(),
                    Some(Fate::Skipped) => "which is skipped".to_owned(),
                    Some(Fate::Merged { .. }) => "which is merged into another table".to_owned(),
                    Some(Fate::Migrated) => format!(
                        "but by {} rather than its legacy id ({})",
                        backticked(&fk.referenced_columns),
                        backticked(&self.legacy_ids[&fk.references])
                    ),
                };
                let mut warning = keeps_legacy(table, fk, &why);
                if let Some((_, r)) = reference_entry {
                    warning.push_str(&format!(" (`{}` at {} does not apply)", r.path, r.at));
                }
                self.warnings.push(warning);
                continue;
            };
            let parent_target = self.targets[&fk.references].clone();
            let set = reference_entry.and_then(|(_, r)| r.field.as_ref());
            let field = set.map_or_else(
                || {
                    let naming = self.settings.naming;
                    let legacy_field = &self.settings.legacy_id_field;
                    reference_field_of(naming, table, fk, &parent_target, legacy_field)
                },
                |f| f.value.clone(),
            );
            let at = set.map(|f| f.at.clone());
            check_name(check_field, "field", &field, || NameOrigin {
                at: at.clone().or_else(|| reference_entry.map(|(_, r)| r.at.clone())),
                origin: format!("reference `{}` of `{}`", fk.name, table.name),
                key: match reference_entry {
                    Some((_, r)) => format!("{}.field", r.path),
                    None => {
                        table_key(&table.name, &["references", &reference_key(table, fk), "field"])
                    }
                },
            })?;
            claim(
                &mut fields,
                &target,
                &field,
                format!("reference `{}` ({})", fk.name, backticked_columns(table, &fk.columns)),
                at,
            )?;
            let orphans = reference_entry
                .and_then(|(_, r)| r.orphans.as_ref())
                .map_or(self.settings.orphans, |o| o.value);
            references.push(ReferencePlan {
                constraint: fk.name.clone(),
                columns,
                field,
                parent: fk.references.clone(),
                parent_target,
                orphans,
                optional: fk
                    .columns
                    .iter()
                    .any(|c| table.column(c).is_none_or(|column| column.nullable)),
            });
            referenced.extend(fk.columns.iter().map(String::as_str));
        }

        let mut plain = Vec::new();
        let mut files = Vec::new();
        for column in &table.columns {
            let explicit = entry.and_then(|e| e.columns.get(&column.name));
            if self.is_dropped(entry, column) {
                continue;
            }
            if let Some((file, at)) = self.file_plan(table, column, explicit)? {
                let what = format!("file column `{}`", column_path(table, &column.name));
                claim(&mut fields, &target, &file.field, what, at)?;
                files.push(file);
                continue;
            }
            // A foreign-key column, or the one column of a legacy id, is a plain field only when
            // listed in `columns`; each column of a legacy id of several columns is one (the
            // legacy id holds their values only as strings inside one string).
            if explicit.is_none()
                && (legacy_columns == std::slice::from_ref(&column.name)
                    || referenced.contains(&column.name.as_str()))
            {
                continue;
            }
            // A declared reference's column never is: its `columns` entry is the one `init`
            // wrote before the reference was declared.
            if declared.iter().any(|fk| fk.columns.contains(&column.name)) {
                continue;
            }
            let (field, at) = self.field_plan(table, column, explicit, false)?;
            claim(
                &mut fields,
                &target,
                &field.field,
                format!("column `{}`", column_path(table, &column.name)),
                at,
            )?;
            plain.push(field);
        }
        for (field, at) in self.path_fields(table, entry)? {
            let what = format!("`{}` inside json column `{}`", field.source(), field.column);
            claim(&mut fields, &target, &field.field, what, at)?;
            plain.push(field);
        }
        let filters = self.filters(table, entry)?;
        let component = component_table(entry)?;
        if let (Some(component), Some(file)) = (&component, files.first()) {
            let policy = entry
                .and_then(|e| e.columns.get(&file.column))
                .and_then(|c| c.policy.as_ref())
                .expect("a file column has its policy");
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: policy.at.clone(),
                path: policy.path.clone(),
                reason: format!(
                    "`{}` is a table of the component `{}`, whose schema is the component's: \
                     its columns cannot become files",
                    table.name, component.name
                ),
                hint: Some("remove `policy = \"file\"`: the column stays a string".into()),
            }));
        }
        let plan = TablePlan {
            source: table.name.clone(),
            target,
            legacy_id: LegacyId {
                field: self.settings.legacy_id_field.clone(),
                columns: legacy_columns,
            },
            fields: plain,
            references,
            files,
            filters,
            merges: Vec::new(),
            nulls: self.settings.nulls,
            indexes: Indexes::default(),
            component,
        };
        Ok((plan, fields))
    }

    /// The references `table`'s entry declares, as foreign keys of their parents' legacy ids.
    fn declared_foreign_keys(&self, table: &Table) -> Result<Vec<ForeignKey>, PlanError> {
        let Some(declared) = self.declared.get(&table.name) else { return Ok(Vec::new()) };
        declared::foreign_keys(table, declared, |parent| match self.fates[parent] {
            Fate::Migrated => {
                declared::ParentFate::Migrated { legacy_id: self.legacy_ids[parent].clone() }
            }
            Fate::Skipped => declared::ParentFate::Skipped,
            Fate::Merged { into } => declared::ParentFate::Merged { into: into.name.clone() },
        })
    }

    /// Listed in `drop`, or dropped by default and not listed in `columns`. `drop` wins over a
    /// `columns` entry, so that a later file can drop a column an earlier one lists.
    fn is_dropped(&self, entry: Option<&TableEntry>, column: &Column) -> bool {
        let listed = entry
            .and_then(|e| e.drop.as_ref())
            .is_some_and(|drop| drop.value.iter().any(|c| c.value == column.name));
        let explicit = entry.is_some_and(|e| e.columns.contains_key(&column.name));
        listed || (dropped_by_default(column) && !explicit)
    }

    fn merge_plan(
        &mut self,
        table: &'a Table,
        target: &TablePlan,
        fields: &mut Fields,
    ) -> Result<MergePlan, PlanError> {
        let entry = self.entry(&table.name).expect("a merged table has an entry");
        let into = entry.merge_into.as_ref().expect("a merged table names its target");
        if let Some(d) = self.declared.get(&table.name).and_then(|d| d.first()) {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: d.to.at.clone(),
                path: d.entry.path.clone(),
                reason: format!(
                    "`{}` merges into `{}`, and a merged table's rows hold no references",
                    table.name, target.source
                ),
                hint: Some(format!(
                    "remove `to`, or keep `{}` a table of its own; `on` says how it joins `{}`",
                    table.name, target.source
                )),
            }));
        }
        let merge_error = |reason: String| {
            PlanError::from(PlanErrorKind::MergeOn {
                at: into.at.clone(),
                table: table.name.to_string(),
                target: target.source.to_string(),
                reason,
            })
        };
        let legacy = &target.legacy_id.columns;
        let on: Vec<String> = match &entry.on {
            Some(on) => {
                if on.value.len() != legacy.len() {
                    return Err(PlanError::from(PlanErrorKind::MergeOn {
                        at: on.at.clone(),
                        table: table.name.to_string(),
                        target: target.source.to_string(),
                        reason: format!(
                            "`on` has {} column{}, the legacy id of `{}` has {} ({})",
                            on.value.len(),
                            if on.value.len() == 1 { "" } else { "s" },
                            target.source,
                            legacy.len(),
                            legacy.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                        ),
                    }));
                }
                on.value.iter().map(|c| c.value.clone()).collect()
            }
            None => {
                let fks: Vec<&ForeignKey> =
                    table.foreign_keys.iter().filter(|fk| fk.references == target.source).collect();
                let fk = match fks.as_slice() {
                    [fk] => *fk,
                    [] => {
                        return Err(merge_error(format!(
                            "it has no foreign key to `{}` to take `on` from",
                            target.source
                        )));
                    }
                    several => {
                        return Err(merge_error(format!(
                            "it has several foreign keys to `{}` ({}): `on` must say which",
                            target.source,
                            several
                                .iter()
                                .map(|fk| format!("`{}`", fk.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                };
                // The foreign key's columns, in the order of the target's legacy id columns.
                reference_columns(fk, legacy).ok_or_else(|| {
                    merge_error(format!(
                        "its foreign key `{}` references {}, not the legacy id ({}) of `{}`",
                        fk.name,
                        backticked(&fk.referenced_columns),
                        backticked(legacy),
                        target.source
                    ))
                })?
            }
        };
        for fk in &table.foreign_keys {
            if fk.references == target.source && fk.columns.iter().all(|c| on.contains(c)) {
                continue;
            }
            let why = format!("but `{}` merges into `{}`", table.name, target.source);
            self.warnings.push(keeps_legacy(table, fk, &why));
        }
        let mut merged = Vec::new();
        for column in &table.columns {
            let explicit = entry.columns.get(&column.name);
            if self.is_dropped(Some(entry), column)
                || (explicit.is_none() && on.contains(&column.name))
            {
                continue;
            }
            if self.file_plan(table, column, explicit)?.is_some() {
                let policy = explicit.and_then(|c| c.policy.as_ref()).expect("a file policy");
                return Err(PlanError::from(PlanErrorKind::Invalid {
                    at: policy.at.clone(),
                    path: policy.path.clone(),
                    reason: format!(
                        "`{}` merges into `{}`, and a merged table's columns cannot name files",
                        table.name, target.source
                    ),
                    hint: Some(format!(
                        "keep `{}` a table of its own, or remove `policy = \"file\"`",
                        table.name
                    )),
                }));
            }
            let (field, at) = self.field_plan(table, column, explicit, true)?;
            claim(
                fields,
                &target.target,
                &field.field,
                format!("column `{}` (merged)", column_path(table, &column.name)),
                at,
            )?;
            merged.push(field);
        }
        for (mut field, at) in self.path_fields(table, Some(entry))? {
            let what =
                format!("`{}` inside json column `{}` (merged)", field.source(), field.column);
            claim(fields, &target.target, &field.field, what, at)?;
            field.optional = true;
            merged.push(field);
        }
        Ok(MergePlan {
            source: table.name.clone(),
            on,
            fields: merged,
            filters: self.filters(table, Some(entry))?,
        })
    }

    /// The file column `explicit` makes of `column` (`policy = "file"`), with the place its
    /// field name was set; `None` for any other column.
    fn file_plan(
        &self,
        table: &Table,
        column: &Column,
        explicit: Option<&ColumnEntry>,
    ) -> Result<Option<(FileColumnPlan, Option<Location>)>, PlanError> {
        let Some(explicit) = explicit else { return Ok(None) };
        let set = explicit.field.as_ref();
        let field =
            set.map_or_else(|| field_name(self.settings.naming, &column.name), |f| f.value.clone());
        let orphans = self.settings.orphans;
        let Some(file) =
            file_columns::file_column(table, column, explicit, field, orphans, self.moves_files)?
        else {
            return Ok(None);
        };
        let at = set.map(|f| f.at.clone());
        check_name(check_field, "field", &file.field, || NameOrigin {
            at: at.clone().or_else(|| Some(explicit.at.clone())),
            origin: format!("column `{}`", column_path(table, &column.name)),
            key: table_key(&table.name, &["columns", &column.name, "field"]),
        })?;
        Ok(Some((file, at)))
    }

    /// One column as a plain field, with the place its field name was set.
    fn field_plan(
        &mut self,
        table: &Table,
        column: &Column,
        explicit: Option<&ColumnEntry>,
        merged: bool,
    ) -> Result<(FieldPlan, Option<Location>), PlanError> {
        let set = explicit.and_then(|c| c.field.as_ref());
        let field =
            set.map_or_else(|| field_name(self.settings.naming, &column.name), |f| f.value.clone());
        let at = set.map(|f| f.at.clone());
        check_name(check_field, "field", &field, || NameOrigin {
            at: at.clone().or_else(|| explicit.map(|c| c.at.clone())),
            origin: format!("column `{}`", column_path(table, &column.name)),
            key: table_key(&table.name, &["columns", &column.name, "field"]),
        })?;
        let conversion = self.conversion(
            table,
            column,
            explicit.and_then(|c| c.policy.as_ref()),
            explicit.and_then(|c| c.json_keys.as_ref()),
        )?;
        let conversion =
            trimmed(table, column, explicit.and_then(|c| c.trim.as_ref()), conversion)?;
        if matches!(column.ty, PgType::Other(_)) {
            self.textual.push(format!(
                "`{}` ({})",
                column_path(table, &column.name),
                column.sql_type
            ));
        }
        let default = match explicit.and_then(|c| c.default.as_ref()) {
            None => None,
            Some(literal) => {
                let invalid = |reason: String| {
                    PlanError::from(PlanErrorKind::InvalidLiteral {
                        at: literal.at.clone(),
                        path: literal.path.clone(),
                        column: column_path(table, &column.name),
                        sql_type: column.sql_type.clone(),
                        reason,
                    })
                };
                let raw = raw_value(&literal.value, column).map_err(invalid)?;
                convertible(&raw, &conversion).map_err(invalid)?;
                Some(raw)
            }
        };
        let optional = merged || (column.nullable && default.is_none());
        let column = column.name.clone();
        Ok((FieldPlan { column, field, conversion, default, optional, path: Vec::new() }, at))
    }

    fn conversion(
        &self,
        table: &Table,
        column: &Column,
        policy: Option<&At<Policy>>,
        json_keys: Option<&At<JsonKeyPolicy>>,
    ) -> Result<Conversion, PlanError> {
        // json and jsonb take one policy, per column: `string`, the value as its JSON text.
        let allowed = match column.ty {
            PgType::Json | PgType::Jsonb => vec![Policy::String],
            ref ty => policies(ty),
        };
        if let Some(policy) = policy
            && !allowed.contains(&policy.value)
        {
            return Err(PlanError::from(PlanErrorKind::PolicyMismatch {
                at: policy.at.clone(),
                path: policy.path.clone(),
                policy: policy.value.name().into(),
                column: column_path(table, &column.name),
                sql_type: column.sql_type.clone(),
                allowed: allowed.iter().map(|p| p.name()).collect(),
            }));
        }
        if let Some(keys) = json_keys
            && !matches!(column.ty, PgType::Json | PgType::Jsonb)
        {
            return Err(PlanError::from(PlanErrorKind::JsonKeysMismatch {
                at: keys.at.clone(),
                path: keys.path.clone(),
                column: column_path(table, &column.name),
                sql_type: column.sql_type.clone(),
            }));
        }
        let policy = policy.map(|p| p.value).or_else(|| self.settings.type_policy(&column.ty));
        let element = match &column.ty {
            PgType::Bool => Conversion::Boolean,
            PgType::Int2 | PgType::Int4 | PgType::Float4 | PgType::Float8 => Conversion::Float64,
            PgType::Int8 => match policy {
                Some(Policy::Int64) => Conversion::Int8AsInt64,
                Some(Policy::String) => Conversion::Int8AsString,
                _ => Conversion::Int8AsNumber,
            },
            PgType::Numeric => match policy {
                Some(Policy::String) => Conversion::NumericAsString,
                Some(Policy::Cents) => Conversion::NumericAsCents,
                Some(Policy::Int64) => Conversion::NumericAsInt64,
                _ => Conversion::NumericAsNumber,
            },
            PgType::Text
            | PgType::Varchar
            | PgType::Bpchar
            | PgType::Citext
            | PgType::Uuid
            | PgType::Inet
            | PgType::Time
            | PgType::Interval
            | PgType::Tsvector
            | PgType::Other(_) => Conversion::String,
            PgType::Enum { labels, .. } => Conversion::Enum { labels: labels.clone() },
            PgType::Timestamp | PgType::Timestamptz => match policy {
                Some(Policy::Iso) => Conversion::TimestampIso,
                _ => Conversion::TimestampMs {
                    offset_seconds: if column.ty == PgType::Timestamp {
                        self.settings.timestamp_offset
                    } else {
                        0
                    },
                },
            },
            PgType::Date => match policy {
                Some(Policy::Ms) => Conversion::DateMs,
                _ => Conversion::DateString,
            },
            PgType::Json | PgType::Jsonb => match policy {
                Some(Policy::String) => Conversion::JsonText,
                _ => Conversion::Json {
                    keys: json_keys.map_or(self.settings.json_keys, |k| k.value),
                },
            },
            PgType::Bytea => Conversion::Bytes,
            PgType::Convex(validator) => Conversion::Convex(validator.clone()),
        };
        Ok(if column.array { Conversion::Array(Box::new(element)) } else { element })
    }

    /// The fields of `entry` found inside json columns (`fields.<name>.from`), by name, with
    /// where each was set.
    fn path_fields(
        &self,
        table: &Table,
        entry: Option<&TableEntry>,
    ) -> Result<Vec<(FieldPlan, Option<Location>)>, PlanError> {
        let mut out = Vec::new();
        for (name, field) in entry.map(|e| &e.fields).into_iter().flatten() {
            out.push((self.path_field(table, entry, name, field)?, Some(field.at.clone())));
        }
        Ok(out)
    }

    fn path_field(
        &self,
        table: &Table,
        entry: Option<&TableEntry>,
        name: &str,
        field: &FieldEntry,
    ) -> Result<FieldPlan, PlanError> {
        let from = field.from.as_ref().expect("checked: every field entry has `from`");
        let (column, path) = from.value.split_first().expect("checked: a column and keys");
        check_name(check_field, "field", name, || NameOrigin {
            at: Some(field.at.clone()),
            origin: format!("`{}` inside `{}`", from.value.join("."), column_path(table, column)),
            key: field.path.clone(),
        })?;
        let conversion = match field.ty.as_ref().and_then(|t| t.value) {
            Some(scalar) => Conversion::JsonScalar(scalar),
            None => {
                let keys =
                    entry.and_then(|e| e.columns.get(column)).and_then(|c| c.json_keys.as_ref());
                Conversion::Json { keys: keys.map_or(self.settings.json_keys, |k| k.value) }
            }
        };
        Ok(FieldPlan {
            column: column.clone(),
            field: name.to_owned(),
            conversion,
            default: None,
            optional: true,
            path: path.to_vec(),
        })
    }

    fn filters(
        &self,
        table: &Table,
        entry: Option<&TableEntry>,
    ) -> Result<Vec<RowFilter>, PlanError> {
        let Some(filters) = entry.and_then(|e| e.filter.as_ref()) else { return Ok(Vec::new()) };
        filters.value.iter().map(|filter| filter_plan(table, filter)).collect()
    }
}

/// A char(n) column's conversion, its padding trimmed unless the plan says `trim = false`;
/// `trim` on a column of another type is an error.
fn trimmed(
    table: &Table,
    column: &Column,
    trim: Option<&At<bool>>,
    conversion: Conversion,
) -> Result<Conversion, PlanError> {
    if column.ty != PgType::Bpchar {
        if let Some(trim) = trim {
            return Err(PlanError::from(PlanErrorKind::Invalid {
                at: trim.at.clone(),
                path: trim.path.clone(),
                reason: format!(
                    "`trim` does not apply to column `{}` of type `{}`",
                    column_path(table, &column.name),
                    column.sql_type
                ),
                hint: Some("`trim` is for char(n) columns, whose values are padded".into()),
            }));
        }
        return Ok(conversion);
    }
    if trim.is_some_and(|t| !t.value) {
        return Ok(conversion);
    }
    Ok(match conversion {
        Conversion::String => Conversion::StringTrimEnd,
        Conversion::Array(element) if *element == Conversion::String => {
            Conversion::Array(Box::new(Conversion::StringTrimEnd))
        }
        other => other,
    })
}

fn filter_plan(table: &Table, filter: &FilterEntry) -> Result<RowFilter, PlanError> {
    let column = table.column(&filter.column.value).expect("filter columns are checked");
    let raw = |literal: &Literal| {
        raw_value(literal, column).map_err(|reason| {
            PlanError::from(PlanErrorKind::InvalidLiteral {
                at: filter.condition.at.clone(),
                path: filter.condition.path.clone(),
                column: column_path(table, &column.name),
                sql_type: column.sql_type.clone(),
                reason,
            })
        })
    };
    let condition = match &filter.condition.value {
        FilterCondition::IsNull(true) => Condition::IsNull,
        FilterCondition::IsNull(false) => Condition::IsNotNull,
        FilterCondition::Equals(value) => Condition::Equals(raw(value)?),
        FilterCondition::NotEquals(value) => Condition::NotEquals(raw(value)?),
        FilterCondition::In(values) => {
            Condition::In(values.iter().map(raw).collect::<Result<_, _>>()?)
        }
    };
    Ok(RowFilter { column: column.name.clone(), condition })
}

fn backticked(names: &[String]) -> String {
    names.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}

/// The foreign key's columns in the order of the parent's legacy id columns, when the key
/// references exactly those columns: import builds the parent's legacy id from them.
pub fn reference_columns(fk: &ForeignKey, parent_legacy_id: &[String]) -> Option<Vec<String>> {
    if fk.referenced_columns.len() != parent_legacy_id.len() {
        return None;
    }
    parent_legacy_id
        .iter()
        .map(|legacy| {
            let i = fk.referenced_columns.iter().position(|c| c == legacy)?;
            fk.columns.get(i).cloned()
        })
        .collect()
}

fn backticked_columns(table: &Table, columns: &[String]) -> String {
    columns.iter().map(|c| format!("`{}`", column_path(table, c))).collect::<Vec<_>>().join(", ")
}

/// The foreign key a `references` key names: by constraint name, or by its columns
/// comma-joined (spaces after commas allowed).
fn match_reference<'t>(
    table: &'t Table,
    key: &str,
    entry: &ReferenceEntry,
) -> Result<&'t ForeignKey, PlanError> {
    if let Some(fk) = table.foreign_keys.iter().find(|fk| fk.name == key) {
        return Ok(fk);
    }
    let columns: Vec<&str> = key.split(',').map(str::trim).collect();
    let by_columns: Vec<&ForeignKey> = table
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns.iter().map(String::as_str).eq(columns.iter().copied()))
        .collect();
    match by_columns.as_slice() {
        [fk] => Ok(fk),
        [] => {
            let keys: Vec<String> = table
                .foreign_keys
                .iter()
                .flat_map(|fk| [fk.columns.join(","), fk.name.clone()])
                .collect();
            Err(PlanError::from(PlanErrorKind::UnknownReference {
                at: entry.at.clone(),
                path: entry.path.clone(),
                table: table.name.to_string(),
                suggestion: suggest(key, keys.iter().map(String::as_str)),
                keys,
            }))
        }
        several => Err(PlanError::from(PlanErrorKind::Invalid {
            at: entry.at.clone(),
            path: entry.path.clone(),
            reason: format!("several foreign keys have the columns `{key}`"),
            hint: Some(format!(
                "name one by its constraint: {}",
                several.iter().map(|fk| format!("`{}`", fk.name)).collect::<Vec<_>>().join(", ")
            )),
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Values written in the plan (`default`, filters), as raw values (docs/raw-format.md)

fn found(literal: &Literal) -> &'static str {
    match literal {
        Literal::Bool(_) => "a boolean",
        Literal::Integer(_) => "an integer",
        Literal::Float { .. } => "a float",
        Literal::String(_) => "a string",
        Literal::Datetime(_) => "a date-time",
        Literal::Array(_) => "a list",
        Literal::Table(_) => "a table",
    }
}

fn expected(what: &str, literal: &Literal) -> String {
    format!("expected {what}, found {}", found(literal))
}

/// The raw form of `literal` as a value of `column`, or why it cannot be one.
pub fn raw_value(literal: &Literal, column: &Column) -> Result<Value, String> {
    if column.array { raw_array(literal, &column.ty) } else { raw_scalar(literal, &column.ty) }
}

fn raw_array(literal: &Literal, ty: &PgType) -> Result<Value, String> {
    let Literal::Array(items) = literal else {
        return Err(expected("a list (the column is an array)", literal));
    };
    if items.len() > MAX_ARRAY_LEN {
        return Err(format!("{} elements are more than Convex's {MAX_ARRAY_LEN}", items.len()));
    }
    items
        .iter()
        .map(|item| match item {
            Literal::Array(_) => raw_array(item, ty),
            _ => raw_scalar(item, ty),
        })
        .collect::<Result<_, _>>()
        .map(Value::Array)
}

fn raw_scalar(literal: &Literal, ty: &PgType) -> Result<Value, String> {
    let string = |what: &str| match literal {
        Literal::String(s) => Ok(s.clone()),
        other => Err(expected(what, other)),
    };
    Ok(match ty {
        PgType::Bool => match literal {
            Literal::Bool(b) => Value::Bool(*b),
            other => return Err(expected("`true` or `false`", other)),
        },
        PgType::Int2 | PgType::Int4 => {
            let (min, max) = if *ty == PgType::Int2 {
                (i16::MIN as i128, i16::MAX as i128)
            } else {
                (i32::MIN as i128, i32::MAX as i128)
            };
            match literal {
                Literal::Integer(n) if (min..=max).contains(n) => Value::from(*n as i64),
                Literal::Integer(n) => return Err(format!("{n} is out of range ({min} to {max})")),
                other => return Err(expected("an integer", other)),
            }
        }
        PgType::Int8 => {
            let n = match literal {
                Literal::Integer(n) => *n,
                Literal::String(s) => {
                    s.parse::<i128>().map_err(|_| format!("`{s}` is not an integer"))?
                }
                other => return Err(expected("an integer", other)),
            };
            if i64::try_from(n).is_err() {
                return Err(format!("{n} is out of range for bigint"));
            }
            Value::String(n.to_string())
        }
        PgType::Float4 | PgType::Float8 => match literal {
            Literal::Integer(n) if n.unsigned_abs() <= 1 << 53 => Value::from(*n as f64),
            Literal::Integer(n) => return Err(format!("{n} is not exact as a double")),
            Literal::Float { value, .. } => float_value(*value),
            Literal::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {
                Value::String(s.clone())
            }
            other => return Err(expected("a number", other)),
        },
        PgType::Numeric => {
            let text = match literal {
                Literal::Integer(n) => n.to_string(),
                Literal::Float { value, .. } if value.is_nan() => "NaN".into(),
                Literal::Float { value, .. } if value.is_infinite() => {
                    if *value > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    }
                }
                Literal::Float { text, .. } => text.trim_start_matches('+').to_owned(),
                Literal::String(s) => s.clone(),
                other => return Err(expected("a number", other)),
            };
            if !is_decimal(&text) && !matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
                return Err(format!(
                    "`{text}` is not a decimal number: write digits with an optional `.` and \
                     fraction, e.g. \"1234.50\""
                ));
            }
            Value::String(text)
        }
        PgType::Uuid => {
            let s = string("a uuid string")?;
            if !is_uuid(&s) {
                return Err(format!("`{s}` is not a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"));
            }
            Value::String(s.to_ascii_lowercase())
        }
        PgType::Enum { name, labels } => {
            let s = string("a string")?;
            if !labels.contains(&s) {
                let mut reason = format!(
                    "`{s}` is not a label of `{name}` ({})",
                    labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
                );
                if let Some(close) = suggest(&s, labels.iter().map(String::as_str)) {
                    reason.push_str(&format!("; did you mean `{close}`?"));
                }
                return Err(reason);
            }
            Value::String(s)
        }
        PgType::Json | PgType::Jsonb => json_value(literal)?,
        PgType::Convex(_) => {
            return Err("a field read from Convex takes no default: its values arrive as Convex \
                        stored them"
                .into());
        }
        PgType::Bytea => {
            let s = string("a base64 string")?;
            base64::engine::general_purpose::STANDARD
                .decode(&s)
                .map_err(|_| format!("`{s}` is not standard base64 with padding"))?;
            Value::String(s)
        }
        PgType::Date => Value::String(match literal {
            Literal::String(s) if is_infinity(s) => s.clone(),
            Literal::String(s) => date_text(&parse_datetime(s)?)?,
            Literal::Datetime(d) => date_text(d)?,
            other => return Err(expected("a date such as 2024-01-31", other)),
        }),
        PgType::Timestamp | PgType::Timestamptz => Value::String(match literal {
            Literal::String(s) if is_infinity(s) => s.clone(),
            Literal::String(s) => timestamp_text(&parse_datetime(s)?, ty)?,
            Literal::Datetime(d) => timestamp_text(d, ty)?,
            other => return Err(expected("a date-time such as 2024-01-31T12:00:00Z", other)),
        }),
        PgType::Text
        | PgType::Varchar
        | PgType::Bpchar
        | PgType::Citext
        | PgType::Inet
        | PgType::Time
        | PgType::Interval
        | PgType::Tsvector
        | PgType::Other(_) => Value::String(string("a string")?),
    })
}

fn float_value(value: f64) -> Value {
    match Number::from_f64(value) {
        Some(number) => Value::Number(number),
        None if value.is_nan() => Value::String("NaN".into()),
        None if value > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// A TOML value as the raw form of a json column: objects whose only key is `$json` wrapped
/// in another, as the export writes them.
fn json_value(literal: &Literal) -> Result<Value, String> {
    Ok(match literal {
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Integer(n) => match (i64::try_from(*n), u64::try_from(*n)) {
            (Ok(i), _) => Value::from(i),
            (_, Ok(u)) => Value::from(u),
            _ => return Err(format!("{n} is out of range")),
        },
        Literal::Float { value, .. } => match Number::from_f64(*value) {
            Some(number) => Value::Number(number),
            None => return Err("JSON has no NaN or infinity".into()),
        },
        Literal::String(s) => Value::String(s.clone()),
        Literal::Datetime(d) => Value::String(d.to_string()),
        Literal::Array(items) => {
            Value::Array(items.iter().map(json_value).collect::<Result<_, _>>()?)
        }
        Literal::Table(entries) => {
            let object: Map<String, Value> = entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_value(v)?)))
                .collect::<Result<_, String>>()?;
            if object.len() == 1 && object.contains_key("$json") {
                Value::Object(Map::from_iter([("$json".to_owned(), Value::Object(object))]))
            } else {
                Value::Object(object)
            }
        }
    })
}

fn is_infinity(s: &str) -> bool {
    s == "infinity" || s == "-infinity"
}

/// `-?digits(.digits)?`
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() }
        })
}

fn parse_datetime(s: &str) -> Result<Datetime, String> {
    s.parse::<Datetime>().map_err(|_| format!("`{s}` is not a date or date-time"))
}

fn year_text(year: i64) -> String {
    if year > 9999 {
        format!("+{year}")
    } else if year < 0 {
        format!("-{:04}", -year)
    } else {
        format!("{year:04}")
    }
}

fn date_text(d: &Datetime) -> Result<String, String> {
    match (d.date, d.time, d.offset) {
        (Some(date), None, None) => {
            Ok(format!("{}-{:02}-{:02}", year_text(date.year.into()), date.month, date.day))
        }
        _ => Err(format!("`{d}` is not a date such as 2024-01-31")),
    }
}

/// A TOML date-time as the export writes a timestamp (six fraction digits) or timestamptz
/// (in UTC, with `Z`).
fn timestamp_text(d: &Datetime, ty: &PgType) -> Result<String, String> {
    let (Some(date), Some(time)) = (d.date, d.time) else {
        return Err(format!("`{d}` is not a date-time such as 2024-01-31T12:00:00"));
    };
    let nanos = time.nanosecond.unwrap_or(0);
    if !nanos.is_multiple_of(1000) {
        return Err(format!("`{d}` is more precise than the microseconds Postgres keeps"));
    }
    let second = time.second.unwrap_or(0);
    if second > 59 {
        return Err(format!("`{d}` has a leap second, which Postgres does not keep"));
    }
    let offset_minutes: i64 = match (ty, d.offset) {
        (PgType::Timestamp, None) => 0,
        (PgType::Timestamp, Some(_)) => {
            return Err(format!(
                "`{d}` has an offset, but a timestamp without time zone holds none: write the \
                 local date-time"
            ));
        }
        (_, None) => {
            return Err(format!("`{d}` has no offset: write `Z` or one such as `+02:00`"));
        }
        (_, Some(toml::value::Offset::Z)) => 0,
        (_, Some(toml::value::Offset::Custom { minutes })) => minutes.into(),
    };
    let seconds = calendar::days_from_civil(date.year.into(), date.month.into(), date.day.into())
        * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(second)
        - offset_minutes * 60;
    let (year, month, day) = calendar::civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    Ok(format!(
        "{}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}{}",
        year_text(year),
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        nanos / 1000,
        if *ty == PgType::Timestamptz { "Z" } else { "" }
    ))
}

/// Whether a raw value converts without loss: the very conversion transform applies.
fn convertible(raw: &Value, conversion: &Conversion) -> Result<(), String> {
    crate::transform::convert_value(conversion, raw.clone())
        .map(drop)
        .map_err(|e| if e.path.is_empty() { e.reason } else { format!("{}: {}", e.path, e.reason) })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::catalog::TableKind;
    use crate::plan::file::{PlanSource, file_number, merge, parse};

    pub(crate) fn column(name: &str, ty: PgType, nullable: bool) -> Column {
        Column {
            nondeterministic_collation: None,
            citext_lowering: None,
            name: name.into(),
            sql_type: match &ty {
                PgType::Int8 => "bigint".into(),
                PgType::Int4 => "integer".into(),
                PgType::Numeric => "numeric(12,2)".into(),
                PgType::Timestamptz => "timestamp with time zone".into(),
                other => other.name().into(),
            },
            ty,
            array: false,
            domain: None,
            nullable,
            generated: false,
        }
    }

    pub(crate) fn table(name: &str, columns: Vec<Column>, primary_key: &[&str]) -> Table {
        Table {
            name: TableName::new("public", name),
            kind: TableKind::Table,
            columns,
            primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
            unique_keys: Vec::new(),
            foreign_keys: Vec::new(),
            estimated_rows: None,
            partition_keys: None,
            indexes: Vec::new(),
        }
    }

    pub(crate) fn fk(
        name: &str,
        columns: &[&str],
        parent: &str,
        referenced: &[&str],
    ) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            references: TableName::new("public", parent),
            referenced_columns: referenced.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// users ← posts (author_id), users ← user_settings (user_id, primary key), comments with a
    /// self-reference.
    pub(crate) fn catalog() -> Catalog {
        let users = table(
            "users",
            vec![
                column("id", PgType::Int8, false),
                column("email", PgType::Text, false),
                column("display_name", PgType::Text, true),
                column("balance", PgType::Numeric, false),
                column("created_at", PgType::Timestamptz, false),
                column("location", PgType::Other("point".into()), true),
            ],
            &["id"],
        );
        let mut posts = table(
            "posts",
            vec![
                column("id", PgType::Uuid, false),
                column("author_id", PgType::Int8, false),
                column("title", PgType::Text, false),
                column(
                    "status",
                    PgType::Enum {
                        name: "public.post_status".into(),
                        labels: vec!["draft".into(), "published".into()],
                    },
                    false,
                ),
                Column {
                    array: true,
                    sql_type: "text[]".into(),
                    ..column("tags", PgType::Text, false)
                },
                column("metadata", PgType::Jsonb, true),
                column("search", PgType::Tsvector, true),
            ],
            &["id"],
        );
        posts.foreign_keys.push(fk("posts_author_id_fkey", &["author_id"], "users", &["id"]));
        let mut settings = table(
            "user_settings",
            vec![column("user_id", PgType::Int8, false), column("theme", PgType::Text, false)],
            &["user_id"],
        );
        settings.foreign_keys.push(fk(
            "user_settings_user_id_fkey",
            &["user_id"],
            "users",
            &["id"],
        ));
        let mut comments = table(
            "comments",
            vec![
                column("id", PgType::Int8, false),
                column("parent_id", PgType::Int8, true),
                column("body", PgType::Text, false),
            ],
            &["id"],
        );
        comments.foreign_keys.push(fk(
            "comments_parent_id_fkey",
            &["parent_id"],
            "comments",
            &["id"],
        ));
        Catalog { tables: vec![comments, posts, settings, users] }
    }

    pub(crate) fn load_texts(catalog: &Catalog, files: &[&str]) -> Result<Plan, PlanError> {
        let mut layer = Layer::default();
        for (i, text) in files.iter().enumerate() {
            let name = format!("{:04}_test.toml", i + 1);
            let source = PlanSource {
                number: file_number(&name).unwrap(),
                display: format!("migrations/{name}"),
                name,
                bytes: text.as_bytes().to_vec(),
            };
            merge(&mut layer, parse(&source)?);
        }
        resolve(&layer, catalog, "blake3:test".into())
    }

    fn load(files: &[&str]) -> Result<Plan, PlanError> {
        load_texts(&catalog(), files)
    }

    fn error(files: &[&str]) -> String {
        error_with(&catalog(), files)
    }

    /// The error `files` make against `catalog`, with its hint.
    pub(crate) fn error_with(catalog: &Catalog, files: &[&str]) -> String {
        let error = load_texts(catalog, files).unwrap_err();
        match error.hint() {
            Some(hint) => format!("{error}\nhint: {hint}"),
            None => error.to_string(),
        }
    }

    #[test]
    fn a_component_table_takes_a_known_shape_and_its_children_still_refer_to_it() {
        let plan = load(&[r#"
[tables."public.users"]
component = "betterAuth"
shape = "better_auth_user"
"#])
        .unwrap();
        let users = plan.target("users").unwrap();
        let component = users.component.as_ref().unwrap();
        assert_eq!(component.name, "betterAuth");
        assert_eq!(component.shape, Some(AuthShape::BetterAuthUser));
        assert!(users.indexes.carried.is_empty(), "the component's schema has its own indexes");
        let posts = plan.target("posts").unwrap();
        assert_eq!(posts.references[0].parent_target, "users");
        assert!(posts.component.is_none());

        let unknown =
            error(&["[tables.\"public.users\"]\ncomponent = \"betterAuth\"\nshape = \"okta\"\n"]);
        assert!(unknown.contains("unknown shape `okta`"), "{unknown}");
        assert!(
            unknown.contains("supabase_user, better_auth_user, better_auth_account"),
            "{unknown}"
        );
        let alone = error(&["[tables.\"public.users\"]\nshape = \"supabase_user\"\n"]);
        assert!(alone.contains("a shape applies only to a table of a component"), "{alone}");
        let name = error(&["[tables.\"public.users\"]\ncomponent = \"better-auth\"\n"]);
        assert!(name.contains("`better-auth` is not a component name"), "{name}");
    }

    #[test]
    fn names_turn_into_camel_and_snake_case() {
        assert_eq!(camel_case("created_at"), "createdAt");
        assert_eq!(camel_case("Order Items"), "orderItems");
        assert_eq!(camel_case("CamelCase"), "camelCase");
        assert_eq!(camel_case("DisplayName"), "displayName");
        assert_eq!(camel_case("HTTPServer"), "httpServer");
        assert_eq!(camel_case("userID"), "userId");
        assert_eq!(camel_case("say \"hi\""), "sayHi");
        assert_eq!(camel_case("float4_value"), "float4Value");
        assert_eq!(camel_case("_internal"), "internal");
        assert_eq!(camel_case("größe"), "grE");
        assert_eq!(snake_case("DisplayName"), "display_name");
        assert_eq!(snake_case("Order Items"), "order_items");
        assert_eq!(default_target(&TableName::new("public", "user_settings")), "userSettings");
        assert_eq!(default_target(&TableName::new("auth", "users")), "authUsers");
        assert_eq!(field_name(Naming::Keep, "Weird Name"), "Weird Name");
    }

    #[test]
    fn convex_names_are_refused_in_short_words() {
        let start = Err("it must start with an ASCII letter");
        let chars = Err("it may hold only ASCII letters, digits and `_`");
        let system = Err("a leading `_` is reserved for Convex's system fields");
        let cases = [
            ("userProfiles", Ok(())),
            ("a_1", Ok(())),
            ("", Err("it is empty")),
            ("_id", system),
            ("__", system),
            ("1st", start),
            ("$ref", start),
            ("ärger", start),
            ("has space", chars),
            ("größe", chars),
            ("a-b", chars),
        ];
        for (name, expected) in cases {
            assert_eq!(check_field(name), expected, "field {name:?}");
            assert_eq!(check_table(name), expected, "table {name:?}");
            assert_eq!(identifier_problem(name), expected.err(), "{name:?}");
        }
        let long = "a".repeat(MAX_IDENTIFIER_LEN);
        assert_eq!(check_field(&long), Ok(()));
        assert_eq!(check_table(&long), Ok(()));
        let longer = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert_eq!(check_field(&longer), Err("it is longer than 64 characters"));
        assert_eq!(check_table(&longer), Err("it is longer than 64 characters"));
        // Characters are checked before the length, as Convex does.
        assert_eq!(check_field(&format!("{longer}!")), chars);
        // The ledger's table is taken; as a field name, or in another case, it is free.
        let ledger = Err("the generated convex/migrate.ts keeps its ledger in that table");
        assert_eq!(check_table("migrateLedger"), ledger);
        assert_eq!(check_table("MigrateLedger"), Ok(()));
        assert_eq!(check_field("migrateLedger"), Ok(()));
    }

    #[test]
    fn an_empty_plan_migrates_every_table_with_the_defaults() {
        let plan = load(&[]).unwrap();
        let targets: Vec<_> = plan.tables.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(targets, ["comments", "posts", "userSettings", "users"]);
        assert!(plan.skipped.is_empty());

        let users = plan.target("users").unwrap();
        assert_eq!(
            users.legacy_id,
            LegacyId { field: "legacyId".into(), columns: vec!["id".into()] }
        );
        assert_eq!(users.nulls, NullPolicy::Omit);
        let fields: Vec<_> =
            users.fields.iter().map(|f| (f.field.as_str(), &f.conversion, f.optional)).collect();
        assert_eq!(
            fields,
            [
                ("email", &Conversion::String, false),
                ("displayName", &Conversion::String, true),
                ("balance", &Conversion::NumericAsNumber, false),
                ("createdAt", &Conversion::TimestampMs { offset_seconds: 0 }, false),
                ("location", &Conversion::String, true),
            ]
        );
        assert_eq!(
            plan.warnings,
            ["columns of types without a policy travel as their text form: \
                 `public.users.location` (point)"]
        );

        let posts = plan.target("posts").unwrap();
        let fields: Vec<_> = posts.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["title", "status", "tags", "metadata"],
            "tsvector dropped, FK not a field"
        );
        assert_eq!(posts.fields[2].conversion, Conversion::Array(Box::new(Conversion::String)));
        assert_eq!(posts.fields[3].conversion, Conversion::Json { keys: JsonKeyPolicy::Rename });
        assert_eq!(
            posts.references,
            [ReferencePlan {
                constraint: "posts_author_id_fkey".into(),
                columns: vec!["author_id".into()],
                field: "authorId".into(),
                parent: TableName::new("public", "users"),
                parent_target: "users".into(),
                orphans: OrphanPolicy::Fail,
                optional: false,
            }]
        );
        let comments = plan.target("comments").unwrap();
        assert_eq!(comments.references[0].field, "parentId");
        assert_eq!(comments.references[0].parent_target, "comments");
        assert!(comments.references[0].optional);
    }

    #[test]
    fn the_sample_edits_consolidate_and_convert() {
        let plan = load(&[r#"
[defaults]
naming = "snake_case"
orphans = "null"
nulls = "null"
legacy_id_field = "pgId"

[defaults.types]
int8 = "string"

[tables."public.users"]
target = "userProfiles"
drop = ["location"]
columns.balance = { field = "balanceCents", policy = "cents", default = "0.5" }
columns.email = { }

[tables."public.user_settings"]
merge_into = "public.users"

[tables."public.posts"]
columns.search = { field = "searchText" }
references.author_id = { field = "writer", orphans = "drop" }

[[tables."public.posts".filter]]
column = "status"
in = ["published"]

[[tables."public.posts".filter]]
column = "metadata"
is_null = false

[tables."public.comments"]
skip = true
"#])
        .unwrap();
        assert_eq!(plan.skipped, [TableName::new("public", "comments")]);
        let targets: Vec<_> = plan.tables.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(targets, ["posts", "userProfiles"]);
        let users = plan.target("userProfiles").unwrap();
        assert_eq!(users.legacy_id.field, "pgId");
        assert_eq!(users.nulls, NullPolicy::Null);
        let balance = users.fields.iter().find(|f| f.column == "balance").unwrap();
        assert_eq!(balance.field, "balanceCents");
        assert_eq!(balance.conversion, Conversion::NumericAsCents);
        assert_eq!(balance.default, Some(Value::String("0.5".into())));
        let fields: Vec<_> = users.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["email", "display_name", "balanceCents", "created_at"]);
        assert_eq!(
            users.merges,
            [MergePlan {
                source: TableName::new("public", "user_settings"),
                on: vec!["user_id".into()],
                fields: vec![FieldPlan {
                    column: "theme".into(),
                    field: "theme".into(),
                    conversion: Conversion::String,
                    default: None,
                    optional: true,
                    path: Vec::new(),
                }],
                filters: vec![],
            }]
        );
        let posts = plan.target("posts").unwrap();
        assert_eq!(posts.references[0].field, "writer");
        assert_eq!(posts.references[0].orphans, OrphanPolicy::Drop);
        assert_eq!(posts.references[0].parent_target, "userProfiles");
        assert!(posts.fields.iter().any(|f| f.field == "searchText"));
        assert_eq!(
            posts.filters,
            [
                RowFilter {
                    column: "status".into(),
                    condition: Condition::In(vec![Value::String("published".into())])
                },
                RowFilter { column: "metadata".into(), condition: Condition::IsNotNull },
            ]
        );
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn the_example_of_the_format_document_loads() {
        // GIVEN the tables docs/plan-format.md's example names
        let docs = include_str!("../../docs/plan-format.md");
        let example = docs.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
        let users = table(
            "users",
            vec![
                column("id", PgType::Int8, false),
                column("email", PgType::Text, false),
                column("password_hash", PgType::Text, false),
                column("balance", PgType::Numeric, true),
                column("settings", PgType::Jsonb, true),
                column("deleted_at", PgType::Timestamptz, true),
                column("status", PgType::Text, false),
                column("country", PgType::Bpchar, true),
            ],
            &["id"],
        );
        let mut posts = table(
            "posts",
            vec![column("id", PgType::Int8, false), column("author_id", PgType::Int8, true)],
            &["id"],
        );
        posts.foreign_keys.push(fk("posts_author_id_fkey", &["author_id"], "users", &["id"]));
        let mut settings = table(
            "user_settings",
            vec![column("user_id", PgType::Int8, false), column("theme", PgType::Text, false)],
            &["user_id"],
        );
        settings.foreign_keys.push(fk(
            "user_settings_user_id_fkey",
            &["user_id"],
            "users",
            &["id"],
        ));
        let log = table("audit_log", vec![column("id", PgType::Int8, false)], &["id"]);
        let catalog = Catalog { tables: vec![log, posts, settings, users] };

        // WHEN the example loads
        let plan = load_texts(&catalog, &[example]).unwrap_or_else(|e| panic!("{e}\n{example}"));

        // THEN it does what its comments say
        assert_eq!(plan.skipped, [TableName::new("public", "audit_log")]);
        let profiles = plan.target("userProfiles").unwrap();
        let fields: Vec<_> = profiles.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["email", "balanceCents", "settings", "deletedAt", "status", "country", "fullName"]
        );
        assert_eq!(profiles.fields[5].conversion, Conversion::String);
        assert_eq!(profiles.fields[6].path, ["profile", "full_name"]);
        assert_eq!(profiles.fields[1].default, Some(Value::String("0".into())));
        assert!(!profiles.fields[1].optional);
        assert_eq!(profiles.fields[2].conversion, Conversion::Json { keys: JsonKeyPolicy::Reject });
        assert_eq!(profiles.filters.len(), 2);
        assert_eq!(profiles.merges[0].on, ["user_id"]);
        let posts = plan.target("posts").unwrap();
        assert_eq!(posts.references[0].orphans, OrphanPolicy::Null);
        assert_eq!(posts.references[0].parent_target, "userProfiles");
    }

    #[test]
    fn a_reference_to_a_table_not_migrated_stays_a_plain_field() {
        let plan = load(&["[tables.\"public.users\"]\nskip = true\n"]).unwrap();
        let posts = plan.target("posts").unwrap();
        assert!(posts.references.is_empty());
        let author = posts.fields.iter().find(|f| f.column == "author_id").unwrap();
        assert_eq!(
            (author.field.as_str(), &author.conversion),
            ("authorId", &Conversion::Int8AsNumber)
        );
        assert!(
            plan.warnings.iter().any(|w| {
                w.contains(
            "`public.posts.author_id` references `public.users`, which is skipped: it keeps the \
             legacy value as a plain field"
        )
            }),
            "{:?}",
            plan.warnings
        );
        // user_settings' key is its foreign key: it stays the legacy id, not a field
        let settings = plan.target("userSettings").unwrap();
        assert_eq!(settings.legacy_id.columns, ["user_id"]);
    }

    #[test]
    fn a_foreign_key_to_other_columns_than_the_legacy_id_is_no_reference() {
        // GIVEN posts.author_email referencing users.email, a unique key beside the primary key
        let mut catalog = catalog();
        let posts = catalog.tables.iter_mut().find(|t| t.name.name == "posts").unwrap();
        posts.columns.push(column("author_email", PgType::Text, true));
        posts.foreign_keys.push(fk(
            "posts_author_email_fkey",
            &["author_email"],
            "users",
            &["email"],
        ));
        let users = catalog.tables.iter_mut().find(|t| t.name.name == "users").unwrap();
        users.unique_keys.push(vec!["email".into()]);

        // WHEN users keep their primary key as legacy id, the column is a plain field
        let plan = load_texts(&catalog, &[]).unwrap();
        let posts = plan.target("posts").unwrap();
        assert_eq!(posts.references.len(), 1);
        assert!(posts.fields.iter().any(|f| f.field == "authorEmail"));
        assert!(
            plan.warnings.contains(
                &"`public.posts.author_email` references `public.users`, but by `email` rather \
                  than its legacy id (`id`): it keeps the legacy value as a plain field"
                    .to_owned()
            ),
            "{:?}",
            plan.warnings
        );

        // AND when the email is the users' legacy id, it is the reference and `author_id` not
        let plan = load_texts(&catalog, &["[tables.\"public.users\"]\nlegacy_id = [\"email\"]\n"])
            .unwrap();
        let posts = plan.target("posts").unwrap();
        let references: Vec<_> = posts.references.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(references, ["authorEmail"]);
        assert!(posts.fields.iter().any(|f| f.field == "authorId"));
    }

    #[test]
    fn reference_columns_follow_the_parents_legacy_id_order() {
        let key = fk("k", &["a", "b"], "p", &["y", "x"]);
        let legacy = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(reference_columns(&key, &legacy(&["x", "y"])), Some(legacy(&["b", "a"])));
        assert_eq!(reference_columns(&key, &legacy(&["y", "x"])), Some(legacy(&["a", "b"])));
        assert_eq!(reference_columns(&key, &legacy(&["x"])), None);
        assert_eq!(reference_columns(&key, &legacy(&["x", "z"])), None);
    }

    #[test]
    fn explicit_entries_make_key_columns_fields_and_drop_wins() {
        let plan = load(&[
            "[tables.\"public.users\"]\ncolumns.id = { field = \"userNumber\", policy = \"int64\" }\ncolumns.email = {}\n",
            "[tables.\"public.users\"]\ndrop = [\"email\"]\n",
        ])
        .unwrap();
        let users = plan.target("users").unwrap();
        assert_eq!(users.fields[0].field, "userNumber");
        assert_eq!(users.fields[0].conversion, Conversion::Int8AsInt64);
        assert!(users.fields.iter().all(|f| f.column != "email"));
    }

    #[test]
    fn defaults_and_filter_values_take_the_raw_form() {
        let plan = load(&[r#"
[tables."public.users"]
columns.id = { default = 7 }
columns.created_at = { default = 2024-03-01T02:30:00+02:00 }
columns.balance = { default = 12.50 }
[tables."public.posts"]
columns.tags = { default = ["a", "b"] }
columns.metadata = { default = { "$json" = 1, x = 2 } }
columns.id = { default = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11" }
[[tables."public.posts".filter]]
column = "author_id"
equals = 42
"#])
        .unwrap();
        let users = plan.target("users").unwrap();
        let default = |plan: &TablePlan, column: &str| {
            plan.fields.iter().find(|f| f.column == column).unwrap().default.clone().unwrap()
        };
        assert_eq!(default(users, "id"), Value::String("7".into()));
        assert_eq!(
            default(users, "created_at"),
            Value::String("2024-03-01T00:30:00.000000Z".into())
        );
        assert_eq!(default(users, "balance"), Value::String("12.50".into()));
        let posts = plan.target("posts").unwrap();
        assert_eq!(default(posts, "tags"), serde_json::json!(["a", "b"]));
        assert_eq!(default(posts, "metadata"), serde_json::json!({"$json": 1, "x": 2}));
        assert_eq!(
            default(posts, "id"),
            Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
        );
        assert_eq!(posts.filters[0].condition, Condition::Equals(Value::String("42".into())));
        assert!(!users.fields.iter().find(|f| f.column == "id").unwrap().optional);
    }

    #[test]
    fn raw_values_are_checked_against_the_type() {
        let int4 = column("n", PgType::Int4, true);
        assert_eq!(raw_value(&Literal::Integer(5), &int4), Ok(Value::from(5)));
        assert_eq!(
            raw_value(&Literal::String("5".into()), &int4),
            Err("expected an integer, found a string".into())
        );
        assert!(raw_value(&Literal::Integer(1 << 40), &int4).is_err());
        let ts = column("t", PgType::Timestamp, true);
        let local: Datetime = "1969-12-31T23:59:59.5".parse().unwrap();
        assert_eq!(
            raw_value(&Literal::Datetime(local), &ts),
            Ok(Value::String("1969-12-31T23:59:59.500000".into()))
        );
        let zoned: Datetime = "2024-01-01T00:00:00Z".parse().unwrap();
        assert!(raw_value(&Literal::Datetime(zoned), &ts).unwrap_err().contains("has an offset"));
        let tz = column("t", PgType::Timestamptz, true);
        let shifted: Datetime = "2024-01-01T01:00:00+02:00".parse().unwrap();
        assert_eq!(
            raw_value(&Literal::Datetime(shifted), &tz),
            Ok(Value::String("2023-12-31T23:00:00.000000Z".into()))
        );
        let date = column("d", PgType::Date, true);
        assert_eq!(
            raw_value(&Literal::String("2024-02-29".into()), &date),
            Ok(Value::String("2024-02-29".into()))
        );
        let float = column("f", PgType::Float8, true);
        assert_eq!(
            raw_value(&Literal::Float { value: f64::NAN, text: "nan".into() }, &float),
            Ok(Value::String("NaN".into()))
        );
        let numeric = column("m", PgType::Numeric, true);
        assert!(raw_value(&Literal::Float { value: 1e3, text: "1e3".into() }, &numeric).is_err());
        let bytes = column("b", PgType::Bytea, true);
        assert!(raw_value(&Literal::String("AP8=".into()), &bytes).is_ok());
        assert!(raw_value(&Literal::String("not base64!".into()), &bytes).is_err());
    }

    #[test]
    fn values_must_fit_the_policy() {
        assert!(convertible(&Value::String("12.50".into()), &Conversion::NumericAsCents).is_ok());
        assert!(convertible(&Value::String("12.505".into()), &Conversion::NumericAsCents).is_err());
        assert!(convertible(&Value::String("12.00".into()), &Conversion::NumericAsInt64).is_ok());
        assert!(convertible(&Value::String("12.5".into()), &Conversion::NumericAsInt64).is_err());
        assert!(convertible(&Value::String("0.1".into()), &Conversion::NumericAsNumber).is_ok());
        assert!(
            convertible(
                &Value::String("12345678901234567890".into()),
                &Conversion::NumericAsNumber
            )
            .is_err()
        );
        assert!(
            convertible(&Value::String("9007199254740993".into()), &Conversion::Int8AsNumber)
                .is_err()
        );
        assert!(
            convertible(
                &Value::String("infinity".into()),
                &Conversion::TimestampMs { offset_seconds: 0 }
            )
            .is_err()
        );
    }

    #[test]
    fn a_column_naming_files_becomes_a_file_field() {
        let files = "[files]\nsource = \"s3://\"\n";
        let plan = load(&[
            files,
            "[tables.\"public.users\".columns.display_name]\npolicy = \"file\"\n\
             bucket = \"avatars\"\nfield = \"avatar\"\norphans = \"null\"\n\
             [tables.\"public.posts\".columns.title]\npolicy = \"file\"\nform = \"url\"\n",
        ])
        .unwrap();
        let users = plan.table(&TableName::new("public", "users")).unwrap();
        assert_eq!(
            users.files,
            [FileColumnPlan {
                column: "display_name".into(),
                field: "avatar".into(),
                bucket: Some("avatars".into()),
                form: crate::plan::PathForm::Path,
                orphans: OrphanPolicy::Null,
                optional: true,
            }]
        );
        assert!(users.fields.iter().all(|f| f.column != "display_name"), "{:?}", users.fields);
        let posts = plan.table(&TableName::new("public", "posts")).unwrap();
        assert_eq!(posts.files[0].field, "title");
        assert_eq!(
            (posts.files[0].bucket.as_deref(), posts.files[0].orphans),
            (None, OrphanPolicy::Fail)
        );
        assert!(!posts.files[0].optional);
    }

    #[test]
    fn file_column_mistakes_are_errors_naming_the_place() {
        let files = "[files]\nsource = \"s3://\"\n";
        let users = "[tables.\"public.users\".columns";
        let cases: &[(&[&str], &str)] = &[
            (
                &[&format!("{users}.display_name]\npolicy = \"file\"\nbucket = \"avatars\"\n")],
                "migrations/0001_test.toml:2: `tables.\"public.users\".columns.display_name.policy`: column `public.users.display_name` names files (`policy = \"file\"`), but the plan moves no files\nhint: add `[files]`",
            ),
            (
                &[files, &format!("{users}.balance]\npolicy = \"file\"\nbucket = \"avatars\"\n")],
                "column `public.users.balance` of type `numeric(12,2)` cannot name Supabase Storage objects",
            ),
            (
                &[files, &format!("{users}.display_name]\npolicy = \"file\"\n")],
                "migrations/0002_test.toml:2: `tables.\"public.users\".columns.display_name.policy`: column `public.users.display_name` holds paths inside a bucket, but names no bucket",
            ),
            (
                &[files, &format!("{users}.display_name]\npolicy = \"file\"\nbucket = \"a/b\"\n")],
                "`a/b` is not a bucket name",
            ),
            (
                &[files, &format!("{users}.display_name]\nbucket = \"avatars\"\n")],
                "`bucket` applies to a column under `policy = \"file\"` only, not to `public.users.display_name`",
            ),
            (
                &[
                    files,
                    &format!(
                        "{users}.display_name]\npolicy = \"file\"\nbucket = \"x\"\ndefault = \"a.png\"\n"
                    ),
                ],
                "migrations/0002_test.toml:4: `tables.\"public.users\".columns.display_name.default`: `default` does not apply to column `public.users.display_name` under `policy = \"file\"`",
            ),
            (
                &[files, &format!("{users}.display_name]\npolicy = \"file\"\nform = \"uri\"\n")],
                "did you mean `url`?",
            ),
            (
                &[
                    files,
                    &format!(
                        "{users}.display_name]\npolicy = \"file\"\nbucket = \"x\"\nfield = \"email\"\n"
                    ),
                ],
                "`email`",
            ),
            (
                &[
                    files,
                    "[tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\n\
                     columns.theme = { policy = \"file\", bucket = \"x\" }\n",
                ],
                "`public.user_settings` merges into `public.users`, and a merged table's columns cannot name files",
            ),
            (
                &[
                    files,
                    "[tables.\"public.users\"]\ncomponent = \"betterAuth\"\n\
                     columns.display_name = { policy = \"file\", bucket = \"x\" }\n",
                ],
                "`public.users` is a table of the component `betterAuth`, whose schema is the component's: its columns cannot become files",
            ),
        ];
        for (texts, expected) in cases {
            let got = error(texts);
            assert!(got.contains(expected), "{texts:?}\n got: {got}\nwant: {expected}");
        }
    }

    #[test]
    fn plan_mistakes_are_errors_naming_the_place() {
        let cases: &[(&str, &str)] = &[
            (
                "[tables.\"public.user\"]\nskip = true\n",
                "migrations/0001_test.toml:1: `tables.\"public.user\"` names table `public.user`, which the export does not hold\nhint: did you mean `public.users`?",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.emial = { field = \"mail\" }\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".columns.emial` names column `emial`, which table `public.users` does not have\nhint: did you mean `email`?",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.email = { policy = \"cents\" }\n",
                "migrations/0001_test.toml:2: policy `cents` does not apply to column `public.users.email` of type `text`\nhint: this type has no policies: remove `policy`",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.created_at = { policy = \"cents\" }\n",
                "migrations/0001_test.toml:2: policy `cents` does not apply to column `public.users.created_at` of type `timestamp with time zone`\nhint: the policies of this type are `ms`, `iso`",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.email = { json_keys = \"reject\" }\n",
                "migrations/0001_test.toml:2: `json_keys` does not apply to column `public.users.email` of type `text`\nhint: `json_keys` is for json and jsonb columns",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.id = { default = \"x\" }\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".columns.id.default` does not fit column `public.users.id` of type `bigint`: `x` is not an integer",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.balance = { policy = \"cents\", default = 0.125 }\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".columns.balance.default` does not fit column `public.users.balance` of type `numeric(12,2)`: numeric 0.125 has fractions of a cent; use policy `string` or `number`",
            ),
            (
                "[tables.\"public.posts\"]\n\n[[tables.\"public.posts\".filter]]\ncolumn = \"status\"\nequals = \"publishd\"\n",
                "migrations/0001_test.toml:5: `tables.\"public.posts\".filter[0].equals` does not fit column `public.posts.status` of type `enum`: `publishd` is not a label of `public.post_status` (`draft`, `published`); did you mean `published`?",
            ),
            (
                "[tables.\"public.users\"]\ntarget = \"posts\"\n",
                "migrations/0001_test.toml:2: tables `public.posts` and `public.users` both become Convex table `posts`\nhint: set `target` of one of them, or `merge_into` to fold one into the other",
            ),
            (
                "[tables.\"public.users\"]\ntarget = \"_users\"\n",
                "migrations/0001_test.toml:2: table name `_users` (target of `public.users`) is not allowed in Convex: a leading `_` is reserved for Convex's system fields\nhint: Convex names are ASCII letters, digits and `_`, start with a letter and have at most 64 characters: set `tables.\"public.users\".target`",
            ),
            (
                "[tables.\"public.users\"]\ntarget = \"migrateLedger\"\n",
                "migrations/0001_test.toml:2: table name `migrateLedger` (target of `public.users`) is not allowed in Convex: the generated convex/migrate.ts keeps its ledger in that table\nhint: choose another name for the table: set `tables.\"public.users\".target`",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.email = { field = \"displayName\" }\n",
                "migrations/0001_test.toml:2: field `displayName` of Convex table `users` comes from both column `public.users.email` and column `public.users.display_name`\nhint: set `field` of one of them",
            ),
            (
                "[tables.\"public.users\"]\ncolumns.email = { field = \"legacyId\" }\n",
                "migrations/0001_test.toml:2: field `legacyId` of Convex table `users` comes from both the legacy id and column `public.users.email`\nhint: set `field` of one of them",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\ncolumns.theme = { field = \"email\" }\n",
                "migrations/0001_test.toml:3: field `email` of Convex table `users` comes from both column `public.users.email` and column `public.user_settings.theme` (merged)\nhint: set `field` of one of them",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.comments\"\n",
                "migrations/0001_test.toml:2: `public.user_settings` cannot merge into `public.comments`: it has no foreign key to `public.comments` to take `on` from\nhint: set `on` to the columns that equal the target's legacy id",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\n[tables.\"public.users\"]\nskip = true\n",
                "migrations/0001_test.toml:2: `public.user_settings` cannot merge into `public.users`: that table is skipped",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.user_settings\"\n",
                "migrations/0001_test.toml:2: `public.user_settings` cannot merge into `public.user_settings`: a table cannot merge into itself",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.posts\"\n[tables.\"public.posts\"]\nmerge_into = \"public.users\"\non = [\"author_id\"]\n",
                "migrations/0001_test.toml:2: `public.user_settings` cannot merge into `public.posts`: that table is itself merged into `public.users`",
            ),
            (
                "[tables.\"public.user_settings\"]\nmerge_into = \"public.usres\"\n",
                "migrations/0001_test.toml:2: `tables.\"public.user_settings\".merge_into` names table `public.usres`, which the export does not hold\nhint: did you mean `public.users`?",
            ),
            (
                "[tables.\"public.posts\"]\nreferences.auther_id = { orphans = \"null\" }\n",
                "migrations/0001_test.toml:2: `tables.\"public.posts\".references.auther_id` names no foreign key of table `public.posts`\nhint: did you mean `author_id`?",
            ),
            (
                "[tables.\"public.users\"]\nreferences.id = { orphans = \"null\" }\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".references.id` names no foreign key of table `public.users` (it has none)\nhint: for a reference the database does not declare, add `to = \"schema.table\"`",
            ),
            (
                "[tables.\"public.users\"]\nlegacy_id = []\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".legacy_id`: the list is empty\nhint: list the columns that identify a row",
            ),
            (
                "[[tables.\"public.users\".filter]]\ncolumn = \"deleted_at\"\nis_null = true\n",
                "migrations/0001_test.toml:2: `tables.\"public.users\".filter[0].column` names column `deleted_at`, which table `public.users` does not have",
            ),
            (
                "[defaults]\nlegacy_id_field = \"legacy id\"\n",
                "migrations/0001_test.toml:2: field name `legacy id` (`defaults.legacy_id_field`) is not allowed in Convex: it may hold only ASCII letters, digits and `_`\nhint: Convex names are ASCII letters, digits and `_`, start with a letter and have at most 64 characters: set `defaults.legacy_id_field`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&error(&[text]), expected, "for\n{text}");
        }
    }

    #[test]
    fn a_table_without_a_key_needs_a_legacy_id() {
        let mut catalog = catalog();
        catalog.tables.push(table("log", vec![column("line", PgType::Text, false)], &[]));
        let error = load_texts(&catalog, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "table `public.log` has no primary key or unique key to take its legacy id from"
        );
        let plan =
            load_texts(&catalog, &["[tables.\"public.log\"]\nlegacy_id = [\"line\"]\n"]).unwrap();
        assert_eq!(plan.target("log").unwrap().legacy_id.columns, ["line"]);
        assert!(plan.target("log").unwrap().fields.is_empty());
        let error =
            load_texts(&catalog, &["[tables.\"public.log\"]\ntarget = \"entries\"\n"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "migrations/0001_test.toml:1: table `public.log` has no primary key or unique key to take its legacy id from"
        );
    }

    /// `auth.users` with Supabase's metadata column, and `public.profiles` extending it one to
    /// one (its primary key `id` is a foreign key to `auth.users`).
    pub(crate) fn supabase_catalog() -> Catalog {
        let mut users = table(
            "users",
            vec![
                column("id", PgType::Uuid, false),
                column("email", PgType::Varchar, true),
                column("raw_user_meta_data", PgType::Jsonb, true),
                Column {
                    sql_type: "character(2)".into(),
                    ..column("locale", PgType::Bpchar, true)
                },
            ],
            &["id"],
        );
        users.name.schema = "auth".into();
        let mut profiles = table(
            "profiles",
            vec![column("id", PgType::Uuid, false), column("username", PgType::Text, true)],
            &["id"],
        );
        profiles.foreign_keys.push(ForeignKey {
            name: "profiles_id_fkey".into(),
            columns: vec!["id".into()],
            references: TableName::new("auth", "users"),
            referenced_columns: vec!["id".into()],
        });
        Catalog { tables: vec![users, profiles] }
    }

    #[test]
    fn char_padding_is_trimmed_unless_a_column_keeps_it() {
        let catalog = supabase_catalog();
        let users = |plan: &Plan| plan.target("authUsers").unwrap().clone();
        let plan = load_texts(&catalog, &[]).unwrap();
        let locale = users(&plan).fields.into_iter().find(|f| f.column == "locale").unwrap();
        assert_eq!(locale.conversion, Conversion::StringTrimEnd);

        let kept = "[tables.\"auth.users\".columns.locale]\ntrim = false\n";
        let plan = load_texts(&catalog, &[kept]).unwrap();
        let locale = users(&plan).fields.into_iter().find(|f| f.column == "locale").unwrap();
        assert_eq!(locale.conversion, Conversion::String);
        // A default is converted the way the values are.
        let with_default = "[tables.\"auth.users\".columns.locale]\ndefault = \"en \"\n";
        let plan = load_texts(&catalog, &[with_default]).unwrap();
        let locale = users(&plan).fields.into_iter().find(|f| f.column == "locale").unwrap();
        assert_eq!(locale.default, Some(Value::String("en ".into())));
        assert_eq!(locale.conversion, Conversion::StringTrimEnd);

        let wrong = "[tables.\"auth.users\".columns.email]\ntrim = false\n";
        let error = load_texts(&catalog, &[wrong]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "migrations/0001_test.toml:2: `tables.\"auth.users\".columns.email.trim`: `trim` does \
             not apply to column `auth.users.email` of type `varchar`"
        );
    }

    #[test]
    fn a_field_can_come_from_inside_a_json_column() {
        let catalog = supabase_catalog();
        let plan = load_texts(
            &catalog,
            &[r#"
[tables."auth.users"]
drop = ["raw_user_meta_data"]
fields.fullName = { from = "raw_user_meta_data.full_name", type = "string" }
fields.avatar = { from = ["raw_user_meta_data", "avatar.url"] }
fields.age = { from = "raw_user_meta_data.profile.age", type = "number" }
"#],
        )
        .unwrap();
        let users = plan.target("authUsers").unwrap();
        let fields: Vec<_> = users.fields.iter().map(|f| f.field.as_str()).collect();
        // The json column is dropped; the fields inside it follow the columns, by name.
        assert_eq!(fields, ["email", "locale", "age", "avatar", "fullName"]);
        let full_name = &users.fields[4];
        assert_eq!(full_name.column, "raw_user_meta_data");
        assert_eq!(full_name.path, ["full_name"]);
        assert_eq!(full_name.conversion, Conversion::JsonScalar(crate::plan::JsonScalar::String));
        assert!(full_name.optional);
        assert_eq!(users.fields[3].path, ["avatar.url"]);
        assert_eq!(users.fields[3].conversion, Conversion::Json { keys: JsonKeyPolicy::Rename });
        assert_eq!(users.fields[2].path, ["profile", "age"]);
        assert_eq!(users.fields[2].source(), "raw_user_meta_data.profile.age");

        // Kept beside the fields unless dropped; `any` follows the column's `json_keys`.
        let plan = load_texts(
            &catalog,
            &["[tables.\"auth.users\"]\ncolumns.raw_user_meta_data = { json_keys = \"reject\" }\nfields.meta = { from = \"raw_user_meta_data.app\" }\n"],
        )
        .unwrap();
        let users = plan.target("authUsers").unwrap();
        assert!(users.fields.iter().any(|f| f.field == "rawUserMetaData" && f.path.is_empty()));
        let meta = users.fields.iter().find(|f| f.field == "meta").unwrap();
        assert_eq!(meta.conversion, Conversion::Json { keys: JsonKeyPolicy::Reject });

        let error = |text: &str| {
            let e = load_texts(&catalog, &[text]).unwrap_err();
            format!("{e}\nhint: {}", e.hint().unwrap_or_default())
        };
        let users = "[tables.\"auth.users\"]\n";
        assert_eq!(
            error(&format!("{users}fields.fullName = {{ type = \"string\" }}\n")),
            "migrations/0001_test.toml:2: `tables.\"auth.users\".fields.fullName`: field \
             `fullName` needs `from`\nhint: name the json column and the keys inside it: `from = \
             \"raw_user_meta_data.full_name\"`"
        );
        assert_eq!(
            error(&format!(
                "{users}fields.fullName = {{ from = \"raw_user_metadata.full_name\" }}\n"
            )),
            "migrations/0001_test.toml:2: `tables.\"auth.users\".fields.fullName.from` names column \
             `raw_user_metadata`, which table `auth.users` does not have\nhint: did you mean \
             `raw_user_meta_data`?"
        );
        assert!(error(&format!("{users}fields.mail = {{ from = \"email.domain\" }}\n")).contains(
            "`from` starts at column `auth.users.email` of type `varchar`, not a json or jsonb \
                 column"
        ));
        assert!(
            error(&format!("{users}fields.meta = {{ from = \"raw_user_meta_data\" }}\n")).contains(
                "`raw_user_meta_data` is not a json column followed by the keys inside it"
            )
        );
        assert!(
            error(&format!(
                "{users}fields.meta = {{ from = \"raw_user_meta_data.a\", type = \"text\" }}\n"
            ))
            .contains("cannot be `text`: expected one of `any`, `string`, `number`, `boolean`")
        );
        assert!(
            error(&format!("{users}fields.email = {{ from = \"raw_user_meta_data.email\" }}\n"))
                .contains("field `email`")
        );
        assert!(
            error(&format!("{users}fields._meta = {{ from = \"raw_user_meta_data.a\" }}\n"))
                .contains("field name `_meta`")
        );
    }

    #[test]
    fn a_primary_key_that_is_a_reference_is_named_as_one() {
        // `profiles.id` → `auth.users`: `userId`, not `id`.
        let catalog = supabase_catalog();
        let plan = load_texts(&catalog, &[]).unwrap();
        let profiles = plan.target("profiles").unwrap();
        assert_eq!(profiles.references[0].field, "userId");
        assert_eq!(profiles.references[0].columns, ["id"]);
        let snake = load_texts(&catalog, &["[defaults]\nnaming = \"snake_case\"\n"]).unwrap();
        assert_eq!(snake.target("profiles").unwrap().references[0].field, "user_id");

        let parent = table("people", vec![column("id", PgType::Int4, false)], &["id"]);
        let mut child = table("staff", vec![column("uid", PgType::Int4, false)], &["uid"]);
        child.foreign_keys.push(fk("staff_uid_fkey", &["uid"], "people", &["id"]));
        let mut named =
            table("badges", vec![column("owner_id", PgType::Int4, false)], &["owner_id"]);
        named.foreign_keys.push(fk("badges_owner_fkey", &["owner_id"], "people", &["id"]));
        // A name taken by another column keeps the plain default.
        let mut taken = table(
            "cards",
            vec![column("id", PgType::Int4, false), column("person_id", PgType::Int4, true)],
            &["id"],
        );
        taken.foreign_keys.push(fk("cards_id_fkey", &["id"], "people", &["id"]));
        // Not in the primary key: as before.
        let mut other = table(
            "notes",
            vec![column("n", PgType::Int4, false), column("id", PgType::Int4, false)],
            &["n"],
        );
        other.foreign_keys.push(fk("notes_id_fkey", &["id"], "people", &["id"]));
        let catalog = Catalog { tables: vec![parent, child, named, taken, other] };
        let plan = load_texts(&catalog, &[]).unwrap();
        let field = |target: &str| plan.target(target).unwrap().references[0].field.clone();
        assert_eq!(field("staff"), "personId");
        assert_eq!(field("badges"), "ownerId");
        assert_eq!(field("cards"), "id");
        assert_eq!(field("notes"), "id");
    }

    #[test]
    fn every_column_of_a_composite_legacy_id_is_a_field_too() {
        let stores = table("stores", vec![column("id", PgType::Int4, false)], &["id"]);
        let mut payments = table(
            "payments",
            vec![
                column("payment_id", PgType::Int4, false),
                column("payment_date", PgType::Timestamptz, false),
                column("store_id", PgType::Int4, false),
                column("amount", PgType::Numeric, false),
            ],
            &["payment_id", "payment_date", "store_id"],
        );
        payments.foreign_keys.push(fk("payments_store_fkey", &["store_id"], "stores", &["id"]));
        let catalog = Catalog { tables: vec![payments, stores] };
        let plan = load_texts(&catalog, &[]).unwrap();
        let payments = plan.target("payments").unwrap();
        let fields: Vec<_> = payments.fields.iter().map(|f| f.field.as_str()).collect();
        // The key's columns are fields, the foreign-key column its reference's.
        assert_eq!(fields, ["paymentId", "paymentDate", "amount"]);
        assert_eq!(payments.fields[1].conversion, Conversion::TimestampMs { offset_seconds: 0 });
        assert!(!payments.fields[1].optional);
        assert_eq!(payments.references[0].field, "storeId");
        assert_eq!(payments.legacy_id.columns, ["payment_id", "payment_date", "store_id"]);
        // A single-column key stays in the legacy id only.
        assert!(plan.target("stores").unwrap().fields.is_empty());
        // `drop` leaves one out; the legacy id still holds it.
        let plan =
            load_texts(&catalog, &["[tables.\"public.payments\"]\ndrop = [\"payment_id\"]\n"])
                .unwrap();
        let payments = plan.target("payments").unwrap();
        let fields: Vec<_> = payments.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["paymentDate", "amount"]);
        assert_eq!(payments.legacy_id.columns.len(), 3);
    }

    #[test]
    fn composite_references_and_default_names_that_clash() {
        let mut parent = table(
            "order_lines",
            vec![column("order_id", PgType::Int4, false), column("line_no", PgType::Int4, false)],
            &["order_id", "line_no"],
        );
        parent.unique_keys.push(vec!["order_id".into()]);
        let mut child = table(
            "shipments",
            vec![
                column("id", PgType::Int4, false),
                column("order_id", PgType::Int4, true),
                column("line_no", PgType::Int4, false),
            ],
            &["id"],
        );
        child.foreign_keys.push(fk(
            "shipments_line_fkey",
            &["order_id", "line_no"],
            "order_lines",
            &["order_id", "line_no"],
        ));
        let twin = table("Order Lines", vec![column("id", PgType::Int4, false)], &["id"]);
        let catalog = Catalog { tables: vec![twin, parent, child] };
        let error = load_texts(&catalog, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "tables `public.Order Lines` and `public.order_lines` both become Convex table `orderLines`"
        );
        let plan =
            load_texts(&catalog, &["[tables.\"public.Order Lines\"]\ntarget = \"legacyLines\"\n"])
                .unwrap();
        let shipments = plan.target("shipments").unwrap();
        assert_eq!(shipments.references[0].field, "orderLinesId");
        assert!(shipments.references[0].optional);
        assert!(shipments.fields.is_empty());
        let plan = load_texts(
            &catalog,
            &["[tables.\"public.Order Lines\"]\ntarget = \"legacyLines\"\n[tables.\"public.shipments\"]\nreferences.\"order_id, line_no\" = { field = \"line\" }\n"],
        )
        .unwrap();
        assert_eq!(plan.target("shipments").unwrap().references[0].field, "line");
    }
}
