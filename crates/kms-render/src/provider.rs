//! Provider elements: the kms block built from settings, and how providers are told apart.

use kms_model::duration::format_go_duration;
use kms_model::encryption::{KmsConfiguration, ProviderConfiguration};
use kms_model::{KmsApiVersion, KmsSettings, KubeVersion};

use crate::RenderError;

/// The kms block kube-apiserver needs for `settings` at `version`.
///
/// The checks repeat the few rules of `kms_model::load_settings` without which the block would
/// be rejected, because settings can also be built in code.
pub(crate) fn kms_block(
    settings: &KmsSettings,
    version: KubeVersion,
) -> Result<KmsConfiguration, RenderError> {
    let name = settings.name.clone();
    if name.is_empty() {
        return Err(RenderError::MissingName);
    }
    let Some(endpoint) = &settings.endpoint else {
        return Err(RenderError::MissingEndpoint { name });
    };
    if settings.resources.is_empty() {
        return Err(RenderError::NoResources);
    }
    if settings.timeout.is_some_and(|timeout| timeout.is_zero()) {
        return Err(RenderError::ZeroTimeout);
    }

    let api = settings.effective_api_version(version);
    if api == KmsApiVersion::V2 {
        if !version.has_kms_v2() {
            return Err(RenderError::KmsV2Unavailable { version });
        }
        if settings.cachesize != 0 {
            return Err(RenderError::CachesizeWithV2 { cachesize: settings.cachesize });
        }
        if name.contains(':') {
            return Err(RenderError::ColonInV2Name { name });
        }
    }

    // A v1 cachesize of 0 is left out so that kube-apiserver applies its default of 1000;
    // written out, 0 would be rejected.
    let cachesize =
        (api == KmsApiVersion::V1 && settings.cachesize != 0).then_some(settings.cachesize);
    Ok(KmsConfiguration {
        api_version: version.has_kms_api_version_field().then(|| api.as_str().to_owned()),
        name,
        cachesize,
        endpoint: endpoint.to_url(),
        timeout: settings.timeout.map(format_go_duration),
    })
}

/// The API version of a kms block as kube-apiserver reads it: absent or empty means v1.
/// `None` for a value kube-apiserver rejects.
pub(crate) fn api_version_of(kms: &KmsConfiguration) -> Option<KmsApiVersion> {
    match kms.api_version.as_deref() {
        None | Some("" | "v1") => Some(KmsApiVersion::V1),
        Some("v2") => Some(KmsApiVersion::V2),
        Some(_) => None,
    }
}

/// What makes two provider elements the same provider: for kms the name and API version, which
/// make up its storage prefix (a new endpoint or timeout does not make a new provider); for the
/// others the whole element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProviderKey {
    /// `identity: {}`.
    Identity,
    /// A kms element: its name and API version, absent or empty read as `v1`.
    Kms { name: String, api_version: String },
    /// Any other element, compared whole.
    Other(ProviderConfiguration),
}

impl ProviderKey {
    /// The key of `provider`.
    pub(crate) fn of(provider: &ProviderConfiguration) -> Self {
        if provider.is_identity() {
            return Self::Identity;
        }
        match (&provider.kms, provider.kinds().len()) {
            (Some(kms), 1) => {
                // Invalid versions keep their text, so that no two of them are merged away.
                let api_version = match api_version_of(kms) {
                    Some(api) => api.as_str().to_owned(),
                    None => kms.api_version.clone().unwrap_or_default(),
                };
                Self::Kms { name: kms.name.clone(), api_version }
            }
            _ => Self::Other(provider.clone()),
        }
    }
}

/// The kms block of an element that is a kms provider and nothing else.
pub(crate) fn kms_only(provider: &ProviderConfiguration) -> Option<&KmsConfiguration> {
    provider.kms.as_ref().filter(|_| provider.kinds().len() == 1)
}

