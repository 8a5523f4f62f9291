//! `--show-settings`: every setting a command would use, with its value and where it came
//! from (a flag, a variable and the `.env` file that set it, a default, libpq's rules, the
//! Convex CLI's rules). Secrets never: the database password shows as `set`, `from .pgpass` or
//! `not set`, the deploy key as `****`.

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Serialize;

use super::{DatabaseUrl, ExportSettings, InitSettings, Progress, Settings, Shown};
use crate::cli::{
    BatchArgs, Cli, Command, ConvexArgs, ExportArgs, GlobalArgs, InitArgs, TransformArgs,
};

/// The settings of one command, in groups (`general`, `postgres`, `export`, `convex`, …).
#[derive(Debug, Clone, Serialize)]
pub struct ShownSettings {
    pub command: &'static str,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: &'static str,
    pub settings: Vec<Shown>,
}

/// Resolves the settings `cli` names as the command would, without running it. Settings that
/// do not resolve are the command's error, as when it runs.
pub fn show(cli: &Cli, matches: &ArgMatches) -> anyhow::Result<ShownSettings> {
    let (name, sub) = matches.subcommand().unwrap_or(("status", matches));
    let definition = <Cli as clap::CommandFactory>::command();
    let sources = Sources { top: matches, sub, sub_name: name, definition };
    let settings = Settings::from_args(&cli.global);
    let mut groups = Vec::new();
    let (command, uses) = match &cli.command {
        Command::Init(_) => ("init", Uses { plan: true, progress: false }),
        Command::Export(_) => ("export", Uses { plan: false, progress: true }),
        Command::Transform(_) => ("transform", Uses { plan: true, progress: true }),
        Command::Import(_) => ("import", Uses { plan: true, progress: true }),
        Command::Verify(_) => ("verify", Uses { plan: true, progress: true }),
        Command::Sync(_) => ("sync", Uses { plan: true, progress: true }),
        Command::Run(_) => ("run", Uses { plan: true, progress: true }),
        Command::Status(_) => ("status", Uses { plan: true, progress: false }),
        Command::Rollback(_) => ("rollback", Uses { plan: true, progress: true }),
        Command::Finalize(_) => ("finalize", Uses { plan: true, progress: true }),
    };
    debug_assert_eq!(command, name);
    groups.push(general(&cli.global, &settings, &sources, uses));
    match &cli.command {
        Command::Init(args) => init(args, &sources, &mut groups)?,
        Command::Export(args) => export(args, &sources, &mut groups)?,
        Command::Transform(args) => {
            groups.push(transform(args, &sources));
            groups.extend(targets(&args.targets, &settings, &sources)?);
        }
        Command::Import(args) => {
            groups.extend(targets(&args.targets, &settings, &sources)?);
            if !args.targets.any() {
                groups.push(convex(&args.convex, &sources)?);
            }
            let mut import = batches(&args.batches, &sources);
            import.settings.push(sources.flag("force", args.force));
            import.settings.push(sources.flag("dry_run", args.dry_run));
            groups.push(import);
        }
        Command::Sync(args) => {
            groups.extend(targets(&args.targets, &settings, &sources)?);
            if !args.targets.any() {
                groups.push(convex(&args.convex, &sources)?);
            }
            let mut sync = batches(&args.batches, &sources);
            sync.name = "sync";
            sync.settings.push(sources.flag("no_deletes", args.no_deletes));
            sync.settings.push(sources.flag("dry_run", args.dry_run));
            groups.push(sync);
        }
        Command::Verify(args) => {
            groups.extend(targets(&args.targets, &settings, &sources)?);
            if !args.targets.any() {
                groups.push(convex(&args.convex, &sources)?);
            }
            groups.push(verify(args.show, args.accept_rejected, &sources));
        }
        Command::Run(args) => {
            export(&args.export, &sources, &mut groups)?;
            let max_rejected = max_rejected(args.max_rejected, &sources);
            let convex_dir = convex_dir(&args.convex_dir, &sources);
            groups.push(Group { name: "transform", settings: vec![max_rejected, convex_dir] });
            groups.push(convex(&args.convex, &sources)?);
            let mut import = batches(&args.batches, &sources);
            import.settings.push(sources.flag("force", args.force));
            import.settings.push(sources.flag("dry_run", args.dry_run));
            import.settings.push(sources.flag("sync", args.sync));
            groups.push(import);
            groups.push(verify(args.show, args.accept_rejected, &sources));
        }
        Command::Status(args) => {
            let ledger = sources.flag("ledger", args.ledger);
            let convex_dir = convex_dir(&args.convex_dir, &sources);
            groups.push(Group { name: "status", settings: vec![convex_dir, ledger] });
            groups.extend(targets(&args.targets, &settings, &sources)?);
            if args.ledger && !args.targets.any() {
                groups.push(convex(&args.convex, &sources)?);
            }
        }
        Command::Rollback(args) => {
            groups.extend(targets(&args.targets, &settings, &sources)?);
            if !args.targets.any() {
                groups.push(convex(&args.convex, &sources)?);
            }
            let batch_size = sources.setting("batch_size", args.batch_size);
            let force = sources.flag("force", args.force);
            let dry_run = sources.flag("dry_run", args.dry_run);
            groups.push(Group { name: "rollback", settings: vec![batch_size, force, dry_run] });
        }
        Command::Finalize(args) => {
            groups.push(convex(&args.convex, &sources)?);
            let batch_size = sources.setting("batch_size", args.batch_size);
            let convex_dir = convex_dir(&args.convex_dir, &sources);
            let force = sources.flag("force", args.force);
            groups.push(Group { name: "finalize", settings: vec![batch_size, convex_dir, force] });
        }
    }
    Ok(ShownSettings { command, groups })
}

