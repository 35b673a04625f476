//! Criterion benchmarks of kms-model: settings from a whole UCP configuration, and kube-apiserver's
//! load-time checks of a large EncryptionConfiguration.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kms_model::{KubeVersion, LintOptions, lint, load_settings};

/// A copy of `examples/ucp-config.toml`: every table of a UCP 3.2.x export, KMS turned on.
const UCP_CONFIG: &str = include_str!("fixtures/ucp-config.toml");

/// Providers in the linted file: far more than any cluster carries, so the cost per provider
/// shows.
const LINT_PROVIDERS: usize = 50;

/// An EncryptionConfiguration for `secrets` with `providers` entries: one each of aesgcm, aescbc
/// and secretbox (whose keys are decoded and measured), kms v2 providers, and identity last.
fn encryption_config(providers: usize) -> String {
    assert!(providers >= 5, "the file needs room for every provider type");
    let key16 = "c2VjcmV0IGlzIHNlY3VyZQ==";
    let key32 = "dGhpcyBpcyBhIDMyIGJ5dGUga2V5IGZvciBhZXNjYmM=";
    let mut yaml = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources:\n  - secrets\n  providers:\n",
    );
    for index in 0..providers - 4 {
        write!(
            yaml,
            "  - kms:\n      apiVersion: v2\n      name: plugin-{index}\n      \
             endpoint: unix:///run/kms/plugin-{index}.sock\n      timeout: 3s\n"
        )
        .unwrap();
    }
    write!(yaml, "  - aesgcm:\n      keys:\n      - name: gcm\n        secret: {key16}\n").unwrap();
    write!(yaml, "  - aescbc:\n      keys:\n      - name: cbc\n        secret: {key32}\n").unwrap();
    write!(yaml, "  - secretbox:\n      keys:\n      - name: box\n        secret: {key32}\n")
        .unwrap();
    yaml.push_str("  - identity: {}\n");
    yaml
}

fn load_settings_bench(c: &mut Criterion) {
    let version = KubeVersion::DEFAULT;
    let validated = load_settings(UCP_CONFIG, version).expect("the sample configuration is valid");
    assert!(validated.settings.enabled, "the benchmark measures the KMS-on path");

    let mut group = c.benchmark_group("load_settings");
    group.throughput(Throughput::Bytes(UCP_CONFIG.len() as u64));
    group.bench_function("ucp_sample_kms_on", |b| {
        b.iter(|| load_settings(black_box(UCP_CONFIG), version))
    });
    group.finish();
}

fn lint_bench(c: &mut Criterion) {
    let yaml = encryption_config(LINT_PROVIDERS);
    let options = LintOptions::for_version(KubeVersion::DEFAULT);
    let errors = lint(yaml.as_bytes(), &options);
    assert!(errors.is_empty(), "the benchmark measures an accepted file, got {errors:?}");

    let mut group = c.benchmark_group("lint");
    group.throughput(Throughput::Elements(LINT_PROVIDERS as u64));
    group.bench_function("providers_50", |b| b.iter(|| lint(black_box(yaml.as_bytes()), &options)));
    group.finish();
}

criterion_group!(benches, load_settings_bench, lint_bench);
criterion_main!(benches);
