//! Status: the state of a host in one serializable answer, the same for every front end.
//!
//! `ucp-kms status --output json` prints a [`Status`] and `GET /api/kms/status` of the server
//! answers with one (plus fields of its own), so both say the same things in the same words:
//!
//! ```json
//! {"kms_enabled": true, "desired_hash": "sha256:...", "installed_hash": "sha256:...",
//!  "drift": false, "diff": "", "socket": {"path": "/run/kmsplugin/socket.sock",
//!  "state": "listening"}, "plugin": {"healthy": true, "version": "v2", "key_id": "k1",
//!  "latency_ms": 1.2, "error": null}, "problems": [], "warnings": []}
//! ```
//!
//! [`Status::assemble`] builds it from the settings, the installed file and a preflight.
//! [`Status::measure`] and [`Status::add_preflight`] are its two halves, for a caller (the
//! server's reconciler) that rendered the desired file and ran the preflight at another moment.

use std::path::{Path, PathBuf};

use kms_model::{KmsSettings, KubeVersion};
use kms_render::Rendered;
use serde::Serialize;

use crate::drift::{self, DriftError, Installation};
use crate::install::DEFAULT_ENCRYPTION_CONFIG;
use crate::plugin::ProbeReport;
use crate::preflight::{Preflight, SocketCheck, check_kept_sockets};

/// The plugin's health as a preflight saw it: `{"healthy", "version", "key_id",
/// "latency_ms", "error"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginHealth {
    /// Whether kube-apiserver would accept the plugin.
    pub healthy: bool,
    /// The API version string the plugin reported.
    pub version: Option<String>,
    /// The key ID the plugin reported (KMS v2).
    pub key_id: Option<String>,
    /// Time spent in the probe's calls, in milliseconds.
    pub latency_ms: f64,
    /// The first problem found.
    pub error: Option<String>,
}

impl From<&ProbeReport> for PluginHealth {
    fn from(report: &ProbeReport) -> Self {
        Self {
            healthy: report.healthy,
            version: report.version.clone(),
            key_id: report.key_id.clone(),
            latency_ms: report.latency_ms(),
            error: report.error().map(str::to_owned),
        }
    }
}

impl PluginHealth {
    /// `healthy, API version "v2", key ID "k1", 1.2 ms` or `unhealthy: <why>`.
    pub fn to_line(&self) -> String {
        if !self.healthy {
            return format!("unhealthy: {}", self.error.as_deref().unwrap_or("no answer"));
        }
        let mut line = "healthy".to_owned();
        if let Some(version) = &self.version {
            line.push_str(&format!(", API version {version:?}"));
        }
        if let Some(key_id) = &self.key_id {
            line.push_str(&format!(", key ID {key_id:?}"));
        }
        line.push_str(&format!(", {:.1} ms", self.latency_ms));
        line
    }
}

/// Where the status looks and how its problems advise the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusOptions {
    /// The directory host paths are interpreted under; `/` on a real host.
    pub root: PathBuf,
    /// Host path of the installed EncryptionConfiguration, as problems name it.
    pub encryption_config: PathBuf,
    /// What repairs drift, appended to its problem (`run ucp-kms apply`); `None` when the
    /// caller repairs it by itself.
    pub repair: Option<String>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            encryption_config: PathBuf::from(DEFAULT_ENCRYPTION_CONFIG),
            repair: None,
        }
    }
}

/// The state of the host: drift of the installed file, the plugin socket, the plugin's health,
/// and what makes the answer "no".
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// Whether the settings enable KMS.
    pub kms_enabled: bool,
    /// `sha256:<hex>` of the file the settings call for; `None` when none is needed or it
    /// cannot be rendered.
    pub desired_hash: Option<String>,
    /// `sha256:<hex>` of the installed file; `None` when nothing is installed.
    pub installed_hash: Option<String>,
    /// Whether the installed file differs from the desired one.
    pub drift: bool,
    /// Unified diff from the installed file to the desired one, key material redacted; empty
    /// without drift.
    pub diff: String,
    /// The plugin socket; `None` when KMS is off.
    pub socket: Option<SocketCheck>,
    /// The plugin's health; `None` when KMS is off or the socket does not listen.
    pub plugin: Option<PluginHealth>,
    /// Everything that makes the answer "no".
    pub problems: Vec<String>,
    /// What the operator should know but does not make the answer "no".
    pub warnings: Vec<String>,
}

