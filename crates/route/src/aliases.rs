//! The aliases file, in the `/etc/aliases` format that sendmail and Postfix read.
//!
//! ```text
//! # comment
//! postmaster: root
//! root:       alice, \root            # alice, and root's own mailbox
//! staff:      alice, bob@example.org,
//!             "|/usr/local/bin/archive --list staff",
//!             /var/mail/staff.mbox
//! team:       :include: team.list     # relative to this file's directory
//! gone:       :fail: No such person at this address
//! ```
//!
//! - An entry is `name: target, target, ...`; a line that starts with white space continues the
//!   entry above it. Blank lines and lines whose first non-blank character is `#` are skipped
//!   (also between continuation lines), and `#` after white space starts a comment to the end of
//!   the line (outside quotes).
//! - Names are compared without case. A name may be quoted (`"john doe": ...`).
//! - Targets are separated by commas outside double quotes; a quoted target keeps its commas and
//!   spaces (`"|/usr/bin/prog a, b"`), `\"` and `\\` inside quotes stand for `"` and `\`.
//! - `:fail:` takes the rest of the line as its text, commas included: nothing can follow it.
//! - The same name twice is an error, not a silent override: an operator who adds an entry at
//!   the end of the file must see that an older one exists.
//!
//! ## Expansion
//!
//! [`Aliases::expand`] turns a local part into the final [`Target`]s:
//! - a bare name that is itself an alias is expanded again; one that is not is a [`Target::Mailbox`];
//! - `\name` is the mailbox `name`, never expanded;
//! - a name that lists itself (`bob: bob, bob@example.org`), directly or from an
//!   `:include:` file read for it, is its own mailbox (the usual "keep a copy" idiom);
//! - a longer cycle (`a: b` and `b: a`) is an error, [`AliasError::Loop`]. Sendmail cuts such a
//!   cycle silently (the name already seen is dropped as a duplicate, which can leave no
//!   recipient at all); a refusal that names the chain is easier to find and fix. The same goes
//!   for an `:include:` file that includes itself, and for expansions deeper than
//!   [`MAX_DEPTH`];
//! - `:include:` files are read at expansion time, so editing a list needs no reload; their
//!   syntax is that of a target list, one or more targets per line;
//! - duplicates are dropped, the first occurrence keeps its place.
//!
//! The caller decides what the targets mean for delivery; [`AliasError::outcome`] says what an
//! expansion error means for the recipient.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use relais_queue::{Outcome, Target};

/// How deep expansion may go (aliases and `:include:` files together) before it is taken for a
/// loop. Sendmail allows 10 aliases deep; lists of lists rarely go beyond 3.
pub const MAX_DEPTH: usize = 20;

/// Why an aliases file could not be read or a name could not be expanded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AliasError {
    /// A file (the aliases file or an `:include:` file) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A line is not in the aliases format.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1 (the first line of the entry for a continued entry).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The expansion comes back to a name or `:include:` file it is already expanding.
    #[error("alias loop: {}", chain.join(" -> "))]
    Loop {
        /// The names and `:include:` files from the start, ending with the repeated one.
        chain: Vec<String>,
    },
    /// The expansion goes deeper than [`MAX_DEPTH`].
    #[error("alias expansion deeper than {MAX_DEPTH}: {}", chain.join(" -> "))]
    TooDeep {
        /// The names and `:include:` files from the start.
        chain: Vec<String>,
    },
}

impl AliasError {
    /// What this error means for the recipient being expanded: a loop bounces (`5.4.6`, routing
    /// loop); a file that cannot be read or parsed defers (`4.3.0`), since the operator can fix it
    /// and the mail should not be lost meanwhile.
    pub fn outcome(&self) -> Outcome {
        match self {
            AliasError::Loop { .. } | AliasError::TooDeep { .. } => {
                Outcome::failed("5.4.6", self.to_string())
            }
            AliasError::Read { .. } | AliasError::Syntax { .. } => {
                Outcome::deferred("4.3.0", self.to_string())
            }
        }
    }
}

/// A target as written, before expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A bare local name: expanded again if it is an alias.
    Name(String),
    /// `\name`: the mailbox, no expansion.
    Literal(String),
    /// `:include:path`, already made absolute.
    Include(PathBuf),
    /// Anything that is final as written.
    Final(Target),
}

/// One entry of the file.
#[derive(Debug, Clone)]
struct Entry {
    /// The targets, in file order.
    items: Vec<Item>,
}

/// A parsed aliases file.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// Entries by lower-case name.
    entries: HashMap<String, Entry>,
    /// The file it came from, for error messages.
    origin: PathBuf,
}

