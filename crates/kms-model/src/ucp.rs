//! Reading the KMS settings out of a whole UCP configuration file.
//!
//! The file is what `GET /api/ucp/config-toml` exports. Only the `kms_*` keys of
//! `[cluster_config]` are read; every other table and key is left alone, so a configuration
//! exported from any UCP or MKE release is accepted as it is. Every problem is reported at once,
//! each with its key path and the line and column of the offending value.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::duration::parse_go_duration;
use crate::lint::{GroupResource, validate_resource_names, validate_resource_overlap};
use crate::settings::{Endpoint, KmsApiVersion, KmsSettings};
use crate::{Diagnostic, Invalid, KubeVersion, MAX_DOCUMENT_BYTES, Validated};

/// The table holding the KMS keys.
const TABLE: &str = "cluster_config";

/// The KMS keys this version of ucp-kms understands.
const KNOWN_KEYS: &[&str] = &[
    "kms_enabled",
    "kms_name",
    "kms_endpoint",
    "kms_cachesize",
    "kms_api_version",
    "kms_timeout",
    "kms_resources",
];

/// The longest socket path `connect(2)` takes: `sun_path` is 108 bytes with the final NUL.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Reads and validates the KMS settings of a whole UCP configuration file.
///
/// A file without `[cluster_config]`, or without `kms_*` keys in it, has KMS disabled. When KMS
/// is disabled the keys present are still checked, but an empty `kms_name` or `kms_endpoint`
/// is fine, as UCP itself exports them.
///
/// # Errors
///
/// [`Invalid`] with every problem found (errors and warnings), each with key path, line and
/// column.
pub fn load_settings(toml: &str, version: KubeVersion) -> Result<Validated, Invalid> {
    if toml.len() > MAX_DOCUMENT_BYTES {
        let message = format!(
            "the file has {} bytes, more than the {MAX_DOCUMENT_BYTES} a UCP configuration can \
             reasonably have",
            toml.len()
        );
        return Err(Invalid { errors: vec![Diagnostic::error("", message)], warnings: vec![] });
    }
    let (root, syntax_errors) = DeTable::parse_recoverable(toml);
    if !syntax_errors.is_empty() {
        let lines = LineIndex::new(toml);
        let errors = syntax_errors
            .iter()
            .map(|err| {
                let message = format!("invalid TOML: {}", one_line(err.message()));
                lines.place(Diagnostic::error("", message), err.span())
            })
            .collect();
        return Err(Invalid { errors, warnings: vec![] });
    }

    let mut check = Checker { lines: LineIndex::new(toml), version, diagnostics: Vec::new() };
    let settings = check.cluster_config(root.get_ref());
    let (mut errors, mut warnings): (Vec<_>, Vec<_>) =
        check.diagnostics.into_iter().partition(|d| d.severity == crate::Severity::Error);
    errors.sort_by_key(|d| (d.line, d.column));
    warnings.sort_by_key(|d| (d.line, d.column));
    if errors.is_empty() {
        Ok(Validated { settings, warnings })
    } else {
        Err(Invalid { errors, warnings })
    }
}

/// [`load_settings`] for a file's raw bytes, which must be UTF-8 like every TOML file.
///
/// An empty file is refused here, although it is valid TOML: a configuration export never is
/// empty, so an empty file means the export or the copy failed.
///
/// # Errors
///
/// [`Invalid`] when the file is empty or not UTF-8 (placed at the first bad byte), and every
/// problem [`load_settings`] reports.
pub fn load_settings_bytes(bytes: &[u8], version: KubeVersion) -> Result<Validated, Invalid> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let message = "the file is empty; expected a UCP configuration (TOML) as \
                       GET /api/ucp/config-toml exports it";
        return Err(Invalid { errors: vec![Diagnostic::error("", message)], warnings: vec![] });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load_settings(text, version),
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            let text = std::str::from_utf8(valid).unwrap_or_default();
            let lines = LineIndex::new(text);
            let message = "the file is not UTF-8 text; a UCP configuration is TOML, which must be \
                           UTF-8";
            let at = text.len();
            let diagnostic = lines.place(Diagnostic::error("", message), Some(at..at));
            Err(Invalid { errors: vec![diagnostic], warnings: vec![] })
        }
    }
}

