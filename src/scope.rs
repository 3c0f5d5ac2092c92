//! One variable scope. Everything that decides what a name means for a host
//! lives here, so the executor, `render`, `inventory` and the cluster
//! commands ask one place instead of merging layers themselves; the
//! inventory only says which groups a host is in and what each layer holds.
//!
//! Precedence, lowest first (a later layer replaces whole values, Ansible's
//! default `hash_behaviour`):
//!
//! 1. built-in defaults (`playbooks/vars/defaults.yml`, embedded), then
//!    the product-provided layer over them (`Layers::provided`: what the
//!    cluster records as deployed, see `cluster::deployed`), which only
//!    replaces what would otherwise come from the defaults, then
//!    role defaults (`defaults/main.yml`; the play's roles in order, then
//!    the task's own role and its dependencies),
//! 2. `~/.arpanetrc`,
//! 3. inline group vars (`[g:vars]`, YAML `vars:`): `all`, then the
//!    host's other groups, parents before children and, at the same
//!    depth, by `ansible_group_priority` then name (Ansible's order),
//! 4. `group_vars/` files, in the same group order: every one of them is
//!    above every inline group var, as in Ansible (so
//!    `group_vars/all.yml` beats `[child:vars]`),
//! 5. host vars (inline, then `host_vars/HOST.yml`),
//! 6. play vars, then role vars (`vars/main.yml`, ordered as role
//!    defaults are),
//! 7. facts: `set_fact` values and `register`ed results, which outlive the
//!    play that made them,
//! 8. task vars (a task's `vars:`, those given to `import_tasks`) and the
//!    loop's `item`,
//! 9. `-e` extra vars, in command-line order,
//! 10. magic vars, which cannot be overridden: `inventory_hostname`,
//!     `inventory_hostname_short`, `inventory_file`, `inventory_dir`,
//!     `group_names` (sorted, without `all`) and `groups` (group → its
//!     hosts, inventory order); during a play, `hostvars` too.
//!
//! Each layer's old upper-case names are aliased when it is read (see
//! [`crate::vars`]); play vars here.
//!
//! Templated values are rendered once per host per play, in rounds, so
//! variables that refer to each other settle whatever their order. A value
//! that cannot render yet (it reads a registered result) waits, absent
//! rather than raw `{{ }}` text, and is tried again before a task only once
//! new facts may let it render.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::inventory::Inventory;
use crate::template::{has_template, Engine};
use crate::vars::{add_aliases, merge, Layers, Vars};

/// Names that no layer can set (layer 10).
pub(crate) const MAGIC: &[&str] = &[
    "inventory_hostname",
    "inventory_hostname_short",
    "inventory_file",
    "inventory_dir",
    "group_names",
    "groups",
    "ansible_check_mode",
    "ansible_diff_mode",
];

/// The variables roles bring: their defaults (just above the built-in
/// defaults) and their vars (just above play vars), as Ansible's
/// precedence places them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RoleLayers {
    pub defaults: Vars,
    pub vars: Vars,
}

impl RoleLayers {
    /// `other`'s values over these.
    pub(crate) fn add(&mut self, other: &RoleLayers) {
        merge(&mut self.defaults, &other.defaults);
        merge(&mut self.vars, &other.vars);
    }
}

/// The variables of every host of one inventory, with the layers that do
/// not come from it.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    inventory: Arc<Inventory>,
    layers: Layers,
    /// Each group's depth below `all` by group index, the order group vars
    /// apply in.
    depths: Vec<usize>,
    /// The `groups` magic var: the same for every host, so built once.
    groups: Value,
    inventory_file: Value,
    inventory_dir: Value,
}

/// One host's variables with templated values rendered where they could be.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// The values every host of the play has alike, one map they all share
    /// (see [`Scope::play`]); empty outside a play.
    common: Arc<Vars>,
    /// The host's other values.
    own: Arc<Vars>,
    /// Templated values that did not render, raw.
    waiting: BTreeMap<String, Value>,
    /// Where the values were rendered for, for an explanation.
    origin: Option<Location>,
    /// The host's count of fact writes when `waiting` was last tried.
    tried_at: usize,
}

