//! The shape of the code: no import circle among the modules of `src/` (each file is a module), the
//! pure `model` imports nothing of the shell, and the bus knows nothing of the stores.
//!
//! Imports are read from the source text: every `crate::…`, `super::…` and `self::…` path, and in a
//! `mod.rs` every path through one of its child modules, resolved to the longest module it names.
//! A module's own unit tests (`#[cfg(test)] mod tests`) may import anything and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every module of the library (binaries are leaves and left out), by path, with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "bin" {
                    pending.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
                parts.pop();
            }
            // Sibling test files (`#[path = "x_tests.rs"] mod tests;`) belong to their module's tests.
            if parts.last().is_some_and(|last| last.ends_with("_tests")) {
                continue;
            }
            found.insert(parts.join("::"), path);
        }
    }
    found
}

fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match regex::Regex::new(r"#\[cfg\(test\)\]\s*(#\[path = [^\]]*\]\s*)?mod tests").unwrap().find(&text) {
        Some(tests) => &text[..tests.start()],
        None => &text[..],
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn graph() -> Graph {
    let modules = modules();
    let resolve = |path: &[&str]| -> Option<String> {
        (1..=path.len()).rev().map(|len| path[..len].join("::")).find(|candidate| modules.contains_key(candidate))
    };
    let crate_path = regex::Regex::new(r"\bcrate((?:::\w+)+)").unwrap();
    let super_path = regex::Regex::new(r"\b((?:super::)+)((?:\w+::)*\w+)").unwrap();
    let self_path = regex::Regex::new(r"\bself::(\w+)").unwrap();
    let child_path = regex::Regex::new(r"(?:^|[^:\w])(\w+)::\w").unwrap();
    let mut graph = Graph::new();
    for (module, file) in &modules {
        let code = production_code(file);
        let here: Vec<&str> = if module.is_empty() { Vec::new() } else { module.split("::").collect() };
        let is_dir = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        // What `super` means: the parent of this module.
        let parent = &here[..here.len().saturating_sub(1)];
        let mut imports = BTreeSet::new();
        for found in crate_path.captures_iter(&code) {
            let path: Vec<&str> = found[1].trim_start_matches("::").split("::").collect();
            imports.extend(resolve(&path));
        }
        for found in super_path.captures_iter(&code) {
            let ups = found[1].matches("super::").count();
            let base = &here[..here.len().saturating_sub(ups)];
            let path: Vec<&str> = base.iter().copied().chain(found[2].split("::")).collect();
            imports.insert(resolve(&path).unwrap_or_else(|| base.join("::")));
        }
        let own: &[&str] = if is_dir { &here } else { parent };
        let children = self_path
            .captures_iter(&code)
            .map(|found| found[1].to_owned())
            .chain(child_path.captures_iter(&code).filter(|_| is_dir).map(|found| found[1].to_owned()));
        for child in children {
            let path: Vec<&str> = own.iter().copied().chain([child.as_str()]).collect();
            let candidate = path.join("::");
            if modules.contains_key(&candidate) {
                imports.insert(candidate);
            }
        }
        imports.remove(module);
        imports.remove("");
        graph.insert(module.clone(), imports);
    }
    graph
}

/// Modules on an import circle, each circle as a sorted list (Tarjan's strongly connected components).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        circles: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut circle = Vec::new();
                while let Some(member) = self.stack.pop() {
                    circle.push(member.to_owned());
                    if member == node {
                        break;
                    }
                }
                if circle.len() > 1 {
                    circle.sort();
                    self.circles.push(circle);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), circles: Vec::new() };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.circles
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = graph();
    assert!(graph.len() > 50, "the module list was read ({} modules)", graph.len());
    assert!(graph["actors::router"].contains("actors::directory"), "imports were read: {:?}", graph["actors::router"]);
    let found = circles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|circle| {
            let edges: Vec<String> = circle
                .iter()
                .map(|module| {
                    let within: Vec<&str> =
                        graph[module].iter().filter(|m| circle.contains(m)).map(String::as_str).collect();
                    format!("{module} → {}", within.join(", "))
                })
                .collect();
            edges.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import circles: {described:#?}");
}

#[test]
fn the_model_is_pure_and_the_bus_knows_no_store() {
    let graph = graph();
    for (module, imports) in &graph {
        if module == "model" || module.starts_with("model::") {
            let shell: Vec<&String> = imports.iter().filter(|m| !(*m == "model" || m.starts_with("model::"))).collect();
            assert!(shell.is_empty(), "{module} imports the shell: {shell:?}");
        }
        if module == "bus" || module.starts_with("bus::") {
            let stores: Vec<&String> = imports.iter().filter(|m| *m == "store" || m.starts_with("store::")).collect();
            assert!(stores.is_empty(), "{module} imports a store: {stores:?}");
        }
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(node, edges)| (node.to_owned(), edges.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(circles(&graph), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
}
