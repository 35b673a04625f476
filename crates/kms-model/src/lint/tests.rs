//! kube-apiserver's own validation test cases, ported one for one, and the rules that change
//! with the Kubernetes version or the feature gates.

use std::collections::HashSet;

use super::rules::*;
use super::*;
use crate::encryption::{
    AesConfiguration, IdentityConfiguration, Key, KmsConfiguration, ProviderConfiguration,
    ResourceConfiguration, Secret,
};

const KEY_32: &str = "A/j5CnrWGB83ylcPkuUhm/6TSyrQtsNJtDPwPHNOj4Q=";

fn v(minor: u16) -> KubeVersion {
    KubeVersion::new(minor).unwrap()
}

fn key(name: &str, secret: &str) -> Key {
    Key { name: name.to_owned(), secret: Secret::new(secret) }
}

fn aes(keys: Vec<Key>) -> Option<AesConfiguration> {
    Some(AesConfiguration::new(keys))
}

fn kms(api_version: &str, name: &str, cachesize: Option<i32>) -> ProviderConfiguration {
    ProviderConfiguration::kms(KmsConfiguration {
        api_version: Some(api_version.to_owned()),
        name: name.to_owned(),
        cachesize,
        endpoint: "unix:///tmp/kms-provider.socket".to_owned(),
        timeout: Some("3s".to_owned()),
    })
}

fn entry(resources: &[&str], providers: Vec<ProviderConfiguration>) -> ResourceConfiguration {
    ResourceConfiguration {
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        providers,
    }
}

fn config(entries: Vec<ResourceConfiguration>) -> EncryptionConfiguration {
    EncryptionConfiguration::new(entries)
}

fn err(field: &str, message: &str) -> LintError {
    LintError::new(field, message)
}

fn kms_v1_foo() -> Vec<ProviderConfiguration> {
    vec![kms("v1", "foo", Some(1))]
}

/// One resource list with a v1 kms provider, as most resource cases of the upstream test use.
fn resources_case(resources: &[&str]) -> Vec<LintError> {
    let config = config(vec![entry(resources, kms_v1_foo())]);
    validate_configuration(Some(&config), false, true)
}

const EVENTS: &str = "'*.events.k8s.io' objects are stored using the 'events' API group in \
                      etcd. Use 'events' instead in the config file";
const EXTENSIONS: &str = "'extensions' group has been removed and cannot be used for encryption";
const OVERLAP: &str = "using overlapping resources such as 'secrets' and '*.' in the same \
                       resource list is not allowed as they will be masked";
const DUPLICATE: &str = "the same resource cannot be specified multiple times";
const NON_REST: &str = "resources which do not have REST API/s cannot be encrypted";

fn invalid_resource(field: &str, name: &str, detail: &str) -> Vec<LintError> {
    vec![err(field, &format!("invalid value \"{name}\": {detail}"))]
}

fn invalid_list(list: &[&str], detail: &str) -> Vec<LintError> {
    let shown = list.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
    vec![err("resources[0].resources", &format!("invalid value [{shown}]: {detail}"))]
}

#[test]
fn upstream_structure_cases_1_to_6() {
    // 1: nil configuration.
    assert_eq!(
        validate_configuration(None, false, true),
        [err("resources", "EncryptionConfiguration can't be nil")]
    );
    // 2: no resources at all.
    assert_eq!(
        validate_configuration(Some(&config(vec![])), false, true),
        [err("resources", "at least one resources is required")]
    );
    // 3: an entry without resource names.
    let c = config(vec![ResourceConfiguration {
        resources: vec![],
        providers: vec![ProviderConfiguration {
            aescbc: aes(vec![key("foo", KEY_32)]),
            ..Default::default()
        }],
    }]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        [err("resources[0].resources", "at least one resources[0].resources is required")]
    );
    // 4: an entry without providers.
    let c = config(vec![entry(&["secrets"], vec![])]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        [err("resources[0].providers", "at least one resources[0].providers is required")]
    );
    // 5: two provider types in one element.
    let both = ProviderConfiguration {
        aesgcm: aes(vec![key("foo", KEY_32)]),
        aescbc: aes(vec![key("foo", KEY_32)]),
        ..Default::default()
    };
    let c = config(vec![entry(&["secrets"], vec![both])]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        [err(
            "resources[0].providers[0]",
            "more than one provider specified in a single element, should split into different \
             list elements"
        )]
    );
    // 6: a valid configuration.
    let gcm = ProviderConfiguration { aesgcm: aes(vec![key("foo", KEY_32)]), ..Default::default() };
    let c = config(vec![entry(&["secrets"], vec![gcm])]);
    assert_eq!(validate_configuration(Some(&c), false, true), []);
}