impl Resolved {
    /// All the variables, the host's own over the common ones.
    pub(crate) fn vars(&self) -> Vars {
        let mut vars = Vars::with_capacity(self.common.len() + self.own.len());
        vars.extend(self.common.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.extend(self.own.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars
    }

    /// [`Resolved::vars`], without copying what need not be.
    pub(crate) fn into_vars(self) -> Vars {
        if self.common.is_empty() {
            return Arc::unwrap_or_clone(self.own);
        }
        self.vars()
    }

    /// Keep only the values that differ from `common` (the play's values
    /// every host has alike) and share the rest, when every one of them is
    /// here too: a role's view of a host is mostly the play's.
    fn share(&mut self, common: &Arc<Vars>) {
        if common.is_empty()
            || !self.common.is_empty()
            || !common.keys().all(|key| self.own.contains_key(key))
        {
            return;
        }
        let own: Vars = self
            .own
            .iter()
            .filter(|(key, value)| common.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        self.own = Arc::new(own);
        self.common = Arc::clone(common);
    }

    /// The variables whose template did not render.
    pub(crate) fn unrendered(&self) -> impl Iterator<Item = &str> {
        self.waiting.keys().map(String::as_str)
    }

    /// Why `key`'s template does not render with these variables. Worked
    /// out only when asked: explaining a render error (the undefined name,
    /// a near one among hundreds of variables) costs far more than the
    /// render, and most values that wait (for a registered result, a fact)
    /// are never read before they can render.
    pub(crate) fn why(&self, engine: &Engine, key: &str) -> Option<String> {
        self.why_with(engine, key, &self.vars())
    }

    fn why_with(&self, engine: &Engine, key: &str, vars: &Vars) -> Option<String> {
        let raw = self.waiting.get(key)?;
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| Location::new("<variables>", 0, 0));
        engine
            .render_json(raw, vars, &origin)
            .err()
            .map(|e| e.to_string())
    }
}

/// What one host's tasks see during a run: the current play's variables
/// and the facts the host gathered, which outlive plays.
#[derive(Debug, Default)]
pub(crate) struct HostVars {
    play: Resolved,
    /// The play's variables as each role's tasks see them, by role id,
    /// made when a task of the role first runs.
    roles: BTreeMap<usize, Resolved>,
    facts: Vars,
    /// Counts fact writes; waiting play vars are retried only when it moved
    /// since their `tried_at`.
    fact_writes: usize,
    /// The current task's own vars that did not render, with why.
    task_unrendered: Vec<(String, String)>,
}

impl HostVars {
    /// The play's value of `key` (before any fact).
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.play.own.get(key).or_else(|| self.play.common.get(key))
    }

    /// The play's variables, without facts.
    pub(crate) fn play_vars(&self) -> Vars {
        self.play.vars()
    }

    /// Start a play: its variables replace the last play's; facts stay.
    pub(crate) fn enter_play(&mut self, mut play: Resolved) {
        play.tried_at = self.untried();
        self.play = play;
        self.roles.clear();
    }

    /// Whether the variables of the role `id` are here.
    pub(crate) fn has_role(&self, id: usize) -> bool {
        self.roles.contains_key(&id)
    }

    /// The play's variables as the tasks of the role `id` see them.
    pub(crate) fn enter_role(&mut self, id: usize, mut vars: Resolved) {
        vars.tried_at = self.untried();
        vars.share(&self.play.common);
        self.roles.insert(id, vars);
    }

    /// The `tried_at` of values rendered without the facts (a play's, a
    /// role's): where there are facts already (an earlier play's), their
    /// waiting values are tried with them at the first task.
    fn untried(&self) -> usize {
        match self.facts.is_empty() {
            true => self.fact_writes,
            false => usize::MAX,
        }
    }

    /// `set_fact` results.
    pub(crate) fn set_facts(&mut self, facts: Vars) {
        self.facts.extend(facts);
        self.fact_writes += 1;
    }

    /// The current task's vars that did not render (see
    /// [`Scope::with_task_vars`]), for [`Scope::explain`].
    pub(crate) fn set_task_unrendered(&mut self, unrendered: Vec<(String, String)>) {
        self.task_unrendered = unrendered;
    }

    /// A `register`ed result.
    pub(crate) fn register(&mut self, name: &str, value: Value) {
        self.facts.insert(name.to_owned(), value);
        self.fact_writes += 1;
    }
}

impl Scope {
    pub(crate) fn new(inventory: Arc<Inventory>, layers: Layers) -> Self {
        let depths = inventory.group_depths();
        let groups: Vars = inventory
            .groups
            .iter()
            .map(|g| (g.name.clone(), inventory.group_hosts(&g.name).into()))
            .collect();
        let file =
            std::path::absolute(&inventory.source).unwrap_or_else(|_| inventory.source.clone());
        // a directory source is its own `inventory_dir`
        let dir = match file.is_dir() {
            true => file.clone(),
            false => file.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        Scope {
            depths,
            groups: groups.into(),
            inventory_file: file.display().to_string().into(),
            inventory_dir: dir.display().to_string().into(),
            inventory,
            layers,
        }
    }

    /// The built-in defaults, `rc_file` if it exists, and each `-e` argument
    /// over `inventory`.
    pub(crate) fn load(
        inventory: Arc<Inventory>,
        defaults: &str,
        rc_file: Option<&Path>,
        extra_args: &[String],
    ) -> Result<Self> {
        Self::load_with(inventory, defaults, Vars::new(), rc_file, extra_args)
    }

    /// As [`Scope::load`], with the product's `provided` layer over the
    /// defaults.
    pub(crate) fn load_with(
        inventory: Arc<Inventory>,
        defaults: &str,
        provided: Vars,
        rc_file: Option<&Path>,
        extra_args: &[String],
    ) -> Result<Self> {
        let mut layers = Layers::load(defaults, rc_file, extra_args)?;
        layers.provided = provided;
        Ok(Self::new(inventory, layers))
    }

    /// Every name some layer defines for some host, facts aside: the
    /// defaults, the rc file, the inventory's groups and hosts, `-e`, and
    /// the magic variables.
    pub(crate) fn names(&self) -> std::collections::BTreeSet<String> {
        let layers = [
            &self.layers.defaults,
            &self.layers.provided,
            &self.layers.rc,
            &self.layers.extra,
        ];
        let inventory = self
            .inventory
            .groups
            .iter()
            .flat_map(|g| [&g.vars, &g.file_vars])
            .chain(
                self.inventory
                    .hosts
                    .iter()
                    .flat_map(|h| [&h.vars, &h.file_vars]),
            );
        layers
            .into_iter()
            .chain(inventory)
            .flat_map(|vars| vars.keys().cloned())
            .chain(MAGIC.iter().map(|m| (*m).to_owned()))
            .collect()
    }

    pub(crate) fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The `-e` variables.
    pub(crate) fn extra(&self) -> &Vars {
        &self.layers.extra
    }

    /// Layers 1 to 6, 9 and 10 for `host`, templates unrendered; the
    /// `groups` magic var only `with_groups` (it is the same big value for
    /// every host).
    fn layered(&self, host: &str, play_vars: &Vars, roles: &RoleLayers, with_groups: bool) -> Vars {
        let inventory = &*self.inventory;
        let mut out = Vars::new();
        merge(&mut out, &self.layers.defaults);
        merge(&mut out, &self.layers.provided);
        merge(&mut out, &roles.defaults);
        merge(&mut out, &self.layers.rc);
        merge(&mut out, &inventory.host_vars(host, &self.depths));
        if !play_vars.is_empty() {
            let mut play = play_vars.clone();
            add_aliases(&mut play);
            merge(&mut out, &play);
        }
        merge(&mut out, &roles.vars);
        merge(&mut out, &self.layers.extra);

        out.insert("inventory_hostname".into(), host.into());
        let short = host.split('.').next().unwrap_or(host);
        out.insert("inventory_hostname_short".into(), short.into());
        let mut group_names: Vec<String> = inventory
            .groups_of(host)
            .into_iter()
            .filter(|n| n != "all")
            .collect();
        group_names.sort();
        out.insert("group_names".into(), group_names.into());
        if with_groups {
            out.insert("groups".into(), self.groups.clone());
        }
        out.insert("inventory_file".into(), self.inventory_file.clone());
        out.insert("inventory_dir".into(), self.inventory_dir.clone());
        out
    }

    /// The `group_vars/`/`host_vars/` file whose `name` wins for `host`,
    /// when one does (see [`Inventory::var_file`]): where to point at a bad
    /// value. `-e`, `~/.arpanetrc` and the deployed record rank above the
    /// inventory, so a value set there has no file here.
    pub(crate) fn var_file(&self, host: &str, name: &str) -> Option<std::path::PathBuf> {
        let above = [&self.layers.extra, &self.layers.rc];
        if above.iter().any(|layer| layer.contains_key(name)) {
            return None;
        }
        self.inventory.var_file(host, name, &self.depths)
    }

    /// `host`'s variables as the layers wrote them, templates unrendered
    /// and outside any play: what a value is made of, to record it.
    pub(crate) fn host_raw(&self, host: &str) -> Vars {
        self.layered(host, &Vars::new(), &RoleLayers::default(), true)
    }

    /// `host`'s variables outside any play (so without `hostvars`), for
    /// connecting to it, `render` and the cluster commands.
    pub(crate) fn host(&self, engine: &Engine, host: &str) -> Resolved {
        let origin = Location::new("<variables>", 0, 0);
        resolve(
            engine,
            &self.layered(host, &Vars::new(), &RoleLayers::default(), true),
            &origin,
        )
    }

    /// [`Scope::host`] for an `engine` that [`Scope::share_groups`] gave
    /// `groups`: the host's variables hold no copy of it. A run resolves
    /// every host before connecting, and a copy in each would be hosts ×
    /// hosts (500 hosts: about 38 MB).
    pub(crate) fn host_sharing_groups(&self, engine: &Engine, host: &str) -> Resolved {
        let origin = Location::new("<variables>", 0, 0);
        resolve(
            engine,
            &self.layered(host, &Vars::new(), &RoleLayers::default(), false),
            &origin,
        )
    }

    /// Make the `groups` magic var one global of `engine`, for
    /// [`Scope::host_sharing_groups`] and [`Scope::play`].
    pub(crate) fn share_groups(&self, engine: &mut Engine) {
        engine.set_global("groups", &self.groups);
    }

    /// Every inventory host's variables for a play with `play_vars`. When
    /// anything is templated they render twice, the second time with every
    /// host's first-round values visible as `hostvars`, so
    /// `{{ hostvars[h]['arpanet_ip'] }}` works in defaults and inventory
    /// vars. `hostvars` and `groups` stay set in `engine` for the play's
    /// tasks.
    pub(crate) fn play(
        &self,
        engine: &mut Engine,
        play_vars: &Vars,
        roles: &RoleLayers,
        origin: &Location,
    ) -> BTreeMap<String, Resolved> {
        // `groups` is the same for every host: one engine global rather
        // than a copy in each host's variables (hosts × hosts).
        self.share_groups(engine);
        // Each round makes every host's variables from the layers again
        // rather than keeping them all: with hundreds of hosts, every copy
        // held at once is megabytes that stay with the process.
        let mut templated = false;
        let mut resolved = BTreeMap::new();
        for round in 0..2 {
            // The last round's values are seen through `hostvars` alone.
            resolved.clear();
            for host in &self.inventory.hosts {
                let raw = self.layered(&host.name, play_vars, roles, false);
                templated |= round == 0 && raw.values().any(has_template);
                resolved.insert(host.name.clone(), resolve(engine, &raw, origin));
            }
            share_common(&mut resolved);
            engine.set_hostvars(
                resolved
                    .iter()
                    .map(|(name, r)| (name.clone(), Arc::clone(&r.common), Arc::clone(&r.own))),
            );
            if !templated {
                break;
            }
        }
        resolved
    }

    /// `host`'s variables in a play with `play_vars` for the tasks of a
    /// role whose layers (the play's roles', then its own) are `roles`:
    /// rendered once, with the play's `hostvars`.
    pub(crate) fn in_role(
        &self,
        engine: &Engine,
        host: &str,
        play_vars: &Vars,
        roles: &RoleLayers,
        origin: &Location,
    ) -> Resolved {
        resolve(engine, &self.layered(host, play_vars, roles, false), origin)
    }

    /// What a task sees on a host: the play's variables (as the tasks of
    /// the role `role` see them, once [`HostVars::enter_role`] gave them),
    /// then the host's facts below `-e` and the magic vars. Play vars that
    /// waited for a fact are tried again first, if facts changed since
    /// their last try.
    pub(crate) fn for_task(
        &self,
        engine: &Engine,
        host: &mut HostVars,
        role: Option<usize>,
        origin: &Location,
    ) -> Vars {
        let writes = host.fact_writes;
        let resolved = match role.and_then(|id| host.roles.get_mut(&id)) {
            Some(resolved) => resolved,
            None => &mut host.play,
        };
        if !resolved.waiting.is_empty() && resolved.tried_at != writes {
            let mut view = self.with_facts(resolved, &host.facts);
            let raw: Vars = resolved
                .waiting
                .iter()
                .map(|(k, raw)| (k.clone(), raw.clone()))
                .collect();
            let still = render_into(engine, &raw, &mut view, origin);
            for key in raw.keys() {
                if !still.contains(key) {
                    resolved.waiting.remove(key);
                    if let Some(value) = view.remove(key) {
                        Arc::make_mut(&mut resolved.own).insert(key.clone(), value);
                    }
                }
            }
            resolved.tried_at = writes;
        }
        self.with_facts(resolved, &host.facts)
    }

    /// A hint for a failure on `host` on an undefined variable that is in
    /// fact defined, as a task's or play's variable whose template would
    /// not render: why it would not, with the host's facts as the task saw
    /// them.
    pub(crate) fn explain(
        &self,
        engine: &Engine,
        host: &HostVars,
        message: &str,
    ) -> Option<String> {
        let undefined = |key: &str| message.contains(&format!("undefined variable `{key}`"));
        if let Some((key, why)) = host.task_unrendered.iter().find(|(k, _)| undefined(k)) {
            let deeper = self
                .explain_play(engine, host, why)
                .map(|hint| format!("; {hint}"))
                .unwrap_or_default();
            return Some(format!(
                "`{key}` is set for this task, but its value did not render: {why}{deeper}"
            ));
        }
        self.explain_play(engine, host, message)
    }

    /// [`Scope::explain`] for the play's variables.
    fn explain_play(&self, engine: &Engine, host: &HostVars, message: &str) -> Option<String> {
        let key = host
            .play
            .unrendered()
            .find(|key| message.contains(&format!("undefined variable `{key}`")))?;
        let view = self.with_facts(&host.play, &host.facts);
        let why = host.play.why_with(engine, key, &view)?;
        Some(format!(
            "`{key}` is defined, but its value did not render: {why}"
        ))
    }

    fn with_facts(&self, resolved: &Resolved, facts: &Vars) -> Vars {
        let mut vars = resolved.vars();
        for (key, value) in facts {
            if !self.is_fixed(key) {
                vars.insert(key.clone(), value.clone());
            }
        }
        vars
    }

    /// Whether `key` is set above facts and task vars: by `-e`, or magic.
    fn is_fixed(&self, key: &str) -> bool {
        self.layers.extra.contains_key(key) || MAGIC.contains(&key)
    }

    /// Show a fact a task just made in the task's own `vars` (for `until`,
    /// `changed_when` and `failed_when`), at its level: below `-e`.
    pub(crate) fn add_fact(&self, vars: &mut Vars, name: &str, value: Value) {
        if !self.is_fixed(name) {
            vars.insert(name.to_owned(), value);
        }
    }

    /// `vars` with a task's own `vars:` on top, each rendered against
    /// `vars`; `-e` and the magic vars keep their values. As in Ansible,
    /// where they are templated when read, one that does not render (it
    /// reads a result a later task registers, say) fails only a task that
    /// reads it: it is left undefined, and returned with why, for
    /// [`Scope::explain`]. Without task vars, `vars` itself: a copy of
    /// every variable per host and task, held while the task runs, was a
    /// fleet run's biggest memory.
    pub(crate) fn with_task_vars<'v>(
        &self,
        engine: &Engine,
        vars: &'v Vars,
        task_vars: &Vars,
        origin: &Location,
    ) -> (std::borrow::Cow<'v, Vars>, Vec<(String, String)>) {
        if task_vars.keys().all(|key| self.is_fixed(key)) {
            return (std::borrow::Cow::Borrowed(vars), Vec::new());
        }
        let mut out = vars.clone();
        let mut unrendered = Vec::new();
        for (key, value) in task_vars {
            if self.is_fixed(key) {
                continue;
            }
            match engine.render_json(value, vars, origin) {
                Ok(value) => {
                    out.insert(key.clone(), value);
                }
                Err(err) => {
                    out.remove(key);
                    unrendered.push((key.clone(), err.to_string()));
                }
            }
        }
        (std::borrow::Cow::Owned(out), unrendered)
    }

