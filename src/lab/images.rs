//! The lab's images, all built locally from Debian packages (no public
//! registry is needed): `mmdebstrap ... | docker import`, cached by tag and
//! rebuilt only when missing or when their recipe changed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::docker::{indent, lab_error, spawn_error, tail, Docker};
use super::Progress;
use crate::error::{Error, Result};

/// Image label holding a hash of the recipe the image was built from.
pub const RECIPE_LABEL: &str = "org.arpanet.lab.recipe";

/// Environment variable overriding the Debian mirror read from apt's sources.
pub const MIRROR_ENV: &str = "ARPANET_LAB_MIRROR";

const NODE_HOOK: &str = include_str!("node-hook.sh");
const SERVICE_HOOK: &str = include_str!("service-hook.sh");
const REGISTRY_HOOK: &str = include_str!("registry-hook.sh");

/// How to build one image.
#[derive(Debug, Clone, Copy)]
pub struct ImageSpec {
    /// Local reference, e.g. `arpanet-lab/consul:1.8.7`.
    pub reference: &'static str,
    /// Path inside the lab registry for images the cluster pulls.
    pub registry_path: Option<&'static str>,
    pub suite: &'static str,
    /// mmdebstrap variant: `apt` for a whole system, `extract` for a
    /// program and its libraries only.
    pub variant: &'static str,
    pub packages: &'static [&'static str],
    pub hooks: &'static [&'static str],
    /// `docker import --change` instructions.
    pub changes: &'static [&'static str],
}

/// A Debian machine: systemd, sshd and its own dockerd.
pub const NODE: ImageSpec = ImageSpec {
    reference: "arpanet-lab/node:bookworm",
    registry_path: None,
    suite: "bookworm",
    variant: "apt",
    packages: &[
        "systemd",
        "systemd-sysv",
        "openssh-server",
        "docker.io",
        "iproute2",
        "curl",
        "ca-certificates",
        "dbus",
        // For the unprivileged sudoers `lab up` makes (`admin`, `deploy`).
        "sudo",
    ],
    hooks: &[NODE_HOOK],
    changes: &["CMD [\"/lib/systemd/systemd\"]", "ENV container=docker"],
};

/// Consul 1.8.7 from Debian 11 (Debian 12 has none).
pub const CONSUL: ImageSpec = ImageSpec {
    reference: "arpanet-lab/consul:1.8.7",
    registry_path: Some("arpanet/consul:1.8.7"),
    suite: "bullseye",
    variant: "extract",
    packages: &["consul", "busybox"],
    hooks: &[SERVICE_HOOK],
    changes: &["ENTRYPOINT [\"/usr/bin/consul\"]"],
};

/// cAdvisor 0.38.7 from Debian 11.
pub const CADVISOR: ImageSpec = ImageSpec {
    reference: "arpanet-lab/cadvisor:0.38.7",
    registry_path: Some("arpanet/cadvisor:0.38.7"),
    suite: "bullseye",
    variant: "extract",
    packages: &["cadvisor", "busybox"],
    hooks: &[SERVICE_HOOK],
    changes: &["ENTRYPOINT [\"/usr/bin/cadvisor\"]"],
};

/// The linking tests' service: Debian 12's static busybox (`httpd`, `nc`,
/// `nslookup`), serving `/www` on port 8080 by default.
pub const TESTSVC: ImageSpec = ImageSpec {
    reference: "arpanet-lab/testsvc:1",
    registry_path: Some("arpanet/testsvc:1"),
    suite: "bookworm",
    variant: "extract",
    packages: &["busybox-static"],
    hooks: &[SERVICE_HOOK, TESTSVC_HOOK],
    changes: &[
        "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]",
        // So that `docker run -P` publishes it, as registrator's users did.
        "EXPOSE 8080/tcp",
    ],
};

const TESTSVC_HOOK: &str =
    "set -eu; mkdir -p \"$1/www\"; echo 'arpanet test service' >\"$1/www/index.html\"";

