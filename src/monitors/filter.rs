//! The noise rules every monitor shares: namespace include/exclude globs and the
//! `kpulse.io/ignore=true` label or annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock, RwLock};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::NamespaceFilter;

use super::IGNORE;

/// A compiled namespace filter.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// Namespaces carrying the ignore switch, as last published by the Namespace watch.
    ignored: Arc<BTreeSet<String>>,
}

/// Namespaces labelled or annotated `kpulse.io/ignore=true`, kept current by the Namespace
/// watch (`cluster.rs`); every [`Filter`] takes a snapshot.
static IGNORED_NAMESPACES: LazyLock<RwLock<Arc<BTreeSet<String>>>> =
    LazyLock::new(Default::default);

/// Replaces the set of namespaces with the ignore switch.
pub fn set_ignored_namespaces(namespaces: BTreeSet<String>) {
    *IGNORED_NAMESPACES
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Arc::new(namespaces);
}

fn globs(patterns: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // Validation rejected bad globs already; skip rather than fail here.
        if let Ok(g) = Glob::new(p) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

impl Filter {
    pub fn new(f: &NamespaceFilter) -> Self {
        Filter {
            include: (!f.include.is_empty()).then(|| globs(&f.include)),
            exclude: globs(&f.exclude),
            ignored: IGNORED_NAMESPACES
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Whether objects in this namespace are watched.
    pub fn namespace(&self, ns: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(ns))
            && !self.exclude.is_match(ns)
            && !self.ignored.contains(ns)
    }
}

/// Whether labels or annotations carry `kpulse.io/ignore=true`.
pub fn ignored(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> bool {
    let set = |m: Option<&BTreeMap<String, String>>| {
        m.and_then(|m| m.get(IGNORE)).is_some_and(|v| v == "true")
    };
    set(labels) || set(annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude_globs() {
        let f = Filter::new(&NamespaceFilter {
            include: vec!["team-*".into(), "shop".into()],
            exclude: vec!["team-sandbox*".into()],
        });
        let cases = [
            ("team-a", true),
            ("shop", true),
            ("team-sandbox-1", false),
            ("kube-system", false),
        ];
        for (ns, want) in cases {
            assert_eq!(f.namespace(ns), want, "{ns}");
        }
        let all = Filter::new(&NamespaceFilter::default());
        assert!(all.namespace("anything"));
    }

    #[test]
    fn namespaces_with_the_ignore_switch_are_filtered_out() {
        // The set is process-wide: use a name no other test filters on.
        set_ignored_namespaces(["filter-test-quiet".to_string()].into());
        let f = Filter::new(&NamespaceFilter::default());
        assert!(!f.namespace("filter-test-quiet"));
        assert!(f.namespace("filter-test-loud"));
    }

    #[test]
    fn ignore_label_or_annotation() {
        let yes: BTreeMap<String, String> = [(IGNORE.to_string(), "true".to_string())].into();
        let no: BTreeMap<String, String> = [(IGNORE.to_string(), "false".to_string())].into();
        assert!(ignored(Some(&yes), None));
        assert!(ignored(None, Some(&yes)));
        assert!(!ignored(Some(&no), None));
        assert!(!ignored(None, None));
    }
}
