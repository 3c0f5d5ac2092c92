//! OpenSSH `known_hosts` files, read and decided on the way OpenSSH's `ssh`
//! does (`check_host_key` in sshconnect.c, hostfile.c), so that a host
//! arpanet trusts is one `ssh` trusts and one it refuses is refused here too.
//! `tests/host_keys.rs` holds the two side by side on the same files.
//!
//! russh ships a reader too, but it compares one key at a time, knows no
//! markers or certificates, splits on single spaces, miscounts lines (the
//! line number matters: a changed key is reported with the file and line of
//! the old entry so the operator can remove it) and gives up on the whole
//! file at the first line it cannot parse.
//!
//! The rules, as OpenSSH applies them:
//! - The host is looked up as `host`, or `[host]:port` when the port is not
//!   22, in every file (the user's, then the global ones); an entry applies
//!   when its host field matches: a comma list of patterns (`*`, `?`,
//!   `!negated`, case-insensitive) or one hashed name (`|1|salt|hash`).
//! - A key recorded for the host is accepted. If the host has recorded keys
//!   and the offered key is none of them — whatever its type — the key has
//!   *changed*: refused, in `accept-new` too. If none is recorded the host
//!   is *new*: strict checking refuses, `accept-new` appends it to the
//!   user's file.
//! - On a port other than 22, a host that is new under `[host]:port` is
//!   looked up again as plain `host`, and accepted if a key there matches
//!   (a mismatch there does not count as changed).
//! - `@revoked` keys are refused; so is a certificate whose key or CA is.
//! - A host certificate is accepted when an `@cert-authority` entry for the
//!   host holds its CA key, it is a host certificate, valid now, lists the
//!   host name among its principals (or lists none) and has no critical
//!   options. Otherwise its plain key is checked as above.
//! - The server is asked for the key types already recorded for the host
//!   first (OpenSSH's `order_hostkeyalgs`), so a host known by its RSA key
//!   proves that key rather than offering a new ed25519 one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, Certificate, EcdsaCurve, HashAlg, PublicKey};
use sha1::Sha1;

use crate::error::{Error, Result};

/// How `host` on `port` is written in known_hosts: `host`, or
/// `[host]:port` when the port is not 22 (0 stands for "no port", as in
/// OpenSSH's second lookup without the port).
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 || port == 0 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The known_hosts line recording `key` for `host` on `port`, as `ssh`
/// writes it: `[host]:port type base64` (lowercase host, no comment).
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> String {
    let encoded = key
        .to_openssh()
        .map(|text| {
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| key.algorithm().as_str().to_owned());
    format!(
        "{} {encoded}",
        host_pattern(&host.to_ascii_lowercase(), port)
    )
}

/// The key a server proved it holds during the key exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ServerKey<'a> {
    Key(&'a PublicKey),
    Certificate(&'a Certificate),
}

/// What the known_hosts files say about the key a server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// A recorded key, or a certificate from a recorded authority.
    Known,
    /// Nothing is recorded for the host: strict checking refuses,
    /// `accept-new` records the (plain) key.
    New,
    /// The host has recorded keys and this is none of them; `file:line` is
    /// an offending entry (the last one, as `ssh` reports it).
    Changed {
        file: PathBuf,
        line: usize,
        recorded: Algorithm,
    },
    /// The key (or the certificate's CA) is listed as `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// A decision with the reasons a certificate was not trusted, for the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) status: Status,
    pub(crate) notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

/// One usable known_hosts line that applies to the host looked up.
#[derive(Debug, Clone)]
struct Entry<'a> {
    file: &'a Path,
    line: usize,
    marker: Marker,
    key: PublicKey,
}

/// The host key algorithms OpenSSH 9 offers by default that russh can
/// verify, most preferred first; each is also offered as a certificate.
const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// The host key algorithms to offer a server, as russh takes them:
/// certificate algorithms (always offered ahead of plain ones) and plain
/// ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) certificates: Vec<Algorithm>,
    pub(crate) keys: Vec<Algorithm>,
}