#[test]
fn upstream_structure_cases_7_to_12_kms_names() {
    let dup = |field: &str| {
        vec![err(
            field,
            "invalid value \"foo\": duplicate KMS provider name foo, names must be unique",
        )]
    };
    // 7: a v2 name used by an earlier v1 provider.
    let c =
        config(vec![entry(&["secrets"], vec![kms("v1", "foo", Some(1)), kms("v2", "foo", None)])]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        dup("resources[0].providers[1].kms.name")
    );
    // 8: two v2 providers with one name.
    let c = config(vec![entry(&["secrets"], vec![kms("v2", "foo", None), kms("v2", "foo", None)])]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        dup("resources[0].providers[1].kms.name")
    );
    // 9: the same v2 name in two entries.
    let c = config(vec![
        entry(&["secrets"], vec![kms("v2", "foo", None)]),
        entry(&["secrets"], vec![kms("v2", "foo", None)]),
    ]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        dup("resources[1].providers[0].kms.name")
    );
    // 10: v1 then v2 across entries.
    let c = config(vec![
        entry(&["secrets"], vec![kms("v1", "foo", Some(1))]),
        entry(&["secrets"], vec![kms("v2", "foo", None)]),
    ]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        dup("resources[1].providers[0].kms.name")
    );
    // 11 and 12: two v1 providers with one name, without and with automatic reload.
    let c = config(vec![entry(
        &["secrets"],
        vec![kms("v1", "foo", Some(1)), kms("v1", "foo", Some(1))],
    )]);
    assert_eq!(validate_configuration(Some(&c), false, true), []);
    assert_eq!(
        validate_configuration(Some(&c), true, true),
        dup("resources[0].providers[1].kms.name")
    );
}

#[test]
fn upstream_structure_cases_13_to_22_resource_names() {
    // 13
    assert_eq!(
        resources_case(&["events.events.k8s.io"]),
        invalid_resource("resources[0].resources[0]", "events.events.k8s.io", EVENTS)
    );
    // 14: only the later entry is wrong.
    let c = config(vec![
        entry(&["secrets"], kms_v1_foo()),
        entry(&["secret", "events.events.k8s.io"], kms_v1_foo()),
    ]);
    assert_eq!(
        validate_configuration(Some(&c), false, true),
        invalid_resource("resources[1].resources[1]", "events.events.k8s.io", EVENTS)
    );
    // 15 to 17
    assert_eq!(
        resources_case(&["*.events.k8s.io"]),
        invalid_resource("resources[0].resources[0]", "*.events.k8s.io", EVENTS)
    );
    assert_eq!(
        resources_case(&["*.extensions"]),
        invalid_resource("resources[0].resources[0]", "*.extensions", EXTENSIONS)
    );
    assert_eq!(
        resources_case(&["foo.extensions"]),
        invalid_resource("resources[0].resources[0]", "foo.extensions", EXTENSIONS)
    );
    // 18
    assert_eq!(
        resources_case(&["*"]),
        invalid_resource(
            "resources[0].resources[0]",
            "*",
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all \
             resources"
        )
    );
    // 19
    assert_eq!(
        resources_case(&["apiServerIPInfo"]),
        invalid_resource(
            "resources[0].resources[0]",
            "apiServerIPInfo",
            "resource name should not contain capital letters"
        )
    );
    // 20 to 22
    for name in ["apiserveripinfo", "serviceipallocations", "servicenodeportallocations"] {
        assert_eq!(
            resources_case(&[name]),
            invalid_resource("resources[0].resources[0]", name, NON_REST)
        );
    }
}

