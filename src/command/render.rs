//! `arpanet render --host NAME TEMPLATE`: a template file (or a built-in
//! one) rendered with one host's variables, printed. Contacts no host.

use std::path::Path;
use std::sync::Arc;

use crate::cli::RenderArgs;
use crate::config;
use crate::error::{exit, Error, Result};
use crate::inventory::Inventory;
use crate::scope::Scope;
use crate::template::Engine;

pub(crate) fn run(args: RenderArgs) -> Result<i32> {
    let inventory = Arc::new(Inventory::load(&args.inventory)?);
    let scope = Scope::load(
        inventory.clone(),
        crate::cluster::builtin::BUILTINS.defaults,
        config::rc_file().as_deref(),
        &args.extra_vars,
    )?;
    if !inventory.hosts.iter().any(|h| h.name == args.host) {
        return Err(Error::usage(format!(
            "no host `{}` in `{}`",
            args.host,
            args.inventory.display()
        )));
    }
    let engine = Engine::new();
    let vars = scope.host(&engine, &args.host).vars;
    let path = Path::new(&args.template);
    let text = if path.exists() {
        engine.render_file(path, &vars)?
    } else if let Some(source) = crate::cluster::builtin::BUILTINS.template(&args.template) {
        engine.render_named(
            &format!("<builtin>/templates/{}", args.template),
            source,
            &vars,
        )?
    } else {
        return Err(Error::usage(format!(
            "no template file `{}`",
            args.template
        )));
    };
    print!("{text}");
    Ok(exit::OK)
}
