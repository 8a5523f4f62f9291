//! The mapping plan once every plan file is applied and checked against the catalog: concrete,
//! per table and per column. `transform` executes it, `codegen` writes the Convex schema from
//! it, and the two agree because they read the same values.

use crate::catalog::TableName;

/// Every table of the export, in catalog (name) order, with what becomes of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tables: Vec<TablePlan>,
    /// Tables deliberately not migrated (`skip = true`).
    pub skipped: Vec<TableName>,
    /// `blake3:<hex>` over the plan files' bytes in order: a changed plan has another hash.
    pub hash: String,
    /// Things a person should know that are not errors, e.g. columns of types without a policy
    /// that travel as their text form.
    pub warnings: Vec<String>,
    /// `[files] source`: where Supabase Storage objects' bytes are read from, when the plan
    /// moves files (src/files/).
    pub files: Option<FilesPlan>,
}

/// `[files]` as written: the source URL and where the plan says it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesPlan {
    pub source: String,
    /// `migrations/0002_files.toml:3 files.source`, for errors about the URL.
    pub at: String,
}

impl Plan {
    pub fn table(&self, source: &TableName) -> Option<&TablePlan> {
        self.tables.iter().find(|t| &t.source == source)
    }

    /// The plan of the Convex table named `target`.
    pub fn target(&self, target: &str) -> Option<&TablePlan> {
        self.tables.iter().find(|t| t.target == target)
    }
}

/// One Convex table, fed by one source table and the tables merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    pub source: TableName,
    /// The Convex table name.
    pub target: String,
    pub legacy_id: LegacyId,
    /// Plain fields, in document order (after the legacy id).
    pub fields: Vec<FieldPlan>,
    /// Foreign keys that become `v.id(...)` fields, resolved at import.
    pub references: Vec<ReferencePlan>,
    /// Columns holding Supabase Storage object paths (`policy = "file"`): `v.id("_storage")`
    /// fields, resolved at import through the migrated files (docs/files.md).
    pub files: Vec<FileColumnPlan>,
    /// A row is migrated only when every filter holds; others are counted as filtered.
    pub filters: Vec<RowFilter>,
    /// Tables whose rows are folded into this table's documents (consolidation).
    pub merges: Vec<MergePlan>,
    pub nulls: NullPolicy,
    /// The Convex indexes besides `by_legacy_id`, carried over from the source and made for
    /// references; and the field sets verify checks for uniqueness.
    pub indexes: Indexes,
    /// Set by an auth preset: the table is a model of a Convex component (Better Auth), written
    /// through the component's functions, with its schema from the preset, not from the plan.
    pub component: Option<ComponentTable>,
}

/// A table that lives in a Convex component (`component = "betterAuth"` in the plan).
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentTable {
    /// The component's name, as the app's `convex.config.ts` mounts it.
    pub name: String,
    /// What `transform::auth` does to each document after the plan's fields are converted.
    pub shape: Option<AuthShape>,
}

/// A per-row reshaping an auth preset needs that plain column mappings cannot say
/// (`shape = "supabase_user"`): `transform::auth` owns what each does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthShape {
    /// Supabase `auth.users` → a Better Auth `user` and its credential password.
    SupabaseUser,
    /// Better Auth's own `user` table: the email lowercased.
    BetterAuthUser,
    /// Better Auth's `account`: the password's hash format counted.
    BetterAuthAccount,
}

impl AuthShape {
    pub const CHOICES: [(&'static str, AuthShape); 3] = [
        ("supabase_user", AuthShape::SupabaseUser),
        ("better_auth_user", AuthShape::BetterAuthUser),
        ("better_auth_account", AuthShape::BetterAuthAccount),
    ];
}

/// A table's indexes as the plan derives them from the source's (`plan::indexes` decides).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Indexes {
    /// Declared after `by_legacy_id`, in this order.
    pub carried: Vec<IndexPlan>,
    /// Each source index that is not a Convex index, and why: comments in the schema.
    pub notes: Vec<String>,
    /// Field sets unique in the source. Convex does not enforce uniqueness; verify checks it.
    pub unique: Vec<UniqueKey>,
}

