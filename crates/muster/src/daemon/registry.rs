//! The daemon's list of apps: id, spec and whether it should run. Written to
//! `$MUSTER_HOME/registry.json` on every change, so a daemon that was killed comes back knowing
//! every app, stopped ones included.

use anyhow::Context;
use muster_proto::{AppSpec, Target};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    #[serde(skip)]
    path: PathBuf,
}

impl Registry {
    /// Loads the registry, or an empty one if the file does not exist yet.
    pub fn load(path: &Path) -> anyhow::Result<Registry> {
        let mut reg = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str::<Registry>(&text)
                .with_context(|| format!("{} is malformed", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        reg.path = path.to_owned();
        Ok(reg)
    }

    /// Writes the registry atomically (write a temporary file, then rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
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
    pub fn upsert(&mut self, spec: AppSpec) -> &mut Entry {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_names_unique() {
        let dir = std::env::temp_dir().join(format!("muster-reg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.json");
        let mut r = Registry::load(&path).unwrap();
        assert_eq!(r.upsert(AppSpec::new("a", "a.js")).id, 0);
        assert_eq!(r.upsert(AppSpec::new("b", "b.js")).id, 1);
        assert_eq!(
            r.upsert(AppSpec::new("a", "a2.js")).id,
            0,
            "same name keeps its id"
        );
        r.save().unwrap();
        let mut back = Registry::load(&path).unwrap();
        assert_eq!(back.apps().len(), 2);
        assert_eq!(back.get("a").unwrap().spec.script, PathBuf::from("a2.js"));
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
}
