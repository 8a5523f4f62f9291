//! What can go wrong reading from Postgres, each failure naming the thing it concerns.

use std::fmt;

use tokio_postgres::error::SqlState;

use super::binary_copy::CopyError;
use crate::catalog::TableName;
use crate::data_dir::DataDirError;
use crate::exit_code;
use crate::settings::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot connect to PostgreSQL at `{endpoint}`")]
    Unreachable {
        endpoint: String,
        origins: Box<Origins>,
        #[source]
        source: PostgresError,
    },
    #[error("TLS with PostgreSQL at `{endpoint}` failed")]
    TlsHandshake {
        endpoint: String,
        #[source]
        source: PostgresError,
    },
    #[error("PostgreSQL at `{endpoint}` refused the login of user `{user}`")]
    LoginRefused {
        endpoint: String,
        user: String,
        origins: Box<Origins>,
        #[source]
        source: PostgresError,
    },
    #[error("database `{database}` does not exist on `{endpoint}`")]
    DatabaseMissing {
        database: String,
        endpoint: String,
        origins: Box<Origins>,
        #[source]
        source: PostgresError,
    },
    #[error("cannot set up TLS: {reason}")]
    Tls { reason: String },
    #[error("PostgreSQL {version} is not supported: migrate needs 12 or later")]
    ServerTooOld { version: String },
    #[error("table `{name}` does not exist in schema{} {}", plural(schemas.len()), backticked(schemas))]
    TableMissing { name: String, schemas: Vec<String>, suggestion: Option<String> },
    #[error("no tables found in schema{} {}", plural(schemas.len()), backticked(schemas))]
    NoTables {
        schemas: Vec<String>,
        /// Schemas of the database that do hold tables, for the hint.
        elsewhere: Vec<String>,
    },
    #[error("permission denied to read {}", backticked(tables))]
    PermissionDenied {
        tables: Vec<TableName>,
        #[source]
        source: Option<PostgresError>,
    },
    #[error("row-level security would hide rows of `{table}` from this user")]
    RowSecurity {
        table: TableName,
        #[source]
        source: PostgresError,
    },
    #[error("cannot read the catalog")]
    Catalog(#[source] PostgresError),
    #[error("cannot start the snapshot session")]
    Session(#[source] PostgresError),
    #[error("reading table `{table}` failed")]
    Read {
        table: TableName,
        #[source]
        source: PostgresError,
    },
    #[error("cannot export a value of table `{table}`")]
    Value {
        table: TableName,
        #[source]
        source: CopyError,
    },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("cannot read the key index of `{table}`: {reason}")]
    KeyIndex { table: TableName, reason: String },
    #[error(
        "`{}` changed since the previous export wrote it: run `migrate export` without \
         --incremental",
        path.display()
    )]
    PreviousChanged { path: std::path::PathBuf },
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn backticked<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

/// Where the connection's settings came from, for the hints of connection errors: the
/// libpq variable, the URL or the default that set each one. Never a value of the password.
#[derive(Debug, Clone)]
pub struct Origins {
    host: String,
    port: String,
    user: String,
    dbname: String,
    /// `set` / `from .pgpass` / `not set`, then where from.
    password: (String, String),
    /// Nothing was given: every setting is libpq's default.
    defaults_only: bool,
}

impl Origins {
    fn of(url: &DatabaseUrl) -> Self {
        let password = url
            .shown()
            .iter()
            .find(|s| s.name == "password")
            .map(|s| (s.value.clone(), s.from.clone()))
            .unwrap_or_default();
        let host = match url.from_of("host") {
            "" => url.from_of("hostaddr"),
            from => from,
        };
        Origins {
            host: host.to_owned(),
            port: url.from_of("port").to_owned(),
            user: url.from_of("user").to_owned(),
            dbname: url.from_of("dbname").to_owned(),
            password,
            defaults_only: !url.given(),
        }
    }

    fn nothing_given() -> &'static str {
        "no connection settings were given (no --database-url, DATABASE_URL or PG* variable), \
         so libpq's defaults were used: pass --database-url, or set DATABASE_URL, or PGHOST, \
         PGPORT, PGUSER, PGDATABASE (and PGPASSWORD or ~/.pgpass)"
    }
}

impl ExportError {
    /// Classifies a failed connection attempt.
    pub(super) fn connect(url: &DatabaseUrl, error: tokio_postgres::Error) -> Self {
        let endpoint = url.endpoint();
        let origins = Box::new(Origins::of(url));
        let code = error.as_db_error().map(|db| db.code().clone());
        let source = PostgresError(error);
        let user = url.user().to_owned();
        match code {
            Some(SqlState::INVALID_CATALOG_NAME) => ExportError::DatabaseMissing {
                database: url.database().to_owned(),
                endpoint,
                origins,
                source,
            },
            Some(SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                ExportError::LoginRefused { endpoint, user, origins, source }
            }
            _ if source.to_string().contains("TLS") => {
                ExportError::TlsHandshake { endpoint, source }
            }
            _ if source.to_string().contains("password missing") => {
                ExportError::LoginRefused { endpoint, user, origins, source }
            }
            _ => ExportError::Unreachable { endpoint, origins, source },
        }
    }

    pub(super) fn catalog(error: tokio_postgres::Error) -> Self {
        ExportError::Catalog(PostgresError(error))
    }