/// The known_hosts files, read once: the user's files first, then the
/// global ones (the order only decides which offending line is reported).
///
/// The lines are indexed by host name when their host field is a plain list
/// of names, which is what `ssh` and `ssh-keyscan` write unhashed, so that
/// looking up each host of a fleet in a file that records the whole fleet
/// is not hosts × lines of pattern matching.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    files: Vec<(PathBuf, String)>,
    /// Every usable line, in file and line order.
    lines: Vec<Line>,
    /// Indices into `lines` of the lines naming a host plainly, by the
    /// lowercase name.
    by_name: HashMap<String, Vec<usize>>,
    /// Indices into `lines` of the lines with wildcards, negations or a
    /// hashed name, matched one by one.
    patterned: Vec<usize>,
}

/// Where a usable known_hosts line is: its file (an index into `files`),
/// its number (from 1, counting comments and blanks) and its bytes.
#[derive(Debug, Clone, Copy)]
struct Line {
    file: usize,
    number: usize,
    start: usize,
    end: usize,
}

impl KnownHosts {
    /// Read the user's file and the `extra` ones; a missing file records
    /// nothing. An extra file arpanet may not read is skipped, as `ssh`
    /// skips it (a host it vouched for is then unknown: refused, not
    /// trusted).
    pub fn read(user: &Path, extra: &[PathBuf]) -> Result<KnownHosts> {
        let mut files = Vec::new();
        for (index, path) in std::iter::once(user)
            .chain(extra.iter().map(PathBuf::as_path))
            .enumerate()
        {
            match fs::read(path) {
                Ok(bytes) => files.push((path.to_path_buf(), text_of(bytes))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if index > 0 && e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(Error::io("read", path, e)),
            }
        }
        Ok(KnownHosts::indexed(files))
    }

    /// Files given as text, for tests.
    #[cfg(test)]
    fn from_texts(texts: &[(&str, &str)]) -> KnownHosts {
        KnownHosts::indexed(
            texts
                .iter()
                .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
                .collect(),
        )
    }

    fn indexed(files: Vec<(PathBuf, String)>) -> KnownHosts {
        let mut known = KnownHosts {
            files,
            ..KnownHosts::default()
        };
        for (file, (_, text)) in known.files.iter().enumerate() {
            let mut start = 0;
            for (index, piece) in text.split_inclusive('\n').enumerate() {
                let line = piece.strip_suffix('\n').unwrap_or(piece);
                let line = line.strip_suffix('\r').unwrap_or(line);
                let at = known.lines.len();
                let span = Line {
                    file,
                    number: index + 1,
                    start,
                    end: start + line.len(),
                };
                start += piece.len();
                let Some((_, hosts, _)) = split_line(line) else {
                    continue;
                };
                known.lines.push(span);
                if hosts.starts_with('|') || hosts.contains(['*', '?', '!']) {
                    known.patterned.push(at);
                } else {
                    for name in hosts.split(',') {
                        let indices = known.by_name.entry(name.to_ascii_lowercase()).or_default();
                        if indices.last() != Some(&at) {
                            indices.push(at);
                        }
                    }
                }
            }
        }
        known
    }

    fn text(&self, line: &Line) -> &str {
        &self.files[line.file].1[line.start..line.end]
    }

    /// Every usable entry whose host field matches `name` (`host` or
    /// `[host]:port`, lowercase), in file and line order.
    fn entries(&self, name: &str) -> Vec<Entry<'_>> {
        let mut indices: Vec<usize> = self.by_name.get(name).cloned().unwrap_or_default();
        indices.extend(self.patterned.iter().copied().filter(|&at| {
            split_line(self.text(&self.lines[at]))
                .is_some_and(|(_, hosts, _)| hosts_match(hosts, name))
        }));
        indices.sort_unstable();
        indices
            .into_iter()
            .filter_map(|at| {
                let line = &self.lines[at];
                let (marker, _, key) = split_line(self.text(line))?;
                // Only the matching lines' keys are decoded: every line's
                // key for every host would be hosts × lines key parses.
                Some(Entry {
                    file: &self.files[line.file].0,
                    line: line.number,
                    marker,
                    key: parse_key(key)?,
                })
            })
            .collect()
    }

