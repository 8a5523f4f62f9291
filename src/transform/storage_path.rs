//! A file column's value → the key of the Supabase Storage object it names, `<bucket>/<path>`
//! (the key `migrateFiles` records each object under), in the path form the plan gives the
//! column (`form`: [`PathForm`]). Pure.
//!
//! - `path`: the value is the object's name inside the plan's bucket, as it is: `42.png`,
//!   `user-7/avatar.png`.
//! - `bucket/path`: the bucket up to the first `/`, the name after it: `avatars/42.png`.
//! - `url`: a Supabase Storage URL, `https://<project>.supabase.co/storage/v1/object/public/
//!   avatars/42.png`, on any host (self-hosted, a custom domain) or without one
//!   (`/storage/v1/object/…`); after `/storage/v1/object/` comes `public/`, `sign/` (a signed
//!   URL) or `authenticated/`, or after `/storage/v1/render/image/` `public/`, `sign/` or
//!   `authenticated/` (an image transformation); then the bucket and the percent-encoded name.
//!   The query (`?token=…`, `?width=…`) and a fragment are ignored.
//!
//! A value that names no object this way (another bucket than the plan's, a URL of another
//! site) is an `Err` with the reason: transform applies the column's orphan policy to it, as to a
//! value naming an object `storage.objects` does not list.

use crate::plan::PathForm;

/// The key (`<bucket>/<path>`) of the object `value` names in `form`, checked against the plan's
/// `bucket` when it names one; else why it names none.
pub fn object_key(value: &str, form: PathForm, bucket: Option<&str>) -> Result<String, String> {
    let (found_bucket, path) = match form {
        PathForm::Path => {
            let bucket = bucket.expect("plan resolution requires a bucket for plain paths");
            (bucket.to_owned(), value.to_owned())
        }
        PathForm::BucketPath => match value.split_once('/') {
            Some((bucket, path)) => (bucket.to_owned(), path.to_owned()),
            None => return Err("it is not `<bucket>/<path>`".to_owned()),
        },
        PathForm::Url => url_object(value)?,
    };
    if found_bucket.is_empty() || path.is_empty() {
        return Err("it names no bucket and path".to_owned());
    }
    if let Some(bucket) = bucket
        && bucket != found_bucket
    {
        return Err(format!("it names bucket `{found_bucket}`, not `{bucket}`"));
    }
    Ok(format!("{found_bucket}/{path}"))
}

/// Where a Supabase Storage URL's path starts, and the accesses that may follow.
const URL_PREFIXES: [(&str, &[&str]); 2] = [
    ("/storage/v1/object/", &["public/", "sign/", "authenticated/"]),
    ("/storage/v1/render/image/", &["public/", "sign/", "authenticated/"]),
];

/// The bucket and object name of a Supabase Storage URL.
fn url_object(value: &str) -> Result<(String, String), String> {
    let not_storage = || {
        "it is not a Supabase Storage URL (`https://<project>.supabase.co/storage/v1/object/\
         public/<bucket>/<path>`)"
            .to_owned()
    };
    let path = match value.split_once("://") {
        // The scheme, then the host up to the first `/`.
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            &rest[rest.find('/').ok_or_else(not_storage)?..]
        }
        _ => value,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = URL_PREFIXES
        .iter()
        .find_map(|(prefix, accesses)| {
            let rest = path.strip_prefix(prefix)?;
            accesses.iter().find_map(|access| rest.strip_prefix(access))
        })
        .ok_or_else(not_storage)?;
    let (bucket, name) = rest.split_once('/').ok_or_else(not_storage)?;
    let decode = |text: &str| {
        percent_decoded(text).ok_or_else(|| format!("`{text}` is not percent-encoded UTF-8"))
    };
    Ok((decode(bucket)?, decode(name)?))
}

/// `text` with each `%XX` replaced by its byte; `None` when an escape is cut short or the bytes
/// are not UTF-8. (`+` stays `+`: in a URL's path it is no space.)
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &str, form: PathForm, bucket: Option<&str>) -> Result<String, String> {
        object_key(value, form, bucket)
    }

    #[test]
    fn a_plain_path_is_inside_the_plans_bucket() {
        assert_eq!(key("42.png", PathForm::Path, Some("avatars")).unwrap(), "avatars/42.png");
        assert_eq!(
            key("user-7/me.png", PathForm::Path, Some("avatars")).unwrap(),
            "avatars/user-7/me.png"
        );
        assert!(key("", PathForm::Path, Some("avatars")).is_err());
    }

    #[test]
    fn bucket_and_path_split_at_the_first_slash() {
        let form = PathForm::BucketPath;
        assert_eq!(key("avatars/a/b.png", form, None).unwrap(), "avatars/a/b.png");
        assert_eq!(key("avatars/a/b.png", form, Some("avatars")).unwrap(), "avatars/a/b.png");
        assert_eq!(
            key("docs/a.pdf", form, Some("avatars")).unwrap_err(),
            "it names bucket `docs`, not `avatars`"
        );
        assert!(key("noslash.png", form, None).is_err());
        assert!(key("/a.png", form, None).is_err());
        assert!(key("avatars/", form, None).is_err());
    }

    #[test]
    fn urls_of_every_access_and_host_give_the_bucket_and_decoded_name() {
        let form = PathForm::Url;
        let cases = [
            "https://abcd.supabase.co/storage/v1/object/public/avatars/42.png",
            "http://localhost:54321/storage/v1/object/public/avatars/42.png",
            "/storage/v1/object/public/avatars/42.png",
            "https://abcd.supabase.co/storage/v1/object/sign/avatars/42.png?token=eyJ.x.y",
            "https://cdn.example.com/storage/v1/object/authenticated/avatars/42.png",
            "https://abcd.supabase.co/storage/v1/render/image/public/avatars/42.png?width=64",
            "https://abcd.supabase.co/storage/v1/object/public/avatars/42.png#top",
        ];
        for url in cases {
            assert_eq!(key(url, form, Some("avatars")).as_deref(), Ok("avatars/42.png"), "{url}");
        }
        assert_eq!(
            key(
                "https://x.supabase.co/storage/v1/object/public/docs/notes%20with%20spaces.txt",
                form,
                None
            )
            .unwrap(),
            "docs/notes with spaces.txt"
        );
        assert_eq!(
            key("/storage/v1/object/public/docs/gr%C3%B6%C3%9Fe+1.txt", form, None).unwrap(),
            "docs/größe+1.txt"
        );
    }

    #[test]
    fn other_urls_name_no_object_and_say_why() {
        let form = PathForm::Url;
        for url in [
            "https://lh3.googleusercontent.com/a/photo.jpg",
            "https://abcd.supabase.co/storage/v1/object/avatars/42.png",
            "https://abcd.supabase.co/storage/v1/object/public/avatars",
            "avatars/42.png",
            "https://abcd.supabase.co",
            "",
        ] {
            let why = key(url, form, None).unwrap_err();
            assert!(why.contains("not a Supabase Storage URL"), "{url}: {why}");
        }
        assert_eq!(
            key("/storage/v1/object/public/docs/a.pdf", form, Some("avatars")).unwrap_err(),
            "it names bucket `docs`, not `avatars`"
        );
        assert!(key("/storage/v1/object/public/docs/%FF.txt", form, None).is_err());
        assert!(key("/storage/v1/object/public/docs/a%2", form, None).is_err());
    }
}
