//! The worker over a real channel (a socketpair), with the test as the primary.

use super::*;
use muster_ipc::{HandleType, Outgoing, SendHandle};
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

fn contract(inherited: &[&str], handed_over: &[&str]) -> Contract {
    Contract {
        id: 5,
        schedule: if handed_over.is_empty() {
            Schedule::Shared
        } else {
            Schedule::Rr
        },
        inherited: inherited.iter().map(|s| s.to_string()).collect(),
        handed_over: handed_over.iter().map(|s| s.to_string()).collect(),
    }
}

/// A worker with round-robin listeners, and the primary's end of its channel.
fn rr_worker(names: &[&str]) -> (Worker, Channel) {
    let (ours, theirs) = StdUnixStream::pair().unwrap();
    let worker = Worker::start(
        contract(&[], names),
        Vec::new(),
        Some(Channel::from_fd(theirs.into()).unwrap()),
    );
    (worker, Channel::from_fd(ours.into()).unwrap())
}

/// Plays the primary's accept: a client connected to a listener of the test's own, and the
/// accepted side to hand over.
struct Clients {
    server: StdListener,
}

impl Clients {
    fn new() -> Clients {
        Clients {
            server: StdListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn connect(&self) -> (StdStream, OwnedFd) {
        let client = StdStream::connect(self.server.local_addr().unwrap()).unwrap();
        let (conn, _) = self.server.accept().unwrap();
        (client, conn.into())
    }
}

async fn newconn(primary: &Channel, key: &str, seq: u64, fd: OwnedFd) {
    let msg = json!({"cmd":"NODE_CLUSTER","act":"newconn","key":key,"seq":seq});
    primary
        .sender()
        .send(Outgoing::internal_with_handle(
            &msg,
            SendHandle::new(HandleType::NetNative, fd),
        ))
        .await
        .unwrap();
}

/// The next message the worker sent.
async fn next(primary: &mut Channel) -> Value {
    match timeout(DEADLINE, primary.recv()).await.expect("deadline") {
        Some(Received::Message { message, .. }) => message.into_value(),
        Some(Received::Problem(p)) => panic!("problem: {p}"),
        None => panic!("channel closed"),
    }
}

#[tokio::test]
async fn rr_connection_is_served_and_answered_on_accept() {
    let (worker, mut primary) = rr_worker(&["http"]);
    assert_eq!(worker.id(), 5);
    assert_eq!(worker.schedule(), Schedule::Rr);
    let http = worker.listener("http").unwrap();
    assert!(http.is_handed_over());
    assert_eq!(
        http.local_addr().unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );

    let clients = Clients::new();
    let (mut client, fd) = clients.connect();
    newconn(&primary, "http", 40, fd).await;
    let (mut conn, peer) = timeout(DEADLINE, http.accept()).await.unwrap().unwrap();
    assert_eq!(peer.to_string(), client.local_addr().unwrap().to_string());
    assert_eq!(
        next(&mut primary).await,
        json!({"cmd":"NODE_CLUSTER","ack":40,"accepted":true,"seq":0})
    );

    conn.write_all(b"hello").await.unwrap();
    drop(conn);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut client, &mut got).unwrap();
    assert_eq!(got, "hello");
}

#[tokio::test]
async fn rr_refusals() {
    let (worker, mut primary) = rr_worker(&["http", "admin"]);
    let clients = Clients::new();
    let mut keep = Vec::new();

    // A name nobody listens on.
    let (c, fd) = clients.connect();
    keep.push(c);
    newconn(&primary, "nope", 1, fd).await;
    assert_eq!(next(&mut primary).await["accepted"], json!(false));

    // A listener taken and dropped.
    drop(worker.listener("admin").unwrap());
    let (c, fd) = clients.connect();
    keep.push(c);
    newconn(&primary, "admin", 2, fd).await;
    assert_eq!(
        next(&mut primary).await,
        json!({"cmd":"NODE_CLUSTER","ack":2,"accepted":false,"seq":1})
    );

    // Queued but never taken, then the listener goes away.
    let http = worker.listener("http").unwrap();
    let (c, fd) = clients.connect();
    keep.push(c);
    newconn(&primary, "http", 3, fd).await;
    // A user message behind the newconn proves the worker has routed it.
    primary.send(&json!("ping")).await.unwrap();
    assert_eq!(
        timeout(DEADLINE, worker.recv()).await.unwrap(),
        Some(json!("ping"))
    );
    let clone = http.clone();
    drop(http);
    assert!(
        timeout(Duration::from_millis(100), primary.recv())
            .await
            .is_err(),
        "a clone still holds the listener"
    );
    drop(clone);
    assert_eq!(
        next(&mut primary).await,
        json!({"cmd":"NODE_CLUSTER","ack":3,"accepted":false,"seq":2}),
        "refused only when the last clone went"
    );

    assert!(matches!(
        worker.listener("http"),
        Err(WorkerError::ListenerTaken { .. })
    ));
    let err = worker.listener("other").unwrap_err().to_string();
    assert_eq!(
        err,
        r#"no listener named "other" (this worker has "http", "admin")"#
    );
}

#[tokio::test]
async fn disconnect_stops_accepting_and_refuses_later_connections() {
    let (worker, mut primary) = rr_worker(&["http"]);
    let http = worker.listener("http").unwrap();
    let stop = worker.shutdown_signal();
    assert_eq!(worker.shutdown_reason(), None);

    primary
        .send(Outgoing::internal(
            &json!({"cmd":"NODE_CLUSTER","act":"disconnect","seq":9}),
        ))
        .await
        .unwrap();
    assert_eq!(
        timeout(DEADLINE, stop).await.unwrap(),
        ShutdownReason::Disconnect
    );
    assert_eq!(worker.shutdown_reason(), Some(ShutdownReason::Disconnect));

    let clients = Clients::new();
    let (_c, fd) = clients.connect();
    newconn(&primary, "http", 10, fd).await;
    assert_eq!(next(&mut primary).await["accepted"], json!(false));
    assert!(
        timeout(Duration::from_millis(100), http.accept())
            .await
            .is_err(),
        "accept never completes once stopping"
    );
    // Later callers see the shutdown at once.
    assert_eq!(
        timeout(DEADLINE, worker.shutdown_signal()).await.unwrap(),
        ShutdownReason::Disconnect
    );
}

#[tokio::test]
async fn messages_both_ways_and_channel_close() {
    let (worker, mut primary) = rr_worker(&[]);
    assert!(worker.has_channel());
    worker.ready().await.unwrap();
    worker.suicide().await.unwrap();
    worker.send(&json!({"n": 1})).await.unwrap();
    assert_eq!(next(&mut primary).await, json!("ready"));
    assert_eq!(next(&mut primary).await, json!({"act":"suicide"}));
    assert_eq!(next(&mut primary).await, json!({"n": 1}));
    assert!(matches!(
        worker.send(&json!({"cmd":"NODE_X"})).await,
        Err(WorkerError::Send(SendError::InternalCmd(_)))
    ));

    primary.send(&json!({"hello": "worker"})).await.unwrap();
    // Unknown internal messages are ignored, not shown as user messages.
    primary
        .send(Outgoing::internal(
            &json!({"cmd":"NODE_CLUSTER","act":"whatever","seq":1}),
        ))
        .await
        .unwrap();
    primary.send(&json!(2)).await.unwrap();
    assert_eq!(worker.recv().await, Some(json!({"hello": "worker"})));
    assert_eq!(worker.recv().await, Some(json!(2)));

    drop(primary);
    assert_eq!(
        timeout(DEADLINE, worker.shutdown_signal()).await.unwrap(),
        ShutdownReason::ChannelClosed
    );
    assert_eq!(timeout(DEADLINE, worker.recv()).await.unwrap(), None);
}

#[tokio::test]
async fn without_a_channel_messages_are_a_no_op() {
    let worker = Worker::start(contract(&[], &[]), Vec::new(), None);
    assert!(!worker.has_channel());
    worker.ready().await.unwrap();
    assert_eq!(worker.recv().await, None);
    assert!(worker.listeners().unwrap().is_empty());
    assert_eq!(
        worker.listener("http").unwrap_err().to_string(),
        r#"no listener named "http" (this worker has none)"#
    );
}

#[tokio::test]
async fn inherited_sockets_accept_and_bound_ones_are_made_listening() {
    let listening = StdListener::bind("127.0.0.1:0").unwrap();
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let dir = std::env::temp_dir().join(format!("muster-worker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();

    let worker = Worker::start(
        contract(&["http", "http", "local"], &[]),
        vec![listening.into(), OwnedFd::from(bound), unix.into()],
        None,
    );
    let first = worker.listener("http").unwrap();
    let second = worker.listener("http").unwrap();
    let rest = worker.listeners().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].name(), "local");
    assert!(!first.is_handed_over());

    for l in [&first, &second] {
        let Addr::Tcp(addr) = l.local_addr().unwrap() else {
            panic!("tcp")
        };
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut conn, peer) = timeout(DEADLINE, l.accept()).await.unwrap().unwrap();
        assert_eq!(peer.to_string(), client.local_addr().unwrap().to_string());
        conn.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).await.unwrap();
    }

    let Addr::Unix(addr) = rest[0].local_addr().unwrap() else {
        panic!("unix")
    };
    assert_eq!(addr.as_pathname(), Some(path.as_path()));
    let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (conn, _) = timeout(DEADLINE, rest[0].accept()).await.unwrap().unwrap();
    assert!(matches!(conn, Conn::Unix(_)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn inherited_non_listeners_are_refused_by_name() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pipe, _w) = std::io::pipe().unwrap();
    let worker = Worker::start(
        contract(&["dns", "pipe"], &[]),
        vec![udp.into(), OwnedFd::from(pipe)],
        None,
    );
    let e = worker.listener("dns").unwrap_err().to_string();
    assert!(e.starts_with(r#"listener "dns" (descriptor "#), "{e}");
    assert!(e.contains("not a stream socket"), "{e}");
    let e = worker.listener("pipe").unwrap_err().to_string();
    assert!(e.contains("it is not a socket"), "{e}");
}
