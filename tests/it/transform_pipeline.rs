//! The pipeline so far, as a person runs it: `migrate export`, `migrate init`, `migrate
//! transform`, on the README's sample database and on small databases made for one behaviour
//! (orphans under each policy, init's generated files, a plan mistake).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{Run, TestDb, Workdir, file_names, jsonl, utf8};

const SAMPLE_APP: &str = include_str!("../../examples/sample-app.sql");
const REPOSITORY_PLAN: &str = include_str!("../../migrations/0001_initial.toml");

fn convex_dir(work: &Workdir) -> PathBuf {
    work.path().join("convex")
}

fn transformed(work: &Workdir, name: &str) -> PathBuf {
    work.data_dir().join("transformed").join(name)
}

/// `migrate --data-dir <work>/data --plan-dir <work>/plan <args>`.
fn migrate(work: &Workdir, args: &[&str]) -> Run {
    Run::of(work.dirs_command(args))
}

/// `migrate init --format json --convex-dir <work>/convex <extra>`, its report parsed when it
/// succeeded.
fn init(work: &Workdir, extra: &[&str]) -> (Run, Option<Value>) {
    let convex_dir = convex_dir(work);
    let mut args = vec!["--format", "json", "init", "--convex-dir", utf8(&convex_dir)];
    args.extend_from_slice(extra);
    let run = migrate(work, &args);
    let report = (run.code == Some(0))
        .then(|| serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}")));
    (run, report)
}

fn write_plan(work: &Workdir, text: &str) {
    std::fs::create_dir_all(work.plan_dir()).unwrap();
    std::fs::write(work.plan_dir().join("0001_initial.toml"), text).unwrap();
}

/// Document lines by their legacy id.
fn by_legacy_id(lines: Vec<Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in lines {
        let id = line["doc"]["legacyId"].as_str().expect("doc.legacyId is a string").to_owned();
        assert!(out.insert(id.clone(), line).is_none(), "legacy id {id} appears twice");
    }
    out
}

/// `id` → the other column, both as text, from the source database.
fn pairs(db: &TestDb, sql: &str) -> BTreeMap<String, Option<String>> {
    let ids = db.conn().column(&format!("select id::text from ({sql}) q order by 1"));
    let values = db.conn().column(&format!("select v::text from ({sql}) q order by id::text"));
    ids.into_iter().map(|id| id.expect("ids are not null")).zip(values).collect()
}

