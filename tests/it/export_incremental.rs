//! `migrate export --incremental` against a full export of the same database: after inserts,
//! updates (a TOASTed value, a changed primary key, an update that changes nothing), deletes,
//! in tables with a simple, a composite and no primary key, and in a partitioned table, the
//! files it brings up to date hold exactly the rows a full export reads (line order aside). A
//! second incremental export starts from the first. What it cannot trust is read whole: a
//! changed definition, rows that appear without a new row version; and a previous file edited
//! since is refused.

use serde_json::Value;

use crate::support::{Run, TestDb, Workdir};

const FIXTURE: &str = "
create table items (id bigint primary key, name text not null, body text, tags text[],
  price numeric(10, 2));
insert into items select g, 'item ' || g, case when g % 500 = 0 then repeat('x', 20000) end,
  array['t' || (g % 3)], g / 7.0 from generate_series(1, 3000) g;
create table pairs (a int, b text, v int, primary key (a, b));
insert into pairs select g % 50, 'b' || g, g from generate_series(1, 400) g;
create type point2 as (x int, y int);
create table shapes (id int primary key, at point2);
insert into shapes values (1, (1, 2)), (2, (3, 4));
create table nokey (v int);
insert into nokey select g from generate_series(1, 100) g;
create table events (id int, region text, v int, primary key (id, region))
  partition by list (region);
create table events_eu partition of events for values in ('eu');
create table events_us partition of events for values in ('us');
insert into events select g, case when g % 2 = 0 then 'eu' else 'us' end, g
  from generate_series(1, 600) g;
";

const CHANGES: &str = "
update items set name = name || ' (edited)' where id % 97 = 0;
update items set body = repeat('y', 30000) where id = 1000;
update items set id = 100005 where id = 5;
update items set name = name where id = 7;
delete from items where id between 2000 and 2049;
insert into items select g, 'new ' || g, null, '{}', 1 from generate_series(5001, 5040) g;
update pairs set v = -v where a = 3;
delete from pairs where a = 4;
insert into pairs values (99, 'x', 1);
delete from nokey where v < 10;
update events set v = 0 where id % 10 = 0;
delete from events where id > 590;
";

fn report(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON report ({e})\n{run}"))
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap()
}

/// Each raw file's lines, sorted, with the manifest's row count checked against them.
fn rows_of(work: &Workdir) -> Vec<(String, Vec<String>)> {
    let manifest = work.manifest();
    let mut all = Vec::new();
    for table in manifest["tables"].as_array().unwrap() {
        let name =
            format!("{}.{}", table["schema"].as_str().unwrap(), table["name"].as_str().unwrap());
        let text = std::fs::read_to_string(work.raw_file(&name)).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines.len() as u64, table["rows"].as_u64().unwrap(), "{name}");
        lines.sort();
        all.push((name, lines));
    }
    all
}

fn incremental(work: &Workdir, db: &TestDb) -> Value {
    report(&work.export(db.url(), &["--format", "json", "--incremental"]).success())
}

/// A full export of `db` as it is now, in a directory of its own.
fn full(db: &TestDb) -> Workdir {
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    work
}

#[test]
fn an_incremental_export_holds_exactly_the_rows_a_full_export_holds() {
    // GIVEN a full export
    let db = TestDb::with(FIXTURE);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN rows are inserted, updated and deleted, and the export is brought up to date
    db.execute(CHANGES);
    let report = incremental(&work, &db);

    // THEN its files hold exactly what a full export reads now
    assert_eq!(rows_of(&work), rows_of(&full(&db)));
    // … having read only the changed rows of the tables with a primary key: items lost 50
    // deleted rows and the old key of the row whose key changed; 29 edited names (a 30th row
    // was deleted), the body, the new key, the update that changed nothing and 40 inserts
    // were read
    let items = &table(&report, "public.items")["updated"];
    assert_eq!(items["gone"], 51, "{report}");
    assert_eq!(items["read"], 29 + 1 + 1 + 1 + 40, "{report}");
    assert_eq!(items["kept"], 3000 - 51 - 31, "{report}");
    assert_eq!(table(&report, "public.pairs")["updated"]["gone"], 8, "{report}");
    assert_eq!(table(&report, "public.events")["updated"]["gone"], 10, "{report}");
    assert!(table(&report, "public.nokey").get("updated").is_none(), "no key: read whole");
    assert!(table(&report, "public.shapes").get("updated").is_none(), "a composite: read whole");

    // WHEN it changes again and a second incremental export starts from the first
    db.execute(
        "update items set price = 0 where id % 13 = 0; delete from items where id = 100005;
         insert into items values (7000, 'late', null, null, null);",
    );
    let again = incremental(&work, &db);

    // THEN it is exact again
    assert_eq!(rows_of(&work), rows_of(&full(&db)));
    assert_eq!(table(&again, "public.items")["updated"]["gone"], 1, "{again}");
}

#[test]
fn what_an_incremental_export_cannot_trust_it_reads_whole_or_refuses() {
    // GIVEN a full export, with a table that will become a partition
    let db = TestDb::with(FIXTURE);
    db.execute(
        "create table events_ap (id int, region text, v int, primary key (id, region));
         insert into events_ap select g, 'ap', g from generate_series(1, 5) g;",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN a column is added with a default (every row's value changes, no row version does)
    // AND the table is attached as a partition with rows written before the previous export
    db.execute(
        "alter table items add column flag boolean not null default true;
         alter table events attach partition events_ap for values in ('ap');",
    );
    let run = work.export(db.url(), &["--format", "json", "--incremental"]).success();
    let report = self::report(&run);

    // THEN both are read whole (the partition's rows, older than the previous snapshot, are in
    // neither the previous file nor the changed rows: the count of keys says so), and the
    // files are exact
    assert!(table(&report, "public.items").get("updated").is_none(), "{report}");
    assert!(table(&report, "public.events").get("updated").is_none(), "{report}");
    assert!(
        run.stderr.contains("neither the previous export nor the changed rows hold")
            && run.stderr.contains("public.events"),
        "{run}"
    );
    assert!(table(&report, "public.pairs").get("updated").is_some(), "{report}");
    assert_eq!(rows_of(&work), rows_of(&full(&db)));

    // WHEN the previous export's file is edited by hand, THEN its key index no longer
    // describes it and the table is read whole
    let path = work.raw_file("public.pairs");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"v\":1}", "\"v\":2}", 1);
    assert!(edited != text, "a line was edited");
    std::fs::write(&path, &edited).unwrap();
    db.execute("update pairs set v = 7 where a = 1");
    let report = incremental(&work, &db);
    assert!(table(&report, "public.pairs").get("updated").is_none(), "{report}");
    assert_eq!(rows_of(&work), rows_of(&full(&db)));

    // WHEN it is edited with its size and time kept, THEN the checksum finds it: refused
    let path = work.raw_file("public.items");
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"item 1", "\"ITEM 1", 1)).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
    db.execute("update items set name = 'x' where id = 2");
    work.export(db.url(), &["--incremental"])
        .fails_with(3, &["changed since the previous export wrote it", "without --incremental"]);
}
