//! Settings validation: the sample UCP configuration, every rule, and where each problem is
//! placed (1-based line and column of the offending value).

use super::*;
use crate::Severity;

const SAMPLE: &str = include_str!("../../tests/fixtures/ucp-config-sample.toml");

fn v(minor: u16) -> KubeVersion {
    KubeVersion::new(minor).unwrap()
}

/// The sample with its four KMS lines replaced by `kms`.
fn sample_with(kms: &str) -> String {
    let start = SAMPLE.find("  kms_enabled = false").unwrap();
    let end = SAMPLE.find("  kms_cachesize = 0").unwrap();
    let end = end + SAMPLE[end..].find('\n').unwrap() + 1;
    format!("{}{kms}{}", &SAMPLE[..start], &SAMPLE[end..])
}

/// Line of the first KMS key in [`sample_with`].
const KMS_LINE: usize = 112;

fn cluster(kms: &str) -> String {
    format!("[cluster_config]\n{kms}")
}

/// `(field, line, column, message)` of every error.
fn errors(toml: &str, version: KubeVersion) -> Vec<(String, usize, usize, String)> {
    match load_settings(toml, version) {
        Ok(_) => Vec::new(),
        Err(invalid) => invalid
            .errors
            .into_iter()
            .map(|d| (d.field, d.line.unwrap_or(0), d.column.unwrap_or(0), d.message))
            .collect(),
    }
}

fn error_fields(toml: &str, version: KubeVersion) -> Vec<String> {
    errors(toml, version).into_iter().map(|(field, ..)| field).collect()
}

fn warnings(toml: &str, version: KubeVersion) -> Vec<Diagnostic> {
    match load_settings(toml, version) {
        Ok(valid) => valid.warnings,
        Err(invalid) => invalid.warnings,
    }
}

#[test]
fn the_sample_is_valid_as_exported() {
    let valid = load_settings(SAMPLE, KubeVersion::DEFAULT).unwrap();
    assert!(!valid.settings.enabled);
    assert_eq!(valid.settings.endpoint, None);
    assert_eq!(valid.settings.resources, ["secrets"]);
    assert!(valid.warnings.is_empty(), "{:?}", valid.warnings);
    for minor in [14, 24, 25, 28, 29, 36] {
        assert!(load_settings(SAMPLE, v(minor)).is_ok(), "1.{minor}");
    }
}

#[test]
fn the_sample_is_valid_with_kms_enabled() {
    let toml = sample_with(
        "  kms_enabled = true\n  kms_name = \"vault\"\n  kms_endpoint = \
         \"/run/kmsplugin/socket.sock\"\n  kms_cachesize = 0\n",
    );
    let valid = load_settings(&toml, KubeVersion::DEFAULT).unwrap();
    let settings = &valid.settings;
    assert!(settings.enabled);
    assert_eq!(settings.name, "vault");
    assert_eq!(settings.endpoint, Some(Endpoint::Path("/run/kmsplugin/socket.sock".to_owned())));
    assert_eq!(settings.effective_api_version(KubeVersion::DEFAULT), KmsApiVersion::V2);
    assert!(valid.warnings.is_empty());
}

#[test]
fn a_file_without_cluster_config_has_kms_disabled() {
    let valid = load_settings("[auth]\nbackend = \"managed\"\n", KubeVersion::DEFAULT).unwrap();
    assert_eq!(valid.settings, KmsSettings::disabled());
    assert!(load_settings("", KubeVersion::DEFAULT).is_ok());
    assert!(load_settings("[cluster_config]\ncontroller_port = 443\n", v(14)).is_ok());
}