#[derive(Clone, Copy)]
struct Uses {
    plan: bool,
    progress: bool,
}

/// Where clap found each argument: the top-level matches for global ones, the subcommand's for
/// the rest.
struct Sources<'a> {
    top: &'a ArgMatches,
    sub: &'a ArgMatches,
    sub_name: &'a str,
    /// The command line's definition: each argument's flag and variable.
    definition: clap::Command,
}

impl Sources<'_> {
    /// `--flag`, `VARIABLE`, `VARIABLE (from .env)`, or `default`.
    fn of(&self, id: &str) -> String {
        let sub = self.definition.find_subcommand(self.sub_name);
        let args = self
            .definition
            .get_arguments()
            .chain(sub.into_iter().flat_map(|sub| sub.get_arguments()));
        let arg = args.into_iter().find(|arg| arg.get_id() == id);
        let source = [self.sub, self.top].into_iter().find_map(|m| {
            m.try_get_raw(id).ok().flatten()?;
            m.value_source(id)
        });
        match (source, arg) {
            (Some(ValueSource::CommandLine), Some(arg)) => match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("-{}", arg.get_short().unwrap_or('?')),
            },
            (Some(ValueSource::EnvVariable), Some(arg)) => {
                let name = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let name = name.unwrap_or_default();
                match crate::dotenv::origin(&name) {
                    Some(file) => format!("{name} (from {file})"),
                    None => name,
                }
            }
            (Some(ValueSource::DefaultValue), _) => "default".into(),
            _ => "default".into(),
        }
    }

    fn setting(&self, id: &'static str, value: impl ToString) -> Shown {
        Shown { name: id, value: value.to_string(), from: self.of(id) }
    }

    fn flag(&self, id: &'static str, value: bool) -> Shown {
        self.setting(id, value)
    }

    fn optional<T: ToString>(&self, id: &'static str, value: Option<T>, none: &str) -> Shown {
        match value {
            Some(value) => self.setting(id, value),
            None => Shown { name: id, value: none.to_owned(), from: self.of(id) },
        }
    }
}

