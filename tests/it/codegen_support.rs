//! What the codegen tests share: a plan that uses every conversion, both null policies, a
//! self-reference, a NOT NULL cycle, every orphan policy and a merged table; and a scratch
//! Convex app folder inside `tests/convex`, where the generated files resolve `convex` and
//! `convex-test` from the test tools' `node_modules` (scripts/test.sh installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use migrate::catalog::TableName;
use migrate::plan::codegen::{migrate_tables_ts, schema_ts};
use migrate::plan::migrate_ts::migrate_ts;
use migrate::plan::{
    Conversion, FieldPlan, JsonKeyPolicy, JsonScalar, LegacyId, MergePlan, NullPolicy,
    OrphanPolicy, Plan, ReferencePlan, TablePlan,
};
use serde_json::{Value, json};

/// `tests/convex`: the npm package holding convex, convex-test, typescript and tsx.
pub fn convex_tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convex")
}

/// An installed tool of `tests/convex`, e.g. `tsc`; fails (never skips) when it is missing.
pub fn convex_tool(name: &str) -> PathBuf {
    let path = convex_tools().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: install the Convex test tools with \
         `npm ci --prefix tests/convex` (scripts/test.sh does it)",
        path.display()
    );
    path
}

/// Runs `command`, with what it printed in the panic message when it cannot start.
pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn printed(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scratch Convex app, `tests/convex/.tmp-<label>-<unique>/` with a `convex/` folder and a
/// `tsconfig.json` extending the tools' one; removed on drop.
pub struct ConvexApp {
    root: PathBuf,
}

static APPS: AtomicU32 = AtomicU32::new(0);

impl ConvexApp {
    pub fn new(label: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let unique =
            format!("{}-{}-{nanos}", std::process::id(), APPS.fetch_add(1, Ordering::Relaxed));
        let root = convex_tools().join(format!(".tmp-{label}-{unique}"));
        std::fs::create_dir_all(root.join("convex")).unwrap();
        let app = Self { root };
        app.write(
            "tsconfig.json",
            "{ \"extends\": \"../tsconfig.json\", \"include\": [\"convex/**/*.ts\"] }\n",
        );
        app
    }

    /// Writes `relative` (e.g. `convex/schema.ts`) under the app folder.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// What `migrate init` writes for `plan` into an app without a schema: `convex/schema.ts`
    /// spreading `convex/migrateTables.ts`, and `convex/migrate.ts`. Returns the schema's path.
    pub fn write_generated(&self, plan: &Plan) -> PathBuf {
        self.write("convex/migrateTables.ts", &migrate_tables_ts(plan));
        self.write("convex/migrate.ts", &migrate_ts(plan));
        self.write("convex/schema.ts", &schema_ts())
    }

    /// `relative` (e.g. `convex/schema.ts`) under the app folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// `tsc --noEmit -p <app>`: typechecks everything under `convex/`.
    pub fn typecheck(&self) -> Output {
        run(Command::new(convex_tool("tsc")).arg("--noEmit").arg("-p").arg(&self.root))
    }

    /// tsc finds nothing wrong with the app.
    pub fn assert_typechecks(&self) {
        let output = self.typecheck();
        assert!(output.status.success(), "tsc rejected the generated files:\n{}", printed(&output));
    }
}

impl Drop for ConvexApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The references of [`every_conversion_plan`] that lie on a foreign-key cycle, as
/// `table.field`: the schema must let import insert without them. Listed by hand, so that
/// the tests do not trust codegen's own cycle finding.
pub const CYCLE_REFERENCES: &[&str] =
    &["people.managerId", "people.mentorId", "people.teamId", "teams.leadId"];

pub fn field(column: &str, name: &str, conversion: Conversion) -> FieldPlan {
    FieldPlan {
        column: column.to_owned(),
        field: name.to_owned(),
        conversion,
        default: None,
        optional: false,
        path: Vec::new(),
    }
}

/// Field `name` found at `path` inside json column `column`: optional, as resolution makes it.
pub fn inside(column: &str, name: &str, path: &[&str], conversion: Conversion) -> FieldPlan {
    FieldPlan {
        path: path.iter().map(|k| (*k).to_owned()).collect(),
        ..optional(field(column, name, conversion))
    }
}

pub fn optional(mut field: FieldPlan) -> FieldPlan {
    field.optional = true;
    field
}

fn with_default(mut field: FieldPlan, default: Value) -> FieldPlan {
    field.default = Some(default);
    field
}

pub fn labels(labels: &[&str]) -> Conversion {
    Conversion::Enum { labels: labels.iter().map(|l| (*l).to_owned()).collect() }
}

pub fn array(element: Conversion) -> Conversion {
    Conversion::Array(Box::new(element))
}

/// `table.column` referring to `parent`'s legacy id as field `name`: required, orphans fail.
pub fn reference(table: &str, column: &str, name: &str, parent: &str) -> ReferencePlan {
    ReferencePlan {
        constraint: format!("{table}_{column}_fkey"),
        columns: vec![column.to_owned()],
        field: name.to_owned(),
        parent: TableName::new("public", parent),
        parent_target: parent.to_owned(),
        orphans: OrphanPolicy::Fail,
        optional: false,
    }
}

/// An int64 in Convex's tagged JSON, as transform writes it.
pub fn integer(value: i64) -> Value {
    json!({ "$integer": STANDARD.encode(value.to_le_bytes()) })
}

pub fn table(name: &str, nulls: NullPolicy) -> TablePlan {
    TablePlan {
        source: TableName::new("public", name),
        target: name.to_owned(),
        legacy_id: LegacyId { field: "legacyId".to_owned(), columns: vec!["id".to_owned()] },
        fields: Vec::new(),
        references: Vec::new(),
        files: Vec::new(),
        filters: Vec::new(),
        merges: Vec::new(),
        nulls,
        indexes: Default::default(),
        component: None,
    }
}

/// Three tables, in the order import inserts them:
/// - `people` (nulls stored as null): a nullable self-reference, a keep_legacy self-reference,
///   and a NOT NULL reference to `teams`, which has a NOT NULL reference back (a cycle);
/// - `teams` (nulls omitted): the other half of the cycle, with `team_settings` merged in;
/// - `allTypes` (nulls omitted): every conversion, required, optional and with a default, and
///   references with the fail, null and drop orphan policies.
pub fn every_conversion_plan() -> Plan {
    let mut people = table("people", NullPolicy::Null);
    people.fields = vec![
        field("name", "name", Conversion::String),
        optional(field("nickname", "nickname", Conversion::String)),
        optional(field("born", "born", Conversion::DateMs)),
        optional(field("mood", "mood", labels(&["calm", "busy"]))),
        optional(field("tags", "tags", array(Conversion::String))),
        optional(field("profile", "profile", Conversion::Json { keys: JsonKeyPolicy::Rename })),
    ];
    people.references = vec![
        ReferencePlan {
            optional: true,
            ..reference("people", "manager_id", "managerId", "people")
        },
        ReferencePlan {
            orphans: OrphanPolicy::KeepLegacy,
            ..reference("people", "mentor_id", "mentorId", "people")
        },
        reference("people", "team_id", "teamId", "teams"),
    ];

    let mut teams = table("teams", NullPolicy::Omit);
    teams.fields = vec![field("title", "title", Conversion::String)];
    teams.references = vec![reference("teams", "lead_id", "leadId", "people")];
    teams.merges = vec![MergePlan {
        source: TableName::new("public", "team_settings"),
        on: vec!["team_id".to_owned()],
        fields: vec![
            field("theme", "theme", labels(&["light", "dark"])),
            optional(field("motto", "motto", Conversion::String)),
            with_default(field("budget", "budgetCents", Conversion::NumericAsCents), 0.into()),
        ],
        filters: Vec::new(),
    }];

    let mut all = table("all_types", NullPolicy::Omit);
    all.target = "allTypes".to_owned();
    all.legacy_id.columns = vec!["org_id".to_owned(), "id".to_owned()];
    all.fields = vec![
        field("flag", "flag", Conversion::Boolean),
        field("ratio", "ratio", Conversion::Float64),
        field("small_big", "smallBig", Conversion::Int8AsNumber),
        field("big", "big", Conversion::Int8AsInt64),
        field("big_text", "bigText", Conversion::Int8AsString),
        field("amount", "amount", Conversion::NumericAsNumber),
        field("exact", "exact", Conversion::NumericAsString),
        field("price", "priceCents", Conversion::NumericAsCents),
        field("count", "count", Conversion::NumericAsInt64),
        field("title", "title", Conversion::String),
        field("mood", "mood", labels(&["sad", "ok", "happy"])),
        field("single", "single", labels(&["only"])),
        field("created_at", "createdAt", Conversion::TimestampMs { offset_seconds: 0 }),
        field("local_at", "localAt", Conversion::TimestampMs { offset_seconds: -18_000 }),
        field("updated_at", "updatedAt", Conversion::TimestampIso),
        field("birthday", "birthday", Conversion::DateString),
        field("due", "due", Conversion::DateMs),
        field("doc", "doc", Conversion::Json { keys: JsonKeyPolicy::Rename }),
        field("strict_doc", "strictDoc", Conversion::Json { keys: JsonKeyPolicy::Reject }),
        field("raw_doc", "rawDoc", Conversion::JsonText),
        field("blob", "blob", Conversion::Bytes),
        field("tags", "tags", array(Conversion::String)),
        field("moods", "moods", array(labels(&["sad", "happy"]))),
        field("bigs", "bigs", array(Conversion::Int8AsInt64)),
        field("docs", "docs", array(Conversion::Json { keys: JsonKeyPolicy::Rename })),
        field("blobs", "blobs", array(Conversion::Bytes)),
        optional(field("maybe_flag", "maybeFlag", Conversion::Boolean)),
        optional(field("maybe_big", "maybeBig", Conversion::Int8AsInt64)),
        optional(field("maybe_mood", "maybeMood", labels(&["sad", "happy"]))),
        optional(field("maybe_doc", "maybeDoc", Conversion::Json { keys: JsonKeyPolicy::Rename })),
        optional(field("maybe_ratios", "maybeRatios", array(Conversion::Float64))),
        with_default(field("balance", "balanceCents", Conversion::NumericAsCents), 0.into()),
        with_default(field("stage", "stage", labels(&["draft", "live"])), "draft".into()),
        field("code", "code", Conversion::StringTrimEnd),
        field("codes", "codes", array(Conversion::StringTrimEnd)),
        inside("meta", "fullName", &["full_name"], Conversion::JsonScalar(JsonScalar::String)),
        inside("meta", "age", &["profile", "age"], Conversion::JsonScalar(JsonScalar::Number)),
        inside("meta", "admin", &["admin"], Conversion::JsonScalar(JsonScalar::Boolean)),
        inside("meta", "app", &["app"], Conversion::Json { keys: JsonKeyPolicy::Rename }),
    ];
    all.references = vec![
        reference("all_types", "owner_id", "ownerId", "people"),
        ReferencePlan {
            orphans: OrphanPolicy::Null,
            ..reference("all_types", "reviewer_id", "reviewerId", "people")
        },
        ReferencePlan {
            orphans: OrphanPolicy::Drop,
            optional: true,
            ..reference("all_types", "team_id", "teamId", "teams")
        },
    ];

    Plan {
        tables: vec![people, teams, all],
        skipped: Vec::new(),
        hash: "blake3:codegen-tests".to_owned(),
        warnings: Vec::new(),
        files: None,
    }
}
