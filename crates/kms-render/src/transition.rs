//! From the installed file to the next one without making stored data unreadable.
//!
//! Every provider that may have written data for a resource stays in that resource's list: the
//! only way to drop one is [`prune`](crate::prune), once the operator has re-encrypted. Two
//! kube-apiserver rules shape the result: a kms provider name may appear only once in the whole
//! file (always for KMS v2, for KMS v1 once automatic reload is on), and a later entry may not name
//! a resource that an earlier wildcard entry already matches.

use kms_model::encryption::{KmsConfiguration, ProviderConfiguration, ResourceConfiguration};

use crate::RenderError;
use crate::provider::{ProviderKey, api_version_of, describe, kms_only};
use crate::resource::{covered_by, normalize, writers_of};

/// The entries of the next file and what the operator should know about the change.
pub(crate) struct Transition {
    /// The resource entries, in order.
    pub(crate) resources: Vec<ResourceConfiguration>,
    /// Things that do not stop the change but need the operator's attention.
    pub(crate) warnings: Vec<String>,
}

/// Makes `kms` the write provider of `kms_resources`.
///
/// The kms entry comes first. It holds `kms_resources` and every provider of the installed
/// entries that may have written their data, the new provider first and `identity: {}` last.
/// Installed entries keep the resources `kms_resources` does not match, unless they share a kms
/// provider or a resource with the kms entry: kube-apiserver would reject a kms name in two
/// entries, so those resources join the kms entry, with a warning.
///
/// `identity: {}` is in the kms entry when data of `kms_resources` may be in plaintext: when an
/// installed entry that held it had identity, or when no installed entry matched it. A file
/// pruned of identity therefore stays without it.
pub(crate) fn enable(
    kms: KmsConfiguration,
    kms_resources: &[String],
    installed: &[ResourceConfiguration],
) -> Result<Transition, RenderError> {
    refuse_api_version_change(&kms, installed)?;

    let mut warnings = Vec::new();
    warn_endpoint_move(&kms, installed, &mut warnings);

    // Entries whose providers may have written data of kms_resources, and whether some of it
    // may be plaintext because no entry matched it.
    let lists: Vec<&[String]> = installed.iter().map(|entry| entry.resources.as_slice()).collect();
    let mut writers = vec![false; installed.len()];
    let mut plaintext = false;
    for name in kms_resources {
        let (sources, unmatched) = writers_of(name, &lists);
        writers.iter_mut().zip(sources).for_each(|(writer, source)| *writer |= source);
        plaintext |= unmatched;
    }

    let write = ProviderConfiguration::kms(kms);
    let mut providers = vec![write.clone()];
    for (entry, _) in installed.iter().zip(&writers).filter(|(_, writer)| **writer) {
        providers.extend(entry.providers.iter().cloned());
    }

    // What is left of each installed entry once kms_resources moved to the kms entry.
    let mut rest: Vec<ResourceConfiguration> = installed
        .iter()
        .map(|entry| ResourceConfiguration {
            resources: entry
                .resources
                .iter()
                .filter(|name| !covered_by(name, kms_resources))
                .cloned()
                .collect(),
            providers: entry.providers.clone(),
        })
        .filter(|entry| !entry.resources.is_empty())
        .collect();

    let mut resources = kms_resources.to_vec();
    loop {
        let joins = rest.iter().position(|entry| {
            shares_kms_name(&entry.providers, &providers)
                || entry.resources.iter().any(|name| covered_by(name, &resources))
        });
        let Some(index) = joins else { break };
        let entry = rest.remove(index);
        resources.extend(entry.resources);
        providers.extend(entry.providers);
    }

    let resources = normalize(&resources);
    let strays: Vec<&String> =
        resources.iter().filter(|name| !covered_by(name, kms_resources)).collect();
    if !strays.is_empty() {
        let (are, stay, they) =
            if strays.len() == 1 { ("is", "stays", "it") } else { ("are", "stay", "they") };
        warnings.push(format!(
            "{} {are} not in kms_resources but {stay} in the entry of {}: the installed file ties \
             {they} to kms_resources through a kms provider or a wildcard, and kube-apiserver \
             accepts neither split across resource entries",
            quoted_list(&strays),
            describe(&write),
        ));
    }

    let providers = write_first(write, providers, plaintext);
    let readers: Vec<String> =
        providers[1..].iter().filter(|provider| !provider.is_identity()).map(describe).collect();
    if !readers.is_empty() {
        warnings.push(format!(
            "kept for reads only until every object is re-encrypted and the file is pruned: {}",
            readers.join(", ")
        ));
    }

    let mut entries = vec![ResourceConfiguration { resources, providers }];
    entries.extend(rest);
    Ok(Transition { resources: entries, warnings })
}

