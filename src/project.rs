//! Where the inventory is when `-i` is not given, so day-to-day commands
//! need no flags: `ARPANET_INVENTORY`, else a project file (`arpanet.yml`
//! or `.arpanet.yml`) in the current directory or the nearest parent that
//! has one, whose `inventory:` is relative to that file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The environment variable naming the inventory.
pub(crate) const ENV: &str = "ARPANET_INVENTORY";

/// Project file names, looked for in this order in each directory.
pub(crate) const FILES: [&str; 2] = ["arpanet.yml", ".arpanet.yml"];

/// A project file's contents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    /// The inventory, relative to the project file.
    inventory: PathBuf,
}

/// The inventory to use: `given` (`-i`), else [`ENV`], else the project
/// file's, looked for from the current directory up.
/// Several `-i` are all used, in order.
pub(crate) fn inventory(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let env = std::env::var_os(ENV).filter(|v| !v.is_empty());
    let cwd = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
    resolve(None, env.as_deref().map(Path::new), &cwd).map(|p| vec![p])
}

fn resolve(given: Option<&Path>, env: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(path) = given.or(env) {
        return Ok(path.to_path_buf());
    }
    for dir in cwd.ancestors() {
        for name in FILES {
            let file = dir.join(name);
            if file.is_file() {
                let text = crate::error::read_input(&file)?;
                let project: ProjectFile = crate::yaml::load(&file, &text)?;
                return Ok(dir.join(project.inventory));
            }
        }
    }
    Err(Error::usage("no inventory given").with_hint(format!(
        "pass `-i INVENTORY`, set `{ENV}`, or write `inventory: PATH` in an `arpanet.yml` \
         in this directory or a parent"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_env_then_the_nearest_project_file() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let none = resolve(None, None, &deep).unwrap_err();
        assert!(none.to_string().contains("no inventory given"), "{none}");
        assert_eq!(none.exit_code(), crate::error::exit::BAD_INPUT);

        std::fs::write(root.path().join(".arpanet.yml"), "inventory: hosts.ini\n").unwrap();
        assert_eq!(
            resolve(None, None, &deep).unwrap(),
            root.path().join("hosts.ini")
        );
        // The nearer file wins, relative to where it is.
        std::fs::write(
            root.path().join("a/arpanet.yml"),
            "inventory: ../inv/lab.yml\n",
        )
        .unwrap();
        assert_eq!(
            resolve(None, None, &deep).unwrap(),
            root.path().join("a/../inv/lab.yml")
        );
        let env = Path::new("/env/inv.ini");
        assert_eq!(resolve(None, Some(env), &deep).unwrap(), env);
        let flag = Path::new("flag.ini");
        assert_eq!(resolve(Some(flag), Some(env), &deep).unwrap(), flag);
    }

    #[test]
    fn a_bad_project_file_is_located_bad_input() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("arpanet.yml"), "inventroy: x.ini\n").unwrap();
        let err = resolve(None, None, root.path()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(err.to_string().contains("arpanet.yml:1"), "{err}");
    }
}
