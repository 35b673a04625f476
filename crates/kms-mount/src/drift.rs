//! Drift: does the installed EncryptionConfiguration match the one the settings call for?
//!
//! The desired file is the render of the settings with the transition from the file ucp-kms
//! last installed ([`Installation::start`]): the installed file, unless it differs from the
//! record of what ucp-kms installed there (a hand edit), in which case the recorded file. So a
//! hand edit that removed a provider kept for reads shows up as drift and is undone by the next
//! install, and so does a provider added by hand in front of the one ucp-kms writes with.

use kms_model::encryption::{Key, ProviderConfiguration};
use kms_model::{EncryptionConfiguration, KmsSettings, KubeVersion, LintError};
use kms_render::{RenderError, Rendered};
use similar::{ChangeTag, TextDiff};

use crate::install::{InstallError, OnDisk, OwnedFile};

/// What is installed, as far as ucp-kms can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installed {
    /// No file is installed.
    Nothing,
    /// A file kube-apiserver of the target version would decode.
    Parsed {
        /// Its bytes.
        bytes: Vec<u8>,
        /// Its content.
        config: EncryptionConfiguration,
    },
    /// A file that cannot be decoded; it must never be lost, as it may be all that can read
    /// the stored data.
    Unparseable {
        /// Its bytes.
        bytes: Vec<u8>,
        /// Why it cannot be decoded.
        errors: Vec<LintError>,
    },
}

impl Installed {
    /// Reads and decodes the owned file as kube-apiserver of `version` would.
    ///
    /// # Errors
    ///
    /// [`InstallError`] when the file exists but cannot be read; a file that cannot be decoded
    /// is [`Installed::Unparseable`], not an error.
    pub fn read(file: &OwnedFile, version: KubeVersion) -> Result<Self, InstallError> {
        Ok(Self::from_bytes(file.read()?, version))
    }

    /// Decodes `bytes`, when there are any, as kube-apiserver of `version` would.
    pub fn from_bytes(bytes: Option<Vec<u8>>, version: KubeVersion) -> Self {
        let Some(bytes) = bytes else { return Self::Nothing };
        match kms_model::decode(&bytes, version) {
            Ok(config) => Self::Parsed { bytes, config },
            Err(errors) => Self::Unparseable { bytes, errors },
        }
    }

    /// The installed bytes, if a file is installed.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Nothing => None,
            Self::Parsed { bytes, .. } | Self::Unparseable { bytes, .. } => Some(bytes),
        }
    }

    /// The decoded configuration, if a decodable file is installed.
    pub fn config(&self) -> Option<&EncryptionConfiguration> {
        match self {
            Self::Parsed { config, .. } => Some(config),
            Self::Nothing | Self::Unparseable { .. } => None,
        }
    }
}

/// What is installed, and the file ucp-kms last installed when the two differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installation {
    /// The file on disk.
    pub installed: Installed,
    /// The file ucp-kms last installed, decoded, when the file on disk differs from it: a hand
    /// edit or deletion, which the next install undoes. Never [`Installed::Nothing`] or
    /// [`Installed::Unparseable`].
    pub recorded: Option<Installed>,
    /// Why the record was not used, when it could not be.
    pub warnings: Vec<String>,
}

impl Installation {
    /// Reads the owned file and its record, decoded as kube-apiserver of `version` would.
    ///
    /// # Errors
    ///
    /// [`InstallError`] when a file exists but cannot be read.
    pub fn read(file: &OwnedFile, version: KubeVersion) -> Result<Self, InstallError> {
        Ok(Self::from_on_disk(file.read_on_disk()?, version, file))
    }

