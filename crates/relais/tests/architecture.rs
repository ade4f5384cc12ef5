//! The shape of the workspace, checked: every crate on its floor, importing only crates below
//! it; every library opening with what it does; no import cycle between the top-level modules
//! of a crate (an item re-exported by the crate root counts as its own module's).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The floors of ARCHITECTURE.md: a crate may import only crates on lower floors. The
/// protocol (with the calendar) is the ground floor: it depends on nothing, and DNS uses its
/// timings.
const FLOORS: &[(&str, u32)] = &[
    ("relais-proto", 0),
    ("relais-metrics", 0),
    ("relais-spool", 1),
    ("relais-dns", 1),
    ("relais-state", 1),
    ("relais-config", 2),
    ("relais-queue", 2),
    ("relais-client", 2),
    ("relais-route", 3),
    ("relais-local", 3),
    ("relais-remote", 3),
    ("relais-policy", 3),
    ("relais-smtpd", 4),
    ("relais-qmgr", 4),
    ("relais-server", 5),
    ("relais-diag", 5),
    ("relais", 6),
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (package name, its directory) of every crate of the workspace.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|n| n.strip_suffix('"'))
            .expect("a package name")
            .to_string();
        out.push((name, dir));
    }
    out.sort();
    out
}

/// The workspace crates a manifest depends on (not dev-dependencies).
fn dependencies(dir: &Path) -> Vec<String> {
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section == "[dependencies]" && line.starts_with("relais") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.push(name);
        }
    }
    out
}

fn floor(name: &str) -> u32 {
    FLOORS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("{name} has no floor: add it to FLOORS and ARCHITECTURE.md"))
}

#[test]
fn every_crate_imports_only_lower_floors() {
    let all = crates();
    assert!(all.len() >= FLOORS.len(), "{all:?}");
    for (name, dir) in &all {
        let mine = floor(name);
        for dep in dependencies(dir) {
            assert!(
                floor(&dep) < mine,
                "{name} (floor {mine}) imports {dep} (floor {})",
                floor(&dep)
            );
        }
    }
}

#[test]
fn every_library_says_what_it_does() {
    for (name, dir) in crates() {
        let lib = dir.join("src/lib.rs");
        let Ok(text) = fs::read_to_string(&lib) else {
            continue;
        };
        assert!(
            text.starts_with("//! `"),
            "{name}: lib.rs opens with a doc comment naming the crate and its job"
        );
    }
}

/// The text of a module (its file, or its folder), without comments and tests.
fn module_text(src: &Path, module: &str) -> String {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut stack = vec![src.join(module)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut out = String::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines() {
            if !line.trim_start().starts_with("//") {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Identifiers after `crate::` in a text, including those in `use crate::{a, b::c}` groups.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(first);
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(first);
        }
    }
    out
}

#[test]
fn no_import_cycles_between_modules() {
    for (name, dir) in crates() {
        let src = dir.join("src");
        let root = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.exists())
            .unwrap();
        let root_text = fs::read_to_string(&root).unwrap();
        let mut modules = Vec::new();
        // `pub use module::{A, B}` in the root: A and B stand for `module`.
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for line in root_text.lines() {
            let l = line.trim_start();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            if let Some(m) = l.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) {
                modules.push(m.to_string());
            }
        }
        for (i, _) in root_text.match_indices("pub use ") {
            let rest = &root_text[i + "pub use ".len()..];
            let stmt = &rest[..rest.find(';').unwrap_or(rest.len())];
            let Some((module, items)) = stmt.split_once("::") else {
                continue;
            };
            if !modules.iter().any(|m| m == module) {
                continue;
            }
            for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
                let item = item.split(" as ").last().unwrap_or("").trim();
                if !item.is_empty() {
                    owner.insert(item.to_string(), module.to_string());
                }
            }
        }
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in &modules {
            let text = module_text(&src, m);
            for p in crate_paths(&text) {
                let target = if modules.contains(&p) {
                    Some(p)
                } else {
                    owner.get(&p).cloned()
                };
                if let Some(t) = target
                    && &t != m
                {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
        // Depth-first search for a cycle.
        fn visit(
            n: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(k) = path.iter().position(|p| p == n) {
                let mut cycle = path[k..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            if done.contains(n) {
                return None;
            }
            path.push(n.to_string());
            for next in edges.get(n).into_iter().flatten() {
                if let Some(c) = visit(next, edges, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(n.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for m in &modules {
            if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
                panic!("{name}: import cycle {}", cycle.join(" -> "));
            }
        }
    }
}
