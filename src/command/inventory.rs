//! `arpanet inventory`: the resolved hosts, groups and variables as JSON
//! (Ansible's `--list`, or `--host NAME`), or the hosts a pattern selects
//! (`--list-hosts`). Reads only; contacts no host.

use crate::cli::InventoryArgs;
use crate::error::{exit, Result};

pub(crate) fn run(args: InventoryArgs) -> Result<i32> {
    let (_, inventory, scope) = super::load_scope(&args.inventory, &args.extra_vars)?;
    if args.list_hosts {
        let hosts = inventory.select(args.limit.as_deref().unwrap_or("all"))?;
        for h in hosts {
            println!("{h}");
        }
        return Ok(exit::OK);
    }
    let mut value = match args.list {
        true => scope.ansible_list(),
        false => scope.inventory_json(args.host.as_deref())?,
    };
    if let (Some(limit), None) = (&args.limit, &args.host) {
        let keep: std::collections::HashSet<String> =
            inventory.select_limit(limit)?.into_iter().collect();
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