    /// The host key algorithms to offer `host` on `port`, ordered as
    /// OpenSSH's `order_hostkeyalgs` does: the default order when the
    /// host's ed25519 key (the first preference) or nothing is recorded;
    /// otherwise the recorded types first and every certificate type first
    /// when an `@cert-authority` entry applies. One difference, because
    /// russh always offers certificates ahead of plain keys: certificate
    /// types neither recorded nor vouched for by an authority are left out
    /// rather than offered after the recorded plain types (`ssh` would only
    /// take one when the server has none of the recorded types, and then
    /// refuses the key as changed either way).
    pub(crate) fn offer(&self, host: &str, port: u16) -> Offer {
        let name = host_pattern(&host.to_ascii_lowercase(), port);
        let entries = self.entries(&name);
        let recorded = |algorithm: &Algorithm| {
            entries
                .iter()
                .any(|e| e.marker == Marker::None && same_type(&e.key.algorithm(), algorithm))
        };
        let authority = entries.iter().any(|e| e.marker == Marker::CertAuthority);
        // ssh-rsa (SHA-1) last, as russh offers it by default, for old
        // servers; OpenSSH 9 no longer does.
        let legacy = Algorithm::Rsa { hash: None };
        let verbatim = recorded(&ALGORITHMS[0]) || (!authority && !ALGORITHMS.iter().any(recorded));
        if verbatim {
            let mut keys = ALGORITHMS.to_vec();
            keys.push(legacy);
            return Offer {
                certificates: ALGORITHMS.to_vec(),
                keys,
            };
        }
        let certificates = ALGORITHMS
            .iter()
            .filter(|a| authority || recorded(a))
            .cloned()
            .collect();
        let mut keys: Vec<Algorithm> = ALGORITHMS.iter().filter(|a| recorded(a)).cloned().collect();
        keys.extend(ALGORITHMS.iter().filter(|a| !recorded(a)).cloned());
        keys.push(legacy);
        Offer { certificates, keys }
    }

    /// Decide on the key `host` on `port` proved it holds, at `now` (Unix
    /// seconds, for certificate validity).
    pub(crate) fn check(&self, host: &str, port: u16, key: ServerKey<'_>, now: u64) -> Check {
        let mut notes = Vec::new();
        let status = self.check_host_key(&host.to_ascii_lowercase(), port, key, now, &mut notes);
        Check { status, notes }
    }

    /// OpenSSH's `check_host_key`, up to what the mode decides: a
    /// certificate nobody vouches for is retried as its plain key.
    fn check_host_key(
        &self,
        host: &str,
        port: u16,
        key: ServerKey<'_>,
        now: u64,
        notes: &mut Vec<String>,
    ) -> Status {
        let entries = self.entries(&host_pattern(host, port));
        let status = self.attempt(&entries, host, port, key, now, notes);
        match (key, &status) {
            (ServerKey::Certificate(cert), Status::New | Status::Changed { .. }) => {
                let plain = PublicKey::new(cert.public_key().clone(), "");
                self.attempt(&entries, host, port, ServerKey::Key(&plain), now, notes)
            }
            _ => status,
        }
    }

