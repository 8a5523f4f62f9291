//! Auth presets' per-row reshaping (`shape = "…"` on a table of a component): what a plain
//! column mapping cannot say about a Better Auth user, applied to the document after the plan's
//! fields are converted. Pure. Owns the reading of Supabase's `auth.users` fields (which
//! metadata keys name a user, what verified means, a placeholder email for users without one)
//! and the password hash formats counted in the transform summary.
//!
//! The shapes read the fields under the names the default naming gives the source columns
//! (`emailConfirmedAt`, `rawUserMetaData`, `encryptedPassword`, …); a field they do not know
//! rejects the row, so a column a preset did not plan for is never dropped in silence.

use super::SourceAccount;
use crate::convex::{Document, Value};
use crate::plan::{AuthShape, Plan};

/// Supabase auth tables whose rows a person must hear about when a preset leaves them behind:
/// the table's name in `auth`, and what it means for the users.
const REPORTED: [(&str, &str); 2] = [
    (
        "mfa_factors",
        "MFA factors were not carried (Supabase's TOTP secrets are encrypted with its own key, \
         Better Auth's with BETTER_AUTH_SECRET): those users enroll their second factor again",
    ),
    ("sessions", "sessions were not carried: every user signs in again"),
];

/// Warnings for the rows of Supabase auth tables a plan with component tables skips (MFA
/// factors, sessions), so that nothing an auth preset leaves behind goes unsaid.
pub fn not_carried(plan: &Plan, sources: &[SourceAccount]) -> Vec<String> {
    if plan.tables.iter().all(|t| t.component.is_none()) {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for source in sources.iter().filter(|s| s.skipped > 0) {
        let Some(name) = source.table.strip_prefix("auth.") else { continue };
        if let Some((_, what)) = REPORTED.iter().find(|(table, _)| *table == name) {
            warnings.push(format!("`{}`: {} {what}", source.table, source.skipped));
        }
    }
    warnings
}

/// The field a Better Auth `user` document carries its password hash in: the generated
/// `migrate.ts` stores it as the user's `credential` account (docs/auth-presets.md).
pub const CREDENTIAL_FIELD: &str = "credentialPassword";

/// A password hash's format, by its prefix: counted per table in the transform summary.
pub fn hash_format(hash: Option<&str>) -> &'static str {
    match hash {
        None | Some("") => "none",
        Some(h) if h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") => {
            "bcrypt"
        }
        Some(h) if h.starts_with("$argon2") => "argon2",
        Some(h) if is_better_auth_scrypt(h) => "scrypt",
        Some(_) => "other",
    }
}

/// Better Auth's default `salthex:keyhex` (16-byte salt, 64-byte key).
fn is_better_auth_scrypt(hash: &str) -> bool {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    hash.split_once(':').is_some_and(|(salt, key)| hex(salt, 32) && hex(key, 128))
}

/// Why a row cannot take its shape: the field and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    pub field: String,
    pub reason: String,
}

fn error(field: &str, reason: impl Into<String>) -> ShapeError {
    ShapeError { field: field.to_owned(), reason: reason.into() }
}

/// Reshapes `document` (legacy id field `legacy_field`) as `shape` says; returns the format of
/// the password hash the row carried, for tables that carry passwords.
pub fn apply(
    shape: AuthShape,
    legacy_field: &str,
    document: &mut Document,
) -> Result<Option<&'static str>, ShapeError> {
    match shape {
        AuthShape::SupabaseUser => supabase_user(legacy_field, document).map(Some),
        AuthShape::BetterAuthUser => {
            lowercase_email(document);
            Ok(None)
        }
        AuthShape::BetterAuthAccount => {
            let hash = match document.get("password") {
                Some(Value::String(s)) => Some(s.as_str()),
                _ => None,
            };
            // Only credential accounts hold passwords; OAuth accounts are not counted.
            let credential =
                matches!(document.get("providerId"), Some(Value::String(p)) if p == "credential");
            Ok(credential.then(|| hash_format(hash)))
        }
    }
}

fn lowercase_email(document: &mut Document) {
    if let Some(Value::String(email)) = document.get_mut("email") {
        *email = email.to_lowercase();
    }
}

/// The fields a `supabase_user` row may have (under the default naming).
const SUPABASE_USER_FIELDS: [&str; 9] = [
    "email",
    "emailConfirmedAt",
    "phone",
    "phoneConfirmedAt",
    "rawUserMetaData",
    "encryptedPassword",
    "isAnonymous",
    "createdAt",
    "updatedAt",
];

