//! OpenSSH `known_hosts` files: look a host's key up, record a new one.
//!
//! russh ships a reader too, but it splits on single spaces, does not count
//! comment lines (so its line numbers drift) and gives up on the whole file
//! at the first line it cannot parse. The line number matters here: a
//! changed key is reported with the file and line of the old entry so the
//! operator can remove it. This reader understands plain, `[host]:port`,
//! wildcard (`*`, `?`), negated (`!pattern`) and hashed (`|1|salt|hash`)
//! host patterns, skips `@cert-authority` lines and honours `@revoked`.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

use crate::error::{Error, Result};

/// What known_hosts says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// An entry for the host holds this key.
    Known,
    /// No entry for the host holds a key of this type.
    Unknown,
    /// An entry for the host holds a different key of the same type.
    Changed { file: PathBuf, line: usize },
    /// The key is listed as `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// How `host` on `port` is written in known_hosts: `host`, or
/// `[host]:port` when the port is not 22.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The known_hosts line recording `key` for `host` on `port`.
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
    format!("{} {encoded}", host_pattern(host, port))
}

/// Look `key` up for `host` on `port` in the known_hosts file at `path`. A
/// missing file knows no hosts.
pub fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<HostKeyStatus> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HostKeyStatus::Unknown),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    Ok(check_text(&text, path, host, port, key))
}

fn check_text(text: &str, path: &Path, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let wanted = host_pattern(&host.to_ascii_lowercase(), port);
    let mut changed = None;
    let mut known = false;
    for (index, line) in text.lines().enumerate() {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if !entry.matches(&wanted) {
            continue;
        }
        let Ok(recorded) = PublicKey::from_openssh(&format!("{} {}", entry.key_type, entry.key))
        else {
            continue;
        };
        let same = recorded.key_data() == key.key_data();
        match entry.marker {
            Some(Marker::Revoked) if same => {
                return HostKeyStatus::Revoked {
                    file: path.to_path_buf(),
                    line: index + 1,
                }
            }
            Some(_) => {}
            None if same => known = true,
            None if recorded.algorithm() == key.algorithm() && changed.is_none() => {
                changed = Some(index + 1)
            }
            None => {}
        }
    }
    match (known, changed) {
        (true, _) => HostKeyStatus::Known,
        (false, Some(line)) => HostKeyStatus::Changed {
            file: path.to_path_buf(),
            line,
        },
        (false, None) => HostKeyStatus::Unknown,
    }
}

/// Serialises appends from concurrent connections in this process.
static APPEND: Mutex<()> = Mutex::new(());

/// Record `key` for `host` on `port` at the end of the known_hosts file at
/// `path`, creating the file and its directory if needed. Nothing is written
/// when another connection recorded the key meanwhile.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<()> {
    let _guard = APPEND.lock().unwrap_or_else(|e| e.into_inner());
    if check(path, host, port, key)? == HostKeyStatus::Known {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(parent, fs::Permissions::from_mode(0o700));
            }
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let mut line = entry_line(host, port, key);
    line.push('\n');
    let mut last = [0u8; 1];
    let ends_in_newline = file.seek(SeekFrom::End(-1)).is_err()
        || (file.read_exact(&mut last).is_ok() && last[0] == b'\n');
    if !ends_in_newline {
        line.insert(0, '\n');
    }
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    CertAuthority,
    Revoked,
}

/// One parsed known_hosts line.
struct Entry<'a> {
    marker: Option<Marker>,
    hosts: &'a str,
    key_type: &'a str,
    key: &'a str,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@cert-authority" => Some(Marker::CertAuthority),
            "@revoked" => Some(Marker::Revoked),
            other if other.starts_with('@') => return None,
            _ => None,
        };
        if marker.is_some() {
            first = fields.next()?;
        }
        Some(Entry {
            marker,
            hosts: first,
            key_type: fields.next()?,
            key: fields.next()?,
        })
    }

    /// Whether the host field matches `wanted` (already lowercase, in
    /// `[host]:port` form when needed): some pattern matches and no negated
    /// one does.
    fn matches(&self, wanted: &str) -> bool {
        let mut matched = false;
        for pattern in self.hosts.split(',') {
            if let Some(negated) = pattern.strip_prefix('!') {
                if glob(&negated.to_ascii_lowercase(), wanted) {
                    return false;
                }
            } else if let Some(hashed) = pattern.strip_prefix("|1|") {
                matched |= hashed_matches(hashed, wanted);
            } else {
                matched |= glob(&pattern.to_ascii_lowercase(), wanted);
            }
        }
        matched
    }
}

/// `salt|hash` (both base64) against HMAC-SHA1(salt, host).
fn hashed_matches(salt_and_hash: &str, host: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(host.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn status(text: &str, host: &str, port: u16, k: &str) -> HostKeyStatus {
        check_text(text, Path::new("kh"), host, port, &key(k))
    }

    #[test]
    fn plain_and_bracketed_entries_match_by_port() {
        let text = format!("10.0.0.1 {KEY_A}\n[10.0.0.1]:2222 {KEY_B} comment\n");
        assert_eq!(status(&text, "10.0.0.1", 22, KEY_A), HostKeyStatus::Known);
        assert_eq!(status(&text, "10.0.0.1", 2222, KEY_B), HostKeyStatus::Known);
        assert_eq!(status(&text, "10.0.0.2", 22, KEY_A), HostKeyStatus::Unknown);
    }

    #[test]
    fn changed_key_reports_the_line_counting_comments_and_blanks() {
        let text = format!("# comment\n\nother {KEY_A}\nweb1,web2\t{KEY_A}\n");
        assert_eq!(
            status(&text, "WEB2", 22, KEY_B),
            HostKeyStatus::Changed {
                file: PathBuf::from("kh"),
                line: 4
            }
        );
    }

    #[test]
    fn a_key_listed_twice_is_known_even_if_another_line_differs() {
        let text = format!("h {KEY_B}\nh {KEY_A}\n");
        assert_eq!(status(&text, "h", 22, KEY_A), HostKeyStatus::Known);
    }

    #[test]
    fn hashed_entries_match() {
        // `ssh-keygen -H` of `web1.test KEY_B`.
        let text =
            format!("|1|p3h+JcQpZXnuilHVLfgqx9JY2fU=|jVIjCTb/cL0a0LbBtpHc6jbZxTI= {KEY_B}\n");
        assert_eq!(status(&text, "web1.test", 22, KEY_B), HostKeyStatus::Known);
        assert_eq!(
            status(&text, "otherhost", 22, KEY_B),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn wildcards_negation_markers_and_garbage() {
        let text = format!(
            "garbage line\n@cert-authority * {KEY_B}\n*.example.com,!bad.example.com {KEY_A}\n@revoked * {KEY_B}\n"
        );
        assert_eq!(
            status(&text, "a.example.com", 22, KEY_A),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&text, "bad.example.com", 22, KEY_A),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            status(&text, "x", 22, KEY_B),
            HostKeyStatus::Revoked {
                file: PathBuf::from("kh"),
                line: 4
            }
        );
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
    fn append_creates_the_file_and_adds_a_newline_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("[h]:2200 {KEY_A}\n")
        );
        fs::write(&path, format!("x {KEY_B}")).unwrap();
        append(&path, "h", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("x {KEY_B}\nh {KEY_A}\n")
        );
    }
}
