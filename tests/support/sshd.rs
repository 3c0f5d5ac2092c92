//! Real OpenSSH servers for the tests, without docker: one `/usr/sbin/sshd`
//! per host, each on its own loopback address (`127.0.0.N`, every address in
//! 127/8 reaches this machine) and free port, with its own host key, pid file
//! and config in a tempdir. Tests run in parallel threads, so addresses come
//! from a process-wide counter and ports from the kernel.
//!
//! Nothing here touches `/root/.ssh` or the user's real `~/.ssh`: keys,
//! `authorized_keys` and `known_hosts` live in tempdirs, and the binary runner
//! points `HOME` at a temp home.
//!
//! If sshd cannot start the harness panics with sshd's own stderr; it never
//! skips a test.
//!
//! ```ignore
//! let cluster = Cluster::start(3);
//! let inventory = cluster.inventory(&[("consul_role", "server")]);
//! let run = cluster.run(&["ping", "-i", inventory.to_str().unwrap()]);
//! assert_eq!(run.code, 0, "{run}");
//! ```

use std::fmt;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use arpanet::transport::{HostKeyChecking, SessionMode, Target};
use tempfile::TempDir;

/// The unprivileged account tests log in as (login shell `/bin/sh`, so no
/// slow `.bashrc` runs on every exec).
pub const TEST_USER: &str = "arpanet-test";

const SSHD: &str = "/usr/sbin/sshd";

/// How long sshd gets to start listening before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one run of the `arpanet` binary may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The next loopback address, `127.0.0.2` to `127.0.0.250`. The start is
/// taken from the pid so that test processes running side by side (other
/// worktrees) mostly use different addresses; ports are unique anyway.
fn next_address() -> String {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let counter = NEXT.get_or_init(|| AtomicU32::new(std::process::id() % 249));
    let n = counter.fetch_add(1, Ordering::Relaxed) % 249 + 2;
    format!("127.0.0.{n}")
}

/// A port the kernel says is free on `address` right now.
fn free_port(address: &str) -> u16 {
    let listener = TcpListener::bind((address, 0))
        .unwrap_or_else(|e| panic!("cannot bind a free port on {address}: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address for {address}: {e}"))
        .port()
}

/// Run a setup command; panic with its output if it fails.
fn run_checked(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed with {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Make `path` readable (and, for directories, traversable) by everyone, so
/// sshd can read `authorized_keys` as the unprivileged test user.
fn open_up(path: &Path) {
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Generate an ed25519 key pair at `path` (and `path.pub`), optionally
/// encrypted with `passphrase`. Returns the public key line
/// `ssh-ed25519 AAAA...` without its comment.
pub fn keygen(path: &Path, passphrase: &str) -> String {
    keygen_typed(path, "ed25519", passphrase)
}

/// Like [`keygen`] with another key type (`rsa`, `ecdsa`, ...).
pub fn keygen_typed(path: &Path, kind: &str, passphrase: &str) -> String {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    run_checked(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                kind,
                "-N",
                passphrase,
                "-C",
                "arpanet-test",
                "-f",
            ])
            .arg(path),
    );
    public_key_line(&path.with_extension("pub"))
}

/// `ssh-ed25519 AAAA...` from a `.pub` file, without the comment.
fn public_key_line(pub_file: &Path) -> String {
    let text = fs::read_to_string(pub_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", pub_file.display()));
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Create the unprivileged test user if missing and unlock it (a locked
/// account is refused by sshd even with a valid key). Safe to call from many
/// threads and processes.
pub fn ensure_test_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| ensure_account(TEST_USER, "/bin/sh"));
}

/// An unprivileged account whose login shell prints a banner on stdout
/// before and after every command, as a wrapper around `/bin/sh` would
/// (what a noisy `.bashrc` or MOTD script does to a login). Created once per
/// machine, like [`TEST_USER`]; returns its name.
pub fn ensure_banner_user() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        install_shell(
            BANNER_SHELL,
            "#!/bin/sh\necho 'WELCOME BANNER: this host is watched'\n/bin/sh \"$@\"\n\
             status=$?\necho 'GOODBYE BANNER'\nexit $status\n",
        );
        ensure_account(BANNER_USER, BANNER_SHELL);
    });
    BANNER_USER
}

