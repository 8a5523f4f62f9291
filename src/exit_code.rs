//! The process exit codes `migrate` promises to scripts and CI, in one place.
//!
//! Documented in `migrate --help` and README.md; never renumber one.

/// Everything asked for was done.
pub const OK: u8 = 0;
/// `verify` ran and found differences between the source and Convex.
pub const VERIFY_DIFFERENCES: u8 = 1;
/// The command line, a setting or the mapping plan is wrong, or names something that does not
/// exist; nothing was changed.
pub const USAGE: u8 = 2;
/// PostgreSQL failed: unreachable, refused the login, missing database, permission denied, or a
/// query failed.
pub const SOURCE_FAILURE: u8 = 3;
/// Convex failed and retries did not help.
pub const CONVEX_FAILURE: u8 = 4;
/// More rows were rejected than `--max-rejected` allows.
pub const REJECTED_ROWS: u8 = 5;
/// The data directory could not be read or written (permissions, disk full).
pub const LOCAL_IO: u8 = 6;
/// A bug in `migrate`: please report it.
pub const INTERNAL: u8 = 70;
/// Interrupted (Ctrl-C); what was finished is kept and the command can be run again.
pub const INTERRUPTED: u8 = 130;

/// The table printed at the end of `migrate --help`.
pub const HELP: &str = "\
Exit codes:
  0    success
  1    verify found differences
  2    usage or configuration error (flags, settings, plan, unknown table, missing input)
  3    PostgreSQL failure (unreachable, login refused, missing database, permission denied)
  4    Convex failure after retries
  5    more rejected rows than --max-rejected allows
  6    data directory could not be read or written
  70   internal error (a bug: please report it)
  130  interrupted; run the same command again to start over or resume";
