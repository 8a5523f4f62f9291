//! The command line, as clap types only. Validation into typed settings is `settings`' job.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::exit_code;

/// Parses the command line as `Cli::parse` does, adding what only clap's matches know: where
/// `init`'s `--schemas` and `--tables` came from. The matches are returned too: they say where
/// every setting came from, for `--show-settings`.
pub fn parse() -> (Cli, clap::ArgMatches) {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|error| error.format(&mut Cli::command()).exit());
    if let (Command::Init(args), Some(("init", init))) = (&mut cli.command, matches.subcommand()) {
        args.selection_given = ["schemas", "tables"]
            .iter()
            .any(|id| init.value_source(id) == Some(ValueSource::CommandLine));
    }
    (cli, matches)
}

#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version,
    about = "Move an application's data from PostgreSQL or Supabase into Convex",
    long_about = "Move an application's data from PostgreSQL or Supabase into Convex.\n\n\
        The job runs in four stages, each leaving files in the data directory for the next:\n  \
        export     Postgres → data/raw/*.jsonl and data/manifest.json, in one snapshot\n  \
        transform  raw rows → Convex documents (data/transformed/), bad rows to data/rejects/\n  \
        import     documents → Convex over its HTTP API, resumable\n  \
        verify     prove Convex holds exactly what the source held\n\n\
        Around them: status (--ledger: what a deployment's ledger says was migrated into it), \
        rollback (remove what the import wrote, nothing else) and finalize (after go-live: the \
        legacy-id indexes and fields taken out).\n\n\
        Settings come from flags, then the environment (DATABASE_URL, CONVEX_URL, \
        CONVEX_DEPLOY_KEY, CONVEX_DEPLOYMENT, CONVEX_SELF_HOSTED_URL, \
        CONVEX_SELF_HOSTED_ADMIN_KEY, MIGRATE_*; .env.local, then .env, in the working directory \
        are read), then \
        defaults. The deploy key is read only from the environment. The Postgres connection \
        follows libpq, as psql does: what the URL leaves out comes from PGHOST, PGPORT, PGUSER, \
        PGPASSWORD, PGDATABASE, PGSSLMODE, ... and ~/.pgpass. --show-settings shows every \
        setting and where it came from.",
    after_help = exit_code::HELP,
    after_long_help = exit_code::HELP,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where stages keep their files: raw/, transformed/, rejects/, manifest.json, state
    #[arg(long, global = true, env = "MIGRATE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Where the mapping plan lives (migrations/0001_initial.toml, ...)
    #[arg(long, global = true, env = "MIGRATE_PLAN_DIR", default_value = "migrations")]
    pub plan_dir: PathBuf,

    /// Results on stdout as a human summary or as JSON for scripts and CI
    #[arg(long, global = true, env = "MIGRATE_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// No progress: bars on a terminal, else a line per table every MIGRATE_PROGRESS_INTERVAL s (5)
    #[arg(long, global = true, env = "MIGRATE_NO_PROGRESS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_progress: bool,

    /// Print every setting this command would use and where it came from (secrets hidden); run
    /// nothing
    #[arg(long, global = true)]
    pub show_settings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first mapping plan and the Convex files (migrateTables.ts, migrate.ts) from the catalog
    #[command(alias = "plan", long_about = INIT_ABOUT)]
    Init(InitArgs),
    /// Read every selected table in one consistent snapshot into data/raw/*.jsonl
    #[command(long_about = EXPORT_ABOUT)]
    Export(ExportArgs),
    /// Turn raw rows into Convex documents following the mapping plan
    #[command(long_about = TRANSFORM_ABOUT)]
    Transform(TransformArgs),
    /// Push documents into Convex in batches, parents first, resumable
    #[command(long_about = IMPORT_ABOUT)]
    Import(ImportArgs),
    /// Prove that Convex holds exactly what the source held
    #[command(long_about = VERIFY_ABOUT)]
    Verify(VerifyArgs),
    /// Send only what changed since the deployment's last import or sync (the cut-over)
    #[command(long_about = SYNC_ABOUT)]
    Sync(SyncArgs),
    /// Run export, transform, import and verify in turn
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// Show where each table stands; --ledger: what the deployment's ledger says was migrated
    #[command(long_about = STATUS_ABOUT)]
    Status(StatusArgs),
    /// Remove from Convex every document this migration imported, and nothing else
    #[command(long_about = ROLLBACK_ABOUT)]
    Rollback(RollbackArgs),
    /// After go-live: drop the by_legacy_id indexes and take the legacy id fields out
    #[command(long_about = FINALIZE_ABOUT)]
    Finalize(FinalizeArgs),
}