/// Byte offsets to 1-based lines and columns (columns count characters).
struct LineIndex<'t> {
    text: &'t str,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        Self { text }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn place(&self, diagnostic: Diagnostic, span: Option<Range<usize>>) -> Diagnostic {
        match span {
            Some(span) => {
                let (line, column) = self.position(span.start);
                diagnostic.at(line, column)
            }
            None => diagnostic,
        }
    }
}

/// A parser message on one line.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// A TOML value for messages: its type and, for scalars, the value.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("the string {}", quote(text)),
        DeValue::Integer(number) => format!("the integer {number}"),
        DeValue::Float(number) => format!("the float {number}"),
        DeValue::Boolean(flag) => format!("the boolean {flag}"),
        DeValue::Datetime(datetime) => format!("the datetime {datetime}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// A value in double quotes, with quotes, backslashes and control characters escaped.
fn quote(text: &str) -> String {
    format!("{text:?}")
}

/// One `kms_*` key as found, with the position of its value.
struct Entry<'a, 'i> {
    value: &'a Spanned<DeValue<'i>>,
}

impl Entry<'_, '_> {
    fn span(&self) -> Range<usize> {
        self.value.span()
    }
}

/// The `kms_*` keys of `[cluster_config]`.
#[derive(Default)]
struct Keys<'a, 'i> {
    enabled: Option<Entry<'a, 'i>>,
    name: Option<Entry<'a, 'i>>,
    endpoint: Option<Entry<'a, 'i>>,
    cachesize: Option<Entry<'a, 'i>>,
    api_version: Option<Entry<'a, 'i>>,
    timeout: Option<Entry<'a, 'i>>,
    resources: Option<Entry<'a, 'i>>,
}

/// Collects diagnostics while reading the settings.
struct Checker<'t> {
    lines: LineIndex<'t>,
    version: KubeVersion,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        let diagnostic = Diagnostic::error(format!("{TABLE}.{key}"), message);
        self.diagnostics.push(self.lines.place(diagnostic, span));
    }

    fn warning(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        let diagnostic = Diagnostic::warning(format!("{TABLE}.{key}"), message);
        self.diagnostics.push(self.lines.place(diagnostic, span));
    }

    fn wrong_type(&mut self, key: &str, entry: &Entry<'_, '_>, expected: &str) {
        let found = describe(entry.value.get_ref());
        self.error(key, Some(entry.span()), format!("must be {expected}, got {found}"));
    }

    fn cluster_config(&mut self, root: &DeTable<'_>) -> KmsSettings {
        let Some((key, table)) = root.iter().find(|(key, _)| key.get_ref() == TABLE) else {
            return KmsSettings::disabled();
        };
        let DeValue::Table(table) = table.get_ref() else {
            let found = describe(table.get_ref());
            let diagnostic = Diagnostic::error(TABLE, format!("must be a table, got {found}"));
            self.diagnostics.push(self.lines.place(diagnostic, Some(key.span())));
            return KmsSettings::disabled();
        };

        let mut keys = Keys::default();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let entry = Some(Entry { value });
            match name {
                "kms_enabled" => keys.enabled = entry,
                "kms_name" => keys.name = entry,
                "kms_endpoint" => keys.endpoint = entry,
                "kms_cachesize" => keys.cachesize = entry,
                "kms_api_version" => keys.api_version = entry,
                "kms_timeout" => keys.timeout = entry,
                "kms_resources" => keys.resources = entry,
                _ if name.starts_with("kms_") => self.warning(
                    name,
                    Some(key.span()),
                    format!("unknown KMS setting, ignored; known: {}", KNOWN_KEYS.join(", ")),
                ),
                _ => {}
            }
        }
        self.settings(&keys)
    }

    fn settings(&mut self, keys: &Keys<'_, '_>) -> KmsSettings {
        let mut settings = KmsSettings::disabled();
        settings.enabled = self.enabled(keys.enabled.as_ref());
        settings.cachesize = self.cachesize(keys.cachesize.as_ref());
        settings.api_version = self.api_version(keys.api_version.as_ref());
        settings.timeout = self.timeout(keys.timeout.as_ref());
        if let Some(resources) = self.resources(keys.resources.as_ref()) {
            settings.resources = resources;
        }
        let effective = settings.effective_api_version(self.version);
        settings.name = self.name(keys, settings.enabled, effective);
        settings.endpoint = self.endpoint(keys, settings.enabled);
        self.api_version_rules(keys, &settings);
        settings
    }

    fn enabled(&mut self, entry: Option<&Entry<'_, '_>>) -> bool {
        let Some(entry) = entry else { return false };
        match entry.value.get_ref() {
            DeValue::Boolean(flag) => *flag,
            _ => {
                self.wrong_type("kms_enabled", entry, "true or false");
                false
            }
        }
    }

    /// A string value, or `None` after reporting a wrong type.
    fn string<'e>(&mut self, key: &str, entry: &'e Entry<'_, '_>) -> Option<&'e str> {
        match entry.value.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            _ => {
                self.wrong_type(key, entry, "a string");
                None
            }
        }
    }

    fn name(&mut self, keys: &Keys<'_, '_>, enabled: bool, api: KmsApiVersion) -> String {
        let key = "kms_name";
        let name = match &keys.name {
            Some(entry) => match self.string(key, entry) {
                Some(name) => name.to_owned(),
                None => return String::new(),
            },
            None => String::new(),
        };
        let span = keys.name.as_ref().map(Entry::span);

        if name.is_empty() {
            if enabled {
                let at = span.or_else(|| keys.enabled.as_ref().map(Entry::span));
                self.error(
                    key,
                    at,
                    "is required when kms_enabled = true: the KMS provider name, like \"vault\"",
                );
            }
            return name;
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                key,
                span.clone(),
                format!("must not contain whitespace or control characters, got {}", quote(&name)),
            );
        }
        if api == KmsApiVersion::V2 && name.contains(':') {
            self.error(
                key,
                span,
                format!(
                    "must not contain ':' with KMS v2 (kube-apiserver refuses it), got {}",
                    quote(&name)
                ),
            );
        }
        name
    }

    fn endpoint(&mut self, keys: &Keys<'_, '_>, enabled: bool) -> Option<Endpoint> {
        let key = "kms_endpoint";
        let text = match &keys.endpoint {
            Some(entry) => self.string(key, entry)?,
            None => "",
        };
        let span = keys.endpoint.as_ref().map(Entry::span);
        if text.is_empty() {
            if enabled {
                let at = span.or_else(|| keys.enabled.as_ref().map(Entry::span));
                self.error(
                    key,
                    at,
                    "is required when kms_enabled = true: the host path of the KMS plugin's \
                     socket, like \"/run/kmsplugin/socket.sock\"",
                );
            }
            return None;
        }
        match parse_endpoint(text) {
            Ok(endpoint) => Some(endpoint),
            Err(message) => {
                self.error(key, span, message);
                None
            }
        }
    }

    fn cachesize(&mut self, entry: Option<&Entry<'_, '_>>) -> i32 {
        let Some(entry) = entry else { return 0 };
        let DeValue::Integer(number) = entry.value.get_ref() else {
            self.wrong_type("kms_cachesize", entry, "an integer (0 for the Kubernetes default)");
            return 0;
        };
        match i32::from_str_radix(number.as_str(), number.radix()) {
            Ok(size) => size,
            Err(_) => {
                self.error(
                    "kms_cachesize",
                    Some(entry.span()),
                    format!("must be an integer from {} to {}, got {number}", i32::MIN, i32::MAX),
                );
                0
            }
        }
    }

    fn api_version(&mut self, entry: Option<&Entry<'_, '_>>) -> Option<KmsApiVersion> {
        let entry = entry?;
        match self.string("kms_api_version", entry)? {
            "v1" => Some(KmsApiVersion::V1),
            "v2" => Some(KmsApiVersion::V2),
            other => {
                let message = format!("must be \"v1\" or \"v2\", got {}", quote(other));
                self.error("kms_api_version", Some(entry.span()), message);
                None
            }
        }
    }

    fn timeout(&mut self, entry: Option<&Entry<'_, '_>>) -> Option<std::time::Duration> {
        let entry = entry?;
        let text = self.string("kms_timeout", entry)?;
        let span = Some(entry.span());
        match parse_go_duration(text) {
            Ok(duration) if duration.is_positive() => duration.to_std(),
            Ok(_) => {
                let message = format!("must be longer than 0, got {}", quote(text));
                self.error("kms_timeout", span, message);
                None
            }
            Err(err) => {
                let message = format!(
                    "must be a duration like \"3s\" or \"1m30s\" (units ns, us, ms, s, m, h), got \
                     {} ({err})",
                    quote(text)
                );
                self.error("kms_timeout", span, message);
                None
            }
        }
    }

    fn resources(&mut self, entry: Option<&Entry<'_, '_>>) -> Option<Vec<String>> {
        let key = "kms_resources";
        let entry = entry?;
        let DeValue::Array(items) = entry.value.get_ref() else {
            self.wrong_type(key, entry, "an array of resource names, like [\"secrets\"]");
            return None;
        };
        if items.is_empty() {
            let message = "must name at least one resource, like [\"secrets\"]";
            self.error(key, Some(entry.span()), message);
            return None;
        }

        let mut names = Vec::with_capacity(items.len());
        let mut spans = Vec::with_capacity(items.len());
        let mut usable = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("{key}[{i}]");
            match item.get_ref() {
                DeValue::String(name) if !name.is_empty() => {
                    names.push(name.to_string());
                    spans.push(item.span());
                }
                DeValue::String(_) => {
                    let message = "must not be empty; a resource name is like \"secrets\" or \
                                   \"deployments.apps\"";
                    self.error(&field, Some(item.span()), message);
                    usable = false;
                }
                other => {
                    let message = format!("must be a string, got {}", describe(other));
                    self.error(&field, Some(item.span()), message);
                    usable = false;
                }
            }
        }
        if !usable {
            return None;
        }

        let before = self.diagnostics.len();
        if self.version.checks_resource_names() {
            for error in validate_resource_overlap(&names, key) {
                self.error(key, Some(entry.span()), error.message);
            }
            for error in validate_resource_names(&names, key) {
                let span = element_index(&error.field).and_then(|i| spans.get(i).cloned());
                self.error(&error.field, span, error.message);
            }
        } else {
            for (i, name) in names.iter().enumerate() {
                if GroupResource::parse(name).resource == "*" || name.ends_with(".*") {
                    let message = format!(
                        "wildcards need Kubernetes 1.27 or later, the target is {}; got {}",
                        self.version,
                        quote(name)
                    );
                    self.error(&format!("{key}[{i}]"), Some(spans[i].clone()), message);
                }
            }
        }
        (self.diagnostics.len() == before).then_some(names)
    }

    /// The rules that tie the API version to the target version and the other keys.
    fn api_version_rules(&mut self, keys: &Keys<'_, '_>, settings: &KmsSettings) {
        let explicit_span = keys.api_version.as_ref().map(Entry::span);
        if settings.api_version == Some(KmsApiVersion::V2) {
            if !self.version.has_kms_v2() {
                self.error(
                    "kms_api_version",
                    explicit_span.clone(),
                    format!(
                        "KMS v2 needs Kubernetes 1.25 or later, the target is {}; use \"v1\" or \
                         a newer --kubernetes-version",
                        self.version
                    ),
                );
            }
            if settings.cachesize != 0 {
                let span = keys.cachesize.as_ref().map(Entry::span);
                self.error(
                    "kms_cachesize",
                    span,
                    format!(
                        "must be 0 with kms_api_version = \"v2\": KMS v2 has no DEK cache size, \
                         got {}",
                        settings.cachesize
                    ),
                );
            }
            if settings.enabled && self.version.has_kms_v2() && !self.version.kms_v2_gate_default()
            {
                self.warning(
                    "kms_api_version",
                    explicit_span.clone(),
                    format!(
                        "KMS v2 is alpha in Kubernetes {}: kube-apiserver needs \
                         --feature-gates=KMSv2=true",
                        self.version
                    ),
                );
            }
        }

        let effective = settings.effective_api_version(self.version);
        if settings.enabled && effective == KmsApiVersion::V1 && self.version.kms_v1_is_deprecated()
        {
            let (key, span) = if let Some(span) = explicit_span {
                ("kms_api_version", Some(span))
            } else if settings.cachesize != 0 {
                ("kms_cachesize", keys.cachesize.as_ref().map(Entry::span))
            } else {
                ("kms_enabled", keys.enabled.as_ref().map(Entry::span))
            };
            let mut message = String::from(
                "KMS v1 is deprecated since Kubernetes 1.28; use kms_api_version = \"v2\" (with \
                 kms_cachesize = 0) once the plugin speaks KMS v2",
            );
            if self.version.kms_v1_needs_gate() {
                message.push_str(&format!(
                    "; kube-apiserver {} loads KMS v1 only with --feature-gates=KMSv1=true",
                    self.version
                ));
            }
            self.warning(key, span, message);
        }
    }
}

