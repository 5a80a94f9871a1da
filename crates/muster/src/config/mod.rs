//! Ecosystem files: muster.toml and pm2 ecosystem files.