const FINALIZE_ABOUT: &str = "\
After go-live: drop the by_legacy_id indexes and take the legacy id fields out of the documents.

Needs a completed import in the deployment's ledger. Records each migrated document's Convex id \
per legacy id in data/finalize/<table>.jsonl (verify matches documents through it afterwards), \
writes <convex-dir>/migrateTables.ts without the by_legacy_id indexes and with the legacy id \
fields optional, marks the ledger `finalizing`, then patches the legacy id fields out of the \
documents, --batch-size at a time (migrate:unsetLegacyIds), and marks the ledger `finalized`. \
Convex refuses the patch until the new migrateTables.ts is deployed: finalize then stops with \
exit code 4 and says to deploy (npx convex deploy) and run it again. With \
`[finalize] keep_legacy_ids = true` in the plan the fields stay and only the indexes go. Every \
step is safe to repeat: a finalize stopped anywhere finishes when run again. Afterwards import \
and rollback refuse the deployment.";

const STATUS_ABOUT: &str = "\
Show where each table stands: the export, the transform, and what the import state \
(data/state.sqlite) says was imported, refused and patched, with the last runs. Nothing is \
contacted.

--ledger also reads the deployment's ledger (the migrateLedger table the generated module keeps; \
needs CONVEX_DEPLOY_KEY): one entry per import and plan version with the plan's version and files, \
status (running, completed, failed, rolling back, rolled back, finalizing, finalized), counts and \
times. It needs no data directory: anyone with the deploy key sees what was migrated into the \
deployment.";

const ROLLBACK_ABOUT: &str = "\
Remove from Convex every document this migration imported, and nothing else.

Reads each table's legacy ids from data/transformed/ (what import sent), looks them up in the \
deployment through the by_legacy_id index, children's tables first, --batch-size at a time, and \
removes each document found by its Convex id and legacy id (migrate:removeDocs): a document the \
application wrote is never touched, even in the same table. A document whose fields differ from \
what import wrote (changed in Convex since; references and system fields are not compared) is \
listed and kept, unless --force. The deployment's ledger says `rolling back` while it runs and \
`rolled back` at the end; the import state's checkpoints are then dropped, so a later import \
starts over. Interrupted or killed, run it again: every step is safe to repeat. `migrate verify` \
afterwards checks that no migrated document is left. A finalized deployment is refused.

--dry-run prints per table what would be removed and kept, and changes nothing.";

const VERIFY_ABOUT: &str = "\
Prove that Convex holds exactly what the source held.

First it accounts for every exported row: per source table, the row count of the export's \
manifest (each raw file checked against it) must equal the documents in data/transformed/ + the \
rows merged into another table's documents + the rows a plan rule left out (row filters, orphan \
policy `drop`, counted per rule) + the rows of tables the plan skips + the rows rejected (the \
lines of data/rejects/). Then it reads every table back from Convex (the generated \
migrate:readBack query, references resolved to legacy ids on the server) and compares it with \
data/transformed/ document by document: every field as Convex stores it (key order and number \
spelling aside), every reference through the legacy id of the document it points at (ids differ \
per deployment), no legacy id held twice, no document Convex has that the source does not, and \
no two documents sharing values on the fields of a unique index of the source (Convex does not \
enforce uniqueness; NULLs clash as in Postgres). Memory stays bounded: large tables are compared one hash partition at a time, spilled under \
data/.verify/.

Exit code 0 only when every row is accounted for, Convex matches, and no row was rejected — or \
exactly as many as --accept-rejected N accepts; 1 otherwise. The report has one row per source \
table and names the first differences (--show N) with table, legacy id and field. --format json \
for CI.";

const RUN_ABOUT: &str = "\
Run export, transform, import and verify in turn.

