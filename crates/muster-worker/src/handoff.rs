//! Round-robin hand-off, the worker's side: `newconn` frames from the primary are routed to the
//! listener they name, and answered `accepted` as the application takes each connection.
//!
//! The answer waits for the application's `accept()` on purpose: a connection the worker has
//! not taken yet can still go to another worker (`accepted:false` when the listener closes),
//! and the primary sees which workers keep up.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::conn::{Addr, Conn};

/// The `cmd` of Node's cluster messages.
pub(crate) const CMD: &str = "NODE_CLUSTER";

/// A primary → worker cluster message, as far as a non-Node worker cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromPrimary {
    /// `act:"newconn"`: a connection for listener `key`, to be answered with `ack: seq`.
    Newconn { key: String, seq: u64 },
    /// `act:"disconnect"`: stop accepting, finish, exit.
    Disconnect,
    /// Anything else (replies to requests this worker never makes, unknown acts).
    Other,
}

impl FromPrimary {
    /// Reads an internal message the way Node's worker does: `ack` first, then `act`.
    pub fn parse(msg: &Value) -> FromPrimary {
        let Some(map) = msg.as_object() else {
            return FromPrimary::Other;
        };
        if map.get("cmd").and_then(Value::as_str) != Some(CMD) || map.contains_key("ack") {
            return FromPrimary::Other;
        }
        match map.get("act").and_then(Value::as_str) {
            Some("newconn") => {
                match (
                    map.get("key").and_then(Value::as_str),
                    map.get("seq").and_then(Value::as_u64),
                ) {
                    (Some(key), Some(seq)) => FromPrimary::Newconn {
                        key: key.to_owned(),
                        seq,
                    },
                    // Without a seq no answer could reach the primary.
                    _ => FromPrimary::Other,
                }
            }
            Some("disconnect") => FromPrimary::Disconnect,
            _ => FromPrimary::Other,
        }
    }
}

/// Where the answers go: the channel to the primary (or, in tests, a list).
#[derive(Debug)]
pub(crate) enum ReplySink {
    /// Queued on the channel without waiting (its queue is bounded in bytes).
    Channel(muster_ipc::Sender),
    /// No channel: nobody to answer (connections cannot be handed over without one).
    None,
    #[cfg(test)]
    Test(std::sync::mpsc::Sender<Value>),
}

/// The `accepted` answers, numbered with the worker's own `seq` counter (this worker's cluster
/// messages, from 0) and queued on the channel in that order.
#[derive(Debug)]
pub(crate) struct Replies {
    inner: Mutex<(u64, ReplySink)>,
}

impl Replies {
    pub fn new(sink: ReplySink) -> Replies {
        Replies {
            inner: Mutex::new((0, sink)),
        }
    }

    /// `{"cmd":"NODE_CLUSTER","ack":S,"accepted":b,"seq":N}`, exactly Node's answer.
    pub fn answer(&self, ack: u64, accepted: bool) {
        let mut inner = lock(&self.inner);
        let seq = inner.0;
        inner.0 += 1;
        let reply = json!({"cmd": CMD, "ack": ack, "accepted": accepted, "seq": seq});
        match &inner.1 {
            // Sent under the lock, so answers leave in `seq` order. A closed channel has nobody
            // left to answer; a full one (16 MiB of unread answers) means the primary is not
            // reading: it re-routes connections whose answers never come.
            ReplySink::Channel(sender) => {
                let _ = sender.try_send(muster_ipc::Outgoing::internal(&reply));
            }
            ReplySink::None => {}
            #[cfg(test)]
            ReplySink::Test(list) => {
                let _ = list.send(reply);
            }
        }
    }
}

/// A connection handed over and not yet taken.
#[derive(Debug)]
struct Pending {
    seq: u64,
    conn: Conn,
    peer: Addr,
}

#[derive(Debug, Default)]
struct SlotState {
    closed: bool,
    queue: VecDeque<Pending>,
}

/// One handed-over listener: its queue of connections not yet accepted.
#[derive(Debug)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Notify,
    replies: Arc<Replies>,
}

impl Slot {
    fn push(&self, p: Pending) {
        let mut st = lock(&self.state);
        if st.closed {
            drop(st);
            self.replies.answer(p.seq, false);
            return;
        }
        st.queue.push_back(p);
        drop(st);
        self.ready.notify_one();
    }

