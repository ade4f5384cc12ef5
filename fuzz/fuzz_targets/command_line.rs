//! Command lines (server half): never a panic; what parses prints (client half) to a line that
//! parses to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_proto::Command;

fuzz_target!(|line: &[u8]| {
    let _ = Command::verb_of(line);
    if let Ok(cmd) = Command::parse(line) {
        let printed = cmd.to_string();
        let again = Command::parse(printed.as_bytes())
            .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e:?}"));
        assert_eq!(again, cmd, "{printed:?}");
    }
});
