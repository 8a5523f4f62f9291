//! What the plan tests share: a database's catalog as `migrate export` records it, and plan
//! directories written from text.

use std::path::{Path, PathBuf};

use migrate::catalog::Catalog;
use migrate::manifest::Manifest;
use tempfile::TempDir;

use crate::support::{TestDb, Workdir};

pub const ALL_TYPES: &str = include_str!("../fixtures/all_types.sql");
pub const SAMPLE_APP: &str = include_str!("../../examples/sample-app.sql");

/// The catalog `migrate export` writes to the manifest for a fresh database holding `sql`.
pub fn exported_catalog(sql: &str) -> Catalog {
    let db = TestDb::with(sql);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    let text = std::fs::read_to_string(work.manifest_path()).expect("manifest.json exists");
    let manifest: Manifest = serde_json::from_str(&text).expect("the manifest reads back");
    manifest.catalog
}

/// A temporary plan directory `migrations/` holding `files` (name, text).
pub struct PlanDir {
    root: TempDir,
}

impl PlanDir {
    pub fn with(files: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(root.path().join("migrations")).expect("create migrations/");
        let dir = Self { root };
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write a plan file");
        }
        dir
    }

    pub fn path(&self) -> PathBuf {
        self.root.path().join("migrations")
    }

    /// `text` with this directory's temporary prefix cut, so that messages read
    /// `migrations/0002_x.toml:7: …`.
    pub fn relative(&self, text: &str) -> String {
        let prefix = format!("{}/", self.root.path().display());
        text.replace(&prefix, "")
    }
}

/// The repository's own plan directory.
pub fn repository_plan_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
}