    /// The next connection, answering `accepted:true` as it is taken; `None` once closed.
    pub async fn next(&self) -> Option<(Conn, Addr)> {
        loop {
            let ready = self.ready.notified();
            {
                let mut st = lock(&self.state);
                if let Some(p) = st.queue.pop_front() {
                    let more = !st.queue.is_empty();
                    self.replies.answer(p.seq, true);
                    drop(st);
                    if more {
                        // notify_one keeps a single permit: pass the wake-up on to another
                        // task accepting on the same listener.
                        self.ready.notify_one();
                    }
                    return Some((p.conn, p.peer));
                }
                if st.closed {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// Stops taking connections: the queued ones and every later one are answered
    /// `accepted:false`, so the primary gives them to another worker.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        let refused: Vec<Pending> = st.queue.drain(..).collect();
        drop(st);
        for p in refused {
            self.replies.answer(p.seq, false);
        }
        self.ready.notify_waiters();
    }
}

/// Every handed-over listener of this worker, by name.
#[derive(Debug)]
pub(crate) struct Handoff {
    slots: HashMap<String, Arc<Slot>>,
    replies: Arc<Replies>,
}

impl Handoff {
    pub fn new(names: &[String], replies: Arc<Replies>) -> Handoff {
        let slots = names
            .iter()
            .map(|name| {
                let slot = Slot {
                    state: Mutex::new(SlotState::default()),
                    ready: Notify::new(),
                    replies: Arc::clone(&replies),
                };
                (name.clone(), Arc::new(slot))
            })
            .collect();
        Handoff { slots, replies }
    }

    pub fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.get(name).cloned()
    }

    /// Routes one `newconn`: to its listener's queue, or straight back as `accepted:false`
    /// (unknown name, no descriptor, not a stream socket, listener closed).
    pub fn offer(&self, key: &str, seq: u64, fd: Option<OwnedFd>) {
        let (Some(slot), Some(fd)) = (self.slots.get(key), fd) else {
            self.replies.answer(seq, false);
            return;
        };
        match Conn::from_handed_over(fd) {
            Ok((conn, peer)) => slot.push(Pending { seq, conn, peer }),
            Err(_) => self.replies.answer(seq, false),
        }
    }

    /// Closes every listener (shutdown): nothing more is accepted.
    pub fn close_all(&self) {
        for slot in self.slots.values() {
            slot.close();
        }
    }
}

/// What the channel reader should do after an internal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routed {
    Done,
    Disconnect,
}

/// Handles one internal message from the primary, with the descriptor that came with it.
pub(crate) fn dispatch(handoff: &Handoff, msg: &Value, fd: Option<OwnedFd>) -> Routed {
    match FromPrimary::parse(msg) {
        FromPrimary::Newconn { key, seq } => {
            handoff.offer(&key, seq, fd);
            Routed::Done
        }
        FromPrimary::Disconnect => Routed::Disconnect,
        FromPrimary::Other => Routed::Done,
    }
}

/// A poisoned lock only means another task panicked mid-update of plain data; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A fake channel: the routing table plus the answers it wrote, in order.
    struct Fake {
        handoff: Handoff,
        answers: std::sync::mpsc::Receiver<Value>,
        server: TcpListener,
        clients: Vec<TcpStream>,
    }

    impl Fake {
        fn new(names: &[&str]) -> Fake {
            let (tx, answers) = std::sync::mpsc::channel();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            Fake {
                handoff: Handoff::new(&names, Arc::new(Replies::new(ReplySink::Test(tx)))),
                answers,
                server: TcpListener::bind("127.0.0.1:0").unwrap(),
                clients: Vec::new(),
            }
        }

        /// A fresh accepted TCP connection, as the primary would hand it over.
        fn connection(&mut self) -> OwnedFd {
            let client = TcpStream::connect(self.server.local_addr().unwrap()).unwrap();
            let (conn, _) = self.server.accept().unwrap();
            self.clients.push(client);
            conn.into()
        }

        fn newconn(&mut self, key: &str, seq: u64) -> Routed {
            let fd = self.connection();
            let msg = json!({"cmd":"NODE_CLUSTER","act":"newconn","key":key,"seq":seq});
            dispatch(&self.handoff, &msg, Some(fd))
        }

        fn answers(&mut self) -> Vec<Value> {
            let mut out = Vec::new();
            while let Ok(v) = self.answers.try_recv() {
                out.push(v);
            }
            out
        }
    }

    fn answer(ack: u64, accepted: bool, seq: u64) -> Value {
        json!({"cmd":"NODE_CLUSTER","ack":ack,"accepted":accepted,"seq":seq})
    }

