//! Problems found in an input, located by field path and, for TOML, by line and column.

use std::fmt;

use serde::Serialize;

/// Whether a problem stops rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input cannot be used.
    Error,
    /// The input can be used, but the operator should know.
    Warning,
}

/// One problem in a UCP configuration file.
///
/// Serializes as `{"field", "message", "line", "column"}`, the shape of
/// `ucp-kms validate --output json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Whether the problem stops rendering.
    #[serde(skip)]
    pub severity: Severity,
    /// The key path, such as `cluster_config.kms_endpoint`; empty for the whole document.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// 1-based column of the offending value, when known.
    pub column: Option<usize>,
}

impl Diagnostic {
    /// An error at `field`, without a position yet.
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, field, message)
    }

    /// A warning at `field`, without a position yet.
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, field, message)
    }

    fn new(severity: Severity, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity, field: field.into(), message: message.into(), line: None, column: None }
    }

    /// The same problem, placed at a 1-based line and column.
    #[must_use]
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

/// `41:3: cluster_config.kms_endpoint: must be ...`, the part after the file name in
/// compiler-style diagnostics.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "{line}:{column}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A problem kube-apiserver would report when loading an EncryptionConfiguration.
///
/// Serializes as `{"field", "message"}`, the shape of `ucp-kms lint --output json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LintError {
    /// The field path in kube-apiserver's form, such as `resources[0].providers[1].kms.name`;
    /// empty for the whole file.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl LintError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}