/// An unprivileged account whose login shell runs nothing it is given: it
/// says so on stderr and exits 3, as a non-POSIX shell (csh, fish) ends on
/// a POSIX script it cannot parse. Its words leave after it has exited
/// (a child it left writes them), so the exit status reaches the client
/// first: sshd sends it when it reaps the shell, and on a busy host words
/// still in the pipe then follow it. Returns its name.
pub fn ensure_refusing_user() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        install_shell(
            REFUSING_SHELL,
            "#!/bin/sh\n(sleep 0.1; echo 'refusing-sh: this shell takes no commands' >&2) &\nexit 3\n",
        );
        ensure_account(REFUSING_USER, REFUSING_SHELL);
    });
    REFUSING_USER
}

/// Install the script `text` as the program `path`, written whole and
/// renamed: test processes in other worktrees may do the same at the same
/// moment (and threads of this one install other shells: the temporary
/// file is named after the program).
fn install_shell(path: &str, text: &str) {
    let path = Path::new(path);
    let dir = path.parent().expect("shell path has a parent");
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let name = path
        .file_name()
        .expect("shell path has a name")
        .to_string_lossy();
    let temp = dir.join(format!(".{name}.{}", std::process::id()));
    fs::write(&temp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", temp.display()));
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", temp.display()));
    fs::rename(&temp, path).unwrap_or_else(|e| panic!("cannot install {}: {e}", path.display()));
}

/// An unprivileged account whose login shell is `/bin/bash`, as root's is
/// on most distributions. Created once per machine; returns its name.
pub fn ensure_bash_user() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| ensure_account(BASH_USER, "/bin/bash"));
    BASH_USER
}

