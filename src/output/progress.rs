//! Progress bars on stderr, one per table, with rows/s and an ETA from the catalog's estimate.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Reporter, TableProgress, Unit};

/// Draws nothing: for CI, pipes, `-v` and `--no-progress`.
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
                    "{{prefix:>28!}} {{bar:30.cyan/blue}} {{human_pos:>11}}/{{human_len:11}} {unit} {{per_sec:>14}} eta {{eta}}"
                ))
                .expect("valid template")
                .progress_chars("━╸ "),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>28!}} {{spinner}} {{human_pos:>11}} {unit} {{per_sec:>14}}"
                ))
                    .expect("valid template"),
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