    #[test]
    fn parses_what_the_primary_sends() {
        let p = |v: Value| FromPrimary::parse(&v);
        assert_eq!(
            p(json!({"cmd":"NODE_CLUSTER","act":"newconn","key":"http","seq":4})),
            FromPrimary::Newconn {
                key: "http".into(),
                seq: 4
            }
        );
        assert_eq!(
            p(json!({"cmd":"NODE_CLUSTER","act":"disconnect","seq":9})),
            FromPrimary::Disconnect
        );
        for other in [
            json!({"cmd":"NODE_CLUSTER","act":"newconn","key":"http"}),
            json!({"cmd":"NODE_CLUSTER","act":"newconn","seq":1}),
            json!({"cmd":"NODE_CLUSTER","ack":1,"act":"disconnect","seq":2}),
            json!({"cmd":"NODE_CLUSTER","act":"queryServer","seq":1}),
            json!({"cmd":"NODE_SOCKET_GET_COUNT","act":"disconnect"}),
            json!("disconnect"),
        ] {
            assert_eq!(p(other.clone()), FromPrimary::Other, "{other}");
        }
    }

    #[tokio::test]
    async fn connections_are_answered_as_they_are_taken() {
        let mut f = Fake::new(&["http", "admin"]);
        assert_eq!(f.newconn("http", 10), Routed::Done);
        assert_eq!(f.newconn("admin", 11), Routed::Done);
        assert_eq!(f.newconn("http", 12), Routed::Done);
        assert!(f.answers().is_empty(), "nothing is answered before accept");

        let http = f.handoff.slot("http").unwrap();
        let (conn, peer) = http.next().await.unwrap();
        assert!(matches!(conn, Conn::Tcp(_)));
        assert_eq!(
            peer.to_string(),
            f.clients[0].local_addr().unwrap().to_string()
        );
        assert_eq!(f.answers(), [answer(10, true, 0)]);

        http.next().await.unwrap();
        let admin = f.handoff.slot("admin").unwrap();
        admin.next().await.unwrap();
        assert_eq!(f.answers(), [answer(12, true, 1), answer(11, true, 2)]);
    }

    #[tokio::test]
    async fn unknown_names_and_missing_descriptors_are_refused() {
        let mut f = Fake::new(&["http"]);
        f.newconn("nope", 3);
        let bare = json!({"cmd":"NODE_CLUSTER","act":"newconn","key":"http","seq":4});
        dispatch(&f.handoff, &bare, None);
        let (pipe, _w) = std::io::pipe().unwrap();
        dispatch(&f.handoff, &bare, Some(OwnedFd::from(pipe)));
        assert_eq!(
            f.answers(),
            [
                answer(3, false, 0),
                answer(4, false, 1),
                answer(4, false, 2)
            ]
        );
    }

    #[tokio::test]
    async fn closing_refuses_queued_and_later_connections() {
        let mut f = Fake::new(&["http"]);
        f.newconn("http", 1);
        f.newconn("http", 2);
        let slot = f.handoff.slot("http").unwrap();
        slot.close();
        assert_eq!(f.answers(), [answer(1, false, 0), answer(2, false, 1)]);
        f.newconn("http", 3);
        assert_eq!(f.answers(), [answer(3, false, 2)]);
        assert!(
            slot.next().await.is_none(),
            "a closed listener yields nothing"
        );
    }

    #[tokio::test]
    async fn close_all_and_disconnect() {
        let mut f = Fake::new(&["a", "b"]);
        f.newconn("b", 7);
        let msg = json!({"cmd":"NODE_CLUSTER","act":"disconnect","seq":8});
        assert_eq!(dispatch(&f.handoff, &msg, None), Routed::Disconnect);
        f.handoff.close_all();
        assert_eq!(f.answers(), [answer(7, false, 0)]);
    }

    #[tokio::test]
    async fn a_waiting_accept_wakes_and_several_accepters_share() {
        let mut f = Fake::new(&["http"]);
        let slot = f.handoff.slot("http").unwrap();
        let a = tokio::spawn({
            let slot = Arc::clone(&slot);
            async move { slot.next().await.is_some() }
        });
        let b = tokio::spawn({
            let slot = Arc::clone(&slot);
            async move { slot.next().await.is_some() }
        });
        tokio::task::yield_now().await;
        f.newconn("http", 1);
        f.newconn("http", 2);
        let both = tokio::time::timeout(Duration::from_secs(5), async {
            (a.await.unwrap(), b.await.unwrap())
        })
        .await
        .expect("both accepters got a connection");
        assert_eq!(both, (true, true));
        let mut acks: Vec<u64> = f
            .answers()
            .iter()
            .map(|v| v["ack"].as_u64().unwrap())
            .collect();
        acks.sort_unstable();
        assert_eq!(acks, [1, 2]);
    }

    #[tokio::test]
    async fn a_closed_listener_wakes_its_accepters() {
        let f = Fake::new(&["http"]);
        let slot = f.handoff.slot("http").unwrap();
        let waiting = tokio::spawn({
            let slot = Arc::clone(&slot);
            async move { slot.next().await.is_none() }
        });
        tokio::task::yield_now().await;
        slot.close();
        let closed = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(closed);
    }
}