#[test]
fn the_sample_app_exports_inits_and_transforms_into_consolidated_documents() {
    // GIVEN the README's sample database, exported
    let db = TestDb::with(SAMPLE_APP);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    // AND the repository's edited plan in the plan directory
    write_plan(&work, REPOSITORY_PLAN);

    // WHEN `migrate init` runs from the export's catalog
    let (run, report) = init(&work, &[]);
    let report = report.unwrap_or_else(|| panic!("init failed\n{run}"));

    // THEN it keeps the edited plan, byte for byte, and writes the schema from it
    assert_eq!(report["plan"]["status"], "kept", "{run}");
    assert_eq!(report["convex"]["tables"]["status"], "created", "{run}");
    assert_eq!(report["convex"]["schema"]["status"], "created", "{run}");
    let plan_now = std::fs::read_to_string(work.plan_dir().join("0001_initial.toml")).unwrap();
    assert_eq!(plan_now, REPOSITORY_PLAN);
    let schema = std::fs::read_to_string(convex_dir(&work).join("migrateTables.ts")).unwrap();
    assert!(schema.contains("userProfiles: defineTable("), "{schema}");
    assert!(schema.contains("v.id(\"comments\")"), "{schema}");

    // WHEN `migrate transform` runs
    let run = migrate(&work, &["transform"]).success();

    // THEN there is one file per Convex table (with its line index for sync), none for the
    // merged tables, and the manifest
    assert_eq!(
        file_names(&work.data_dir().join("transformed")),
        [
            "comments.jsonl",
            "comments.jsonl.lines",
            "manifest.json",
            "posts.jsonl",
            "posts.jsonl.lines",
            "userProfiles.jsonl",
            "userProfiles.jsonl.lines"
        ],
        "{run}"
    );

    // AND exactly one profile per user
    let profiles = by_legacy_id(jsonl(&transformed(&work, "userProfiles.jsonl")));
    let user_ids: BTreeSet<String> =
        db.conn().column("select id::text from users").into_iter().flatten().collect();
    assert_eq!(user_ids.len(), 200);
    assert_eq!(profiles.keys().cloned().collect::<BTreeSet<_>>(), user_ids);

    // AND each profile carries its user_settings row
    let themes = pairs(&db, "select user_id as id, theme as v from user_settings");
    let notifications =
        pairs(&db, "select user_id as id, email_notifications as v from user_settings");
    assert!(!themes.is_empty());
    for (id, theme) in &themes {
        let doc = &profiles[id]["doc"];
        assert_eq!(doc["theme"].as_str(), theme.as_deref(), "user {id}: {doc}");
        let expected = notifications[id].as_deref() == Some("true");
        assert_eq!(doc["emailNotifications"], json!(expected), "user {id}: {doc}");
    }

    // AND its user_preferences row when it has one (even ids), and no such fields otherwise
    let languages = pairs(&db, "select user_id as id, language as v from user_preferences");
    let timezones = pairs(&db, "select user_id as id, timezone as v from user_preferences");
    assert_eq!(languages.len(), 100);
    for (id, profile) in &profiles {
        let doc = profile["doc"].as_object().unwrap();
        match languages.get(id) {
            Some(language) => {
                assert_eq!(id.parse::<u64>().unwrap() % 2, 0, "user {id}");
                assert_eq!(doc["language"].as_str(), language.as_deref(), "user {id}");
                assert_eq!(doc["timezone"].as_str(), timezones[id].as_deref(), "user {id}");
            }
            None => {
                assert!(!doc.contains_key("language"), "user {id}: {profile}");
                assert!(!doc.contains_key("timezone"), "user {id}: {profile}");
            }
        }
    }

    // AND the balance is exactly balance × 100, as the source computes it
    let cents = pairs(&db, "select id, (balance * 100)::bigint as v from users");
    assert_eq!(cents.len(), 200);
    for (id, expected) in &cents {
        let expected: i64 = expected.as_deref().unwrap().parse().unwrap();
        let got = &profiles[id]["doc"]["balanceCents"];
        assert_eq!(got.as_f64(), Some(expected as f64), "user {id}: {got}");
    }
    assert!(
        cents.values().any(|c| c.as_deref().is_some_and(|c| c.parse::<i64>().unwrap() % 100 != 0))
    );

    // AND each post refers to its author's profile by legacy id
    let posts = by_legacy_id(jsonl(&transformed(&work, "posts.jsonl")));
    let authors = pairs(&db, "select id, author_id as v from posts");
    assert_eq!(posts.len(), authors.len());
    for (id, author) in &authors {
        assert_eq!(
            posts[id]["refs"]["authorId"],
            json!({"table": "userProfiles", "legacyId": author.as_deref().unwrap()}),
            "post {id}"
        );
        assert!(posts[id]["doc"].get("authorId").is_none(), "post {id}: refs only");
    }

    // AND each reply refers to the comment it answers; top-level comments have no parent
    let comments = by_legacy_id(jsonl(&transformed(&work, "comments.jsonl")));
    let parents = pairs(&db, "select id, parent_id as v from comments");
    assert_eq!(comments.len(), parents.len());
    let mut replies = 0;
    for (id, parent) in &parents {
        let refs = &comments[id]["refs"];
        match parent {
            Some(parent) => {
                replies += 1;
                assert_eq!(
                    refs["parentId"],
                    json!({"table": "comments", "legacyId": parent}),
                    "comment {id}"
                );
            }
            None => assert!(refs.get("parentId").is_none(), "comment {id}: {refs}"),
        }
    }
    assert_eq!(replies, 250);

    // AND the manifest lists the three tables with their files' line counts and checksums
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(transformed(&work, "manifest.json")).unwrap(),
    )
    .unwrap();
    let tables = manifest["tables"].as_array().expect("manifest.tables");
    let names: BTreeSet<&str> = tables.iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["comments", "posts", "userProfiles"]));
    for table in tables {
        let name = table["table"].as_str().unwrap();
        let file = table["file"].as_str().expect("tables[].file");
        assert_eq!(file, format!("transformed/{name}.jsonl"));
        let bytes = std::fs::read(work.data_dir().join(file)).unwrap();
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(table["documents"].as_u64(), Some(lines), "{name}");
        assert_eq!(table["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        let checksum = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        assert_eq!(table["checksum"].as_str(), Some(checksum.as_str()), "{name}");
        assert_eq!(table["rejected"], 0, "{name}");
    }
    let profiles_entry = tables.iter().find(|t| t["table"] == "userProfiles").unwrap();
    assert_eq!(profiles_entry["documents"], 200);
}

const ORPHANS: &str = "
create table parent (id int primary key, name text not null);
create table child (id int primary key, parent_id int, note text);
insert into parent values (1, 'one'), (2, 'two');
insert into child values (1, 1, 'a'), (2, 2, 'b'), (3, 99, 'orphan'), (4, null, 'none'),
                         (5, 98, 'orphan too');
alter table child add constraint child_parent_fk
  foreign key (parent_id) references parent(id) not valid;
";

/// Exports the orphans database into a fresh workdir and transforms it under `orphans`.
fn transform_orphans(db: &TestDb, orphans: &str) -> (Workdir, Run) {
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    write_plan(
        &work,
        &format!("[tables.\"public.child\".references.parent_id]\norphans = \"{orphans}\"\n"),
    );
    let run = migrate(&work, &["transform"]);
    (work, run)
}

fn child_table_report(work: &Workdir) -> Value {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(transformed(work, "manifest.json")).unwrap())
            .unwrap();
    manifest["tables"].as_array().unwrap().iter().find(|t| t["table"] == "child").unwrap().clone()
}