    /// `ansible-inventory --list` without `host` (each group's hosts and
    /// children, and every host's variables under `_meta.hostvars`, leaving
    /// out the bulky `groups` magic var), or one host's variables
    /// (`ansible-inventory --host`). Templates are shown as written.
    pub(crate) fn inventory_json(&self, host: Option<&str>) -> Result<Value> {
        let inventory = &*self.inventory;
        let no_play_vars = Vars::new();
        if let Some(host) = host {
            if inventory.host(host).is_none() {
                let names = inventory.hosts.iter().map(|h| h.name.as_str());
                return Err(Error::from(crate::error::UsageKind::UnknownHost {
                    host: host.into(),
                    inventory: inventory.source.display().to_string(),
                    suggestion: crate::suggest::closest(host, names).map(str::to_owned),
                }));
            }
            return Ok(self
                .layered(host, &no_play_vars, &RoleLayers::default(), true)
                .into());
        }
        let mut hostvars = Vars::new();
        for h in &inventory.hosts {
            let vars = self.layered(&h.name, &no_play_vars, &RoleLayers::default(), false);
            hostvars.insert(h.name.clone(), vars.into());
        }
        let mut out = Vars::new();
        out.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
        out.extend(self.group_listing());
        Ok(out.into())
    }

    /// Exactly what `ansible-inventory --list` prints: the groups, and each
    /// host's inventory variables (group and host vars in Ansible's order;
    /// no defaults, rc file, `-e` or magic variables; hosts without any are
    /// left out, as Ansible leaves them out).
    pub(crate) fn ansible_list(&self) -> Value {
        let inventory = &*self.inventory;
        let hostvars: Vars = inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), inventory.host_vars(&h.name, &self.depths)))
            .filter(|(_, vars)| !vars.is_empty())
            .map(|(name, vars)| (name, vars.into()))
            .collect();
        let mut out = Vars::new();
        out.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
        out.extend(self.group_listing());
        out.into()
    }

    /// Each group's own hosts and children, as `--list` shows them: groups
    /// with neither are left out, and so are the hosts listed under `all`
    /// itself (Ansible shows them through `ungrouped` or their groups).
    fn group_listing(&self) -> Vars {
        let mut out = Vars::new();
        for g in &self.inventory.groups {
            let mut entry = Vars::new();
            if !g.hosts.is_empty() && g.name != "all" {
                entry.insert("hosts".into(), g.hosts.clone().into());
            }
            if !g.children.is_empty() {
                entry.insert("children".into(), g.children.clone().into());
            }
            if !entry.is_empty() {
                out.insert(g.name.clone(), entry.into());
            }
        }
        out
    }
}