    /// Decodes what [`OwnedFile::read_on_disk`] found. A recorded file that cannot be decoded
    /// is not used: the transition then starts from the installed file, with a warning.
    pub fn from_on_disk(on_disk: OnDisk, version: KubeVersion, file: &OwnedFile) -> Self {
        let hand_edited = on_disk.is_hand_edited();
        let installed = Installed::from_bytes(on_disk.installed, version);
        let mut warnings = Vec::new();
        let recorded = match on_disk.recorded.filter(|_| hand_edited) {
            None => None,
            Some(bytes) => match Installed::from_bytes(Some(bytes), version) {
                parsed @ Installed::Parsed { .. } => Some(parsed),
                _ => {
                    warnings.push(format!(
                        "\"{}\" differs from the file ucp-kms last installed, but the record \
                         {:?} beside it cannot be decoded for Kubernetes {version}; the \
                         transition starts from the installed file",
                        file.host_path().display(),
                        file.record_path().file_name().unwrap_or_default()
                    ));
                    None
                }
            },
        };
        Self { installed, recorded, warnings }
    }

    /// Where the transition to the desired file starts: the recorded file after a hand edit,
    /// else the installed one.
    pub fn start(&self) -> &Installed {
        self.recorded.as_ref().unwrap_or(&self.installed)
    }

    /// Whether the installed file is a hand edit (or deletion) of the one ucp-kms installed.
    pub fn is_hand_edited(&self) -> bool {
        self.recorded.is_some()
    }
}

/// Why the desired file cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    /// The installed file cannot be decoded, so no safe transition starts from it.
    #[error(
        "the installed EncryptionConfiguration cannot be decoded ({}), so no transition can \
         keep its providers",
        join(errors)
    )]
    Unparseable {
        /// Why it cannot be decoded.
        errors: Vec<LintError>,
    },
    /// The settings cannot be rendered with the transition from the installed file.
    #[error("cannot render the EncryptionConfiguration")]
    Render(#[source] RenderError),
}

/// The file the settings call for, rendered with the transition from `installed`; `None` when
/// KMS is off and nothing is installed. Pass [`Installation::start`] to undo hand edits.
///
/// # Errors
///
/// [`DriftError::Unparseable`] when the installed file cannot be decoded,
/// [`DriftError::Render`] when the settings cannot be rendered from it.
pub fn desired(
    settings: &KmsSettings,
    version: KubeVersion,
    installed: &Installed,
) -> Result<Option<Rendered>, DriftError> {
    if let Installed::Unparseable { errors, .. } = installed {
        return Err(DriftError::Unparseable { errors: errors.clone() });
    }
    kms_render::render(settings, version, installed.config()).map_err(DriftError::Render)
}

/// The installed file measured against the desired one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// `sha256:<hex>` of the desired file; `None` when no file is needed.
    pub desired_hash: Option<String>,
    /// `sha256:<hex>` of the installed file; `None` when nothing is installed.
    pub installed_hash: Option<String>,
    /// A unified diff from the installed file to the desired one; empty without drift.
    pub diff: String,
}

impl Drift {
    /// Whether the installed file is not the desired one.
    pub fn is_drifted(&self) -> bool {
        self.desired_hash != self.installed_hash
    }
}

/// Measures `installed` against `desired` (either may be absent).
pub fn compare(installed: Option<&[u8]>, desired: Option<&[u8]>) -> Drift {
    let desired_hash = desired.map(kms_render::config_hash);
    let installed_hash = installed.map(kms_render::config_hash);
    let diff = if desired_hash == installed_hash {
        String::new()
    } else {
        unified_diff(
            installed.unwrap_or_default(),
            desired.unwrap_or_default(),
            "installed",
            "desired",
        )
    };
    Drift { desired_hash, installed_hash, diff }
}

