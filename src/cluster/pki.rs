//! The certificates that guard Docker's TCP API and Consul's RPC (the
//! `cluster_secrets` task, `secrets.rs`, calls [`ensure`] once per host).
//!
//! With `docker_tcp: true` every node's dockerd listens on
//! `tcp://ARPANET_IP:PORT`, and anyone who can talk to that socket owns the
//! machine. So it listens only with `--tlsverify`: clients must show a
//! certificate signed by a CA that arpanet made. [`ensure`] makes that CA, one
//! client certificate and one server certificate per node, once, in a
//! directory beside the inventory; later runs reuse them and only issue what
//! is missing, no longer matches the node's addresses, or is about to expire.
//! The CA is never replaced behind the operator's back: every client and node
//! would lose trust at once.
//!
//! Certificates are read with `x509-parser`, only as far as needed to check
//! that they still belong to the CA and key beside them (issuer, subject,
//! public key, end date, signature), not to validate them the way a TLS
//! stack does.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{Error, Result};

/// The CA certificate, as the docker CLI names it in `DOCKER_CERT_PATH`.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key: never leaves the operator's machine.
pub const CA_KEY: &str = "ca-key.pem";
/// The client certificate, as the docker CLI names it in `DOCKER_CERT_PATH`.
pub const CLIENT_CERT: &str = "cert.pem";
/// The client key, as the docker CLI names it in `DOCKER_CERT_PATH`.
pub const CLIENT_KEY: &str = "key.pem";
/// The directory holding one directory per node.
pub const HOSTS_DIR: &str = "hosts";
/// A node's server certificate, in `hosts/NAME/`.
pub const SERVER_CERT: &str = "server-cert.pem";
/// A node's server key, in `hosts/NAME/`.
pub const SERVER_KEY: &str = "server-key.pem";
/// The subject alternative names a node's certificate was issued for, one a
/// line, in `hosts/NAME/`.
pub const SANS_FILE: &str = "sans";
/// The CA being replaced, kept while a CA rotation is under way
/// (`ca_rotation`): what it signed stays trusted until the last phase.
pub const OLD_CA_CERT: &str = "ca.old.pem";

const CA_NAME: &str = "arpanet CA";
const CLIENT_NAME: &str = "arpanet client";
const CA_DAYS: i64 = 3650;
/// The longest validity Apple's TLS stack accepts; dockerd does not care.
const LEAF_DAYS: i64 = 825;
/// Certificates closer than this to their end are issued anew.
const RENEW_DAYS: i64 = 30;
/// Certificates start a day in the past, for nodes whose clocks lag.
const BACKDATE_DAYS: i64 = 1;

/// A node that needs a server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    /// The inventory name: the certificate's CN, a SAN, and the directory
    /// under `hosts/`.
    pub name: String,
    /// Where clients reach the node: IP addresses become IP SANs, anything
    /// else a DNS SAN.
    pub addresses: Vec<String>,
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The certificates and keys written this time, in the order written.
    pub created: Vec<PathBuf>,
}

/// Make sure `dir` holds a CA, a client certificate and a server certificate
/// for each of `hosts`, issuing only what is missing or out of date:
///
/// - `DIR/ca.pem`, `DIR/ca-key.pem`: the CA (`arpanet CA`, 10 years),
///   made only when neither file exists;
/// - `DIR/cert.pem`, `DIR/key.pem`: the client pair (`arpanet client`,
///   clientAuth), so `DOCKER_CERT_PATH=DIR DOCKER_TLS_VERIFY=1 docker -H
///   tcp://node:2375 ps` works;
/// - `DIR/hosts/NAME/server-cert.pem`, `server-key.pem`: each node's pair
///   (CN = NAME, SANs = its addresses and NAME, serverAuth, 825 days), and
///   `sans`, the SANs it was issued for.
///
/// A certificate is issued anew when its SANs differ from the wanted ones,
/// when it was not signed by the CA beside it or does not match its key, or
/// when it ends within 30 days, and as `how` says. If the CA itself is
/// made this time, every certificate is. A CA certificate whose key is missing, or that does not
/// match its key, is an error: replacing it would cut every node off.
///
/// Directories are created 0700, keys written 0600 and certificates 0644,
/// each atomically.
pub fn ensure(dir: &Path, hosts: &[ServerCert], how: Renewal) -> Result<Report> {
    ensure_at(dir, hosts, OffsetDateTime::now_utc(), false, how)
}

/// When the nodes' certificates are issued again, beyond [`ensure`]'s
/// own rules (a rotation of the CA or of the certificates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Renewal {
    /// A certificate signed by the CA being replaced (`ca.old.pem`) is
    /// current too: the first phase of a CA rotation, where every agent
    /// keeps its certificate while it learns to trust the new CA.
    pub old_ca_current: bool,
    /// Every node certificate is issued anew (`arpanet rotate --certs`).
    pub renew: bool,
}

/// What [`ensure`] would write, writing nothing (for `--check`): the same
/// checks, with keys and certificates made in memory only.
pub(crate) fn plan(dir: &Path, hosts: &[ServerCert], how: Renewal) -> Result<Report> {
    ensure_at(dir, hosts, OffsetDateTime::now_utc(), true, how)
}

