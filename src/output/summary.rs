//! Result summaries for stdout: a table for people, JSON for scripts.

use comfy_table::{CellAlignment, Table, presets};
use indicatif::{HumanBytes, HumanCount};

use crate::cli::OutputFormat;
use crate::commands::InitReport;
use crate::dump::RestoreReport;
use crate::export::ExportReport;
use crate::import::ImportReport;
use crate::status::StatusReport;
use crate::transform::TransformReport;
use crate::verify::VerifyReport;

fn json<T: serde::Serialize>(report: &T) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes") + "\n"
}

/// A borderless table, every column but the first right-aligned.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header.to_vec());
    for column in 1..header.len() {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

pub fn export_summary(report: &ExportReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut table = table(&["table", "rows", "size", "time", "rows/s"]);
    for t in &report.tables {
        table.add_row([
            t.table.clone(),
            HumanCount(t.rows).to_string(),
            HumanBytes(t.bytes).to_string(),
            format!("{:.2} s", t.seconds),
            HumanCount(rate(t.rows, t.seconds)).to_string(),
        ]);
    }
    format!(
        "{table}\n\nexported {} table{} ({} rows, {}) in {:.2} s from the snapshot of {}\nmanifest: {}\n",
        report.tables.len(),
        if report.tables.len() == 1 { "" } else { "s" },
        HumanCount(report.rows),
        HumanBytes(report.bytes),
        report.seconds,
        report.snapshot_taken_at,
        report.manifest,
    )
}

/// What restoring a dump did: the file, the roles created, every statement skipped and what
/// the dump does not hold.
pub fn restore_summary(report: &RestoreReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let dump = &report.dump;
    let format_name = serde_json::to_value(dump.format).ok();
    let mut text = format!(
        "restored `{}` ({}, {}{}) with PostgreSQL {} in {:.2} s\n",
        dump.file,
        format_name.as_ref().and_then(|v| v.as_str()).unwrap_or("?"),
        HumanBytes(dump.bytes),
        dump.dumped_from.as_ref().map(|v| format!(", from PostgreSQL {v}")).unwrap_or_default(),
        report.binaries,
        report.seconds,
    );
    if !report.roles_created.is_empty() {
        text.push_str(&format!(
            "created {} role{} the dump names, NOLOGIN: {}\n",
            report.roles_created.len(),
            if report.roles_created.len() == 1 { "" } else { "s" },
            report.roles_created.join(", ")
        ));
    }
    if !report.skipped.is_empty() {
        text.push_str(&format!(
            "skipped {} statement{} that failed (no table data among them):\n",
            report.skipped.len(),
            if report.skipped.len() == 1 { "" } else { "s" }
        ));
        for skipped in &report.skipped {
            text.push_str(&format!("  {}: {}\n", skipped.what, skipped.error));
        }
    }
    for missing in &report.missing {
        text.push_str(&format!("missing: {missing}\n"));
    }
    text
}

fn rate(rows: u64, seconds: f64) -> u64 {
    if seconds > 0.0 { (rows as f64 / seconds) as u64 } else { rows }
}

pub fn transform_summary(report: &TransformReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut out = String::new();
    for (target, samples) in &report.samples {
        out.push_str(&format!(
            "── {target}: {} sample document{}\n",
            samples.len(),
            plural(samples.len())
        ));
        for sample in samples {
            out.push_str(&serde_json::to_string_pretty(sample).expect("JSON serializes"));
            out.push('\n');
        }
        out.push('\n');
    }
    let mut summary = table(&[
        "convex table",
        "from",
        "rows",
        "documents",
        "filtered",
        "dropped",
        "rejected",
        "size",
    ]);
    for t in &report.tables {
        let from = match t.sources.split_first() {
            Some((first, [])) => first.clone(),
            Some((first, merged)) => format!("{first} + {}", merged.join(" + ")),
            None => String::new(),
        };
        summary.add_row([
            t.table.clone(),
            from,
            HumanCount(t.rows).to_string(),
            HumanCount(t.documents).to_string(),
            HumanCount(t.filtered).to_string(),
            HumanCount(t.dropped).to_string(),
            HumanCount(t.rejected).to_string(),
            if report.dry_run { "-".into() } else { HumanBytes(t.bytes).to_string() },
        ]);
    }
    out.push_str(&format!("{summary}\n\n"));
    let verb = if report.dry_run { "dry run: would transform" } else { "transformed" };
    out.push_str(&format!(
        "{verb} {} table{}: {} rows → {} documents, {} rejected, in {:.2} s\n",
        report.tables.len(),
        plural(report.tables.len()),
        HumanCount(report.rows),
        HumanCount(report.documents),
        HumanCount(report.rejected),
        report.seconds,
    ));
    for t in report.tables.iter().filter(|t| t.sub_ms_dropped > 0) {
        out.push_str(&format!(
            "note: `{}`: {} timestamp value{} lost sub-millisecond digits under policy `ms` \
             (whole milliseconds, as JavaScript's Date holds them); policy `iso` keeps microseconds\n",
            t.table,
            HumanCount(t.sub_ms_dropped),
            plural(t.sub_ms_dropped as usize),
        ));
    }
    for t in report.tables.iter().filter(|t| t.orphan_references > 0) {
        out.push_str(&format!(
            "note: `{}`: {} reference{} found no parent row and {} set to null or kept as the \
             legacy value, as the reference's `orphans` policy says (`fail` rejects such rows)\n",
            t.table,
            HumanCount(t.orphan_references),
            plural(t.orphan_references as usize),
            if t.orphan_references == 1 { "was" } else { "were" },
        ));
    }
    for t in report.tables.iter().filter(|t| !t.password_hashes.is_empty()) {
        let counts: Vec<String> = t
            .password_hashes
            .iter()
            .map(|(format, count)| format!("{format} {}", HumanCount(*count)))
            .collect();
        out.push_str(&format!(
            "note: `{}`: password hashes: {} (convex/migrateAuth.ts accepts bcrypt and scrypt; \
             users with other formats reset their password)\n",
            t.table,
            counts.join(", "),
        ));
    }
    if report.duplicate_ids > 0 {
        out.push_str(&format!(
            "{} of the rejected row{} share{} a legacy id with other rows of their table (reason `legacy id … is held by N rows`)\n",
            HumanCount(report.duplicate_ids),
            plural(report.duplicate_ids as usize),
            if report.duplicate_ids == 1 { "s" } else { "" },
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str(&format!("not migrated (skip = true): {}\n", report.skipped.join(", ")));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if report.stopped_early {
        out.push_str("stopped early: more rows were rejected than --max-rejected allows; nothing was kept but the rejects\n");
    }
    if !report.first_rejects.is_empty() {
        out.push_str("first rejects");
        out.push_str(if report.dry_run { ":\n" } else { " (all of them in rejects/):\n" });
        for reject in &report.first_rejects {
            let key: Vec<String> = reject.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(
                "  {} line {} ({}): `{}`: {}\n",
                reject.table,
                reject.line,
                key.join(", "),
                reject.field,
                reject.reason
            ));
        }
    }
    if report.dry_run {
        out.push_str("dry run: nothing was written\n");
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn init_summary(report: &InitReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut out = match &report.catalog_about {
        Some(about) => format!("catalog from {} ({about})\n", report.catalog_from),
        None => format!("catalog from {}\n", report.catalog_from),
    };
    let convex = &report.convex;
    for file in [&report.plan, &convex.tables, &convex.module, &convex.schema] {
        out.push_str(&format!("{:<10} {}\n", file.status, file.path));
        if file.status == "kept" {
            let why = if std::ptr::eq(file, &report.plan) {
                "(a person's plan: kept as it is and used; --force overwrites one migrate wrote)"
            } else {
                "(the app's own: migrate never writes it)"
            };
            out.push_str(&format!("{:<10} {why}\n", ""));
        }
        for line in file.changes.iter().flat_map(|c| c.lines()) {
            out.push_str(&format!("{:<10} {line}\n", ""));
        }
    }
    for file in &report.preset {
        out.push_str(&format!("{:<10} {}\n", file.status, file.path));
    }
    let mut tables = table(&["convex table", "from"]);
    for (target, sources) in &report.tables {
        tables.add_row([target.clone(), sources.join(" + ")]);
    }
    out.push_str(&format!("\n{tables}\n\n"));
    if !report.skipped.is_empty() {
        out.push_str(&format!("not migrated (skip = true): {}\n", report.skipped.join(", ")));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if !convex.unchecked_spreads.is_empty() {
        let spreads: Vec<String> =
            convex.unchecked_spreads.iter().map(|s| format!("`...{s}`")).collect();
        let mut migrated: Vec<&str> = report.tables.iter().map(|(t, _)| t.as_str()).collect();
        if migrated.len() > 8 {
            migrated.truncate(8);
            migrated.push("…");
        }
        out.push_str(&format!(
            "note: migrate cannot see which tables {} takes from {}: none of them may have the \
             name of a migrated table ({})\n",
            convex.schema.path,
            spreads.join(", "),
            migrated.join(", ")
        ));
    }
    if let Some(lines) = &convex.schema_lines {
        out.push_str(&format!(
            "next: add the migrated tables to {}: the import at the top, the spread as the last \
             entry of `defineSchema({{...}})`:\n",
            convex.schema.path
        ));
        for line in lines {
            out.push_str(&format!("    {line}\n"));
        }
    }
    match &report.after_import {
        None => out.push_str(&format!(
            "next: review {}, then run `migrate transform --dry-run`\n",
            report.plan.path
        )),
        Some(after) => {
            let import = &after.import;
            out.push_str(&format!(
                "import complete: {} documents in {} tables, finished {}\n",
                HumanCount(import.documents),
                import.tables,
                import.finished_at
            ));
            if after.required.is_empty() {
                out.push_str(
                    "required now: nothing (no set reference lies on a foreign-key cycle)\n",
                );
            } else {
                out.push_str(&format!("required now: {}\n", after.required.join(", ")));
            }
            out.push_str(
                "next: deploy the Convex app (`npx convex deploy`); before importing again, run \
                 `migrate init` without --after-import and deploy\n",
            );
        }
    }
    out
}

pub fn import_summary(report: &ImportReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut out = String::new();
    if report.dry_run {
        let mut order = table(&["order", "convex table", "documents", "batches", "patched after"]);
        for (index, t) in report.tables.iter().enumerate() {
            order.add_row([
                (index + 1).to_string(),
                t.table.clone(),
                HumanCount(t.documents).to_string(),
                HumanCount(t.batches).to_string(),
                t.deferred.join(", "),
            ]);
        }
        out.push_str(&format!(
            "{order}\n\ndry run: {} documents in {} batches would be imported in this order, \
             parents first; references in foreign-key cycles are patched in by a second pass. \
             Nothing was sent.\n",
            HumanCount(report.documents),
            HumanCount(report.tables.iter().map(|t| t.batches).sum()),
        ));
        return out;
    }
    let mut summary = table(&[
        "convex table",
        "documents",
        "earlier runs",
        "inserted",
        "replaced",
        "patched",
        "rejected",
    ]);
    for t in &report.tables {
        summary.add_row([
            t.table.clone(),
            HumanCount(t.documents).to_string(),
            HumanCount(t.resumed).to_string(),
            HumanCount(t.inserted).to_string(),
            HumanCount(t.replaced).to_string(),
            HumanCount(t.patched).to_string(),
            HumanCount(t.rejected).to_string(),
        ]);
    }
    out.push_str(&format!(
        "{summary}\n\nimported {} documents into {} table{} in {:.2} s ({} documents/s)\n",
        HumanCount(report.sent),
        report.tables.len(),
        plural(report.tables.len()),
        report.seconds,
        HumanCount(rate(report.sent, report.seconds)),
    ));
    let c = &report.concurrency;
    out.push_str(&format!(
        "calls in flight: up to {} (--concurrency {}), {} at the end{}\n",
        c.peak,
        c.ceiling,
        c.last,
        match c.backoffs {
            0 => String::new(),
            n => format!("; the deployment pushed back {} time{}", HumanCount(n), plural(n as usize)),
        }
    ));
    if report.rejected > 0 {
        out.push_str(&format!(
            "\n{} document{} refused by Convex (all in data/rejects/import/):\n",
            HumanCount(report.rejected),
            plural(report.rejected as usize)
        ));
        for r in &report.first_rejects {
            out.push_str(&format!(
                "  {} {} (line {}): {}\n",
                r.table, r.legacy_id, r.line, r.message
            ));
        }
    }
    out
}

pub fn verify_summary(report: &VerifyReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut summary = table(&[
        "source table",
        "convex table",
        "source rows",
        "documents",
        "merged",
        "filtered",
        "skipped",
        "rejected",
        "unaccounted",
        "in convex",
        "matching",
        "missing",
        "extra",
        "different",
        "duplicates",
        "unresolved refs",
        "not unique",
    ]);
    let count = |n: u64| HumanCount(n).to_string();
    for t in &report.tables {
        let mut row = vec![
            t.source.clone(),
            t.table.clone().unwrap_or_else(|| "–".into()),
            count(t.source_rows),
            count(t.documents),
            count(t.merged),
            count(t.filtered),
            count(t.skipped),
            count(t.rejected),
            t.unaccounted.to_string(),
        ];
        match &t.comparison {
            Some(c) => row.extend(
                [
                    c.convex,
                    c.matching,
                    c.missing,
                    c.extra,
                    c.different,
                    c.duplicates,
                    c.unresolved_references,
                    c.not_unique,
                ]
                .map(count),
            ),
            None => row.extend(std::iter::repeat_n("–".to_owned(), 8)),
        }
        summary.add_row(row);
    }
    let mut out = format!("{summary}\n");
    let rules: Vec<String> = report
        .tables
        .iter()
        .flat_map(|t| {
            t.filtered_by_rule.iter().map(move |(rule, n)| format!("  {} {rule}: {n}", t.source))
        })
        .collect();
    if !rules.is_empty() {
        out.push_str("\nfiltered by plan rules:\n");
        for rule in rules {
            out.push_str(&rule);
            out.push('\n');
        }
    }
    out.push('\n');
    let sum = |f: fn(&crate::verify::TableVerify) -> u64| report.tables.iter().map(f).sum::<u64>();
    if report.accounted {
        out.push_str(&format!(
            "accounted for: every one of the {} exported row{} ({} document{}, {} merged, {} \
             filtered, {} skipped, {} rejected{})\n",
            HumanCount(report.source_rows),
            plural(report.source_rows as usize),
            HumanCount(sum(|t| t.documents)),
            plural(sum(|t| t.documents) as usize),
            HumanCount(sum(|t| t.merged)),
            HumanCount(sum(|t| t.filtered)),
            HumanCount(sum(|t| t.skipped)),
            HumanCount(report.rejected),
            if report.accepted_rejected.is_some() { ", accepted" } else { "" },
        ));
    }
    let documents = sum(|t| t.documents);
    let tables = report.tables.iter().filter(|t| t.comparison.is_some()).count();
    if let Some(check) = &report.rolled_back {
        return rolled_back_verdict(report, check, out);
    }
    if report.verified {
        out.push_str(&format!(
            "verified: Convex holds exactly the {} transformed document{} of {} table{} \
             (every field, every reference by legacy id, no duplicates, nothing extra) in {:.2} s\n",
            HumanCount(documents),
            plural(documents as usize),
            tables,
            plural(tables),
            report.seconds,
        ));
        return out;
    }
    if !report.problems.is_empty() {
        out.push_str("NOT verified:\n");
        for problem in &report.problems {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    let comparisons = || report.tables.iter().filter_map(|t| t.comparison.as_ref());
    let not_unique: u64 = comparisons().map(|c| c.not_unique).sum();
    let not_unique_text = format!(
        "{} document{} {} values with another on fields unique in the source",
        HumanCount(not_unique),
        plural(not_unique as usize),
        if not_unique == 1 { "shares" } else { "share" }
    );
    if report.identical {
        out.push_str(&format!(
            "Convex holds exactly the {} transformed documents\n",
            HumanCount(documents)
        ));
        if report.unique {
            return out;
        }
        out.push_str(&format!("NOT verified: {not_unique_text}"));
    } else {
        let counted: u64 =
            comparisons().map(|c| c.missing + c.extra + c.different + c.duplicates).sum();
        let verb = if counted == 1 { "differs" } else { "differ" };
        out.push_str(&format!(
            "NOT verified: {} document{} {verb}",
            HumanCount(counted),
            plural(counted as usize)
        ));
        if !report.unique {
            out.push_str(&format!(", and {not_unique_text}"));
        }
    }
    out.push_str(if report.differences.is_empty() { "\n" } else { "; the first:\n" });
    for d in &report.differences {
        let field = d.field.as_deref().map(|f| format!(".{f}")).unwrap_or_default();
        out.push_str(&format!("  {} {} {}{}: {}\n", d.kind, d.table, d.legacy_id, field, d.detail));
    }
    out
}

/// The end of verify's summary for an import the deployment's ledger says was rolled back.
fn rolled_back_verdict(
    report: &VerifyReport,
    check: &crate::verify::RolledBackCheck,
    mut out: String,
) -> String {
    out.push_str(
        "rolled back: the deployment's ledger says this import was rolled back, so Convex \
         should hold none of its documents (documents the migration did not write are not \
         counted)\n",
    );
    for problem in &report.problems {
        out.push_str(&format!("NOT verified: {problem}\n"));
    }
    match check.files {
        Some(0) => out.push_str("no migrated file is left in Convex file storage\n"),
        Some(left) => out.push_str(&format!(
            "NOT verified: {} migrated file{} still in Convex file storage (`migrateFiles`): run \
             `migrate rollback` again\n",
            HumanCount(left),
            plural(left as usize)
        )),
        None => {}
    }
    if check.remaining == 0 {
        if report.verified {
            out.push_str(&format!(
                "verified: no migrated {} is left in Convex ({:.2} s)\n",
                if check.files.is_some() { "document or file" } else { "document" },
                report.seconds
            ));
        }
        return out;
    }
    let tables: Vec<String> = check.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
    out.push_str(&format!(
        "NOT verified: {} migrated document{} still in Convex ({}); `migrate rollback` keeps \
         documents changed since the import unless --force\n",
        HumanCount(check.remaining),
        plural(check.remaining as usize),
        tables.join(", ")
    ));
    for d in &report.differences {
        let field = d.field.as_deref().map(|f| format!(".{f}")).unwrap_or_default();
        out.push_str(&format!("  {} {} {}{}: {}\n", d.kind, d.table, d.legacy_id, field, d.detail));
    }
    out
}

/// `migrate rollback`'s summary: per table what was (or would be) removed and kept.
pub fn rollback_summary(report: &crate::rollback::RollbackReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let removed = if report.dry_run { "would remove" } else { "removed" };
    let mut summary = table(&["convex table", "documents", "in convex", removed, "changed, kept"]);
    for t in &report.tables {
        summary.add_row([
            t.table.clone(),
            HumanCount(t.documents).to_string(),
            HumanCount(t.found).to_string(),
            HumanCount(t.removed).to_string(),
            HumanCount(t.kept).to_string(),
        ]);
    }
    let mut out = format!("{summary}\n\n");
    if !report.changed.is_empty() {
        out.push_str(&format!(
            "changed in Convex since the import ({}):\n",
            if report.changed.iter().any(|c| c.removed) { "removed: --force" } else { "kept" }
        ));
        for c in report.changed.iter().take(20) {
            out.push_str(&format!("  {} {} ({})\n", c.table, c.legacy_id, c.id));
        }
        if report.changed.len() > 20 {
            out.push_str(&format!(
                "  … and {} more (--format json lists all)\n",
                report.changed.len() - 20
            ));
        }
    }
    if let Some(files) = &report.files {
        out.push_str(&rollback_files_line(files, report.dry_run));
    }
    if report.dry_run {
        out.push_str(&format!(
            "dry run: {} document{} of import {} would be removed, {} kept; nothing was changed\n",
            HumanCount(report.removed),
            plural(report.removed as usize),
            report.import_id,
            HumanCount(report.kept),
        ));
    } else {
        out.push_str(&format!(
            "rolled back import {}: {} document{} removed, {} changed since the import kept, in \
             {:.2} s; the ledger says {}\n",
            report.import_id,
            HumanCount(report.removed),
            plural(report.removed as usize),
            HumanCount(report.kept),
            report.seconds,
            report.status.map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
        ));
    }
    out
}

/// Rollback's line on the files of `[files]`: per bucket when there are any.
fn rollback_files_line(files: &crate::files::remove::FilesRollback, dry_run: bool) -> String {
    if files.recorded == 0 {
        return "files: no migrated file is recorded in `migrateFiles`: none to remove\n".into();
    }
    let buckets: Vec<String> =
        files.buckets.iter().map(|(bucket, count)| format!("{bucket} {}", count.files)).collect();
    format!(
        "files: {} of {} migrated file{} ({} bytes; {}) {} from Convex file storage with their \
         `migrateFiles` records; files the application stored itself are not touched\n",
        HumanCount(files.removed),
        HumanCount(files.recorded),
        plural(files.recorded as usize),
        files.removed_bytes,
        buckets.join(", "),
        if dry_run { "would be removed" } else { "removed" },
    )
}

/// `migrate finalize`'s summary.
pub fn finalize_summary(report: &crate::finalize::FinalizeReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut summary = table(&["convex table", "ids recorded", "legacy ids taken out"]);
    for t in &report.tables {
        summary.add_row([
            t.table.clone(),
            HumanCount(t.recorded).to_string(),
            HumanCount(t.patched).to_string(),
        ]);
    }
    let mut out = format!("{summary}\n\n");
    out.push_str(&format!(
        "finalized import {}: {}; {} written without the by_legacy_id indexes ({}): deploy it. \
         The ids per legacy id are in data/finalize/ (verify matches documents through them). \
         Import and rollback now refuse this deployment. {:.2} s\n",
        report.import_id,
        if report.kept_legacy_ids {
            "the plan keeps the legacy id fields".to_owned()
        } else {
            format!(
                "{} legacy id field{} taken out",
                HumanCount(report.tables.iter().map(|t| t.patched).sum()),
                plural(report.tables.iter().map(|t| t.patched).sum::<u64>() as usize)
            )
        },
        report.convex.tables.path,
        report.convex.tables.status,
        report.seconds,
    ));
    out
}

/// The deployment's ledger, as `migrate status --ledger` prints it after the data directory's
/// status.
pub fn ledger_summary(entries: &[crate::ledger::Entry]) -> String {
    if entries.is_empty() {
        return "\nledger: the deployment holds no entry (nothing migrated into it)\n".into();
    }
    let mut ledger =
        table(&["import", "plan version", "plan", "status", "started", "finished", "counts"]);
    for e in entries {
        let counts: Vec<String> = e.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        ledger.add_row([
            e.import_id.chars().take(12).collect::<String>(),
            e.plan_version.to_string(),
            e.plan_files.last().cloned().unwrap_or_default(),
            e.status.to_string(),
            e.started(),
            e.finished().unwrap_or_else(|| "–".into()),
            counts.join(", "),
        ]);
    }
    format!("\nledger of the deployment:\n{ledger}\n")
}

pub fn status_summary(report: &StatusReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut out = String::new();
    match &report.exported_at {
        Some(at) => {
            let rows: u64 = report.export_tables.iter().map(|(_, rows)| rows).sum();
            out.push_str(&format!(
                "export:    {} tables, {} rows, snapshot of {at}\n",
                report.export_tables.len(),
                HumanCount(rows)
            ));
        }
        None => out.push_str("export:    none yet (`migrate export`)\n"),
    }
    match &report.transformed_with {
        Some(plan) => out.push_str(&format!("transform: done with plan {plan}\n")),
        None => out.push_str("transform: none yet (`migrate transform`)\n"),
    }
    if !report.tables.is_empty() {
        let mut tables = table(&[
            "convex table",
            "documents",
            "rejected (transform)",
            "imported",
            "references patched",
            "refused (convex)",
        ]);
        for t in &report.tables {
            tables.add_row([
                t.table.clone(),
                HumanCount(t.documents).to_string(),
                HumanCount(t.rejected_by_transform).to_string(),
                HumanCount(t.imported).to_string(),
                HumanCount(t.patched).to_string(),
                HumanCount(t.refused_by_convex).to_string(),
            ]);
        }
        out.push_str(&format!("\n{tables}\n"));
    }
    if !report.runs.is_empty() {
        out.push_str("\nlast runs:\n");
        for run in &report.runs {
            out.push_str(&format!(
                "  {} {} → {}\n",
                run.started_at,
                run.command,
                run.outcome.as_deref().unwrap_or("did not finish (crashed or killed)")
            ));
        }
    }
    if let Some(entries) = &report.ledger {
        out.push_str(&ledger_summary(entries));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// `--target`/`--all-targets`: each target's own summary under its name, then one row per
/// target; JSON: `{"command", "targets": [{"target", "url", "status", "exit_code", "seconds",
/// "report", "error"}], "exit_code"}`.
pub fn targets_summary(report: &crate::targets::TargetsReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut out = String::new();
    for t in &report.targets {
        if !t.text.is_empty() {
            out.push_str(&format!("── target {} ({})\n{}\n", t.target, t.url, t.text));
        }
    }
    let mut rows = table(&["target", "status", "exit", "time", "deployment"]);
    for t in &report.targets {
        rows.add_row([
            t.target.clone(),
            t.status.clone(),
            t.exit_code.to_string(),
            format!("{:.2} s", t.seconds),
            crate::settings::redact_url(&t.url),
        ]);
    }
    let failed: Vec<&crate::targets::TargetRun> =
        report.targets.iter().filter(|t| t.error.is_some()).collect();
    out.push_str(&format!(
        "{rows}\n\n{} {}: {} target{}, {} failed; exit code {}\n",
        report.command,
        if failed.is_empty() { "done" } else { "not done everywhere" },
        report.targets.len(),
        plural(report.targets.len()),
        failed.len(),
        report.exit_code,
    ));
    for t in failed {
        out.push_str(&format!("\n{}: {}\n", t.target, t.error.as_deref().unwrap_or_default()));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// What `import` did with the files of `[files]`: one line, or the report as JSON.
pub fn files_summary(report: &crate::files::FilesReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let limiter = &report.concurrency;
    format!(
        "files: {} of {} uploaded ({} bytes), {} already in Convex; calls in flight: up to {} \
         (--concurrency {})\n",
        report.uploaded,
        report.files,
        report.uploaded_bytes,
        report.resumed,
        limiter.peak,
        limiter.ceiling
    )
}

/// `import --dry-run` with `[files]`: files and bytes per bucket, as `storage.objects` states
/// them.
pub fn files_dry_run(
    buckets: &std::collections::BTreeMap<String, crate::files::BucketCount>,
    format: OutputFormat,
) -> String {
    if format == OutputFormat::Json {
        return json(&serde_json::json!({ "files": buckets }));
    }
    let mut summary = table(&["bucket", "files", "bytes"]);
    for (bucket, count) in buckets {
        summary.add_row([bucket.clone(), count.files.to_string(), count.bytes.to_string()]);
    }
    format!("files to upload, per bucket:\n{summary}\n")
}

pub fn sync_summary(report: &crate::sync::SyncReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json(report);
    }
    let mut summary =
        table(&["convex table", "inserted", "updated", "deleted", "unchanged", "rejected"]);
    for t in &report.tables {
        summary.add_row([
            t.table.clone(),
            HumanCount(t.inserted).to_string(),
            HumanCount(t.updated).to_string(),
            HumanCount(t.deleted).to_string(),
            HumanCount(t.unchanged).to_string(),
            HumanCount(t.rejected).to_string(),
        ]);
    }
    let mut out = format!("{summary}\n\n");
    if let Some(files) = &report.files {
        out.push_str(&sync_files_lines(files));
    }
    if report.dry_run {
        out.push_str(&format!(
            "dry run: {} documents would be inserted, {} updated, {} deleted; {} unchanged. \
             Nothing was sent.\n",
            HumanCount(report.inserted),
            HumanCount(report.updated),
            HumanCount(report.deleted),
            HumanCount(report.unchanged),
        ));
        return out;
    }
    let deleted = match report.deletes_sent || report.deleted == 0 {
        true => format!("{} deleted", HumanCount(report.deleted)),
        false => format!("{} left in Convex (--no-deletes)", HumanCount(report.deleted)),
    };
    out.push_str(&format!(
        "synced: {} inserted, {} updated, {deleted}, {} unchanged (not sent) in {:.2} s \
         (diff {:.2} s, send {:.2} s, delete {:.2} s)\n",
        HumanCount(report.inserted),
        HumanCount(report.updated),
        HumanCount(report.unchanged),
        report.seconds,
        report.diff_seconds,
        report.send_seconds,
        report.delete_seconds,
    ));
    if report.rejected > 0 {
        out.push_str(&format!(
            "{} document{} refused by Convex\n",
            HumanCount(report.rejected),
            plural(report.rejected as usize)
        ));
    }
    out
}

/// Sync's lines on the files of `[files]`: a dry run's per bucket, then what was (or would be)
/// uploaded and deleted.
fn sync_files_lines(files: &crate::files::sync::FilesSync) -> String {
    let mut out = String::new();
    if files.dry_run && !files.buckets.is_empty() {
        let mut buckets =
            table(&["bucket", "files to upload", "bytes", "files to delete", "bytes"]);
        for (bucket, count) in &files.buckets {
            buckets.add_row([
                bucket.clone(),
                HumanCount(count.upload).to_string(),
                count.upload_bytes.to_string(),
                HumanCount(count.delete).to_string(),
                count.delete_bytes.to_string(),
            ]);
        }
        out.push_str(&format!("files, per bucket:\n{buckets}\n"));
    }
    let gone = if files.dry_run {
        format!("{} would be deleted", HumanCount(files.gone))
    } else if files.deletes_sent || files.gone == 0 {
        format!("{} deleted ({} bytes)", HumanCount(files.deleted), files.deleted_bytes)
    } else {
        format!("{} left in Convex (--no-deletes)", HumanCount(files.gone))
    };
    let (new, changed) = (HumanCount(files.new), HumanCount(files.changed));
    let sent = if files.dry_run {
        format!(
            "{} would be uploaded ({new} new, {changed} changed)",
            HumanCount(files.new + files.changed)
        )
    } else {
        format!(
            "{} uploaded ({new} new, {changed} changed; {} bytes)",
            HumanCount(files.uploaded),
            files.uploaded_bytes
        )
    };
    out.push_str(&format!(
        "files: {sent}, {gone}, {} unchanged (not sent) of {} in `storage.objects`\n",
        HumanCount(files.unchanged),
        HumanCount(files.files),
    ));
    out
}
