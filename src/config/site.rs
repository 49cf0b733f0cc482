//! Where a problem is, said as a path into the document: the lazy form of a [`Loc`].
//!
//! Owns: [`Site`], which validation records with each problem, and turning it into a
//! line and column against the located tree ([`Site::resolve`]).
//! Must not: be built on the happy path. Validation creates a `Site` only when it records a
//! problem, so a configuration without problems never pays for paths or locations.
//! Invariants: resolving never fails; a path that does not exist (any more) resolves to its
//! deepest existing prefix, as [`Node::locate`] does.

use super::tree::{Loc, Node, Seg, path};

/// A problem's place in the merged document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// A path from the document root (empty: the document itself). `key`: point at the
    /// mapping key rather than its value.
    Doc { path: Vec<Seg>, key: bool },
    /// A path inside process `name`, or inside `defaults:` when the process does not set
    /// the first key of `rel` itself but `defaults:` does (the value came from there).
    Process {
        name: String,
        rel: Vec<Seg>,
        key: bool,
    },
}

impl Site {
    /// The value at `path`.
    pub fn value(path: Vec<Seg>) -> Self {
        Site::Doc { path, key: false }
    }

    /// The key at `path`.
    pub fn key(path: Vec<Seg>) -> Self {
        Site::Doc { path, key: true }
    }

    /// The document as a whole.
    pub fn root() -> Self {
        Site::value(Vec::new())
    }

    /// The line and column in the located tree `root`.
    pub fn resolve(&self, root: &Node) -> Loc {
        match self {
            Site::Doc { path, key } => root.locate(path, *key),
            Site::Process { name, rel, key } => {
                let own = path(&["processes", name]);
                let from_defaults = rel.first().is_some_and(|first| {
                    let mut o = own.clone();
                    o.push(first.clone());
                    root.at(&o).is_none() && {
                        let mut d = path(&["defaults"]);
                        d.push(first.clone());
                        root.at(&d).is_some()
                    }
                });
                let mut p = if from_defaults {
                    path(&["defaults"])
                } else {
                    own
                };
                p.extend(rel.iter().cloned());
                root.locate(&p, *key)
            }
        }
    }
}

/// Sites for one process: its own key when it set it, else the `defaults:` key (decided
/// only when a problem's site is resolved, see [`Site::Process`]).
pub(crate) struct Locator<'a> {
    pub name: &'a str,
    pub quiet_missing_command: bool,
}

impl Locator<'_> {
    pub(crate) fn seg(&self, rel: Vec<Seg>, key: bool) -> Site {
        Site::Process {
            name: self.name.to_owned(),
            rel,
            key,
        }
    }
    pub(crate) fn value(&self, rel: &[&str]) -> Site {
        self.seg(path(rel), false)
    }
    pub(crate) fn key(&self, rel: &[&str]) -> Site {
        self.seg(path(rel), true)
    }
}

/// Where a dependency is named in its process's `depends_on`: a list item or a map key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DepAt {
    Item(usize),
    Key,
}

impl DepAt {
    pub(crate) fn site(self, process: &str, dep: &str) -> Site {
        let (last, key) = match self {
            DepAt::Item(i) => (Seg::Index(i), false),
            DepAt::Key => (Seg::Key(dep.to_owned()), true),
        };
        Site::Process {
            name: process.to_owned(),
            rel: vec![Seg::Key("depends_on".into()), last],
            key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree;

    #[test]
    fn process_sites_fall_back_to_defaults() {
        let text = "defaults:\n  restart: sometimes\nprocesses:\n  a:\n    command: x\n";
        let root = tree::parse(text, 0, None).expect("parses").0;
        let site = |rel: &[&str]| Site::Process {
            name: "a".into(),
            rel: path(rel),
            key: false,
        };
        assert_eq!(site(&["restart"]).resolve(&root).line, 2);
        assert_eq!(site(&["command"]).resolve(&root).line, 5);
        assert_eq!(Site::root().resolve(&root), root.loc);
    }
}
