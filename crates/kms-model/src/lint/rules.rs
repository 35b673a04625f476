//! kube-apiserver's validation of a decoded EncryptionConfiguration (rules 7 to 32) and the
//! checks it makes while building providers (rules 33 to 35).
//!
//! The functions follow kube-apiserver's own, one for one, so that each of its test cases can be
//! ported against the function it tests. Messages keep kube-apiserver's wording; an invalid value
//! is quoted first, as `invalid value "0s": timeout should be a positive value`.

use std::collections::HashSet;

use base64::Engine;

use crate::encryption::{EncryptionConfiguration, Key, KmsConfiguration, ProviderConfiguration};
use crate::lint::url;
use crate::{KubeVersion, LintError};

const MORE_THAN_ONE_ELEMENT: &str = concat!(
    "more than one provider specified in a single element, ",
    "should split into different list elements"
);
const NO_PROVIDER: &str = concat!(
    "provider does not contain any of the expected providers: ",
    "KMS, AESGCM, AESCBC, Secretbox, Identity"
);
const EVENTS_GROUP: &str = "'*.events.k8s.io' objects are stored using the 'events' API group \
                            in etcd. Use 'events' instead in the config file";
const EXTENSIONS_GROUP: &str =
    "'extensions' group has been removed and cannot be used for encryption";
const STAR_RESOURCE: &str =
    "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources";
const OVERLAP: &str = "using overlapping resources such as 'secrets' and '*.' in the same \
                       resource list is not allowed as they will be masked";
const NON_REST_RESOURCE: &str = "resources which do not have REST API/s cannot be encrypted";
const RESOURCE_NAME: &str = "resource name should not contain capital letters";
const RESOURCE_ACROSS_GROUPS: &str = "encrypting the same resource across groups is not supported";
const DUPLICATE_RESOURCE: &str = "the same resource cannot be specified multiple times";

/// Key sizes `aes.NewCipher` takes.
pub(crate) const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
/// The one key size secretbox takes.
pub(crate) const SECRETBOX_KEY_SIZES: &[usize] = &[32];

/// A `Required value` error.
fn required(field: &str, detail: impl Into<String>) -> LintError {
    LintError::new(field, detail)
}

/// An `Invalid value` error; `value` is already formatted (quoted for strings).
fn invalid(field: &str, value: Option<&str>, detail: impl AsRef<str>) -> LintError {
    let detail = detail.as_ref();
    match value {
        Some(value) => LintError::new(field, format!("invalid value {value}: {detail}")),
        None => LintError::new(field, detail),
    }
}

fn quoted(text: &str) -> String {
    url::go_quote(text)
}

/// `ValidateEncryptionConfiguration`: rules 7 to 32 on a defaulted configuration.
///
/// `check_resource_names` turns on rules 10 to 17, which kube-apiserver has from 1.27.
pub(crate) fn validate_configuration(
    config: Option<&EncryptionConfiguration>,
    reload: bool,
    check_resource_names: bool,
) -> Vec<LintError> {
    let root = "resources";
    let Some(config) = config else {
        return vec![required(root, "EncryptionConfiguration can't be nil")];
    };
    if config.resources.is_empty() {
        return vec![required(root, format!("at least one {root} is required"))];
    }

    let mut errors = Vec::new();
    let mut kms_names = HashSet::new();
    for (i, entry) in config.resources.iter().enumerate() {
        let r = format!("{root}[{i}].resources");
        let p = format!("{root}[{i}].providers");
        if entry.resources.is_empty() {
            errors.push(required(&r, format!("at least one {r} is required")));
        }
        if check_resource_names {
            errors.extend(validate_resource_overlap(&entry.resources, &r));
            errors.extend(validate_resource_names(&entry.resources, &r));
        }
        if entry.providers.is_empty() {
            errors.push(required(&p, format!("at least one {p} is required")));
        }
        for (j, provider) in entry.providers.iter().enumerate() {
            let path = format!("{p}[{j}]");
            errors.extend(validate_single_provider(provider, &path));
            // Like kube-apiserver, only the first type set (in this order) is looked into.
            if let Some(kms) = &provider.kms {
                let kms_path = format!("{path}.kms");
                errors.extend(validate_kms_configuration(kms, &kms_path, &kms_names, reload));
                kms_names.insert(kms.name.clone());
            } else if let Some(aes) = &provider.aesgcm {
                errors.extend(validate_keys(
                    &aes.keys,
                    &format!("{path}.aesgcm.keys"),
                    AES_KEY_SIZES,
                ));
            } else if let Some(aes) = &provider.aescbc {
                errors.extend(validate_keys(
                    &aes.keys,
                    &format!("{path}.aescbc.keys"),
                    AES_KEY_SIZES,
                ));
            } else if let Some(secretbox) = &provider.secretbox {
                let keys_path = format!("{path}.secretbox.keys");
                errors.extend(validate_keys(&secretbox.keys, &keys_path, SECRETBOX_KEY_SIZES));
            }
        }
    }
    errors
}