/// [`ensure`] as if it were `now`; with `dry`, [`plan`].
fn ensure_at(
    dir: &Path,
    hosts: &[ServerCert],
    now: OffsetDateTime,
    dry: bool,
    how: Renewal,
) -> Result<Report> {
    // Check all the input before touching the disk.
    let mut wanted: Vec<(&ServerCert, Vec<String>)> = Vec::with_capacity(hosts.len());
    for host in hosts {
        if wanted.iter().any(|(h, _)| h.name == host.name) {
            return Err(Error::usage(format!(
                "host `{}` is listed twice for a TLS certificate",
                host.name
            )));
        }
        wanted.push((host, wanted_sans(host)?));
    }

    let mut out = Writer {
        dry,
        report: Report::default(),
    };
    out.dir(dir)?;
    let ca = load_or_create_ca(dir, now, &mut out)?;
    let old = match how.old_ca_current {
        true => read_optional(&dir.join(OLD_CA_CERT))?
            .as_deref()
            .and_then(keyless_ca)
            .map(|(subject, spki, not_after)| Ca {
                subject,
                spki,
                not_after,
                key: None,
                key_path: dir.join(CA_KEY),
                fresh: false,
            }),
        false => None,
    };

    let client = Pair {
        cert: dir.join(CLIENT_CERT),
        key: dir.join(CLIENT_KEY),
    };
    // A CA adopted without its key issues nothing: the client pair is the
    // operator's, never on a node, so it is made only where the key is.
    if ca.key.is_some() && (ca.fresh || !client.is_current(&ca, now)?) {
        let (cert, key) = ca.issue(
            CLIENT_NAME,
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            now,
        )?;
        client.write(&cert, &key, &mut out)?;
    }

    if !wanted.is_empty() {
        out.dir(&dir.join(HOSTS_DIR))?;
    }
    for (host, sans) in &wanted {
        let host_dir = dir.join(HOSTS_DIR).join(&host.name);
        out.dir(&host_dir)?;
        let server = Pair {
            cert: host_dir.join(SERVER_CERT),
            key: host_dir.join(SERVER_KEY),
        };
        let sans_path = host_dir.join(SANS_FILE);
        let sans_text: String = sans.iter().map(|s| format!("{s}\n")).collect();
        let recorded = match fs::read_to_string(&sans_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &sans_path, e)),
        };
        let current = server.is_current(&ca, now)?
            || match &old {
                Some(old) => server.is_current(old, now)?,
                None => false,
            };
        if ca.fresh || how.renew || recorded.as_deref() != Some(&sans_text) || !current {
            // Both uses: Consul agents present theirs when they call out too.
            let (cert, key) = ca.issue(
                &host.name,
                sans,
                &[
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                now,
            )?;
            server.write(&cert, &key, &mut out)?;
            // Last: should anything above fail, the next run sees stale SANs
            // and issues again.
            out.record(&sans_path, sans_text.as_bytes())?;
        }
    }
    Ok(out.report)
}

/// Take a node's own certificate and key, as read from the node, into
/// `dir` as `hosts/NAME/` (a checkout adopting the running cluster's
/// secrets): only when the certificate was signed by the CA in `dir` and
/// holds the key's public half. Its `sans` are the certificate's own, so
/// [`ensure`] issues it anew only when the node's addresses changed.
/// Returns the files written (none for a pair that does not belong).
pub(crate) fn adopt_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Result<Vec<PathBuf>> {
    let (Some(der), Ok(pair)) = (pem_der(cert), KeyPair::from_pem(key)) else {
        return Ok(Vec::new());
    };
    let Some(info) = parse_cert(&der) else {
        return Ok(Vec::new());
    };
    // Signed by the CA, or (a CA rotation under way) by the one it replaces.
    let mut signed = false;
    for file in [CA_CERT, OLD_CA_CERT] {
        let ca_der = read_optional(&dir.join(file))?.as_deref().and_then(pem_der);
        if let Some(ca) = ca_der.as_deref().and_then(parse_cert) {
            signed |= info.issuer == ca.subject && info.signed_by_spki(ca.spki);
        }
    }
    if !signed || info.spki != pair.subject_public_key_info() {
        return Ok(Vec::new());
    }
    let sans: String = info.sans().iter().map(|s| format!("{s}\n")).collect();
    let host_dir = dir.join(HOSTS_DIR).join(name);
    create_private_dir(&host_dir)?;
    let (cert_path, key_path) = (host_dir.join(SERVER_CERT), host_dir.join(SERVER_KEY));
    write_atomic(&key_path, key.as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert.as_bytes(), 0o644)?;
    write_atomic(&host_dir.join(SANS_FILE), sans.as_bytes(), 0o644)?;
    Ok(vec![key_path, cert_path])
}

/// The DER of a PEM certificate, to compare two certificates whatever
/// their line breaks.
pub(crate) fn cert_der(pem: &str) -> Option<Vec<u8>> {
    pem_der(pem)
}

/// The DER of every `CERTIFICATE` block of a PEM text (a CA bundle).
pub(crate) fn cert_ders(text: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(text.as_bytes())
        .map_while(std::result::Result::ok)
        .filter(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
        .collect()
}

/// The public key (SubjectPublicKeyInfo, DER) of a PEM certificate: two
/// CA certificates with the same key are one CA.
pub(crate) fn cert_spki(pem: &str) -> Option<Vec<u8>> {
    let der = pem_der(pem)?;
    parse_cert(&der).map(|info| info.spki.to_vec())
}

/// A new CA in `dir`, replacing `ca.pem` and `ca-key.pem` (a CA rotation,
/// which keeps the old certificate as `ca.old.pem` first). The key is
/// written first: a run stopped between the two leaves `ca.pem` the old
/// CA's, which the rotation takes for "no new CA yet" and makes one again.
pub(crate) fn new_ca(dir: &Path) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = ca_params(now).self_signed(&key).map_err(cert_error)?;
    write_atomic(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&dir.join(CA_CERT), cert.pem().as_bytes(), 0o644)
}

/// A self-signed CA certificate's subject, public key and end, without
/// its key (one adopted from the cluster, or the one being replaced).
fn keyless_ca(pem: &str) -> Option<(Vec<u8>, Vec<u8>, OffsetDateTime)> {
    let der = pem_der(pem)?;
    let info = parse_cert(&der)?;
    let ok = info.issuer == info.subject && info.signed_by_spki(info.spki);
    ok.then(|| (info.subject.to_vec(), info.spki.to_vec(), info.not_after))
}

/// The SANs `host`'s certificate should carry, in a canonical order: its
/// addresses and its name, IPs normalised, DNS names lowercased, sorted,
/// without duplicates.
fn wanted_sans(host: &ServerCert) -> Result<Vec<String>> {
    let name = host.name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::usage(format!(
            "`{name}` cannot name a TLS certificate directory"
        )));
    }
    let mut sans = Vec::with_capacity(host.addresses.len() + 1);
    for address in host.addresses.iter().map(String::as_str).chain([name]) {
        let trimmed = address.trim();
        let bare = trimmed
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            sans.push(ip.to_string());
        } else if is_dns_name(trimmed) {
            sans.push(trimmed.to_ascii_lowercase());
        } else {
            return Err(Error::usage(format!(
                "host `{name}`: `{address}` is neither an IP address nor a DNS name, \
                 so it cannot go in a TLS certificate"
            )));
        }
    }
    sans.sort();
    sans.dedup();
    Ok(sans)
}

