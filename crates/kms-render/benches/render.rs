//! Criterion benchmarks of kms-render: a first EncryptionConfiguration from the sample UCP
//! configuration, and a transition on top of an installed file with 10 providers.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kms_model::encryption::EncryptionConfiguration;
use kms_model::{KubeVersion, decode, load_settings};
use kms_render::render;

/// A copy of `examples/ucp-config.toml`: every table of a UCP 3.2.x export, KMS turned on.
const UCP_CONFIG: &str = include_str!("fixtures/ucp-config.toml");

/// Providers in the installed file of the transition.
const PREVIOUS_PROVIDERS: usize = 10;

/// An installed file for `secrets` with `providers` entries: kms v2 providers that have each
/// written data, then identity, as earlier renders leave it.
fn installed_file(providers: usize) -> String {
    let mut yaml = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources:\n  - secrets\n  providers:\n",
    );
    for index in 0..providers - 1 {
        write!(
            yaml,
            "  - kms:\n      apiVersion: v2\n      name: plugin-{index}\n      \
             endpoint: unix:///run/kms/plugin-{index}.sock\n"
        )
        .unwrap();
    }
    yaml.push_str("  - identity: {}\n");
    yaml
}

fn render_bench(c: &mut Criterion) {
    let version = KubeVersion::DEFAULT;
    let settings = load_settings(UCP_CONFIG, version).expect("the sample is valid").settings;
    let previous: EncryptionConfiguration =
        decode(installed_file(PREVIOUS_PROVIDERS).as_bytes(), version).expect("a valid file");
    let transition = render(&settings, version, Some(&previous)).unwrap().unwrap();
    assert_eq!(
        transition.config.resources[0].providers.len(),
        PREVIOUS_PROVIDERS + 1,
        "the new provider goes first and every installed one stays"
    );

    let mut group = c.benchmark_group("render");
    group.bench_function("ucp_sample_kms_on", |b| {
        b.iter(|| render(black_box(&settings), version, None))
    });
    group.bench_function("transition_from_10_providers", |b| {
        b.iter(|| render(black_box(&settings), version, Some(black_box(&previous))))
    });
    group.finish();
}

criterion_group!(benches, render_bench);
criterion_main!(benches);