/// Stops writing with kms: each installed entry whose write provider is a kms provider gets
/// `identity: {}` first and keeps its providers after it for reads. Other entries stay as
/// they are.
pub(crate) fn disable(installed: &[ResourceConfiguration]) -> Transition {
    let mut warnings = Vec::new();
    let resources = installed
        .iter()
        .map(|entry| {
            let Some(writer) = entry.providers.first().filter(|p| kms_only(p).is_some()) else {
                return entry.clone();
            };
            warnings.push(format!(
                "kms is disabled: {} {} written in plaintext from now on; {} stays for reads until \
                 every object is re-encrypted and the file is pruned",
                quoted_list(&entry.resources.iter().collect::<Vec<_>>()),
                if entry.resources.len() == 1 { "is" } else { "are" },
                describe(writer),
            ));
            let mut providers = vec![ProviderConfiguration::identity()];
            providers.extend(entry.providers.iter().filter(|p| !p.is_identity()).cloned());
            ResourceConfiguration { resources: entry.resources.clone(), providers }
        })
        .collect();
    Transition { resources, warnings }
}

/// A kms name keeps one API version: the installed provider of the other version would have to
/// stay for reads under the same name, which kube-apiserver rejects.
fn refuse_api_version_change(
    kms: &KmsConfiguration,
    installed: &[ResourceConfiguration],
) -> Result<(), RenderError> {
    let Some(requested) = api_version_of(kms) else { return Ok(()) };
    let same_name = installed_kms(installed).filter(|old| old.name == kms.name);
    for old in same_name {
        if let Some(installed) = api_version_of(old).filter(|api| *api != requested) {
            return Err(RenderError::ApiVersionChange {
                name: kms.name.clone(),
                installed,
                requested,
            });
        }
    }
    Ok(())
}

/// The same name is the same storage prefix, so the plugin behind the new endpoint must be able
/// to decrypt what the old one encrypted.
fn warn_endpoint_move(
    kms: &KmsConfiguration,
    installed: &[ResourceConfiguration],
    warnings: &mut Vec<String>,
) {
    let mut moved: Vec<&str> = Vec::new();
    for old in installed_kms(installed).filter(|old| old.name == kms.name) {
        if old.endpoint != kms.endpoint && !moved.contains(&old.endpoint.as_str()) {
            moved.push(&old.endpoint);
        }
    }
    for old in moved {
        warnings.push(format!(
            "endpoint moved under the same name: kms \"{}\" moves from \"{old}\" to \"{}\"; \
             data it wrote stays readable only if the plugin at the new endpoint has the same key",
            kms.name, kms.endpoint,
        ));
    }
}

/// Every kms block of the installed file, in order.
fn installed_kms(installed: &[ResourceConfiguration]) -> impl Iterator<Item = &KmsConfiguration> {
    installed.iter().flat_map(|entry| &entry.providers).filter_map(kms_only)
}

/// Whether two provider lists name the same kms provider, in any API version.
fn shares_kms_name(a: &[ProviderConfiguration], b: &[ProviderConfiguration]) -> bool {
    let names = |list: &'_ [ProviderConfiguration]| -> Vec<String> {
        list.iter().filter_map(|p| p.kms.as_ref()).map(|kms| kms.name.clone()).collect()
    };
    let b = names(b);
    names(a).iter().any(|name| b.contains(name))
}

/// `write`, then the other providers in order without repeats (an element that is the same
/// provider as `write` is replaced by it), then `identity: {}` when any list had it or when
/// `plaintext` says some data was never encrypted.
fn write_first(
    write: ProviderConfiguration,
    providers: Vec<ProviderConfiguration>,
    plaintext: bool,
) -> Vec<ProviderConfiguration> {
    let mut seen = vec![ProviderKey::of(&write)];
    let mut ordered = vec![write];
    let mut identity = plaintext;
    for provider in providers {
        let key = ProviderKey::of(&provider);
        if key == ProviderKey::Identity {
            identity = true;
        } else if !seen.contains(&key) {
            seen.push(key);
            ordered.push(provider);
        }
    }
    if identity {
        ordered.push(ProviderConfiguration::identity());
    }
    ordered
}