    /// One lookup of `key` among `entries` (those of `host` on `port`); a
    /// new key on a port other than 22 is looked up again without the
    /// port, where only a match counts.
    fn attempt(
        &self,
        entries: &[Entry<'_>],
        host: &str,
        port: u16,
        key: ServerKey<'_>,
        now: u64,
        notes: &mut Vec<String>,
    ) -> Status {
        match lookup(entries, key) {
            (Found::Ok, _) => match key {
                ServerKey::Key(_) => Status::Known,
                ServerKey::Certificate(cert) => match check_host_cert(host, cert, now) {
                    Ok(()) => Status::Known,
                    Err(reason) => {
                        notes_push(
                            notes,
                            &format!("its host certificate is not trusted: {reason}"),
                        );
                        Status::New
                    }
                },
            },
            (Found::New, _) => {
                if port != 22
                    && port != 0
                    && self.check_host_key(host, 0, key, now, notes) == Status::Known
                {
                    return Status::Known;
                }
                if matches!(key, ServerKey::Certificate(_)) {
                    notes_push(
                        notes,
                        "no `@cert-authority` entry for the host holds the CA of its host \
                         certificate",
                    );
                }
                Status::New
            }
            (Found::Changed, Some(entry)) => Status::Changed {
                file: entry.file.to_path_buf(),
                line: entry.line,
                recorded: entry.key.algorithm(),
            },
            (Found::Revoked, Some(entry)) => Status::Revoked {
                file: entry.file.to_path_buf(),
                line: entry.line,
            },
            (Found::Changed | Found::Revoked, None) => Status::New,
        }
    }
}

fn notes_push(notes: &mut Vec<String>, text: &str) {
    if !notes.iter().any(|n| n == text) {
        notes.push(text.to_owned());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Ok,
    New,
    Changed,
    Revoked,
}

/// OpenSSH's `check_hostkeys_by_key_or_type`: a certificate is looked up by
/// its CA among `@cert-authority` entries, a key among plain ones (where any
/// other key means changed); then `@revoked` entries override.
fn lookup<'e, 'a>(entries: &'e [Entry<'a>], key: ServerKey<'_>) -> (Found, Option<&'e Entry<'a>>) {
    let (marker, data, ca) = match key {
        ServerKey::Key(key) => (Marker::None, key.key_data(), None),
        ServerKey::Certificate(cert) => (
            Marker::CertAuthority,
            cert.public_key(),
            Some(cert.signature_key()),
        ),
    };
    let mut found = (Found::New, None);
    for entry in entries.iter().filter(|e| e.marker == marker) {
        let recorded = entry.key.key_data();
        if Some(recorded) == ca || (ca.is_none() && recorded == data) {
            found = (Found::Ok, Some(entry));
            break;
        }
        if ca.is_none() {
            found = (Found::Changed, Some(entry));
        }
    }
    let revoked = entries.iter().find(|e| {
        e.marker == Marker::Revoked && (e.key.key_data() == data || Some(e.key.key_data()) == ca)
    });
    match revoked {
        Some(entry) => (Found::Revoked, Some(entry)),
        None => found,
    }
}

/// OpenSSH's `check_host_cert`: the checks after the CA was found.
fn check_host_cert(host: &str, cert: &Certificate, now: u64) -> std::result::Result<(), String> {
    if cert.cert_type() != CertType::Host {
        return Err("not a host certificate".into());
    }
    if now < cert.valid_after() {
        return Err("not yet valid".into());
    }
    if now >= cert.valid_before() {
        return Err("expired".into());
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p == host) {
        return Err(format!(
            "`{host}` is not among its principals ({})",
            principals.join(", ")
        ));
    }
    if !cert.critical_options().is_empty() {
        return Err("it has critical options".into());
    }
    // The signature (and, again, the validity window) against the CA key
    // the lookup found.
    let ca = cert.signature_key().fingerprint(HashAlg::Sha256);
    cert.validate_at(now, [&ca])
        .map_err(|_| "its signature does not verify with the CA key".to_owned())
}

/// Whether two algorithms are the same key type (every RSA signature hash
/// uses the same RSA key).
fn same_type(a: &Algorithm, b: &Algorithm) -> bool {
    let rsa = |x: &Algorithm| matches!(x, Algorithm::Rsa { .. });
    (rsa(a) && rsa(b)) || a == b
}

/// A file's bytes as text; bytes that are not UTF-8 become U+FFFD (no
/// host name or key has them).
fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The known_hosts files as last read, shared by the connections of a run:
/// a fleet's file is read and indexed once, not once per host. A file that
/// changed on disk since (its size, time or inode: an `accept-new` append
/// by an earlier connection, an edit) is read again, so a host recorded
/// during the run is known when it reconnects.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    read: Mutex<Vec<Cached>>,
}

