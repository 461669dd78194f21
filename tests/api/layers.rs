//! berth's modules are layers (see `src/lib.rs`): each module imports only from its own layer or
//! the layers below, and the units of the code (a layer folder's modules, or a module of its own)
//! never import each other in a cycle. These tests read the module graph from the source, so a
//! new import that breaks either rule fails the build with the line that does it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module, its layer (0 is the bottom), and whether its children are units of
/// their own (a folder that groups modules) or one unit with it.
const LAYERS: &[(&str, u8, bool)] = &[
    ("domain", 0, false),
    ("configuration", 0, false),
    ("error", 0, false),
    ("faults", 0, false),
    ("adapters", 1, true),
    ("services", 2, true),
    ("jobs", 3, false),
    ("routes", 4, true),
    ("cli", 4, true),
    ("startup", 5, false),
];

#[test]
fn no_module_imports_from_a_layer_above_it_and_no_units_import_each_other_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    let graph = Graph::read(&files);
    assert_eq!(graph.problems(), Vec::<String>::new());
    assert!(
        graph.edges.len() > 50,
        "the reader found too few imports to be reading the code: {}",
        graph.edges.len()
    );
}

#[test]
fn the_check_catches_an_upward_import_and_a_cycle() {
    let files = [
        (
            "lib.rs",
            "pub mod domain; pub mod adapters; pub mod services; pub mod routes;",
        ),
        (
            "domain.rs",
            "use crate::services::signup::Signup; // upward",
        ),
        ("adapters.rs", "pub mod db; pub mod dns;"),
        (
            "adapters/db.rs",
            "use crate::adapters::dns::{self, Record};",
        ),
        (
            "adapters/dns.rs",
            "fn f() { let _ = crate::adapters::db::connect(); }",
        ),
        ("services.rs", "pub mod signup;"),
        (
            "services/signup.rs",
            "use super::super::adapters::db; /* crate::routes::X */",
        ),
        ("routes.rs", "mod inner { use super::super::domain::Name; }"),
        ("unknown.rs", ""),
    ];
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    let problems = Graph::read(&files).problems();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with("domain.rs:1: domain (layer 0) imports services::signup (layer 2)"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("not in the layer table: unknown"),
        "{problems:#?}"
    );
    assert!(
        problems[2].starts_with("import cycle: adapters::db → adapters::dns → adapters::db"),
        "{problems:#?}"
    );
}

fn read_tree(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if relative != "main.rs" {
                files.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
}

/// An import of one module by another: where it is written, and the path it names.
struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    file: String,
    line: usize,
}

struct Graph {
    modules: BTreeSet<Vec<String>>,
    edges: Vec<Edge>,
}

impl Graph {
    fn read(files: &[(String, String)]) -> Graph {
        let tokenized: Vec<(String, Vec<String>, Vec<Token>)> = files
            .iter()
            .map(|(path, text)| (path.clone(), file_module(path), tokenize(text)))
            .collect();
        let mut modules = BTreeSet::new();
        for (_, module, tokens) in &tokenized {
            modules.insert(module.clone());
            walk(module, tokens, &mut |_, _, _| {}, &mut |m| {
                modules.insert(m.to_vec());
            });
        }
        let mut edges = Vec::new();
        for (file, module, tokens) in &tokenized {
            walk(
                module,
                tokens,
                &mut |current, path, line| {
                    if let Some(to) = resolve(&modules, current, path) {
                        edges.push(Edge {
                            from: current.to_vec(),
                            to,
                            file: file.clone(),
                            line,
                        });
                    }
                },
                &mut |_| {},
            );
        }
        Graph { modules, edges }
    }

    /// Upward imports, modules outside the layer table, then cycles between units.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut units: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for edge in &self.edges {
            let (Some(from), Some(to)) = (unit(&edge.from), unit(&edge.to)) else {
                continue;
            };
            if from.0 == to.0 {
                continue;
            }
            if to.1 > from.1 {
                problems.push(format!(
                    "{}:{}: {} (layer {}) imports {} (layer {})",
                    edge.file, edge.line, from.0, from.1, to.0, to.1
                ));
            }
            units.entry(from.0).or_default().insert(to.0);
        }
        for module in &self.modules {
            if let Some(top) = module.first() {
                if !LAYERS.iter().any(|(name, _, _)| name == top) {
                    problems.push(format!(
                        "module {} is not in the layer table: {top}",
                        module.join("::")
                    ));
                }
            }
        }
        problems.dedup();
        if let Some(cycle) = find_cycle(&units) {
            problems.push(format!("import cycle: {}", cycle.join(" → ")));
        }
        problems
    }
}

