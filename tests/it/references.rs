//! References the database does not declare on the table itself, end to end: foreign keys
//! declared only on the partitions of a partitioned table (as the sample database pagila has
//! them), and references declared in the plan (`references.COLUMN = { to = "schema.table" }`)
//! for relations an application never declared. Real Postgres → export → init (the generated
//! files typechecked with `tsc`) → transform → import into the Convex test runtime → verify.

use std::path::Path;

use serde_json::{Value, json};

use crate::codegen_support::{ConvexApp, printed};
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, all_documents};
use crate::support::{Run, jsonl, utf8};

/// Typechecks the Convex folder `init` wrote, copied into a scratch app where `convex`
/// resolves.
fn assert_typechecks(convex_dir: &Path) {
    let app = ConvexApp::new("references");
    for name in ["schema.ts", "migrateTables.ts", "migrate.ts"] {
        let text = std::fs::read_to_string(convex_dir.join(name)).unwrap();
        app.write(&format!("convex/{name}"), &text);
    }
    let output = app.typecheck();
    assert!(output.status.success(), "tsc refused the generated files:\n{}", printed(&output));
}

/// The Convex id of each document of `table`, by legacy id.
fn ids(server: &ConvexTestServer, table: &str) -> std::collections::BTreeMap<String, Value> {
    all_documents(server, table)
        .into_iter()
        .map(|d| (d["legacyId"].as_str().unwrap().to_owned(), d["_id"].clone()))
        .collect()
}

fn init(prepared: &Prepared) -> Run {
    prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success()
}

/// pagila's shape: `payment` partitioned by month, its foreign keys declared on each partition
/// and none on the parent; `staff_id`'s only on one partition, whose sibling holds a payment
/// by a staff member who does not exist. `refund` refers to the partitioned table itself
/// (Postgres then keeps a copy of that key per partition, which is no key of `refund`'s).
const PARTITIONED: &str = "
create table customer (customer_id int primary key, first_name text not null);
create table staff (staff_id int primary key, first_name text not null);
create table payment (
  payment_id int not null,
  customer_id int not null,
  staff_id int not null,
  amount int not null,
  payment_date date not null,
  primary key (payment_date, payment_id)
) partition by range (payment_date);
create table payment_p2022_01 partition of payment
  for values from ('2022-01-01') to ('2022-02-01');
create table payment_p2022_02 partition of payment
  for values from ('2022-02-01') to ('2022-03-01');
alter table payment_p2022_01 add constraint payment_p2022_01_customer_id_fkey
  foreign key (customer_id) references customer (customer_id);
alter table payment_p2022_02 add constraint payment_p2022_02_customer_id_fkey
  foreign key (customer_id) references customer (customer_id);
alter table payment_p2022_01 add constraint payment_p2022_01_staff_id_fkey
  foreign key (staff_id) references staff (staff_id);
create table refund (
  id int primary key,
  payment_date date not null,
  payment_id int not null,
  foreign key (payment_date, payment_id) references payment (payment_date, payment_id)
);
insert into customer values (1, 'Mary'), (2, 'Patricia');
insert into staff values (1, 'Mike'), (2, 'Jon');
insert into payment values
  (1, 1, 1, 3, '2022-01-05'), (2, 2, 1, 5, '2022-01-20'),
  (3, 1, 2, 7, '2022-02-03'), (4, 2, 9, 1, '2022-02-14');
insert into refund values (1, '2022-02-03', 3);
";

