//! File storage, as the generated module and Convex's upload URLs use it (docs/files.md): the
//! functions `migrate:generateUploadUrl`, `recordFiles`, `findStored`, `filesPage` and
//! `removeFiles` (rollback's and sync's), and the
//! upload URL's `POST` (bytes in, `{"storageId": …}` out). The sink keeps each stored file's
//! size and SHA-256, not its bytes, so that a benchmark of large files measures the client.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::functions::Kind;
use crate::store::Thrown;

/// What `_storage` holds of one file.
#[derive(Debug, Clone)]
struct Stored {
    size: u64,
    sha256: String,
    created_ms: f64,
}

#[derive(Default)]
pub struct FileStorage {
    stored: FxHashMap<String, Stored>,
    /// `migrateFiles`: (bucket, path) → the record as the module writes it.
    records: BTreeMap<(String, String), serde_json::Value>,
    tokens: FxHashSet<String>,
    next: u64,
    /// Uploads stored, for the benchmark's check.
    pub uploads: u64,
}

/// Whether `path` is one of the file functions.
pub fn is_files_function(path: &str) -> bool {
    matches!(
        path.split_once(':'),
        Some((
            "migrate" | "migrate.js",
            "generateUploadUrl" | "recordFiles" | "findStored" | "filesPage" | "removeFiles"
        ))
    )
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl FileStorage {
    /// Runs a file function; the encoded result value.
    pub fn call(
        &mut self,
        base: &str,
        kind: Kind,
        path: &str,
        args: &RawValue,
    ) -> Result<String, Thrown> {
        let name = path.split_once(':').map_or(path, |(_, name)| name);
        let expected = match name {
            "generateUploadUrl" | "recordFiles" | "removeFiles" => Kind::Mutation,
            _ => Kind::Query,
        };
        if kind != expected {
            return Err(Thrown(format!(
                "Trying to execute {path} as {kind:?}, but it is defined as {expected:?}."
            )));
        }
        let bad = |e: serde_json::Error| Thrown(format!("ArgumentValidationError: {e}"));
        let value = match name {
            "generateUploadUrl" => {
                self.next += 1;
                let token = format!("{:016x}{:08x}", fastrand::u64(..), self.next);
                self.tokens.insert(token.clone());
                json!(format!("{base}/api/storage/upload?token={token}"))
            }
            "recordFiles" => {
                #[derive(Deserialize)]
                struct Args {
                    files: Vec<serde_json::Value>,
                }
                let args: Args = serde_json::from_str(args.get()).map_err(bad)?;
                for file in args.files {
                    let text = |key: &str| file[key].as_str().unwrap_or_default().to_owned();
                    let (bucket, path, id) = (text("bucket"), text("path"), text("storageId"));
                    let Some(stored) = self.stored.get(&id) else {
                        return Err(Thrown(format!(
                            "{bucket}/{path}: Convex holds no stored file {id}"
                        )));
                    };
                    if file["size"].as_f64() != Some(stored.size as f64)
                        || text("sha256") != stored.sha256
                    {
                        return Err(Thrown(format!(
                            "{bucket}/{path}: Convex stored {} bytes with SHA-256 {}",
                            stored.size, stored.sha256
                        )));
                    }
                    if let Some(old) = self.records.insert((bucket, path), file)
                        && old["storageId"].as_str() != Some(id.as_str())
                    {
                        self.stored.remove(old["storageId"].as_str().unwrap_or_default());
                    }
                }
                serde_json::Value::Null
            }
            "removeFiles" => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct File {
                    key: String,
                    storage_id: String,
                }
                #[derive(Deserialize)]
                struct Args {
                    files: Vec<File>,
                }
                let args: Args = serde_json::from_str(args.get()).map_err(bad)?;
                let mut gone = Vec::new();
                for file in args.files {
                    let Some((bucket, path)) = file.key.split_once('/') else {
                        return Err(Thrown(format!("`{}` is not `<bucket>/<path>`", file.key)));
                    };
                    let at = (bucket.to_owned(), path.to_owned());
                    match self.records.get(&at).map(|r| r["storageId"].as_str()) {
                        Some(id) if id != Some(file.storage_id.as_str()) => continue,
                        Some(_) => {
                            self.records.remove(&at);
                            self.stored.remove(&file.storage_id);
                        }
                        None => {}
                    }
                    gone.push(file.key);
                }
                json!({ "gone": gone })
            }
            "findStored" => {
                #[derive(Deserialize)]
                struct Args {
                    sha256: String,
                    size: f64,
                    since: f64,
                }
                let args: Args = serde_json::from_str(args.get()).map_err(bad)?;
                let recorded: FxHashSet<&str> =
                    self.records.values().filter_map(|r| r["storageId"].as_str()).collect();
                let found = self.stored.iter().find(|(id, s)| {
                    s.sha256 == args.sha256
                        && s.size as f64 == args.size
                        && s.created_ms >= args.since
                        && !recorded.contains(id.as_str())
                });
                found.map_or(serde_json::Value::Null, |(id, _)| json!(id))
            }
            _ => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Args {
                    cursor: Option<String>,
                    num_items: f64,
                }
                let args: Args = serde_json::from_str(args.get()).map_err(bad)?;
                let start: usize = args.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
                let take = (args.num_items as usize).max(1);
                let page: Vec<serde_json::Value> = self
                    .records
                    .values()
                    .skip(start)
                    .take(take)
                    .map(|record| {
                        let mut record = record.clone();
                        let id = record["storageId"].as_str().unwrap_or_default().to_owned();
                        record["stored"] = self.stored.get(&id).map_or(serde_json::Value::Null, |s| {
                            json!({"size": s.size as f64, "sha256": s.sha256, "contentType": null})
                        });
                        record
                    })
                    .collect();
                let end = start + page.len();
                json!({"page": page, "isDone": end >= self.records.len(), "continueCursor": end.to_string()})
            }
        };
        Ok(value.to_string())
    }

    /// `migrateFiles`: `<bucket>/<path>` → the storage id its record names.
    pub fn records(&self) -> BTreeMap<String, String> {
        let id = |r: &serde_json::Value| r["storageId"].as_str().unwrap_or_default().to_owned();
        self.records.iter().map(|((bucket, path), r)| (format!("{bucket}/{path}"), id(r))).collect()
    }

    /// The storage ids `_storage` holds.
    pub fn stored_ids(&self) -> BTreeSet<String> {
        self.stored.keys().cloned().collect()
    }

    /// Takes `token` if an upload URL gave it and it is unused.
    pub fn take_token(&mut self, token: &str) -> bool {
        self.tokens.remove(token)
    }

    /// Stores a file's size and SHA-256; its storage id.
    pub fn store(&mut self, size: u64, sha256: String) -> String {
        self.next += 1;
        self.uploads += 1;
        let id = format!("{:024x}_storage", self.next);
        self.stored.insert(id.clone(), Stored { size, sha256, created_ms: now_ms() });
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(files: &mut FileStorage, kind: Kind, name: &str, args: serde_json::Value) -> String {
        let args = RawValue::from_string(args.to_string()).unwrap();
        files.call("http://sink", kind, &format!("migrate:{name}"), &args).unwrap()
    }

    #[test]
    fn remove_files_removes_recorded_files_only_and_names_them_again_when_sent_twice() {
        let mut files = FileStorage::default();
        let recorded = files.store(3, "sha-a".into());
        let other = files.store(3, "sha-b".into());
        let app = files.store(5, "sha-app".into());
        let record = |id: &str, path: &str| {
            json!({"files": [{"bucket": "docs", "path": path, "owner": null, "storageId": id,
                "size": 3.0, "contentType": "text/plain", "sha256": if id == recorded { "sha-a" } else { "sha-b" }}]})
        };
        call(&mut files, Kind::Mutation, "recordFiles", record(&recorded, "a.txt"));
        call(&mut files, Kind::Mutation, "recordFiles", record(&other, "b.txt"));

        // A storage id the record no longer names leaves the record and the file.
        let stale = json!({"files": [{"key": "docs/b.txt", "storageId": recorded}]});
        let reply = call(&mut files, Kind::Mutation, "removeFiles", stale);
        assert_eq!(reply, r#"{"gone":[]}"#);
        assert!(files.stored.contains_key(&other) && files.records.len() == 2);

        let both = json!({"files": [{"key": "docs/a.txt", "storageId": recorded},
            {"key": "docs/b.txt", "storageId": other}]});
        let reply = call(&mut files, Kind::Mutation, "removeFiles", both.clone());
        assert_eq!(reply, r#"{"gone":["docs/a.txt","docs/b.txt"]}"#);
        assert!(files.records.is_empty());
        assert_eq!(files.stored.keys().collect::<Vec<_>>(), [&app], "the app's file stays");
        // Sent again (its reply lost): the same files named, nothing else removed.
        let reply = call(&mut files, Kind::Mutation, "removeFiles", both);
        assert_eq!(reply, r#"{"gone":["docs/a.txt","docs/b.txt"]}"#);
        assert!(files.stored.contains_key(&app));
    }
}