impl Status {
    /// The whole status: the desired file rendered with the transition from where
    /// `installation` starts (the file ucp-kms last installed, so a hand edit is drift; see
    /// [`Installation::start`]), drift of the installed file against it, the preflight's
    /// findings, and the plugins of kms providers kept for reads.
    ///
    /// A file that cannot be decoded, or settings that cannot be rendered from it, are
    /// problems, not errors: an undecodable file is measured against the render without a
    /// transition, since it is drift either way.
    pub fn assemble(
        settings: &KmsSettings,
        version: KubeVersion,
        installation: &Installation,
        preflight: &Preflight,
        options: &StatusOptions,
    ) -> Self {
        let mut problems = Vec::new();
        let installed = &installation.installed;
        let desired = match drift::desired(settings, version, installation.start()) {
            Ok(desired) => Ok(desired),
            Err(err @ DriftError::Unparseable { .. }) => {
                problems.push(err.to_string());
                kms_render::render(settings, version, None).map_err(|err| chain(&err))
            }
            Err(err) => Err(chain(&err)),
        };
        let desired = desired.unwrap_or_else(|problem| {
            problems.push(problem);
            None
        });

        let desired_yaml = desired.as_ref().map(|rendered| rendered.yaml.as_slice());
        let mut status = Self::measure(settings.enabled, installed.bytes(), desired_yaml, options);
        problems.append(&mut status.problems);
        status.problems = problems;
        status.warnings.clone_from(&installation.warnings);
        status.add_preflight(preflight);
        if let Some(Rendered { config, .. }) = &desired {
            status.problems.extend(check_kept_sockets(&options.root, settings, config));
        }
        status
    }

    /// The drift half: `installed` against `desired` (either may be absent), with a problem
    /// naming the file when they differ. Socket, plugin and warnings stay empty.
    pub fn measure(
        kms_enabled: bool,
        installed: Option<&[u8]>,
        desired: Option<&[u8]>,
        options: &StatusOptions,
    ) -> Self {
        let measured = drift::compare(installed, desired);
        let problems =
            drift_problem(&measured, &options.encryption_config, options.repair.as_deref())
                .into_iter()
                .collect();
        Self {
            kms_enabled,
            drift: measured.is_drifted(),
            desired_hash: measured.desired_hash,
            installed_hash: measured.installed_hash,
            diff: measured.diff,
            socket: None,
            plugin: None,
            problems,
            warnings: Vec::new(),
        }
    }

    /// The preflight half: the socket and plugin health it found, its problems and warnings.
    pub fn add_preflight(&mut self, preflight: &Preflight) {
        self.socket.clone_from(&preflight.socket);
        self.plugin = preflight.plugin.as_ref().map(PluginHealth::from);
        self.problems.extend(preflight.problems.iter().cloned());
        self.warnings.extend(preflight.warnings.iter().cloned());
    }

    /// Whether nothing makes the answer "no".
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The problem a drift is, naming the file at `host_path`; `None` without drift.
fn drift_problem(
    measured: &drift::Drift,
    host_path: &Path,
    repair: Option<&str>,
) -> Option<String> {
    if !measured.is_drifted() {
        return None;
    }
    let path = host_path.display();
    let problem = match (&measured.installed_hash, &measured.desired_hash) {
        (None, _) => format!("nothing is installed at {path}"),
        (Some(_), None) => return Some(format!("{path} is installed but no file can be rendered")),
        (Some(_), Some(_)) => format!("{path} differs from the desired file (drift)"),
    };
    Some(match repair {
        Some(repair) => format!("{problem}: {repair}"),
        None => problem,
    })
}

/// `err` and its causes, as one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(repair: Option<&str>) -> StatusOptions {
        StatusOptions { repair: repair.map(str::to_owned), ..StatusOptions::default() }
    }

    #[test]
    fn drift_problems_name_the_file_and_the_repair() {
        let path = DEFAULT_ENCRYPTION_CONFIG;
        let status = Status::measure(true, None, Some(b"a\n"), &options(Some("run ucp-kms apply")));
        assert!(status.drift);
        assert_eq!(status.problems, [format!("nothing is installed at {path}: run ucp-kms apply")]);

        let status = Status::measure(true, Some(b"b\n"), Some(b"a\n"), &options(None));
        assert_eq!(status.problems, [format!("{path} differs from the desired file (drift)")]);
        assert!(status.diff.contains("\n-b\n+a\n"), "{}", status.diff);

        let status = Status::measure(false, Some(b"b\n"), None, &options(Some("x")));
        assert_eq!(status.problems, [format!("{path} is installed but no file can be rendered")]);

        let status = Status::measure(true, Some(b"a\n"), Some(b"a\n"), &options(Some("x")));
        assert!(!status.drift && status.is_ok() && status.diff.is_empty());
    }

    #[test]
    fn serializes_in_the_documented_shape() {
        let mut status = Status::measure(true, Some(b"a\n"), Some(b"a\n"), &options(None));
        status.plugin = Some(PluginHealth {
            healthy: true,
            version: Some("v2".to_owned()),
            key_id: Some("k1".to_owned()),
            latency_ms: 1.5,
            error: None,
        });
        let json = serde_json::to_string(&status).unwrap();
        let fields = [
            "kms_enabled",
            "desired_hash",
            "installed_hash",
            "drift",
            "diff",
            "socket",
            "plugin",
            "healthy",
            "version",
            "key_id",
            "latency_ms",
            "error",
            "problems",
            "warnings",
        ];
        let at: Vec<_> =
            fields.iter().map(|field| json.find(&format!("\"{field}\":")).unwrap()).collect();
        assert!(at.is_sorted(), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 9, "{json}");
        assert_eq!(
            status.plugin.unwrap().to_line(),
            "healthy, API version \"v2\", key ID \"k1\", 1.5 ms"
        );
    }
}