/// A unified diff of two files, `--- old_name` / `+++ new_name`, three lines of context.
///
/// Key material never shows: the value of every `secret` key (a local provider's key) reads
/// `REDACTED`, also when a hand edit spread it over several lines (a block scalar, a quoted or
/// plain scalar continued below its key): every line below such a key that is indented deeper
/// reads `REDACTED` too. A changed key still shows as a removed and an added line.
pub fn unified_diff(old: &[u8], new: &[u8], old_name: &str, new_name: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    // Redacted with the whole file in view, so a continuation line is known as one even when
    // its key is outside the hunk's context.
    let old_lines = redact_lines(diff.iter_old_slices());
    let new_lines = redact_lines(diff.iter_new_slices());
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        if out.is_empty() {
            out.push_str(&format!("--- {old_name}\n+++ {new_name}\n"));
        }
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let line = match change.tag() {
                ChangeTag::Delete => change.old_index().map(|at| &old_lines[at]),
                ChangeTag::Equal | ChangeTag::Insert => change.new_index().map(|at| &new_lines[at]),
            };
            out.push_str(&change.tag().to_string());
            out.push_str(line.map_or("", String::as_str));
            if change.missing_newline() {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// The lines of a file with key material redacted: the value of every `secret` key, and every
/// non-empty line below one whose value goes on there that is indented deeper than the key.
fn redact_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    // The column of a `secret` key whose value continues on the lines below.
    let mut continued: Option<usize> = None;
    let mut redacted = Vec::new();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        if line.trim().is_empty() {
            redacted.push(line.to_owned());
            continue;
        }
        if continued.is_some_and(|column| indent > column) {
            let ending = &line[line.trim_end_matches(['\n', '\r']).len()..];
            redacted.push(format!("{}REDACTED{ending}", &line[..indent]));
            continue;
        }
        continued = continued_secret(line);
        redacted.push(redact_secrets(line));
    }
    redacted
}

/// The column of the `secret` key of `content` when its value goes on below it: nothing after
/// the colon, a block scalar (`|`, `>-`), or a quoted scalar left open.
fn continued_secret(content: &str) -> Option<usize> {
    let value_start = secret_value_start(content)?;
    let value = content[value_start..].trim();
    let value = value.split(" #").next().unwrap_or_default().trim();
    let open_quote = |quote: char| value.starts_with(quote) && !value[1..].contains(quote);
    let continues =
        value.is_empty() || value.starts_with(['|', '>']) || open_quote('"') || open_quote('\'');
    continues.then(|| content.find("secret").unwrap_or_default())
}