    pub(super) fn session(error: tokio_postgres::Error) -> Self {
        ExportError::Session(PostgresError(error))
    }

    /// Classifies a failure while reading a table's rows.
    /// A value of `table` that cannot be exported.
    pub(super) fn value(table: &TableName, source: CopyError) -> Self {
        ExportError::Value { table: table.clone(), source }
    }

    pub(super) fn read(table: &TableName, error: tokio_postgres::Error) -> Self {
        let db = error.as_db_error();
        let privilege = db.is_some_and(|db| db.code() == &SqlState::INSUFFICIENT_PRIVILEGE);
        let row_security =
            privilege && db.is_some_and(|db| db.message().contains("row-level security"));
        let source = PostgresError(error);
        if row_security {
            ExportError::RowSecurity { table: table.clone(), source }
        } else if privilege {
            ExportError::PermissionDenied { tables: vec![table.clone()], source: Some(source) }
        } else {
            ExportError::Read { table: table.clone(), source }
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            ExportError::TableMissing { .. }
            | ExportError::NoTables { .. }
            | ExportError::Tls { .. } => exit_code::USAGE,
            ExportError::DataDir(_) => exit_code::LOCAL_IO,
            _ => exit_code::SOURCE_FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ExportError::Unreachable { origins, .. } if origins.defaults_only => {
                Origins::nothing_given().into()
            }
            ExportError::Unreachable { origins, .. } => format!(
                "check the host (from {}) and the port (from {}), and that the server accepts \
                 connections there",
                origins.host, origins.port
            ),
            ExportError::TlsHandshake { source, .. }
                if source.to_string().contains("does not support TLS") =>
            {
                "the server offers no TLS: use sslmode=prefer or sslmode=disable in DATABASE_URL, \
                 or enable ssl on the server"
                    .into()
            }
            ExportError::TlsHandshake { source, .. }
                if source.to_string().contains("not valid for name") =>
            {
                "the certificate is not issued for this host name: connect with the name it \
                 names, or use sslmode=verify-ca to check only the authority"
                    .into()
            }
            ExportError::TlsHandshake { .. } => "the server's certificate is not trusted: add \
                sslrootcert=/path/to/ca.pem to DATABASE_URL or set PGSSLROOTCERT (Supabase and RDS \
                publish theirs), install the authority in the system's trust store, or use \
                sslmode=require to encrypt without checking the certificate"
                .into(),
            ExportError::LoginRefused { source, .. }
                if source.to_string().contains("certificate") =>
            {
                "the server authenticates this user with a client certificate: give sslcert and \
                 sslkey in DATABASE_URL, or set PGSSLCERT and PGSSLKEY, or put them in \
                 ~/.postgresql/postgresql.crt and postgresql.key; the certificate's CN must be the \
                 user name"
                    .into()
            }
            ExportError::LoginRefused { origins, .. } => {
                let (value, from) = &origins.password;
                let password = match value.as_str() {
                    "not set" => format!(
                        "no password was given ({from}): put it in the URL, set PGPASSWORD, or \
                         add a line host:port:database:user:password to ~/.pgpass (chmod 0600)"
                    ),
                    _ => format!("the password (from {from})"),
                };
                let mut hint = format!("check the user (from {}) and {password}", origins.user);
                if origins.defaults_only {
                    hint.push_str("; ");
                    hint.push_str(Origins::nothing_given());
                }
                hint
            }
            ExportError::DatabaseMissing { origins, .. } => {
                format!("check the database name (from {}); `psql -l` lists them", origins.dbname)
            }
            ExportError::TableMissing { suggestion: Some(name), .. } => {
                format!("did you mean `{name}`?")
            }
            ExportError::TableMissing { .. } => {
                "write `schema.table` for tables outside --schemas, or add the schema to --schemas"
                    .into()
            }
            ExportError::NoTables { elsewhere, .. } if elsewhere.is_empty() => "this database \
                has no tables at all: check the database name (at the end of DATABASE_URL, or \
                PGDATABASE; `psql -l` lists them)"
                .into(),
            ExportError::NoTables { schemas, elsewhere } => {
                let all: Vec<&str> =
                    schemas.iter().chain(elsewhere).map(String::as_str).collect::<Vec<_>>();
                format!(
                    "tables are in schema{} {}: pass --schemas {} (or MIGRATE_SCHEMAS)",
                    plural(elsewhere.len()),
                    backticked(elsewhere),
                    all.join(",")
                )
            }
            ExportError::PermissionDenied { .. } => "grant SELECT on them to the exporting user, \
                or export as their owner (Supabase: the `postgres` user)"
                .into(),
            ExportError::RowSecurity { .. } => "export as the table owner or a role with \
                BYPASSRLS (Supabase: the `postgres` user) so that no row is filtered out"
                .into(),
            ExportError::DataDir(error) => return error.hint(),
            _ => return None,
        })
    }
}

/// A tokio-postgres error shown the way a person wants to read it: the server's own message
/// with its SQLSTATE and detail, or the client-side reason. Never contains the password: neither
/// tokio-postgres nor the server put it in messages.
#[derive(Debug)]
pub struct PostgresError(pub tokio_postgres::Error);

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "{} {}: {}", db.severity(), db.code().code(), db.message())?;
                if let Some(detail) = db.detail() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            None => {
                write!(f, "{}", self.0)?;
                let mut source = std::error::Error::source(&self.0);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PostgresError {}
