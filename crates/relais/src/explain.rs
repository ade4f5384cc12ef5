//! `relais explain CODE` and `relais explain --file BOUNCE`.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use relais_diag::explain;
use relais_diag::explain::bounce;

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

/// Explains a whole bounce: its delivery report, or the replies quoted in its text.
pub fn run_file(path: &Path) -> ExitCode {
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    if let Err(e) = read {
        eprintln!("relais explain: cannot read {}: {e}", path.display());
        return ExitCode::from(exit::USAGE);
    }
    if let Some(b) = bounce::read(&bytes).filter(|b| !b.recipients.is_empty()) {
        print!("{}", bounce::render(&b));
        return ExitCode::from(exit::OK);
    }
    let exps = bounce::quoted_replies(&String::from_utf8_lossy(&bytes));
    if exps.is_empty() {
        eprintln!(
            "relais explain: not recognised: {} has no delivery status report and quotes no SMTP reply",
            path.display()
        );
        return ExitCode::from(exit::USAGE);
    }
    println!("No delivery status report; the SMTP replies quoted in the text:\n");
    print!("{}", explain::render_text(&exps));
    ExitCode::from(exit::OK)
}
