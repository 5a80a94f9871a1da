//! The `sockname` of a SCHED_RR reply: what `server.address()` will return in the worker.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// `family` as Node 20 reports it; always the string, never Node 18.0's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `"IPv4"`.
    Ipv4,
    /// `"IPv6"`.
    Ipv6,
}

impl Family {
    /// The string for the `family` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        }
    }
}

/// The listening socket's real address, which the worker copies into `server.address()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sockname {
    /// The bound IP, without brackets (e.g. `127.0.0.1`, `::`).
    pub address: String,
    /// From the bound socket, not from the request.
    pub family: Family,
    /// The real port, also after a port-0 bind.
    pub port: u16,
}

impl Sockname {
    /// `{"address":…,"family":…,"port":…}` in Node's key order.
    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "family": self.family.as_str(),
            "port": self.port,
        })
    }
}

/// Takes `getsockname()` of the primary's listener (IPv6 scope ids are dropped).
impl From<SocketAddr> for Sockname {
    fn from(addr: SocketAddr) -> Self {
        let family = match addr {
            SocketAddr::V4(_) => Family::Ipv4,
            SocketAddr::V6(_) => Family::Ipv6,
        };
        Self {
            address: addr.ip().to_string(),
            family,
            port: addr.port(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_socket_addr() {
        let v4: SocketAddr = "127.0.0.1:46627".parse().expect("valid address");
        assert_eq!(
            Sockname::from(v4).to_json(),
            json!({"address":"127.0.0.1","family":"IPv4","port":46627})
        );
        let v6: SocketAddr = "[::]:8080".parse().expect("valid address");
        assert_eq!(
            Sockname::from(v6).to_json(),
            json!({"address":"::","family":"IPv6","port":8080})
        );
    }
}