#[test]
fn upstream_structure_cases_23_to_34_overlaps() {
    // 23
    assert_eq!(resources_case(&["*.apps", "*."]), []);
    // 24
    assert_eq!(
        resources_case(&["*.", "foos.*"]),
        invalid_resource(
            "resources[0].resources[1]",
            "foos.*",
            "encrypting the same resource across groups is not supported"
        )
    );
    // 25 to 27: reported once per list.
    assert_eq!(
        resources_case(&["secrets", "secrets"]),
        invalid_list(&["secrets", "secrets"], DUPLICATE)
    );
    let four = ["secrets", "secrets", "secrets", "secrets"];
    assert_eq!(resources_case(&four), invalid_list(&four, DUPLICATE));
    assert_eq!(
        resources_case(&["secrets", "secrets."]),
        invalid_list(&["secrets", "secrets."], DUPLICATE)
    );
    // 28
    let three = ["*.apps", "*.", "*.*"];
    assert_eq!(resources_case(&three), invalid_list(&three, OVERLAP));
    // 29
    assert_eq!(resources_case(&["deployments.apps", "*."]), []);
    // 30 to 34
    for pair in [
        ["deployments.apps", "*.apps"],
        ["secrets", "*."],
        ["pods", "*."],
        ["secrets", "*.*"],
        ["*.", "*.*"],
    ] {
        assert_eq!(resources_case(&pair), invalid_list(&pair, OVERLAP), "{pair:?}");
    }
}

#[test]
fn upstream_key_cases_35_to_39() {
    let path = "resources[0].provider[0].key[0]";
    assert_eq!(validate_key(&key("foo", "c2VjcmV0IGlzIHNlY3VyZQ=="), path, AES_KEY_SIZES), []);
    assert_eq!(
        validate_key(&key("", "c2VjcmV0IGlzIHNlY3VyZQ=="), path, AES_KEY_SIZES),
        [err(&format!("{path}.name"), "name is a mandatory field for a key")]
    );
    assert_eq!(
        validate_key(&key("foo", ""), path, AES_KEY_SIZES),
        [err(&format!("{path}.secret"), "secret is a mandatory field for a key")]
    );
    assert_eq!(
        validate_key(&key("foo", "P@ssword"), path, AES_KEY_SIZES),
        [err(
            &format!("{path}.secret"),
            "invalid value \"REDACTED\": secrets must be base64 encoded"
        )]
    );
    assert_eq!(
        validate_key(&key("foo", "cGFzc3dvcmQK"), path, AES_KEY_SIZES),
        [err(
            &format!("{path}.secret"),
            "invalid value \"REDACTED\": secret is not of the expected length, got 9, expected \
             one of [16 24 32]"
        )]
    );
}

fn bare_kms(api_version: &str, name: &str) -> KmsConfiguration {
    KmsConfiguration {
        api_version: (!api_version.is_empty()).then(|| api_version.to_owned()),
        name: name.to_owned(),
        ..KmsConfiguration::default()
    }
}

