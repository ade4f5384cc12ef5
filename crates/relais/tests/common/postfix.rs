//! A private Postfix instance: its own main.cf and master.cf in a temporary directory (see
//! PERFORMANCE.md "Running the peers"), started and stopped with `postfix -c DIR start|stop`.

use std::fs;
use std::net::{SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::wait::{list_files, tempdir, wait_files, wait_until};

/// How long Postfix may take to listen, or to deliver what a test waits for.
const WAIT: Duration = Duration::from_secs(30);
/// How long its master may take to exit after `postfix stop` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What an instance is made of.
pub struct Setup<'a> {
    /// Where smtpd listens (master.cf may bind any 127.0.0.x, while `inet_interfaces` is
    /// `loopback-only`: Postfix refuses an address that no interface carries).
    pub listen: SocketAddrV4,
    /// The one virtual domain it takes mail for (host name `mx.DOMAIN`).
    pub domain: &'a str,
    /// `mynetworks`: the clients allowed to relay.
    pub mynetworks: &'a str,
    /// The users of the domain, in a texthash map so that unknown recipients are refused at
    /// RCPT time; `None` takes every local part.
    pub users: Option<&'a [&'a str]>,
    /// STARTTLS with this certificate chain and key.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// The prefix of its temporary directory.
    pub prefix: &'a str,
}

/// A running instance: smtpd on [`Setup::listen`], mail for one virtual domain delivered by
/// the virtual agent into one Maildir, `vmail/box/`, as nobody; chroot off everywhere.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// Where smtpd listens.
    pub listen: SocketAddrV4,
    /// Its port.
    pub port: u16,
    running: bool,
}

/// uid and gid of a system user, from /etc/passwd.
fn user_ids(name: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .unwrap_or_else(|| panic!("no user {name} (is Postfix installed? scripts/deps.sh)"))
}

impl Postfix {
    /// Writes the configuration, starts the instance and waits until smtpd accepts
    /// connections.
    pub fn start(setup: &Setup) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is needed (scripts/deps.sh installs it)"
        );
        let Setup {
            listen,
            domain,
            mynetworks,
            ..
        } = *setup;
        let dir = tempdir(setup.prefix);
        let d = dir.path();
        for sub in ["etc", "queue", "data", "vmail", "tls"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        for p in [d.to_path_buf(), d.join("etc"), d.join("queue")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (postfix_uid, _) = user_ids("postfix");
        let (nobody_uid, nobody_gid) = user_ids("nobody");
        std::os::unix::fs::chown(d.join("data"), Some(postfix_uid), None).unwrap();
        std::os::unix::fs::chown(d.join("vmail"), Some(nobody_uid), Some(nobody_gid)).unwrap();
        let mailbox_maps = match setup.users {
            Some(users) => {
                let mailboxes: String = users
                    .iter()
                    .map(|u| format!("{u}@{domain} box/\n"))
                    .collect();
                fs::write(d.join("etc/vmailbox"), mailboxes).unwrap();
                format!("texthash:{}/etc/vmailbox", d.display())
            }
            None => "static:box/".to_string(),
        };
        let tls_lines = match setup.tls {
            Some((chain, key)) => {
                fs::copy(chain, d.join("tls/chain.pem")).unwrap();
                fs::copy(key, d.join("tls/key.pem")).unwrap();
                format!(
                    "smtpd_tls_cert_file = {dir}/tls/chain.pem\n\
                     smtpd_tls_key_file = {dir}/tls/key.pem\n\
                     smtpd_tls_security_level = may\n\
                     smtpd_tls_loglevel = 1\n",
                    dir = d.display()
                )
            }
            None => "smtpd_tls_security_level = none\n".to_string(),
        };
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
relay_domains =
relayhost =
mynetworks = {mynetworks}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = $myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = {mailbox_maps}
virtual_uid_maps = static:{nobody_uid}
virtual_gid_maps = static:{nobody_gid}
virtual_minimum_uid = 1
{tls_lines}",
            dir = d.display(),
        );
        fs::write(d.join("etc/main.cf"), main_cf).unwrap();
        // chroot off everywhere (column 5 "n"): the instance needs no copy of /etc.
        let master_cf = format!(
            "{listen} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        );
        fs::write(d.join("etc/master.cf"), master_cf).unwrap();
        let mut pf = Postfix {
            dir,
            listen,
            port: listen.port(),
            running: false,
        };
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(pf.dir.path().join("etc"))
            .arg("start")
            .output()
            .expect("run postfix start");
        pf.running = true;
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        wait_until(&format!("Postfix listening on {listen}"), WAIT, || {
            TcpStream::connect(listen).ok()
        });
        pf
    }

    /// `IP:PORT` of smtpd.
    pub fn addr(&self) -> String {
        self.listen.to_string()
    }

    /// Its log.
    pub fn maillog(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The messages its virtual agent delivered.
    pub fn delivered(&self) -> Vec<PathBuf> {
        list_files(&self.dir.path().join("vmail/box/new"))
    }

    /// How many messages its virtual agent has delivered so far.
    pub fn delivered_count(&self) -> usize {
        self.delivered().len()
    }

    /// Waits until its virtual agent has delivered `n` messages; returns them.
    pub fn wait_delivered(&self, n: usize) -> Vec<String> {
        wait_files(&self.dir.path().join("vmail/box/new"), n, WAIT)
            .iter()
            .map(|f| String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned())
            .collect()
    }

    fn master_pid(&self) -> Option<libc::pid_t> {
        fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let pid = self.master_pid();
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
        if let Some(pid) = pid {
            // The master of this instance (its own pid file): wait for it, kill it if it stays.
            // SAFETY: kill(2) with signal 0 only checks that the PID exists.
            let alive = || unsafe { libc::kill(pid, 0) } == 0;
            let deadline = Instant::now() + STOP_TIMEOUT;
            while alive() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if alive() {
                // SAFETY: kill(2) on the master PID this instance wrote.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if thread::panicking() {
            eprintln!("--- postfix maillog ---\n{}", self.maillog());
        }
    }
}