Takes the flags of each stage (the plan must exist: run `migrate init` first and deploy the Convex \
files it writes). Checks the Convex settings before exporting. Each stage prints its summary \
(--format json: one JSON line per stage, {\"stage\": ..., \"report\": ...}); the first stage \
that does not succeed stops the chain with its exit code, so `migrate run` exits 0 only when \
verify found Convex identical to the source.

--dry-run: a rehearsal. Export and transform write the data directory as in a run; import only \
prints the order and the batches it would send. Nothing reaches Convex, no deploy key is needed.";

const EXPORT_ABOUT: &str = "\
Read every selected table in one consistent snapshot into data/raw/*.jsonl.

All tables are read inside one REPEATABLE READ snapshot, shared by the --jobs connections, so a row \
that references another finds it in the export even while the application keeps writing. Rows \
stream to data/raw/<schema>.<table>.jsonl (one JSON object per row, nothing rounded: see \
docs/raw-format.md); a file appears under its final name only once complete. data/manifest.json \
records the snapshot, the catalog (columns, types, keys, foreign keys) and per table the row count \
and a BLAKE3 checksum of the file. Partitioned tables are read once through their parent. Views are \
exported only when named in --tables. Row-level security is never applied silently: a table whose \
policies would hide rows from the exporting user is an error.";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// PostgreSQL connection URL (or libpq's PGHOST, PGDATABASE, ...) to read the catalog from
    /// when there is no export in the data directory, or --schemas or --tables is given;
    /// otherwise the catalog of the last export (data/manifest.json) is used
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Schemas whose tables the plan covers, comma-separated (Supabase users: add `auth`); given
    /// on the command line, the catalog is read from --database-url even after an export
    #[arg(long, env = "MIGRATE_SCHEMAS", default_value = "public")]
    pub schemas: String,

    /// Only these tables or views: `schema.table` or `table`, comma-separated; given on the
    /// command line, the catalog is read from --database-url even after an export
    #[arg(long, env = "MIGRATE_TABLES")]
    pub tables: Option<String>,

    /// `--schemas` or `--tables` was given on the command line (not taken from the environment
    /// or the default): set by [`parse`].
    #[arg(skip)]
    pub selection_given: bool,

    /// The Convex app's folder, where migrateTables.ts and migrate.ts go (and schema.ts when the
    /// app has none)
    #[arg(long, env = "MIGRATE_CONVEX_DIR", default_value = "convex")]
    pub convex_dir: PathBuf,

    /// Overwrite files migrate wrote and a person edited since (never a file migrate did not write)
    #[arg(long)]
    pub force: bool,

    /// An auth preset: also write its plan file (0002_<preset>.toml) and the Better Auth
    /// component's files into the Convex folder (docs/auth-presets.md);
    /// better-auth-component-to-app moves an exported component's tables into app tables
    /// (docs/convex-source.md)
    #[arg(long, value_parser = ["supabase-to-better-auth", "better-auth", "better-auth-component-to-app"])]
    pub preset: Option<String>,

    /// After a complete import: write migrateTables.ts with the references in foreign-key cycles
    /// required where their columns are NOT NULL (optional while import patches them in).
    /// Refused unless data/state.sqlite shows the import complete; plan files are left as they are
    #[arg(long)]
    pub after_import: bool,
    /// Read the catalog from a pg_dump file (restored into a throwaway cluster) instead of a
    /// server
    #[arg(long, value_name = "FILE")]
    pub from_dump: Option<PathBuf>,
}

const INIT_ABOUT: &str = "\
Write the first mapping plan, the migrated Convex tables and the Convex functions import calls, \
from the source catalog.

The catalog is the last export's (data/manifest.json: the tables it read, its schemas and \
--tables), which is what transform will read; with --database-url and no export, or with \
--schemas or --tables on the command line, it is read from the database.

Writes <plan-dir>/0001_initial.toml: every table with its Convex table name, the legacy id, each \
column's field name and value policy, every foreign key as a reference, with comments to edit by \
(docs/plan-format.md). Then resolves the whole plan (every file in the plan dir, in order) and \
writes into <convex-dir>:
- migrateTables.ts: `migrateTables`, a table per Convex table whose validators accept exactly \
what `migrate transform` emits, with a by_legacy_id index each, the source's indexes whose \
columns are fields (a comment says why one is not) and an index per reference, for the app's \
schema to spread;
- migrate.ts: the internal functions `migrate import` and `migrate verify` call with the deploy \
key (upsert by legacy id, resolving references to Convex ids; read-back; delete), see \
docs/convex-module.md;
- schema.ts, only when the app has none: `defineSchema({ ...migrateTables })`.
An app's own schema.ts is never written: init prints the two lines that add the migrated tables \
to it (an import, and `...migrateTables,` in its defineSchema), and refuses, changing nothing in \
<convex-dir>, when it already defines a table the plan migrates into (rename the migrated table \
with `target` in the plan). Deploy the app (`npx convex deploy`) before importing.

Generated files carry a hash of what was generated. One a person has edited since is never \
overwritten without --force: an edited plan is kept as it is (and used), an edited \
migrateTables.ts or migrate.ts stops the command. A file migrate did not write is never \
overwritten. A later run shows what it changed (a compact diff per file). Run `migrate init` \
again after editing the plan to regenerate the Convex files; until then `transform` and \
`status` warn that they are behind the plan.

After a complete import, `migrate init --after-import` writes migrateTables.ts again with the \
references in foreign-key cycles required where their columns are NOT NULL: import inserts such \
documents without them and patches them in, so until then they are optional. It reads the plan \
and the export's catalog as they are (writing no plan file) and refuses unless the import state \
(data/state.sqlite) shows the last `migrate import` completed under the current plan, every \
transformed document imported and none refused. Deploy the app again afterwards; before a later \
import, run `migrate init` without the flag and deploy.";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// PostgreSQL connection URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE; what it leaves
    /// out comes from libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ... and ~/.pgpass,
    /// as in psql (Supabase: the direct connection or the session pooler, not the transaction
    /// pooler)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Schemas whose tables are exported, comma-separated (Supabase users: add `auth`)
    #[arg(long, env = "MIGRATE_SCHEMAS", default_value = "public")]
    pub schemas: String,

    /// Export only these tables or views: `schema.table` or `table`, comma-separated;
    /// quote names holding dots or commas: `public."a.b"`
    #[arg(long, env = "MIGRATE_TABLES")]
    pub tables: Option<String>,

    /// Connections reading tables in parallel, all in the same snapshot
    #[arg(long, short = 'j', env = "MIGRATE_JOBS", default_value = "4")]
    pub jobs: NonZeroUsize,

    /// Read only what changed since the previous export in --data-dir (for a cut-over's
    /// `migrate sync`): rows written since its snapshot (by their row version, `xmin`) and the
    /// keys of now, the rest kept from its files, checked against their checksums. A table
    /// without a primary key, whose definition changed, or new, is read whole (docs/sync.md)
    #[arg(long, conflicts_with_all = ["from_dump", "from_convex"])]
    pub incremental: bool,

    /// Read a pg_dump file instead of a server (plain SQL, .sql.gz, -Fc, -Fd or -Ft): restored
    /// into a throwaway PostgreSQL cluster from the installed binaries, then exported;
    /// --database-url is not used. The empty cluster initdb makes is kept per PostgreSQL version
    /// in ~/.cache/migrate (XDG_CACHE_HOME, MIGRATE_CACHE_DIR) for the next run to copy
    #[arg(long, value_name = "FILE")]
    pub from_dump: Option<PathBuf>,

    /// Read a Convex deployment instead of a server (docs/convex-source.md): its schema and
    /// every table's documents at one snapshot, through Convex's streaming export API, with the
    /// deploy key in MIGRATE_SOURCE_DEPLOY_KEY (else CONVEX_DEPLOY_KEY), never on the command
    /// line; --tables selects
    #[arg(long, value_name = "URL", conflicts_with = "from_dump")]
    pub from_convex: Option<String>,

    /// With --from-convex: the tables of this component (as the app mounts it, e.g.
    /// `betterAuth`) instead of the app's, read page by page through its adapter's findMany
    #[arg(long, value_name = "NAME", requires = "from_convex")]
    pub component: Option<String>,
}

