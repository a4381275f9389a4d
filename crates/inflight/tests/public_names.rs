//! No public name is defined twice: among the free items (types, traits, functions, constants,
//! statics, modules) of the library and of its PostgreSQL store, each name is one item's, so
//! that a name in an error message, a document or an import means one thing. (Methods, fields
//! and enum variants are named within their type.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The public free items a source file defines at its top level, by name: a line that starts
/// with `pub` and a kind (not `pub(crate)`, not indented, not a re-export).
fn public_items(text: &str) -> Vec<(String, String)> {
    const KINDS: [&str; 9] = [
        "struct", "enum", "trait", "type", "fn", "const", "static", "mod", "union",
    ];
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("pub ")?;
            let (kind, rest) = rest.split_once(' ')?;
            if !KINDS.contains(&kind) {
                return None;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then(|| (kind.to_string(), name))
        })
        .collect()
}

#[test]
fn no_public_name_is_defined_twice() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["inflight", "inflight-postgres"] {
        sources(&crates.join(krate).join("src"), &mut files);
    }
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut items = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (kind, name) in public_items(&text) {
            items += 1;
            let place = format!("{kind} in {}", file.display());
            by_name.entry(name).or_default().push(place);
        }
    }
    // Coverage: the scan saw the crates' items (a change that broke it would pass empty).
    assert!(files.len() >= 50, "{} source files", files.len());
    assert!(items >= 200, "{items} public items");
    for name in ["Log", "Fleet", "read_only", "StoreError", "percentile"] {
        assert!(by_name.contains_key(name), "{name} not found");
    }
    let twice: Vec<_> = by_name.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(twice.is_empty(), "defined more than once: {twice:#?}");
}

#[test]
fn the_scan_sees_a_name_defined_twice() {
    let text = "pub fn read_only() {}\npub(crate) fn hidden() {}\n    pub fn method() {}\npub struct Log;\npub use a::b;\n";
    assert_eq!(
        public_items(text),
        [
            ("fn".to_string(), "read_only".to_string()),
            ("struct".to_string(), "Log".to_string())
        ]
    );
}
