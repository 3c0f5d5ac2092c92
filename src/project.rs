//! The project file, so day-to-day commands need no flags: `arpanet.yml`,
//! `arpanet.toml` or `.arpanet.yml` in the current directory or the nearest
//! parent that has one. It gives the defaults of the connection options
//! (`inventory`, `forks`, `user`, `private_key`, `known_hosts`; paths
//! relative to the file); a flag given on the command line wins, and for
//! the inventory `ARPANET_INVENTORY` wins over the file too. An unknown
//! key is bad input at its line, before any host is contacted.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, InputError, InputKind, Location, Result};

/// The environment variable naming the inventory.
pub(crate) const ENV: &str = "ARPANET_INVENTORY";

/// Project file names, looked for in this order in each directory.
pub(crate) const FILES: [&str; 3] = ["arpanet.yml", "arpanet.toml", ".arpanet.yml"];

/// A project file's contents, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    inventory: Option<PathBuf>,
    forks: Option<usize>,
    user: Option<String>,
    private_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    /// Where roles are looked for, `:`-separated as Ansible's
    /// `roles_path`.
    roles_path: Option<String>,
}

/// The project file's settings, paths made relative to where it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Project {
    /// The file they come from, if any.
    pub file: Option<PathBuf>,
    pub inventory: Option<PathBuf>,
    pub forks: Option<usize>,
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub roles_path: Vec<PathBuf>,
}

impl Project {
    /// The project file of the current directory or its nearest parent
    /// (none: all defaults).
    pub(crate) fn here() -> Result<Project> {
        let cwd = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
        Project::find(&cwd)
    }

    fn find(cwd: &Path) -> Result<Project> {
        for dir in cwd.ancestors() {
            for name in FILES {
                let file = dir.join(name);
                if file.is_file() {
                    return Project::load(&file, dir);
                }
            }
        }
        Ok(Project::default())
    }

    fn load(file: &Path, dir: &Path) -> Result<Project> {
        let text = crate::error::read_input(file)?;
        let read: ProjectFile = match file.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| toml_error(file, &text, &e))?,
            _ => crate::yaml::load(file, &text)?,
        };
        let relative = |p: Option<PathBuf>| p.map(|p| dir.join(p));
        Ok(Project {
            file: Some(file.to_path_buf()),
            inventory: relative(read.inventory),
            forks: read.forks,
            user: read.user,
            private_key: relative(read.private_key),
            known_hosts: relative(read.known_hosts),
            roles_path: read
                .roles_path
                .iter()
                .flat_map(|p| std::env::split_paths(p).collect::<Vec<_>>())
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| dir.join(p))
                .collect(),
        })
    }

    /// The inventory to use: `given` (`-i`; several are all used, in
    /// order), else [`ENV`], else this file's.
    pub(crate) fn inventory(&self, given: &[PathBuf]) -> Result<Vec<PathBuf>> {
        if !given.is_empty() {
            return Ok(given.to_vec());
        }
        let env = std::env::var_os(ENV).filter(|v| !v.is_empty());
        self.resolve(env.as_deref().map(Path::new)).map(|p| vec![p])
    }

    fn resolve(&self, env: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = env.or(self.inventory.as_deref()) {
            return Ok(path.to_path_buf());
        }
        let hint = match &self.file {
            Some(file) => format!(
                "pass `-i INVENTORY`, set `{ENV}`, or add `inventory: PATH` to `{}`",
                file.display()
            ),
            None => format!(
                "pass `-i INVENTORY`, set `{ENV}`, or write `inventory: PATH` in an \
                 `arpanet.yml` in this directory or a parent"
            ),
        };
        Err(Error::usage("no inventory given").with_hint(hint))
    }
}

/// The inventory to use (see [`Project::inventory`]), from the project
/// file of the current directory or its nearest parent.
pub(crate) fn inventory(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    Project::here()?.inventory(given)
}

/// The project file's `roles_path` (relative to it), read once. A project
/// file that does not load gives none here: the commands that read it for
/// their other settings report why.
pub(crate) fn roles_path() -> &'static [PathBuf] {
    static PATHS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    PATHS.get_or_init(|| Project::here().map(|p| p.roles_path).unwrap_or_default())
}

/// A TOML error at its line and column.
fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> Error {
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let location = Location::new(file, line, column).with_source(text);
    let kind = InputKind::Invalid {
        field: None,
        message: e.message().to_owned(),
        hint: Some(
            "a project file takes `inventory`, `forks`, `user`, `private_key`, `known_hosts` and `roles_path`"
                .to_owned(),
        ),
    };
    InputError::new(location, kind).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(env: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
        Project::find(cwd)?.resolve(env)
    }

    #[test]
    fn flag_then_env_then_the_nearest_project_file() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let none = resolve(None, &deep).unwrap_err();
        assert!(none.to_string().contains("no inventory given"), "{none}");
        assert_eq!(none.exit_code(), crate::error::exit::BAD_INPUT);

        std::fs::write(root.path().join(".arpanet.yml"), "inventory: hosts.ini\n").unwrap();
        assert_eq!(resolve(None, &deep).unwrap(), root.path().join("hosts.ini"));
        // The nearer file wins, relative to where it is.
        std::fs::write(
            root.path().join("a/arpanet.yml"),
            "inventory: ../inv/lab.yml\n",
        )
        .unwrap();
        assert_eq!(
            resolve(None, &deep).unwrap(),
            root.path().join("a/../inv/lab.yml")
        );
        let env = Path::new("/env/inv.ini");
        assert_eq!(resolve(Some(env), &deep).unwrap(), env);
        let flag = PathBuf::from("flag.ini");
        let project = Project::find(&deep).unwrap();
        assert_eq!(
            project.inventory(std::slice::from_ref(&flag)).unwrap(),
            [flag]
        );
    }

    #[test]
    fn a_toml_project_file_gives_every_connection_default() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("arpanet.toml"),
            "inventory = \"inv/hosts.ini\"\nforks = 7\nuser = \"deploy\"\n\
             private_key = \"keys/id\"\nknown_hosts = \"/etc/kh\"\n\
             roles_path = \"roles:/srv/roles\"\n",
        )
        .unwrap();
        let found = Project::find(root.path()).unwrap();
        assert_eq!(
            found,
            Project {
                file: Some(root.path().join("arpanet.toml")),
                inventory: Some(root.path().join("inv/hosts.ini")),
                forks: Some(7),
                user: Some("deploy".into()),
                private_key: Some(root.path().join("keys/id")),
                known_hosts: Some(PathBuf::from("/etc/kh")),
                roles_path: vec![root.path().join("roles"), PathBuf::from("/srv/roles")],
            }
        );
        // Without `inventory:`, the hint names the file to add it to.
        std::fs::write(root.path().join("arpanet.toml"), "forks = 3\n").unwrap();
        let err = resolve(None, root.path()).unwrap_err().to_string();
        assert!(err.contains("add `inventory: PATH` to `"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_located_bad_input_in_either_format() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("arpanet.yml"),
            "forks: 3\ninventroy: x.ini\n",
        )
        .unwrap();
        let err = Project::find(root.path()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(err.to_string().contains("arpanet.yml:2"), "{err}");

        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("arpanet.toml"),
            "forks = 3\n\ninventroy = \"x.ini\"\n",
        )
        .unwrap();
        let err = Project::find(root.path()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let text = err.to_string();
        assert!(text.contains("arpanet.toml:3:1"), "{text}");
        assert!(text.contains("inventroy"), "{text}");
    }
}
