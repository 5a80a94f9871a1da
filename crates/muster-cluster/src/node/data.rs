//! The `data` Node echoes per handle (TLS session ticket keys).

use serde_json::Value;

use super::js::is_truthy;

/// The server data stored on one handle and returned in every queryServer reply for it.
///
/// Node's primary runs `if (!handle.data) handle.data = message.data`: the first truthy `data`
/// wins, so every worker of a TLS server gets the same ticket keys. A worker that sent
/// `{"ticketKeys":…}` crashes if the reply's `data` is `null`, which this rule prevents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EchoData(Value);

impl EchoData {
    /// No data yet (`null`).
    pub const fn new() -> Self {
        Self(Value::Null)
    }

    /// Records a worker's `data`, unless a truthy one is already stored.
    pub fn offer(&mut self, incoming: &Value) {
        if !is_truthy(&self.0) {
            self.0 = incoming.clone();
        }
    }

    /// What to put in the reply's `data`.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_truthy_data_wins() {
        let mut data = EchoData::new();
        assert_eq!(data.value(), &Value::Null);
        data.offer(&Value::Null);
        assert_eq!(data.value(), &Value::Null);
        data.offer(&json!({"ticketKeys":"aa"}));
        data.offer(&json!({"ticketKeys":"bb"}));
        data.offer(&Value::Null);
        assert_eq!(data.value(), &json!({"ticketKeys":"aa"}));
    }

    #[test]
    fn falsy_data_is_replaced_like_node_does() {
        let mut data = EchoData::new();
        data.offer(&json!(false));
        assert_eq!(data.value(), &json!(false));
        data.offer(&json!({"ticketKeys":"cc"}));
        assert_eq!(data.value(), &json!({"ticketKeys":"cc"}));
    }
}