#[derive(Debug)]
struct Cached {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<Stamp>>,
    known: Arc<KnownHosts>,
}

/// What tells a file changed: device, inode, size, modification time.
type Stamp = (u64, u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    ))
}

impl Cache {
    /// [`KnownHosts::read`], from the last read when no file changed since.
    pub(crate) fn read(&self, user: &Path, extra: &[PathBuf]) -> Result<Arc<KnownHosts>> {
        let paths: Vec<PathBuf> = std::iter::once(user.to_path_buf())
            .chain(extra.iter().cloned())
            .collect();
        // Stamped before reading: a change during the read shows as a
        // stamp that differs next time, and the files are read again.
        let stamps: Vec<Option<Stamp>> = paths.iter().map(|p| stamp(p)).collect();
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let at = read.iter().position(|c| c.paths == paths);
        if let Some(cached) = at.map(|at| &read[at]).filter(|c| c.stamps == stamps) {
            return Ok(Arc::clone(&cached.known));
        }
        let known = Arc::new(KnownHosts::read(user, extra)?);
        let cached = Cached {
            paths,
            stamps,
            known: Arc::clone(&known),
        };
        match at {
            Some(at) => read[at] = cached,
            None => read.push(cached),
        }
        Ok(known)
    }
}

/// A known_hosts line as `(marker, host field, (key type, key blob))`;
/// `None` for blank, comment and unusable lines (an unknown marker, missing
/// fields), which OpenSSH skips too.
fn split_line(line: &str) -> Option<(Marker, &str, (&str, &str))> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut hosts = fields.next()?;
    let marker = match hosts {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        other if other.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        hosts = fields.next()?;
    }
    Some((marker, hosts, (fields.next()?, fields.next()?)))
}

/// The key of a known_hosts line; `None` for a key that does not parse or
/// of a type arpanet does not know, which OpenSSH skips too.
fn parse_key((kind, blob): (&str, &str)) -> Option<PublicKey> {
    let key = PublicKey::from_openssh(&format!("{kind} {blob}")).ok()?;
    if matches!(key.key_data(), KeyData::Other(_)) {
        return None;
    }
    Some(key)
}

/// Whether a host field matches `name` (lowercase, `[host]:port` when
/// needed): a hashed field is one name; otherwise a pattern list where some
/// pattern matches and no negated one does.
fn hosts_match(hosts: &str, name: &str) -> bool {
    if let Some(hashed) = hosts.strip_prefix('|') {
        return hashed_matches(hashed, name);
    }
    let mut matched = false;
    for pattern in hosts.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob(&pattern.to_ascii_lowercase(), name) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `1|salt|hash` (both base64) against HMAC-SHA1(salt, name).
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed
        .strip_prefix("1|")
        .and_then(|rest| rest.split_once('|'))
    else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// OpenSSH host pattern matching: `*` any run, `?` any one character.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Serialises appends from concurrent connections in this process (the
/// `flock` below serialises processes).
static APPEND: Mutex<()> = Mutex::new(());

/// Record `key` for `host` on `port` at the end of the known_hosts file at
/// `path`. A new file is created 0644 and missing directories 0700, whatever
/// the umask. Nothing is written when another connection or process
/// recorded the key meanwhile: the check and the write happen under an
/// exclusive lock on the file.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<()> {
    let _guard = APPEND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dirs(parent)?;
    }
    let mut file = open_for_append(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", path, e.into()))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("read", path, e))?;
    let recorded = KnownHosts::indexed(vec![(path.to_path_buf(), text_of(bytes))]);
    let text = &recorded.files[0].1;
    let name = host_pattern(&host.to_ascii_lowercase(), port);
    if recorded
        .entries(&name)
        .iter()
        .any(|e| e.marker == Marker::None && e.key.key_data() == key.key_data())
    {
        return Ok(());
    }
    let mut line = entry_line(host, port, key);
    line.push('\n');
    if !text.is_empty() && !text.ends_with('\n') {
        line.insert(0, '\n');
    }
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

/// Open `path` to append, creating it 0644 (set explicitly, so the umask
/// does not decide who may write it).
fn open_for_append(path: &Path) -> Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io("chmod", path, e))?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e)),
        Err(e) => Err(Error::io("create", path, e)),
    }
}

