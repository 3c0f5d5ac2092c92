//! Variables and their precedence. Lowest first: built-in defaults,
//! `~/.arpanetrc`, `[all:vars]`, group vars, host vars, play vars, `-e`.
//! Old upper-case names (`CONSUL_EXPECT`) are also visible in lower case.

use std::path::Path;

use crate::error::Result;
use crate::inventory::Inventory;

/// A set of variables; insertion-ordered JSON values.
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// The layers that do not come from the inventory.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub defaults: Vars,
    pub rc: Vars,
    pub extra: Vars,
}

impl Layers {
    /// Built-in defaults, `rc_file` if it exists, and each `-e` argument.
    pub fn load(rc_file: Option<&Path>, extra_args: &[String]) -> Result<Self> {
        let _ = (rc_file, extra_args);
        todo!("vars::Layers::load")
    }
}

/// Everything `host` sees, play vars included.
pub fn for_host(inventory: &Inventory, host: &str, layers: &Layers, play_vars: &Vars) -> Vars {
    let _ = (inventory, host, layers, play_vars);
    todo!("vars::for_host")
}