/// The index of `kms_resources[3]`.
fn element_index(field: &str) -> Option<usize> {
    field.strip_suffix(']')?.rsplit_once('[')?.1.parse().ok()
}

/// What `kms_endpoint` accepts, for messages.
const ENDPOINT_FORMS: &str = "an absolute path, a unix:// URL or an abstract @name";

/// Parses `kms_endpoint`: `/run/p.sock`, `unix:///run/p.sock`, `@name` or `unix:///@name`.
pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let got = quote(text);
    if let Some(name) = text.strip_prefix('@') {
        return abstract_name(name, &got);
    }
    if let Some(rest) = text.strip_prefix("unix://") {
        if let Some(name) = rest.strip_prefix("/@") {
            return abstract_name(name, &got);
        }
        if !rest.starts_with('/') {
            return Err(format!(
                "a unix:// URL needs an absolute path after \"unix://\" (three slashes, like \
                 \"unix:///run/kms.sock\" or \"unix:///@name\"), got {got}"
            ));
        }
        return socket_path(rest, &got);
    }
    if text.starts_with('/') {
        return socket_path(text, &got);
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "unsupported scheme {}: kube-apiserver reaches KMS plugins only over UNIX sockets; \
             must be {ENDPOINT_FORMS}, got {got}",
            quote(scheme)
        ));
    }
    Err(format!("must be {ENDPOINT_FORMS}, got {got}"))
}