#[test]
fn upstream_kms_cases_40_to_46_timeout_and_endpoint() {
    let field = "Resource[0].Provider[0].KMS.Timeout";
    let with_timeout =
        |t: &str| KmsConfiguration { timeout: Some(t.to_owned()), ..KmsConfiguration::default() };
    assert_eq!(validate_kms_timeout(&with_timeout("1m"), field), []);
    assert_eq!(
        validate_kms_timeout(&with_timeout("-1m"), field),
        [err(field, "invalid value \"-1m\": timeout should be a positive value")]
    );
    assert_eq!(
        validate_kms_timeout(&with_timeout("0"), field),
        [err(field, "invalid value \"0\": timeout should be a positive value")]
    );

    let field = "Resource[0].Provider[0].kms.endpoint";
    let with_endpoint =
        |e: &str| KmsConfiguration { endpoint: e.to_owned(), ..KmsConfiguration::default() };
    assert_eq!(validate_kms_endpoint(&with_endpoint("unix:///socket.sock"), field), []);
    assert_eq!(
        validate_kms_endpoint(&with_endpoint(""), field),
        [err(field, "invalid value \"\": endpoint is a mandatory field for a kms")]
    );
    assert_eq!(
        validate_kms_endpoint(&with_endpoint("https://www.foo.com"), field),
        [err(
            field,
            "invalid value \"https://www.foo.com\": unsupported scheme \"https\" for KMS \
             provider, only unix is supported"
        )]
    );
    assert_eq!(
        validate_kms_endpoint(&with_endpoint("unix:///foo\n.socket"), field),
        [err(
            field,
            "invalid value \"unix:///foo\\n.socket\": invalid endpoint for kms provider, error: \
             parse \"unix:///foo\\n.socket\": net/url: invalid control character in URL"
        )]
    );
}

#[test]
fn upstream_kms_cases_47_to_53_cachesize_and_api_version() {
    let field = "resources[0].kms.cachesize";
    let sized =
        |api: &str, size: i32| KmsConfiguration { cachesize: Some(size), ..bare_kms(api, "") };
    assert_eq!(validate_kms_cachesize(&sized("v1", 10), field), []);
    assert_eq!(
        validate_kms_cachesize(&sized("v1", 0), field),
        [err(
            field,
            "invalid value 0: cachesize should be a positive value, or negative to disable"
        )]
    );
    assert_eq!(validate_kms_cachesize(&sized("v1", -1), field), []);
    assert_eq!(
        validate_kms_cachesize(&sized("v2", 10), field),
        [err(field, "invalid value 10: cachesize is not supported in v2")]
    );

    let field = "Resource[0].Provider[0].KMS.APIVersion";
    assert_eq!(validate_kms_api_version(&bare_kms("v1", ""), field), []);
    assert_eq!(validate_kms_api_version(&bare_kms("v2", ""), field), []);
    assert_eq!(
        validate_kms_api_version(&bare_kms("v3", ""), field),
        [err(
            field,
            "invalid value \"v3\": unsupported apiVersion apiVersion for KMS provider, only v1 \
             and v2 are supported"
        )]
    );
}

#[test]
fn upstream_kms_cases_54_to_61_names() {
    let field = "Resource[0].Provider[0].KMS.name";
    let none = HashSet::new();
    let foo: HashSet<String> = ["foo".to_owned()].into();
    let dup = [err(
        field,
        "invalid value \"foo\": duplicate KMS provider name foo, names must be unique",
    )];

    assert_eq!(validate_kms_name(&bare_kms("", "foo"), field, &none, false), []);
    assert_eq!(
        validate_kms_name(&bare_kms("", ""), field, &none, false),
        [err(field, "name is a mandatory field for a provider")]
    );
    assert_eq!(
        validate_kms_name(&bare_kms("", "foo:bar"), field, &none, false),
        [err(
            field,
            "invalid value \"foo:bar\": invalid KMS provider name foo:bar, must not contain ':'"
        )]
    );
    assert_eq!(validate_kms_name(&bare_kms("v1", "foo:bar"), field, &none, false), []);
    assert_eq!(validate_kms_name(&bare_kms("v2", "foo"), field, &foo, false), dup);
    assert_eq!(validate_kms_name(&bare_kms("v2", "foo"), field, &foo, true), dup);
    assert_eq!(validate_kms_name(&bare_kms("v1", "foo"), field, &foo, false), []);
    assert_eq!(validate_kms_name(&bare_kms("v1", "foo"), field, &foo, true), dup);
}

