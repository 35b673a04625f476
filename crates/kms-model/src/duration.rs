//! Go duration strings (`3s`, `1m30s`, `-15s`), the form of `metav1.Duration` in YAML.