#[test]
fn foreign_keys_every_partition_declares_become_references_of_the_partitioned_table() {
    // GIVEN a partitioned table whose foreign keys exist only on its partitions, exported
    let prepared = Prepared::new(PARTITIONED, "");

    // WHEN init writes the plan and the Convex files
    let init = init(&prepared);

    // THEN the key every partition declares is the table's, in the manifest's catalog
    let manifest = prepared.work.manifest();
    let payment = manifest["catalog"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "payment")
        .unwrap()
        .clone();
    let keys: Vec<(&str, &str)> = payment["foreign_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fk| (fk["name"].as_str().unwrap(), fk["references"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("payment_customer_id_fkey", "customer")], "{payment}");
    assert_eq!(payment["partition_keys"]["attached"], json!(["payment_customer_id_fkey"]));
    // … and the one only some partitions declare is not, with a warning that says why and how
    // to declare it
    assert!(
        init.stdout.contains(
            "warning: `public.payment`: the foreign key `public.payment.staff_id` → \
             `public.staff` (`staff_id`) is declared on 1 of its 2 partitions, not on \
             `public.payment_p2022_02`: no reference is carried, its column stays a plain field"
        ),
        "{init}"
    );
    assert!(!init.stdout.contains("not exported"), "{init}");
    let plan = std::fs::read_to_string(prepared.plan_dir().join("0001_initial.toml")).unwrap();
    assert!(!plan.contains("payment_p2022_01\""), "{plan}");
    assert!(plan.contains("declared on every partition, not on the table"), "{plan}");
    assert!(plan.contains("references.staff_id: only 1 of 2 partitions declare"), "{plan}");
    // AND the schema holds a real reference, and the generated files typecheck
    let tables = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    assert!(tables.contains(r#"customerId: v.id("customer")"#), "{tables}");
    assert!(tables.contains("staffId: v.float64()"), "{tables}");
    assert_typechecks(&prepared.convex_dir());

    // WHEN the data is transformed and imported into the Convex test runtime
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();

    // THEN each payment refers to its customer's Convex document
    let customers = ids(&server, "customer");
    let payments = all_documents(&server, "payment");
    assert_eq!(payments.len(), 4);
    // (the legacy id is the key `payment_date, payment_id` as a JSON array)
    let payment_id = |p: &Value| -> String {
        let key: Vec<String> = serde_json::from_str(p["legacyId"].as_str().unwrap()).unwrap();
        key[1].clone()
    };
    let customer_of: Vec<(String, Value)> =
        payments.iter().map(|p| (payment_id(p), p["customerId"].clone())).collect();
    for (payment, customer) in [("1", "1"), ("2", "2"), ("3", "1"), ("4", "2")] {
        let found = customer_of.iter().find(|(p, _)| p == payment).map(|(_, c)| c);
        assert_eq!(found, Some(&customers[customer]), "payment {payment}: {payments:?}");
    }
    // … and the staff member who does not exist is a plain number, as the source has it
    assert!(payments.iter().any(|p| p["staffId"] == 9), "{payments:?}");
    // … and the refund refers to its payment, a document of the partitioned table
    let refunds = all_documents(&server, "refund");
    let refunded = payments.iter().find(|p| payment_id(p) == "3").unwrap();
    assert_eq!(refunds[0]["paymentId"], refunded["_id"], "{refunds:?}");

    // AND verify proves every reference resolves
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly"), "{verify}");
}

/// Better Auth's shape: `session.active_organization_id` names an organization, but no
/// foreign key says so; one session names an organization that is gone.
const UNDECLARED: &str = r#"
create table organization (id text primary key, name text not null);
create table "user" (id text primary key, email text not null);
create table session (
  id text primary key,
  user_id text not null references "user" (id),
  active_organization_id text,
  token text not null
);
insert into organization values ('org-a', 'Acme'), ('org-b', 'Beta');
insert into "user" values ('u1', 'a@example.com');
insert into session values
  ('s1', 'u1', 'org-b', 't1'), ('s2', 'u1', 'org-gone', 't2'), ('s3', 'u1', null, 't3');
"#;

const DECLARED: &str = r#"
[tables."public.session".references.active_organization_id]
to = "public.organization"
orphans = "null"
"#;

#[test]
fn a_reference_the_plan_declares_is_checked_imported_and_verified_like_a_foreign_key() {
    // GIVEN a relation the database never declared, declared in a later plan file with the
    // orphan policy `null`
    let prepared = Prepared::new(UNDECLARED, DECLARED);

    // THEN the schema holds a real (optional) reference, and the generated files typecheck
    let tables = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    assert!(
        tables.contains(r#"activeOrganizationId: v.optional(v.id("organization"))"#),
        "{tables}"
    );
    assert_typechecks(&prepared.convex_dir());

    // WHEN transform runs
    let transform = prepared.migrate(&["--format", "json", "transform"]).success();

    // THEN the session whose organization is gone is kept without the field, and counted
    let report: Value = serde_json::from_str(&transform.stdout).unwrap();
    let session = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "session");
    assert_eq!(session.unwrap()["orphan_references"], 1, "{transform}");

    // WHEN it is imported into the Convex test runtime
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();

    // THEN the declared reference is the organization's Convex id, as the database's own
    // foreign key `user_id` is the user's
    let organizations = ids(&server, "organization");
    let users = ids(&server, "user");
    let sessions = all_documents(&server, "session");
    let session = |id: &str| sessions.iter().find(|s| s["legacyId"] == id).unwrap().clone();
    assert_eq!(session("s1")["activeOrganizationId"], organizations["org-b"]);
    assert_eq!(session("s1")["userId"], users["u1"]);
    assert!(session("s2").get("activeOrganizationId").is_none(), "{}", session("s2"));
    assert!(session("s3").get("activeOrganizationId").is_none(), "{}", session("s3"));
    // AND verify checks it like any reference
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly"), "{verify}");

    // WHEN the policy is `fail`
    std::fs::write(
        prepared.plan_dir().join("0003_fail.toml"),
        "[tables.\"public.session\".references.active_organization_id]\norphans = \"fail\"\n",
    )
    .unwrap();
    let transform = prepared.migrate(&["transform"]);

    // THEN the orphan's row is rejected, naming the field, the value and the parent table
    assert_eq!(transform.code, Some(5), "{transform}");
    let rejects = jsonl(&prepared.data_path("rejects/public.session.jsonl"));
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0]["key"]["id"], "s2");
    assert_eq!(rejects[0]["field"], "activeOrganizationId");
    let reason = rejects[0]["reason"].as_str().unwrap();
    for part in ["active_organization_id", "org-gone", "public.organization"] {
        assert!(reason.contains(part), "{reason:?} lacks {part:?}");
    }

    // WHEN a declared reference contradicts a foreign key of the database
    std::fs::write(
        prepared.plan_dir().join("0004_wrong.toml"),
        "[tables.\"public.session\".references.user_id]\nto = \"public.organization\"\n",
    )
    .unwrap();
    // THEN the plan is refused, naming the key, the column and the database's foreign key
    prepared.migrate(&["transform"]).fails_with(
        2,
        &[
            "0004_wrong.toml:2",
            "references.user_id",
            "column `public.session.user_id` is already in the database's foreign key",
            "hint: the database's foreign key decides where it points",
        ],
    );
}
