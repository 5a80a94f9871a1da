//! The daemon's list of apps: id, spec and whether it should run. Written to
//! `$MUSTER_HOME/registry.json` on every change, so a daemon that was killed comes back knowing
//! every app, stopped ones included.

use crate::home::Home;
use anyhow::Context;
use muster_proto::{AppSpec, Target};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: u32,
    pub spec: AppSpec,
    /// The app should be running (the user started it and has not stopped it).
    pub wanted: bool,
    /// Times the daemon had to start the supervisor again because it died.
    #[serde(default)]
    pub supervisor_restarts: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    next_id: u32,
    apps: Vec<Entry>,
    /// Where it is saved; `None` only for `Default`.
    #[serde(skip)]
    home: Option<Home>,
    /// Why the last [`save_or_warn`](Registry::save_or_warn) failed, until one succeeds or
    /// the warning is taken.
    #[serde(skip)]
    unsaved: Option<String>,
}

impl Registry {
    /// Loads the registry, or an empty one if the file does not exist yet. The file is read
    /// without following a link, and only if it is the caller's and no one else may write it:
    /// it names the programs muster runs.
    pub fn load(home: &Home) -> anyhow::Result<Registry> {
        let path = home.registry();
        let mut reg = match home.read_private(&path)? {
            Some(text) => serde_json::from_slice::<Registry>(&text)
                .with_context(|| format!("{} is malformed", path.display()))?,
            None => Registry::default(),
        };
        reg.home = Some(home.clone());
        for i in 1..reg.apps.len() {
            let (before, rest) = reg.apps.split_at_mut(i);
            share_env(&mut rest[0].spec, before);
        }
        Ok(reg)
    }

    /// Writes the registry atomically (a 0600 temporary file, then a rename): it holds every
    /// app's environment.
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(home) = &self.home else {
            anyhow::bail!("this registry was not loaded from a home");
        };
        let text = serde_json::to_string_pretty(self)?;
        home.write_private(&home.registry(), text.as_bytes())?;
        Ok(())
    }

    /// Saves, or remembers why it could not: for commands that must act even when the state
    /// cannot be written (a full disk must not lock the operator out of `stop`, `delete` and
    /// `kill`). They act, then warn with [`take_warning`](Registry::take_warning).
    pub fn save_or_warn(&mut self) {
        match self.save() {
            Ok(()) => self.unsaved = None,
            Err(e) => {
                tracing::warn!("the registry could not be saved: {e:#}");
                self.unsaved = Some(format!("{e:#}"));
            }
        }
    }

    /// The warning a failed [`save_or_warn`](Registry::save_or_warn) left, once.
    pub fn take_warning(&mut self) -> Option<String> {
        self.unsaved.take().map(|e| {
            format!(
                "warning: done, but the app list could not be saved ({e}); a daemon started \
                 before it can be saved may start these apps again"
            )
        })
    }

    pub fn apps(&self) -> &[Entry] {
        &self.apps
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.apps.iter().find(|e| e.spec.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.apps.iter_mut().find(|e| e.spec.name == name)
    }

    /// Adds an app (a new id) or replaces the spec of the app with that name (same id).
    pub fn upsert(&mut self, mut spec: AppSpec) -> &mut Entry {
        share_env(&mut spec, &self.apps);
        if let Some(i) = self.apps.iter().position(|e| e.spec.name == spec.name) {
            self.apps[i].spec = spec;
            return &mut self.apps[i];
        }
        let id = self.next_id;
        self.next_id += 1;
        self.apps.push(Entry {
            id,
            spec,
            wanted: false,
            supervisor_restarts: 0,
        });
        self.apps.last_mut().expect("just pushed")
    }

    pub fn remove(&mut self, name: &str) {
        self.apps.retain(|e| e.spec.name != name);
    }

    /// The names a target means, in id order; an error names a target that matches nothing.
    pub fn resolve(&self, target: &Target) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = match target {
            Target::All => self.apps.iter().map(|e| e.spec.name.clone()).collect(),
            Target::Id(id) => self
                .apps
                .iter()
                .filter(|e| e.id == *id)
                .map(|e| e.spec.name.clone())
                .collect(),
            Target::Name(n) => self
                .apps
                .iter()
                .filter(|e| &e.spec.name == n)
                .map(|e| e.spec.name.clone())
                .collect(),
        };
        if names.is_empty() && *target != Target::All {
            anyhow::bail!(
                "no app named or numbered {target:?}; `muster list` shows them",
                target = target.to_string()
            );
        }
        Ok(names)
    }
}

