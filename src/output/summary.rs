//! Result summaries for stdout: a table for people, JSON for scripts.

use comfy_table::{CellAlignment, Table, presets};
use indicatif::{HumanBytes, HumanCount};

use crate::cli::OutputFormat;
use crate::export::ExportReport;

pub fn export_summary(report: &ExportReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return serde_json::to_string_pretty(report).expect("a report always serializes") + "\n";
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(["table", "rows", "size", "time", "rows/s"]);
    for t in &report.tables {
        table.add_row([
            t.table.clone(),
            HumanCount(t.rows).to_string(),
            HumanBytes(t.bytes).to_string(),
            format!("{:.2} s", t.seconds),
            HumanCount(rate(t.rows, t.seconds)).to_string(),
        ]);
    }
    for column in 1..5 {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
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

fn rate(rows: u64, seconds: f64) -> u64 {
    if seconds > 0.0 { (rows as f64 / seconds) as u64 } else { rows }
}