fn general(global: &GlobalArgs, settings: &Settings, sources: &Sources<'_>, uses: Uses) -> Group {
    let mut shown = vec![sources.setting("data_dir", settings.data_dir.display())];
    if uses.plan {
        shown.push(sources.setting("plan_dir", settings.plan_dir.display()));
    }
    let format = match settings.format {
        crate::cli::OutputFormat::Text => "text",
        crate::cli::OutputFormat::Json => "json",
    };
    shown.push(sources.setting("format", format));
    if uses.progress {
        let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let (value, from) = match settings.progress {
            Progress::Off if global.quiet > 0 => ("off", "-q".to_owned()),
            Progress::Off => ("off", sources.of("no_progress")),
            Progress::Bars => ("bars", "stderr is a terminal".to_owned()),
            Progress::Lines if global.verbose > 0 => ("lines", "-v (logs would break bars)".into()),
            Progress::Lines if on_terminal && in_ci => ("lines", "CI is set".to_owned()),
            Progress::Lines => ("lines", "stderr is not a terminal".to_owned()),
        };
        let value = match settings.progress {
            Progress::Lines => {
                format!("{value}, every {} s", crate::output::progress_interval().as_secs_f64())
            }
            _ => value.to_owned(),
        };
        shown.push(Shown { name: "progress", value, from });
    }
    let (level, from) = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => (filter, "RUST_LOG".to_owned()),
        _ => match (global.quiet, global.verbose) {
            (q, _) if q > 0 => ("error".to_owned(), "-q".to_owned()),
            (_, 0) => ("warn".to_owned(), "default".to_owned()),
            (_, v) => {
                let level = ["info", "debug", "trace"][usize::from(v.min(3)) - 1];
                (level.to_owned(), format!("-{}", "v".repeat(usize::from(v))))
            }
        },
    };
    shown.push(Shown { name: "log_level", value: level, from });
    Group { name: "general", settings: shown }
}

fn postgres(url: &DatabaseUrl) -> Group {
    Group { name: "postgres", settings: url.shown().to_vec() }
}

fn selection(
    schemas: &[String],
    tables: &[super::TableSelector],
    sources: &Sources<'_>,
) -> [Shown; 2] {
    let tables = if tables.is_empty() {
        "every table of the schemas".to_owned()
    } else {
        tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    };
    [sources.setting("schemas", schemas.join(",")), sources.setting("tables", tables)]
}

fn export(args: &ExportArgs, sources: &Sources<'_>, groups: &mut Vec<Group>) -> anyhow::Result<()> {
    let settings = ExportSettings::from_args(args)?;
    // A dump is restored into a throwaway cluster of migrate's own: no connection to show.
    if args.from_dump.is_none() {
        groups.push(postgres(&settings.database_url));
    }
    let mut shown = selection(&settings.schemas, &settings.tables, sources).to_vec();
    shown.push(sources.setting("jobs", settings.jobs));
    let dump = args.from_dump.as_ref().map(|path| path.display());
    shown.push(sources.optional("from_dump", dump, "none (a server)"));
    groups.push(Group { name: "export", settings: shown });
    Ok(())
}

fn init(args: &InitArgs, sources: &Sources<'_>, groups: &mut Vec<Group>) -> anyhow::Result<()> {
    let settings = InitSettings::from_args(args)?;
    // As `init` chooses (commands::init_catalog): a dump, else the database when the command
    // line names a selection, else the last export, else the database.
    let catalog = match (&settings.from_dump, &settings.database_url) {
        (Some(dump), _) => Shown {
            name: "catalog",
            value: format!("restored from the dump `{}`", dump.display()),
            from: "--from-dump".into(),
        },
        (None, Some(url)) => {
            groups.push(postgres(url));
            let value = if settings.selection_given {
                "read from the database"
            } else {
                "the last export's when there is one (manifest.json in the data directory), \
                 else read from the database"
            };
            Shown {
                name: "catalog",
                value: value.into(),
                from: url.from_of("connection").to_owned(),
            }
        }
        (None, None) => Shown {
            name: "catalog",
            value: "the last export's (manifest.json in the data directory)".into(),
            from: "no --database-url, DATABASE_URL or PG* variable naming a server".into(),
        },
    };
    let mut shown = vec![catalog];
    shown.extend(selection(&settings.schemas, &settings.tables, sources));
    shown.push(sources.setting("convex_dir", settings.convex_dir.display()));
    shown.push(sources.flag("force", settings.force));
    shown.push(sources.flag("after_import", settings.after_import));
    groups.push(Group { name: "init", settings: shown });
    Ok(())
}

