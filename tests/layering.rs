//! The import rules of the module map (lib.rs), checked on the source text: the chat
//! domain imports no transport, bus, store or Redis code and no protocol or database
//! crate; the bus and the stores never import each other; the top-level modules import
//! each other without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of src/ belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The code of a file without comments (line comments and doc comments).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(n, line)| {
        let code = line.split("//").next().unwrap_or_default();
        (!code.trim().is_empty()).then_some((n + 1, code))
    })
}

/// Every `crate::X` a line names.
fn crate_refs(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(at, _)| {
            // Not `socketioxide_crate::` or the like.
            line[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .filter_map(|(at, m)| {
            let rest = &line[at + m.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

struct Source {
    module: String,
    /// The path below src/, e.g. `store/redis/history.rs`.
    path: String,
    text: String,
}

fn sources() -> Vec<Source> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let module = module_of(&src, &file)?;
            let path = file.strip_prefix(&src).ok()?.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&file).expect("read source");
            Some(Source { module, path, text })
        })
        .collect()
}

#[test]
fn the_chat_domain_imports_no_edge_code() {
    const FORBIDDEN_MODULES: [&str; 6] = ["transport", "bus", "store", "redis", "server", "gate"];
    const FORBIDDEN_CRATES: [&str; 7] = [
        "axum::",
        "socketioxide",
        "redis::",
        "sqlx",
        "hyper",
        "tungstenite",
        "governor",
    ];
    let mut broken = Vec::new();
    for source in sources().iter().filter(|s| s.module == "chat") {
        for (n, line) in code_lines(&source.text) {
            for name in crate_refs(line) {
                if FORBIDDEN_MODULES.contains(&name.as_str()) {
                    broken.push(format!("src/{}:{n}: crate::{name}", source.path));
                }
            }
            for krate in FORBIDDEN_CRATES {
                let used = line.match_indices(krate).any(|(at, _)| {
                    !line[..at].ends_with("crate::")
                        && line[..at]
                            .chars()
                            .next_back()
                            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                });
                if used {
                    broken.push(format!("src/{}:{n}: {krate}", source.path));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "chat/ must not import these (its ports are in chat/ports.rs):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_bus_and_the_stores_never_import_each_other() {
    let mut broken = Vec::new();
    for source in sources() {
        let other = match source.module.as_str() {
            "bus" => "store",
            "store" => "bus",
            _ => continue,
        };
        for (n, line) in code_lines(&source.text) {
            if crate_refs(line).iter().any(|name| name == other) {
                broken.push(format!("src/{}:{n}", source.path));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "bus/ and store/ share only chat's ports and crate::redis:\n{}",
        broken.join("\n")
    );
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources() {
        for (_, line) in code_lines(&source.text) {
            for name in crate_refs(line) {
                if name != source.module {
                    edges.entry(source.module.clone()).or_default().insert(name);
                }
            }
        }
    }
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle between top-level modules: {}\nall imports: {edges:#?}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_checks_see_a_violation() {
    // The scanners themselves: a line that breaks the rule is found, a comment is not.
    let text = "use crate::bus::Bus;\n// crate::store in a comment\nlet x = a::b;";
    let lines: Vec<_> = code_lines(text).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(crate_refs(lines[0].1), vec!["bus".to_owned()]);
    assert!(crate_refs(lines[1].1).is_empty());
    assert!(crate_refs("socketioxide_crate::x").is_empty());
}
