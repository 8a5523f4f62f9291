//! The dump file itself: which of pg_dump's formats it is, its checksum, and what its text says
//! before anything is restored (the server version it came from, the roles it names, the rows
//! each COPY carries in a plain dump).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DumpError;

/// pg_dump's output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// Plain SQL (`-Fp`, the default; Supabase's dashboard backups), replayed by psql.
    Plain,
    /// Plain SQL compressed with gzip (`.sql.gz`, `.backup.gz`).
    PlainGzip,
    /// `-Fc`
    Custom,
    /// `-Fd`: a directory holding `toc.dat`.
    Directory,
    /// `-Ft`
    Tar,
}

impl DumpFormat {
    pub fn is_plain(self) -> bool {
        matches!(self, DumpFormat::Plain | DumpFormat::PlainGzip)
    }

    /// Formats pg_restore restores with several jobs at once.
    pub fn parallel(self) -> bool {
        matches!(self, DumpFormat::Custom | DumpFormat::Directory)
    }
}

/// What the manifest records about the dump a run started from, in place of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpFile {
    /// The file's name (a directory dump: the directory's name).
    pub file: String,
    pub format: DumpFormat,
    /// Bytes of the file (a directory dump: of every file in it).
    pub bytes: u64,
    /// `blake3:<hex>` of the file's bytes (a directory dump: of each file's name and bytes, in
    /// name order).
    pub checksum: String,
    /// The server version pg_dump read, as the dump states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_from: Option<String>,
    /// The database the dump was made of, when the dump names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// Recognises the format from the file's first bytes (a directory: from its `toc.dat`).
