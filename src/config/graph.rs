//! The dependency graph of a [`Config`]: start order, parallel layers, stop order,
//! closures, cycle detection and the `procs graph` renderers.
//!
//! Owns: every question of the form "what must run before what". Edges point from a
//! process to the process it depends on, labelled with the [`Condition`].
//! Must not: start, stop or probe anything; it is pure data.
//! Invariants: a [`Graph`] is acyclic (construction fails with the cycle otherwise); every
//! order it returns is deterministic, ties broken by name; names it does not know are
//! ignored by the closure queries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Write as _};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::config::model::{Condition, Config};

/// A dependency cycle, e.g. `["a", "b", "a"]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CycleError {
    /// The processes on the cycle, the first repeated at the end.
    pub cycle: Vec<String>,
}

impl fmt::Display for CycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dependency cycle: {}", self.cycle.join(" -> "))
    }
}

/// The acyclic dependency graph of a configuration.
#[derive(Debug, Clone)]
pub struct Graph {
    name: String,
    dag: DiGraph<String, Condition>,
    index: BTreeMap<String, NodeIndex>,
}

fn build(config: &Config) -> (DiGraph<String, Condition>, BTreeMap<String, NodeIndex>) {
    let mut graph = DiGraph::new();
    let mut index = BTreeMap::new();
    for name in config.processes.keys() {
        index.insert(name.clone(), graph.add_node(name.clone()));
    }
    for (name, process) in &config.processes {
        for dep in &process.depends_on {
            if let (Some(&from), Some(&to)) = (index.get(name), index.get(&dep.name)) {
                graph.add_edge(from, to, dep.condition);
            }
        }
    }
    (graph, index)
}

/// Every dependency cycle, one per strongly connected component, each starting (and
/// ending) at the component's smallest name. Empty for an acyclic configuration.
pub fn find_cycles(config: &Config) -> Vec<Vec<String>> {
    cycles_in(&build(config).0)
}

