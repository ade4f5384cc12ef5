//! `relais explain CODE`.

use std::process::ExitCode;

use relais_diag::explain;

use crate::exit;

/// Prints the explanations of a code, or says why it is not one.
pub fn run(input: &str) -> ExitCode {
    match explain::explain_str(input) {
        Ok(exps) => {
            print!("{}", explain::render_text(&exps));
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("relais explain: {e}");
            ExitCode::from(exit::USAGE)
        }
    }
}
