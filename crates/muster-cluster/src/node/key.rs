//! The handle key: Node's name for one shared socket, opaque to the worker.

use std::borrow::Borrow;
use std::fmt;

use serde_json::Value;

use super::js::to_js_string;

/// `address:port:addressType:fd:index`, each part converted as JS `String()` does
/// (`null` → `null`, absent → `undefined`), e.g. `null:3000:4:undefined:0`.
///
/// It is both what the worker gets back (and later names in `close` and `newconn`) and what the
/// primary groups workers by: Node shares one handle among all workers whose queryServer yields
/// the same key, so use this type as the key of the primary's handle table. Because `index` counts
/// a worker's `listen()` calls on the same socket, a worker never receives a key it already holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandleKey(String);

impl HandleKey {
    /// Builds the key from the raw queryServer fields; `None` is an absent field.
    pub fn from_fields(
        address: Option<&Value>,
        port: Option<&Value>,
        address_type: Option<&Value>,
        fd: Option<&Value>,
        index: Option<&Value>,
    ) -> Self {
        let parts = [address, port, address_type, fd, index].map(to_js_string);
        Self(parts.join(":"))
    }

    /// Builds the key from a queryServer frame's fields (the object itself, not a NODE_HANDLE).
    pub fn from_frame(frame: &serde_json::Map<String, Value>) -> Self {
        Self::from_fields(
            frame.get("address"),
            frame.get("port"),
            frame.get("addressType"),
            frame.get("fd"),
            frame.get("index"),
        )
    }

    /// Wraps a key the worker sent back (in `close`) so it can be looked up.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives back the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for HandleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets a `HashMap<HandleKey, _>` be searched with a `&str` straight from a frame.
impl Borrow<str> for HandleKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for HandleKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<HandleKey> for Value {
    fn from(key: HandleKey) -> Self {
        Value::String(key.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_of(frame: Value) -> String {
        let Value::Object(map) = frame else {
            panic!("test frame must be an object");
        };
        HandleKey::from_frame(&map).into_string()
    }

    #[test]
    fn tcp_without_host_has_null_address_and_undefined_fd() {
        let frame = json!({"address": null, "port": 3000, "addressType": 4, "index": 0});
        assert_eq!(key_of(frame), "null:3000:4:undefined:0");
    }

    #[test]
    fn udp_has_fd_minus_one() {
        let frame = json!({"address": "127.0.0.1", "port": 41070, "addressType": "udp4", "fd": -1, "index": 0});
        assert_eq!(key_of(frame), "127.0.0.1:41070:udp4:-1:0");
    }

    #[test]
    fn unix_socket() {
        let frame = json!({"address": "/tmp/app.sock", "port": -1, "addressType": -1, "index": 1});
        assert_eq!(key_of(frame), "/tmp/app.sock:-1:-1:undefined:1");
    }

    #[test]
    fn listen_fd_and_everything_missing() {
        let frame =
            json!({"address": null, "port": null, "addressType": null, "fd": 7, "index": 0});
        assert_eq!(key_of(frame), "null:null:null:7:0");
        assert_eq!(
            key_of(json!({})),
            "undefined:undefined:undefined:undefined:undefined"
        );
    }

    #[test]
    fn ipv6_colons_are_kept_verbatim() {
        let frame = json!({"address": "::1", "port": 80, "addressType": 6, "index": 0});
        assert_eq!(key_of(frame), "::1:80:6:undefined:0");
    }

    #[test]
    fn same_listen_in_two_workers_groups_together() {
        let worker_a = json!({"address": null, "port": 0, "addressType": 4, "backlog": false, "index": 0, "seq": 1});
        let worker_b = json!({"index": 0, "addressType": 4, "port": 0, "address": null, "seq": 9});
        assert_eq!(key_of(worker_a.clone()), key_of(worker_b));
        let second_listen = json!({"address": null, "port": 0, "addressType": 4, "index": 1});
        assert_ne!(key_of(worker_a), key_of(second_listen));
    }

    #[test]
    fn lookup_by_str() {
        let mut table = std::collections::HashMap::new();
        table.insert(HandleKey::new("null:3000:4:undefined:0"), 1);
        assert_eq!(table.get("null:3000:4:undefined:0"), Some(&1));
        assert_eq!(Value::from(HandleKey::new("k")), json!("k"));
    }
}
