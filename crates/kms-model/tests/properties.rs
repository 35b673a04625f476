//! Properties over arbitrary input: durations round-trip through Go's text form, and no input
//! makes the decoders panic.

use std::time::Duration;

use kms_model::duration::{format_go_duration, parse_go_duration};
use kms_model::{KubeVersion, LintOptions, lint, load_settings, load_settings_bytes};
use proptest::prelude::*;

proptest! {
    #[test]
    fn durations_round_trip(nanos in 0u64..=i64::MAX as u64) {
        let text = format_go_duration(Duration::from_nanos(nanos));
        let parsed = parse_go_duration(&text).unwrap();
        prop_assert_eq!(parsed.as_nanos(), nanos as i64, "{}", text);
    }

    #[test]
    fn duration_parsing_never_panics(text in "[-+0-9.a-zµμ ]{0,24}") {
        let _ = parse_go_duration(&text);
    }

    #[test]
    fn lint_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let errors = lint(&bytes, &LintOptions::default());
        prop_assert!(!errors.is_empty() || !bytes.is_empty());
    }

    #[test]
    fn lint_never_panics_on_yaml_like_text(
        text in "(apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n)?\
                 (resources:\n)?([ -]{0,4}(resources|providers|kms|name|endpoint|keys|secret|\
                 timeout|cachesize|identity|aescbc|\\*\\.|&a|\\*a|\\{|\\}|\\[|\\]|:|,|0s|-1|x)\
                 {1,3}\n){0,12}",
        minor in 14u16..=36,
    ) {
        let options = LintOptions::for_version(KubeVersion::new(minor).unwrap());
        let _ = lint(text.as_bytes(), &options);
    }

    #[test]
    fn settings_never_panic(
        text in "(\\[cluster_config\\]\n)?((kms_[a-z_]{2,12}|x) = (\"[^\"\n]{0,12}\"|-?[0-9]{1,12}|\
                 true|\\[\"[a-z.*]{0,6}\"\\]|\\{\\}|)\n){0,8}",
        minor in 14u16..=36,
    ) {
        let version = KubeVersion::new(minor).unwrap();
        let _ = load_settings(&text, version);
    }

    #[test]
    fn settings_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = load_settings_bytes(&bytes, KubeVersion::DEFAULT);
    }
}