/// `"a"`, `"a" and "b"`, `"a", "b" and "c"`.
fn quoted_list(names: &[&String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use kms_model::encryption::{AesConfiguration, Key, Secret};

    use super::*;

    fn kms(name: &str) -> ProviderConfiguration {
        ProviderConfiguration::kms(KmsConfiguration {
            api_version: Some("v2".to_owned()),
            name: name.to_owned(),
            endpoint: format!("unix:///run/{name}.sock"),
            ..KmsConfiguration::default()
        })
    }

    fn aescbc() -> ProviderConfiguration {
        let key = Key { name: "k1".to_owned(), secret: Secret::new("c2VjcmV0IGlzIHNlY3VyZQ==") };
        ProviderConfiguration {
            aescbc: Some(AesConfiguration::new(vec![key])),
            ..Default::default()
        }
    }

    fn entry(resources: &[&str], providers: &[ProviderConfiguration]) -> ResourceConfiguration {
        ResourceConfiguration {
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            providers: providers.to_vec(),
        }
    }

    fn block(provider: ProviderConfiguration) -> KmsConfiguration {
        provider.kms.unwrap()
    }

    #[test]
    fn disable_touches_only_entries_written_through_kms() {
        let identity = ProviderConfiguration::identity();
        let installed = [
            entry(&["secrets"], &[kms("vault"), aescbc(), identity.clone()]),
            entry(&["configmaps"], &[aescbc(), identity.clone()]),
            entry(&["pods"], &[identity.clone(), kms("old")]),
        ];
        let transition = disable(&installed);
        assert_eq!(
            transition.resources,
            [
                entry(&["secrets"], &[identity.clone(), kms("vault"), aescbc()]),
                installed[1].clone(),
                installed[2].clone(),
            ]
        );
        assert_eq!(transition.warnings.len(), 1, "{:?}", transition.warnings);
    }

    #[test]
    fn same_name_is_replaced_in_place_and_identity_goes_last() {
        let identity = ProviderConfiguration::identity();
        let installed = [entry(&["secrets"], &[identity.clone(), kms("old"), kms("vault")])];
        let mut moved = block(kms("vault"));
        moved.endpoint = "unix:///run/elsewhere.sock".to_owned();

        let transition = enable(moved.clone(), &["secrets".to_owned()], &installed).unwrap();
        let expected = [ProviderConfiguration::kms(moved), kms("old"), identity];
        assert_eq!(transition.resources, [entry(&["secrets"], &expected)]);
        assert!(transition.warnings.iter().any(|w| w.starts_with("endpoint moved")));
    }

    #[test]
    fn a_wildcard_that_joins_the_kms_entry_takes_what_it_masks() {
        let identity = ProviderConfiguration::identity();
        let installed = [
            entry(&["secrets"], &[aescbc(), identity.clone()]),
            entry(&["*."], &[kms("vault"), identity.clone()]),
        ];
        // configmaps was written through "*.", so vault must stay for it; vault may be in one
        // entry only, so "*." joins the kms entry, and secrets would be masked behind it.
        let transition = enable(block(kms("hsm")), &["configmaps".to_owned()], &installed).unwrap();
        assert_eq!(
            transition.resources,
            [entry(&["*."], &[kms("hsm"), kms("vault"), aescbc(), identity])]
        );
        assert!(transition.warnings[0].starts_with("\"*.\" is not in kms_resources"));
    }

    #[test]
    fn an_unrelated_entry_keeps_its_place() {
        let installed = [entry(&["configmaps"], &[aescbc()])];
        let transition = enable(block(kms("vault")), &["secrets".to_owned()], &installed).unwrap();
        let identity = ProviderConfiguration::identity();
        assert_eq!(
            transition.resources,
            [entry(&["secrets"], &[kms("vault"), identity]), installed[0].clone()]
        );
        assert!(transition.warnings.is_empty(), "{:?}", transition.warnings);
    }

    #[test]
    fn lists_read_as_prose() {
        let names = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(quoted_list(&[&names[0]]), "\"a\"");
        assert_eq!(quoted_list(&[&names[0], &names[1]]), "\"a\" and \"b\"");
        assert_eq!(quoted_list(&names.iter().collect::<Vec<_>>()), "\"a\", \"b\" and \"c\"");
    }
}
