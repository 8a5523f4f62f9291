//! libpq's password file (`~/.pgpass`, `PGPASSFILE`, the `passfile` option): lines of
//! `host:port:database:user:password`, read as libpq's `passwordFromFile` reads them. The first
//! line whose four fields match wins; a field `*` matches anything; `\` escapes `:` and `\`;
//! lines starting with `#` are comments; a line that does not match is skipped, whatever it
//! holds. A file that group or others may access, or that is not a plain file, is ignored
//! with a warning, as libpq does.

use std::path::Path;

/// The connection a password is looked up for, as libpq passes it: the host (`localhost` for
/// the default socket directory), the port as text, the database and the user.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub host: &'a str,
    pub port: &'a str,
    pub database: &'a str,
    pub user: &'a str,
}

/// What reading the password file gave.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No file there (libpq says nothing either).
    Missing,
    /// The file exists but libpq would not read it; the reason, for the warning and the hint.
    Ignored { reason: String },
    /// No line matches the connection.
    NoMatch,
    /// The password of the first matching line (1-based line number).
    Found { password: String, line: usize },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Missing => f.write_str("Missing"),
            Outcome::Ignored { reason } => write!(f, "Ignored({reason})"),
            Outcome::NoMatch => f.write_str("NoMatch"),
            Outcome::Found { line, .. } => write!(f, "Found(line {line}, ****)"),
        }
    }
}

/// Looks `lookup` up in the file at `path`, checking first that only its owner may read it.
pub fn find(path: &Path, lookup: Lookup<'_>) -> Outcome {
    // libpq returns nothing for an empty database or user name before it opens the file.
    if lookup.database.is_empty() || lookup.user.is_empty() {
        return Outcome::NoMatch;
    }
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(_) => return Outcome::Missing,
    };
    if let Some(reason) = refusal(&metadata) {
        return Outcome::Ignored { reason };
    }
    match std::fs::read(path) {
        Ok(bytes) => find_in(&String::from_utf8_lossy(&bytes), lookup)
            .map_or(Outcome::NoMatch, |(password, line)| Outcome::Found { password, line }),
        Err(error) => Outcome::Ignored { reason: format!("it cannot be read ({error})") },
    }
}

/// Why libpq would not read a file with this metadata, if it would not.
pub fn refusal(metadata: &std::fs::Metadata) -> Option<String> {
    if !metadata.is_file() {
        return Some("it is not a plain file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "it has group or world access (mode {:04o}); permissions should be u=rw (0600) \
                 or less: chmod 0600 it",
                mode & 0o7777
            ));
        }
    }
    None
}

/// The password and 1-based line number of the first line of `text` matching `lookup`.
pub fn find_in(text: &str, lookup: Lookup<'_>) -> Option<(String, usize)> {
    text.split('\n').enumerate().find_map(|(index, line)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let rest = [lookup.host, lookup.port, lookup.database, lookup.user]
            .into_iter()
            .try_fold(line, |rest, wanted| matches_field(rest, wanted))?;
        Some((unescape_password(rest), index + 1))
    })
}

