//! `arpanet inventory`: the resolved hosts, groups and variables as JSON
//! (Ansible's `--list`, or `--host NAME`). Reads only; contacts no host.

use std::sync::Arc;

use crate::cli::InventoryArgs;
use crate::config;
use crate::error::{exit, Result};
use crate::inventory::Inventory;
use crate::scope::Scope;

pub(crate) fn run(args: InventoryArgs) -> Result<i32> {
    let path = crate::project::inventory(args.inventory.as_deref())?;
    let inventory = Arc::new(Inventory::load(&path)?);
    let scope = Scope::load(
        inventory.clone(),
        crate::cluster::builtin::BUILTINS.defaults,
        config::rc_file().as_deref(),
        &args.extra_vars,
    )?;
    let mut value = scope.inventory_json(args.host.as_deref())?;
    if let (Some(limit), None) = (&args.limit, &args.host) {
        let keep = inventory.select(limit)?;
        if let Some(serde_json::Value::Object(meta)) = value.get_mut("_meta") {
            if let Some(serde_json::Value::Object(hostvars)) = meta.get_mut("hostvars") {
                hostvars.retain(|h, _| keep.contains(h));
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(exit::OK)
}
