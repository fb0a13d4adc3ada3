//! The noise rules every monitor shares: namespace include/exclude globs and the
//! `kpulse.io/ignore=true` label or annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::NamespaceFilter;
use crate::pipeline::Runtime;

use super::IGNORE;

/// `namespaces.include/exclude`, compiled once per configuration (see [`Visibility`]).
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
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
        }
    }

    /// Whether the configuration lets kpulse look at this namespace.
    pub fn namespace(&self, ns: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(ns)) && !self.exclude.is_match(ns)
    }
}

/// What monitors may look at right now: the configured filter plus the namespaces that carry
/// the ignore switch (kept current by the Namespace watch). Two cheap `Arc` clones to take.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub filter: Arc<Filter>,
    pub ignored: Arc<BTreeSet<String>>,
}

impl Namespaces {
    /// Whether objects in this namespace are watched.
    pub fn watched(&self, ns: &str) -> bool {
        self.filter.namespace(ns) && !self.ignored.contains(ns)
    }

    /// Whether `other` is this very view: the same compiled filter and the same published set
    /// of ignored namespaces (each is replaced, never changed in place).
    pub fn same(&self, other: &Namespaces) -> bool {
        Arc::ptr_eq(&self.filter, &other.filter) && Arc::ptr_eq(&self.ignored, &other.ignored)
    }
}

/// Which namespaces the monitors may look at: owned by [`super::start`], shared by every watch
/// and the kubelet stats scan. The Namespace watch keeps the ignored set current; the filter is
/// compiled once per configuration generation, on first use.
#[derive(Debug, Default)]
pub struct Visibility {
    compiled: Mutex<Option<(u64, Arc<Filter>)>>,
    ignored: RwLock<Arc<BTreeSet<String>>>,
}

impl Visibility {
    /// Replaces the set of namespaces carrying the ignore switch.
    pub fn set_ignored(&self, namespaces: BTreeSet<String>) {
        *self
            .ignored
            .write()
            .expect("ignored-namespaces lock is never poisoned") = Arc::new(namespaces);
    }

    /// What monitors may look at under the configuration `runtime`.
    pub fn now(&self, runtime: &Runtime) -> Namespaces {
        let filter = {
            let mut compiled = self
                .compiled
                .lock()
                .expect("namespace filter lock is never poisoned");
            match compiled.as_ref() {
                Some((generation, f)) if *generation == runtime.generation => f.clone(),
                _ => {
                    let f = Arc::new(Filter::new(&runtime.config.namespaces));
                    *compiled = Some((runtime.generation, f.clone()));
                    f
                }
            }
        };
        Namespaces {
            filter,
            ignored: self
                .ignored
                .read()
                .expect("ignored-namespaces lock is never poisoned")
                .clone(),
        }
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
        let scope = Namespaces {
            filter: Arc::new(Filter::new(&NamespaceFilter::default())),
            ignored: Arc::new(["quiet".to_string()].into()),
        };
        assert!(!scope.watched("quiet"));
        assert!(scope.watched("loud"));
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

    #[test]
    fn visibility_compiles_the_filter_of_each_configuration_and_keeps_the_ignored_set() {
        let runtime = |generation: u64, exclude: &str| {
            let mut config = crate::config::Config::default();
            config.namespaces.exclude = vec![exclude.to_string()];
            Runtime {
                config: Arc::new(config),
                registry: Default::default(),
                generation,
                redactor: Arc::default(),
                templates: Arc::new(crate::templates::Templates::none()),
            }
        };
        let v = Visibility::default();
        v.set_ignored(["quiet".to_string()].into());
        let first = runtime(1, "kube-*");
        assert!(!v.now(&first).watched("kube-system"));
        assert!(v.now(&first).watched("shop"));
        assert!(!v.now(&first).watched("quiet"));
        // A new configuration generation is compiled afresh; the ignored set stays.
        let second = runtime(2, "shop");
        assert!(v.now(&second).watched("kube-system"));
        assert!(!v.now(&second).watched("shop"));
        assert!(!v.now(&second).watched("quiet"));
    }
}