fn transform(args: &TransformArgs, sources: &Sources<'_>) -> Group {
    Group {
        name: "transform",
        settings: vec![
            sources.flag("dry_run", args.dry_run),
            sources.setting("sample", args.sample),
            max_rejected(args.max_rejected, sources),
            convex_dir(&args.convex_dir, sources),
        ],
    }
}

/// The Convex folder whose generated files are checked against the plan.
fn convex_dir(args: &crate::cli::ConvexDirArgs, sources: &Sources<'_>) -> Shown {
    sources.setting("convex_dir", args.convex_dir.display())
}

fn max_rejected(value: Option<u64>, sources: &Sources<'_>) -> Shown {
    sources.optional("max_rejected", value, "0 (any rejected row makes the exit code 5)")
}

fn convex(args: &ConvexArgs, sources: &Sources<'_>) -> anyhow::Result<Group> {
    let deployment = crate::deployment::from_env(args.convex_url.as_deref())?;
    let url = match &deployment.url {
        Some(url) => Shown {
            name: "url",
            value: super::redact_url(url),
            from: deployment.url_from.clone().unwrap_or_default(),
        },
        None => Shown {
            name: "url",
            value: "not set".into(),
            from: "no --convex-url, CONVEX_URL, CONVEX_DEPLOY_KEY, CONVEX_DEPLOYMENT or \
                   CONVEX_SELF_HOSTED_URL"
                .into(),
        },
    };
    let key = match &deployment.key {
        Some(_) => Shown {
            name: "key",
            value: "****".into(),
            from: deployment.key_from.clone().unwrap_or_default(),
        },
        None => Shown {
            name: "key",
            value: "not set".into(),
            from: "no CONVEX_DEPLOY_KEY or CONVEX_SELF_HOSTED_ADMIN_KEY".into(),
        },
    };
    Ok(Group {
        name: "convex",
        settings: vec![
            url,
            key,
            Shown {
                name: "timeout",
                value: format!("{} s", args.timeout.max(1)),
                from: sources.of("timeout"),
            },
            sources.setting("retries", args.retries),
        ],
    })
}

/// With `--target`/`--all-targets`: each selected target's URL and the variable its key is
/// read from (set or not; never the key), and `--parallel-targets`.
fn targets(
    args: &crate::cli::TargetArgs,
    settings: &Settings,
    sources: &Sources<'_>,
) -> anyhow::Result<Option<Group>> {
    if !args.any() {
        return Ok(None);
    }
    let path = settings.plan_dir.join(crate::targets::file::FILE_NAME);
    let all = crate::targets::file::load(&settings.plan_dir)?;
    let selected = crate::targets::file::select(all, &args.target, args.all_targets, &path)?;
    let mut shown: Vec<Shown> = selected
        .iter()
        .map(|t| {
            let set = std::env::var(&t.deploy_key_env).is_ok_and(|k| !k.trim().is_empty());
            let filters = if t.filters.is_some() { ", tenant filters" } else { "" };
            Shown {
                // Settings are named by `&'static str`; a target's name is known only now. This
                // runs once per process, for a handful of names.
                name: Box::leak(t.name.clone().into_boxed_str()),
                value: format!("{}{filters}", super::redact_url(&t.url)),
                from: format!(
                    "{}, key from {} ({})",
                    path.display(),
                    t.deploy_key_env,
                    if set { "set" } else { "not set" }
                ),
            }
        })
        .collect();
    shown.push(sources.setting("parallel_targets", args.parallel_targets));
    Ok(Some(Group { name: "targets", settings: shown }))
}

fn batches(args: &BatchArgs, sources: &Sources<'_>) -> Group {
    Group {
        name: "import",
        settings: vec![
            sources.setting("concurrency", args.concurrency),
            sources.setting("batch_size", args.batch_size),
            sources.setting("batch_bytes", args.batch_bytes),
        ],
    }
}

fn verify(show: usize, accept_rejected: Option<u64>, sources: &Sources<'_>) -> Group {
    Group {
        name: "verify",
        settings: vec![
            sources.setting("show", show),
            sources.optional("accept_rejected", accept_rejected, "none (any rejected row fails)"),
        ],
    }
}
