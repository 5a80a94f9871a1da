//! Sockets from systemd socket activation (LISTEN_FDS), for `muster run`.