/// A resource name split as `schema.ParseGroupResource` does: `deployments.apps` is resource
/// `deployments` of group `apps`; `*.` is every resource of the core group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupResource<'a> {
    pub(crate) group: &'a str,
    pub(crate) resource: &'a str,
}

impl<'a> GroupResource<'a> {
    /// `*.*`: every resource of every group.
    pub(crate) const ANY: GroupResource<'static> = GroupResource { group: "*", resource: "*" };

    /// Splits at the first dot.
    pub(crate) fn parse(name: &'a str) -> Self {
        match name.split_once('.') {
            Some((resource, group)) => Self { group, resource },
            None => Self { group: "", resource: name },
        }
    }

    /// The spelling kube-apiserver uses in its masking error: `secrets`, `*.`, `*.apps`.
    pub(crate) fn yaml_string(self) -> String {
        if self.group.is_empty() && self.resource == "*" {
            "*.".to_owned()
        } else if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// `validateResourceOverlap`: rules 10 and 11, each reported once per list.
pub(crate) fn validate_resource_overlap(resources: &[String], field: &str) -> Vec<LintError> {
    if resources.len() < 2 {
        return Vec::new();
    }
    let parsed: Vec<_> = resources.iter().map(|r| GroupResource::parse(r)).collect();
    let (mut has_overlap, mut has_duplicate) = (false, false);
    for (i, r1) in parsed.iter().enumerate() {
        for (j, r2) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if r1 == r2 && !has_duplicate {
                has_duplicate = true;
                continue;
            }
            if has_overlap {
                continue;
            }
            if *r1 == GroupResource::ANY {
                has_overlap = true;
                continue;
            }
            if r1.group != r2.group {
                continue;
            }
            if r1.resource == "*" || r2.resource == "*" {
                has_overlap = true;
            }
        }
    }

    let list = format!("[{}]", resources.iter().map(|r| quoted(r)).collect::<Vec<_>>().join(", "));
    let mut errors = Vec::new();
    if has_duplicate {
        errors.push(invalid(field, Some(&list), DUPLICATE_RESOURCE));
    }
    if has_overlap {
        errors.push(invalid(field, Some(&list), OVERLAP));
    }
    errors
}

/// `validateResourceNames`: rules 12 to 17, the first that applies to each name.
pub(crate) fn validate_resource_names(resources: &[String], field: &str) -> Vec<LintError> {
    let mut errors = Vec::new();
    for (j, name) in resources.iter().enumerate() {
        let gr = GroupResource::parse(name);
        let detail = if name.to_lowercase() != *name {
            RESOURCE_NAME
        } else if name == "*" {
            STAR_RESOURCE
        } else if matches!(
            name.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            NON_REST_RESOURCE
        } else if gr.group == "events.k8s.io" {
            EVENTS_GROUP
        } else if gr.group == "extensions" {
            EXTENSIONS_GROUP
        } else if gr.group == "*" && gr.resource != "*" {
            RESOURCE_ACROSS_GROUPS
        } else {
            continue;
        };
        errors.push(invalid(&format!("{field}[{j}]"), Some(&quoted(name)), detail));
    }
    errors
}

/// `validateSingleProvider`: rule 19.
pub(crate) fn validate_single_provider(
    provider: &ProviderConfiguration,
    field: &str,
) -> Vec<LintError> {
    match provider.kinds().len() {
        0 => vec![invalid(field, None, NO_PROVIDER)],
        1 => Vec::new(),
        _ => vec![invalid(field, None, MORE_THAN_ONE_ELEMENT)],
    }
}

/// `validateKeys`: rules 20 to 22.
pub(crate) fn validate_keys(keys: &[Key], field: &str, sizes: &[usize]) -> Vec<LintError> {
    if keys.is_empty() {
        return vec![required(field, "at least one keys is required")];
    }
    keys.iter()
        .enumerate()
        .flat_map(|(i, key)| validate_key(key, &format!("{field}[{i}]"), sizes))
        .collect()
}

/// `validateKey`: a name, and a secret that is standard base64 of a key of a usable size.
/// The secret is shown as `REDACTED`, as kube-apiserver does.
pub(crate) fn validate_key(key: &Key, field: &str, sizes: &[usize]) -> Vec<LintError> {
    let mut errors = Vec::new();
    if key.name.is_empty() {
        errors.push(required(&format!("{field}.name"), "name is a mandatory field for a key"));
    }
    let secret_field = format!("{field}.secret");
    if key.secret.expose().is_empty() {
        errors.push(required(&secret_field, "secret is a mandatory field for a key"));
        return errors;
    }
    let redacted = quoted("REDACTED");
    match base64::engine::general_purpose::STANDARD.decode(key.secret.expose()) {
        Err(_) => {
            errors.push(invalid(&secret_field, Some(&redacted), "secrets must be base64 encoded"));
        }
        Ok(secret) if !sizes.contains(&secret.len()) => {
            let expected = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
            let detail = format!(
                "secret is not of the expected length, got {}, expected one of [{expected}]",
                secret.len()
            );
            errors.push(invalid(&secret_field, Some(&redacted), detail));
        }
        Ok(_) => {}
    }
    errors
}

/// `validateKMSConfiguration`: rules 23 to 32.
pub(crate) fn validate_kms_configuration(
    kms: &KmsConfiguration,
    field: &str,
    kms_names: &HashSet<String>,
    reload: bool,
) -> Vec<LintError> {
    let mut errors = validate_kms_name(kms, &format!("{field}.name"), kms_names, reload);
    errors.extend(validate_kms_timeout(kms, &format!("{field}.timeout")));
    errors.extend(validate_kms_endpoint(kms, &format!("{field}.endpoint")));
    errors.extend(validate_kms_cachesize(kms, &format!("{field}.cachesize")));
    errors.extend(validate_kms_api_version(kms, &format!("{field}.apiVersion")));
    errors
}

/// The `apiVersion` as the rules compare it: unlike [`KmsConfiguration::effective_api_version`]
/// an absent value stays empty, because the rules run after defaulting.
fn raw_api_version(kms: &KmsConfiguration) -> &str {
    kms.api_version.as_deref().unwrap_or("")
}

/// `validateKMSCacheSize`: rules 30 and 31.
pub(crate) fn validate_kms_cachesize(kms: &KmsConfiguration, field: &str) -> Vec<LintError> {
    let mut errors = Vec::new();
    let api_version = raw_api_version(kms);
    if let Some(size) = kms.cachesize {
        let value = size.to_string();
        if api_version != "v1" {
            errors.push(invalid(field, Some(&value), "cachesize is not supported in v2"));
        }
        if api_version == "v1" && size == 0 {
            let detail = "cachesize should be a positive value, or negative to disable";
            errors.push(invalid(field, Some(&value), detail));
        }
    }
    errors
}

/// `validateKMSTimeout`: rule 26. An absent timeout is kube-apiserver's zero duration.
pub(crate) fn validate_kms_timeout(kms: &KmsConfiguration, field: &str) -> Vec<LintError> {
    let text = kms.timeout.as_deref().unwrap_or("0s");
    match crate::duration::parse_go_duration(text) {
        Ok(duration) if duration.is_positive() => Vec::new(),
        Ok(_) => vec![invalid(field, Some(&quoted(text)), "timeout should be a positive value")],
        Err(err) => vec![invalid(field, Some(&quoted(text)), err.to_string())],
    }
}

/// `validateKMSEndpoint`: rules 27 to 29.
pub(crate) fn validate_kms_endpoint(kms: &KmsConfiguration, field: &str) -> Vec<LintError> {
    if kms.endpoint.is_empty() {
        return vec![invalid(field, Some("\"\""), "endpoint is a mandatory field for a kms")];
    }
    let value = quoted(&kms.endpoint);
    match url::parse(&kms.endpoint) {
        Err(err) => vec![invalid(
            field,
            Some(&value),
            format!("invalid endpoint for kms provider, error: {err}"),
        )],
        Ok(parsed) if parsed.scheme != "unix" => vec![invalid(
            field,
            Some(&value),
            format!(
                "unsupported scheme {} for KMS provider, only unix is supported",
                quoted(&parsed.scheme)
            ),
        )],
        Ok(_) => Vec::new(),
    }
}

/// `validateKMSAPIVersion`: rule 32. The message names the field, not the value, as upstream.
pub(crate) fn validate_kms_api_version(kms: &KmsConfiguration, field: &str) -> Vec<LintError> {
    let api_version = raw_api_version(kms);
    if api_version == "v1" || api_version == "v2" {
        return Vec::new();
    }
    vec![invalid(
        field,
        Some(&quoted(api_version)),
        "unsupported apiVersion apiVersion for KMS provider, only v1 and v2 are supported",
    )]
}

/// `validateKMSConfigName`: rules 23 to 25.
pub(crate) fn validate_kms_name(
    kms: &KmsConfiguration,
    field: &str,
    kms_names: &HashSet<String>,
    reload: bool,
) -> Vec<LintError> {
    let mut errors = Vec::new();
    let api_version = raw_api_version(kms);
    if kms.name.is_empty() {
        errors.push(required(field, "name is a mandatory field for a provider"));
    }
    if api_version != "v1" && kms.name.contains(':') {
        let detail = format!("invalid KMS provider name {}, must not contain ':'", kms.name);
        errors.push(invalid(field, Some(&quoted(&kms.name)), detail));
    }
    if (reload || api_version != "v1") && kms_names.contains(&kms.name) {
        let detail = format!("duplicate KMS provider name {}, names must be unique", kms.name);
        errors.push(invalid(field, Some(&quoted(&kms.name)), detail));
    }
    errors
}

/// The feature gates that decide whether a kms provider can be built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gates {
    pub(crate) kms_v1: bool,
    pub(crate) kms_v2: bool,
}