/// Create `dir` and its missing parents, each 0700 (like `~/.ssh`).
fn create_private_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dirs(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("chmod", dir, e)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io("create", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const KEY_ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJ8BLwZ3pY6xYo4zPm4w4/hHpukh0cUZdQF5kjLE3i6XGCWI0O+KeZTRrkGVb97Udzlo7P7+6/5j6vhi7fBViCE=";
    const KEY_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDTnLmwNFR7iCZbzU1y33DMFHpPDqSkSbgKU5rcuJaRD73z4okWwBnVCRG/qmItaJ16A9uXQfJmR7io9/Zct3xWTbs47U755AVbqXCZJhY69sAaOM82DSEIbaUsDhJqPFi6896h5M5LFcKse7QQ9hfI7YNg5LDvfh+By14TsexpbQ==";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn status(text: &str, host: &str, port: u16, k: &str) -> Status {
        KnownHosts::from_texts(&[("kh", text)])
            .check(host, port, ServerKey::Key(&key(k)), 0)
            .status
    }

    fn changed(line: usize, recorded: &str) -> Status {
        Status::Changed {
            file: PathBuf::from("kh"),
            line,
            recorded: key(recorded).algorithm(),
        }
    }

    #[test]
    fn plain_and_bracketed_entries_match_by_port() {
        let text = format!("10.0.0.1 {KEY_A}\n[10.0.0.1]:2222 {KEY_B} comment\n");
        assert_eq!(status(&text, "10.0.0.1", 22, KEY_A), Status::Known);
        assert_eq!(status(&text, "10.0.0.1", 2222, KEY_B), Status::Known);
        assert_eq!(status(&text, "10.0.0.2", 22, KEY_A), Status::New);
        // `[host]:22` is never how port 22 is looked up.
        assert_eq!(
            status(&format!("[h]:22 {KEY_A}\n"), "h", 22, KEY_A),
            Status::New
        );
    }

    #[test]
    fn another_port_falls_back_to_the_plain_entry_only_when_it_matches() {
        let plain = format!("10.0.0.1 {KEY_A}\n");
        assert_eq!(status(&plain, "10.0.0.1", 2222, KEY_A), Status::Known);
        // A different plain key does not make `[host]:port` changed.
        assert_eq!(status(&plain, "10.0.0.1", 2222, KEY_B), Status::New);
        // But a different `[host]:port` key does, whatever the plain entry.
        let both = format!("10.0.0.1 {KEY_A}\n[10.0.0.1]:2222 {KEY_B}\n");
        assert_eq!(status(&both, "10.0.0.1", 2222, KEY_A), changed(2, KEY_B));
    }

    #[test]
    fn a_recorded_key_of_another_type_means_changed() {
        let text = format!("h {KEY_ECDSA}\n");
        assert_eq!(status(&text, "h", 22, KEY_A), changed(1, KEY_ECDSA));
        assert_eq!(status(&text, "h", 22, KEY_ECDSA), Status::Known);
    }

    #[test]
    fn changed_key_reports_the_last_offending_line_counting_comments_and_blanks() {
        let text = format!("# comment\n\nother {KEY_A}\nweb1,web2\t{KEY_A}\n");
        assert_eq!(status(&text, "WEB2", 22, KEY_B), changed(4, KEY_A));
        let two = format!("h {KEY_A}\nh {KEY_ECDSA}\n");
        assert_eq!(status(&two, "h", 22, KEY_B), changed(2, KEY_ECDSA));
    }

    #[test]
    fn any_recorded_key_is_accepted_even_if_another_line_differs() {
        let text = format!("h {KEY_B}\nh {KEY_A}\n");
        assert_eq!(status(&text, "h", 22, KEY_A), Status::Known);
    }

    #[test]
    fn user_and_global_files_are_read_together() {
        let files = KnownHosts::from_texts(&[("user", ""), ("global", &format!("h {KEY_A}\n"))]);
        let check = |k: &str| files.check("h", 22, ServerKey::Key(&key(k)), 0).status;
        assert_eq!(check(KEY_A), Status::Known);
        assert_eq!(
            check(KEY_B),
            Status::Changed {
                file: PathBuf::from("global"),
                line: 1,
                recorded: Algorithm::Ed25519
            }
        );
    }

    #[test]
    fn hashed_entries_are_one_whole_field() {
        // `ssh-keygen -H` of `web1.test KEY_B`.
        let hashed = "|1|p3h+JcQpZXnuilHVLfgqx9JY2fU=|jVIjCTb/cL0a0LbBtpHc6jbZxTI=";
        let text = format!("{hashed} {KEY_B}\n");
        assert_eq!(status(&text, "web1.test", 22, KEY_B), Status::Known);
        assert_eq!(status(&text, "otherhost", 22, KEY_B), Status::New);
        // A hash inside a comma list is a (non-matching) pattern.
        let listed = format!("other,{hashed} {KEY_B}\n");
        assert_eq!(status(&listed, "web1.test", 22, KEY_B), Status::New);
    }

    #[test]
    fn wildcards_negation_case_and_unusable_lines() {
        let text = format!(
            "garbage line\n@unknown * {KEY_B}\nh ssh-ed25519 notbase64\n\
             *.EXAMPLE.com,!bad.example.com {KEY_A}\n"
        );
        assert_eq!(status(&text, "a.example.com", 22, KEY_A), Status::Known);
        assert_eq!(status(&text, "bad.example.com", 22, KEY_A), Status::New);
        assert_eq!(status(&text, "h", 22, KEY_A), Status::New);
    }

    #[test]
    fn revoked_keys_are_refused_and_cert_authorities_are_not_host_keys() {
        let text = format!("@cert-authority * {KEY_B}\nh {KEY_A}\n@revoked * {KEY_A}\n");
        assert_eq!(
            status(&text, "h", 22, KEY_A),
            Status::Revoked {
                file: PathBuf::from("kh"),
                line: 3
            }
        );
        // The CA key is no host key: `h` offering it has changed.
        assert_eq!(status(&text, "h", 22, KEY_B), changed(2, KEY_A));
        assert_eq!(status(&text, "x", 22, KEY_B), Status::New);
    }

    #[test]
    fn offer_puts_recorded_types_first_as_openssh_does() {
        let rsa_first = [
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ];
        let ecdsa = key(KEY_ECDSA).algorithm();
        let rsa_line = KEY_RSA;
        let text = format!("h {rsa_line}\n[h]:2222 {KEY_ECDSA}\n@cert-authority ca.* {KEY_B}\n");
        let files = KnownHosts::from_texts(&[("kh", &text)]);

        let offer = files.offer("h", 22);
        assert_eq!(offer.certificates, rsa_first);
        assert_eq!(offer.keys[..2], rsa_first);
        assert_eq!(offer.keys[2], Algorithm::Ed25519);

        // Only `[h]:2222` counts for port 2222 (no fallback here).
        let offer = files.offer("h", 2222);
        assert_eq!(offer.certificates, std::slice::from_ref(&ecdsa));
        assert_eq!(offer.keys[..2], [ecdsa, Algorithm::Ed25519]);

        // An authority: every certificate type first, default order.
        let offer = files.offer("ca.example", 22);
        assert_eq!(offer.certificates, ALGORITHMS);
        assert_eq!(offer.keys[..6], ALGORITHMS);

        // Unknown host, or its ed25519 key recorded: the default order.
        for (host, text) in [
            ("new", String::new()),
            ("e", format!("e {KEY_A}\ne {rsa_line}\n")),
        ] {
            let offer = KnownHosts::from_texts(&[("kh", &text)]).offer(host, 22);
            assert_eq!(offer.certificates, ALGORITHMS);
            assert_eq!(offer.keys[..6], ALGORITHMS);
            assert_eq!(offer.keys[6], Algorithm::Rsa { hash: None });
        }
    }

    #[test]
    fn glob_matches_like_openssh() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.0.?", "10.0.0.7"));
        assert!(!glob("10.0.0.?", "10.0.0.17"));
        assert!(glob("[10.0.0.*]:2222", "[10.0.0.5]:2222"));
        assert!(!glob("web", "web1"));
    }

    #[test]
    fn entry_lines_are_lowercase_like_ssh_writes_them() {
        assert_eq!(
            entry_line("Web1.Example", 2200, &key(KEY_A)),
            format!("[web1.example]:2200 {KEY_A}")
        );
    }

    #[test]
    fn append_creates_the_file_and_adds_a_newline_when_missing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/known_hosts");
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("[h]:2200 {KEY_A}\n")
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o644);
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
        assert_eq!(mode(&dir.path().join("sub/dir")), 0o700);
        fs::write(&path, format!("x {KEY_B}")).unwrap();
        append(&path, "h", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("x {KEY_B}\nh {KEY_A}\n")
        );
    }

    #[test]
    fn the_name_index_finds_what_matching_every_line_finds() {
        let hashed = "|1|p3h+JcQpZXnuilHVLfgqx9JY2fU=|jVIjCTb/cL0a0LbBtpHc6jbZxTI=";
        let text = format!(
            "# a fleet\n\
             web1.test,10.0.0.1 {KEY_A}\r\n\
             \n\
             [Web1.Test]:2200,web1.test,web1.test {KEY_B}\n\
             *.test,!db.test {KEY_ECDSA}\n\
             @revoked web? {KEY_RSA}\n\
             {hashed} {KEY_B}\n\
             @cert-authority 10.0.0.1 {KEY_B}\n\
             db.test bad-type AAAA\n\
             other,{hashed} {KEY_A}"
        );
        let known = KnownHosts::from_texts(&[("user", &text), ("global", &text)]);
        let names = [
            "web1.test",
            "[web1.test]:2200",
            "10.0.0.1",
            "db.test",
            "web2",
            "other",
            "nobody",
            "",
        ];
        for name in names {
            // Every line, matched one by one.
            let mut expected = Vec::new();
            for (path, text) in &known.files {
                for (index, line) in text.lines().enumerate() {
                    let Some((marker, hosts, key)) = split_line(line) else {
                        continue;
                    };
                    if hosts_match(hosts, name) {
                        if let Some(key) = parse_key(key) {
                            expected.push((path.clone(), index + 1, marker, key));
                        }
                    }
                }
            }
            let found: Vec<_> = known
                .entries(name)
                .into_iter()
                .map(|e| (e.file.to_path_buf(), e.line, e.marker, e.key))
                .collect();
            assert_eq!(found, expected, "{name}");
        }
        // The fixture does exercise every kind of line.
        assert_eq!(known.entries("web1.test").len(), 8);
        assert_eq!(known.entries("db.test").len(), 0);
    }

    #[test]
    fn the_cache_reads_a_file_again_once_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let cache = Cache::default();
        let first = cache.read(&path, &[]).unwrap();
        assert_eq!(
            first.check("h", 22, ServerKey::Key(&key(KEY_A)), 0).status,
            Status::New
        );
        assert!(Arc::ptr_eq(&first, &cache.read(&path, &[]).unwrap()));
        // An `accept-new` append by an earlier connection of the run.
        append(&path, "h", 22, &key(KEY_A)).unwrap();
        let second = cache.read(&path, &[]).unwrap();
        assert_eq!(
            second.check("h", 22, ServerKey::Key(&key(KEY_A)), 0).status,
            Status::Known
        );
        assert_eq!(
            second.check("h", 22, ServerKey::Key(&key(KEY_B)), 0).status,
            Status::Changed {
                file: path.clone(),
                line: 1,
                recorded: Algorithm::Ed25519
            }
        );
        assert!(Arc::ptr_eq(&second, &cache.read(&path, &[]).unwrap()));
        // Another list of files is another reading.
        let extra = dir.path().join("global");
        assert!(!Arc::ptr_eq(&second, &cache.read(&path, &[extra]).unwrap()));
    }
}