pub fn detect(path: &Path) -> Result<DumpFormat, DumpError> {
    let unreadable = |source| DumpError::Unreadable { path: path.to_owned(), source };
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if metadata.is_dir() {
        return match path.join("toc.dat").is_file() {
            true => Ok(DumpFormat::Directory),
            false => Err(DumpError::NotADump {
                path: path.to_owned(),
                reason: "a directory without toc.dat".into(),
            }),
        };
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(512)
        .read_to_end(&mut head)
        .map_err(|source| DumpError::Unreadable { path: path.to_owned(), source })?;
    if head.starts_with(b"PGDMP") {
        Ok(DumpFormat::Custom)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(DumpFormat::PlainGzip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(DumpFormat::Tar)
    } else if !head.is_empty() && simdutf8::basic::from_utf8(trim_partial_utf8(&head)).is_ok() {
        Ok(DumpFormat::Plain)
    } else {
        Err(DumpError::NotADump {
            path: path.to_owned(),
            reason: "neither SQL text nor a pg_dump archive (custom, directory or tar)".into(),
        })
    }
}

/// The bytes up to the last whole UTF-8 character (the sample may cut one).
fn trim_partial_utf8(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    for _ in 0..3 {
        match simdutf8::compat::from_utf8(&bytes[..end]) {
            Err(e) if e.error_len().is_none() => end = e.valid_up_to(),
            _ => break,
        }
    }
    &bytes[..end]
}

/// Name, size and checksum of the dump (every file of a directory dump).
pub fn describe(path: &Path, format: DumpFormat) -> Result<DumpFile, DumpError> {
    let unreadable = |p: &Path| {
        let p = p.to_owned();
        move |source| DumpError::Unreadable { path: p, source }
    };
    let mut hasher = blake3::Hasher::new();
    let mut bytes = 0;
    let files: Vec<PathBuf> = if format == DumpFormat::Directory {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(unreadable(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    for file in &files {
        if format == DumpFormat::Directory {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
        }
        let mut reader = std::fs::File::open(file).map_err(unreadable(file))?;
        bytes += std::io::copy(&mut reader, &mut hasher).map_err(unreadable(file))?;
    }
    Ok(DumpFile {
        file: path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned(),
        format,
        bytes,
        checksum: format!("blake3:{}", hasher.finalize().to_hex()),
        dumped_from: None,
        database: None,
    })
}

/// The plain dump's text, decompressed when it is gzip.
pub fn open_plain(path: &Path, format: DumpFormat) -> Result<Box<dyn Read + Send>, DumpError> {
    let file = std::fs::File::open(path)
        .map_err(|source| DumpError::Unreadable { path: path.to_owned(), source })?;
    let file = BufReader::with_capacity(1 << 20, file);
    Ok(match format {
        DumpFormat::PlainGzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        _ => Box::new(file),
    })
}

/// What a plain dump holds, read before it is replayed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlainScan {
    /// `-- Dumped from database version 15.4 (…)`: the highest one (pg_dumpall has several).
    pub dumped_from: Option<String>,
    /// Roles the dump's statements name (owners, grantees, policy roles).
    pub roles: BTreeSet<String>,
    /// `COPY <table> … FROM stdin;` blocks and single-row `INSERT INTO <table>` statements:
    /// the table as the dump writes it, and its rows.
    pub data: Vec<(String, u64)>,
    /// The dump creates tables (a data-only dump does not).
    pub creates_tables: bool,
    /// The last `\connect` target: where the dump's tables go when it creates its database.
    pub connects_to: Option<String>,
}

/// Reads a plain dump's text once: versions, roles, data blocks. COPY data is skipped line by
/// line without being looked at.
pub fn scan_plain(reader: impl Read, path: &Path) -> Result<PlainScan, DumpError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut scan = PlainScan::default();
    let mut line = Vec::new();
    let mut in_copy: Option<usize> = None;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| DumpError::Unreadable { path: path.to_owned(), source })?;
        if read == 0 {
            break;
        }
        if let Some(index) = in_copy {
            if line == b"\\.\n" || line == b"\\.\r\n" || line == b"\\." {
                in_copy = None;
            } else {
                scan.data[index].1 += 1;
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if let Some(version) = text.strip_prefix("-- Dumped from database version ") {
            let newer = scan
                .dumped_from
                .as_deref()
                .is_none_or(|seen| major_version(seen) < major_version(version));
            if newer {
                scan.dumped_from = Some(version.to_owned());
            }
            continue;
        }
        if text.starts_with("--") || text.is_empty() {
            continue;
        }
        if let Some(rest) = text.strip_prefix("COPY ")
            && text.ends_with("FROM stdin;")
        {
            scan.data.push((leading_name(rest).to_owned(), 0));
            in_copy = Some(scan.data.len() - 1);
            continue;
        }
        if let Some(rest) = text.strip_prefix("INSERT INTO ")
            && text.ends_with(");")
        {
            let table = leading_name(rest).to_owned();
            match scan.data.last_mut() {
                Some((last, rows)) if *last == table => *rows += 1,
                _ => scan.data.push((table, 1)),
            }
            continue;
        }
        if text.starts_with("CREATE TABLE ") || text.starts_with("CREATE UNLOGGED TABLE ") {
            scan.creates_tables = true;
        }
        if let Some(target) = text.strip_prefix("\\connect ") {
            let target = target.split_whitespace().find(|w| !w.starts_with('-'));
            if let Some(target) = target.map(unquote_word)
                && target != "template1"
                && target != "template0"
            {
                scan.connects_to = Some(target);
            }
            continue;
        }
        roles_named(text, &mut scan.roles);
    }
    Ok(scan)
}

/// Adds the roles a line of SQL names as owner, grantee, policy role or default-privilege
/// role. Lines of multi-line statements are looked at one by one; pg_dump writes these clauses
/// on one line.
pub fn roles_named(line: &str, roles: &mut BTreeSet<String>) {
    let upper = line.to_ascii_uppercase();
    let mut after = |keyword: &str, list: bool| {
        let mut from = 0;
        while let Some(at) = upper[from..].find(keyword) {
            let start = from + at + keyword.len();
            from = start;
            let mut rest = &line[start..];
            while let Some((name, tail)) = identifier(rest) {
                let reserved = ["PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE"];
                let is_quoted = rest.trim_start().starts_with('"');
                if is_quoted || !reserved.contains(&name.to_ascii_uppercase().as_str()) {
                    roles.insert(name);
                }
                let tail = tail.trim_start();
                match tail.strip_prefix(',') {
                    Some(next) if list => rest = next,
                    _ => break,
                }
            }
        }
    };
    after(" OWNER TO ", false);
    after("FOR ROLE ", true);
    if upper.starts_with("GRANT ") && !upper.contains(" ON ") {
        // GRANT role TO member: both are roles.
        after("GRANT ", true);
    }
    if upper.starts_with("GRANT ") || upper.starts_with("ALTER DEFAULT PRIVILEGES") {
        after(" TO ", true);
    }
    if upper.starts_with("REVOKE ") || upper.starts_with("ALTER DEFAULT PRIVILEGES") {
        after(" FROM ", true);
    }
    if upper.starts_with("CREATE POLICY ") || upper.starts_with("  TO ") {
        after(" TO ", true);
    }
}

/// A role name at the start of `text` (after spaces): `"Quoted ""name"""` or a bare word.
fn identifier(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    chars.next();
                    name.push('"');
                } else {
                    return Some((name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end =
        text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(text.len());
    let word = &text[..end];
    let starts_well = word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
    starts_well.then(|| (word.to_owned(), &text[end..]))
}

/// The qualified name at the start of `text`: up to the first space or `(` outside quotes.
fn leading_name(text: &str) -> &str {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '(' if !quoted => return &text[..i],
            _ => {}
        }
    }
    text
}

fn unquote_word(word: &str) -> String {
    match identifier(word) {
        Some((name, _)) => name,
        None => word.trim_matches(['"', '\'']).to_owned(),
    }
}

/// `15.4 (Debian …)` → 15, `9.6.24` → 9, `17beta2` → 17; 0 when there is no number.
pub fn major_version(version: &str) -> u32 {
    let digits: String = version.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// The header of `pg_restore -l`: `;     Dumped from database version: 15.4`, `; dbname: x`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ArchiveHeader {
    pub dumped_from: Option<String>,
    pub dumped_by: Option<String>,
    pub database: Option<String>,
    /// `TABLE` entries: schema-qualified names (partitioned parents included).
    pub tables: Vec<String>,
    /// `TABLE DATA` entries: schema-qualified names.
    pub table_data: Vec<String>,
}

/// Reads the listing `pg_restore -l` prints.
pub fn parse_listing(listing: &str) -> ArchiveHeader {
    let mut header = ArchiveHeader::default();
    for line in listing.lines() {
        if let Some(comment) = line.strip_prefix(';') {
            let comment = comment.trim();
            if let Some(v) = comment.strip_prefix("Dumped from database version:") {
                header.dumped_from = Some(v.trim().to_owned());
            } else if let Some(v) = comment.strip_prefix("Dumped by pg_dump version:") {
                header.dumped_by = Some(v.trim().to_owned());
            } else if let Some(v) = comment.strip_prefix("dbname:") {
                header.database = Some(v.trim().to_owned());
            }
            continue;
        }
        // `3347; 0 61347 TABLE DATA public p postgres`: id; catalog oid, oid, kind, schema,
        // name, owner. Names are written as they are (no quotes), so a name with spaces
        // keeps them between the schema and the owner.
        let Some((_, entry)) = line.split_once("; ") else { continue };
        let words: Vec<&str> = entry.split(' ').collect();
        if words.len() < 4 {
            continue;
        }
        let rest = &words[2..];
        let (data, named) = match rest {
            ["TABLE", "DATA", named @ ..] => (true, named),
            ["TABLE", named @ ..] => (false, named),
            _ => continue,
        };
        if named.len() < 3 {
            continue;
        }
        let name = format!("{}.{}", named[0], named[1..named.len() - 1].join(" "));
        match data {
            true => header.table_data.push(name),
            false => header.tables.push(name),
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_owners_grants_policies_and_default_privileges() {
        let mut roles = BTreeSet::new();
        for line in [
            "ALTER TABLE public.c OWNER TO dtry_anon;",
            "ALTER SCHEMA auth OWNER TO supabase_admin;",
            "GRANT SELECT ON TABLE public.p TO anon, authenticated, \"Service Role\";",
            "GRANT ALL ON SCHEMA public TO PUBLIC;",
            "REVOKE ALL ON FUNCTION f() FROM PUBLIC, supabase_auth_admin;",
            "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO service_role;",
            "GRANT supabase_auth_admin TO postgres;",
            "CREATE POLICY \"own\" ON public.p TO authenticated USING (true);",
            "SELECT 1 FROM x WHERE a = 'OWNER TO'",
        ] {
            roles_named(line, &mut roles);
        }
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        assert_eq!(
            roles,
            [
                "Service Role",
                "anon",
                "authenticated",
                "dtry_anon",
                "postgres",
                "service_role",
                "supabase_admin",
                "supabase_auth_admin",
            ]
        );
    }

    #[test]
    fn a_plain_dump_is_read_for_versions_data_and_connects() {
        let text = "-- Dumped from database version 15.20 (Debian)\n\
            CREATE TABLE public.p (id integer);\n\
            ALTER TABLE public.p OWNER TO owner_role;\n\
            COPY public.p (id) FROM stdin;\n1\n2\n\\.\n\
            COPY public.\"Odd (name)\" (id) FROM stdin;\n\\.\n\
            INSERT INTO public.q VALUES (1);\nINSERT INTO public.q VALUES (2);\n\
            \\connect -reuse-previous=on \"dbname='shop'\"\n\\connect app\n";
        let scan = scan_plain(text.as_bytes(), Path::new("x.sql")).unwrap();
        assert_eq!(scan.dumped_from.as_deref(), Some("15.20 (Debian)"));
        assert!(scan.creates_tables);
        assert_eq!(
            scan.data,
            [
                ("public.p".to_owned(), 2),
                ("public.\"Odd (name)\"".to_owned(), 0),
                ("public.q".to_owned(), 2)
            ]
        );
        assert_eq!(scan.connects_to.as_deref(), Some("app"));
        assert!(scan.roles.contains("owner_role"));
    }

    #[test]
    fn versions_read_as_their_major_number() {
        assert_eq!(major_version("15.4 (Debian 15.4-1)"), 15);
        assert_eq!(major_version("9.6.24"), 9);
        assert_eq!(major_version("17beta2"), 17);
        assert_eq!(major_version("x"), 0);
    }

    #[test]
    fn the_listing_names_tables_and_their_data() {
        let listing = ";\n;     dbname: dtry\n;     Dumped from database version: 15.20 (Debian)\n\
            ;     Dumped by pg_dump version: 16.1\n;\n\
            215; 1259 61354 TABLE public c dtry_anon\n\
            3348; 0 61354 TABLE DATA public my table postgres\n\
            3204; 2606 61359 FK CONSTRAINT public c c_p_fkey dtry_anon\n";
        let header = parse_listing(listing);
        assert_eq!(header.database.as_deref(), Some("dtry"));
        assert_eq!(header.dumped_from.as_deref(), Some("15.20 (Debian)"));
        assert_eq!(header.dumped_by.as_deref(), Some("16.1"));
        assert_eq!(header.tables, ["public.c"]);
        assert_eq!(header.table_data, ["public.my table"]);
    }
}