/// Matches the field at the start of `line` against `wanted`; on a match, what follows the
/// field's `:`. `*` alone matches anything; `\x` stands for `x`.
fn matches_field<'a>(line: &'a str, wanted: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut wanted = wanted.chars();
    let mut chars = line.char_indices();
    while let Some((at, c)) = chars.next() {
        let (c, escaped) = match c {
            '\\' => match chars.next() {
                Some((_, next)) => (next, true),
                None => return None,
            },
            c => (c, false),
        };
        if c == ':' && !escaped {
            return wanted.next().is_none().then(|| &line[at + 1..]);
        }
        if wanted.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password field: up to the first unescaped `:`, with `\x` read as `x`.
fn unescape_password(field: &str) -> String {
    let mut password = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(next) => password.push(next),
                None => password.push('\\'),
            },
            c => password.push(c),
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Lookup<'static> =
        Lookup { host: "db.example.com", port: "5432", database: "app", user: "alice" };

    fn password(text: &str, lookup: Lookup<'_>) -> Option<String> {
        find_in(text, lookup).map(|(password, _)| password)
    }

    #[test]
    fn the_first_matching_line_wins_and_stars_match_anything() {
        let text = "\
# a comment:*:*:*:not-this
other.example.com:5432:app:alice:wrong-host
db.example.com:5433:app:alice:wrong-port
db.example.com:5432:*:bob:wrong-user
db.example.com:*:app:alice:right
*:*:*:*:fallback
";
        assert_eq!(find_in(text, ALICE), Some(("right".into(), 5)));
        let bob = Lookup { user: "bob", database: "other", ..ALICE };
        assert_eq!(password(text, bob).as_deref(), Some("wrong-user"));
        let carol = Lookup { user: "carol", ..ALICE };
        assert_eq!(password(text, carol).as_deref(), Some("fallback"));
        assert_eq!(
            password("db.example.com:5432:app:alice:x", Lookup { port: "6432", ..ALICE }),
            None
        );
    }

    #[test]
    fn backslashes_escape_colons_and_backslashes_in_every_field() {
        // A host and user holding `:` and `\`, and a password holding both.
        let text = r"fe80\:\:1:5432:app:dom\\alice:p\:ss\\w\:rd:ignored";
        let lookup = Lookup { host: "fe80::1", user: r"dom\alice", ..ALICE };
        assert_eq!(password(text, lookup).as_deref(), Some(r"p:ss\w:rd"));
        // An escaped star is a literal star, not a wildcard.
        assert_eq!(password(r"\*:5432:app:alice:pw", ALICE), None);
        assert_eq!(
            password(r"\*:5432:app:alice:pw", Lookup { host: "*", ..ALICE }).as_deref(),
            Some("pw")
        );
        // A field that only starts like the value is no match.
        assert_eq!(password("db.example.com.evil:5432:app:alice:pw", ALICE), None);
        assert_eq!(password("db.example:5432:app:alice:pw", ALICE), None);
    }

    #[test]
    fn short_lines_crlf_and_empty_passwords() {
        assert_eq!(password("db.example.com:5432:app:alice", ALICE), None);
        assert_eq!(password("db.example.com:5432:app:alice:pw\r\n", ALICE).as_deref(), Some("pw"));
        assert_eq!(password("db.example.com:5432:app:alice:", ALICE).as_deref(), Some(""));
        assert_eq!(password("\n\n*:*:*:*:third", ALICE), Some("third".into()));
        assert_eq!(find_in("\n\n*:*:*:*:third", ALICE).map(|(_, line)| line), Some(3));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_ignored_and_an_owner_only_one_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pgpass");
        assert_eq!(find(&path, ALICE), Outcome::Missing);
        std::fs::write(&path, "*:*:app:alice:s3cret-pw\n").unwrap();
        for (mode, read) in
            [(0o600, true), (0o400, true), (0o640, false), (0o604, false), (0o660, false)]
        {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let outcome = find(&path, ALICE);
            if read {
                assert_eq!(
                    outcome,
                    Outcome::Found { password: "s3cret-pw".into(), line: 1 },
                    "{mode:o}"
                );
            } else {
                let Outcome::Ignored { reason } = &outcome else { panic!("{mode:o}: {outcome:?}") };
                assert!(
                    reason.contains("group or world access") && reason.contains("0600"),
                    "{reason}"
                );
                assert!(!format!("{outcome:?}").contains("s3cret"));
            }
        }
        // A directory is not a password file.
        let Outcome::Ignored { reason } = find(dir.path(), ALICE) else { panic!() };
        assert!(reason.contains("not a plain file"), "{reason}");
        // No lookup without a database or user, as in libpq.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(find(&path, Lookup { user: "", ..ALICE }), Outcome::NoMatch);
        // The found password never shows in Debug.
        assert!(!format!("{:?}", find(&path, ALICE)).contains("s3cret"));
    }
}