/// Gives `spec` the copy of its inherited environment an entry of `others` already holds, if
/// one is equal: apps started from one shell (an ecosystem file of 100 apps) then cost one
/// environment, not 100 (a few kB each).
/// (`Arc`'s `==` compares the pointers first, so a shared copy costs no walk.)
fn share_env(spec: &mut AppSpec, others: &[Entry]) {
    if let Some(e) = others
        .iter()
        .find(|e| e.spec.inherited_env == spec.inherited_env)
    {
        spec.inherited_env = e.spec.inherited_env.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_names_unique() {
        let dir = std::env::temp_dir().join(format!("muster-reg-{}", std::process::id()));
        let home = Home::at(&dir);
        home.ensure().unwrap();
        let mut r = Registry::load(&home).unwrap();
        assert_eq!(r.upsert(AppSpec::new("a", "a.js")).id, 0);
        assert_eq!(r.upsert(AppSpec::new("b", "b.js")).id, 1);
        assert_eq!(
            r.upsert(AppSpec::new("a", "a2.js")).id,
            0,
            "same name keeps its id"
        );
        r.save().unwrap();
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(home.registry()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600, "it carries the environment");
        let mut back = Registry::load(&home).unwrap();
        assert_eq!(back.apps().len(), 2);
        assert_eq!(
            back.get("a").unwrap().spec.script,
            std::path::PathBuf::from("a2.js")
        );
        back.remove("a");
        assert_eq!(
            back.upsert(AppSpec::new("c", "c.js")).id,
            2,
            "ids are never reused"
        );
        assert_eq!(back.resolve(&Target::Id(1)).unwrap(), vec!["b"]);
        let e = back
            .resolve(&Target::Name("nope".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn equal_inherited_environments_are_held_once_after_upsert_and_load() {
        let dir = std::env::temp_dir().join(format!("muster-reg-env-{}", std::process::id()));
        let home = Home::at(&dir);
        home.ensure().unwrap();
        let env = |pairs: &[(&str, &str)]| {
            std::sync::Arc::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        };
        let mut r = Registry::load(&home).unwrap();
        for (name, e) in [
            ("a", env(&[("PATH", "/bin")])),
            ("b", env(&[("PATH", "/bin")])), // equal, a copy of its own
            ("c", env(&[("PATH", "/usr/bin")])),
        ] {
            let mut spec = AppSpec::new(name, "x.js");
            spec.inherited_env = e;
            r.upsert(spec);
        }
        let held = |r: &Registry, n: &str| r.get(n).unwrap().spec.inherited_env.clone();
        assert!(std::sync::Arc::ptr_eq(&held(&r, "a"), &held(&r, "b")));
        assert!(!std::sync::Arc::ptr_eq(&held(&r, "a"), &held(&r, "c")));
        r.save().unwrap();
        // Read back from the file, each app's copy is parsed apart: the load shares them.
        let back = Registry::load(&home).unwrap();
        assert!(std::sync::Arc::ptr_eq(&held(&back, "a"), &held(&back, "b")));
        assert!(!std::sync::Arc::ptr_eq(
            &held(&back, "a"),
            &held(&back, "c")
        ));
        assert_eq!(held(&back, "c").get("PATH").unwrap(), "/usr/bin");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