/// `raw` with its templated values rendered where they can be.
fn resolve(engine: &Engine, raw: &Vars, origin: &Location) -> Resolved {
    let mut vars = raw.clone();
    let waiting = render_into(engine, raw, &mut vars, origin)
        .into_iter()
        .map(|key| {
            let value = raw[key.as_str()].clone();
            (key, value)
        })
        .collect();
    Resolved {
        common: Arc::default(),
        own: Arc::new(vars),
        waiting,
        origin: Some(origin.clone()),
        tried_at: 0,
    }
}

/// Move the values that every host has alike (most of them: the built-in
/// defaults, the play's vars) into one map the hosts share, so that a
/// fleet's variables are not hosts × copies of the same values. A value
/// that waits to render on some host is not alike: it is missing there.
fn share_common(resolved: &mut BTreeMap<String, Resolved>) {
    let mut hosts = resolved.values();
    let (Some(first), Some(_)) = (hosts.next(), hosts.next()) else {
        return;
    };
    // Fresh from `resolve`: each host's values are all its own.
    let common: Vars = first
        .own
        .iter()
        .filter(|(key, value)| resolved.values().all(|r| r.own.get(*key) == Some(*value)))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let common = Arc::new(common);
    for r in resolved.values_mut() {
        r.share(&common);
    }
}

/// Render the templated values of `raw` into `vars`, in rounds, so
/// variables that refer to each other settle whatever their order. A value
/// is only ever rendered from its raw text, and only with values already
/// rendered: until it renders, a templated variable is absent from `vars`,
/// never its raw `{{ }}` text. Returns the keys that could not be rendered
/// (they may need a registered result); [`Resolved::why`] says why.
fn render_into(
    engine: &Engine,
    raw: &Vars,
    vars: &mut Vars,
    origin: &Location,
) -> BTreeSet<String> {
    let templated: Vec<(&String, &Value)> = raw.iter().filter(|(_, v)| has_template(v)).collect();
    if templated.is_empty() {
        return BTreeSet::new();
    }
    for (key, _) in &templated {
        vars.remove(key.as_str());
    }
    // Shared, so that a render converts only the variables it reads; no
    // render holds it between two of them, so inserting never copies it.
    let mut shared = Arc::new(std::mem::take(vars));
    // Each value once, after the values it reads: what the rounds below
    // settle on, for a fraction of the renders (they render each value two
    // or three times, and a fleet's variables render three times a run).
    if let Some(order) = render_order(engine, &templated) {
        let mut waiting = BTreeSet::new();
        for at in order {
            let (key, value) = templated[at];
            match engine.try_render_json(value, &shared, origin) {
                Some(value) => {
                    Arc::make_mut(&mut shared).insert(key.clone(), value);
                }
                None => {
                    waiting.insert(key.clone());
                }
            }
        }
        *vars = Arc::unwrap_or_clone(shared);
        return waiting;
    }
    // Rounds until nothing changes: a value rendered early with a
    // `default()` fallback is rendered again once what it reads exists.
    // Why a value fails is not worked out here (see `Resolved::why`).
    let mut failed = Vec::new();
    for _ in 0..10 {
        failed.clear();
        let mut changed = false;
        for (key, value) in &templated {
            match engine.try_render_json(value, &shared, origin) {
                Some(value) => {
                    if shared.get(key.as_str()) != Some(&value) {
                        Arc::make_mut(&mut shared).insert((*key).clone(), value);
                        changed = true;
                    }
                }
                None => failed.push((*key, *value)),
            }
        }
        if !changed {
            break;
        }
    }
    let mut waiting = BTreeSet::new();
    for (key, value) in failed {
        Arc::make_mut(&mut shared).remove(key.as_str());
        match engine.try_render_json(value, &shared, origin) {
            Some(value) => {
                Arc::make_mut(&mut shared).insert(key.clone(), value);
            }
            None => {
                waiting.insert(key.clone());
            }
        }
    }
    *vars = Arc::unwrap_or_clone(shared);
    waiting
}

