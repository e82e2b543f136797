//! What the database commands (`divergences`, `accounts`, `trades`, `alerts`) share:
//! opening the configured database, choosing the output format, aligned tables.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use sea_orm::DatabaseConnection;

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME, Format, load_config};
use crate::config::Config;
use crate::store::{self, StoreError};

/// Loads the configuration and opens (and migrates) its database. On failure the message
/// is printed and the exit code returned: 2 for the configuration, 3 for the database.
pub(super) async fn open(config: Option<&Path>) -> Result<(Config, DatabaseConnection), ExitCode> {
    let Some(config) = load_config(config) else {
        return Err(ExitCode::from(EXIT_BAD_INPUT));
    };
    match store::connect(&config.database.url).await {
        Ok(db) => Ok((config, db)),
        Err(e) => {
            let shown = store::redact_url(&config.database.url);
            eprintln!("error: database {shown}: {e}");
            Err(ExitCode::from(EXIT_RUNTIME))
        }
    }
}

/// Prints a storage failure; bad data is exit 2, anything else exit 3.
pub(super) fn store_failed(what: &str, e: &StoreError) -> ExitCode {
    eprintln!("error: {what}: {e}");
    ExitCode::from(if e.is_bad_data() {
        EXIT_BAD_INPUT
    } else {
        EXIT_RUNTIME
    })
}

/// The format asked for, or table on a terminal and JSON otherwise.
pub(super) fn format(asked: Option<Format>) -> Format {
    asked.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    })
}

/// Prints `text` and a newline; a closed pipe (`| head`) is not worth a panic.
pub(super) fn print(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// JSON, pretty-printed.
pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Left-aligned columns separated by two spaces, header first.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let joined: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        joined.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["a".into(), "on".into()],
                vec!["long-id".into(), "".into()],
            ],
        );
        assert_eq!(t, "ID       STATE\na        on\nlong-id");
    }
}