impl Aliases {
    /// Parses the text of an aliases file. `origin` is the file it came from: error messages name
    /// it, and relative `:include:` paths are taken from its directory.
    pub fn parse(text: &str, origin: &Path) -> Result<Aliases, AliasError> {
        let base = origin.parent().unwrap_or(Path::new("/"));
        let mut entries = HashMap::new();
        for (line, logical) in logical_lines(text, origin)? {
            let syntax = |message: String| AliasError::Syntax {
                path: origin.to_path_buf(),
                line,
                message,
            };
            let (name, rest) = split_name(&logical).map_err(syntax)?;
            let items = parse_targets(rest, base).map_err(syntax)?;
            if items.is_empty() {
                return Err(syntax(format!("alias {name:?} has no target")));
            }
            if entries.contains_key(&name) {
                return Err(syntax(format!("alias {name:?} is defined twice")));
            }
            entries.insert(name, Entry { items });
        }
        Ok(Aliases {
            entries,
            origin: origin.to_path_buf(),
        })
    }

    /// Reads and parses an aliases file.
    pub fn load(path: &Path) -> Result<Aliases, AliasError> {
        let text = read(path)?;
        Aliases::parse(&text, path)
    }

    /// The file these aliases came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// How many names are defined.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no name is defined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `local_part` (any case) is an alias.
    pub fn contains(&self, local_part: &str) -> bool {
        self.entries.contains_key(&local_part.to_lowercase())
    }

    /// Expands a local part (exactly as given: address extensions such as `+tag` are the
    /// caller's to strip). `Ok(None)`: not an alias, a plain local user. Otherwise the final
    /// targets, without duplicates, in the order they were first reached. `:include:` files are
    /// read now.
    pub fn expand(&self, local_part: &str) -> Result<Option<Vec<Target>>, AliasError> {
        let name = local_part.to_lowercase();
        let Some(entry) = self.entries.get(&name) else {
            return Ok(None);
        };
        let mut walk = Walk {
            aliases: self,
            chain: vec![name.clone()],
            includes: Vec::new(),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        walk.items(&name, &entry.items)?;
        Ok(Some(walk.out))
    }
}

/// The state of one expansion.
struct Walk<'a> {
    /// The aliases being expanded.
    aliases: &'a Aliases,
    /// The names and include files being expanded, outermost first: for loop detection and
    /// error messages.
    chain: Vec<String>,
    /// The include files being read, to tell an include loop from a name loop.
    includes: Vec<PathBuf>,
    /// Targets already emitted.
    seen: HashSet<Target>,
    /// The result.
    out: Vec<Target>,
}

impl Walk<'_> {
    /// Expands the targets of `owner` (the alias they belong to).
    fn items(&mut self, owner: &str, items: &[Item]) -> Result<(), AliasError> {
        for item in items {
            match item {
                Item::Name(n) if n == owner => self.emit(Target::Mailbox(n.clone())),
                Item::Name(n) => match self.aliases.entries.get(n) {
                    None => self.emit(Target::Mailbox(n.clone())),
                    Some(entry) => {
                        self.enter(n.clone(), None)?;
                        self.items(n, &entry.items)?;
                        self.leave();
                    }
                },
                Item::Literal(n) => self.emit(Target::Mailbox(n.clone())),
                Item::Include(path) => {
                    self.enter(format!(":include:{}", path.display()), Some(path))?;
                    let text = read(path)?;
                    let base = path.parent().unwrap_or(Path::new("/"));
                    let mut included = Vec::new();
                    for (line, logical) in include_lines(&text) {
                        let more = parse_targets(&logical, base).map_err(|message| {
                            AliasError::Syntax {
                                path: path.clone(),
                                line,
                                message,
                            }
                        })?;
                        included.extend(more);
                    }
                    self.items(owner, &included)?;
                    self.leave();
                }
                Item::Final(t) => self.emit(t.clone()),
            }
        }
        Ok(())
    }

    /// Goes one level deeper, refusing cycles and excessive depth.
    fn enter(&mut self, label: String, include: Option<&PathBuf>) -> Result<(), AliasError> {
        let repeated = match include {
            Some(p) => self.includes.contains(p),
            None => self.chain.contains(&label),
        };
        self.chain.push(label);
        if repeated {
            return Err(AliasError::Loop {
                chain: self.chain.clone(),
            });
        }
        if self.chain.len() > MAX_DEPTH {
            return Err(AliasError::TooDeep {
                chain: self.chain.clone(),
            });
        }
        if let Some(p) = include {
            self.includes.push(p.clone());
        }
        Ok(())
    }

    /// Comes back up one level.
    fn leave(&mut self) {
        if let Some(label) = self.chain.pop()
            && label.starts_with(":include:")
        {
            self.includes.pop();
        }
    }

    fn emit(&mut self, target: Target) {
        if self.seen.insert(target.clone()) {
            self.out.push(target);
        }
    }
}

