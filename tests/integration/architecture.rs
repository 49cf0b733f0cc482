//! The module boundaries of `docs/architecture.md`, checked on the source text: the CLI
//! imports nothing of the supervisor, system calls stay in `platform/`, and no module imports
//! one that imports it back (directly or around a longer circle); the orchestrator holds its
//! state lock through no I/O and no wait.
//!
//! A module is a file (`src/cli/up.rs` is `cli::up`; `mod.rs` is its directory). An import is a
//! `crate::…` or `super::…` path outside `#[cfg(test)]` code, resolved to the longest module
//! it names. Edges between a module and its own ancestors are not counted: a parent declares
//! and re-exports its children, and children use their parent's items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module under `src/` with its source, tests and comments removed.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("read src/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .expect("under src/")
                    .with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    parts.clear();
                }
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.insert(parts.join("::"), strip(&text));
            }
        }
    }
    let mut out = BTreeMap::new();
    let root = src_dir();
    walk(&root, &root, &mut out);
    out
}

/// Drop line comments and everything from the first `#[cfg(test)]` on.
fn strip(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn resolve(modules: &BTreeMap<String, String>, current: &str, path: &str) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if current.is_empty() {
        Vec::new()
    } else {
        current.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        _ => return None,
    }
    (0..=segs.len())
        .rev()
        .map(|i| {
            let mut parts = base.clone();
            parts.extend(&segs[..i]);
            parts.join("::")
        })
        .find(|m| modules.contains_key(m))
}

fn is_ancestor(a: &str, b: &str) -> bool {
    a.is_empty() || b.starts_with(&format!("{a}::"))
}

/// Module → the modules it imports (ancestor edges left out).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let group = Regex::new(r"\b((?:crate|super)(?:::\w+)*)::\{([^}]*)\}").expect("regex");
    let single = Regex::new(r"\b((?:crate|super)(?:::\w+)+)").expect("regex");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &modules {
        let mut targets = BTreeSet::new();
        for cap in group.captures_iter(text) {
            for item in cap[2].split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                if !item.is_empty()
                    && let Some(t) = resolve(&modules, module, &format!("{}::{item}", &cap[1]))
                {
                    targets.insert(t);
                }
            }
        }
        for cap in single.captures_iter(text) {
            if let Some(t) = resolve(&modules, module, &cap[1]) {
                targets.insert(t);
            }
        }
        targets.retain(|t| t != module && !is_ancestor(t, module) && !is_ancestor(module, t));
        edges.insert(module.clone(), targets);
    }
    edges
}

/// Every circle in `edges`, as a list of modules.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components; a component of two or more is a circle.
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let i = s.index.len();
        s.index.insert(node, i);
        s.low.insert(node, i);
        s.stack.push(node);
        if let Some(next) = s.edges.get(node) {
            for w in next {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let ln = s.low[node];
                    s.low.insert(node, ln.min(lw));
                } else if s.stack.contains(&w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let ln = s.low[node];
                    s.low.insert(node, ln.min(iw));
                }
            }
        }
        if s.low[node] == s.index[node] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_owned());
                if w == node {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !s.index.contains_key(node.as_str()) {
            visit(&mut s, node);
        }
    }
    s.found
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn the_cli_imports_nothing_of_the_supervisor() {
    let offending: Vec<String> = imports()
        .iter()
        .filter(|(m, _)| top(m) == "cli")
        .flat_map(|(m, ts)| {
            ts.iter()
                .filter(|t| top(t) == "supervisor")
                .map(move |t| format!("{m} -> {t}"))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "the CLI imports the supervisor: {offending:?}"
    );
}

#[test]
fn system_crates_are_used_only_in_platform() {
    let pattern = Regex::new(r"\b(nix|rustix|libc)::").expect("regex");
    let offending: Vec<String> = modules()
        .iter()
        .filter(|(m, _)| top(m) != "platform")
        .filter(|(_, text)| pattern.is_match(text))
        .map(|(m, _)| m.clone())
        .collect();
    assert!(
        offending.is_empty(),
        "nix/rustix/libc used outside src/platform/: {offending:?}"
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = imports();
    let files = circles(&edges);
    assert!(files.is_empty(), "import circles between files: {files:?}");
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, ts) in &edges {
        for t in ts {
            if top(m) != top(t) && !top(m).is_empty() {
                tops.entry(top(m).to_owned())
                    .or_default()
                    .insert(top(t).to_owned());
            }
        }
    }
    let modules = circles(&tops);
    assert!(
        modules.is_empty(),
        "import circles between top-level modules: {modules:?}"
    );
}

#[test]
fn the_checker_sees_a_circle_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("d".into()).or_default().insert("a".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_owned(), "b".into(), "c".into()]]
    );
    // And the resolver finds real imports: the supervisor imports the registry.
    assert!(imports()["supervisor"].contains("registry"));
}

/// The I/O (and waits) found inside each section of `text` that holds the orchestrator's state
/// lock through a named guard (`let state = self.state();` to the end of its block).
fn io_under_the_state_lock(text: &str) -> Vec<String> {
    const IO: [&str; 7] = [
        ".await",
        "std::fs::",
        "runs::",
        "write_pid_file",
        "spawn_blocking",
        "registry::save",
        "File::",
    ];
    let guard = Regex::new(r"let (mut )?\w+ = self\.state\(\);").expect("regex");
    let mut found = Vec::new();
    for m in guard.find_iter(text) {
        // The guard lives to the end of the block it was declared in.
        let mut depth = 0i32;
        let mut end = text.len();
        for (i, c) in text[m.end()..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = m.end() + i;
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        let section = &text[m.end()..end];
        for io in IO {
            if section.contains(io) {
                let line = text[..m.start()].lines().count() + 1;
                found.push(format!("`{io}` under the guard taken at line {line}"));
            }
        }
    }
    found
}

/// `docs/architecture.md`: the orchestrator's one state lock is taken for short sections
/// that never `.await` and never do I/O (a run record's removal, a registry write).
#[test]
fn the_orchestrators_state_lock_is_never_held_across_io_or_a_wait() {
    let dir = src_dir().join("supervisor");
    for file in [
        dir.join("orchestrator.rs"),
        dir.join("orchestrator/restart.rs"),
    ] {
        let text = strip(&std::fs::read_to_string(&file).expect("read the orchestrator"));
        let found = io_under_the_state_lock(&text);
        assert!(found.is_empty(), "{}: {found:?}", file.display());
    }
}

#[test]
fn the_lock_checker_sees_io_under_the_guard_and_not_after_it() {
    let held = "fn f(&self) {\n    {\n        let state = self.state();\n        registry::runs::remove(&p);\n    }\n}\n";
    assert_eq!(io_under_the_state_lock(held).len(), 1, "{held}");
    let after = "fn f(&self) {\n    {\n        let state = self.state();\n        names.push(1);\n    }\n    registry::runs::remove(&p);\n}\n";
    assert!(io_under_the_state_lock(after).is_empty(), "{after}");
}