fn lint_text(text: &str, options: LintOptions) -> Vec<String> {
    lint(text.as_bytes(), &options).iter().map(ToString::to_string).collect()
}

fn one_kms(block: &str, resources: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: {resources}\n  providers:\n  - kms: {block}\n  - identity: {{}}\n"
    )
}

#[test]
fn kms_v1_gate_follows_the_version_and_the_flag() {
    let v1 = one_kms("{name: foo, endpoint: 'unix:///s.sock'}", "[secrets]");
    let options =
        |minor, gate| LintOptions { kms_v1_gate: gate, ..LintOptions::for_version(v(minor)) };
    assert_eq!(lint_text(&v1, options(28, None)), Vec::<String>::new());
    let rejected = lint_text(&v1, options(29, None));
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].starts_with("resources[0].providers[0].kms: KMSv1 is deprecated"));
    assert!(rejected[0].contains("--feature-gates=KMSv1=true"));
    assert!(lint_text(&v1, options(36, Some(true))).is_empty());
    assert_eq!(lint_text(&v1, options(20, Some(false))).len(), 1);
}

#[test]
fn validation_errors_hide_gate_errors() {
    let bad = one_kms("{name: foo, endpoint: 'unix:///s.sock', timeout: 0s}", "[secrets]");
    assert_eq!(
        lint_text(&bad, LintOptions::default()),
        ["resources[0].providers[0].kms.timeout: invalid value \"0s\": timeout should be a \
          positive value"]
    );
}

#[test]
fn kms_v2_is_alpha_behind_its_gate_in_1_25_and_1_26() {
    let v2 = one_kms("{apiVersion: v2, name: foo, endpoint: 'unix:///s.sock'}", "[secrets]");
    let at = |minor| LintOptions::for_version(v(minor));
    let rejected = lint_text(&v2, at(25));
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].contains("--feature-gates=KMSv2=true"), "{rejected:?}");
    let gated = at(26).with_feature_gates("KMSv2=true").unwrap();
    assert!(lint_text(&v2, gated).is_empty());
    assert!(lint_text(&v2, at(27)).is_empty());
    // Before 1.25 the field does not exist, so the block is KMS v1 and v1 is on by default.
    assert!(lint_text(&v2, at(24)).is_empty());
}

#[test]
fn resource_rules_start_at_1_27() {
    let text = one_kms("{apiVersion: v2, name: foo, endpoint: 'unix:///s.sock'}", "[Secrets, '*']");
    assert!(
        lint_text(&text, LintOptions::for_version(v(26)).with_feature_gates("KMSv2=true").unwrap())
            .is_empty()
    );
    // Capital letters, a bare star, and the overlap of `*` with the core group.
    assert_eq!(lint_text(&text, LintOptions::for_version(v(27))).len(), 3);
}

#[test]
fn masking_by_an_earlier_wildcard_is_rejected_from_1_27() {
    let text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                resources:\n- resources: ['*.']\n  providers: [identity: {}]\n\
                - resources: [secrets, deployments.apps]\n  providers: [identity: {}]\n\
                - resources: ['*.*']\n  providers: [identity: {}]\n\
                - resources: ['*.apps']\n  providers: [identity: {}]\n";
    assert_eq!(
        lint_text(text, LintOptions::default()),
        [
            "resources[1].resources[0]: resource \"secrets\" is masked by earlier rule \"*.\"",
            "resources[3].resources[0]: resource \"*.apps\" is masked by earlier rule \"*.*\"",
        ]
    );
    assert!(lint_text(text, LintOptions::for_version(v(26))).is_empty());
}

#[test]
fn the_same_resource_in_two_entries_is_accepted() {
    let text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                resources:\n- resources: [secrets]\n  providers: [identity: {}]\n\
                - resources: [secrets]\n  providers: [identity: {}]\n";
    assert!(lint_text(text, LintOptions::default()).is_empty());
}