/// The Docker registry 2.8.2 from Debian 12, serving the lab's images.
pub const REGISTRY: ImageSpec = ImageSpec {
    reference: "arpanet-lab/registry:2.8.2",
    registry_path: None,
    suite: "bookworm",
    variant: "extract",
    packages: &["docker-registry", "busybox"],
    hooks: &[SERVICE_HOOK, REGISTRY_HOOK],
    changes: &[
        "ENTRYPOINT [\"/usr/bin/docker-registry\", \"serve\"]",
        "CMD [\"/etc/docker/registry/arpanet-lab.yml\"]",
    ],
};

pub const ALL: [ImageSpec; 5] = [NODE, REGISTRY, CONSUL, CADVISOR, TESTSVC];

impl ImageSpec {
    /// A short hash of everything the image is built from.
    pub fn recipe(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.suite, self.variant]
            .iter()
            .chain(self.packages)
            .chain(self.hooks)
            .chain(self.changes)
        {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hex::encode(&hash.finalize()[..6])
    }

    /// Why the image must be built, or `None` when the cached one is current.
    pub fn needs_build(&self, docker: &Docker) -> Option<&'static str> {
        match docker.image_label(self.reference, RECIPE_LABEL) {
            None if !docker.image_exists(self.reference) => Some("missing"),
            Some(recipe) if recipe == self.recipe() => None,
            _ => Some("its recipe changed"),
        }
    }

    /// `mmdebstrap ... - | docker import - REFERENCE`, with progress lines.
    pub fn build(&self, mirror: &str, progress: &Progress) -> Result<()> {
        let started = Instant::now();
        let mut strap = Command::new("mmdebstrap");
        strap
            .arg(format!("--variant={}", self.variant))
            .arg(format!("--include={}", self.packages.join(",")));
        // The extract variant runs no customize hooks, only extract hooks.
        let stage = if self.variant == "extract" {
            "extract"
        } else {
            "customize"
        };
        for hook in self.hooks {
            strap.arg(format!("--{stage}-hook={hook}"));
        }
        strap
            .arg("--format=tar")
            .arg(self.suite)
            .arg("-")
            .arg(format!("deb {mirror} {} main", self.suite))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut strap = strap.spawn().map_err(|e| spawn_error("mmdebstrap", &e))?;
        let tar = strap.stdout.take().expect("stdout is piped");

        let mut import = Command::new("docker");
        import
            .arg("import")
            .arg("--change")
            .arg(format!("LABEL {RECIPE_LABEL}={}", self.recipe()));
        for change in self.changes {
            import.arg("--change").arg(change);
        }
        import
            .arg("-")
            .arg(self.reference)
            .stdin(Stdio::from(tar))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let import = import.spawn().map_err(|e| spawn_error("docker", &e))?;

        // mmdebstrap's `I:` lines are the progress; all of stderr is kept
        // for the error message.
        let log = Arc::new(Mutex::new(String::new()));
        let reader = {
            let log = Arc::clone(&log);
            let stderr = strap.stderr.take().expect("stderr is piped");
            let progress = progress.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if let Some(info) = line.strip_prefix("I: ") {
                        // Hook lines quote the whole script; name the stage.
                        let info = match info.split_once(" in shell: ") {
                            Some((what, _)) => what,
                            None => info,
                        };
                        progress.detail(started, &format!("mmdebstrap: {info}"));
                    }
                    let mut log = log.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let strap_status = strap
            .wait()
            .map_err(|e| lab_error(format!("waiting for mmdebstrap failed: {e}")))?;
        let _ = reader.join();
        let imported = import
            .wait_with_output()
            .map_err(|e| lab_error(format!("waiting for `docker import` failed: {e}")))?;
        if !strap_status.success() {
            let log = log.lock().expect("log lock");
            return Err(Error::Lab {
                message: format!(
                    "building `{}`: mmdebstrap {} {} failed:\n{}",
                    self.reference,
                    self.suite,
                    self.packages.join(","),
                    indent(&tail(&log, 12))
                ),
                hint: Some(format!(
                    "mmdebstrap needs the Debian mirror `{mirror}` (from apt's sources, or set \
                     `{MIRROR_ENV}`) to be reachable"
                )),
            });
        }
        if !imported.status.success() {
            return Err(lab_error(format!(
                "building `{}`: `docker import` failed:\n{}",
                self.reference,
                indent(&tail(&String::from_utf8_lossy(&imported.stderr), 12))
            )));
        }
        progress.detail(started, &format!("imported {}", self.reference));
        Ok(())
    }
}