/// `secret: c2VjcmV0` as `secret: REDACTED`, in block style, flow style (`{name: k, secret: x}`)
/// and JSON (`"secret": "x"`) alike.
fn redact_secrets(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(value_start) = secret_value_start(rest) {
        out.push_str(&rest[..value_start]);
        out.push_str(" REDACTED");
        let value = &rest[value_start..];
        let end = value.find([',', '}', '\n']).unwrap_or(value.len());
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Where the value of the first `secret` key of `text` starts: right after its colon.
fn secret_value_start(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("secret") {
        let at = from + found;
        from = at + "secret".len();
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| !matches!(c, ' ' | '\t' | '{' | ',' | '"' | '\'' | '-' | '+')) {
            continue;
        }
        let after = text[from..].trim_start_matches(['"', '\'']).trim_start();
        if let Some(value) = after.strip_prefix(':') {
            return Some(text.len() - value.len());
        }
    }
    None
}

/// The write providers of `current` that `replacement` no longer lists for the same resources,
/// each as `kms "name" (v2) for secrets`.
///
/// The first provider of each resource entry is the one kube-apiserver writes with, so the
/// data it wrote becomes unreadable when a replacement (a rollback, a hand-made file) drops it.
/// A kms provider is matched by name and API version, the parts of its storage prefix; a
/// local-key provider by type and first key name; identity by type.
pub fn dropped_write_providers(
    current: &EncryptionConfiguration,
    replacement: &EncryptionConfiguration,
) -> Vec<String> {
    let mut dropped = Vec::new();
    for entry in &current.resources {
        let Some(writer) = entry.providers.first() else { continue };
        let key = storage_key(writer);
        for resource in &entry.resources {
            let kept = replacement
                .resources
                .iter()
                .find(|candidate| candidate.resources.contains(resource))
                .is_some_and(|candidate| {
                    candidate.providers.iter().any(|provider| storage_key(provider) == key)
                });
            if !kept {
                dropped.push(format!("{key} for {resource}"));
            }
        }
    }
    dropped
}

/// What names a provider's stored data: `kms "vault" (v2)`, `aescbc key "key1"`, `identity`.
fn storage_key(provider: &ProviderConfiguration) -> String {
    let first_key = |keys: &[Key]| keys.first().map(|key| key.name.clone()).unwrap_or_default();
    if let Some(kms) = &provider.kms {
        let api_version = match kms.api_version.as_deref() {
            None | Some("") => "v1",
            Some(other) => other,
        };
        format!("kms {:?} ({api_version})", kms.name)
    } else if let Some(aes) = &provider.aesgcm {
        format!("aesgcm key {:?}", first_key(&aes.keys))
    } else if let Some(aes) = &provider.aescbc {
        format!("aescbc key {:?}", first_key(&aes.keys))
    } else if let Some(secretbox) = &provider.secretbox {
        format!("secretbox key {:?}", first_key(&secretbox.keys))
    } else {
        "identity".to_owned()
    }
}

fn join(errors: &[LintError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_are_no_drift() {
        let drift = compare(Some(b"a\n"), Some(b"a\n"));
        assert!(!drift.is_drifted());
        assert!(drift.diff.is_empty());
        assert!(drift.desired_hash.as_deref().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn a_changed_line_is_drift_with_a_diff() {
        let drift = compare(Some(b"a\nb\n"), Some(b"a\nc\n"));
        assert!(drift.is_drifted());
        assert_eq!(drift.diff, "--- installed\n+++ desired\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
    }

    fn config(entries: &[(&str, Vec<ProviderConfiguration>)]) -> EncryptionConfiguration {
        EncryptionConfiguration::new(
            entries
                .iter()
                .map(|(resource, providers)| kms_model::encryption::ResourceConfiguration {
                    resources: vec![(*resource).to_owned()],
                    providers: providers.clone(),
                })
                .collect(),
        )
    }

    fn kms(name: &str, api_version: Option<&str>) -> ProviderConfiguration {
        ProviderConfiguration::kms(kms_model::encryption::KmsConfiguration {
            name: name.to_owned(),
            api_version: api_version.map(str::to_owned),
            ..Default::default()
        })
    }

    #[test]
    fn a_replacement_without_the_write_provider_drops_it() {
        let identity = ProviderConfiguration::identity();
        let current = config(&[("secrets", vec![kms("next", Some("v2")), kms("old", None)])]);
        let without = config(&[("secrets", vec![kms("old", Some("v1")), identity.clone()])]);
        assert_eq!(dropped_write_providers(&current, &without), ["kms \"next\" (v2) for secrets"]);

        let with = config(&[("secrets", vec![identity.clone(), kms("next", Some("v2"))])]);
        assert!(dropped_write_providers(&current, &with).is_empty());

        let other_version = config(&[("secrets", vec![kms("next", Some("v1"))])]);
        assert_eq!(dropped_write_providers(&current, &other_version).len(), 1);

        let elsewhere = config(&[("configmaps", vec![kms("next", Some("v2"))])]);
        assert_eq!(dropped_write_providers(&current, &elsewhere).len(), 1);
    }

    #[test]
    fn diffs_never_show_key_material() {
        let old = b"keys:\n- name: key1\n  secret: c2VjcmV0LW9uZQ==\nother: 1\n";
        let new = b"keys:\n- name: key1\n  secret: c2VjcmV0LXR3bw==\nother: 2\n";
        let diff = unified_diff(old, new, "a", "b");
        assert!(!diff.contains("c2VjcmV0"), "{diff}");
        assert!(diff.contains("\n-  secret: REDACTED\n"), "{diff}");
        assert!(diff.contains("\n+  secret: REDACTED\n"), "{diff}");
        assert!(diff.contains("\n-other: 1\n"), "{diff}");

        assert_eq!(
            redact_secrets("- {name: k, secret: abc=}\n"),
            "- {name: k, secret: REDACTED}\n"
        );
        assert_eq!(
            redact_secrets(r#"{"name": "k", "secret": "abc"}"#),
            r#"{"name": "k", "secret": REDACTED}"#
        );
        assert_eq!(redact_secrets("  name: secretbox-key\n"), "  name: secretbox-key\n");
        assert_eq!(redact_secrets("- secretbox:\n"), "- secretbox:\n");
        assert_eq!(redact_secrets("-  secret: x\n"), "-  secret: REDACTED\n");
    }

    #[test]
    fn diffs_never_show_key_material_spread_over_lines() {
        let old = b"keys:\n- name: key1\n  secret: c2VjcmV0LW9uZQ==\nother: 1\n";
        let forms: [&[u8]; 4] = [
            b"keys:\n- name: key1\n  secret: |\n    c2VjcmV0LXR3bw==\n    bW9yZQ==\nother: 2\n",
            b"keys:\n- name: key1\n  secret: >-\n    c2VjcmV0LXR3bw==\nother: 2\n",
            b"keys:\n- name: key1\n  secret:\n    c2VjcmV0LXR3bw==\nother: 2\n",
            b"keys:\n- name: key1\n  secret: \"c2VjcmV0\n    LXR3bw==\"\nother: 2\n",
        ];
        for new in forms {
            for diff in [unified_diff(old, new, "a", "b"), unified_diff(new, old, "a", "b")] {
                for leak in ["c2VjcmV0", "LXR3bw", "bW9yZQ"] {
                    assert!(!diff.contains(leak), "{diff}");
                }
                assert!(diff.contains("other: 2\n"), "{diff}");
            }
        }
        // A key's siblings and what follows the secret stay readable.
        let diff = unified_diff(old, forms[0], "a", "b");
        assert!(diff.contains("\n+    REDACTED\n"), "{diff}");
        assert!(diff.contains("\n-other: 1\n"), "{diff}");
        assert!(diff.contains(" - name: key1\n"), "{diff}");

        // A change deep in a long block scalar, its key beyond the hunk's context.
        let lines: String = (0..10).map(|i| format!("    bGluZS{i}\n")).collect();
        let long_old = format!("keys:\n- name: key1\n  secret: |\n{lines}other: 1\n");
        let long_new = long_old.replace("bGluZS7", "Y2hhbmdl");
        let diff = unified_diff(long_old.as_bytes(), long_new.as_bytes(), "a", "b");
        assert!(!diff.contains("bGluZS") && !diff.contains("Y2hhbmdl"), "{diff}");
        assert!(!diff.contains("secret"), "the key is outside the context: {diff}");
        assert!(diff.contains("\n-    REDACTED\n+    REDACTED\n"), "{diff}");
    }

    #[test]
    fn without_key_material_the_diff_is_the_plain_unified_diff() {
        for (old, new) in [("x\ny\nz\n", "x\nq\nz\n"), ("x\ny\nz", "x\nq\nz"), ("a\n", "")] {
            let plain = TextDiff::from_lines(old, new)
                .unified_diff()
                .context_radius(3)
                .header("installed", "desired")
                .to_string();
            assert_eq!(unified_diff(old.as_bytes(), new.as_bytes(), "installed", "desired"), plain);
        }
        assert_eq!(unified_diff(b"same\n", b"same\n", "a", "b"), "");
    }

    #[test]
    fn nothing_installed_and_nothing_needed_is_no_drift() {
        let drift = compare(None, None);
        assert!(!drift.is_drifted());
        assert_eq!(drift.installed_hash, None);
        assert!(compare(None, Some(b"x\n")).is_drifted());
    }
}
