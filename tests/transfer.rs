//! Writes that are really atomic and binary-safe, and probes a login banner
//! cannot confuse: `copy`, `template` and `file` against real sshd, with the
//! link cut (the connection's sshd processes killed) and arpanet killed in
//! the middle of a 50 MB transfer, a binary `src:` file, and a host whose
//! login shell prints a banner around every command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{ensure_banner_user, Cluster, Run, TEST_USER};

/// The size of the transfers that are cut.
const BIG: usize = 50 * 1024 * 1024;

/// How long the host may take to notice a cut and clean up.
const CLEANUP: Duration = Duration::from_secs(20);

/// A directory `user` can write to, inside the cluster's tempdir.
fn workdir(cluster: &Cluster, user: &str) -> PathBuf {
    let dir = cluster.dir().join("work");
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// `n` bytes in which every byte value occurs, in no simple order.
fn binary(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// `n` bytes of ASCII lines, each different.
fn text(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(format!("line {i} of a large file\n").as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// The temp files a write left in `dir`, with their sizes.
fn temps(dir: &Path) -> Vec<(String, u64)> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".arpanet."))
        .map(|e| {
            let size = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), size)
        })
        .collect()
}

/// Wait for `child` to end (at most a minute) and collect what it printed.
fn finish(mut child: Child) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("arpanet still running a minute after the cut");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How a transfer is interrupted.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The host's per-connection sshd processes are killed.
    Link,
    /// arpanet gets SIGINT (Ctrl-C).
    Interrupt,
    /// arpanet gets SIGKILL.
    Kill,
    /// The host's session is orphaned, as by a network partition: its sshd
    /// processes are frozen while arpanet is killed, and thawed a while
    /// later, so the session's input ends late.
    Partition,
}

/// Run `playbook`, interrupt it with `cut` once the temp file on the host
/// holds `at` bytes, and check that `dest` then holds `old` or `new`
/// (nothing in between) and that no temp file stays.
fn cut_transfer(
    cluster: &Cluster,
    playbook: &Path,
    dir: &Path,
    dest: &Path,
    (old, new): (&[u8], &[u8]),
    at: usize,
    cut: Cut,
) {
    fs::write(dest, old).unwrap();
    let inventory = cluster.dir().join("inventory.ini");
    let child = cluster.spawn(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        if let Some((_, size)) = temps(dir).into_iter().find(|(_, s)| *s >= at as u64) {
            break size;
        }
        assert!(
            Instant::now() < deadline,
            "the transfer never reached {at} bytes ({cut:?}); temps: {:?}",
            temps(dir)
        );
        thread::sleep(Duration::from_millis(1));
    };
    let host = &cluster.hosts[0];
    let run = match cut {
        Cut::Link => {
            assert!(host.cut_connections() > 0, "no connection to cut");
            finish(child)
        }
        Cut::Interrupt => signal(child, "-INT"),
        Cut::Kill => signal(child, "-KILL"),
        Cut::Partition => {
            assert!(
                host.signal_connections("-STOP") > 0,
                "no connection to freeze"
            );
            let run = signal(child, "-KILL");
            thread::sleep(Duration::from_secs(1));
            let partial = temps(dir);
            assert!(
                partial.iter().any(|(_, size)| *size < new.len() as u64),
                "the orphaned session's temp file is gone before its input ended: {partial:?}"
            );
            host.signal_connections("-CONT");
            run
        }
    };
    assert_ne!(
        run.code, 0,
        "a cut run cannot succeed ({cut:?} at {seen})\n{run}"
    );
    let deadline = Instant::now() + CLEANUP;
    while !temps(dir).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        temps(dir),
        [],
        "temp files stay {CLEANUP:?} after a {cut:?} at {seen} bytes\n{run}"
    );
    let now = fs::read(dest).unwrap();
    assert!(
        now == old || now == new,
        "after a {cut:?} at {seen} of {} bytes the destination holds {} bytes: neither the old \
         nor the new content\n{run}",
        new.len(),
        now.len()
    );
}

/// Send `signal` to arpanet and wait for it to end.
fn signal(child: Child, signal: &str) -> Run {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    finish(child)
}

/// One sshd host, a work directory it writes to, a `BIG`-byte binary
/// `src` file and the playbook copying it to `dest`.
struct BigCopy {
    cluster: Cluster,
    dir: PathBuf,
    data: Vec<u8>,
    copy: PathBuf,
    dest: PathBuf,
}

impl BigCopy {
    fn new() -> BigCopy {
        let cluster = Cluster::start(1);
        let dir = workdir(&cluster, TEST_USER);
        cluster.inventory(&[("work", dir.to_str().unwrap())]);
        let data = binary(BIG);
        let src = cluster.dir().join("files/big.bin");
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::write(&src, &data).unwrap();
        let copy = cluster.write_file(
                "copy.yml",
                "- hosts: all\n  tasks:\n        - copy:\n                src: big.bin\n                dest: \"{{ work }}/big\"\n",
        );
        let dest = dir.join("big");
        BigCopy {
            cluster,
            dir,
            data,
            copy,
            dest,
        }
    }
}

