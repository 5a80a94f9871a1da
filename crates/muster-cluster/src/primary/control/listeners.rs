//! Listening sockets: the declared `--listen` addresses, what each worker inherits, and the
//! sockets Node workers ask for through `queryServer`.

use super::Control;
use crate::listen::{self, ListenAddr, Sharing};
use crate::node::{self, HandleKey, QueryServer};
use crate::policy::WorkerId;
use crate::primary::handles::{self, Handle, Kind, QueryAddr};
use crate::primary::worker::InheritedFds;
use crate::primary::{Schedule, StartError};
use muster_ipc::SendHandle;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;

impl Control {
    /// Binds `--listen` addresses up front: a port in use is an error now, with its address.
    pub(super) fn bind_declared_listeners(&mut self) -> Result<(), StartError> {
        let listen_err = |addr: &ListenAddr, source| StartError::Listen {
            addr: addr.to_string(),
            source,
        };
        for spec in self.config.listen.clone() {
            let backlog = Some(listen::DEFAULT_BACKLOG);
            match self.config.schedule {
                Schedule::Rr => {
                    let fd = listen::bind_stream(&spec.addr, Sharing::Exclusive, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    let id = self
                        .rr
                        .add_listener(HandleKey::new(spec.name.clone()), fd)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    self.listen_rr.push(id);
                }
                Schedule::Shared => {
                    let fd = listen::bind_stream(&spec.addr, Sharing::Exclusive, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    self.listen_shared.push((spec.name.clone(), fd));
                }
                Schedule::Reuseport => {
                    // Slot 0's socket now, to fail early and to learn a port 0's real port.
                    let fd = listen::bind_stream(&spec.addr, Sharing::ReusePort, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    let resolved = match (&spec.addr, listen::local_addr(&fd)) {
                        (ListenAddr::Tcp(_), Ok(Some(a))) => ListenAddr::Tcp(a),
                        (other, _) => other.clone(),
                    };
                    self.listen_reuse.push((spec.name.clone(), resolved));
                    self.reuse_slots
                        .entry(0)
                        .or_default()
                        .push((spec.name.clone(), fd));
                }
            }
        }
        Ok(())
    }

    /// The `listen` sockets a worker of `slot` inherits (copies; the primary keeps its own).
    pub(super) fn inherited_for(&mut self, slot: usize) -> std::io::Result<InheritedFds> {
        let mut out = Vec::new();
        match self.config.schedule {
            Schedule::Shared => {
                for (name, fd) in &self.listen_shared {
                    out.push((name.clone(), fd.try_clone()?));
                }
            }
            Schedule::Reuseport if !self.listen_reuse.is_empty() => {
                if !self.reuse_slots.contains_key(&slot) {
                    let mut sockets = Vec::new();
                    for (name, addr) in &self.listen_reuse {
                        let fd = listen::bind_stream(
                            addr,
                            Sharing::ReusePort,
                            Some(listen::DEFAULT_BACKLOG),
                        )?;
                        sockets.push((name.clone(), fd));
                    }
                    self.reuse_slots.insert(slot, sockets);
                }
                for (name, fd) in &self.reuse_slots[&slot] {
                    out.push((name.clone(), fd.try_clone()?));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The seeds' way: the message plus each listening socket as a `net.Server`.
    pub(super) fn send_listeners(&mut self, id: WorkerId, slot: usize, msg: &Value) {
        let sockets: Vec<OwnedFd> = match self.inherited_for(slot) {
            Ok(s) => s.into_iter().map(|(_, fd)| fd).collect(),
            Err(e) => {
                self.worker_error(id, format!("cannot copy a listening socket: {e}"));
                return;
            }
        };
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        for fd in sockets {
            if let Err(e) = w.sender.try_send(muster_ipc::Outgoing::user_with_handle(
                msg,
                SendHandle::server(fd),
            )) {
                self.worker_error(id, format!("cannot send the listening socket: {e}"));
            }
        }
    }

    /// Worker `id` closed its server for `key` (Node's `close`). The socket is closed when no
    /// live worker that asked for it still holds it. A worker that is leaving (draining,
    /// replaced, gone) closes its servers on the way out: that is a restart, not a decision to
    /// stop listening, and connections keep queueing for its successor.
    pub(super) fn on_server_closed(&mut self, id: WorkerId, key: &HandleKey) {
        let leaving = self
            .workers
            .get(&id)
            .is_none_or(|w| w.draining || w.leaving_on_its_own || w.exit.is_some());
        let Some(h) = self.handles.map.get_mut(key) else {
            return;
        };
        h.holders.remove(&id);
        if leaving {
            return;
        }
        let workers = &self.workers;
        let held = h.holders.iter().any(|w| {
            workers
                .get(w)
                .is_some_and(|w| w.exit.is_none() && !w.draining && !w.leaving_on_its_own)
        });
        if !held && let Some(h) = self.handles.map.remove(key) {
            self.close_handle(h);
        }
    }

    /// Closes a listener for good: new connections are refused, not left to hang.
    fn close_handle(&mut self, h: Handle) {
        if let Kind::RoundRobin { rr, .. } = h.kind {
            self.rr.close(rr);
        }
        // Shared and reuseport sockets close with the primary's copies, dropped here (the
        // workers closed theirs).
    }

    /// The app gave up: nothing will serve its listeners, so connections are refused instead
    /// of queueing for a worker that never comes.
    pub(super) fn close_all_listeners(&mut self) {
        let handles: Vec<Handle> = self.handles.map.drain().map(|(_, h)| h).collect();
        for h in handles {
            self.close_handle(h);
        }
        for rr in std::mem::take(&mut self.listen_rr) {
            self.rr.close(rr);
        }
        self.listen_shared.clear();
        self.listen_reuse.clear();
        self.reuse_slots.clear();
    }

    pub(super) fn create_handle(
        &mut self,
        q: &QueryServer,
        slot: usize,
    ) -> std::io::Result<Handle> {
        let backlog = i32::try_from(q.backlog).unwrap_or(listen::DEFAULT_BACKLOG);
        let kind = match handles::requested_address(q, self.config.default_host)? {
            // UDP is shared whatever the schedule, as in Node.
            QueryAddr::Udp(a) => Kind::Shared {
                socket: listen::bind_udp(a, q.udp_reuse_addr(), q.ipv6_only())?,
            },
            QueryAddr::Stream(addr) => match self.config.schedule {
                Schedule::Rr => {
                    let fd = handles::bind_node_stream(&addr, Sharing::Exclusive, backlog)?;
                    let local = listen::local_addr(&fd)?;
                    let rr = self.rr.add_listener(q.key.clone(), fd)?;
                    Kind::RoundRobin { rr, local }
                }
                Schedule::Shared => Kind::Shared {
                    socket: handles::bind_node_stream(&addr, Sharing::Exclusive, backlog)?,
                },
                Schedule::Reuseport => {
                    let fd = handles::bind_node_stream(&addr, Sharing::ReusePort, backlog)?;
                    let resolved = match (&addr, listen::local_addr(&fd)?) {
                        (ListenAddr::Tcp(_), Some(a)) => ListenAddr::Tcp(a),
                        (other, _) => other.clone(),
                    };
                    Kind::ReusePort {
                        addr: resolved,
                        backlog,
                        per_slot: BTreeMap::from([(slot, fd)]).into_iter().collect(),
                    }
                }
            },
        };
        Ok(Handle {
            kind,
            holders: BTreeSet::new(),
            address_type: q.address_type,
            data: node::EchoData::default(),
        })
    }
}