fn is_dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The CA, loaded or just made.
struct Ca {
    /// `None` for a CA adopted from the running cluster: its key stays with
    /// the checkout that made it, so nothing can be issued here.
    key: Option<KeyPair>,
    /// The CA certificate's SubjectPublicKeyInfo, which checks signatures.
    spki: Vec<u8>,
    /// Where the key would be, for the error that needs it.
    key_path: PathBuf,
    /// The DER of the CA certificate's subject, which every certificate it
    /// issues must carry as its issuer, byte for byte.
    subject: Vec<u8>,
    not_after: OffsetDateTime,
    /// Made this run: whatever was issued before is from another CA.
    fresh: bool,
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(BACKDATE_DAYS);
    params.not_after = now + Duration::days(CA_DAYS);
    params
}

fn load_or_create_ca(dir: &Path, now: OffsetDateTime, out: &mut Writer) -> Result<Ca> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let cert_pem = read_optional(&cert_path)?;
    let key_pem = read_optional(&key_path)?;
    let start_over = format!(
        "to start over with a new CA, move `{}` aside and run again: every node then gets \
         new certificates, and docker clients need the new ca.pem, cert.pem and key.pem",
        dir.display()
    );

    let key = match &key_pem {
        None => None,
        Some(pem) => {
            let key = KeyPair::from_pem(pem).map_err(|e| {
                Error::usage(format!(
                    "cannot read the CA key `{}`: {e}",
                    key_path.display()
                ))
                .with_hint(start_over.clone())
            })?;
            if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
                return Err(Error::usage(format!(
                    "the CA key `{}` is not an ECDSA P-256 key, the only kind arpanet makes",
                    key_path.display()
                ))
                .with_hint(start_over));
            }
            Some(key)
        }
    };

    match (cert_pem, key) {
        (Some(pem), None) => {
            // Adopted from the running cluster (or the key was lost): the
            // certificates it signed are checked, nothing can be issued.
            let info = keyless_ca(&pem).ok_or_else(|| {
                Error::usage(format!(
                    "`{}` is not a CA certificate arpanet made",
                    cert_path.display()
                ))
                .with_hint(start_over.clone())
            })?;
            let (subject, spki, not_after) = info;
            Ok(Ca {
                subject,
                spki,
                not_after,
                key: None,
                key_path,
                fresh: false,
            })
        }
        (Some(pem), Some(key)) => {
            let der = pem_der(&pem).ok_or_else(|| {
                Error::usage(format!(
                    "`{}` is not a PEM certificate",
                    cert_path.display()
                ))
                .with_hint(start_over.clone())
            })?;
            let info = parse_cert(&der)
                .filter(|info| info.issuer == info.subject && info.signed_by(&key))
                .ok_or_else(|| {
                    Error::usage(format!(
                        "`{}` and `{}` do not belong together",
                        cert_path.display(),
                        key_path.display()
                    ))
                    .with_hint(start_over.clone())
                })?;
            if info.not_after <= now {
                return Err(Error::usage(format!(
                    "the TLS CA `{}` expired on {}",
                    cert_path.display(),
                    info.not_after.date()
                ))
                .with_hint(start_over));
            }
            Ok(Ca {
                subject: info.subject.to_vec(),
                spki: info.spki.to_vec(),
                not_after: info.not_after,
                key: Some(key),
                key_path,
                fresh: false,
            })
        }
        (None, key) => {
            // With the key still there (a run stopped between writing the
            // two), the certificate is made again from it: same name, same
            // key, so what it signed before stays valid.
            let fresh = key.is_none();
            let key = match key {
                Some(key) => key,
                None => KeyPair::generate().map_err(cert_error)?,
            };
            let cert = ca_params(now).self_signed(&key).map_err(cert_error)?;
            let info = parse_cert(cert.der()).ok_or_else(|| {
                Error::Internal("cannot parse the CA certificate just made".into())
            })?;
            if fresh {
                out.file(key_path.clone(), key.serialize_pem().as_bytes(), 0o600)?;
            }
            let ca = Ca {
                subject: info.subject.to_vec(),
                spki: info.spki.to_vec(),
                not_after: info.not_after,
                key: Some(key),
                key_path,
                fresh,
            };
            out.file(cert_path, cert.pem().as_bytes(), 0o644)?;
            Ok(ca)
        }
    }
}

impl Ca {
    /// Why `name`'s certificate cannot be issued by a CA without its key.
    fn keyless(&self, name: &str) -> Error {
        let dir = self.key_path.parent().unwrap_or(Path::new("."));
        let folder = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        Error::usage(format!(
            "`{name}` needs a certificate from the cluster's CA, and its key `{}` is not here",
            self.key_path.display()
        ))
        .with_hint(format!(
            "this checkout adopted the running cluster's CA, whose key never leaves the \
             checkout that made the cluster: copy `{CA_KEY}` from that checkout's `{folder}/` \
             to `{}` (mode 0600) and run again",
            self.key_path.display()
        ))
    }

