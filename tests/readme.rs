//! The README's configuration table must match `chatwire --help`.

use std::collections::BTreeMap;
use std::process::Command;

/// (env var -> default) pairs from `--help`.
fn from_help() -> BTreeMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_chatwire"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("run --help");
    let help = String::from_utf8(out.stdout).expect("utf-8");
    let mut vars = BTreeMap::new();
    let mut env = None;
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("[env: ") {
            env = rest.split(['=', ']']).next().map(String::from);
        } else if let Some(rest) = line.strip_prefix("[default: ") {
            if let Some(var) = env.take() {
                vars.insert(var, rest.trim_end_matches(']').to_string());
            }
        }
    }
    vars
}

/// (env var -> default) pairs from the README's Configuration table.
fn from_readme() -> BTreeMap<String, String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<_> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells[1].to_string(), cells[3].to_string())
        })
        .collect()
}

#[test]
fn readme_config_table_matches_help() {
    let help = from_help();
    assert!(help.len() >= 11, "{help:?}");
    assert_eq!(from_readme(), help);
}
