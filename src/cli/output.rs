//! How the CLI prints: kubectl-style tables, or JSON/YAML with `-o`.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use super::args::Format;
use super::error::CliError;

/// A table with a header row and no borders, columns padded.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    // comfy-table pads with a leading space per cell; trim it so lines start at the margin.
    table
        .to_string()
        .lines()
        .map(|line| line.trim_end().strip_prefix(' ').unwrap_or(line).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `value` as JSON (pretty) or YAML.
pub fn formatted(value: &Value, format: Format) -> Result<String, CliError> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(value).expect("JSON values serialise")),
        Format::Yaml => serde_yaml_ng::to_string(value).map_err(|error| CliError::Io(error.to_string())),
    }
}

/// A JSON string field or `""`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What commands print through: nothing but errors with `--quiet`.
pub struct Printer {
    pub quiet: bool,
}

impl Printer {
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", text.as_ref());
        }
    }

    /// Output asked for explicitly (`get`, `-o json`): printed even with `--quiet`.
    pub fn data(&self, text: impl AsRef<str>) {
        println!("{}", text.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_without_borders() {
        let printed = table(
            &["NAME", "CREATION DATE"],
            vec![vec!["sockshop".into(), "2026".into()], vec!["a".into(), "1".into()]],
        );
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 3, "{printed}");
        assert!(lines[0].starts_with("NAME") && lines[0].contains("CREATION DATE"), "{printed}");
        assert_eq!(lines[1].find("2026"), lines[0].find("CREATION"), "columns line up: {printed}");
    }

    #[test]
    fn json_and_yaml() {
        let value = serde_json::json!({ "name": "p" });
        assert!(formatted(&value, Format::Json).unwrap().contains("\"name\": \"p\""));
        assert_eq!(formatted(&value, Format::Yaml).unwrap().trim(), "name: p");
    }
}