/// One Convex index: `.index(name, fields)`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPlan {
    /// `by_<field>_and_<field>`: an identifier Convex accepts, unique in the table.
    pub name: String,
    pub fields: Vec<String>,
    /// What it carries over: the source indexes, or the reference it serves.
    pub note: String,
    /// A source unique index or constraint has exactly these fields.
    pub unique: bool,
}

/// Fields whose values no two documents may share, as a unique index of the source says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// The source index (a unique constraint's index has the constraint's name).
    pub index: String,
    pub fields: Vec<String>,
    /// Documents with null or no value in any of the fields clash too (`NULLS NOT DISTINCT`);
    /// otherwise they never clash, as rows with a NULL never do in Postgres.
    pub nulls_not_distinct: bool,
}

/// The field holding the source row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyId {
    /// The Convex field name (default `legacyId`).
    pub field: String,
    /// Primary key columns (or the chosen unique key). One column: the legacy id is that
    /// value's string form (`"42"`, a uuid). Several: a JSON array of the string forms,
    /// compact (`["org-1","42"]`).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldPlan {
    pub column: String,
    pub field: String,
    pub conversion: Conversion,
    /// Used when the column is SQL NULL: a JSON value converted with `conversion`.
    pub default: Option<serde_json::Value>,
    /// The column is nullable and has no default: the field may be absent (or null, by the
    /// null policy).
    pub optional: bool,
    /// A field found inside a json column (`fields.<name>.from` in the plan): the object keys
    /// leading from the column's value to the field's (`["full_name"]` for
    /// `from = "raw_user_meta_data.full_name"`), and `conversion` applies to the value found
    /// there. A key that is missing, a value on the way that is not an object, and JSON null
    /// all count as SQL NULL: the field is absent (or null, by the null policy). Empty for a
    /// column's own value.
    pub path: Vec<String>,
}