    /// A new key and a certificate for it, signed by the CA: `(cert, key)`,
    /// both PEM.
    fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        usages: &[ExtendedKeyUsagePurpose],
        now: OffsetDateTime,
    ) -> Result<(String, String)> {
        let Some(ca_key) = &self.key else {
            return Err(self.keyless(common_name));
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans
            .iter()
            .map(|san| match san.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => san.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(cert_error)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::days(BACKDATE_DAYS);
        // A certificate cannot usefully outlive its CA.
        params.not_after = (now + Duration::days(LEAF_DAYS)).min(self.not_after);

        let key = KeyPair::generate().map_err(cert_error)?;
        let issuer = Issuer::new(ca_params(now), ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
        // The issuer name comes from arpanet's CA parameters, not from
        // ca.pem; a CA made otherwise would issue certificates that chain
        // to nothing.
        if parse_cert(cert.der()).map(|info| info.issuer) != Some(&self.subject[..]) {
            return Err(Error::usage(format!(
                "the TLS CA was not made by arpanet: its subject is not `CN={CA_NAME}`"
            ))
            .with_hint(
                "arpanet issues certificates only from a CA it made; move the certificate \
                 directory aside to let it make one",
            ));
        }
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A certificate and its key.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    /// Whether both files are there, the certificate was signed by `ca`,
    /// holds the key's public half, and is not about to end.
    fn is_current(&self, ca: &Ca, now: OffsetDateTime) -> Result<bool> {
        let (Some(cert_pem), Some(key_pem)) =
            (read_optional(&self.cert)?, read_optional(&self.key)?)
        else {
            return Ok(false);
        };
        let Ok(key) = KeyPair::from_pem(&key_pem) else {
            return Ok(false);
        };
        let Some(der) = pem_der(&cert_pem) else {
            return Ok(false);
        };
        let Some(info) = parse_cert(&der) else {
            return Ok(false);
        };
        let ending =
            info.not_after < now + Duration::days(RENEW_DAYS) && info.not_after < ca.not_after;
        Ok(info.issuer == ca.subject
            && info.signed_by_spki(&ca.spki)
            && info.spki == key.subject_public_key_info()
            && !ending)
    }

    fn write(&self, cert: &str, key: &str, out: &mut Writer) -> Result<()> {
        out.file(self.key.clone(), key.as_bytes(), 0o600)?;
        out.file(self.cert.clone(), cert.as_bytes(), 0o644)
    }
}

/// Where [`ensure`] writes, and what it wrote; a dry one writes nothing
/// and only lists what it would have written.
struct Writer {
    dry: bool,
    report: Report,
}

impl Writer {
    fn dir(&self, dir: &Path) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        create_private_dir(dir)
    }

    /// A key (0600) or a certificate (0644), listed in the report.
    fn file(&mut self, path: PathBuf, data: &[u8], mode: u32) -> Result<()> {
        if !self.dry {
            write_atomic(&path, data, mode)?;
        }
        self.report.created.push(path);
        Ok(())
    }

    /// A note for later runs (0644), not listed.
    fn record(&self, path: &Path, data: &[u8]) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        write_atomic(path, data, 0o644)
    }
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Internal(format!("cannot generate a TLS certificate: {e}"))
}

/// The file's text, or `None` when there is no such file.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The file in a secrets directory that [`lock`] holds.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Refuse a secrets directory, or anything in it, that another user could
/// have written: writable by group or others, or owned by another uid than
/// ours. Key material read from there could be an attacker's, and keys
/// written there could be read or swapped. A directory that does not exist
/// yet is fine (it is made 0700).
pub(crate) fn guard(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspect", &path, e)),
        };
        let what = if meta.is_dir() { "directory" } else { "file" };
        if meta.uid() != me {
            return Err(Error::usage(format!(
                "the secrets {what} `{}` belongs to uid {}, not to you (uid {me}):                  arpanet keeps cluster keys only where no one else could have put them",
                path.display(),
                meta.uid()
            ))
            .with_hint(format!(
                "if its content is yours, `chown -R {me} {}`; otherwise move it aside                  and run again to make new secrets",
                dir.display()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Error::usage(format!(
                "the secrets {what} `{}` is writable by {} (mode {:04o}): anyone could                  have replaced the cluster's keys",
                path.display(),
                if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" },
                meta.mode() & 0o7777
            ))
            .with_hint(format!(
                "`chmod 700 {}` and `chmod -R go-w {}` if you trust what is in it,                  else move it aside and run again",
                dir.display(),
                dir.display()
            )));
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(|e| Error::io("read", &path, e))? {
                todo.push(entry.map_err(|e| Error::io("read", &path, e))?.path());
            }
        }
    }
    Ok(())
}

/// Make `dir` (0700) if needed and hold an exclusive `flock` on its lock
/// file until the returned file is dropped, so that runs of arpanet on this
/// machine make and read the secrets one at a time: two first runs must
/// not each make a CA. The directory is [`guard`]ed before anything is
/// written and again once the lock is held.
pub(crate) fn lock(dir: &Path) -> Result<fs::File> {
    guard(dir)?;
    create_private_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &path, e.into()))?;
    guard(dir)?;
    Ok(file)
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create", dir, e))
}

/// Write a certificate (mode 0644) atomically.
pub(crate) fn write_cert(path: &Path, data: &[u8]) -> Result<()> {
    create_private_dir(path.parent().unwrap_or(Path::new(".")))?;
    write_atomic(path, data, 0o644)
}

/// Write a secret (mode 0600) atomically, e.g. a key made beside the TLS files.
pub fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic(path, data, 0o600)
}

/// Write `data` to `path` through a temporary file of its own in the same
/// directory (a name no other run uses), created with `mode` (so a key is
/// never readable by others, even briefly) and renamed over `path` once
/// complete; removed again on any failure.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Internal(format!("no file name in `{}`", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    // `mode` was filtered through the umask.
    let written = file
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|e| Error::io("set permissions of", &tmp, e))
        .and_then(|()| {
            file.write_all(data)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("write", &tmp, e))
        });
    drop(file);
    let renamed =
        written.and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e)));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

/// The DER inside the first `CERTIFICATE` block of a PEM text.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(text.as_bytes())
        .map_while(std::result::Result::ok)
        .find(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
}

/// The parts of a certificate arpanet checks, borrowed from its DER.
struct CertInfo<'a> {
    cert: X509Certificate<'a>,
    issuer: &'a [u8],
    subject: &'a [u8],
    /// The SubjectPublicKeyInfo, whole.
    spki: &'a [u8],
    not_after: OffsetDateTime,
}