/// A short name of a provider for messages; never key material.
pub(crate) fn describe(provider: &ProviderConfiguration) -> String {
    if let Some(kms) = &provider.kms {
        return format!("kms \"{}\"", kms.name);
    }
    let first_key = |keys: &[kms_model::encryption::Key]| {
        keys.first().map(|key| format!(" (key \"{}\")", key.name)).unwrap_or_default()
    };
    if let Some(aes) = &provider.aesgcm {
        return format!("aesgcm{}", first_key(&aes.keys));
    }
    if let Some(aes) = &provider.aescbc {
        return format!("aescbc{}", first_key(&aes.keys));
    }
    if let Some(secretbox) = &provider.secretbox {
        return format!("secretbox{}", first_key(&secretbox.keys));
    }
    if provider.identity.is_some() {
        return "identity".to_owned();
    }
    "empty provider".to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kms_model::Endpoint;

    use super::*;

    fn settings() -> KmsSettings {
        KmsSettings {
            enabled: true,
            name: "vault".to_owned(),
            endpoint: Some(Endpoint::Path("/run/kms/p.sock".to_owned())),
            ..KmsSettings::disabled()
        }
    }

    fn v(minor: u16) -> KubeVersion {
        KubeVersion::new(minor).unwrap()
    }

    #[test]
    fn v1_before_1_25_has_no_api_version_field() {
        let block = kms_block(&KmsSettings { cachesize: 100, ..settings() }, v(14)).unwrap();
        assert_eq!(block.api_version, None);
        assert_eq!(block.cachesize, Some(100));
        assert_eq!(block.endpoint, "unix:///run/kms/p.sock");
    }

    #[test]
    fn api_version_field_from_1_25() {
        let block = kms_block(&settings(), v(25)).unwrap();
        assert_eq!(block.api_version.as_deref(), Some("v1"));
        let block = kms_block(&settings(), v(29)).unwrap();
        assert_eq!(block.api_version.as_deref(), Some("v2"));
        assert_eq!(block.cachesize, None);
    }

    #[test]
    fn zero_cachesize_is_left_to_the_default() {
        let block = kms_block(&KmsSettings { cachesize: 0, ..settings() }, v(20)).unwrap();
        assert_eq!(block.cachesize, None);
        let block = kms_block(&KmsSettings { cachesize: -1, ..settings() }, v(20)).unwrap();
        assert_eq!(block.cachesize, Some(-1));
    }

    #[test]
    fn timeout_in_go_form() {
        let timeout = Some(Duration::from_secs(90));
        let block = kms_block(&KmsSettings { timeout, ..settings() }, v(36)).unwrap();
        assert_eq!(block.timeout.as_deref(), Some("1m30s"));
    }

    #[test]
    fn refuses_what_kube_apiserver_rejects() {
        let v2 = Some(KmsApiVersion::V2);
        let cases = [
            (KmsSettings { name: String::new(), ..settings() }, RenderError::MissingName),
            (
                KmsSettings { endpoint: None, ..settings() },
                RenderError::MissingEndpoint { name: "vault".to_owned() },
            ),
            (KmsSettings { resources: vec![], ..settings() }, RenderError::NoResources),
            (KmsSettings { timeout: Some(Duration::ZERO), ..settings() }, RenderError::ZeroTimeout),
            (
                KmsSettings { api_version: v2, cachesize: 5, ..settings() },
                RenderError::CachesizeWithV2 { cachesize: 5 },
            ),
            (
                KmsSettings { name: "a:b".to_owned(), ..settings() },
                RenderError::ColonInV2Name { name: "a:b".to_owned() },
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(kms_block(&settings, v(36)).unwrap_err(), expected);
        }
        let err = kms_block(&KmsSettings { api_version: v2, ..settings() }, v(24)).unwrap_err();
        assert_eq!(err, RenderError::KmsV2Unavailable { version: v(24) });
    }

    #[test]
    fn v1_name_may_hold_a_colon() {
        let block = kms_block(&KmsSettings { name: "a:b".to_owned(), ..settings() }, v(28));
        assert_eq!(block.unwrap().name, "a:b");
    }

    #[test]
    fn keys_follow_the_storage_prefix() {
        let kms = |api: Option<&str>, endpoint: &str| {
            ProviderConfiguration::kms(KmsConfiguration {
                api_version: api.map(str::to_owned),
                name: "vault".to_owned(),
                endpoint: endpoint.to_owned(),
                ..KmsConfiguration::default()
            })
        };
        let key = |p: &ProviderConfiguration| ProviderKey::of(p);
        assert_eq!(key(&kms(None, "unix:///a")), key(&kms(Some("v1"), "unix:///b")));
        assert_ne!(key(&kms(Some("v1"), "unix:///a")), key(&kms(Some("v2"), "unix:///a")));
        assert_ne!(key(&kms(Some("v3"), "unix:///a")), key(&kms(Some("v4"), "unix:///a")));
        assert_eq!(key(&ProviderConfiguration::identity()), ProviderKey::Identity);
    }
}