const TRANSFORM_ABOUT: &str = "\
Turn raw rows into Convex documents following the mapping plan.

Reads the export (data/manifest.json, data/raw/) and the plan (every file of --plan-dir, in \
order; docs/plan-format.md), and writes data/transformed/<convexTable>.jsonl: one document per \
line in Convex's tagged encoding, references still as legacy ids for import to resolve \
(docs/transformed-format.md). Nothing is rounded silently: a row with a value its policy cannot \
carry exactly, or a document Convex would refuse (field names, nesting, array and object sizes, \
1 MiB), goes to data/rejects/<schema>.<table>.jsonl with its key, the field and the reason, and \
the run goes on. The raw files are checked against the export's row counts and checksums. \
transformed/manifest.json is written last.

Exit code 5 when more rows were rejected than --max-rejected allows (default 0).";

/// The Convex app's folder, for the commands that check the files `migrate init` wrote there.
#[derive(Debug, Clone, Args)]
pub struct ConvexDirArgs {
    /// The Convex app's folder holding the files `migrate init` wrote (migrateTables.ts,
    /// migrate.ts): a warning says when they were made from another plan
    #[arg(long, env = "MIGRATE_CONVEX_DIR", default_value = "convex")]
    pub convex_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub convex_dir: ConvexDirArgs,
    /// Also read the deployment's ledger (needs CONVEX_DEPLOY_KEY): what was migrated into it,
    /// under which plan, and where it stands
    #[arg(long)]
    pub ledger: bool,
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
}

