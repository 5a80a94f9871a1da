//! Node's cluster protocol as the primary speaks it: `online`, `queryServer`, `listening`,
//! `close`, `exitedAfterDisconnect` and round-robin replies.

use super::Control;
use crate::listen::Sharing;
use crate::node::{self, Errno, HandleKey, QueryOutcome, QueryServer, Sockname};
use crate::policy::{Input, WorkerId};
use crate::primary::event::{Event, ListeningAddress};
use crate::primary::handles::{self, Handle, Kind, QueryAddr};
use muster_ipc::SendHandle;
use serde_json::Value;
use std::os::fd::OwnedFd;

impl Control {
    pub(super) fn on_internal(&mut self, id: WorkerId, v: Value) {
        if muster_ipc::internal_cmd(&v) != Some(node::CMD) {
            return; // other NODE_* traffic is not for the primary
        }
        let msg = match node::FromWorker::parse(&v) {
            Ok(m) => m,
            Err(e) => {
                self.worker_error(id, format!("bad cluster message: {e}"));
                return;
            }
        };
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let pid = w.pid;
        match msg {
            node::FromWorker::Online => {
                w.online = true;
                self.emit(Event::Online { worker: id, pid });
                self.feed(Input::Online { id });
            }
            node::FromWorker::QueryServer(q) => {
                self.feed(Input::ServerRequested { id });
                if let Some(q) = self.hold_if_spare(id, q) {
                    self.query_server(id, q);
                }
            }
            node::FromWorker::Listening(addr) => {
                let first = !w.listening;
                w.listening = true;
                // Node reports `null` for `listen(port)`; say where the socket really is.
                let bound = v
                    .as_object()
                    .map(HandleKey::from_frame)
                    .and_then(|key| self.handles.map.get(&key))
                    .and_then(Handle::local_addr);
                self.emit(Event::Listening {
                    worker: id,
                    pid,
                    address: ListeningAddress {
                        address: addr
                            .address
                            .clone()
                            .or_else(|| bound.map(|a| a.ip().to_string())),
                        port: addr.port,
                        address_type: v.get("addressType").cloned().unwrap_or(Value::Null),
                    },
                });
                if first {
                    self.feed(Input::Listening { id });
                }
            }
            node::FromWorker::Close { key } => {
                w.keys.remove(&key);
                if let Some(rr) = self.handles.rr_of(&key) {
                    self.rr.leave(rr, id);
                }
                self.on_server_closed(id, &key);
            }
            node::FromWorker::ExitedAfterDisconnect { seq } => {
                // Without this ack the worker never finishes disconnecting.
                let ack = node::exited_after_disconnect_ack(seq, self.seq.next_seq());
                let _ = w.sender.try_send(muster_ipc::Outgoing::internal(&ack));
                w.leaving_on_its_own = true;
                if !w.exited_after_disconnect {
                    w.exited_after_disconnect = true;
                    w.routed = false;
                    self.feed(Input::Suicide { id });
                }
            }
            node::FromWorker::Reply { ack, accepted } => {
                self.rr.on_reply(
                    id,
                    ack,
                    accepted.unwrap_or(false),
                    &mut self.workers,
                    &mut self.seq,
                );
            }
            node::FromWorker::Unknown(_) => {}
        }
    }

    /// Answers a worker's `listen()`: find or create the socket for its key.
    pub(super) fn query_server(&mut self, id: WorkerId, q: QueryServer) {
        let Some(slot) = self.workers.get(&id).map(|w| w.slot) else {
            return;
        };
        if self.workers[&id].exited_after_disconnect {
            return; // as Node's primary: a leaving worker gets no new servers
        }
        if !self.handles.map.contains_key(&q.key) {
            let cap = self.config.max_listeners;
            let created = if self.handles.map.len() >= cap {
                Err(std::io::Error::other(format!(
                    "the app already has {cap} listeners, its cap (max_listeners)"
                )))
            } else {
                self.create_handle(&q, slot)
            };
            match created {
                Ok(h) => {
                    self.handles.map.insert(q.key.clone(), h);
                }
                Err(e) => {
                    let errno = Errno::from_io_error(&e);
                    let reply = node::query_server_reply(
                        q.seq,
                        &q.key,
                        &q.data,
                        QueryOutcome::Failed(errno),
                        self.seq.next_seq(),
                    );
                    let _ = self.workers[&id]
                        .sender
                        .try_send(muster_ipc::Outgoing::internal(&reply));
                    let tried = match handles::requested_address(&q, self.config.default_host) {
                        Ok(QueryAddr::Stream(a)) => a.to_string(),
                        Ok(QueryAddr::Udp(a)) => format!("udp {a}"),
                        Err(_) => describe(&q),
                    };
                    self.worker_error(id, format!("cannot listen on {tried} for the worker: {e}"));
                    return;
                }
            }
        }
        let h = self.handles.map.get_mut(&q.key).expect("inserted above");
        h.data.offer(&q.data);
        h.holders.insert(id);
        let seq = self.seq.next_seq();
        let w = self.workers.get_mut(&id).expect("checked above");
        w.keys.insert(q.key.clone());
        let sent = match &mut h.kind {
            Kind::RoundRobin { rr, local } => {
                self.rr.join(*rr, id);
                let sockname = local.map(Sockname::from);
                let reply = node::query_server_reply(
                    q.seq,
                    &q.key,
                    h.data.value(),
                    QueryOutcome::RoundRobin {
                        sockname: sockname.as_ref(),
                    },
                    seq,
                );
                w.sender.try_send(muster_ipc::Outgoing::internal(&reply))
            }
            Kind::Shared { socket } => {
                let reply = shared_reply(&q, h.data.value(), seq);
                socket.try_clone().map_err(Into::into).and_then(|fd| {
                    w.sender
                        .try_send(muster_ipc::Outgoing::internal_with_handle(
                            &reply,
                            ipc_handle(&h.address_type, fd),
                        ))
                })
            }
            Kind::ReusePort {
                addr,
                backlog,
                per_slot,
            } => {
                let socket = match per_slot.get(&slot) {
                    Some(s) => s.try_clone(),
                    None => handles::bind_node_stream(addr, Sharing::ReusePort, *backlog).and_then(
                        |s| {
                            let copy = s.try_clone();
                            per_slot.insert(slot, s);
                            copy
                        },
                    ),
                };
                let reply = shared_reply(&q, h.data.value(), seq);
                socket.map_err(Into::into).and_then(|fd| {
                    w.sender
                        .try_send(muster_ipc::Outgoing::internal_with_handle(
                            &reply,
                            ipc_handle(&h.address_type, fd),
                        ))
                })
            }
        };
        if let Err(e) = sent {
            self.worker_error(id, format!("cannot answer the worker's listen(): {e}"));
        }
    }
}

fn shared_reply(q: &QueryServer, data: &Value, seq: u64) -> Value {
    node::query_server_reply(q.seq, &q.key, data, QueryOutcome::Shared, seq)
}

fn ipc_handle(address_type: &node::AddressType, fd: OwnedFd) -> SendHandle {
    SendHandle::new(address_type.handle_type(), fd)
}

fn describe(q: &QueryServer) -> String {
    match (&q.address, q.port) {
        (Some(a), Some(p)) if p >= 0 => format!("{a}:{p}"),
        (Some(a), _) => a.clone(),
        (None, Some(p)) => format!("port {p}"),
        (None, None) => "an unnamed address".to_owned(),
    }
}