fn socket_path(path: &str, got: &str) -> Result<Endpoint, String> {
    check_socket_text(path, got)?;
    if path.split('/').any(|component| component == "..") {
        return Err(format!("must not contain \"..\" components, got {got}"));
    }
    if path.ends_with('/') {
        return Err(format!("must name the socket file, not a directory, got {got}"));
    }
    Ok(Endpoint::Path(path.to_owned()))
}

fn abstract_name(name: &str, got: &str) -> Result<Endpoint, String> {
    if name.is_empty() {
        return Err(format!("an abstract socket needs a name after '@', got {got}"));
    }
    check_socket_text(name, got)?;
    Ok(Endpoint::Abstract(name.to_owned()))
}

/// Checks shared by paths and abstract names: what `connect(2)` and the `unix://` URL that
/// kube-apiserver parses can carry.
fn check_socket_text(text: &str, got: &str) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(format!("must not contain control characters, got {got}"));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#' | '%')) {
        return Err(format!(
            "must not contain '{c}', which changes the meaning of the unix:// URL kube-apiserver \
             reads, got {got}"
        ));
    }
    if text.len() > MAX_SOCKET_PATH_BYTES {
        return Err(format!(
            "is {} bytes long, but a UNIX socket address holds at most {MAX_SOCKET_PATH_BYTES}; \
             got {got}",
            text.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