#[derive(Debug, Args)]
pub struct FinalizeArgs {
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub convex_dir: ConvexDirArgs,
    /// Documents patched per call
    #[arg(long, env = "MIGRATE_BATCH_SIZE", default_value = "100")]
    pub batch_size: NonZeroUsize,
    /// Overwrite a migrateTables.ts edited by a person
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub convex: ConvexArgs,
    /// Legacy ids looked up, and documents removed, per call (at most 1000)
    #[arg(long, env = "MIGRATE_BATCH_SIZE", default_value = "100")]
    pub batch_size: NonZeroUsize,
    /// Remove documents changed in Convex since the import too
    #[arg(long)]
    pub force: bool,
    /// Print per table what would be removed and kept; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// Which deployments of `<plan-dir>/targets.toml` a command runs against (docs/targets.md).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Run against this deployment of <plan-dir>/targets.toml (repeatable) instead of
    /// CONVEX_URL/CONVEX_DEPLOY_KEY; its key is read from the variable its `deploy_key_env` names
    #[arg(long = "target", value_name = "NAME")]
    pub target: Vec<String>,
    /// Run against every deployment of <plan-dir>/targets.toml
    #[arg(long, conflicts_with = "target")]
    pub all_targets: bool,
    /// Targets run at once; each target's own calls are bounded by --concurrency
    #[arg(long, env = "MIGRATE_PARALLEL_TARGETS", default_value = "4", value_name = "N")]
    pub parallel_targets: NonZeroUsize,
}

impl TargetArgs {
    /// Whether targets were asked for (else the single deployment of CONVEX_URL).
    pub fn any(&self) -> bool {
        self.all_targets || !self.target.is_empty()
    }
}

#[derive(Debug, Args)]
pub struct TransformArgs {
    #[command(flatten)]
    pub convex_dir: ConvexDirArgs,
    /// With tenant filters in targets.toml: transform each target's own rows into its own
    /// data directory (data/deployments/<deployment>/) instead of the shared one
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Print sample documents and statistics; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Sample documents per table shown by --dry-run
    #[arg(long, default_value = "3")]
    pub sample: usize,
    /// Tolerate up to N rejected rows (exit 0), and stop as soon as more are rejected; without
    /// it the run goes on and any rejected row makes the exit code 5
    #[arg(long, value_name = "N")]
    pub max_rejected: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub batches: BatchArgs,
    /// Start over when the state file belongs to an import under another plan; import a plan
    /// older than the one the deployment's ledger says completed
    #[arg(long)]
    pub force: bool,
    /// Print the import order and batch counts; send nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// How import cuts and sends batches.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The most mutations in flight at once. Import starts with 4 and adapts: more while
    /// replies come back as fast, fewer when latency rises or Convex answers 429/503 or a call
    /// times out (Convex's smallest plan runs 16 at a time, larger plans 256 and more)
    #[arg(long, env = "MIGRATE_CONCURRENCY", default_value = "64")]
    pub concurrency: NonZeroUsize,
    /// Documents per mutation (batches are also bounded by --batch-bytes)
    #[arg(long, env = "MIGRATE_BATCH_SIZE", default_value = "100")]
    pub batch_size: NonZeroUsize,
    /// Upper bound on one mutation's arguments, in bytes (Convex allows 16 MiB)
    #[arg(long, default_value = "8388608")]
    pub batch_bytes: NonZeroUsize,
}

