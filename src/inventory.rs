//! Hosts, groups and their variables from Ansible-style INI or YAML
//! inventories, with `group_vars/` and `host_vars/` beside the file, and the
//! `--limit` pattern language.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::vars::Vars;

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Inline vars and `host_vars/NAME.yml`, host_vars winning.
    pub vars: Vars,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order.
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    /// `[name:vars]` and `group_vars/NAME.yml`.
    pub vars: Vars,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub source: PathBuf,
    /// Every host once, in order of first appearance.
    pub hosts: Vec<Host>,
    /// Every group including `all` and `ungrouped`.
    pub groups: Vec<Group>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Self> {
        let _ = path;
        todo!("Inventory::load")
    }

    /// Host names matching `pattern`, in inventory order.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        let _ = pattern;
        todo!("Inventory::select")
    }

    /// Names of every group `host` belongs to, directly or through children.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        let _ = host;
        todo!("Inventory::groups_of")
    }
}

impl Inventory {
    pub fn to_json(
        &self,
        layers: &crate::vars::Layers,
        host: Option<&str>,
    ) -> Result<serde_json::Value> {
        let _ = (layers, host);
        todo!()
    }
}
