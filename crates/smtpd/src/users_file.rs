//! The users file of `[auth] users_file`: one `name:argon2-hash` line per user, `#` comments
//! and blank lines allowed. The server reads it at start and whenever it changes; `relais user
//! add | passwd | delete | list` edit it with these functions, rewriting it whole (a new file
//! renamed over the old one, mode 0600), so that the server never reads half a file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One user of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The login name, as written (compared without case).
    pub name: String,
    /// Its argon2 hash in PHC format.
    pub hash: String,
}

/// Reads the users of a file's text; an error names the file and the line.
pub fn parse(text: &str, origin: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} line {}: {what}", origin.display(), n + 1),
            )
        };
        let Some((name, hash)) = line.split_once(':') else {
            return Err(bad("expected name:hash"));
        };
        if !hash.trim().starts_with("$argon2") {
            return Err(bad("not an argon2 hash"));
        }
        out.push(Entry {
            name: name.trim().to_string(),
            hash: hash.trim().to_string(),
        });
    }
    Ok(out)
}

/// The users of a file (none when it does not exist yet).
pub fn list(path: &Path) -> io::Result<Vec<Entry>> {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Gives `name` the password hash `hash`: its line is replaced, or added at the end. Returns
/// true if the user was there before.
pub fn set(path: &Path, name: &str, hash: &str) -> io::Result<bool> {
    let text = read_or_empty(path)?;
    parse(&text, path)?;
    let mut found = false;
    let mut out = String::with_capacity(text.len() + hash.len() + name.len() + 2);
    for line in text.lines() {
        if is_user_line(line, name) {
            if !found {
                out.push_str(&format!("{name}:{hash}\n"));
            }
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    replace(path, &out)?;
    Ok(found)
}

/// Removes `name`; false if it was not there (the file is left as it was).
pub fn remove(path: &Path, name: &str) -> io::Result<bool> {
    let text = read_or_empty(path)?;
    parse(&text, path)?;
    let kept: Vec<&str> = text.lines().filter(|l| !is_user_line(l, name)).collect();
    if kept.len() == text.lines().count() {
        return Ok(false);
    }
    let mut out = kept.join("\n");
    out.push('\n');
    replace(path, &out)?;
    Ok(true)
}

/// True if `line` is the line of user `name` (names compared without case).
fn is_user_line(line: &str, name: &str) -> bool {
    let line = line.trim();
    !line.starts_with('#')
        && line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
}

fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Writes `text` to a new file beside `path` (mode 0600), synced, then renames it over `path`.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "users".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.new"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "$argon2id$v=19$m=19456,t=2,p=1$one";
    const H2: &str = "$argon2id$v=19$m=19456,t=2,p=1$two";

    #[test]
    fn add_replace_remove_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert_eq!(list(&path).unwrap(), []);
        assert!(!set(&path, "alice", H1).unwrap());
        fs::write(&path, format!("# the users\nalice:{H1}\n\nbob:{H1}\n")).unwrap();
        assert!(set(&path, "ALICE", H2).unwrap());
        assert!(!set(&path, "carol", H1).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("# the users\nALICE:{H2}\n\nbob:{H1}\ncarol:{H1}\n")
        );
        assert!(remove(&path, "bob").unwrap());
        assert!(!remove(&path, "bob").unwrap());
        let names: Vec<String> = list(&path).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["ALICE", "carol"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_lines_are_errors_that_name_the_line() {
        let origin = Path::new("/etc/relais/users");
        let table: &[(&str, Option<&str>)] = &[
            ("alice:$argon2id$x\n# c\n\n", None),
            (
                "alice\n",
                Some("/etc/relais/users line 1: expected name:hash"),
            ),
            (
                "# c\nbob:plain\n",
                Some("/etc/relais/users line 2: not an argon2 hash"),
            ),
        ];
        for (text, want) in table {
            let got = parse(text, origin).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{text:?}");
        }
        // An edit of a broken file changes nothing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        fs::write(&path, "broken\n").unwrap();
        assert!(set(&path, "alice", H1).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "broken\n");
    }
}
