//! Mistakes in plan files, against the sample database's catalog: each message names the file,
//! the line and the key, with a suggestion when a name is close to one that exists.

use migrate::exit_code;
use migrate::plan;

use crate::plan_support::{PlanDir, SAMPLE_APP, exported_catalog};

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    message: &'static str,
    hint: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown key, with the key it resembles",
        files: &[(
            "0002_x.toml",
            "[tables.\"public.users\".columns.balance]\nfield = \"balanceCents\"\n\n\n\n\npolcy = \"cents\"\n",
        )],
        message: "migrations/0002_x.toml:7: unknown key `polcy` in `tables.\"public.users\".columns.balance`",
        hint: Some("did you mean `policy`?"),
    },
    Case {
        name: "unknown key without a close one",
        files: &[("0001_a.toml", "[tables.\"public.users\"]\ncolour = \"red\"\n")],
        message: "migrations/0001_a.toml:2: unknown key `colour` in `tables.\"public.users\"`",
        hint: Some(
            "expected one of `target`, `legacy_id`, `drop`, `skip`, `merge_into`, `on`, `filter`, \
             `columns`, `references`, `fields`, `index`, `component`, `shape`",
        ),
    },
    Case {
        name: "`trim` on a column that is not char(n)",
        files: &[("0001_a.toml", "[tables.\"public.posts\".columns.title]\ntrim = false\n")],
        message: "migrations/0001_a.toml:2: `tables.\"public.posts\".columns.title.trim`: `trim` \
                  does not apply to column `public.posts.title` of type `text`",
        hint: Some("`trim` is for char(n) columns, whose values are padded"),
    },
    Case {
        name: "a field from inside a column that is not json",
        files: &[("0001_a.toml", "[tables.\"public.posts\"]\nfields.x = { from = \"title.a\" }\n")],
        message: "migrations/0001_a.toml:2: `tables.\"public.posts\".fields.x.from`: `from` starts \
                  at column `public.posts.title` of type `text`, not a json or jsonb column",
        hint: Some("a field from `from` is a value inside a json or jsonb column: `column.key`"),
    },
    Case {
        name: "missing column, with the column it resembles",
        files: &[("0001_a.toml", "[tables.\"public.posts\"]\ndrop = [\"titel\"]\n")],
        message: "migrations/0001_a.toml:2: `tables.\"public.posts\".drop[0]` names column `titel`, \
                  which table `public.posts` does not have",
        hint: Some("did you mean `title`?"),
    },
    Case {
        name: "missing table, with the table it resembles",
        files: &[("0001_a.toml", "\n[tables.\"public.post\"]\nskip = true\n")],
        message: "migrations/0001_a.toml:2: `tables.\"public.post\"` names table `public.post`, \
                  which the export does not hold",
        hint: Some("did you mean `public.posts`?"),
    },
    Case {
        name: "a policy the column's type does not have",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.posts\"]\ncolumns.title = { policy = \"cents\" }\n",
        )],
        message: "migrations/0001_a.toml:2: policy `cents` does not apply to column \
                  `public.posts.title` of type `text`",
        hint: Some("this type has no policies: remove `policy`"),
    },
    Case {
        name: "a policy of another type",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.users\"]\ncolumns.balance = { policy = \"iso\" }\n",
        )],
        message: "migrations/0001_a.toml:2: policy `iso` does not apply to column \
                  `public.users.balance` of type `numeric(12,2)`",
        hint: Some("the policies of this type are `number`, `string`, `cents`, `int64`"),
    },
    Case {
        name: "invalid TOML keeps the parser's message",
        files: &[("0001_a.toml", "[defaults]\nnaming = \"camelCase\"\nnulls = omit\n")],
        message: "migrations/0001_a.toml:3: invalid TOML: string values must be quoted, expected \
                  literal string",
        hint: None,
    },
    Case {
        name: "a value of the wrong kind",
        files: &[("0001_a.toml", "[tables.\"public.users\"]\nskip = 1\n")],
        message: "migrations/0001_a.toml:2: `tables.\"public.users\".skip` must be `true` or \
                  `false`, not an integer",
        hint: None,
    },
    Case {
        name: "two tables with one Convex name",
        files: &[
            ("0001_a.toml", "[tables.\"public.posts\"]\ntarget = \"entries\"\n"),
            ("0002_b.toml", "# renamed\n[tables.\"public.comments\"]\ntarget = \"entries\"\n"),
        ],
        message: "migrations/0001_a.toml:2: tables `public.comments` and `public.posts` both \
                  become Convex table `entries` (also set at migrations/0002_b.toml:3)",
        hint: Some("set `target` of one of them, or `merge_into` to fold one into the other"),
    },
    Case {
        name: "two fields with one name",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.posts\"]\ncolumns.body = { field = \"title\" }\n",
        )],
        message: "migrations/0001_a.toml:2: field `title` of Convex table `posts` comes from both \
                  column `public.posts.title` and column `public.posts.body`",
        hint: Some("set `field` of one of them"),
    },
    Case {
        name: "a name Convex forbids",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.posts\"]\ncolumns.body = { field = \"_body\" }\n",
        )],
        message: "migrations/0001_a.toml:2: field name `_body` (column `public.posts.body`) is not \
                  allowed in Convex: a leading `_` is reserved for Convex's system fields",
        hint: Some(
            "Convex names are ASCII letters, digits and `_`, start with a letter and have at most \
             64 characters: set `tables.\"public.posts\".columns.body.field`",
        ),
    },
    Case {
        name: "a file name like a plan's but not one",
        files: &[("0002-users.toml", "")],
        message: "`migrations/0002-users.toml` is not a plan file: it looks like one but is not \
                  named like one",
        hint: Some(
            "plan files are named `NNNN_<words>.toml` (e.g. `0002_money_as_cents.toml`): rename \
             it so, or rename it so that it does not start with a digit to have it ignored",
        ),
    },
    Case {
        name: "two files with one number",
        files: &[("0002_a.toml", ""), ("002_b.toml", "")],
        message: "`migrations/0002_a.toml` and `migrations/002_b.toml` have the same number 2",
        hint: Some("give each plan file a number of its own: they apply in number order"),
    },
    Case {
        name: "merging into a skipped table",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.users\"]\nskip = true\n\n[tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\n",
        )],
        message: "migrations/0001_a.toml:5: `public.user_settings` cannot merge into \
                  `public.users`: that table is skipped",
        hint: None,
    },
    Case {
        name: "a filter with two conditions",
        files: &[(
            "0001_a.toml",
            "[[tables.\"public.posts\".filter]]\ncolumn = \"status\"\nequals = \"draft\"\nis_null = false\n",
        )],
        message: "migrations/0001_a.toml:1: `tables.\"public.posts\".filter[0]`: a filter needs \
                  exactly one condition, found `equals`, `is_null`",
        hint: Some(
            "use one of `is_null`, `equals`, `not_equals`, `in`; every filter must hold, so \
             write two filters for two conditions",
        ),
    },
    Case {
        name: "a reference key that matches no foreign key",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.comments\"]\nreferences.parent = { orphans = \"null\" }\n",
        )],
        message: "migrations/0001_a.toml:2: `tables.\"public.comments\".references.parent` names \
                  no foreign key of table `public.comments`",
        hint: Some("did you mean `parent_id`?"),
    },
    Case {
        name: "a default that does not fit the column",
        files: &[(
            "0001_a.toml",
            "[tables.\"public.users\"]\ncolumns.created_at = { default = \"soon\" }\n",
        )],
        message: "migrations/0001_a.toml:2: `tables.\"public.users\".columns.created_at.default` \
                  does not fit column `public.users.created_at` of type `timestamp with time \
                  zone`: `soon` is not a date or date-time",
        hint: None,
    },
];