#[test]
fn orphans_follow_the_policy_of_their_reference() {
    // GIVEN a child table whose rows 3 and 5 reference parents that do not exist, under a
    // foreign key the catalog has (NOT VALID, so Postgres allowed the orphans)
    let db = TestDb::with(ORPHANS);

    // WHEN the policy is `fail`
    let (work, run) = transform_orphans(&db, "fail");
    // THEN both orphans are rejected, naming the column, the key and the parent table
    assert_eq!(run.code, Some(5), "{run}");
    let rejects = jsonl(&work.data_dir().join("rejects/public.child.jsonl"));
    let rejected: BTreeSet<String> = rejects.iter().map(|r| r["key"]["id"].to_string()).collect();
    assert_eq!(rejected, BTreeSet::from(["3".to_owned(), "5".to_owned()]), "{rejects:?}");
    for reject in &rejects {
        let reason = reject["reason"].as_str().unwrap();
        let key = if reject["key"]["id"] == 3 { "99" } else { "98" };
        assert_eq!(reject["field"], "parentId", "{reject}");
        for part in ["parent_id", key, "public.parent"] {
            assert!(reason.contains(part), "{reason:?} lacks {part:?}");
        }
    }
    // AND the other rows are documents, the one without a parent without a reference
    let docs = by_legacy_id(jsonl(&transformed(&work, "child.jsonl")));
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["1", "2", "4"]);
    assert_eq!(docs["1"]["refs"]["parentId"], json!({"table": "parent", "legacyId": "1"}));
    assert!(docs["4"]["refs"].get("parentId").is_none(), "{}", docs["4"]);

    // WHEN the policy is `null`
    let (work, run) = transform_orphans(&db, "null");
    // THEN the orphans are documents without the field and without a reference
    assert_eq!(run.code, Some(0), "{run}");
    let docs = by_legacy_id(jsonl(&transformed(&work, "child.jsonl")));
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["1", "2", "3", "4", "5"]);
    for id in ["3", "5"] {
        assert!(docs[id]["doc"].get("parentId").is_none(), "{}", docs[id]);
        assert!(docs[id]["refs"].get("parentId").is_none(), "{}", docs[id]);
        assert!(docs[id]["doc"]["note"].is_string(), "{}", docs[id]);
    }
    assert_eq!(docs["2"]["refs"]["parentId"], json!({"table": "parent", "legacyId": "2"}));
    // AND the summary and the manifest count the two references set to null
    assert!(run.stdout.contains("note: `child`: 2 references found no parent row"), "{run}");
    assert_eq!(child_table_report(&work)["orphan_references"], 2);

    // WHEN the policy is `drop`
    let (work, run) = transform_orphans(&db, "drop");
    // THEN the orphans are counted as dropped and have no document
    assert_eq!(run.code, Some(0), "{run}");
    let docs = by_legacy_id(jsonl(&transformed(&work, "child.jsonl")));
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["1", "2", "4"]);
    let report = child_table_report(&work);
    assert_eq!((&report["rows"], &report["documents"]), (&json!(5), &json!(3)), "{report}");
    assert_eq!((&report["dropped"], &report["rejected"]), (&json!(2), &json!(0)), "{report}");

    // WHEN the policy is `keep_legacy`
    let (work, run) = transform_orphans(&db, "keep_legacy");
    // THEN the orphans keep the legacy id string in the document, and no reference
    assert_eq!(run.code, Some(0), "{run}");
    let docs = by_legacy_id(jsonl(&transformed(&work, "child.jsonl")));
    assert_eq!(docs.len(), 5);
    assert_eq!(docs["3"]["doc"]["parentId"], "99", "{}", docs["3"]);
    assert_eq!(docs["5"]["doc"]["parentId"], "98", "{}", docs["5"]);
    assert_eq!(child_table_report(&work)["orphan_references"], 2);
    assert!(docs["3"]["refs"].get("parentId").is_none(), "{}", docs["3"]);
    // AND rows whose parent exists still refer to it through refs, not a string
    assert!(docs["1"]["doc"].get("parentId").is_none(), "{}", docs["1"]);
    assert_eq!(docs["1"]["refs"]["parentId"], json!({"table": "parent", "legacyId": "1"}));
}

