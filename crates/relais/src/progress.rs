//! Live progress of `probe` and `check` on a terminal: one spinner per address with the stage
//! it is at (indicatif), each address's section printed as soon as it is done. Nothing of
//! this with `--json` or when standard output is not a terminal: the report is then printed
//! whole at the end, as before.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use relais_diag::probe::progress::{Event, Progress};

/// The bars of one run, and the engine's end of them.
pub struct Live {
    /// What the engine is handed (`ProbeOptions::progress`).
    pub progress: Progress,
    multi: MultiProgress,
    /// The spinners, one per address (and the records' in `check`), by index.
    bars: Arc<Mutex<Vec<ProgressBar>>>,
}

impl Live {
    /// Clears the spinners that are left, before the rest of the report is printed.
    pub fn finish(&self) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for bar in bars.iter() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// The live progress for a run, when standard output is a terminal and `json` is off.
pub fn live(json: bool, transcript: bool) -> Option<Live> {
    if json || !std::io::stdout().is_terminal() {
        return None;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
    let bars: Arc<Mutex<Vec<ProgressBar>>> = Arc::default();
    let progress = {
        let (multi, bars) = (multi.clone(), bars.clone());
        Progress::new(transcript, move |event| {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            show(&multi, &mut bars, event);
        })
    };
    Some(Live {
        progress,
        multi,
        bars,
    })
}

/// Draws one event: bars for the addresses, a stage as a bar's message, a finished address's
/// section above the bars that are left.
fn show(multi: &MultiProgress, bars: &mut Vec<ProgressBar>, event: Event<'_>) {
    let style = ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    match event {
        Event::Route { text, addresses } => {
            print_above(multi, text);
            for address in addresses {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(address.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(100));
                bars.push(bar);
            }
        }
        Event::Stage { index, stage } => {
            if let Some(bar) = bars.get(index) {
                bar.set_message(stage);
            }
        }
        Event::Done { index, section, .. } => {
            if let Some(bar) = bars.get(index) {
                bar.finish_and_clear();
                multi.remove(bar);
            }
            print_above(multi, section);
        }
        Event::Step { what } => {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style);
            bar.set_prefix("records");
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(100));
            bars.push(bar);
        }
        _ => {}
    }
}

/// Prints `text` on standard output, above the bars.
fn print_above(multi: &MultiProgress, text: &str) {
    multi.suspend(|| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    });
}
