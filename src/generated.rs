//! What `kpulse generate` writes: whole files derived from the code, and generated sections of
//! hand-written files. A section sits between a begin line naming it and an end line; `generate`
//! rewrites what is between them and keeps the rest of the file. A test fails when a checked-in
//! file is stale.

use std::path::Path;

use crate::config::{self, registry_files};

/// How a kind of file marks a generated section.
pub struct Markers {
    /// Starts the begin line; the section's name follows, then `close`.
    pub begin: &'static str,
    /// Ends the begin line.
    pub close: &'static str,
    /// The end line (after any indentation).
    pub end: &'static str,
}

/// `<!-- generated: NAME -->` … `<!-- end generated -->`.
pub const MARKDOWN: Markers = Markers {
    begin: "<!-- generated: ",
    close: " -->\n",
    end: "<!-- end generated -->",
};

/// `# generated: NAME` … `# end generated`, indented like the YAML around them.
pub const YAML: Markers = Markers {
    begin: "# generated: ",
    close: "\n",
    end: "# end generated",
};

/// `text` (read from `path`) with every generated section's content replaced by
/// `render(name)`; `None` means the name is unknown.
pub fn rewrite(
    path: &str,
    text: &str,
    markers: &Markers,
    render: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let Markers { begin, close, end } = markers;
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(begin) {
        let (name, after) = rest[start + begin.len()..]
            .split_once(close)
            .ok_or_else(|| {
                format!(
                    "{path}: a `{begin}` line does not end in `{}`",
                    close.trim_end()
                )
            })?;
        let stop = after
            .find(end)
            .ok_or_else(|| format!("{path}: generated block {name:?} has no `{end}` line"))?;
        // The end line keeps its indentation.
        let stop = after[..stop].rfind('\n').map_or(0, |i| i + 1);
        let content =
            render(name).ok_or_else(|| format!("{path}: unknown generated block {name:?}"))?;
        out.push_str(&rest[..start + begin.len()]);
        out.push_str(name);
        out.push_str(close);
        out.push_str(&content);
        rest = &after[stop..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every generated file and its content, relative to the repository root: those derived from the
/// configuration types and the monitor registry, and the pages whose example payloads are made
/// by the real monitors and sinks. Files with generated sections are read from `root`.
pub fn files(root: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let read =
        |path: &str| std::fs::read_to_string(root.join(path)).map_err(|e| format!("{path}: {e}"));
    let mut files = vec![
        (
            "docs/configuration.md",
            config::docs::configuration_markdown(),
        ),
        (
            config::chart_schema::PATH,
            config::chart_schema::values_schema_json(),
        ),
        (
            registry_files::CHART_REGISTRY,
            registry_files::chart_registry(),
        ),
        (registry_files::SHELL_LISTS, registry_files::shell_lists()),
    ];
    for (path, markers, section) in [
        (registry_files::VALUES, &YAML, "monitors"),
        (registry_files::INSTALL, &MARKDOWN, "rbac-table"),
    ] {
        let text = read(path)?;
        if !text.contains(&format!("{}{section}{}", markers.begin, markers.close)) {
            return Err(format!("{path}: has no generated block {section:?}"));
        }
        files.push((
            path,
            rewrite(path, &text, markers, registry_files::section)?,
        ));
    }
    for page in crate::examples::PAGES {
        files.push((page, crate::examples::refresh(page, &read(page)?)?));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_fresh() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (path, content) in files(root).unwrap() {
            let on_disk = std::fs::read_to_string(root.join(path)).unwrap_or_default();
            assert!(on_disk == content, "{path} is stale: run `make generate`");
        }
    }

    #[test]
    fn a_file_without_its_generated_section_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("charts/kpulse")).unwrap();
        std::fs::write(root.path().join(registry_files::VALUES), "config: {}\n").unwrap();
        assert_eq!(
            files(root.path()).unwrap_err(),
            "charts/kpulse/values.yaml: has no generated block \"monitors\""
        );
    }

    #[test]
    fn yaml_sections_keep_the_indentation_of_their_end_line() {
        let text = "a:\n  b:\n    # generated: x\n    old: 1\n    # end generated\n  c: 2\n";
        let render = |name: &str| (name == "x").then(|| "    new: 2\n".to_string());
        let fresh = rewrite("v.yaml", text, &YAML, render).unwrap();
        assert_eq!(
            fresh,
            "a:\n  b:\n    # generated: x\n    new: 2\n    # end generated\n  c: 2\n"
        );
        assert_eq!(rewrite("v.yaml", &fresh, &YAML, render).unwrap(), fresh);
        assert_eq!(
            rewrite("v.yaml", "# generated: y\n# end generated\n", &YAML, render).unwrap_err(),
            "v.yaml: unknown generated block \"y\""
        );
    }
}
