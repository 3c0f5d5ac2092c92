//! The minijinja environment shared by templates, task arguments and
//! conditions: strict undefined, Ansible's common filters and tests, and
//! errors located in the file they came from.

use std::path::Path;

use crate::error::{Location, Result};
use crate::vars::Vars;

pub struct Engine {
    env: minijinja::Environment<'static>,
}

impl Engine {
    pub fn new() -> Self {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        Engine { env }
    }

    /// Render a template string; `origin` names where it came from for errors.
    pub fn render_str(&self, source: &str, vars: &Vars, origin: &Location) -> Result<String> {
        let _ = (source, vars, origin, &self.env);
        todo!("Engine::render_str")
    }

    /// Evaluate every expression of a condition; true when all are.
    pub fn eval_condition(&self, exprs: &[String], vars: &Vars, origin: &Location) -> Result<bool> {
        let _ = (exprs, vars, origin);
        todo!("Engine::eval_condition")
    }

    /// Render a template file.
    pub fn render_file(&self, path: &Path, vars: &Vars) -> Result<String> {
        let _ = (path, vars);
        todo!("Engine::render_file")
    }

    /// Check that a template string compiles, without rendering it.
    pub fn check(&self, source: &str, origin: &Location) -> Result<()> {
        let _ = (source, origin);
        todo!("Engine::check")
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// Render template `text` that came from `name` (a file or a built-in).
    pub fn render_named(&self, name: &std::path::Path, text: &str, vars: &Vars) -> Result<String> {
        let _ = (name, text, vars);
        todo!("Engine::render_named")
    }
}