/// Metadata keys holding a user's name, first found wins (Better Auth's Supabase guide's order).
const NAME_KEYS: [&str; 4] = ["name", "full_name", "username", "user_name"];
/// Metadata keys holding a user's picture.
const IMAGE_KEYS: [&str; 2] = ["avatar_url", "picture"];

/// Supabase `auth.users` → Better Auth `user`:
/// - `email` lowercased; a user without one (phone-only, anonymous) gets a placeholder under the
///   reserved `.invalid` domain, since Better Auth's `email` is required;
/// - `emailVerified` = `email_confirmed_at` is set; `phoneNumber` (+`phoneNumberVerified`);
/// - `name` and `image` from `raw_user_meta_data` (name falling back to the email's local part);
/// - `createdAt`, `updatedAt` (updated falls back to created), `isAnonymous`;
/// - `encrypted_password`, when not empty, kept as is in [`CREDENTIAL_FIELD`].
fn supabase_user(legacy_field: &str, document: &mut Document) -> Result<&'static str, ShapeError> {
    if let Some(unknown) = document
        .keys()
        .find(|k| k.as_str() != legacy_field && !SUPABASE_USER_FIELDS.contains(&k.as_str()))
    {
        return Err(error(
            unknown,
            format!(
                "the supabase_user shape does not know field `{unknown}`: drop its column in the \
                 plan, or map it to a field of Better Auth's user"
            ),
        ));
    }
    let legacy_id = match document.get(legacy_field) {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(error(legacy_field, "no legacy id")),
    };
    let text = |document: &Document, field: &str| match document.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let email = text(document, "email").map(|e| e.to_lowercase());
    let phone = text(document, "phone");
    let password = text(document, "encryptedPassword");
    let metadata = match document.get("rawUserMetaData") {
        Some(Value::Object(m)) => m.clone(),
        _ => Default::default(),
    };
    let pick = |keys: &[&str]| {
        keys.iter().find_map(|k| match metadata.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        })
    };
    let created = match document.get("createdAt") {
        Some(Value::Float64(ms)) => *ms,
        _ => {
            return Err(error(
                "createdAt",
                "Better Auth needs a creation time; created_at is NULL",
            ));
        }
    };
    let updated = match document.get("updatedAt") {
        Some(Value::Float64(ms)) => *ms,
        _ => created,
    };
    let anonymous = matches!(document.get("isAnonymous"), Some(Value::Boolean(true)));
    let placeholder = || match &phone {
        Some(phone) => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            format!("phone-{digits}@phone.invalid")
        }
        None => format!("{legacy_id}@anonymous.invalid"),
    };
    let email_verified = email.is_some() && document.contains_key("emailConfirmedAt");
    let phone_verified = phone.is_some() && document.contains_key("phoneConfirmedAt");
    let email = email.unwrap_or_else(placeholder);
    let name =
        pick(&NAME_KEYS).unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    let image = pick(&IMAGE_KEYS);

    let format = hash_format(password.as_deref());
    document.clear();
    document.insert(legacy_field.to_owned(), Value::String(legacy_id));
    document.insert("name".into(), Value::String(name));
    document.insert("email".into(), Value::String(email));
    document.insert("emailVerified".into(), Value::Boolean(email_verified));
    if let Some(image) = image {
        document.insert("image".into(), Value::String(image));
    }
    document.insert("createdAt".into(), Value::Float64(created));
    document.insert("updatedAt".into(), Value::Float64(updated));
    if anonymous {
        document.insert("isAnonymous".into(), Value::Boolean(true));
    }
    if let Some(phone) = phone {
        document.insert("phoneNumber".into(), Value::String(phone));
        document.insert("phoneNumberVerified".into(), Value::Boolean(phone_verified));
    }
    if let Some(password) = password {
        document.insert(CREDENTIAL_FIELD.into(), Value::String(password));
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(fields: &[(&str, Value)]) -> Document {
        fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn hash_formats_are_told_by_their_prefix() {
        let scrypt = format!("{}:{}", "a".repeat(32), "0".repeat(128));
        let cases = [
            (None, "none"),
            (Some(""), "none"),
            (Some("$2a$10$abc"), "bcrypt"),
            (Some("$2b$12$abc"), "bcrypt"),
            (Some("$argon2id$v=19$m=65536"), "argon2"),
            (Some(scrypt.as_str()), "scrypt"),
            (Some("$fbscrypt$v=1"), "other"),
            (Some("ab:cd"), "other"),
        ];
        for (hash, format) in cases {
            assert_eq!(hash_format(hash), format, "{hash:?}");
        }
    }

    #[test]
    fn a_supabase_user_becomes_a_better_auth_user_with_its_password() {
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("full_name".to_owned(), s("Ada Lovelace"));
        meta.insert("avatar_url".to_owned(), s("https://x/a.png"));
        let mut d = doc(&[
            ("legacyId", s("u1")),
            ("email", s("Ada@Example.COM")),
            ("emailConfirmedAt", Value::Float64(5.0)),
            ("rawUserMetaData", Value::Object(meta)),
            ("encryptedPassword", s("$2a$10$hash")),
            ("isAnonymous", Value::Boolean(false)),
            ("createdAt", Value::Float64(1.0)),
            ("updatedAt", Value::Float64(2.0)),
        ]);
        assert_eq!(apply(AuthShape::SupabaseUser, "legacyId", &mut d), Ok(Some("bcrypt")));
        let expected = doc(&[
            ("legacyId", s("u1")),
            ("name", s("Ada Lovelace")),
            ("email", s("ada@example.com")),
            ("emailVerified", Value::Boolean(true)),
            ("image", s("https://x/a.png")),
            ("createdAt", Value::Float64(1.0)),
            ("updatedAt", Value::Float64(2.0)),
            (CREDENTIAL_FIELD, s("$2a$10$hash")),
        ]);
        assert_eq!(d, expected);
    }

    #[test]
    fn phone_only_and_anonymous_users_get_placeholder_emails_and_no_password() {
        let mut phone = doc(&[
            ("legacyId", s("u2")),
            ("phone", s("+1 555 0100")),
            ("phoneConfirmedAt", Value::Float64(3.0)),
            ("encryptedPassword", s("")),
            ("createdAt", Value::Float64(1.0)),
        ]);
        assert_eq!(apply(AuthShape::SupabaseUser, "legacyId", &mut phone), Ok(Some("none")));
        assert_eq!(phone["email"], s("phone-15550100@phone.invalid"));
        assert_eq!(phone["emailVerified"], Value::Boolean(false));
        assert_eq!(phone["phoneNumberVerified"], Value::Boolean(true));
        assert_eq!(phone["name"], s("phone-15550100"));
        assert_eq!(phone["updatedAt"], Value::Float64(1.0));
        assert!(!phone.contains_key(CREDENTIAL_FIELD));

        let mut anonymous = doc(&[
            ("legacyId", s("u3")),
            ("isAnonymous", Value::Boolean(true)),
            ("createdAt", Value::Float64(1.0)),
        ]);
        apply(AuthShape::SupabaseUser, "legacyId", &mut anonymous).unwrap();
        assert_eq!(anonymous["email"], s("u3@anonymous.invalid"));
        assert_eq!(anonymous["isAnonymous"], Value::Boolean(true));
    }

    #[test]
    fn an_unplanned_field_or_a_missing_creation_time_rejects_the_row() {
        let mut extra = doc(&[("legacyId", s("u4")), ("bannedUntil", Value::Float64(1.0))]);
        let err = apply(AuthShape::SupabaseUser, "legacyId", &mut extra).unwrap_err();
        assert_eq!(err.field, "bannedUntil");
        let mut no_time = doc(&[("legacyId", s("u5")), ("email", s("a@b.c"))]);
        let err = apply(AuthShape::SupabaseUser, "legacyId", &mut no_time).unwrap_err();
        assert_eq!(err.field, "createdAt");
    }

    #[test]
    fn better_auth_rows_keep_their_fields_and_count_credential_hashes() {
        let mut user = doc(&[("email", s("Bob@Example.com"))]);
        assert_eq!(apply(AuthShape::BetterAuthUser, "legacyId", &mut user), Ok(None));
        assert_eq!(user["email"], s("bob@example.com"));
        let scrypt = format!("{}:{}", "b".repeat(32), "c".repeat(128));
        let mut credential = doc(&[("providerId", s("credential")), ("password", s(&scrypt))]);
        assert_eq!(
            apply(AuthShape::BetterAuthAccount, "legacyId", &mut credential),
            Ok(Some("scrypt"))
        );
        let mut github = doc(&[("providerId", s("github"))]);
        assert_eq!(apply(AuthShape::BetterAuthAccount, "legacyId", &mut github), Ok(None));
    }
}