#[test]
fn places_errors_at_the_offending_value() {
    let toml = sample_with(
        "  kms_enabled = true\n  kms_name = \"my vault\"\n  kms_endpoint = \"run/kms.sock\"\n  \
         kms_cachesize = 0\n",
    );
    assert_eq!(
        errors(&toml, KubeVersion::DEFAULT),
        [
            (
                "cluster_config.kms_name".to_owned(),
                KMS_LINE + 1,
                14,
                "must not contain whitespace or control characters, got \"my vault\"".to_owned()
            ),
            (
                "cluster_config.kms_endpoint".to_owned(),
                KMS_LINE + 2,
                18,
                "must be an absolute path, a unix:// URL or an abstract @name, got \
                 \"run/kms.sock\""
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn reports_every_problem_at_once() {
    let toml = cluster(
        "kms_enabled = true\nkms_cachesize = \"100\"\nkms_api_version = \"v3\"\n\
         kms_timeout = \"0s\"\nkms_resources = []\n",
    );
    assert_eq!(
        errors(&toml, KubeVersion::DEFAULT),
        [
            (
                "cluster_config.kms_name".to_owned(),
                2,
                15,
                "is required when kms_enabled = true: the KMS provider name, like \"vault\""
                    .to_owned()
            ),
            (
                "cluster_config.kms_endpoint".to_owned(),
                2,
                15,
                "is required when kms_enabled = true: the host path of the KMS plugin's socket, \
                 like \"/run/kmsplugin/socket.sock\""
                    .to_owned()
            ),
            (
                "cluster_config.kms_cachesize".to_owned(),
                3,
                17,
                "must be an integer (0 for the Kubernetes default), got the string \"100\""
                    .to_owned()
            ),
            (
                "cluster_config.kms_api_version".to_owned(),
                4,
                19,
                "must be \"v1\" or \"v2\", got \"v3\"".to_owned()
            ),
            (
                "cluster_config.kms_timeout".to_owned(),
                5,
                15,
                "must be longer than 0, got \"0s\"".to_owned()
            ),
            (
                "cluster_config.kms_resources".to_owned(),
                6,
                17,
                "must name at least one resource, like [\"secrets\"]".to_owned()
            ),
        ]
    );
}

#[test]
fn disabled_kms_is_lenient_about_empty_values_only() {
    let toml = cluster("kms_enabled = false\nkms_name = \"\"\nkms_endpoint = \"\"\n");
    assert!(load_settings(&toml, KubeVersion::DEFAULT).is_ok());
    let toml = cluster("kms_enabled = false\nkms_endpoint = \"tcp://127.0.0.1:8080\"\n");
    assert_eq!(error_fields(&toml, KubeVersion::DEFAULT), ["cluster_config.kms_endpoint"]);
    let toml = cluster("kms_enabled = \"yes\"\n");
    assert_eq!(
        errors(&toml, KubeVersion::DEFAULT)[0].3,
        "must be true or false, got the string \"yes\""
    );
}

#[test]
fn endpoint_forms() {
    let path = |p: &str| Ok(Endpoint::Path(p.to_owned()));
    let abstract_ = |n: &str| Ok(Endpoint::Abstract(n.to_owned()));
    assert_eq!(parse_endpoint("/run/p.sock"), path("/run/p.sock"));
    assert_eq!(parse_endpoint("unix:///run/p.sock"), path("/run/p.sock"));
    assert_eq!(parse_endpoint("@kms"), abstract_("kms"));
    assert_eq!(parse_endpoint("unix:///@kms"), abstract_("kms"));

    let refused = [
        ("run/kms.sock", "must be an absolute path, a unix:// URL or an abstract @name"),
        ("./kms.sock", "must be an absolute path"),
        ("tcp://127.0.0.1:8080", "unsupported scheme \"tcp\""),
        ("https://kms.example.com", "unsupported scheme \"https\""),
        ("unix://run/kms.sock", "three slashes"),
        ("unix://@kms", "three slashes"),
        ("/run/../etc/kms.sock", "\"..\" components"),
        ("unix:///run/kms/../kms.sock", "\"..\" components"),
        ("/run/kms/", "not a directory"),
        ("/run/kms\n.sock", "control characters"),
        ("/run/kms.sock?x", "must not contain '?'"),
        ("/run/k%20s.sock", "must not contain '%'"),
        ("@", "needs a name"),
        ("unix:///@", "needs a name"),
    ];
    for (input, expected) in refused {
        let message = parse_endpoint(input).unwrap_err();
        assert!(message.contains(expected), "{input}: {message}");
        assert!(message.contains(&format!("{input:?}")), "{input}: {message}");
    }
    let long = format!("/{}", "a".repeat(MAX_SOCKET_PATH_BYTES));
    assert!(parse_endpoint(&long).unwrap_err().contains("at most 107"));
    let fits = format!("/{}", "a".repeat(MAX_SOCKET_PATH_BYTES - 1));
    assert!(parse_endpoint(&fits).is_ok());
    assert_eq!("unix:///@x".parse::<Endpoint>().unwrap().to_url(), "unix:///@x");
}

#[test]
fn api_version_is_inferred_as_designed() {
    let load = |kms: &str, minor| load_settings(&cluster(kms), v(minor)).map(|v| v.settings);
    let base = "kms_enabled = true\nkms_name = \"vault\"\nkms_endpoint = \"/run/k.sock\"\n";
    let api = |kms: &str, minor| load(kms, minor).unwrap().effective_api_version(v(minor));
    assert_eq!(api(base, 36), KmsApiVersion::V2);
    assert_eq!(api(base, 29), KmsApiVersion::V2);
    assert_eq!(api(base, 28), KmsApiVersion::V1);
    assert_eq!(api(&format!("{base}kms_cachesize = 100\n"), 36), KmsApiVersion::V1);
    assert_eq!(api(&format!("{base}kms_cachesize = -1\n"), 36), KmsApiVersion::V1);
    assert_eq!(api(&format!("{base}kms_api_version = \"v1\"\n"), 36), KmsApiVersion::V1);
    assert_eq!(api(&format!("{base}kms_api_version = \"v2\"\n"), 25), KmsApiVersion::V2);

    let both = format!("{base}kms_api_version = \"v2\"\nkms_cachesize = 100\n");
    let found = errors(&cluster(&both), v(36));
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].1), ("cluster_config.kms_cachesize", 6));
    assert!(found[0].3.contains("must be 0 with kms_api_version = \"v2\""));

    let v2_too_early = format!("{base}kms_api_version = \"v2\"\n");
    let found = errors(&cluster(&v2_too_early), v(24));
    assert_eq!(found[0].0, "cluster_config.kms_api_version");
    assert!(found[0].3.starts_with("KMS v2 needs Kubernetes 1.25 or later, the target is 1.24"));
}

#[test]
fn colons_in_the_name_are_refused_for_kms_v2_only() {
    let kms = |extra: &str| {
        cluster(&format!(
            "kms_enabled = true\nkms_name = \"a:b\"\nkms_endpoint = \"/run/k.sock\"\n{extra}"
        ))
    };
    let found = errors(&kms(""), v(36));
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].1, found[0].2), (3, 12));
    assert!(found[0].3.starts_with("must not contain ':' with KMS v2"));
    assert!(load_settings(&kms("kms_cachesize = 10\n"), v(36)).is_ok());
    assert!(load_settings(&kms(""), v(28)).is_ok());
}