/// An order of `templated` (by index) in which every value comes after the
/// templated values it reads, or `None` when there is none to be sure of:
/// values that read each other (or themselves), a value that does not
/// compile, or one that reads variables by a name it computes (`vars`).
fn render_order(engine: &Engine, templated: &[(&String, &Value)]) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = templated
        .iter()
        .enumerate()
        .map(|(at, (key, _))| (key.as_str(), at))
        .collect();
    let mut reads = Vec::with_capacity(templated.len());
    for (_, value) in templated {
        let lists = engine.names_read(value)?;
        let names = || lists.iter().flat_map(|list| list.iter());
        if names().any(|name| name == "vars") {
            return None;
        }
        let mut after: Vec<usize> = names()
            .filter_map(|n| index.get(n.as_str()).copied())
            .collect();
        after.sort_unstable();
        after.dedup();
        reads.push(after);
    }
    // Depth first; a value met again while its own reads are being placed
    // is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Placing,
        Placed,
    }
    let mut marks = vec![Mark::New; templated.len()];
    let mut order = Vec::with_capacity(templated.len());
    for start in 0..templated.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // (value, how many of its reads are placed)
        let mut stack = vec![(start, 0)];
        marks[start] = Mark::Placing;
        while let Some((at, next)) = stack.last_mut() {
            let at = *at;
            match reads[at].get(*next) {
                Some(&read) => {
                    *next += 1;
                    match marks[read] {
                        Mark::Placed => {}
                        Mark::Placing => return None,
                        Mark::New => {
                            marks[read] = Mark::Placing;
                            stack.push((read, 0));
                        }
                    }
                }
                None => {
                    marks[at] = Mark::Placed;
                    order.push(at);
                    stack.pop();
                }
            }
        }
    }
    Some(order)
}

