//! Resource names as kube-apiserver matches them: `secrets`, `deployments.apps`, `*.apps`, `*.`
//! and `*.*`.

/// A resource name split the way kube-apiserver's `ParseGroupResource` splits it: at the first
/// dot, so `secrets` and `secrets.` are the same core resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupResource<'a> {
    resource: &'a str,
    group: &'a str,
}

impl<'a> GroupResource<'a> {
    /// Splits `name` at its first dot.
    pub(crate) fn parse(name: &'a str) -> Self {
        match name.split_once('.') {
            Some((resource, group)) => Self { resource, group },
            None => Self { resource: name, group: "" },
        }
    }

    /// `*.<group>` or `*.*`.
    fn is_wildcard(self) -> bool {
        self.resource == "*"
    }

    /// `*.*`, every resource of every group.
    fn is_any(self) -> bool {
        self.is_wildcard() && self.group == "*"
    }

    /// Whether this wildcard matches `other`, which is a different name: `*.*` matches everything
    /// else, `*.apps` matches `deployments.apps`. These are the pairs kube-apiserver calls
    /// overlapping inside one list, and masking across entries.
    pub(crate) fn covers(self, other: Self) -> bool {
        self.is_wildcard() && self != other && (self.group == "*" || self.group == other.group)
    }
}

/// Whether `name` is named by, or matched by a wildcard of, `list`.
pub(crate) fn covered_by(name: &str, list: &[String]) -> bool {
    let gr = GroupResource::parse(name);
    list.iter().map(|n| GroupResource::parse(n)).any(|w| w == gr || w.covers(gr))
}

/// Whether a list of resource names contains `name` in any spelling.
pub(crate) fn contains(list: &[String], name: GroupResource<'_>) -> bool {
    list.iter().any(|n| GroupResource::parse(n) == name)
}

/// How kube-apiserver finds the entries that hold the data of a concrete resource or of every
/// resource a wildcard matches, in a file with `entries` (each a list of resource names).
///
/// Returns, for each entry, whether its providers may have written such data, and whether some of
/// that data may match no entry at all and so be stored in plaintext. kube-apiserver looks a
/// resource up by its exact name (every entry naming it, providers concatenated), then by
/// `*.<group>`, then by `*.*`, and falls back to identity.
pub(crate) fn writers_of(target: &str, entries: &[&[String]]) -> (Vec<bool>, bool) {
    let target = GroupResource::parse(target);
    let any_entry_has = |gr: GroupResource<'_>| entries.iter().any(|list| contains(list, gr));
    let group_wildcard = GroupResource { resource: "*", group: target.group };
    let any = GroupResource { resource: "*", group: "*" };

    if target.is_any() {
        // Every resource of every group: all entries, and plaintext unless `*.*` catches the rest.
        return (vec![true; entries.len()], !any_entry_has(any));
    }

    if target.is_wildcard() {
        // Every resource of one group: exact names of that group, the group wildcard, and `*.*`
        // for the resources of the group no entry names when there is no group wildcard.
        let has_group_wildcard = any_entry_has(group_wildcard);
        let sources = entries
            .iter()
            .map(|list| {
                list.iter()
                    .map(|n| GroupResource::parse(n))
                    .any(|gr| (gr.group == target.group) || (!has_group_wildcard && gr == any))
            })
            .collect();
        return (sources, !has_group_wildcard && !any_entry_has(any));
    }

    let step = [target, group_wildcard, any].into_iter().find(|gr| any_entry_has(*gr));
    match step {
        Some(found) => (entries.iter().map(|list| contains(list, found)).collect(), false),
        None => (vec![false; entries.len()], true),
    }
}

/// `names` without repeats and without names a wildcard of the same list already matches, which
/// kube-apiserver rejects inside one list from 1.27 on. The first spelling of a name is kept.
pub(crate) fn normalize(names: &[String]) -> Vec<String> {
    let parsed: Vec<GroupResource<'_>> = names.iter().map(|n| GroupResource::parse(n)).collect();
    let keep = |i: usize| {
        let gr = parsed[i];
        let repeated = parsed[..i].contains(&gr);
        let masked = parsed.iter().any(|other| other.covers(gr));
        !repeated && !masked
    };
    (0..names.len()).filter(|&i| keep(i)).map(|i| names[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn parses_like_kube_apiserver() {
        assert_eq!(GroupResource::parse("secrets"), GroupResource::parse("secrets."));
        let gr = GroupResource::parse("deployments.apps");
        assert_eq!((gr.resource, gr.group), ("deployments", "apps"));
        let gr = GroupResource::parse("foo.bar.example.com");
        assert_eq!((gr.resource, gr.group), ("foo", "bar.example.com"));
    }

    #[test]
    fn wildcards_cover_their_group_only() {
        let p = GroupResource::parse;
        assert!(p("*.").covers(p("secrets")));
        assert!(!p("*.").covers(p("deployments.apps")));
        assert!(p("*.apps").covers(p("deployments.apps")));
        assert!(p("*.*").covers(p("*.")));
        assert!(p("*.*").covers(p("secrets")));
        assert!(!p("*.").covers(p("*.")));
        assert!(!p("*.").covers(p("*.apps")));
        assert!(!p("secrets").covers(p("secrets")));
    }

    #[test]
    fn normalize_drops_repeats_and_masked_names() {
        assert_eq!(
            normalize(&list(&["secrets", "secrets.", "configmaps"])),
            ["secrets", "configmaps"]
        );
        assert_eq!(normalize(&list(&["secrets", "*."])), ["*."]);
        assert_eq!(normalize(&list(&["*.apps", "*."])), ["*.apps", "*."]);
        assert_eq!(normalize(&list(&["*.", "deployments.apps", "*.*"])), ["*.*"]);
    }

    #[test]
    fn writers_follow_the_lookup_order() {
        let exact = list(&["secrets"]);
        let core = list(&["*."]);
        let all = list(&["*.*"]);
        let entries: Vec<&[String]> = vec![&all, &core, &exact];

        assert_eq!(writers_of("secrets", &entries), (vec![false, false, true], false));
        assert_eq!(writers_of("configmaps", &entries), (vec![false, true, false], false));
        assert_eq!(writers_of("deployments.apps", &entries), (vec![true, false, false], false));
        assert_eq!(writers_of("*.", &entries), (vec![false, true, true], false));
        assert_eq!(writers_of("*.apps", &entries), (vec![true, false, false], false));
        assert_eq!(writers_of("*.*", &entries), (vec![true, true, true], false));
    }

    #[test]
    fn unmatched_data_is_plaintext() {
        let exact = list(&["secrets"]);
        let entries: Vec<&[String]> = vec![&exact];
        assert_eq!(writers_of("configmaps", &entries), (vec![false], true));
        assert_eq!(writers_of("*.", &entries), (vec![true], true));
        assert_eq!(writers_of("*.*", &entries), (vec![true], true));
        assert_eq!(writers_of("secrets.", &entries), (vec![true], false));
    }
}