impl CertInfo<'_> {
    /// Whether `key` made the certificate's signature.
    fn signed_by(&self, key: &KeyPair) -> bool {
        self.signed_by_spki(&key.subject_public_key_info())
    }

    /// Whether the key whose public half is `spki` (DER) made the
    /// certificate's signature.
    fn signed_by_spki(&self, spki: &[u8]) -> bool {
        SubjectPublicKeyInfo::from_der(spki)
            .is_ok_and(|(_, spki)| self.cert.verify_signature(Some(&spki)).is_ok())
    }

    /// Its subject alternative names in [`wanted_sans`]' canonical form.
    fn sans(&self) -> Vec<String> {
        use x509_parser::extensions::GeneralName;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = self.cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => sans.push(dns.to_ascii_lowercase()),
                    GeneralName::IPAddress(raw) => match raw.len() {
                        4 => sans.push(
                            IpAddr::from(<[u8; 4]>::try_from(*raw).unwrap_or_default()).to_string(),
                        ),
                        16 => sans.push(
                            IpAddr::from(<[u8; 16]>::try_from(*raw).unwrap_or_default())
                                .to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        sans.sort();
        sans.dedup();
        sans
    }
}

/// Read the fields of an X.509 certificate that [`CertInfo`] holds; `None`
/// for anything that is not one whole DER certificate.
fn parse_cert(der: &[u8]) -> Option<CertInfo<'_>> {
    let (rest, cert) = X509Certificate::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let tbs = &cert.tbs_certificate;
    let (issuer, subject, spki) = (
        tbs.issuer.as_raw(),
        tbs.subject.as_raw(),
        tbs.subject_pki.raw,
    );
    let not_after = tbs.validity.not_after.to_datetime();
    Some(CertInfo {
        cert,
        issuer,
        subject,
        spki,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::ensure`] by its own rules alone.
    fn ensure(dir: &Path, hosts: &[ServerCert]) -> Result<Report> {
        super::ensure(dir, hosts, Renewal::default())
    }
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    fn host(name: &str, addresses: &[&str]) -> ServerCert {
        ServerCert {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn lab() -> Vec<ServerCert> {
        vec![
            host("n1", &["127.0.0.1", "n1.lab"]),
            host("n2", &["10.0.0.2"]),
        ]
    }

    /// Whether the `openssl` CLI is here; the checks that need it are skipped
    /// (loudly) where it is not.
    fn have_openssl() -> bool {
        let ok = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("no `openssl` command: skipping the openssl checks");
        }
        ok
    }

    /// Run `openssl ARGS` in `dir`: whether it succeeded, and its stdout
    /// and stderr.
    fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn verify(dir: &Path, purpose: &str, cert: &str) -> (bool, String) {
        openssl(
            dir,
            &["verify", "-CAfile", CA_CERT, "-purpose", purpose, cert],
        )
    }

    fn assert_verifies(dir: &Path, purpose: &str, cert: &str) {
        let (ok, text) = verify(dir, purpose, cert);
        assert!(ok, "{cert} does not verify as {purpose}: {text}");
    }

    fn sans_of(dir: &Path, cert: &str) -> String {
        let (ok, text) = openssl(
            dir,
            &["x509", "-noout", "-ext", "subjectAltName", "-in", cert],
        );
        assert!(ok, "{text}");
        text
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Every file under `dir`, with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    files.insert(path.clone(), fs::read(&path).unwrap());
                }
            }
        }
        files
    }

    fn rel(dir: &Path, report: &Report) -> Vec<String> {
        let mut names: Vec<String> = report
            .created
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.sort();
        names
    }

    fn with_hint(err: &Error) -> String {
        match err {
            Error::Usage { message, hint } => format!("{message} hint: {hint:?}"),
            other => panic!("not a usage error: {other}"),
        }
    }

    #[test]
    fn a_directory_others_could_write_is_refused_with_a_hint_and_nothing_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let err = lock(&dir).unwrap_err();
        let text = with_hint(&err);
        assert!(text.contains("writable by everyone (mode 0777)"), "{text}");
        assert!(
            text.contains(&format!("chmod 700 {}", dir.display())),
            "{text}"
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "something was written"
        );

        // Fixed by the hint: the lock is taken and the secrets made.
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        let held = lock(&dir).unwrap();
        ensure(&dir, &lab()).unwrap();
        drop(held);

        // A group-writable file inside is refused too.
        let key = dir.join(CA_KEY);
        fs::set_permissions(&key, Permissions::from_mode(0o620)).unwrap();
        let err = guard(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{}` is writable by its group", key.display())),
            "{err}"
        );
        fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();
        guard(&dir).unwrap();

        // So is a file of another user (as root, the test can make one).
        if rustix::process::geteuid().is_root() {
            let cert = dir.join(HOSTS_DIR).join("n1").join(SERVER_CERT);
            std::os::unix::fs::chown(&cert, Some(65534), None).unwrap();
            let err = lock(&dir).unwrap_err();
            let text = with_hint(&err);
            assert!(
                text.contains("belongs to uid 65534, not to you (uid 0)"),
                "{text}"
            );
            assert!(text.contains("chown -R 0"), "{text}");
        }
    }

    #[test]
    fn the_lock_keeps_a_second_holder_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let held = lock(&dir).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _second = lock(&dir).unwrap();
                tx.send(()).unwrap();
            })
        };
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
    }

    #[test]
    fn first_run_makes_everything_with_the_right_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("inventory").join("docker-tls");
        let report = ensure(&dir, &lab()).unwrap();
        assert_eq!(
            rel(&dir, &report),
            sorted(&[
                "ca.pem",
                "ca-key.pem",
                "cert.pem",
                "key.pem",
                "hosts/n1/server-cert.pem",
                "hosts/n1/server-key.pem",
                "hosts/n2/server-cert.pem",
                "hosts/n2/server-key.pem",
            ])
        );
        for d in ["", "hosts", "hosts/n1", "hosts/n2"] {
            assert_eq!(mode(&dir.join(d)), 0o700, "{d}");
        }
        for key in [CA_KEY, CLIENT_KEY, "hosts/n1/server-key.pem"] {
            assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
        }
        for cert in [
            CA_CERT,
            CLIENT_CERT,
            "hosts/n2/server-cert.pem",
            "hosts/n2/sans",
        ] {
            assert_eq!(mode(&dir.join(cert)), 0o644, "{cert}");
        }
        assert_eq!(
            fs::read_to_string(dir.join("hosts/n1/sans")).unwrap(),
            "127.0.0.1\nn1\nn1.lab\n"
        );
        // No temporary files left behind.
        assert!(snapshot(&dir)
            .keys()
            .all(|p| !p.to_string_lossy().ends_with(".tmp")));

        if !have_openssl() {
            return;
        }
        assert_verifies(&dir, "sslserver", "hosts/n1/server-cert.pem");
        assert_verifies(&dir, "sslserver", "hosts/n2/server-cert.pem");
        assert_verifies(&dir, "sslclient", CLIENT_CERT);
        // The client certificate cannot serve; a host's serves and, for
        // Consul agents calling each other, also identifies its client side.
        assert!(!verify(&dir, "sslserver", CLIENT_CERT).0);
        assert_verifies(&dir, "sslclient", "hosts/n1/server-cert.pem");

        let n1 = sans_of(&dir, "hosts/n1/server-cert.pem");
        for san in ["IP Address:127.0.0.1", "DNS:n1.lab", "DNS:n1"] {
            assert!(n1.contains(san), "{san} missing: {n1}");
        }
        let n2 = sans_of(&dir, "hosts/n2/server-cert.pem");
        assert!(
            n2.contains("IP Address:10.0.0.2") && n2.contains("DNS:n2"),
            "{n2}"
        );

        let subject = |cert: &str| openssl(&dir, &["x509", "-noout", "-subject", "-in", cert]).1;
        assert!(subject(CA_CERT).contains("CN = arpanet CA"));
        assert!(subject(CLIENT_CERT).contains("CN = arpanet client"));
        assert!(subject("hosts/n2/server-cert.pem").contains("CN = n2"));
        let ca = openssl(
            &dir,
            &["x509", "-noout", "-ext", "basicConstraints", "-in", CA_CERT],
        )
        .1;
        assert!(ca.contains("CA:TRUE"), "{ca}");
        // The CA lasts about ten years, a node's certificate over two.
        let lasts = |cert: &str, days: i64| {
            let seconds = (days * 86_400).to_string();
            openssl(
                &dir,
                &["x509", "-noout", "-checkend", &seconds, "-in", cert],
            )
            .0
        };
        assert!(lasts(CA_CERT, 3600) && !lasts(CA_CERT, 3700));
        assert!(lasts("hosts/n1/server-cert.pem", 800) && !lasts("hosts/n1/server-cert.pem", 830));
    }

    #[test]
    fn second_run_makes_nothing_and_changes_no_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()).unwrap();
        let before = snapshot(dir);
        let report = ensure(dir, &lab()).unwrap();
        assert_eq!(report.created, Vec::<PathBuf>::new());
        assert_eq!(snapshot(dir), before);
        // The same addresses in another order and spelling are the same SANs.
        let shuffled = vec![
            host("n2", &["10.0.0.2", "N2"]),
            host("n1", &["N1.lab", " 127.0.0.1", "n1"]),
        ];
        assert_eq!(
            ensure(dir, &shuffled).unwrap().created,
            Vec::<PathBuf>::new()
        );
        assert_eq!(snapshot(dir), before);
    }

    #[test]
    fn a_plan_lists_what_ensure_would_write_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let planned = plan(&dir, &lab(), Renewal::default()).unwrap();
        assert!(!dir.exists(), "a plan made the directory");
        let made = ensure(&dir, &lab()).unwrap();
        assert_eq!(planned, made);
        let before = snapshot(&dir);
        assert_eq!(
            plan(&dir, &lab(), Renewal::default()).unwrap().created,
            Vec::<PathBuf>::new()
        );
        // A moved host and a lost client key: listed, not written.
        fs::remove_file(dir.join(CLIENT_KEY)).unwrap();
        let before_moved = snapshot(&dir);
        let moved = vec![
            host("n1", &["127.0.0.1", "n1.lab"]),
            host("n2", &["10.0.0.22"]),
        ];
        assert_eq!(
            rel(&dir, &plan(&dir, &moved, Renewal::default()).unwrap()),
            sorted(&[
                "cert.pem",
                "key.pem",
                "hosts/n2/server-cert.pem",
                "hosts/n2/server-key.pem"
            ])
        );
        assert_eq!(snapshot(&dir), before_moved);
        assert_ne!(snapshot(&dir), before);
        // Errors are the same as ensure's.
        fs::remove_file(dir.join(CA_KEY)).unwrap();
        assert!(plan(&dir, &moved, Renewal::default())
            .unwrap_err()
            .to_string()
            .contains("`n2` needs a certificate"));
    }

    #[test]
    fn a_changed_address_reissues_only_that_host() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()).unwrap();
        let before = snapshot(dir);
        let moved = vec![
            host("n1", &["127.0.0.1", "n1.lab"]),
            host("n2", &["10.0.0.22", "n2.lab"]),
        ];
        let report = ensure(dir, &moved).unwrap();
        assert_eq!(
            rel(dir, &report),
            sorted(&["hosts/n2/server-cert.pem", "hosts/n2/server-key.pem"])
        );
        let after = snapshot(dir);
        for (path, bytes) in &before {
            let same = after[path] == *bytes;
            assert_eq!(
                same,
                !path.starts_with(dir.join("hosts/n2")),
                "{}",
                path.display()
            );
        }
        assert_eq!(
            fs::read_to_string(dir.join("hosts/n2/sans")).unwrap(),
            "10.0.0.22\nn2\nn2.lab\n"
        );
        assert_eq!(ensure(dir, &moved).unwrap().created, Vec::<PathBuf>::new());

        if have_openssl() {
            assert_verifies(dir, "sslserver", "hosts/n2/server-cert.pem");
            let sans = sans_of(dir, "hosts/n2/server-cert.pem");
            assert!(sans.contains("IP Address:10.0.0.22") && sans.contains("DNS:n2.lab"));
            assert!(!sans.contains("10.0.0.2,"), "{sans}");
        }
    }

    #[test]
    fn a_new_host_gets_a_certificate_and_the_others_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()[..1]).unwrap();
        let report = ensure(dir, &lab()).unwrap();
        assert_eq!(
            rel(dir, &report),
            sorted(&["hosts/n2/server-cert.pem", "hosts/n2/server-key.pem"])
        );
    }

    /// A checkout that adopted the running cluster's CA has no CA key: what
    /// the CA signed is still checked and kept, the client pair is not made,
    /// and a certificate that must be issued fails saying where the key is.
    #[test]
    fn a_ca_certificate_without_its_key_keeps_what_it_signed_and_issues_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("consul-tls");
        ensure(&dir, &lab()).unwrap();
        fs::remove_file(dir.join(CA_KEY)).unwrap();
        fs::remove_file(dir.join(CLIENT_KEY)).unwrap();
        let before = snapshot(&dir);
        assert_eq!(ensure(&dir, &lab()).unwrap(), Report::default());
        assert_eq!(snapshot(&dir), before);
        let mut more = lab();
        more.push(host("n3", &["10.0.0.3"]));
        let err = ensure(&dir, &more).unwrap_err().to_string();
        assert!(
            err.contains("`n3` needs a certificate from the cluster's CA")
                && err.contains(&format!("`{}`", dir.join(CA_KEY).display())),
            "{err}"
        );
        assert!(
            err.contains("hint: this checkout adopted the running cluster's CA")
                && err.contains("copy `ca-key.pem` from that checkout's `consul-tls/`"),
            "{err}"
        );
        assert_eq!(snapshot(&dir), before, "nothing may change");
    }

    /// A node's own pair is adopted only when the CA here signed it and the
    /// key is its own; its SANs are recorded so `ensure` keeps it.
    #[test]
    fn a_node_pair_is_adopted_only_when_it_belongs_to_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let (made, adopter, other) = (
            tmp.path().join("made"),
            tmp.path().join("adopter"),
            tmp.path().join("other"),
        );
        ensure(&made, &lab()).unwrap();
        ensure(&other, &lab()).unwrap();
        fs::create_dir_all(&adopter).unwrap();
        fs::copy(made.join(CA_CERT), adopter.join(CA_CERT)).unwrap();
        let read =
            |dir: &Path, file: &str| fs::read_to_string(dir.join("hosts/n1").join(file)).unwrap();
        let (cert, key) = (read(&made, SERVER_CERT), read(&made, SERVER_KEY));
        // Another CA's pair, or a key of another pair: nothing written.
        assert!(adopt_pair(
            &adopter,
            "n1",
            &read(&other, SERVER_CERT),
            &read(&other, SERVER_KEY)
        )
        .unwrap()
        .is_empty());
        assert!(
            adopt_pair(&adopter, "n1", &cert, &read(&made, "../n2/server-key.pem"))
                .unwrap()
                .is_empty()
        );
        assert!(!adopter.join(HOSTS_DIR).exists());
        assert_eq!(adopt_pair(&adopter, "n1", &cert, &key).unwrap().len(), 2);
        assert_eq!(read(&adopter, SERVER_CERT), cert);
        assert_eq!(read(&adopter, SANS_FILE), read(&made, SANS_FILE));
        let mode = fs::metadata(adopter.join("hosts/n1").join(SERVER_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Current: the keyless CA issues nothing for it.
        assert_eq!(ensure(&adopter, &lab()[..1]).unwrap(), Report::default());
    }

    #[test]
    fn a_ca_certificate_with_another_key_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        ensure(&a, &[]).unwrap();
        ensure(&b, &[]).unwrap();
        fs::copy(b.join(CA_KEY), a.join(CA_KEY)).unwrap();
        let err = ensure(&a, &lab()).unwrap_err().to_string();
        assert!(err.contains("do not belong together"), "{err}");
        assert!(!a.join(HOSTS_DIR).exists());
    }

    #[test]
    fn a_lost_ca_certificate_is_made_again_from_its_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()).unwrap();
        fs::remove_file(dir.join(CA_CERT)).unwrap();
        let report = ensure(dir, &lab()).unwrap();
        // Same key, same name: what the old one signed still holds.
        assert_eq!(rel(dir, &report), sorted(&["ca.pem"]));
        if have_openssl() {
            assert_verifies(dir, "sslserver", "hosts/n1/server-cert.pem");
            assert_verifies(dir, "sslclient", CLIENT_CERT);
        }
    }

    #[test]
    fn a_new_ca_reissues_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()).unwrap();
        fs::remove_file(dir.join(CA_CERT)).unwrap();
        fs::remove_file(dir.join(CA_KEY)).unwrap();
        let report = ensure(dir, &lab()).unwrap();
        assert_eq!(report.created.len(), 8, "{report:?}");
        if have_openssl() {
            assert_verifies(dir, "sslserver", "hosts/n1/server-cert.pem");
            assert_verifies(dir, "sslclient", CLIENT_CERT);
        }
    }

    #[test]
    fn a_broken_or_foreign_pair_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, other) = (tmp.path().join("a"), tmp.path().join("b"));
        ensure(&dir, &lab()).unwrap();
        ensure(&other, &lab()).unwrap();
        // The client key is gone; n1's certificate is another CA's.
        fs::remove_file(dir.join(CLIENT_KEY)).unwrap();
        fs::copy(
            other.join("hosts/n1/server-cert.pem"),
            dir.join("hosts/n1/server-cert.pem"),
        )
        .unwrap();
        // n2's key does not match its certificate.
        fs::copy(
            other.join("hosts/n2/server-key.pem"),
            dir.join("hosts/n2/server-key.pem"),
        )
        .unwrap();
        let report = ensure(&dir, &lab()).unwrap();
        assert_eq!(report.created.len(), 6, "{report:?}");
        assert!(!report.created.contains(&dir.join(CA_CERT)));
        if have_openssl() {
            assert_verifies(&dir, "sslserver", "hosts/n1/server-cert.pem");
        }
    }

    #[test]
    fn certificates_near_their_end_are_renewed_but_not_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = OffsetDateTime::now_utc();
        ensure_at(dir, &lab(), now, false, Renewal::default()).unwrap();
        let later = now + Duration::days(LEAF_DAYS - 10);
        let report = ensure_at(dir, &lab(), later, false, Renewal::default()).unwrap();
        assert_eq!(report.created.len(), 6, "{report:?}");
        assert!(!report.created.iter().any(|p| p.starts_with(dir.join("ca"))));
        assert_eq!(
            ensure_at(dir, &lab(), later, false, Renewal::default())
                .unwrap()
                .created
                .len(),
            0
        );
        // Near the CA's own end, a certificate that cannot outlive it is
        // left alone rather than issued again on every run.
        let end = now + Duration::days(CA_DAYS - 5);
        assert_eq!(
            ensure_at(dir, &lab(), end, false, Renewal::default())
                .unwrap()
                .created
                .len(),
            6
        );
        assert_eq!(
            ensure_at(dir, &lab(), end, false, Renewal::default())
                .unwrap()
                .created
                .len(),
            0
        );
        let err = ensure_at(
            dir,
            &lab(),
            now + Duration::days(CA_DAYS + 1),
            false,
            Renewal::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn bad_names_and_addresses_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        for hosts in [
            vec![host("../n1", &[])],
            vec![host("", &[])],
            vec![host("n1", &["not an address"])],
            vec![host("n1", &["10.0.0.1"]), host("n1", &["10.0.0.2"])],
        ] {
            let err = ensure(&dir, &hosts).unwrap_err();
            assert!(matches!(err, Error::Usage { .. }), "{err}");
        }
        assert!(!dir.exists());
        // An IPv6 address, bracketed or not, is an IP SAN; a name that is an
        // IP is too.
        let hosts = [host("10.0.0.9", &["[fd00::1]", "fd00::2"])];
        ensure(&dir, &hosts).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("hosts/10.0.0.9/sans")).unwrap(),
            "10.0.0.9\nfd00::1\nfd00::2\n"
        );
        if have_openssl() {
            let sans = sans_of(&dir, "hosts/10.0.0.9/server-cert.pem");
            assert!(sans.contains("IP Address:FD00:0:0:0:0:0:0:1"), "{sans}");
            assert!(!sans.contains("DNS:"), "{sans}");
        }
    }

    #[test]
    fn reads_both_time_forms_and_the_fields_it_checks() {
        // RFC 5280: UTCTime up to 2049, GeneralizedTime from 2050.
        let key = KeyPair::generate().unwrap();
        let ends = |not_after: OffsetDateTime| {
            let mut params = ca_params(OffsetDateTime::now_utc());
            params.not_after = not_after;
            params.self_signed(&key).unwrap()
        };
        // `date -u -d "2029-02-26 23:48:44" +%s`
        let utc = OffsetDateTime::from_unix_timestamp(1_866_844_124).unwrap();
        let generalized = OffsetDateTime::from_unix_timestamp(2_713_910_400).unwrap();
        for (end, encoded) in [
            (utc, &b"\x17\x0d290226234844Z"[..]),
            (generalized, &b"\x18\x0f20560101000000Z"[..]),
        ] {
            let cert = ends(end);
            let der = cert.der();
            assert!(der.windows(encoded.len()).any(|w| w == encoded));
            let info = parse_cert(der).unwrap();
            assert_eq!(info.not_after, end);
            assert_eq!(info.issuer, info.subject);
            assert_eq!(info.spki, &key.subject_public_key_info()[..]);
            assert!(info.signed_by(&key));
            assert!(!info.signed_by(&KeyPair::generate().unwrap()));
            let pem = cert.pem();
            assert_eq!(pem_der(&pem).as_deref(), Some(&der[..]));
        }
        assert!(parse_cert(b"\x30\x03\x02\x01\x01").is_none());
        let der = ends(utc).der().to_vec();
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse_cert(&trailing).is_none());
        assert!(parse_cert(&der[..der.len() - 1]).is_none());
        assert!(
            pem_der("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_none()
        );
    }

    /// Wait up to `secs` for `child` to end; kill it if it has not.
    fn wait_or_kill(child: &mut Child, secs: u64) {
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed().as_secs() >= secs {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Serve one TLS connection with n1's pair, requiring a client
    /// certificate from our CA, and connect to it with `client_args`: what
    /// the client got back, and what the server said.
    fn handshake(dir: &Path, client_args: &[&str]) -> (String, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let accept = format!("127.0.0.1:{port}");
        let mut server = Command::new("openssl")
            .args(["s_server", "-accept", &accept, "-naccept", "1", "-rev"])
            .args([
                "-cert",
                "hosts/n1/server-cert.pem",
                "-key",
                "hosts/n1/server-key.pem",
            ])
            .args(["-CAfile", CA_CERT, "-Verify", "1", "-verify_return_error"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait (bounded) for the server to listen, then keep its output.
        let stdout = server.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut text = String::new();
            for line in lines.by_ref().map_while(std::result::Result::ok) {
                text.push_str(&line);
                text.push('\n');
                if line == "ACCEPT" {
                    let _ = tx.send(None);
                }
            }
            let _ = tx.send(Some(text));
        });
        let ready = rx.recv_timeout(std::time::Duration::from_secs(10));
        if !matches!(ready, Ok(None)) {
            let _ = server.kill();
            let _ = server.wait();
            panic!("openssl s_server did not start: {ready:?}");
        }

        let mut client = Command::new("openssl")
            .args(["s_client", "-connect", &accept, "-quiet", "-ign_eof"])
            .args([
                "-CAfile",
                CA_CERT,
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
            ])
            .args(client_args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // `-rev` echoes each line reversed; `CLOSE` ends the connection.
        client
            .stdin
            .take()
            .unwrap()
            .write_all(b"arpanet\nCLOSE\n")
            .unwrap();
        wait_or_kill(&mut client, 10);
        let mut got = String::new();
        client
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();

        wait_or_kill(&mut server, 5);
        let mut said = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .ok()
            .flatten()
            .unwrap_or_default();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        (got, said)
    }

    #[test]
    fn a_tls_handshake_with_client_certificates_succeeds() {
        if !have_openssl() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        ensure(dir, &lab()).unwrap();

        let (got, said) = handshake(dir, &["-cert", CLIENT_CERT, "-key", CLIENT_KEY]);
        assert!(
            got.contains("tenapra"),
            "client got {got:?}; server said {said}"
        );
        assert!(said.contains("CN = arpanet client"), "{said}");

        let (got, said) = handshake(dir, &[]);
        assert!(
            !got.contains("tenapra"),
            "served without a client certificate"
        );
        assert!(said.contains("peer did not return a certificate"), "{said}");
    }
}