#[test]
fn a_link_cut_in_the_middle_of_a_big_copy_or_template_leaves_old_or_new_and_no_temp_file() {
    let BigCopy {
        cluster,
        dir,
        data,
        copy,
        dest,
    } = BigCopy::new();
    for at in [BIG / 10, BIG / 2, BIG * 4 / 5] {
        cut_transfer(
            &cluster,
            &copy,
            &dir,
            &dest,
            (b"old content\n", &data),
            at,
            Cut::Link,
        );
    }

    let mut body = b"{{ inventory_hostname }}\n".to_vec();
    body.extend_from_slice(&text(BIG));
    cluster.write_file("templates/big.j2", &String::from_utf8(body).unwrap());
    let rendered = [b"node1\n".as_slice(), &text(BIG)].concat();
    let template = cluster.write_file(
        "template.yml",
        "- hosts: all\n  tasks:\n    - template:\n        src: big.j2\n        dest: \"{{ work }}/big\"\n",
    );
    cut_transfer(
        &cluster,
        &template,
        &dir,
        &dest,
        (b"old content\n", &rendered),
        BIG / 3,
        Cut::Link,
    );
}

#[test]
fn killing_arpanet_or_orphaning_the_session_mid_copy_leaves_old_or_new_and_no_temp_file() {
    let BigCopy {
        cluster,
        dir,
        data,
        copy,
        dest,
    } = BigCopy::new();
    let old = b"old content\n";
    for (at, cut) in [
        (BIG / 5, Cut::Kill),
        (BIG / 3, Cut::Partition),
        (BIG / 2, Cut::Interrupt),
    ] {
        cut_transfer(&cluster, &copy, &dir, &dest, (old, &data), at, cut);
    }
}

/// A `src:` file holding every byte value and invalid UTF-8 arrives byte
/// for byte, and a second run sees it unchanged.
#[test]
fn copy_sends_any_bytes() {
    let cluster = Cluster::start(1);
    let dir = workdir(&cluster, TEST_USER);
    let inventory = cluster.inventory(&[("work", dir.to_str().unwrap())]);
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend_from_slice(b"\xff\xfe\xc3\x28 not utf-8 \x00\x80\r\n");
    data.extend_from_slice(&binary(300_000));
    assert!(std::str::from_utf8(&data).is_err());
    fs::create_dir_all(cluster.dir().join("files")).unwrap();
    fs::write(cluster.dir().join("files/blob.bin"), &data).unwrap();
    let playbook = cluster.write_file(
        "blob.yml",
        "- hosts: all\n  tasks:\n    - copy:\n        src: blob.bin\n        dest: \"{{ work }}/blob\"\n        mode: \"0600\"\n",
    );
    let args = [
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ];
    let first = cluster.run(&args);
    assert_eq!(first.code, 0, "{first}");
    assert!(first.stdout.contains("changed: [node1]"), "{first}");
    assert_eq!(fs::read(dir.join("blob")).unwrap(), data);
    let second = cluster.run(&args);
    assert_eq!(second.code, 0, "{second}");
    assert!(!second.stdout.contains("changed: [node1]"), "{second}");
    let diff = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "--check",
        "--diff",
    ]);
    assert_eq!(diff.code, 0, "{diff}");
    assert_eq!(temps(&dir), []);
}

/// A login shell that prints a banner before and after every command (on
/// stdout, where the probes answer): `file`, `copy` and `template` still
/// read the host right, write the right bytes, and change nothing on a
/// second run.
#[test]
fn a_login_banner_does_not_confuse_file_copy_or_template() {
    let user = ensure_banner_user();
    let mut cluster = Cluster::start(1);
    cluster.user = user.to_owned();
    let dir = workdir(&cluster, user);
    let inventory = cluster.inventory(&[("work", dir.to_str().unwrap())]);
    // The banner really is there, or this test proves nothing.
    let echo = cluster.ssh(0, "echo hello");
    assert!(echo.starts_with("WELCOME BANNER"), "{echo}");
    assert!(echo.contains("GOODBYE BANNER"), "{echo}");

    let blob = binary(70_000);
    fs::create_dir_all(cluster.dir().join("files")).unwrap();
    fs::write(cluster.dir().join("files/blob.bin"), &blob).unwrap();
    cluster.write_file("templates/motd.j2", "welcome to {{ inventory_hostname }}\n");
    let playbook = cluster.write_file(
        "banner.yml",
        r#"
- hosts: all
  tasks:
    - file:
        path: "{{ work }}/conf.d"
        state: directory
        mode: "0750"
    - template:
        src: motd.j2
        dest: "{{ work }}/conf.d/motd"
        mode: "0640"
    - copy:
        content: "plain\n"
        dest: "{{ work }}/plain"
    - copy:
        src: blob.bin
        dest: "{{ work }}/blob"
    - file:
        path: "{{ work }}/plain"
        mode: "u=rw,go="
    - file:
        path: "{{ work }}/gone"
        state: absent
"#,
    );
    let args = [
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "--diff",
    ];
    let first = cluster.run(&args);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(
        first.stdout.matches("changed: [node1]").count(),
        5,
        "{first}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("conf.d/motd")).unwrap(),
        "welcome to node1\n"
    );
    assert_eq!(fs::read_to_string(dir.join("plain")).unwrap(), "plain\n");
    assert_eq!(fs::read(dir.join("blob")).unwrap(), blob);
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(dir.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode("conf.d"), 0o750);
    assert_eq!(mode("conf.d/motd"), 0o640);
    assert_eq!(mode("plain"), 0o600);

    let second = cluster.run(&args);
    assert_eq!(second.code, 0, "{second}");
    assert!(!second.stdout.contains("changed: ["), "{second}");
    assert!(!second.stdout.contains("BANNER"), "{second}");

    // A changed file's diff holds its content, not the banner.
    fs::write(dir.join("plain"), "edited\n").unwrap();
    let third = cluster.run(&args);
    assert_eq!(third.code, 0, "{third}");
    assert!(third.stdout.contains("-edited"), "{third}");
    assert!(!third.stdout.contains("BANNER"), "{third}");
    assert_eq!(fs::read_to_string(dir.join("plain")).unwrap(), "plain\n");
}
