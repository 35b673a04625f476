//! Decoding an EncryptionConfiguration the way kube-apiserver does (rules 3 to 6).
//!
//! kube-apiserver turns YAML into JSON and decodes the JSON into its Go types: types are checked
//! as JSON would check them, `null` leaves a field unset, and from 1.31 on unknown and duplicate
//! fields are rejected ("strict decoding"); before, unknown fields are ignored and the last of
//! duplicate fields wins.

use crate::encryption::{
    API_VERSION, AesConfiguration, EncryptionConfiguration, IdentityConfiguration, KIND, Key,
    KmsConfiguration, LEGACY_API_VERSION, LEGACY_KIND, ProviderConfiguration,
    ResourceConfiguration, Secret, SecretboxConfiguration,
};
use crate::lint::node::{self, MAX_NODES, Node, ParseError};
use crate::{KubeVersion, LintError, MAX_DOCUMENT_BYTES};

/// Decodes a file as kube-apiserver of `version` would.
pub(crate) fn decode(
    bytes: &[u8],
    version: KubeVersion,
) -> Result<EncryptionConfiguration, Vec<LintError>> {
    let fail = |message: String| Err(vec![LintError::new("", message)]);
    if bytes.is_empty() {
        return fail(
            "the file is empty; kube-apiserver refuses an empty encryption provider \
                     configuration file"
                .to_owned(),
        );
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return fail(format!(
            "the file has {} bytes, more than the {MAX_DOCUMENT_BYTES} an EncryptionConfiguration \
             can reasonably have",
            bytes.len()
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            return fail(format!(
                "the file is not UTF-8 text (invalid byte at offset {}); expected YAML or JSON",
                err.valid_up_to()
            ));
        }
    };
    let root = match node::parse(text) {
        Ok(root) => root,
        Err(ParseError::TooLarge) => {
            return fail(format!(
                "the document expands to more than {MAX_NODES} values (YAML aliases?); \
                 refusing to decode it"
            ));
        }
        Err(ParseError::Syntax(message)) => {
            return fail(format!("error decoding the file as YAML or JSON: {message}"));
        }
    };

    let mut decoder = Decoder { version, errors: Vec::new() };
    let config = decoder.root(&root);
    match config {
        Some(config) if decoder.errors.is_empty() => Ok(config),
        _ => Err(decoder.errors),
    }
}

/// The accepted `apiVersion`/`kind` pairs, for messages.
const ACCEPTED_KINDS: &str = "expected \"apiVersion: apiserver.config.k8s.io/v1\" with \
                              \"kind: EncryptionConfiguration\" (or the legacy \"apiVersion: v1\" \
                              with \"kind: EncryptionConfig\")";

/// Walks the tree, collecting every problem.
struct Decoder {
    version: KubeVersion,
    errors: Vec<LintError>,
}

impl Decoder {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(LintError::new(field, message));
    }

    fn wrong_type(&mut self, field: &str, expected: &str, found: &Node) {
        self.error(field, format!("expected {expected}, got {}", found.type_name()));
    }

    /// Rule 4 (type metadata) and the top-level fields.
    fn root(&mut self, root: &Node) -> Option<EncryptionConfiguration> {
        let entries = match root {
            Node::Map(entries) => entries,
            Node::Null => {
                self.error("kind", format!("kind is missing; {ACCEPTED_KINDS}"));
                return None;
            }
            other => {
                let found = other.type_name();
                self.error("", format!("expected an object with apiVersion and kind, got {found}"));
                return None;
            }
        };

        let kind = self.type_meta_field(entries, "kind")?;
        let api_version = self.type_meta_field(entries, "apiVersion")?;
        let (Some(kind), Some(api_version)) = (kind, api_version) else {
            return None;
        };
        let known = (api_version.as_str(), kind.as_str()) == (API_VERSION, KIND)
            || (api_version.as_str(), kind.as_str()) == (LEGACY_API_VERSION, LEGACY_KIND);
        if !known {
            self.error(
                "kind",
                format!(
                    "no kind \"{kind}\" is registered for version \"{api_version}\"; \
                     {ACCEPTED_KINDS}"
                ),
            );
            return None;
        }

        let mut config = EncryptionConfiguration { api_version, kind, resources: Vec::new() };
        for (name, value) in self.fields("", entries, &["apiVersion", "kind", "resources"]) {
            if name == "resources" {
                config.resources = self.list(value, "resources", Self::resource_configuration);
            }
        }
        Some(config)
    }

    /// `kind` or `apiVersion`: `None` when the document is unusable, `Some(None)` when missing.
    fn type_meta_field(&mut self, entries: &[(Node, Node)], name: &str) -> Option<Option<String>> {
        let value = entries.iter().rev().find(|(key, _)| key.as_key().as_deref() == Some(name));
        match value.map(|(_, value)| value) {
            Some(Node::Str(text)) if !text.is_empty() => Some(Some(text.clone())),
            Some(Node::Str(_) | Node::Null) | None => {
                self.error(name, format!("{name} is missing; {ACCEPTED_KINDS}"));
                Some(None)
            }
            Some(other) => {
                self.wrong_type(name, "a string", other);
                None
            }
        }
    }

    /// The entries of an object whose names are in `known`, in document order, with the last of
    /// duplicates winning. Unknown and duplicate fields are errors from 1.31 on.
    fn fields<'n>(
        &mut self,
        path: &str,
        entries: &'n [(Node, Node)],
        known: &[&'static str],
    ) -> Vec<(&'static str, &'n Node)> {
        let strict = self.version.decodes_strictly();
        let mut seen: Vec<String> = Vec::new();
        let mut out: Vec<(&'static str, &'n Node)> = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.as_key() else {
                self.error(path, "expected field names, got a list or object as a key");
                continue;
            };
            let field = child(path, &name);
            if seen.contains(&name) {
                if strict {
                    self.error(
                        &field,
                        format!("strict decoding error: duplicate field \"{field}\""),
                    );
                }
            } else {
                seen.push(name.clone());
            }
            match known.iter().find(|known| **known == name) {
                Some(known) => {
                    out.retain(|(existing, _)| existing != known);
                    out.push((known, value));
                }
                None if strict => {
                    let accepted = if known.is_empty() {
                        "this object takes no fields".to_owned()
                    } else {
                        format!("accepted fields here: {}", known.join(", "))
                    };
                    self.error(
                        &field,
                        format!("strict decoding error: unknown field \"{field}\"; {accepted}"),
                    );
                }
                None => {}
            }
        }
        out
    }

    /// An object, or `None` (with an error unless it is null).
    fn object<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Node, Node)]> {
        match node {
            Node::Map(entries) => Some(entries),
            Node::Null => None,
            other => {
                self.wrong_type(path, "an object", other);
                None
            }
        }
    }

    /// A list decoded element by element; `null` is an empty list.
    fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        element: fn(&mut Self, &Node, &str) -> T,
    ) -> Vec<T> {
        match node {
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| element(self, item, &format!("{path}[{i}]")))
                .collect(),
            Node::Null => Vec::new(),
            other => {
                self.wrong_type(path, "a list", other);
                Vec::new()
            }
        }
    }

    /// A string field; `null` leaves it empty.
    fn string(&mut self, node: &Node, path: &str) -> String {
        match node {
            Node::Str(text) => text.clone(),
            Node::Null => String::new(),
            other => {
                self.wrong_type(path, "a string", other);
                String::new()
            }
        }
    }

    fn resource_configuration(&mut self, node: &Node, path: &str) -> ResourceConfiguration {
        let mut config = ResourceConfiguration { resources: Vec::new(), providers: Vec::new() };
        let Some(entries) = self.object(node, path) else { return config };
        for (name, value) in self.fields(path, entries, &["resources", "providers"]) {
            let field = child(path, name);
            match name {
                "resources" => config.resources = self.list(value, &field, Self::string),
                _ => config.providers = self.list(value, &field, Self::provider),
            }
        }
        config
    }

    fn provider(&mut self, node: &Node, path: &str) -> ProviderConfiguration {
        let mut provider = ProviderConfiguration::default();
        let Some(entries) = self.object(node, path) else { return provider };
        let known = ["aescbc", "aesgcm", "secretbox", "identity", "kms"];
        for (name, value) in self.fields(path, entries, &known) {
            let field = child(path, name);
            // `null` leaves the provider type unset, as a nil pointer in Go.
            if *value == Node::Null {
                continue;
            }
            match name {
                "aescbc" => provider.aescbc = self.keys(value, &field).map(AesConfiguration::new),
                "aesgcm" => provider.aesgcm = self.keys(value, &field).map(AesConfiguration::new),
                "secretbox" => {
                    provider.secretbox = self.keys(value, &field).map(SecretboxConfiguration::new);
                }
                "identity" => {
                    if let Some(entries) = self.object(value, &field) {
                        self.fields(&field, entries, &[]);
                        provider.identity = Some(IdentityConfiguration {});
                    }
                }
                _ => provider.kms = self.kms(value, &field),
            }
        }
        provider
    }

    /// The `keys` of an aescbc, aesgcm or secretbox block.
    fn keys(&mut self, node: &Node, path: &str) -> Option<Vec<Key>> {
        let entries = self.object(node, path)?;
        let mut keys = Vec::new();
        for (_, value) in self.fields(path, entries, &["keys"]) {
            keys = self.list(value, &child(path, "keys"), Self::key);
        }
        Some(keys)
    }

    fn key(&mut self, node: &Node, path: &str) -> Key {
        let mut key = Key::default();
        let Some(entries) = self.object(node, path) else { return key };
        for (name, value) in self.fields(path, entries, &["name", "secret"]) {
            let field = child(path, name);
            match name {
                "name" => key.name = self.string(value, &field),
                // The type error never quotes the value, so no key material leaks through it.
                _ => key.secret = Secret::new(self.string(value, &field)),
            }
        }
        key
    }

    fn kms(&mut self, node: &Node, path: &str) -> Option<KmsConfiguration> {
        let entries = self.object(node, path)?;
        // The kms block has no apiVersion field before 1.25: kube-apiserver ignored it.
        let known: &[&'static str] = if self.version.has_kms_api_version_field() {
            &["apiVersion", "name", "cachesize", "endpoint", "timeout"]
        } else {
            &["name", "cachesize", "endpoint", "timeout"]
        };
        let mut kms = KmsConfiguration::default();
        for (name, value) in self.fields(path, entries, known) {
            let field = child(path, name);
            match (name, value) {
                (_, Node::Null) => {}
                ("apiVersion", _) => kms.api_version = Some(self.string(value, &field)),
                ("name", _) => kms.name = self.string(value, &field),
                ("endpoint", _) => kms.endpoint = self.string(value, &field),
                ("cachesize", Node::Int(number)) => match i32::try_from(*number) {
                    Ok(size) => kms.cachesize = Some(size),
                    Err(_) => self.error(
                        &field,
                        format!("expected a 32-bit integer, got {number}, which is out of range"),
                    ),
                },
                ("cachesize", other) => self.wrong_type(&field, "an integer", other),
                (_, Node::Str(text)) => match crate::duration::parse_go_duration(text) {
                    Ok(_) => kms.timeout = Some(text.clone()),
                    Err(err) => {
                        self.error(&field, format!("{err}; expected a duration like \"3s\""))
                    }
                },
                (_, other) => self.wrong_type(&field, "a duration string like \"3s\"", other),
            }
        }
        Some(kms)
    }
}

