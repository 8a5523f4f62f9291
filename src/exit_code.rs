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

/// The worst of several deployments' codes (`--all-targets`): interrupted over any failure
/// (usage, source, Convex, data directory, internal) over refused rows over differences over
/// success.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    let rank = |code: u8| match code {
        OK => 0,
        VERIFY_DIFFERENCES => 1,
        REJECTED_ROWS => 2,
        INTERRUPTED => 5,
        CONVEX_FAILURE | SOURCE_FAILURE | LOCAL_IO => 3,
        _ => 4,
    };
    codes.into_iter().max_by_key(|&code| (rank(code), code)).unwrap_or(OK)
}

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
  130  interrupted; run the same command again to start over or resume
With --target/--all-targets: the worst target's (130, then a failure, then 5, then 1)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_code_wins() {
        assert_eq!(worst([OK, CONVEX_FAILURE, OK]), CONVEX_FAILURE);
        assert_eq!(worst([VERIFY_DIFFERENCES, REJECTED_ROWS]), REJECTED_ROWS);
        assert_eq!(worst([REJECTED_ROWS, CONVEX_FAILURE, USAGE]), USAGE);
        assert_eq!(worst([INTERRUPTED, USAGE]), INTERRUPTED);
        assert_eq!(worst([]), OK);
    }
}
