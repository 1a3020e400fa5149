//! Problems found in a plan file, each with its line and key, and the collector that
//! gathers them all so a broken plan is fixed in one pass.

use std::fmt;
use std::ops::Range;

/// One problem in a plan file, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key at fault, e.g. `kpi[3].numerator`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}, {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found in a plan file.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{file}: {} problem(s):\n{}", errors.len(), errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct PlanErrors {
    /// The file name as given.
    pub file: String,
    /// The problems, in file order.
    pub errors: Vec<PlanError>,
}

/// The problems found so far while compiling one file's text.
pub(super) struct Errors<'a> {
    pub(super) text: &'a str,
    pub(super) list: Vec<PlanError>,
}

impl Errors<'_> {
    /// The 1-based line of a byte offset of the text.
    pub(super) fn line_of(text: &str, offset: usize) -> usize {
        text[..offset.min(text.len())].matches('\n').count() + 1
    }

    /// Records a problem at `span` (a byte range of the text), under `key`.
    pub(super) fn at(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| Self::line_of(self.text, s.start));
        self.list.push(PlanError {
            line,
            key: key.into(),
            message: message.into(),
        });
    }
}