fn read(path: &Path) -> Result<String, AliasError> {
    fs::read_to_string(path).map_err(|source| AliasError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Joins continuation lines: (number of the first line, the logical line without comments).
fn logical_lines(text: &str, origin: &Path) -> Result<Vec<(usize, String)>, AliasError> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, logical)) => {
                    logical.push(' ');
                    logical.push_str(line.trim());
                }
                None => {
                    return Err(AliasError::Syntax {
                        path: origin.to_path_buf(),
                        line: i + 1,
                        message: "continuation line with no entry above it".into(),
                    });
                }
            }
        } else {
            out.push((i + 1, line.trim_end().to_string()));
        }
    }
    Ok(out)
}

/// The lines of an `:include:` file: every non-comment line is a target list on its own
/// (continuation lines are allowed too and simply add targets).
fn include_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, raw)| (i + 1, strip_comment(raw).trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// Cuts a `#` comment: a line whose first non-blank character is `#`, or `#` after white space
/// outside quotes (so `|prog#1` and `"a # b"` keep theirs).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '#' && !quoted && prev_blank {
            return &line[..i];
        }
        prev_blank = c == ' ' || c == '\t';
    }
    line
}

/// Splits `name: rest` into the lower-case name and the rest.
fn split_name(line: &str) -> Result<(String, &str), String> {
    let line = line.trim();
    let (name, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let (name, after) = unquote_prefix(quoted)?;
        let rest = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':' after the name \"{name}\""))?;
        (name, rest)
    } else {
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("expected 'name: targets', got {line:?}"))?;
        let name = name.trim();
        if name.contains([' ', '\t']) {
            return Err(format!("white space in the name {name:?} (quote it)"));
        }
        (name.to_string(), rest)
    };
    if name.is_empty() {
        return Err("empty alias name".into());
    }
    Ok((name.to_lowercase(), rest))
}

/// Reads a quoted string whose opening quote is already consumed: (content, what follows).
fn unquote_prefix(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            _ => out.push(c),
        }
    }
    Err("unterminated quote".into())
}

/// Parses a target list (`a, "|cmd x", :include: f, ...`). Relative include paths are taken
/// from `base`.
fn parse_targets(list: &str, base: &Path) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = list.trim_start();
    while !rest.is_empty() {
        // `:fail:` swallows the rest of the line, commas included.
        if let Some(text) = strip_prefix_ci(rest, ":fail:") {
            let text = text.trim();
            if text.is_empty() {
                return Err(":fail: needs a text".into());
            }
            items.push(Item::Final(Target::Fail(text.to_string())));
            break;
        }
        let (raw, quoted, after) = if let Some(q) = rest.strip_prefix('"') {
            let (content, after) = unquote_prefix(q)?;
            let after = after.trim_start();
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(format!(
                    "unexpected text after the quoted target \"{content}\""
                ));
            }
            (content, true, after)
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().to_string(), false, &rest[end..])
        };
        rest = after.strip_prefix(',').unwrap_or(after).trim_start();
        if raw.is_empty() && !quoted {
            continue;
        }
        items.push(classify(&raw, base)?);
    }
    Ok(items)
}

/// What one target is, from how it starts.
fn classify(raw: &str, base: &Path) -> Result<Item, String> {
    let raw = raw.trim();
    if let Some(cmd) = raw.strip_prefix('|') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err("'|' with no command".into());
        }
        return Ok(Item::Final(Target::Pipe(cmd.to_string())));
    }
    if raw.starts_with('/') {
        return Ok(Item::Final(Target::File(PathBuf::from(raw))));
    }
    if let Some(path) = strip_prefix_ci(raw, ":include:") {
        let path = path.trim();
        if path.is_empty() {
            return Err(":include: with no file".into());
        }
        return Ok(Item::Include(base.join(path)));
    }
    if strip_prefix_ci(raw, ":fail:").is_some() {
        return Err(":fail: in quotes or after other text".into());
    }
    if let Some(name) = raw.strip_prefix('\\') {
        let name = name.trim();
        if name.is_empty() || name.contains([' ', '\t', '@']) {
            return Err(format!("bad mailbox name {raw:?}"));
        }
        return Ok(Item::Literal(name.to_lowercase()));
    }
    let addr = raw
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(raw);
    if addr.is_empty() {
        return Err("empty target".into());
    }
    if addr.contains([' ', '\t']) {
        return Err(format!(
            "white space in the target {raw:?} (quote a command)"
        ));
    }
    match addr.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(Item::Final(
            Target::Forward(format!("{local}@{}", domain.to_lowercase())),
        )),
        Some(_) => Err(format!("bad address {raw:?}")),
        None => Ok(Item::Name(addr.to_lowercase())),
    }
}

/// `s` without `prefix`, ignoring ASCII case.
fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests;