#[test]
fn kms_v1_warns_about_deprecation_and_the_gate() {
    let toml = cluster(
        "kms_enabled = true\nkms_name = \"vault\"\nkms_endpoint = \"/run/k.sock\"\n\
         kms_cachesize = 100\n",
    );
    assert!(warnings(&toml, v(27)).is_empty());
    let at_28 = warnings(&toml, v(28));
    assert_eq!(at_28.len(), 1);
    assert_eq!(at_28[0].severity, Severity::Warning);
    assert_eq!((at_28[0].field.as_str(), at_28[0].line), ("cluster_config.kms_cachesize", Some(5)));
    assert!(!at_28[0].message.contains("feature-gates"));
    let at_29 = warnings(&toml, v(29));
    assert!(at_29[0].message.contains("--feature-gates=KMSv1=true"), "{}", at_29[0].message);
    // A v1 configuration still validates: warnings do not stop rendering.
    assert!(load_settings(&toml, v(36)).is_ok());
    // Disabled KMS warns about nothing.
    let off = cluster("kms_cachesize = 100\n");
    assert!(warnings(&off, v(36)).is_empty());
}

#[test]
fn kms_v2_warns_while_alpha() {
    let toml = cluster(
        "kms_enabled = true\nkms_name = \"vault\"\nkms_endpoint = \"/run/k.sock\"\n\
         kms_api_version = \"v2\"\n",
    );
    assert!(warnings(&toml, v(26))[0].message.contains("--feature-gates=KMSv2=true"));
    assert!(warnings(&toml, v(27)).is_empty());
}