/// The unit a module belongs to and its layer; `None` for the crate root and unknown modules.
fn unit(module: &[String]) -> Option<(String, u8)> {
    let top = module.first()?;
    let (_, layer, split) = LAYERS.iter().find(|(name, _, _)| name == top)?;
    let name = match module.get(1) {
        Some(child) if *split => format!("{top}::{child}"),
        _ => top.clone(),
    };
    Some((name, *layer))
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// `adapters/db/jobs.rs` is module `adapters::db::jobs`; `lib.rs` is the crate root.
fn file_module(path: &str) -> Vec<String> {
    let path = path.strip_suffix(".rs").unwrap_or(path);
    if path == "lib" {
        return Vec::new();
    }
    path.split('/').map(str::to_owned).collect()
}

/// The module a path written in `current` names: the longest known module it starts with.
/// `None` for paths outside the crate.
fn resolve(
    modules: &BTreeSet<Vec<String>>,
    current: &[String],
    path: &[String],
) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "super" | "self" => current.to_vec(),
        // A child module named without `self::` (`use child::Item;`).
        first => {
            let mut child = current.to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child) {
                return None;
            }
            current.to_vec()
        }
    };
    let mut rest = path;
    if matches!(path[0].as_str(), "crate" | "self") {
        rest = &path[1..];
    }
    while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
        absolute.pop();
        rest = tail;
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Identifiers, `::` and punctuation; comments, strings and character literals are dropped, so
/// a path in a doc comment or a message is not an import.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line) = (0, 1);
    let mut tokens = Vec::new();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
        {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                line += usize::from(chars[j] == '\n');
                j += 1;
            }
            i = j;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                line += usize::from(at(j) == '\n');
                j += 1;
            }
            i = j + 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word.strip_prefix("r#").map(str::to_owned).unwrap_or(word);
            tokens.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(word)) => Some(word),
        _ => None,
    }
}

fn is(tokens: &[Token], i: usize, want: &Tok) -> bool {
    tokens.get(i).map(|t| &t.tok) == Some(want)
}

/// What `walk` calls for a crate path: the module it is written in, the path, the line.
type OnPath<'a> = dyn FnMut(&[String], &[String], usize) + 'a;

/// Calls `on_path` for every crate path written in `tokens` (in `use` trees and in code) with
/// the module it is written in, and `on_module` for every inline `mod name { … }`.
fn walk(
    file_module: &[String],
    tokens: &[Token],
    on_path: &mut OnPath,
    on_module: &mut dyn FnMut(&[String]),
) {
    let mut module = file_module.to_vec();
    // The brace depth at which each inline module opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last() == Some(&depth) {
                    inline.pop();
                    module.pop();
                }
            }
            Tok::Ident(word) if word == "mod" => {
                if let Some(name) = ident(tokens, i + 1) {
                    if is(tokens, i + 2, &Tok::Punct('{')) {
                        module.push(name.to_owned());
                        on_module(&module);
                        inline.push(depth);
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Ident(word) if word == "use" => {
                let mut paths = Vec::new();
                let end = use_tree(tokens, i + 1, &mut Vec::new(), &mut paths);
                for (path, line) in paths {
                    on_path(&module, &path, line);
                }
                i = end;
                continue;
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && is(tokens, i + 1, &Tok::PathSep)
                    && !(i > 0 && is(tokens, i - 1, &Tok::PathSep)) =>
            {
                let line = tokens[i].line;
                let mut path = vec![word.clone()];
                let mut j = i + 1;
                while is(tokens, j, &Tok::PathSep) {
                    match ident(tokens, j + 1) {
                        Some(next) => path.push(next.to_owned()),
                        None => break,
                    }
                    j += 2;
                }
                on_path(&module, &path, line);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Reads a `use` tree starting at `i` under `prefix`, pushing each full path; returns the index
/// after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &mut Vec<String>,
    paths: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let depth = prefix.len();
    if is(tokens, i, &Tok::PathSep) {
        i += 1;
    }
    loop {
        if let Some(word) = ident(tokens, i) {
            let line = tokens[i].line;
            prefix.push(word.to_owned());
            i += 1;
            if is(tokens, i, &Tok::PathSep) {
                i += 1;
                continue;
            }
            if ident(tokens, i) == Some("as") {
                i += 2;
            }
            let mut path = prefix.clone();
            if path.last().map(String::as_str) == Some("self") {
                path.pop();
            }
            paths.push((path, line));
        } else if is(tokens, i, &Tok::Punct('*')) {
            paths.push((prefix.clone(), tokens[i].line));
            i += 1;
        } else if is(tokens, i, &Tok::Punct('{')) {
            i += 1;
            while !is(tokens, i, &Tok::Punct('}')) && i < tokens.len() {
                i = use_tree(tokens, i, prefix, paths);
                if is(tokens, i, &Tok::Punct(',')) {
                    i += 1;
                }
            }
            i += 1;
        }
        break;
    }
    prefix.truncate(depth);
    if is(tokens, i, &Tok::Punct(';')) {
        i += 1;
    }
    i
}
