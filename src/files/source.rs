//! Where the objects' bytes are read from: `[files] source` in the plan, through the
//! `object_store` crate (its local and S3 backends), never a hand-written client.
//!
//! - `file:///path/to/folder`: a downloaded copy, one folder per bucket
//!   (`<folder>/<bucket>/<path>`).
//! - `s3://` (nothing after it): an S3-compatible endpoint where each storage bucket is an S3
//!   bucket of the same name, as Supabase Storage's S3 endpoint serves them.
//! - `s3://<bucket>[/<prefix>]`: one S3 bucket holding `<prefix>/<bucket>/<path>`.
//!
//! Credentials, region and endpoint come from the environment under the usual AWS names
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`), never from the plan; an `http://` endpoint (a local server) is allowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "files source `{url}` ({at}) is neither `file:///<folder>` nor `s3://[<bucket>[/<prefix>]]`"
    )]
    Unsupported { url: String, at: String },
    #[error("files source `{url}`: {message}")]
    Open { url: String, message: String },
    #[error("object `{bucket}/{path}` is not in the files source `{url}`")]
    Missing { bucket: String, path: String, url: String },
    #[error("reading object `{bucket}/{path}` from `{url}`: {message}")]
    Read { bucket: String, path: String, url: String, message: String },
}

enum Layout {
    /// One store; objects at `<prefix>/<bucket>/<path>`.
    Single { store: Arc<dyn ObjectStore>, prefix: String },
    /// An S3 bucket per storage bucket, built when first needed.
    PerBucket { stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>> },
}

/// An opened files source. Cheap to share between uploads.
pub struct FilesSource {
    url: String,
    layout: Layout,
}

/// One object's bytes as they stream in, and its size.
pub struct Opened {
    pub size: u64,
    pub stream: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl FilesSource {
    /// Opens `url` (`at` says where the plan gives it, for errors).
    pub fn open(url: &str, at: &str) -> Result<Self, SourceError> {
        let open_error = |e: object_store::Error| SourceError::Open {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let layout = if let Some(folder) = url.strip_prefix("file://") {
            if !folder.starts_with('/') {
                return Err(SourceError::Unsupported { url: url.to_owned(), at: at.to_owned() });
            }
            let store = LocalFileSystem::new_with_prefix(folder).map_err(open_error)?;
            Layout::Single { store: Arc::new(store), prefix: String::new() }
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                Layout::PerBucket { stores: Mutex::default() }
            } else {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let store = s3_store(bucket).map_err(open_error)?;
                Layout::Single { store, prefix: prefix.trim_matches('/').to_owned() }
            }
        } else {
            return Err(SourceError::Unsupported { url: url.to_owned(), at: at.to_owned() });
        };
        Ok(Self { url: url.to_owned(), layout })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store holding `bucket` and the object's location in it.
    fn locate(
        &self,
        bucket: &str,
        path: &str,
    ) -> Result<(Arc<dyn ObjectStore>, StorePath), SourceError> {
        let read_error = |message: String| SourceError::Read {
            bucket: bucket.to_owned(),
            path: path.to_owned(),
            url: self.url.clone(),
            message,
        };
        let (store, key) = match &self.layout {
            Layout::Single { store, prefix } if prefix.is_empty() => {
                (store.clone(), format!("{bucket}/{path}"))
            }
            Layout::Single { store, prefix } => {
                (store.clone(), format!("{prefix}/{bucket}/{path}"))
            }
            Layout::PerBucket { stores } => {
                let mut stores = stores.lock().expect("no thread panics holding the stores");
                let store = match stores.get(bucket) {
                    Some(store) => store.clone(),
                    None => {
                        let store = s3_store(bucket).map_err(|e| read_error(e.to_string()))?;
                        stores.insert(bucket.to_owned(), store.clone());
                        store
                    }
                };
                (store, path.to_owned())
            }
        };
        let location = StorePath::parse(&key).map_err(|e| read_error(e.to_string()))?;
        Ok((store, location))
    }

    /// Starts reading one object: its size, and its bytes as a stream (nothing held whole).
    pub async fn open_object(&self, bucket: &str, path: &str) -> Result<Opened, SourceError> {
        let (store, location) = self.locate(bucket, path)?;
        let result = store.get_opts(&location, Default::default()).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => SourceError::Missing {
                bucket: bucket.to_owned(),
                path: path.to_owned(),
                url: self.url.clone(),
            },
            e => SourceError::Read {
                bucket: bucket.to_owned(),
                path: path.to_owned(),
                url: self.url.clone(),
                message: e.to_string(),
            },
        })?;
        let size = result.meta.size;
        let stream = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(Opened { size, stream })
    }

    /// The object's size and SHA-256 (base64, as Convex keeps it), read through once.
    pub async fn digest(&self, bucket: &str, path: &str) -> Result<(u64, String), SourceError> {
        let opened = self.open_object(bucket, path).await?;
        let hasher = Digest::default();
        let mut stream = hasher.wrap(opened.stream);
        while let Some(chunk) = stream.next().await {
            chunk.map_err(|e| SourceError::Read {
                bucket: bucket.to_owned(),
                path: path.to_owned(),
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(hasher.finish())
    }
}

fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"));
    if let Ok(endpoint) = endpoint {
        builder = builder.with_endpoint(&endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    Ok(Arc::new(builder.build()?))
}

/// SHA-256 and byte count of what went through [`Digest::wrap`]ped streams.
#[derive(Clone, Default)]
pub struct Digest {
    state: Arc<Mutex<(sha2::Sha256, u64)>>,
}

impl Digest {
    /// `stream`, hashing each chunk as it passes.
    pub fn wrap<S>(
        &self,
        stream: S,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let state = self.state.clone();
        stream.inspect_ok(move |chunk| {
            use sha2::Digest as _;
            let mut state = state.lock().expect("no thread panics holding the digest");
            state.0.update(chunk);
            state.1 += chunk.len() as u64;
        })
    }

    /// Bytes seen and their SHA-256 in standard base64.
    pub fn finish(&self) -> (u64, String) {
        use base64::Engine as _;
        use sha2::Digest as _;
        let state = self.state.lock().expect("no thread panics holding the digest");
        let hash = state.0.clone().finalize();
        (state.1, base64::engine::general_purpose::STANDARD.encode(hash))
    }
}