/// Create `user` with the login shell `shell` (or give an existing one
/// that shell), unlocked for key logins: `*` is no valid password hash,
/// but not a lock either, which sshd would refuse even with a valid key.
/// Test processes in other worktrees may hold the passwd lock: retried
/// until the account shows up.
fn ensure_account(user: &str, shell: &str) {
    let exists = || {
        Command::new("id")
            .args(["-u", user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for attempt in 0.. {
        if exists() {
            run_checked(Command::new("usermod").args(["-p", "*", "-s", shell, user]));
            return;
        }
        if attempt == 50 {
            break;
        }
        let added = Command::new("useradd")
            .args(["-m", "-s", shell, user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !added {
            thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("cannot create the test user `{user}` with useradd");
}

const BASH_USER: &str = "arpanet-bash";
const BANNER_USER: &str = "arpanet-banner";
const BANNER_SHELL: &str = "/usr/local/libexec/arpanet-test/banner-sh";
const REFUSING_USER: &str = "arpanet-refusing";
const REFUSING_SHELL: &str = "/usr/local/libexec/arpanet-test/refusing-sh";

/// sshd's privilege separation directory must exist.
fn ensure_privsep_dir() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        fs::create_dir_all("/run/sshd").unwrap_or_else(|e| panic!("cannot create /run/sshd: {e}"));
    });
}

/// Pids of every live descendant of `pid`, found through `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name may hold spaces; fields resume after ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((child, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The inode of the IPv4 TCP socket whose local end is `address:port`.
fn socket_inode(address: &str, port: u16) -> Option<String> {
    let ip: std::net::Ipv4Addr = address.parse().ok()?;
    // /proc/net/tcp writes the address as a little-endian hex word.
    let local = format!("{:08X}:{port:04X}", u32::from_le_bytes(ip.octets()));
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    // Only an established socket: an earlier connection from the same
    // port may linger in TIME_WAIT (state 06), owned by no process (inode 0).
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let established = fields.get(3) == Some(&"01");
        (established && fields.get(1) == Some(&local.as_str()))
            .then(|| fields.get(9).map(|s| s.to_string()))?
    })
}

/// One running (or stopped) sshd on `address:port`.
pub struct SshdHost {
    /// `127.0.0.N`.
    pub address: String,
    pub port: u16,
    /// The host's public key, `ssh-ed25519 AAAA...`.
    pub host_key: String,
    /// The host's private key file (its `.pub` sits beside it).
    pub host_key_file: PathBuf,
    pub authorized_keys: PathBuf,
    config: PathBuf,
    log: PathBuf,
    extra_config: String,
    /// Log at `DEBUG1` (each login and each forwarded channel) instead of
    /// `ERROR`.
    debug_log: bool,
    child: Mutex<Option<Child>>,
    dir: TempDir,
}

impl SshdHost {
    /// Start sshd accepting the keys listed in `authorized_keys` (an absolute
    /// path readable by the test user).
    pub fn start(authorized_keys: &Path) -> SshdHost {
        SshdHost::start_with_config(authorized_keys, "")
    }

    /// Like [`SshdHost::start`], with extra `sshd_config` lines appended
    /// (e.g. `"MaxStartups 2\n"`).
    pub fn start_with_config(authorized_keys: &Path, extra_config: &str) -> SshdHost {
        SshdHost::start_inner(authorized_keys, extra_config, false)
    }

    /// Like [`SshdHost::start`], logging each login (`Accepted publickey
    /// for ...`) and each forwarded channel (`server_request_direct_tcpip:
    /// ... to 127.0.0.N port P`) to [`SshdHost::log`]: a bastion whose
    /// traffic a test counts.
    pub fn start_logged(authorized_keys: &Path) -> SshdHost {
        SshdHost::start_inner(authorized_keys, "", true)
    }

    fn start_inner(authorized_keys: &Path, extra_config: &str, debug_log: bool) -> SshdHost {
        ensure_privsep_dir();
        ensure_test_user();
        let dir = tempfile::Builder::new()
            .prefix("arpanet-sshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        open_up(dir.path());
        let host_key_file = dir.path().join("ssh_host_ed25519_key");
        let host_key = keygen(&host_key_file, "");
        let address = next_address();
        let host = SshdHost {
            port: 0,
            address,
            host_key,
            host_key_file,
            authorized_keys: authorized_keys.to_path_buf(),
            config: dir.path().join("sshd_config"),
            log: dir.path().join("sshd.log"),
            extra_config: extra_config.to_owned(),
            debug_log,
            child: Mutex::new(None),
            dir,
        };
        host.launch_on_free_port()
    }

    /// Pick a free port and start; retry a few times if another process
    /// grabs the port between our probe and sshd's bind.
    fn launch_on_free_port(mut self) -> SshdHost {
        for _ in 0..5 {
            self.port = free_port(&self.address);
            match self.launch() {
                Ok(()) => return self,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!(
                    "sshd did not start on {}:{}\nconfig {}:\n{}\nsshd stderr:\n{log}",
                    self.address,
                    self.port,
                    self.config.display(),
                    fs::read_to_string(&self.config).unwrap_or_default()
                ),
            }
        }
        panic!(
            "sshd could not find a free port on {} after 5 tries",
            self.address
        );
    }

    fn write_config(&self) {
        let text = format!(
            "ListenAddress {address}:{port}\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             MaxSessions 10\n\
             AllowTcpForwarding yes\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             LogLevel ERROR\n\
             Subsystem sftp internal-sftp\n\
             {extra}",
            address = self.address,
            port = self.port,
            host_key = self.host_key_file.display(),
            pid = self.dir.path().join("sshd.pid").display(),
            authorized_keys = self.authorized_keys.display(),
            extra = self.extra_config,
        );
        fs::write(&self.config, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config.display()));
    }

    /// Start sshd and wait until it accepts connections; on failure return
    /// its stderr.
    fn launch(&self) -> Result<(), String> {
        self.write_config();
        let log = fs::File::create(&self.log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.log.display()));
        let mut command = Command::new(SSHD);
        if self.debug_log {
            // The command line wins over the config's `LogLevel ERROR`.
            command.args(["-o", "LogLevel=DEBUG1"]);
        }
        let mut child = command
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SSHD}: {e} (apt-get install openssh-server)"));
        let addr: SocketAddr = format!("{}:{}", self.address, self.port)
            .parse()
            .unwrap_or_else(|e| panic!("bad address {}:{}: {e}", self.address, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("sshd exited with {status}\n{log}"));
            }
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                // Read the banner so we know it is sshd that answered.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("sshd not listening after {START_TIMEOUT:?}\n{log}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// Kill sshd and every connection it serves (the host goes down).
    /// Connecting afterwards is refused.
    pub fn stop(&self) {
        let mut slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = slot.take() {
            let children = descendants(child.id());
            let _ = child.kill();
            let _ = child.wait();
            for pid in children {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Start sshd again on the same address, port and host key.
    pub fn restart(&self) {
        self.stop();
        let mut last = String::new();
        // The old listener may linger for a moment.
        for _ in 0..20 {
            match self.launch() {
                Ok(()) => return,
                Err(log) => last = log,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "sshd did not restart on {}:{}\n{last}",
            self.address, self.port
        );
    }

    /// Cut every connection sshd serves, as a broken link would: kill its
    /// per-connection sshd processes (not the commands they run, nor the
    /// listener, which keeps accepting). Returns how many were killed.
    pub fn cut_connections(&self) -> usize {
        self.signal_connections("-KILL")
    }

    /// Send `signal` (`-STOP`, `-CONT`, ...) to sshd's per-connection
    /// processes (not the commands they run, nor the listener). Returns how
    /// many were signalled.
    pub fn signal_connections(&self, signal: &str) -> usize {
        let slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = slot.as_ref() else {
            return 0;
        };
        let sshds: Vec<u32> = descendants(child.id())
            .into_iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sshd")
            })
            .collect();
        for pid in &sshds {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        sshds.len()
    }

    /// Whether one of sshd's per-connection processes holds the TCP socket
    /// whose local end is `address:port` (found through `/proc/net/tcp` and
    /// the processes' open files): whether a connection came from this host.
    pub fn holds_socket(&self, address: &str, port: u16) -> bool {
        let slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = slot.as_ref() else {
            return false;
        };
        let Some(inode) = socket_inode(address, port) else {
            return false;
        };
        let wanted = format!("socket:[{inode}]");
        descendants(child.id()).into_iter().any(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
            })
        })
    }

    /// The command lines (arguments joined by spaces) of every process
    /// sshd's sessions are running now: what `ps` shows of them.
    pub fn session_commands(&self) -> Vec<String> {
        let slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = slot.as_ref() else {
            return Vec::new();
        };
        descendants(child.id())
            .into_iter()
            .filter_map(|pid| fs::read(format!("/proc/{pid}/cmdline")).ok())
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .collect()
    }

    /// Whether sshd is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// This host's known_hosts line, `[127.0.0.N]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.address, self.port, self.host_key)
    }

    /// sshd's stderr so far (LogLevel ERROR).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The tempdir holding this host's config, keys and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SshdHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running ssh-agent on its own socket, killed on drop.
pub struct SshAgent {
    pub socket: PathBuf,
    child: Child,
    _dir: TempDir,
}

impl SshAgent {
    /// Start `ssh-agent -D -a SOCKET` and wait until it accepts.
    pub fn start() -> SshAgent {
        let dir = tempfile::Builder::new()
            .prefix("arpanet-agent-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        let socket = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ssh-agent: {e}"));
        let deadline = Instant::now() + START_TIMEOUT;
        // The socket file appears at bind(), a moment before listen():
        // wait until a connection is accepted.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("ssh-agent exited with {status}: {err}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ssh-agent socket {} never appeared", socket.display());
            }
            thread::sleep(Duration::from_millis(10));
        }
        SshAgent {
            socket,
            child,
            _dir: dir,
        }
    }

    /// `ssh-add` an unencrypted private key to this agent.
    pub fn add(&self, key: &Path) {
        run_checked(
            Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &self.socket)
                .stdin(Stdio::null()),
        );
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run of the `arpanet` binary left behind.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run the built `arpanet` binary with `args` in `cwd`, with `HOME=home`
/// (so the real `~/.ssh` and `~/.arpanetrc` are never read), no
/// `SSH_AUTH_SOCK`, no `ARPANET_SSH_PASSPHRASE` and `NO_COLOR=1`, plus `env`.
/// Killed (and the test failed) after three minutes.
pub fn run_arpanet(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = spawn_arpanet(home, cwd, args, env);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "arpanet {args:?} still running after {RUN_TIMEOUT:?}\nstderr:\n{}",
                    err.join().unwrap_or_default()
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot wait for arpanet: {e}"),
        }
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Start the built `arpanet` binary as [`run_arpanet`] does, with stdout
/// and stderr piped, and return at once (to signal it, or cut its
/// connections, while it runs).
pub fn spawn_arpanet(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arpanet"));
    command
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("ARPANET_SSH_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run arpanet: {e}"))
}

