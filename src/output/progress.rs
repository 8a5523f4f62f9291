//! Progress on stderr, per table: bars on a terminal, with rows/s and an ETA from the
//! catalog's estimate; plain lines at a steady interval elsewhere (CI, pipes, log files).

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{
    HumanCount, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState,
    ProgressStyle,
};

use super::{Reporter, TableProgress, Unit};

/// Draws nothing: for `--no-progress` and `-q`.
pub struct NoProgress;

impl Reporter for NoProgress {
    fn table_started(&self, _: &str, _: Option<u64>, _: Unit) -> Box<dyn TableProgress> {
        Box::new(NoProgress)
    }
}

impl TableProgress for NoProgress {
    fn rows(&mut self, _: u64) {}
    fn finished(&mut self, _: u64) {}
}

/// One bar per table in flight.
pub struct Bars {
    multi: MultiProgress,
}

impl Default for Bars {
    fn default() -> Self {
        Self { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()) }
    }
}

impl Reporter for Bars {
    fn table_started(
        &self,
        table: &str,
        estimated_rows: Option<u64>,
        unit: Unit,
    ) -> Box<dyn TableProgress> {
        let unit = unit.label();
        let bar = match estimated_rows.filter(|&rows| rows > 0) {
            Some(rows) => ProgressBar::new(rows).with_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>28!}} {{bar:30.cyan/blue}} {{human_pos:>11}}/{{human_len:11}} {unit} {{rate:>12}} eta {{eta}}"
                ))
                .expect("valid template")
                .with_key("rate", rate_key)
                .progress_chars("━╸ "),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>28!}} {{spinner}} {{human_pos:>11}} {unit} {{rate:>12}}"
                ))
                .expect("valid template")
                .with_key("rate", rate_key),
            ),
        };
        let bar = self.multi.add(bar.with_prefix(table.to_owned()));
        Box::new(TableBar { bar })
    }
}

struct TableBar {
    bar: ProgressBar,
}

impl TableProgress for TableBar {
    fn rows(&mut self, rows: u64) {
        if self.bar.length().is_some_and(|len| rows > len) {
            self.bar.set_length(rows);
        }
        self.bar.set_position(rows);
    }

    fn finished(&mut self, rows: u64) {
        self.bar.set_length(rows);
        self.bar.set_position(rows);
        self.bar.finish_and_clear();
    }
}

/// indicatif's own `{per_sec}` prints 14 decimals (`28,060.72521197762399/s`).
fn rate_key(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = w.write_str(&format_rate(state.per_sec()));
}

/// A rate as a whole number per second with thousands separators: `28,061/s`.
pub fn format_rate(per_sec: f64) -> String {
    let whole = if per_sec.is_finite() && per_sec > 0.0 { per_sec.round() as u64 } else { 0 };
    format!("{}/s", HumanCount(whole))
}

/// How often [`Lines`] prints: `MIGRATE_PROGRESS_INTERVAL` seconds (decimals allowed, e.g.
/// `0.5`), 5 s when unset or not a positive number.
pub fn progress_interval() -> Duration {
    std::env::var("MIGRATE_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// Plain progress lines, for stderr that is not a terminal (CI, pipes, log files), as
/// pgcopydb and cargo print them: per table, at most one line per interval, and a last line
/// when a table that printed any finishes. A table done within the interval prints nothing.
pub struct Lines {
    interval: Duration,
}

impl Lines {
    pub fn new(interval: Duration) -> Self {
        Lines { interval }
    }
}

impl Reporter for Lines {
    fn table_started(
        &self,
        table: &str,
        estimated_rows: Option<u64>,
        unit: Unit,
    ) -> Box<dyn TableProgress> {
        let now = Instant::now();
        Box::new(TableLines {
            table: table.to_owned(),
            unit: unit.label(),
            total: estimated_rows.filter(|&rows| rows > 0),
            interval: self.interval,
            started: now,
            last_line: now,
            printed: false,
        })
    }
}

struct TableLines {
    table: String,
    unit: &'static str,
    total: Option<u64>,
    interval: Duration,
    started: Instant,
    last_line: Instant,
    printed: bool,
}

impl TableLines {
    fn print(&mut self, line: String) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
        self.printed = true;
    }
}

impl TableProgress for TableLines {
    fn rows(&mut self, rows: u64) {
        let now = Instant::now();
        if now.duration_since(self.last_line) < self.interval {
            return;
        }
        self.last_line = now;
        let line = progress_line(&self.table, self.unit, rows, self.total, now - self.started);
        self.print(line);
    }

    fn finished(&mut self, rows: u64) {
        if self.printed {
            let elapsed = self.started.elapsed();
            let line = format!(
                "{}: done, {} {} in {}, {}",
                self.table,
                HumanCount(rows),
                self.unit,
                HumanDuration(elapsed),
                format_rate(rows as f64 / elapsed.as_secs_f64().max(1e-9))
            );
            self.print(line);
        }
    }
}

/// `comments: 1,200/2,000 docs (60%), 240/s, eta 3 seconds`.
fn progress_line(
    table: &str,
    unit: &str,
    rows: u64,
    total: Option<u64>,
    elapsed: Duration,
) -> String {
    let per_sec = rows as f64 / elapsed.as_secs_f64().max(1e-9);
    let rate = format_rate(per_sec);
    match total {
        Some(total) if total >= rows => {
            let percent = rows * 100 / total;
            let eta = if per_sec > 0.0 {
                HumanDuration(Duration::from_secs_f64((total - rows) as f64 / per_sec)).to_string()
            } else {
                "unknown".to_owned()
            };
            format!(
                "{table}: {}/{} {unit} ({percent}%), {rate}, eta {eta}",
                HumanCount(rows),
                HumanCount(total)
            )
        }
        _ => format!("{table}: {} {unit}, {rate}", HumanCount(rows)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_numbers_per_second_with_separators() {
        assert_eq!(format_rate(28_060.725_211_977_624), "28,061/s");
        assert_eq!(format_rate(0.4), "0/s");
        assert_eq!(format_rate(999.5), "1,000/s");
        assert_eq!(format_rate(f64::NAN), "0/s");
        assert_eq!(format_rate(f64::INFINITY), "0/s");
    }

    #[test]
    fn progress_lines_name_table_counts_rate_and_eta() {
        let line = progress_line("comments", "docs", 1_200, Some(2_000), Duration::from_secs(5));
        assert_eq!(line, "comments: 1,200/2,000 docs (60%), 240/s, eta 3 seconds");
        let line = progress_line("comments", "rows", 12_345, None, Duration::from_secs(2));
        assert_eq!(line, "comments: 12,345 rows, 6,173/s");
    }
}