/// Whether a condition mentions the loop variable `name` (`item`), so it is
/// judged per loop item.
pub(crate) fn mentions(condition: &[String], name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    condition.iter().any(|c| {
        c.match_indices(name)
            .any(|(i, _)| !c[..i].ends_with(word) && !c[i + name.len()..].starts_with(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::{parse_defaults, parse_extra, parse_rc};
    use serde_json::json;
    use std::path::PathBuf;

    fn obj(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    fn origin() -> Location {
        Location::new("site.yml", 1, 1)
    }

    /// A scope over an inventory written as `text`, with no other layers.
    fn scope_of(text: &str) -> Scope {
        let inventory = Inventory::parse(Path::new("hosts"), text).unwrap();
        Scope::new(Arc::new(inventory), Layers::default())
    }

    fn layered(inventory: Inventory, layers: Layers, host: &str, play: &Vars) -> Vars {
        Scope::new(Arc::new(inventory), layers).layered(host, play, &RoleLayers::default(), true)
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inventory")
            .join(name)
    }

    /// Every layer a variable can come from, lowest first.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Layer {
        Defaults,
        Provided,
        /// The defaults of the play's roles (another role's, for this task).
        PlayRoleDefaults,
        /// The defaults of the task's own role.
        RoleDefaults,
        Rc,
        AllVars,
        AllFile,
        ParentVars,
        ParentFile,
        ChildVars,
        ChildFile,
        HostVars,
        HostFile,
        Play,
        PlayRoleVars,
        RoleVars,
        Fact,
        Registered,
        Task,
        Extra,
    }

    /// The precedence order: each row sets `x` (and tries to set the magic
    /// `inventory_hostname`) to its value; the highest row present wins.
    /// `Fact` and `Registered` are one layer: the later write wins, and the
    /// test writes the `set_fact` first.
    const PRECEDENCE: &[(Layer, &str)] = &[
        (Layer::Defaults, "defaults"),
        (Layer::Provided, "recorded"),
        (Layer::PlayRoleDefaults, "another role's defaults/main.yml"),
        (Layer::RoleDefaults, "its role's defaults/main.yml"),
        (Layer::Rc, "rc"),
        (Layer::AllVars, "all:vars"),
        (Layer::ParentVars, "parent:vars"),
        (Layer::ChildVars, "child:vars"),
        (Layer::AllFile, "group_vars/all"),
        (Layer::ParentFile, "group_vars/parent"),
        (Layer::ChildFile, "group_vars/child"),
        (Layer::HostVars, "host line"),
        (Layer::HostFile, "host_vars/h1"),
        (Layer::Play, "play"),
        (Layer::PlayRoleVars, "another role's vars/main.yml"),
        (Layer::RoleVars, "its role's vars/main.yml"),
        (Layer::Fact, "set_fact"),
        (Layer::Registered, "register"),
        (Layer::Task, "task"),
        (Layer::Extra, "-e"),
    ];

    /// What a task on `h1` sees as `x` with only `rows` set, built through
    /// the same calls the executor makes, plus its `inventory_hostname`.
    fn seen(rows: &[(Layer, &str)]) -> (Option<Value>, Value) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let value = |layer: Layer| rows.iter().find(|(l, _)| *l == layer).map(|(_, v)| *v);
        let ini = |layer| {
            value(layer)
                .map(|v| format!("x=\"{v}\"\ninventory_hostname=\"{v}\"\n"))
                .unwrap_or_default()
        };
        let host_line = value(Layer::HostVars)
            .map(|v| format!(" x=\"{v}\" inventory_hostname=\"{v}\""))
            .unwrap_or_default();
        std::fs::write(
            d.join("hosts"),
            format!(
                "[parent:children]\nchild\n[child]\nh1{host_line}\n[all:vars]\n{}[parent:vars]\n{}[child:vars]\n{}",
                ini(Layer::AllVars),
                ini(Layer::ParentVars),
                ini(Layer::ChildVars),
            ),
        )
        .unwrap();
        for (layer, file) in [
            (Layer::AllFile, "group_vars/all.yml"),
            (Layer::ParentFile, "group_vars/parent.yml"),
            (Layer::ChildFile, "group_vars/child.yml"),
            (Layer::HostFile, "host_vars/h1.yml"),
        ] {
            if let Some(v) = value(layer) {
                let path = d.join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, format!("x: {v}\ninventory_hostname: {v}\n")).unwrap();
            }
        }
        let rc = d.join("rc");
        if let Some(v) = value(Layer::Rc) {
            std::fs::write(&rc, format!("x=\"{v}\"\ninventory_hostname=\"{v}\"\n")).unwrap();
        }
        let extra: Vec<String> = value(Layer::Extra)
            .map(|v| format!("x=\"{v}\" inventory_hostname=\"{v}\""))
            .into_iter()
            .collect();
        let mut layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            Some(&rc),
            &extra,
        )
        .unwrap();
        let both = |v: &str| obj(json!({"x": v, "inventory_hostname": v}));
        if let Some(v) = value(Layer::Defaults) {
            layers.defaults.extend(both(v));
        }
        if let Some(v) = value(Layer::Provided) {
            layers.provided.extend(both(v));
        }
        let inventory = Arc::new(Inventory::load(&d.join("hosts")).unwrap());
        let scope = Scope::new(inventory, layers);

        let mut engine = Engine::new();
        let play = value(Layer::Play).map(both).unwrap_or_default();
        let mut host = HostVars::default();
        let role_layers = |defaults, vars| RoleLayers {
            defaults: value(defaults).map(both).unwrap_or_default(),
            vars: value(vars).map(both).unwrap_or_default(),
        };
        let play_roles = role_layers(Layer::PlayRoleDefaults, Layer::PlayRoleVars);
        let own = role_layers(Layer::RoleDefaults, Layer::RoleVars);
        let mut resolved = scope.play(&mut engine, &play, &play_roles, &origin());
        host.enter_play(resolved.remove("h1").unwrap());
        // As the executor does for a task of a role.
        let mut layers = play_roles.clone();
        layers.add(&own);
        host.enter_role(7, scope.in_role(&engine, "h1", &play, &layers, &origin()));
        if let Some(v) = value(Layer::Fact) {
            host.set_facts(both(v));
        }
        if let Some(v) = value(Layer::Registered) {
            host.register("x", v.into());
            host.register("inventory_hostname", v.into());
        }
        let mut vars = scope.for_task(&engine, &mut host, Some(7), &origin());
        if let Some(v) = value(Layer::Task) {
            vars = scope
                .with_task_vars(&engine, &vars, &both(v), &origin())
                .0
                .into_owned();
        }
        (vars.get("x").cloned(), vars["inventory_hostname"].clone())
    }

    #[test]
    fn the_precedence_table() {
        let check = |rows: Vec<(Layer, &str)>, why: &str| {
            let expected = rows.last().map(|(_, v)| json!(v));
            let (x, hostname) = seen(&rows);
            assert_eq!(x, expected, "{why}: {rows:?}");
            assert_eq!(hostname, json!("h1"), "magic vars win over {rows:?}");
        };
        // adding layers from the bottom: each new one wins
        for n in 0..=PRECEDENCE.len() {
            check(PRECEDENCE[..n].to_vec(), "adding layers");
        }
        for (i, row) in PRECEDENCE.iter().enumerate() {
            // alone, a layer is what a task sees
            check(vec![*row], "one layer alone");
            // removing one layer from all of them: the highest left wins
            let mut rest = PRECEDENCE.to_vec();
            rest.remove(i);
            check(rest, "one layer removed");
            // removing every layer above it
            check(PRECEDENCE[..=i].to_vec(), "layers above removed");
        }
        // a child group beats its parent whatever their names' order
        check(
            vec![(Layer::ChildVars, "c"), (Layer::ParentVars, "p")]
                .into_iter()
                .rev()
                .collect(),
            "parent below child",
        );
        // every group_vars/ file is above every inline group var (Ansible)
        check(
            vec![(Layer::ChildVars, "c"), (Layer::AllFile, "a")],
            "inline below files",
        );
    }

    #[test]
    fn a_waiting_play_var_is_tried_again_only_once_facts_change() {
        let scope = scope_of("h1\n");
        let mut engine = Engine::new();
        let play = obj(json!({"greeting": "hello {{ first.stdout }}"}));
        let mut resolved = scope.play(&mut engine, &play, &RoleLayers::default(), &origin());
        let mut host = HostVars::default();
        host.enter_play(resolved.remove("h1").unwrap());
        let vars = scope.for_task(&engine, &mut host, None, &origin());
        assert!(!vars.contains_key("greeting"));
        let hint = scope.explain(
            &engine,
            &host,
            "undefined variable `greeting` in `{{ greeting }}`",
        );
        assert!(
            hint.is_some_and(|h| h.contains("undefined variable `first`")),
            "{host:?}"
        );
        host.register("first", json!({"stdout": "world"}));
        let vars = scope.for_task(&engine, &mut host, None, &origin());
        assert_eq!(vars["greeting"], json!("hello world"));
        assert_eq!(
            scope.explain(&engine, &host, "undefined variable `greeting`"),
            None
        );
        // once rendered, a play var keeps its value for the play
        host.register("first", json!({"stdout": "again"}));
        let vars = scope.for_task(&engine, &mut host, None, &origin());
        assert_eq!(vars["greeting"], json!("hello world"));
        // the next play's values are rendered without the facts: one that
        // waits for a fact an earlier play set renders at its first task
        let play = obj(json!({"farewell": "bye {{ first.stdout }}"}));
        let mut resolved = scope.play(&mut engine, &play, &RoleLayers::default(), &origin());
        host.enter_play(resolved.remove("h1").unwrap());
        let vars = scope.for_task(&engine, &mut host, None, &origin());
        assert_eq!(vars["farewell"], json!("bye again"));
    }

    #[test]
    fn values_every_host_has_alike_are_shared_and_hostvars_shows_them_all() {
        let scope =
            scope_of("a ip=10.0.0.1 x=1\nb ip=10.0.0.2 x=2\nc ip=10.0.0.3 x=1 only_c=yes\n");
        let mut engine = Engine::new();
        let play = obj(json!({"site": "{{ 'lab' | upper }}"}));
        let resolved = scope.play(&mut engine, &play, &RoleLayers::default(), &origin());
        let (a, b, c) = (&resolved["a"], &resolved["b"], &resolved["c"]);
        assert!(Arc::ptr_eq(&a.common, &b.common) && Arc::ptr_eq(&a.common, &c.common));
        assert_eq!(a.common["site"], json!("LAB"));
        assert_eq!(a.common["inventory_file"], b.vars()["inventory_file"]);
        assert!(!a.common.contains_key("only_c"));
        let own: Vec<&str> = a.own.keys().map(String::as_str).collect();
        assert_eq!(
            own,
            ["ip", "x", "inventory_hostname", "inventory_hostname_short"]
        );
        // Each host sees its own values over the common ones, the same set
        // of keys as before they were shared.
        assert_eq!(a.vars()["x"], json!(1));
        assert_eq!(b.vars()["x"], json!(2));
        assert_eq!(c.vars()["only_c"], json!("yes"));
        assert!(!a.vars().contains_key("only_c"));
        let unshared = resolve(
            &engine,
            &scope.layered("b", &play, &RoleLayers::default(), false),
            &origin(),
        );
        let mut keys: Vec<String> = b.vars().keys().cloned().collect();
        let mut expected: Vec<String> = unshared.vars().keys().cloned().collect();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
        let render = |source: &str| engine.render_str(source, &Vars::new(), &origin()).unwrap();
        assert_eq!(
            render("{{ hostvars['a']['x'] }} {{ hostvars['b']['x'] }} {{ hostvars.c.site }}"),
            "1 2 LAB"
        );
        assert_eq!(render("{{ hostvars | list | join(',') }}"), "a,b,c");
        let listed = render("{{ hostvars['b'] | list | sort | join(',') }}");
        assert_eq!(listed, expected.join(","));
        assert!(render("{{ hostvars['c'] | tojson }}").contains("\"only_c\":\"yes\""));
        assert!(engine
            .render_str("{{ hostvars['a']['only_c'] }}", &Vars::new(), &origin())
            .is_err());
    }

    #[test]
    fn a_roles_view_shares_the_plays_common_values_unless_one_is_missing_there() {
        let scope = scope_of("a ip=10.0.0.1\nb ip=10.0.0.2\n");
        let mut engine = Engine::new();
        let play = obj(json!({"site": "lab", "port": 80}));
        let mut resolved = scope.play(&mut engine, &play, &RoleLayers::default(), &origin());
        let mut host = HostVars::default();
        host.enter_play(resolved.remove("a").unwrap());
        let enter = |host: &mut HostVars, id: usize, role: Value| {
            let layers = RoleLayers {
                defaults: Vars::new(),
                vars: obj(role),
            };
            let unshared = scope.in_role(&engine, "a", &play, &layers, &origin());
            host.enter_role(id, unshared.clone());
            unshared
        };
        // A role that adds a value and overrides one of the play's.
        let unshared = enter(&mut host, 1, json!({"port": 8080, "role_only": true}));
        let role = &host.roles[&1];
        assert!(Arc::ptr_eq(&role.common, &host.play.common));
        let own: Vec<&str> = role.own.keys().map(String::as_str).collect();
        assert_eq!(
            own,
            [
                "ip",
                "port",
                "role_only",
                "inventory_hostname",
                "inventory_hostname_short"
            ]
        );
        let mut seen: Vec<(String, Value)> = role.vars().into_iter().collect();
        let mut expected: Vec<(String, Value)> = unshared.vars().into_iter().collect();
        seen.sort_by(|x, y| x.0.cmp(&y.0));
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(seen, expected);
        let vars = scope.for_task(&engine, &mut host, Some(1), &origin());
        assert_eq!(
            (&vars["port"], &vars["site"]),
            (&json!(8080), &json!("lab"))
        );
        // A role whose value of `site` waits for a registered result: the
        // play's `site` must not show through, so nothing is shared.
        enter(&mut host, 2, json!({"site": "{{ later.stdout }}"}));
        assert!(host.roles[&2].common.is_empty());
        let vars = scope.for_task(&engine, &mut host, Some(2), &origin());
        assert!(!vars.contains_key("site"));
        host.register("later", json!({"stdout": "now"}));
        let vars = scope.for_task(&engine, &mut host, Some(2), &origin());
        assert_eq!(vars["site"], json!("now"));
    }

    #[test]
    fn hostvars_show_every_hosts_rendered_play_vars() {
        let scope = scope_of("a ip=10.0.0.1\nb ip=10.0.0.2 peer=\"{{ hostvars['a']['ip'] }}\"\n");
        let mut engine = Engine::new();
        let resolved = scope.play(&mut engine, &Vars::new(), &RoleLayers::default(), &origin());
        assert_eq!(resolved["b"].vars()["peer"], json!("10.0.0.1"));
        let seen = engine
            .render_str("{{ hostvars['b']['peer'] }}", &Vars::new(), &origin())
            .unwrap();
        assert_eq!(seen, "10.0.0.1");
    }

    #[test]
    fn a_later_layers_old_name_beats_an_earlier_new_name() {
        let inv = Inventory::parse(
            Path::new("hosts"),
            "[g]\nh consul_port=1\n[g:vars]\nCONSUL_PORT=2\nconsul_data=/g\n",
        )
        .unwrap();
        let layers = Layers {
            defaults: parse_defaults(crate::cluster::builtin::BUILTINS.defaults).unwrap(),
            rc: parse_rc(Path::new("rc"), "CONSUL_DATA=/rc\nCADVISOR_PORT=1\n").unwrap(),
            extra: parse_extra("CADVISOR_PORT=9").unwrap(),
            ..Layers::default()
        };
        let v = layered(inv, layers, "h", &Vars::new());
        assert_eq!(v["consul_port"], json!(1)); // host beats group's CONSUL_PORT
        assert_eq!(v["consul_data"], json!("/g")); // group beats rc's CONSUL_DATA
        assert_eq!(v["cadvisor_port"], json!("9")); // extra's CADVISOR_PORT beats all
    }

    /// One variable per layer boundary: `layerN` is set by layer N and every
    /// layer above it, so the resolved value names the highest layer.
    #[test]
    fn precedence_across_all_layers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keys = [
            "rc",
            "all_inline",
            "parent_inline",
            "child_inline",
            "all_file",
            "parent_file",
            "child_file",
            "host_inline",
            "host_file",
            "play",
            "extra",
        ];
        // layer i sets every key from index i on to its own name
        let set = |from: usize, sep: &str| -> String {
            keys[from..]
                .iter()
                .map(|k| format!("{k}{sep}{}\n", keys[from]))
                .collect()
        };
        std::fs::write(
            d.join("hosts"),
            format!(
                "[parent:children]\nchild\n[child]\nh1 {}\n[all:vars]\n{}[parent:vars]\n{}[child:vars]\n{}",
                keys[7..].iter().map(|k| format!("{k}=host_inline")).collect::<Vec<_>>().join(" "),
                set(1, "="),
                set(2, "="),
                set(3, "="),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("group_vars")).unwrap();
        std::fs::create_dir_all(d.join("host_vars")).unwrap();
        std::fs::write(d.join("group_vars/all.yml"), set(4, ": ")).unwrap();
        std::fs::write(d.join("group_vars/parent.yml"), set(5, ": ")).unwrap();
        std::fs::write(d.join("group_vars/child.yml"), set(6, ": ")).unwrap();
        std::fs::write(d.join("host_vars/h1.yml"), set(8, ": ")).unwrap();
        std::fs::write(d.join("rc"), set(0, "=")).unwrap();
        let inv = Inventory::load(&d.join("hosts")).unwrap();
        let extra = keys[10..]
            .iter()
            .map(|k| format!("{k}=extra"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            Some(&d.join("rc")),
            &[extra],
        )
        .unwrap();
        layers.defaults.insert("default".into(), json!("default"));
        layers.defaults.insert("rc".into(), json!("default"));
        let play = obj(json!({"play": "play", "extra": "play"}));
        let v = layered(inv, layers, "h1", &play);
        assert_eq!(v["default"], json!("default"));
        for k in keys {
            assert_eq!(v[k], json!(k), "layer `{k}` should set `{k}`");
        }
        assert_eq!(v["docker_port"], json!(2375));
    }

    #[test]
    fn sibling_groups_apply_by_depth_then_name() {
        let inv = Inventory::parse(
            Path::new("hosts"),
            concat!(
                "[top:children]\nzeta\n",
                "[zeta]\nh\n[alpha]\nh\n[beta]\nh\n",
                "[zeta:vars]\nx=zeta\ny=zeta\n",
                "[alpha:vars]\nx=alpha\ny=alpha\nz=alpha\n",
                "[beta:vars]\nx=beta\n",
                "[top:vars]\nz=top\n",
            ),
        )
        .unwrap();
        let v = layered(inv, Layers::default(), "h", &Vars::new());
        // alpha, beta, top at depth 1 (by name), then zeta at depth 2
        assert_eq!(v["x"], json!("zeta"));
        assert_eq!(v["y"], json!("zeta"));
        assert_eq!(v["z"], json!("top"));
    }

    #[test]
    fn magic_vars() {
        let inv = Inventory::parse(
            Path::new("hosts.yml"),
            "all:\n  hosts:\n    solo.example.com:\n  children:\n    web:\n      hosts: {w1.example.com: }\n",
        )
        .unwrap();
        let layers = Layers {
            extra: obj(json!({"inventory_hostname": "spoofed"})),
            ..Layers::default()
        };
        let scope = Scope::new(Arc::new(inv), layers);
        let v = scope.layered("w1.example.com", &Vars::new(), &RoleLayers::default(), true);
        assert_eq!(v["inventory_hostname"], json!("w1.example.com"));
        assert_eq!(v["inventory_hostname_short"], json!("w1"));
        assert_eq!(v["group_names"], json!(["web"]));
        assert_eq!(
            v["groups"],
            json!({"all": ["solo.example.com", "w1.example.com"], "ungrouped": ["solo.example.com"], "web": ["w1.example.com"]})
        );
        let v = scope.layered(
            "solo.example.com",
            &Vars::new(),
            &RoleLayers::default(),
            true,
        );
        assert_eq!(v["group_names"], json!(["ungrouped"]));
    }

    #[test]
    fn json_view_has_the_ansible_inventory_shape() {
        let inv = Inventory::load(&fixture("hosts.ini")).unwrap();
        let layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            None,
            &["tier=cli".to_owned()],
        )
        .unwrap();
        let scope = Scope::new(Arc::new(inv), layers);
        let list = scope.inventory_json(None).unwrap();
        let keys: Vec<&String> = list.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["_meta", "all", "ungrouped", "cluster", "servers", "clients"]
        );
        assert_eq!(list["all"], json!({"children": ["ungrouped", "cluster"]}));
        assert_eq!(list["ungrouped"], json!({"hosts": ["bastion"]}));
        assert_eq!(list["cluster"], json!({"children": ["servers", "clients"]}));
        assert_eq!(
            list["servers"],
            json!({"hosts": ["node1", "node2", "node3"]})
        );
        let node1 = &list["_meta"]["hostvars"]["node1"];
        assert_eq!(node1["arpanet_ip"], json!("10.0.0.101"));
        assert_eq!(node1["consul_expect"], json!(5));
        assert_eq!(node1["docker_port"], json!(2375));
        assert_eq!(node1["tier"], json!("cli"));
        assert_eq!(node1["group_names"], json!(["cluster", "servers"]));
        assert!(node1.get("groups").is_none());
        assert_eq!(list["_meta"]["hostvars"].as_object().unwrap().len(), 6);

        let one = scope.inventory_json(Some("node4")).unwrap();
        assert_eq!(one["client_label"], json!("override"));
        assert_eq!(one["inventory_hostname"], json!("node4"));
        assert_eq!(one["groups"]["clients"], json!(["node4", "node5"]));

        let err = scope.inventory_json(Some("nod4")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("unknown host `nod4`"), "{text}");
        assert!(text.contains("hint: did you mean `node4`?"), "{text}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    }

    #[test]
    fn variables_settle_whatever_their_order_and_defaults() {
        let raw = obj(json!({
            "a": "{{ b | default('fallback') }}",
            "b": "{{ c }}-x",
            "c": "real",
            "broken": "{{ nosuch }}",
            "uses_broken": "{{ broken }}!",
        }));
        let engine = Engine::new();
        let resolved = resolve(&engine, &raw, &origin());
        let out = &resolved.vars();
        assert_eq!(out["a"], "real-x");
        assert_eq!(out["b"], "real-x");
        assert!(!out.contains_key("broken") && !out.contains_key("uses_broken"));
        let waiting: Vec<&str> = resolved.unrendered().collect();
        assert_eq!(waiting, ["broken", "uses_broken"]);
        let why = resolved.why(&engine, "broken").unwrap();
        assert!(why.contains("undefined variable `nosuch`"), "{why}");
        let why = resolved.why(&engine, "uses_broken").unwrap();
        assert!(why.contains("undefined variable `broken`"), "{why}");
        assert_eq!(resolved.why(&engine, "a"), None);
    }

    #[test]
    fn values_render_after_what_they_read_unless_the_reads_are_unsure() {
        let engine = Engine::new();
        let keys: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let order = |values: [Value; 4]| {
            let templated: Vec<(&String, &Value)> = keys.iter().zip(values.iter()).collect();
            render_order(&engine, &templated)
        };
        // d reads b and c; b reads c; a reads nothing templated.
        let found = order([
            json!("{{ groups.all | length }}"),
            json!(["x", {"deep": "{{ c | default('') }}"}]),
            json!("{% for h in groups.all %}{{ h }}{% endfor %}"),
            json!("{{ b }}{{ c }}"),
        ])
        .expect("no cycle here");
        let at = |i: usize| found.iter().position(|&x| x == i).unwrap();
        assert_eq!(found.len(), 4);
        assert!(at(2) < at(1) && at(1) < at(3), "{found:?}");
        // Each of these leaves the order to the rounds.
        for unsure in [
            [
                json!("{{ b | default(1) }}"),
                json!("{{ a }}"),
                json!(1),
                json!(2),
            ],
            [json!("{{ a | default(1) }}"), json!(1), json!(2), json!(3)],
            [
                json!("{{ vars['b'] }}"),
                json!("{{ 1 }}"),
                json!(2),
                json!(3),
            ],
            [json!("{{ b +* }}"), json!(1), json!(2), json!(3)],
            [
                json!("{% set b = b ~ '!' %}{{ b }}"),
                json!("{{ 'B' }}"),
                json!(2),
                json!(3),
            ],
        ] {
            assert_eq!(order(unsure.clone()), None, "{unsure:?}");
        }
        // And the rounds settle them as before.
        let raw = obj(json!({
            "x": "{{ y | default(1) }}",
            "y": "{{ x }}",
            "z": "{{ vars['w'] | default('none') }}",
            "w": "{{ 'set' }}",
        }));
        let resolved = resolve(&engine, &raw, &origin());
        let out = resolved.vars();
        assert_eq!((&out["x"], &out["y"]), (&json!(1), &json!(1)));
        let raw = obj(json!({"a": "{% set b = b ~ '!' %}{{ b }}", "b": "{{ 'B' }}"}));
        assert_eq!(resolve(&engine, &raw, &origin()).vars()["a"], "B!");
        assert_eq!(out["w"], "set");
    }

    #[test]
    fn only_conditions_naming_item_wait_for_the_loop() {
        let c = |s: &str| vec![s.to_owned()];
        assert!(mentions(&c("item.enabled"), "item"));
        assert!(mentions(&c("x and item == 1"), "item"));
        assert!(!mentions(&c("use_items | default(false)"), "item"));
        assert!(!mentions(&c("my_item"), "item"));
        assert!(mentions(&c("thing.name == 'a'"), "thing"));
        assert!(!mentions(&c("things"), "thing"));
    }
}