/// Where Convex is and how hard to try.
#[derive(Debug, Clone, Args)]
pub struct ConvexArgs {
    /// The Convex deployment URL, e.g. https://happy-animal-123.convex.cloud; by default derived
    /// from CONVEX_DEPLOY_KEY (read from the environment only, never from the command line)
    #[arg(long, env = "CONVEX_URL", hide_env_values = true)]
    pub convex_url: Option<String>,
    /// Seconds one call may take before it is retried
    #[arg(long, env = "MIGRATE_TIMEOUT", default_value = "60", value_name = "SECONDS")]
    pub timeout: u64,
    /// Retries of a call that timed out, lost its connection or got 429/5xx, with exponential
    /// backoff and jitter; then the command stops and can be resumed
    #[arg(long, env = "MIGRATE_RETRIES", default_value = "8")]
    pub retries: u32,
}

const IMPORT_ABOUT: &str = "\
Push documents into Convex in batches, parents first, resumable.

Calls the generated convex/migrate.ts (deploy it with your app first; docs/convex-module.md) over \
Convex's HTTP API with the deploy key from CONVEX_DEPLOY_KEY. Each batch is an upsert by legacy \
id, so sending it twice changes nothing: timeouts, lost connections, 429 and 5xx replies are \
retried with backoff, and an interrupted import resumes from data/state.sqlite, which records \
every acknowledged batch. Tables go parents first; references in foreign-key cycles \
(self-references too) are patched in by a second pass. A document Convex refuses goes to \
data/rejects/import/<table>.jsonl with Convex's message and the rest of its batch is imported.

Exit code 5 when Convex refused documents, 4 when Convex kept failing (run again to resume).";

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub batches: BatchArgs,
    /// Leave the documents whose source rows are gone in Convex
    #[arg(long)]
    pub no_deletes: bool,
    /// Print per table how many documents would be inserted, updated, deleted and left alone;
    /// send nothing
    #[arg(long)]
    pub dry_run: bool,
}

const SYNC_ABOUT: &str = "\
Send only what changed since the deployment's last import or sync (the cut-over).

After a new `migrate export` and `migrate transform`, compares data/transformed/ with the files \
the deployment last received (kept beside its import state by every completed import or sync) \
by legacy id and a hash of each document: new and changed documents are upserted through \
convex/migrate.ts as import sends them (references resolved on the server, cycle references \
patched by a second pass, checkpoints: an interrupted sync resumes), then documents whose rows \
are gone are deleted, children's tables first (--no-deletes keeps them). Unchanged documents are \
not sent. A changed plan is a sync too: deploy the regenerated convex/ files first. docs/sync.md.

Exit code 5 when Convex refused documents, 4 when Convex kept failing (run again to resume).";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Differences listed in the report (all are counted)
    #[arg(long, default_value = "20", value_name = "N")]
    pub show: usize,
    /// Accept exactly N rows rejected by transform (listed in data/rejects/): verify passes
    /// only when exactly N were rejected (default: any rejected row fails verify)
    #[arg(long, value_name = "N")]
    pub accept_rejected: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub convex_dir: ConvexDirArgs,
    #[command(flatten)]
    pub convex: ConvexArgs,
    #[command(flatten)]
    pub batches: BatchArgs,
    /// Tolerate up to N rows rejected by transform before importing (default 0: a rejected
    /// row stops the run before anything reaches Convex)
    #[arg(long, value_name = "N")]
    pub max_rejected: Option<u64>,
    /// Start the import over when the state file belongs to another plan
    #[arg(long)]
    pub force: bool,
    /// Differences listed in the verify report
    #[arg(long, default_value = "20", value_name = "N")]
    pub show: usize,
    /// Accept exactly N rows rejected by transform in the verify stage (see `verify
    /// --accept-rejected`)
    #[arg(long, value_name = "N")]
    pub accept_rejected: Option<u64>,
    /// Export and transform into the data directory as a run does, then print what import
    /// would send, in order; nothing is sent to Convex and no deploy key is needed
    #[arg(long)]
    pub dry_run: bool,
    /// Sync instead of import: send only what changed since the deployment last received the
    /// data (the cut-over; see `migrate sync --help`)
    #[arg(long, conflicts_with = "dry_run")]
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