/// What kube-apiserver checks while building the providers of a valid configuration: the
/// feature gates of the KMS versions (rule 33) and, from 1.27, resources masked by an earlier
/// wildcard (rule 34). Rule 35 (usable AES and secretbox keys) is already covered by rule 22.
pub(crate) fn check_build(
    config: &EncryptionConfiguration,
    version: KubeVersion,
    gates: Gates,
) -> Vec<LintError> {
    let mut errors = Vec::new();
    let mut configured: HashSet<GroupResource<'_>> = HashSet::new();
    for (i, entry) in config.resources.iter().enumerate() {
        for (j, provider) in entry.providers.iter().enumerate() {
            let Some(kms) = &provider.kms else { continue };
            let field = format!("resources[{i}].providers[{j}].kms");
            match kms.effective_api_version() {
                "v1" if !gates.kms_v1 => errors.push(LintError::new(
                    field,
                    "KMSv1 is deprecated and will only receive security updates going forward. \
                     Use KMSv2 instead; set --feature-gates=KMSv1=true to use the deprecated \
                     KMSv1 feature",
                )),
                "v2" if !gates.kms_v2 => errors.push(LintError::new(
                    field,
                    format!(
                        "could not configure KMSv2 plugin {}, KMSv2 feature is not enabled; \
                         set --feature-gates=KMSv2=true (KMS v2 is alpha in {version})",
                        quoted(&kms.name)
                    ),
                )),
                _ => {}
            }
        }

        if !version.checks_resource_names() {
            continue;
        }
        for (j, name) in entry.resources.iter().enumerate() {
            let gr = GroupResource::parse(name);
            let group_wildcard = GroupResource { group: gr.group, resource: "*" };
            let masked_by = [group_wildcard, GroupResource::ANY]
                .into_iter()
                .find(|wildcard| configured.contains(wildcard));
            if let Some(wildcard) = masked_by {
                errors.push(LintError::new(
                    format!("resources[{i}].resources[{j}]"),
                    format!(
                        "resource {} is masked by earlier rule {}",
                        quoted(&gr.yaml_string()),
                        quoted(&wildcard.yaml_string())
                    ),
                ));
            }
            configured.insert(gr);
        }
    }
    errors
}