/// How the suite's connections run commands: `ARPANET_SESSION=exec cargo
/// test` runs every test (the binary reads the same variable) with a
/// channel per command instead of the persistent shell.
pub fn session_mode() -> SessionMode {
    match std::env::var("ARPANET_SESSION").as_deref() {
        Ok("exec") => SessionMode::Exec,
        _ => SessionMode::Persistent,
    }
}

/// `n` sshd hosts sharing one client key pair and one known_hosts file that
/// lists all their host keys.
///
/// The client key and known_hosts sit at the default places of a temp home
/// (`home/.ssh/id_ed25519`, `home/.ssh/known_hosts`), so the binary run by
/// [`Cluster::run`] finds them with no flags.
pub struct Cluster {
    pub hosts: Vec<SshdHost>,
    /// The user the hosts are reached as (default [`TEST_USER`]).
    pub user: String,
    /// The client's private key (unencrypted ed25519).
    pub key: PathBuf,
    /// The client's public key line, `ssh-ed25519 AAAA...`.
    pub public_key: String,
    pub authorized_keys: PathBuf,
    pub known_hosts: PathBuf,
    /// `HOME` for runs of the binary.
    pub home: PathBuf,
    dir: TempDir,
    locks: TempDir,
}

impl Cluster {
    /// Start `n` hosts in parallel.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with_config(n, "")
    }

    /// Start `n` hosts, each with `extra_config` appended to its sshd_config.
    pub fn start_with_config(n: usize, extra_config: &str) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("arpanet-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        open_up(dir.path());
        let home = dir.path().join("home");
        let ssh_dir = home.join(".ssh");
        fs::create_dir_all(&ssh_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", ssh_dir.display()));
        let key = ssh_dir.join("id_ed25519");
        let public_key = keygen(&key, "");
        let authorized_keys = dir.path().join("authorized_keys");
        fs::write(&authorized_keys, format!("{public_key}\n"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", authorized_keys.display()));
        open_up(&authorized_keys);

        let hosts: Vec<SshdHost> = thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    scope.spawn(|| SshdHost::start_with_config(&authorized_keys, extra_config))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });

        let known_hosts = ssh_dir.join("known_hosts");
        let lines: String = hosts
            .iter()
            .map(|h| format!("{}\n", h.known_hosts_line()))
            .collect();
        fs::write(&known_hosts, lines)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", known_hosts.display()));

        let locks = tempfile::Builder::new()
            .prefix("arpanet-locks-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        fs::set_permissions(locks.path(), fs::Permissions::from_mode(0o1777))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", locks.path().display()));
        Cluster {
            hosts,
            user: TEST_USER.to_owned(),
            key,
            public_key,
            authorized_keys,
            known_hosts,
            home,
            dir,
            locks,
        }
    }

    /// The cluster's tempdir (the binary runs here; write fixtures here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The inventory name of host `i`: `node1`, `node2`, ...
    pub fn name(&self, i: usize) -> String {
        format!("node{}", i + 1)
    }

    /// A strict-checking target for host `i`, using the cluster's key and
    /// known_hosts, with a 10 s connect timeout.
    pub fn target(&self, i: usize) -> Target {
        let host = &self.hosts[i];
        Target {
            name: self.name(i),
            address: host.address.clone(),
            port: host.port,
            user: self.user.clone(),
            identity_files: vec![self.key.clone()],
            known_hosts: self.known_hosts.clone(),
            extra_known_hosts: Vec::new(),
            host_key_checking: HostKeyChecking::Strict,
            host_key_alias: None,
            identities_only: false,
            connect_timeout: Duration::from_secs(10),
            keepalive: Default::default(),
            reconnect: Duration::ZERO,
            proxy: Default::default(),
            session: session_mode(),
            local: false,
        }
    }

    /// The INI line of host `i`:
    /// `node1 ansible_host=127.0.0.N ansible_port=PORT ansible_user=arpanet-test`.
    pub fn host_line(&self, i: usize) -> String {
        let host = &self.hosts[i];
        format!(
            "{} ansible_host={} ansible_port={} ansible_user={}",
            self.name(i),
            host.address,
            host.port,
            self.user
        )
    }

    /// Write `inventory.ini` listing every host ungrouped, with `vars` under
    /// `[all:vars]`; returns its path.
    pub fn inventory(&self, vars: &[(&str, &str)]) -> PathBuf {
        self.inventory_with_groups(&[], vars)
    }

    /// Write `inventory.ini` with `groups` (name and host indices; hosts in no
    /// group are listed ungrouped at the top) and `vars` under `[all:vars]`;
    /// returns its path.
    pub fn inventory_with_groups(
        &self,
        groups: &[(&str, &[usize])],
        vars: &[(&str, &str)],
    ) -> PathBuf {
        let mut text = String::new();
        for i in 0..self.hosts.len() {
            if !groups.iter().any(|(_, members)| members.contains(&i)) {
                text.push_str(&self.host_line(i));
                text.push('\n');
            }
        }
        for (group, members) in groups {
            text.push_str(&format!("\n[{group}]\n"));
            for &i in members.iter() {
                text.push_str(&self.host_line(i));
                text.push('\n');
            }
        }
        let mut vars: Vec<(&str, String)> =
            vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        // With `servers`, runs take the cluster's lock; before Consul runs
        // that is a directory on the boot server. Every test host is this
        // machine, so each test cluster keeps its lock in its own tempdir
        // (as each real cluster has its own boot server).
        if groups.iter().any(|(g, _)| *g == "servers") {
            vars.push(("arpanet_lock_dir", self.lock_dir().display().to_string()));
        }
        if !vars.is_empty() {
            text.push_str("\n[all:vars]\n");
            for (key, value) in vars {
                text.push_str(&format!("{key}={value}\n"));
            }
        }
        self.write_file("inventory.ini", &text)
    }

    /// Where runs against this cluster keep their lock file: in a tempdir
    /// of its own (not beside the inventory, which tests watch), that every
    /// user may write to, as `/var/lock`.
    pub fn lock_dir(&self) -> PathBuf {
        self.locks.path().join("arpanet")
    }

    /// Write `text` to `name` inside the cluster's tempdir; returns the path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Run the `arpanet` binary in the cluster's tempdir with the cluster's
    /// temp home (see [`run_arpanet`]).
    pub fn run(&self, args: &[&str]) -> Run {
        run_arpanet(&self.home, self.dir.path(), args, &[])
    }

    /// `arpanet run -i INVENTORY PLAYBOOK` like [`Cluster::run`].
    pub fn run_playbook(&self, inventory: &Path, playbook: &Path) -> Run {
        self.run(&[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
        ])
    }

    /// Start the binary like [`Cluster::run`] without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        spawn_arpanet(&self.home, self.dir.path(), args, &[])
    }

    /// Like [`Cluster::run`] with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_arpanet(&self.home, self.dir.path(), args, env)
    }

    /// Run `command` on host `i` with the system `ssh` client (independent
    /// of arpanet's SSH code, for checking what a test did remotely).
    pub fn ssh(&self, i: usize, command: &str) -> String {
        let host = &self.hosts[i];
        run_checked(
            Command::new("ssh")
                .args([
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
                .arg("-i")
                .arg(&self.key)
                .args(["-p", &host.port.to_string()])
                .arg(format!("{}@{}", self.user, host.address))
                .arg(command)
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::null()),
        )
    }
}
