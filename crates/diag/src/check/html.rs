//! `relais check --html FILE`: the report as one page that needs nothing else (styles inline,
//! no script, no outside file), to attach to a ticket or open in any browser.

use std::fmt::Write as _;

use super::CheckReport;
use crate::html::esc;
use crate::probe::render::waterfall;
use crate::probe::report::Verdict;

fn verdict_rows(out: &mut String, verdicts: &[Verdict]) {
    out.push_str("<table><tr><th>verdict</th><th>check</th><th>finding</th><th>advice</th></tr>\n");
    for v in verdicts {
        let _ = writeln!(
            out,
            "<tr class=\"{l}\"><td>{l}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(v.check),
            esc(&v.reason),
            esc(&v.advice),
            l = v.level.as_str()
        );
    }
    out.push_str("</table>\n");
}

fn lines(out: &mut String, lines: &[String]) {
    if !lines.is_empty() {
        let _ = writeln!(out, "<pre>{}</pre>", esc(&lines.join("\n")));
    }
}

/// The page.
pub(super) fn page(r: &CheckReport) -> String {
    let mut out = String::new();
    let worst = r.worst();
    let (ok, warn, fail) = r.counts();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>relais check {d}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}}\
         tr.ok td:first-child{{background:#cfc}}tr.warn td:first-child{{background:#ffc}}\
         tr.fail td:first-child{{background:#fcc}}\
         .bar{{background:#eee;width:30em;height:1em;position:relative}}\
         .bar span{{position:absolute;top:0;height:1em;background:#48c;min-width:2px}}\
         </style></head><body>\n<h1>relais check {d}</h1>\n\
         <p class=\"summary {w}\">Overall <b>{W}</b>: {ok} ok, {warn} warn, {fail} fail; exit {e}</p>\n",
        d = esc(&r.domain),
        w = worst.as_str(),
        W = worst.as_str().to_uppercase(),
        e = r.exit
    );
    let p = &r.probe;
    out.push_str("<h2>MX hosts</h2>\n");
    lines(&mut out, &p.route);
    verdict_rows(&mut out, &p.route_verdicts);
    if let Some(auth) = &p.sender_auth {
        out.push_str("<h2>Sender authentication (SPF, DMARC, DKIM)</h2>\n");
        lines(&mut out, &auth.lines);
        verdict_rows(&mut out, &auth.verdicts);
    }
    out.push_str("<h2>Other records (MTA-STS, TLS-RPT, BIMI, DANE, DNS block lists)</h2>\n");
    lines(&mut out, &r.records.lines);
    verdict_rows(&mut out, &r.records.verdicts);
    for host in &p.hosts {
        let _ = writeln!(
            out,
            "<h2>{} [{}]</h2>\n<table><tr><th>stage</th><th>start</th><th>time</th><th></th><th>result</th></tr>",
            esc(&host.host),
            esc(&host.address)
        );
        let total: f64 = host.stages.iter().filter_map(|s| s.ms).sum();
        for (stage, at, ms, _) in waterfall(host, 40) {
            let (left, width) = if total > 0.0 {
                (at / total * 100.0, ms / total * 100.0)
            } else {
                (0.0, 0.0)
            };
            let result = host
                .stages
                .iter()
                .find(|s| s.stage == stage)
                .map(|s| s.result.as_str())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<tr><td>{stage}</td><td>{at:.1} ms</td><td>{ms:.1} ms</td>\
                 <td><div class=\"bar\"><span style=\"left:{left:.2}%;width:{width:.2}%\"></span></div></td>\
                 <td>{}</td></tr>",
                esc(result)
            );
        }
        out.push_str("</table>\n");
        verdict_rows(&mut out, &host.verdicts);
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