#[test]
fn defaulting_makes_an_absent_api_version_v1() {
    // With defaulting, a ':' in a name without apiVersion is a v1 name and allowed.
    let text = one_kms("{name: 'foo:bar', endpoint: 'unix:///s.sock'}", "[secrets]");
    let gated = LintOptions::default().with_feature_gates("KMSv1=true").unwrap();
    assert!(lint_text(&text, gated).is_empty());
    // An explicit cachesize of 0 with v1 is refused; none at all defaults to 1000.
    let zero = one_kms("{name: foo, endpoint: 'unix:///s.sock', cachesize: 0}", "[secrets]");
    assert_eq!(lint_text(&zero, gated).len(), 1);
    let config =
        decode(one_kms("{name: foo, endpoint: 'unix:///s'}", "[secrets]").as_bytes(), v(36))
            .unwrap()
            .with_defaults();
    let kms = config.resources[0].providers[0].kms.clone().unwrap();
    assert_eq!(
        (kms.api_version.as_deref(), kms.cachesize, kms.timeout.as_deref()),
        (Some("v1"), Some(1000), Some("3s"))
    );
}

#[test]
fn automatic_reload_makes_v1_names_unique() {
    let text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                resources:\n- resources: [secrets]\n  providers:\n\
                \x20 - kms: {name: foo, endpoint: 'unix:///a'}\n\
                \x20 - kms: {name: foo, endpoint: 'unix:///b'}\n";
    let gated = LintOptions::default().with_feature_gates("KMSv1=true").unwrap();
    assert!(lint_text(text, gated).is_empty());
    let reload = LintOptions { automatic_reload: true, ..gated };
    assert_eq!(
        lint_text(text, reload),
        ["resources[0].providers[1].kms.name: invalid value \"foo\": duplicate KMS provider name \
          foo, names must be unique"]
    );
}

#[test]
fn feature_gates_parse_as_kube_apiserver_parses_them() {
    let at = |minor| LintOptions::for_version(v(minor));
    let parsed = at(36).with_feature_gates(" KMSv1=true ,").unwrap();
    assert_eq!(parsed.kms_v1_gate, Some(true));
    assert!(parsed.kms_v1_enabled());
    assert!(!at(36).kms_v1_enabled());
    assert!(at(28).kms_v1_enabled());
    assert_eq!(at(36).with_feature_gates("KMSv1=F").unwrap().kms_v1_gate, Some(false));
    assert_eq!(
        at(36).with_feature_gates("KMSv2=true").unwrap_err().to_string(),
        "unrecognized feature gate \"KMSv2\" for Kubernetes 1.36; accepted: KMSv1"
    );
    assert_eq!(
        at(30).with_feature_gates("Foo=true").unwrap_err().to_string(),
        "unrecognized feature gate \"Foo\" for Kubernetes 1.30; accepted: KMSv1, KMSv2"
    );
    assert!(matches!(
        at(30).with_feature_gates("KMSv2=false"),
        Err(FeatureGateError::Locked { .. })
    ));
    assert!(matches!(at(36).with_feature_gates("KMSv1"), Err(FeatureGateError::MissingValue(_))));
    assert!(matches!(
        at(36).with_feature_gates("KMSv1=yes"),
        Err(FeatureGateError::InvalidValue { .. })
    ));
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let secret = "cGFzc3dvcmQK";
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n  \
         - aescbc: {{keys: [{{name: k, secret: {secret}}}]}}\n"
    );
    let errors = lint_text(&text, LintOptions::default());
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].contains(secret), "{errors:?}");
    let config = decode(text.as_bytes(), v(36)).unwrap();
    assert!(!format!("{config:?}").contains(secret));
    let identity =
        ProviderConfiguration { identity: Some(IdentityConfiguration {}), ..Default::default() };
    assert!(identity.is_identity());
}