/// [`find_cycles`] on a built graph.
fn cycles_in(graph: &DiGraph<String, Condition>) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(graph) {
        let Some(&start) = scc.iter().min_by(|a, b| graph[**a].cmp(&graph[**b])) else {
            continue;
        };
        if scc.len() == 1 && graph.find_edge(start, start).is_none() {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Shortest way back to `start` inside the component (BFS, neighbours by name).
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut end = None;
        while let Some(n) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = graph
                .neighbors_directed(n, Direction::Outgoing)
                .filter(|m| members.contains(m))
                .collect();
            next.sort_by(|a, b| graph[*a].cmp(&graph[*b]));
            next.dedup();
            if next.contains(&start) {
                end = Some(n);
                break;
            }
            for m in next {
                if m != start && !parent.contains_key(&m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        let mut path = vec![start];
        let mut cur = end.unwrap_or(start);
        let mut back = Vec::new();
        while cur != start {
            back.push(cur);
            match parent.get(&cur) {
                Some(p) => cur = *p,
                None => break,
            }
        }
        path.extend(back.into_iter().rev());
        path.push(start);
        cycles.push(path.into_iter().map(|n| graph[n].clone()).collect());
    }
    cycles.sort();
    cycles
}

impl Graph {
    /// Builds the graph; fails with the first cycle (by name) if there is one.
    pub fn new(config: &Config) -> Result<Self, CycleError> {
        let (graph, index) = build(config);
        if let Some(cycle) = cycles_in(&graph).into_iter().next() {
            return Err(CycleError { cycle });
        }
        Ok(Self {
            name: config.name.clone(),
            dag: graph,
            index,
        })
    }

    /// Direct dependencies of `name`, by name, with their conditions.
    pub fn dependencies(&self, name: &str) -> Vec<(String, Condition)> {
        let Some(&n) = self.index.get(name) else {
            return Vec::new();
        };
        let mut deps: Vec<(String, Condition)> = self
            .dag
            .edges_directed(n, Direction::Outgoing)
            .map(|e| (self.dag[e.target()].clone(), *e.weight()))
            .collect();
        deps.sort_by(|a, b| a.0.cmp(&b.0));
        deps
    }

    /// A topological order, dependencies first; among ready processes the smallest name
    /// goes first.
    pub fn start_order(&self) -> Vec<String> {
        let mut waiting: BTreeMap<NodeIndex, usize> = self
            .index
            .values()
            .map(|&n| (n, self.unique(n, Direction::Outgoing).len()))
            .collect();
        let mut ready: BTreeSet<&str> = waiting
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(n, _)| self.dag[*n].as_str())
            .collect();
        let mut order = Vec::with_capacity(self.index.len());
        while let Some(name) = ready.pop_first() {
            order.push(name.to_owned());
            let Some(&n) = self.index.get(name) else {
                continue;
            };
            for dependent in self.unique(n, Direction::Incoming) {
                if let Some(count) = waiting.get_mut(&dependent) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        ready.insert(self.dag[dependent].as_str());
                    }
                }
            }
        }
        order
    }

    /// Processes that can start in parallel: layer `k` holds those whose longest chain of
    /// dependencies has length `k`. Each layer is sorted by name.
    pub fn layers(&self) -> Vec<Vec<String>> {
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        let mut layers: Vec<Vec<String>> = Vec::new();
        for name in self.start_order() {
            let d = self
                .dependencies(&name)
                .iter()
                .filter_map(|(dep, _)| depth.get(dep))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(name.clone(), d);
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(name);
        }
        for layer in &mut layers {
            layer.sort();
        }
        layers
    }

    /// The reverse of [`Graph::start_order`]: dependents stop before their dependencies.
    pub fn stop_order(&self) -> Vec<String> {
        let mut order = self.start_order();
        order.reverse();
        order
    }

    /// The named processes plus everything they depend on, transitively.
    pub fn closure(&self, names: &[String]) -> BTreeSet<String> {
        self.reach(names, Direction::Outgoing)
    }

    /// The named processes plus everything that depends on them, transitively.
    pub fn dependents_closure(&self, names: &[String]) -> BTreeSet<String> {
        self.reach(names, Direction::Incoming)
    }

    fn unique(&self, n: NodeIndex, dir: Direction) -> BTreeSet<NodeIndex> {
        self.dag.neighbors_directed(n, dir).collect()
    }

    fn reach(&self, names: &[String], dir: Direction) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = names
            .iter()
            .filter_map(|n| self.index.get(n).copied())
            .collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.dag.neighbors_directed(n, dir));
            }
        }
        seen.into_iter().map(|n| self.dag[n].clone()).collect()
    }

    /// One block per start layer; each process with what it waits for.
    ///
    /// ```text
    /// layer 1: db
    /// layer 2: migrate  (after db: healthy)
    /// ```
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let width = self.index.keys().map(String::len).max().unwrap_or(0);
        for (i, layer) in self.layers().iter().enumerate() {
            let _ = writeln!(out, "layer {}:", i + 1);
            for name in layer {
                let deps = self.dependencies(name);
                if deps.is_empty() {
                    let _ = writeln!(out, "  {name}");
                } else {
                    let list: Vec<String> = deps
                        .iter()
                        .map(|(d, c)| format!("{d}: {}", condition_name(*c)))
                        .collect();
                    let _ = writeln!(out, "  {name:<width$}  (after {})", list.join(", "));
                }
            }
        }
        out
    }

    /// Graphviz: an edge from each process to what it depends on, labelled with the
    /// condition unless it is `started`.
    pub fn render_dot(&self) -> String {
        let mut out = format!("digraph {} {{\n  rankdir=LR;\n", dot_id(&self.name));
        for name in self.index.keys() {
            let _ = writeln!(out, "  {};", dot_id(name));
        }
        for name in self.index.keys() {
            for (dep, c) in self.dependencies(name) {
                let label = match c {
                    Condition::Started => String::new(),
                    other => format!(" [label={}]", dot_id(condition_name(other))),
                };
                let _ = writeln!(out, "  {} -> {}{label};", dot_id(name), dot_id(&dep));
            }
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid flowchart, same edges as [`Graph::render_dot`].
    pub fn render_mermaid(&self) -> String {
        let ids: BTreeMap<&str, String> = self
            .index
            .keys()
            .enumerate()
            .map(|(i, n)| (n.as_str(), format!("p{i}")))
            .collect();
        let mut out = String::from("flowchart LR\n");
        for (name, id) in &ids {
            let _ = writeln!(out, "  {id}[\"{}\"]", name.replace('"', "#quot;"));
        }
        for (name, id) in &ids {
            for (dep, c) in self.dependencies(name) {
                let Some(to) = ids.get(dep.as_str()) else {
                    continue;
                };
                match c {
                    Condition::Started => {
                        let _ = writeln!(out, "  {id} --> {to}");
                    }
                    other => {
                        let _ = writeln!(out, "  {id} -->|{}| {to}", condition_name(other));
                    }
                }
            }
        }
        out
    }
}

/// The YAML spelling of a condition.
pub fn condition_name(c: Condition) -> &'static str {
    match c {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::Completed => "completed",
        Condition::CompletedSuccessfully => "completed_successfully",
    }
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::model::{
        Backoff, Command, Dependency, LogPolicy, Process, RestartPolicy, Signal,
    };
    use std::time::Duration;

    fn process(name: &str, deps: &[(&str, Condition)]) -> Process {
        Process {
            name: name.into(),
            command: Command::Shell("true".into()),
            cwd: "/".into(),
            env: BTreeMap::new(),
            depends_on: deps
                .iter()
                .map(|(n, c)| Dependency {
                    name: (*n).into(),
                    condition: *c,
                    restart: false,
                })
                .collect(),
            healthcheck: None,
            ports: Vec::new(),
            restart: RestartPolicy::No,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            max_restarts: 1,
            min_uptime: Duration::from_secs(1),
            ready_after: Duration::from_secs(1),
            oneshot: false,
            daemon: false,
            pid_file: None,
            success_exit_codes: vec![0],
            stop_signal: Signal {
                number: 15,
                name: "SIGTERM".into(),
            },
            stop_timeout: Duration::from_secs(1),
            stop_command: None,
            disabled: false,
            logs: LogPolicy {
                max_size: 1,
                keep: 1,
                ..LogPolicy::DEFAULT
            },
        }
    }

    pub(crate) fn config(spec: &[(&str, &[(&str, Condition)])]) -> Config {
        Config {
            name: "shop".into(),
            project_dir: "/".into(),
            file: "/procs.yaml".into(),
            override_file: None,
            processes: spec
                .iter()
                .map(|(n, d)| ((*n).to_owned(), process(n, d)))
                .collect(),
        }
    }

    fn shop() -> Graph {
        use Condition::*;
        Graph::new(&config(&[
            ("db", &[]),
            ("cache", &[]),
            ("migrate", &[("db", Healthy)]),
            (
                "backend",
                &[("db", Healthy), ("migrate", CompletedSuccessfully)],
            ),
            ("frontend", &[("backend", Started)]),
            ("worker", &[("cache", Started)]),
        ]))
        .unwrap()
    }

    #[test]
    fn start_order_is_topological_with_ties_by_name() {
        assert_eq!(
            shop().start_order(),
            ["cache", "db", "migrate", "backend", "frontend", "worker"]
        );
        assert_eq!(
            shop().stop_order(),
            ["worker", "frontend", "backend", "migrate", "db", "cache"]
        );
    }

    #[test]
    fn layers_group_by_longest_dependency_chain() {
        assert_eq!(
            shop().layers(),
            vec![
                vec!["cache", "db"],
                vec!["migrate", "worker"],
                vec!["backend"],
                vec!["frontend"]
            ]
        );
    }

    #[test]
    fn closures() {
        let g = shop();
        let c: Vec<String> = g.closure(&["backend".into()]).into_iter().collect();
        assert_eq!(c, ["backend", "db", "migrate"]);
        let d: Vec<String> = g.dependents_closure(&["db".into()]).into_iter().collect();
        assert_eq!(d, ["backend", "db", "frontend", "migrate"]);
        assert!(g.closure(&["nope".into()]).is_empty());
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        use Condition::Started;
        let err = Graph::new(&config(&[
            ("a", &[("b", Started)]),
            ("b", &[("c", Started)]),
            ("c", &[("a", Started)]),
            ("d", &[("d", Started)]),
        ]))
        .unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
        let all = find_cycles(&config(&[
            ("a", &[("b", Started)]),
            ("b", &[("a", Started)]),
            ("d", &[("d", Started)]),
        ]));
        assert_eq!(all, vec![vec!["a", "b", "a"], vec!["d", "d"]]);
    }

    #[test]
    fn renderers() {
        let g = shop();
        let text = g.render_text();
        assert!(
            text.starts_with("layer 1:\n  cache\n  db\nlayer 2:\n"),
            "{text}"
        );
        assert!(
            text.contains("backend   (after db: healthy, migrate: completed_successfully)"),
            "{text}"
        );
        let dot = g.render_dot();
        assert!(dot.starts_with("digraph \"shop\" {"));
        assert!(dot.contains("\"migrate\" -> \"db\" [label=\"healthy\"];"));
        assert!(dot.contains("\"frontend\" -> \"backend\";"));
        assert!(dot.ends_with("}\n"));
        let mermaid = g.render_mermaid();
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert!(mermaid.contains("[\"migrate\"]"));
        assert!(mermaid.contains("-->|healthy|"));
    }
}
