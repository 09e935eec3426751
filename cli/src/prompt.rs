//! Asking for what a command lacks, only where someone can answer: stdin is a terminal.

use std::io::{BufRead, IsTerminal, Write};

/// `given`, or the answer to `question` when stdin is a terminal; else an error naming the
/// missing `flag`.
pub(crate) fn or_ask(given: Option<String>, question: &str, flag: &str) -> Result<String, String> {
    if let Some(value) = given {
        return Ok(value);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!("missing {flag} (see --help)"));
    }
    eprint!("{question}: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let answer = answer.trim();
    if answer.is_empty() {
        return Err(format!("no answer given for {flag}"));
    }
    Ok(answer.to_owned())
}
