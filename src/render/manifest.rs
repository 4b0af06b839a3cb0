//! The manifest of a render: `<sha256>  <path>` per file (the `sha256sum` format), written beside
//! the generated files so that files provision wrote can be told from files edited by hand.

use std::collections::BTreeMap;

use super::hashing::sha256_hex;

/// The manifest's file name, in the output directory.
pub const MANIFEST: &str = ".provision-manifest";

/// `<sha256>  <path>` lines, sorted by path.
pub(super) fn manifest(files: &BTreeMap<String, String>) -> String {
    files
        .iter()
        .filter(|(path, _)| path.as_str() != MANIFEST)
        .map(|(path, text)| format!("{}  {path}\n", sha256_hex(text.as_bytes())))
        .collect()
}

/// Parses a manifest; lines that do not parse are ignored (the file then counts as edited).
pub fn parse_manifest(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(hash, path)| (path.to_owned(), hash.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_parses_back() {
        let mut files = BTreeMap::new();
        files.insert("a/b".to_owned(), "x\n".to_owned());
        files.insert(MANIFEST.to_owned(), "ignored".to_owned());
        let parsed = parse_manifest(&manifest(&files));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed["a/b"], sha256_hex(b"x\n"));
        assert!(parse_manifest("no two spaces\n").is_empty());
    }
}