#[test]
fn timeout_is_a_positive_go_duration() {
    let load = |t: &str| load_settings(&cluster(&format!("kms_timeout = {t}\n")), v(36));
    assert_eq!(load("\"1m30s\"").unwrap().settings.effective_timeout().as_secs(), 90);
    assert_eq!(load_settings("", v(36)).unwrap().settings.effective_timeout().as_secs(), 3);
    let message = |t: &str| load(t).unwrap_err().errors[0].message.clone();
    assert!(message("\"3\"").contains("time: missing unit in duration \"3\""));
    assert!(message("\"-1s\"").starts_with("must be longer than 0"));
    assert!(message("3").starts_with("must be a string, got the integer 3"));
}

#[test]
fn resources_follow_kube_apiserver_rules_for_the_target() {
    let load = |list: &str, minor| errors(&cluster(&format!("kms_resources = {list}\n")), v(minor));
    assert!(load("[\"secrets\", \"configmaps\", \"*.apps\"]", 36).is_empty());
    let found = load("[\"secrets\", \"Secrets\", \"*\"]", 36);
    let fields: Vec<_> = found.iter().map(|e| (e.0.as_str(), e.1, e.2)).collect();
    assert_eq!(
        fields,
        [
            ("cluster_config.kms_resources", 2, 17),
            ("cluster_config.kms_resources[1]", 2, 29),
            ("cluster_config.kms_resources[2]", 2, 40),
        ]
    );
    assert!(found[0].3.contains("overlapping resources"));
    assert!(found[1].3.contains("capital letters"));
    assert!(found[2].3.contains("use '*.' to encrypt all the resources"));
    assert!(load("[\"secrets\", \"secrets\"]", 36)[0].3.contains("multiple times"));
    assert_eq!(load("[\"events.events.k8s.io\"]", 36).len(), 1);
    // Before 1.27 kube-apiserver does not check names, but wildcards do not exist yet.
    assert!(load("[\"Secrets\"]", 26).is_empty());
    assert!(load("[\"*.apps\"]", 26)[0].3.starts_with("wildcards need Kubernetes 1.27"));
    assert_eq!(load("[\"secrets\", 5]", 36)[0].0, "cluster_config.kms_resources[1]");
    assert_eq!(
        load("\"secrets\"", 36)[0].3,
        "must be an array of resource names, like [\"secrets\"], got the string \"secrets\""
    );
    let valid = load_settings(&cluster("kms_resources = [\"secrets\", \"configmaps\"]\n"), v(36));
    assert_eq!(valid.unwrap().settings.resources, ["secrets", "configmaps"]);
}

#[test]
fn toml_syntax_errors_and_wrong_types_are_placed() {
    let found = errors("[cluster_config]\nkms_enabled = tru\n", v(36));
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].1), ("", 2));
    assert!(found[0].3.starts_with("invalid TOML: "), "{}", found[0].3);
    let duplicate = errors("[cluster_config]\nkms_name = \"a\"\nkms_name = \"b\"\n", v(36));
    assert_eq!(duplicate[0].1, 3);
    let not_a_table = errors("cluster_config = 5\n", v(36));
    assert_eq!(not_a_table[0].0, "cluster_config");
    let big = errors(&cluster("kms_cachesize = 3000000000\n"), v(36));
    assert!(big[0].3.contains("from -2147483648 to 2147483647"));
}

#[test]
fn unknown_kms_keys_are_warned_about() {
    let found = warnings(&cluster("kms_endpont = \"/run/k.sock\"\n"), v(36));
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].field.as_str(), found[0].line, found[0].column),
        ("cluster_config.kms_endpont", Some(2), Some(1))
    );
}

#[test]
fn bad_bytes_are_invalid_not_a_panic() {
    let invalid =
        load_settings_bytes(b"[cluster_config]\nkms_name = \"\xff\"\n", v(36)).unwrap_err();
    assert_eq!((invalid.errors[0].line, invalid.errors[0].column), (Some(2), Some(13)));
    assert!(invalid.errors[0].message.contains("not UTF-8"));
    let garbage: Vec<u8> =
        (0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    assert!(load_settings_bytes(&garbage, v(36)).is_err());
    for empty in [&b""[..], b" \n\t\n"] {
        let invalid = load_settings_bytes(empty, v(36)).unwrap_err();
        assert!(invalid.errors[0].message.starts_with("the file is empty"));
    }
    let big = "#".repeat(MAX_DOCUMENT_BYTES + 1);
    assert!(load_settings(&big, v(36)).unwrap_err().errors[0].message.contains("more than"));
}