#[test]
fn init_takes_the_catalog_from_the_export_and_guards_edited_files() {
    let db =
        TestDb::with("create table t (id int primary key, v text); insert into t values (1, 'a');");
    let work = Workdir::new();
    let tables_path = convex_dir(&work).join("migrateTables.ts");
    let schema_path = convex_dir(&work).join("schema.ts");
    let plan_path = work.plan_dir().join("0001_initial.toml");
    let statuses = |report: &Value| {
        [&report["plan"], &report["convex"]["tables"], &report["convex"]["module"]]
            .into_iter()
            .chain([&report["convex"]["schema"]])
            .map(|file| file["status"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };

    // GIVEN neither a database URL nor an export
    // WHEN init runs
    let (run, _) = init(&work, &[]);
    // THEN it says to pass a URL or to export first, and writes nothing
    run.fails_with(2, &["--database-url", "run `migrate export`"]);
    assert!(!plan_path.exists() && !tables_path.exists() && !schema_path.exists());

    // GIVEN an export
    work.export(db.url(), &[]).success();
    // WHEN init runs without a URL
    let (run, report) = init(&work, &[]);
    // THEN it reads the export's catalog and writes the plan and the Convex files
    let report = report.unwrap_or_else(|| panic!("init failed\n{run}"));
    let catalog_from = report["catalog_from"].as_str().unwrap();
    assert!(catalog_from.ends_with("manifest.json"), "{catalog_from}");
    assert_eq!(statuses(&report), ["created"; 4]);
    let plan = std::fs::read_to_string(&plan_path).unwrap();
    assert!(plan.contains("[tables.\"public.t\"]"), "{plan}");
    let tables = std::fs::read_to_string(&tables_path).unwrap();
    assert!(tables.contains("t: defineTable("), "{tables}");
    // … and, the app having no schema, one that spreads the migrated tables
    let schema = std::fs::read_to_string(&schema_path).unwrap();
    assert!(schema.contains("import { migrateTables } from \"./migrateTables\";"), "{schema}");
    assert!(schema.contains("...migrateTables,"), "{schema}");
    assert_eq!(report["convex"]["schema_lines"], Value::Null, "{run}");

    // WHEN init runs again
    let (run, report) = init(&work, &[]);
    // THEN nothing changed
    let report = report.unwrap_or_else(|| panic!("init failed\n{run}"));
    assert_eq!(statuses(&report), ["unchanged"; 4]);

    // GIVEN a person edited migrateTables.ts
    let edited = format!("{tables}// my own line\n");
    std::fs::write(&tables_path, &edited).unwrap();
    // WHEN init runs
    let (run, _) = init(&work, &[]);
    // THEN it refuses, and the file is untouched
    run.fails_with(2, &["migrateTables.ts` was edited since migrate generated it", "--force"]);
    assert_eq!(std::fs::read_to_string(&tables_path).unwrap(), edited);

    // WHEN init runs with --force
    let (run, report) = init(&work, &["--force"]);
    // THEN the generated tables replace the edit
    let report = report.unwrap_or_else(|| panic!("init --force failed\n{run}"));
    assert_eq!(report["convex"]["tables"]["status"], "updated");
    assert_eq!(std::fs::read_to_string(&tables_path).unwrap(), tables);

    // GIVEN a person added a table of their own to the schema.ts init wrote
    let own = schema.replace("  // Your own tables go here.\n", "  notes: defineTable({}),\n");
    assert_ne!(own, schema);
    std::fs::write(&schema_path, &own).unwrap();
    // WHEN init runs, even with --force, THEN the schema is theirs: kept as it is
    let (run, report) = init(&work, &["--force"]);
    let report = report.unwrap_or_else(|| panic!("init --force failed\n{run}"));
    assert_eq!(report["convex"]["schema"]["status"], "kept");
    assert_eq!(std::fs::read_to_string(&schema_path).unwrap(), own);
}

#[test]
fn a_plan_mistake_stops_transform_with_its_file_line_and_a_suggestion() {
    // GIVEN an export and a plan file with a misspelt key on its third line
    let db =
        TestDb::with("create table t (id int primary key, v text); insert into t values (1, 'a');");
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    write_plan(&work, "# my edits\n[tables.\"public.t\".columns.v]\nfeild = \"value\"\n");

    // WHEN transform runs
    let run = migrate(&work, &["transform"]);

    // THEN it stops before writing anything, naming the file, the line and the likely key
    run.fails_with(2, &["0001_initial.toml:3", "unknown key `feild`", "did you mean `field`?"]);
    assert!(!transformed(&work, "manifest.json").exists());
    assert!(!transformed(&work, "t.jsonl").exists());
}