#[test]
fn every_mistake_names_the_file_line_and_key() {
    // GIVEN the sample database's catalog
    let catalog = exported_catalog(SAMPLE_APP);
    for case in CASES {
        // WHEN a plan directory holding the case's files loads
        let dir = PlanDir::with(case.files);
        let error = match plan::load(&dir.path(), &catalog) {
            Ok(_) => panic!("{}: the plan loaded", case.name),
            Err(error) => error,
        };

        // THEN the message and the hint are the expected ones, and the exit code says usage
        assert_eq!(dir.relative(&error.to_string()), case.message, "{}", case.name);
        assert_eq!(error.hint().as_deref(), case.hint, "{}", case.name);
        assert_eq!(error.exit_code(), exit_code::USAGE, "{}", case.name);
    }
}

#[test]
fn a_missing_plan_directory_is_an_error_and_an_empty_one_means_the_defaults() {
    let catalog = exported_catalog(SAMPLE_APP);
    let dir = PlanDir::with(&[(".gitkeep", "")]);
    let plan = plan::load(&dir.path(), &catalog).expect("an empty plan directory loads");
    assert_eq!(plan.tables.len(), 5);

    let missing = dir.path().join("nope");
    let error = plan::load(&missing, &catalog).unwrap_err();
    assert_eq!(
        dir.relative(&error.to_string()),
        "the plan directory `migrations/nope` does not exist"
    );
    assert!(error.hint().unwrap().contains("migrate init"));
}