/// The Debian mirror to build from: `$ARPANET_LAB_MIRROR`, else the first
/// Debian archive in this machine's apt sources.
pub fn debian_mirror() -> Result<String> {
    if let Ok(mirror) = std::env::var(MIRROR_ENV) {
        if !mirror.trim().is_empty() {
            return Ok(mirror.trim().trim_end_matches('/').to_owned());
        }
    }
    let mut deb822 = Vec::new();
    let mut one_line = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        one_line.push(text);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("sources") => deb822.push(text),
                Some("list") => one_line.push(text),
                _ => {}
            }
        }
    }
    mirror_from_sources(&deb822, &one_line).ok_or_else(|| Error::Lab {
        message: "found no Debian archive in apt's sources (/etc/apt/sources.list, \
                  /etc/apt/sources.list.d/)"
            .into(),
        hint: Some(format!(
            "set `{MIRROR_ENV}` to a Debian mirror URL that carries bookworm and bullseye"
        )),
    })
}

/// Pick the first Debian (not security) archive URI from apt sources, given
/// the texts of deb822 `.sources` files and of one-line `.list` files.
pub fn mirror_from_sources(deb822: &[String], one_line: &[String]) -> Option<String> {
    for text in deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_owned())
                })
            };
            let enabled = field("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
            let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
            let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
                continue;
            };
            if !enabled || !is_deb || !suites.split_whitespace().any(is_debian_suite) {
                continue;
            }
            if let Some(uri) = uris.split_whitespace().find(|u| is_archive_uri(u)) {
                return Some(uri.trim_end_matches('/').to_owned());
            }
        }
    }
    for text in one_line {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some(rest) = line.strip_prefix("deb") else {
                continue;
            };
            if !rest.starts_with(char::is_whitespace) {
                continue; // `deb-src`
            }
            let rest = rest.trim_start();
            // Options come first, in brackets: `[arch=amd64 signed-by=...]`.
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']').map_or("", |(_, r)| r),
                None => rest,
            };
            let rest: Vec<&str> = rest.split_whitespace().collect();
            if let [uri, suite, ..] = rest.as_slice() {
                if is_debian_suite(suite) && is_archive_uri(uri) {
                    return Some(uri.trim_end_matches('/').to_owned());
                }
            }
        }
    }
    None
}

fn is_archive_uri(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:"))
        && !uri.contains("security")
}

fn is_debian_suite(suite: &str) -> bool {
    const SUITES: [&str; 11] = [
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "sid",
        "stable",
        "oldstable",
        "testing",
        "unstable",
        "oldoldstable",
    ];
    let base = suite.split(['-', '/']).next().unwrap_or(suite);
    SUITES.contains(&base) && !suite.contains("security") && !suite.ends_with("/updates")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\n\n\
        Types: deb\nURIs: http://mirror.example/debian-security\n\
        Suites: bookworm-security\nComponents: main\n";

    #[test]
    fn mirror_comes_from_a_deb822_stanza_not_security() {
        assert_eq!(
            mirror_from_sources(&[DEB822.into()], &[]).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn security_only_sources_give_no_mirror() {
        let only_security = DEB822.split("\n\n").nth(1).unwrap().to_owned();
        assert_eq!(mirror_from_sources(&[only_security], &[]), None);
    }

    #[test]
    fn mirror_comes_from_a_one_line_source_with_options() {
        let list = "# deb http://old.example/debian buster main\n\
            deb http://security.example/debian-security bookworm-security main\n\
            deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_from_sources(&[], &[list.into()]).as_deref(),
            Some("http://mirror.example/debian")
        );
        let plain = "deb http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_sources(&[], &[plain.into()]).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn ubuntu_sources_are_not_a_debian_mirror() {
        let list = "deb http://archive.example/ubuntu jammy main\n";
        assert_eq!(mirror_from_sources(&[], &[list.into()]), None);
    }

    #[test]
    fn recipes_differ_between_images() {
        let recipes: std::collections::HashSet<_> = ALL.iter().map(|i| i.recipe()).collect();
        assert_eq!(recipes.len(), ALL.len());
        assert_eq!(NODE.recipe(), NODE.recipe());
    }
}