impl FieldPlan {
    /// The column and the path inside it, as messages and comments name the field's source:
    /// `email`, `raw_user_meta_data.full_name`.
    pub fn source(&self) -> String {
        std::iter::once(self.column.as_str())
            .chain(self.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// How one raw value becomes a Convex value. Anything that cannot be converted without loss
/// rejects the row with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// boolean → boolean.
    Boolean,
    /// smallint, integer, real, double → Float64 (NaN and ±Infinity as `$float`).
    Float64,
    /// bigint → Float64 when within ±2^53, else the row is rejected.
    Int8AsNumber,
    /// bigint → Int64 (`v.int64()`).
    Int8AsInt64,
    /// bigint → its decimal string.
    Int8AsString,
    /// numeric → Float64 when exactly representable, else rejected.
    NumericAsNumber,
    /// numeric → its decimal string, every digit.
    NumericAsString,
    /// numeric × 100 → Float64 integer, when exact (at most 2 decimals, within ±2^53).
    NumericAsCents,
    /// numeric → Int64 when it is an integer within i64.
    NumericAsInt64,
    /// text, varchar, char, citext, uuid, inet, time, interval, and types without a policy
    /// (their text form) → string.
    String,
    /// char(n) → string without the spaces that pad it at the end (`"ab   "` → `"ab"`), as
    /// Postgres casts char(n) to text; it ignores them when it compares, too.
    StringTrimEnd,
    /// An enum label → string; the schema lists the labels as literals.
    Enum { labels: Vec<String> },
    /// timestamp/timestamptz → Float64 whole milliseconds since the Unix epoch, as
    /// `Date.now()` gives them: the millisecond containing the instant (sub-millisecond digits
    /// dropped and counted per table). Naive timestamps are read at `offset_seconds` east of
    /// UTC. `infinity` and instants outside JavaScript's `Date` range (±8.64e15 ms) are
    /// rejected.
    TimestampMs { offset_seconds: i32 },
    /// timestamp/timestamptz → ISO 8601 string as exported, every microsecond kept.
    TimestampIso,
    /// date → `"YYYY-MM-DD"`.
    DateString,
    /// date → Float64 milliseconds of midnight UTC.
    DateMs,
    /// json/jsonb → the JSON value as Convex values (numbers Float64; keys Convex forbids
    /// renamed or rejected by `keys`).
    Json { keys: JsonKeyPolicy },
    /// json/jsonb under `policy = "string"` → the value's JSON text as a string (compact, keys
    /// sorted, numbers with every digit): for values Convex cannot hold as they are, such as a
    /// number beyond a double.
    JsonText,
    /// bytea → bytes.
    Bytes,
    /// A value inside a json column (a field with a `path`) held to its declared type; a value
    /// of another JSON type rejects the row.
    JsonScalar(JsonScalar),
    /// An array of the element conversion (≤ 8192 elements; NULL elements become null).
    Array(Box<Conversion>),
    /// A field of a Convex source (`export --from-convex`): the raw value is already in
    /// Convex's tagged encoding and is kept exactly; the validator is the source schema's.
    Convex(Box<serde_json::Value>),
}

/// The declared type of a value found inside a json column (`type` of a plan's `fields` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonScalar {
    /// A JSON string → string.
    String,
    /// A JSON number → Float64, when a double holds it exactly.
    Number,
    /// `true` or `false` → boolean.
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKeyPolicy {
    /// A key Convex forbids is rewritten (see docs/plan-format.md); a clash rejects the row.
    Rename,
    /// A key Convex forbids rejects the row.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullPolicy {
    /// SQL NULL leaves the field out (Convex's idiom for optional).
    Omit,
    /// SQL NULL is stored as null.
    Null,
}

/// A foreign key that becomes a field holding the parent's Convex id.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencePlan {
    /// The constraint name in the catalog.
    pub constraint: String,
    pub columns: Vec<String>,
    pub field: String,
    /// The referenced source table and the Convex table its documents live in.
    pub parent: TableName,
    pub parent_target: String,
    pub orphans: OrphanPolicy,
    /// Some column is nullable: the field may be absent.
    pub optional: bool,
}

/// A column naming a Supabase Storage object (`policy = "file"`): the document holds the id of
/// the object's bytes in Convex file storage (`v.id("_storage")`). Transform writes it as a
/// reference to [`STORAGE_TABLE`](super::codegen::STORAGE_TABLE) whose legacy id is the object's
/// key, `<bucket>/<path>`; the generated module finds the storage id in `migrateFiles`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileColumnPlan {
    pub column: String,
    pub field: String,
    /// The bucket the plan names: a plain path is in it; a `bucket/path` or URL value in
    /// another bucket names no object of the column. `None` (forms other than a plain path
    /// only): any bucket.
    pub bucket: Option<String>,
    pub form: PathForm,
    /// What a value naming no object of `storage.objects` becomes.
    pub orphans: OrphanPolicy,
    /// The column is nullable: the field may be absent (or null, by the null policy).
    pub optional: bool,
}

/// How a column spells the object it names (`form` in the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathForm {
    /// The object's path inside the plan's bucket: `42.png`, `user-7/avatar.png`.
    Path,
    /// The bucket, `/`, then the path: `avatars/42.png`.
    BucketPath,
    /// A Supabase Storage URL: `https://<project>.supabase.co/storage/v1/object/public/avatars/42.png`
    /// (also `…/object/sign/…`, `…/object/authenticated/…`, a query string, or only the path
    /// from `/storage/v1/object/` on).
    Url,
}

impl PathForm {
    pub const CHOICES: [(&'static str, PathForm); 3] =
        [("path", PathForm::Path), ("bucket/path", PathForm::BucketPath), ("url", PathForm::Url)];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// A row whose parent is missing is rejected.
    Fail,
    /// The field is left out (or null, by the null policy).
    Null,
    /// The row is dropped and counted.
    Drop,
    /// The field keeps the legacy id string instead of a Convex id.
    KeepLegacy,
}

/// A table consolidated into another: each of its rows adds fields to the document whose
/// legacy id equals the row's `on` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    pub source: TableName,
    pub on: Vec<String>,
    /// Always optional in the target: a document may have no row here.
    pub fields: Vec<FieldPlan>,
    pub filters: Vec<RowFilter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    pub column: String,
    pub condition: Condition,
}

/// Compared against the raw value (docs/raw-format.md), before any conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    IsNull,
    IsNotNull,
    Equals(serde_json::Value),
    NotEquals(serde_json::Value),
    In(Vec<serde_json::Value>),
}
