//! The one JSON envelope every `--json` answer is wrapped in (documented in docs/json.md, with a
//! JSON Schema per command under docs/schema/):
//!
//! ```json
//! {"schema": 1, "command": "verify", "ok": true, ...the command's own fields}
//! ```
//!
//! `ok` is true exactly when the command exits 0. On an error the command's fields are replaced by
//! `"error": {"message": "...", "exit_code": N}`, so stdout carries JSON whatever happened.
//! `schema` changes only when a field is removed or changes meaning; new fields may appear.

use serde::Serialize;

use crate::printer::Printer;
use crate::ExitStatus;

/// The version of the envelope and of every command's fields inside it.
pub const SCHEMA: u32 = 1;

/// `{"schema", "command", "ok", ...data}`: `data`'s fields are flattened in beside the three.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub schema: u32,
    pub command: &'a str,
    pub ok: bool,
    #[serde(flatten)]
    pub data: T,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    pub fn new(command: &'a str, ok: bool, data: T) -> Self {
        Envelope {
            schema: SCHEMA,
            command,
            ok,
            data,
        }
    }

    /// Pretty JSON and a newline.
    pub fn to_text(&self) -> anyhow::Result<String> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}

/// What an envelope holds when the command failed with an error instead of a report.
#[derive(Debug, Serialize)]
struct ErrorData {
    error: ErrorField,
}

#[derive(Debug, Serialize)]
struct ErrorField {
    /// The same chain main prints after `error:`.
    message: String,
    /// The exit code the process ends with.
    exit_code: u8,
}

/// Prints `command`'s envelope on stdout.
pub fn print<T: Serialize>(
    printer: &Printer,
    command: &str,
    ok: bool,
    data: T,
) -> anyhow::Result<()> {
    let text = Envelope::new(command, ok, data).to_text()?;
    printer.stdout().text(&text)?;
    Ok(())
}

/// Prints the envelope of a command that ended in `err`.
pub fn print_error(printer: &Printer, command: &str, err: &anyhow::Error) -> anyhow::Result<()> {
    print(printer, command, false, error_data(err))
}

fn error_data(err: &anyhow::Error) -> ErrorData {
    ErrorData {
        error: ErrorField {
            message: format!("{err:#}"),
            exit_code: ExitStatus::from_error(err) as u8,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_flattens_the_data_after_its_three_fields() {
        #[derive(Serialize)]
        struct Data {
            project: &'static str,
        }
        let text = Envelope::new("status", true, Data { project: "hits" })
            .to_text()
            .unwrap();
        assert_eq!(
            text,
            "{\n  \"schema\": 1,\n  \"command\": \"status\",\n  \"ok\": true,\n  \"project\": \"hits\"\n}\n"
        );
    }

    #[test]
    fn an_error_carries_its_message_and_exit_code() {
        let err = anyhow::Error::from(crate::UsageError("no spec".into())).context("loading");
        let value = serde_json::to_value(Envelope::new("verify", false, error_data(&err))).unwrap();
        assert_eq!(value["ok"], false);
        assert_eq!(value["error"]["message"], "loading: no spec");
        assert_eq!(value["error"]["exit_code"], 2);
    }
}