/// `parent.name`, or `name` at the top.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u16) -> KubeVersion {
        KubeVersion::new(minor).unwrap()
    }

    fn errors(text: &str, version: KubeVersion) -> Vec<String> {
        match decode(text.as_bytes(), version) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";

    #[test]
    fn decodes_every_provider_type() {
        let text = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  \
             - kms: {{apiVersion: v2, name: a, endpoint: 'unix:///s', timeout: 5s}}\n  \
             - kms: {{name: b, endpoint: 'unix:///s', cachesize: -1}}\n  \
             - aescbc: {{keys: [{{name: k, secret: c2VjcmV0IGlzIHNlY3VyZQ==}}]}}\n  \
             - aesgcm: {{keys: []}}\n  - secretbox: {{keys: [{{name: s}}]}}\n  - identity: {{}}\n"
        );
        let config = decode(text.as_bytes(), v(36)).unwrap();
        let providers = &config.resources[0].providers;
        assert_eq!(providers.len(), 6);
        let kms = providers[0].kms.as_ref().unwrap();
        assert_eq!(kms.api_version.as_deref(), Some("v2"));
        assert_eq!(kms.timeout.as_deref(), Some("5s"));
        assert_eq!(providers[1].kms.as_ref().unwrap().cachesize, Some(-1));
        assert_eq!(providers[2].aescbc.as_ref().unwrap().keys[0].name, "k");
        assert!(providers[3].aesgcm.as_ref().unwrap().keys.is_empty());
        assert!(providers[5].is_identity());
    }

    #[test]
    fn unknown_fields_are_errors_from_1_31_only() {
        let text = format!(
            "{HEAD}pandas: 1\nresources:\n- resources: [secrets]\n  providers:\n  \
             - identity: {{bears: 2}}\n"
        );
        assert_eq!(
            errors(&text, v(31)),
            [
                "pandas: strict decoding error: unknown field \"pandas\"; accepted fields here: \
                 apiVersion, kind, resources",
                "resources[0].providers[0].identity.bears: strict decoding error: unknown field \
                 \"resources[0].providers[0].identity.bears\"; this object takes no fields",
            ]
        );
        assert!(errors(&text, v(30)).is_empty());
    }

    #[test]
    fn duplicate_fields_are_errors_from_1_31_and_the_last_wins_before() {
        let text = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  \
             - kms: {{name: a, name: b, endpoint: 'unix:///s'}}\n"
        );
        assert_eq!(
            errors(&text, v(31)),
            ["resources[0].providers[0].kms.name: strict decoding error: duplicate field \
              \"resources[0].providers[0].kms.name\""]
        );
        let config = decode(text.as_bytes(), v(30)).unwrap();
        assert_eq!(config.resources[0].providers[0].kms.as_ref().unwrap().name, "b");
    }

    #[test]
    fn kms_api_version_is_ignored_before_1_25() {
        let text = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  \
             - kms: {{apiVersion: v2, name: a, endpoint: 'unix:///s'}}\n"
        );
        let config = decode(text.as_bytes(), v(24)).unwrap();
        assert_eq!(config.resources[0].providers[0].kms.as_ref().unwrap().api_version, None);
        let config = decode(text.as_bytes(), v(25)).unwrap();
        let kms = config.resources[0].providers[0].kms.clone().unwrap();
        assert_eq!(kms.api_version.as_deref(), Some("v2"));
    }

    #[test]
    fn types_are_checked_as_json_checks_them() {
        let text = format!(
            "{HEAD}resources:\n- resources: secrets\n  providers:\n  \
             - kms: {{name: 5, endpoint: 'unix:///s', cachesize: '10', timeout: 3}}\n  \
             - kms: {{name: a, endpoint: 'unix:///s', cachesize: 3000000000, timeout: 3d}}\n"
        );
        assert_eq!(
            errors(&text, v(36)),
            [
                "resources[0].resources: expected a list, got a string",
                "resources[0].providers[0].kms.name: expected a string, got a number",
                "resources[0].providers[0].kms.cachesize: expected an integer, got a string",
                "resources[0].providers[0].kms.timeout: expected a duration string like \"3s\", \
                 got a number",
                "resources[0].providers[1].kms.cachesize: expected a 32-bit integer, got \
                 3000000000, which is out of range",
                "resources[0].providers[1].kms.timeout: time: unknown unit \"d\" in duration \
                 \"3d\"; expected a duration like \"3s\"",
            ]
        );
    }

    #[test]
    fn type_errors_never_show_key_material() {
        let text = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  \
             - aescbc: {{keys: [{{name: k, secret: [c2VjcmV0IGlzIHNlY3VyZQ==]}}]}}\n"
        );
        let found = errors(&text, v(36)).join("\n");
        assert!(found.contains("secret: expected a string, got a list"), "{found}");
        assert!(!found.contains("c2VjcmV0"), "{found}");
    }

    #[test]
    fn null_means_unset() {
        let text = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n  \
             - identity:\n  - aescbc:\n      keys:\n"
        );
        let config = decode(text.as_bytes(), v(36)).unwrap();
        let providers = &config.resources[0].providers;
        assert!(providers[0].kinds().is_empty());
        assert!(providers[1].kinds().is_empty());
        assert!(providers[2].aescbc.as_ref().unwrap().keys.is_empty());
    }

    #[test]
    fn refuses_unknown_kinds_and_missing_type_metadata() {
        let one = |text: &str| errors(text, v(36)).join("\n");
        assert!(one("").contains("the file is empty"));
        assert!(one("# nothing\n").starts_with("kind: kind is missing"));
        assert!(
            one("kinds: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\n")
                .starts_with("kind: kind is missing")
        );
        assert!(one("kind: EncryptionConfiguration\n").starts_with("apiVersion: apiVersion is"));
        assert!(
            one("kind: EncryptionConfigurations\napiVersion: apiserver.config.k8s.io/v1\n")
                .starts_with(
                    "kind: no kind \"EncryptionConfigurations\" is registered for version \
                     \"apiserver.config.k8s.io/v1\""
                )
        );
        assert!(
            one("kind: EncryptionConfig\napiVersion: apiserver.config.k8s.io/v1\n")
                .contains("no kind \"EncryptionConfig\"")
        );
        assert!(one("[1, 2]").contains("expected an object with apiVersion and kind, got a list"));
        assert!(one("kind: 5\napiVersion: v1\n").contains("kind: expected a string, got a number"));
        assert!(decode(b"kind: EncryptionConfig\napiVersion: v1\nresources: []\n", v(36)).is_ok());
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        let garbage: Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let found = decode(&garbage, v(36)).unwrap_err();
        assert!(found[0].message.contains("not UTF-8"), "{found:?}");
        for text in ["{", "a: [", "\t- x", ": : :", "{\"a\": 1} trailing", "a: *nope"] {
            assert!(decode(text.as_bytes(), v(36)).is_err(), "{text}");
        }
        let large = vec![b'#'; MAX_DOCUMENT_BYTES + 1];
        assert!(decode(&large, v(36)).unwrap_err()[0].message.contains("more than"));
    }
}
