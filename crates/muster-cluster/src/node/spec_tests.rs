//! The exact frames of sections 6.4, 6.5 and 10 of `shared/node-ipc-protocol.md`: every worker
//! frame is parsed, every primary frame is rebuilt and compared with the capture.

use serde_json::{Map, Value, json};

use super::*;

/// True when `serde_json` keeps insertion order (`preserve_order`), so raw text can be compared.
fn order_is_preserved() -> bool {
    let probe = r#"{"b":0,"a":0}"#;
    let value: Value = serde_json::from_str(probe).expect("probe parses");
    serde_json::to_string(&value).expect("probe serialises") == probe
}

/// Compares a built frame with the captured text: as values, as `serde_json` text, and verbatim
/// when key order survives serialisation.
fn assert_frame(built: &Value, captured: &str) {
    let expected: Value = serde_json::from_str(captured).expect("captured frame parses");
    assert_eq!(built, &expected);
    let built_text = serde_json::to_string(built).expect("built frame serialises");
    let expected_text = serde_json::to_string(&expected).expect("captured frame serialises");
    assert_eq!(built_text, expected_text);
    if order_is_preserved() {
        assert_eq!(built_text, captured);
    }
}

/// The NODE_HANDLE envelope of section 4.1, built here only to compare whole captured frames.
fn envelope(handle_type: HandleType, msg: Value) -> Value {
    let mut frame = Map::new();
    frame.insert("cmd".to_owned(), json!("NODE_HANDLE"));
    frame.insert("type".to_owned(), json!(handle_type.as_str()));
    frame.insert("msg".to_owned(), msg);
    Value::Object(frame)
}

fn parse(captured: &str) -> Result<FromWorker, ParseError> {
    let frame: Value = serde_json::from_str(captured).expect("captured frame parses");
    FromWorker::parse(&frame)
}

fn parse_query(captured: &str) -> QueryServer {
    match parse(captured) {
        Ok(FromWorker::QueryServer(query)) => query,
        other => panic!("expected queryServer, got {other:?}"),
    }
}

fn parse_listening(captured: &str) -> ServerAddress {
    match parse(captured) {
        Ok(FromWorker::Listening(address)) => address,
        other => panic!("expected listening, got {other:?}"),
    }
}

fn loopback(port: u16) -> Sockname {
    Sockname::from(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

mod section_6_4_a_shared {
    use super::*;

    const ONLINE: &str = r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#;
    const QUERY_TCP: &str = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":42167,"addressType":4,"backlog":false,"seq":1}"#;
    const REPLY_TCP: &str = r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"null:42167:4:undefined:0","ack":1,"data":null,"seq":0}}"#;
    const QUERY_UDP: &str = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":57695,"addressType":"udp4","fd":-1,"flags":0,"seq":2}"#;
    const HANDLE_ACK: &str = r#"{"cmd":"NODE_HANDLE_ACK"}"#;
    const REPLY_UDP: &str = r#"{"cmd":"NODE_HANDLE","type":"dgram.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"127.0.0.1:57695:udp4:-1:0","ack":2,"data":null,"seq":1}}"#;
    const LISTENING_TCP: &str = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":42167,"addressType":4,"backlog":false,"seq":3}"#;
    const LISTENING_UDP: &str = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":57695,"addressType":"udp4","fd":-1,"flags":0,"seq":4}"#;

    #[test]
    fn worker_frames() {
        assert_eq!(parse(ONLINE), Ok(FromWorker::Online));

        let tcp = parse_query(QUERY_TCP);
        assert_eq!(tcp.seq, 1);
        assert_eq!(tcp.index, Some(0));
        assert_eq!(tcp.data, Value::Null);
        assert_eq!(tcp.address, None);
        assert_eq!(tcp.port, Some(42167));
        assert_eq!(tcp.address_type, AddressType::Tcp4);
        assert_eq!(tcp.fd, None);
        assert_eq!(tcp.flags, None);
        assert_eq!(tcp.backlog, 511);
        assert_eq!(tcp.key.as_str(), "null:42167:4:undefined:0");

        let udp = parse_query(QUERY_UDP);
        assert_eq!(udp.seq, 2);
        assert_eq!(udp.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(udp.port, Some(57695));
        assert_eq!(udp.address_type, AddressType::Udp4);
        assert_eq!(udp.fd, Some(-1));
        assert_eq!(udp.flags, Some(0));
        assert_eq!(udp.backlog, 511);
        assert_eq!(udp.key.as_str(), "127.0.0.1:57695:udp4:-1:0");

        assert_eq!(
            parse(HANDLE_ACK),
            Err(ParseError::NotCluster {
                cmd: Some("NODE_HANDLE_ACK".to_owned())
            })
        );

        assert_eq!(
            parse_listening(LISTENING_TCP),
            ServerAddress {
                address: None,
                port: Some(42167),
                address_type: AddressType::Tcp4,
                fd: None,
            }
        );
        assert_eq!(
            parse_listening(LISTENING_UDP),
            ServerAddress {
                address: Some("127.0.0.1".to_owned()),
                port: Some(57695),
                address_type: AddressType::Udp4,
                fd: Some(-1),
            }
        );
    }

    #[test]
    fn primary_frames() {
        let mut seq = SeqCounter::new();

        let tcp = parse_query(QUERY_TCP);
        let msg = query_server_reply(
            tcp.seq,
            &tcp.key,
            &tcp.data,
            QueryOutcome::Shared,
            seq.next_seq(),
        );
        assert_frame(&envelope(tcp.address_type.handle_type(), msg), REPLY_TCP);

        let udp = parse_query(QUERY_UDP);
        let msg = query_server_reply(
            udp.seq,
            &udp.key,
            &udp.data,
            QueryOutcome::Shared,
            seq.next_seq(),
        );
        assert_frame(&envelope(udp.address_type.handle_type(), msg), REPLY_UDP);
    }
}

mod section_6_4_b_round_robin {
    use super::*;

    const QUERY: &str = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":46627,"addressType":4,"backlog":false,"seq":1}"#;
    const REPLY: &str = r#"{"cmd":"NODE_CLUSTER","errno":null,"key":"null:46627:4:undefined:0","ack":1,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":46627},"seq":0}"#;
    const LISTENING: &str = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":46627,"addressType":4,"backlog":false,"seq":3}"#;

    #[test]
    fn worker_frames() {
        let query = parse_query(QUERY);
        assert_eq!(query.seq, 1);
        assert_eq!(query.address, None);
        assert_eq!(query.backlog, 511);
        assert!(query.address_type.supports_round_robin());
        assert_eq!(query.key.as_str(), "null:46627:4:undefined:0");

        let listening = parse_listening(LISTENING);
        assert_eq!(listening.port, Some(46627));
        assert_eq!(listening.address, None);
    }

    #[test]
    fn primary_frames() {
        let query = parse_query(QUERY);
        let sockname = loopback(46627);
        let reply = query_server_reply(
            query.seq,
            &query.key,
            &query.data,
            QueryOutcome::RoundRobin {
                sockname: Some(&sockname),
            },
            0,
        );
        assert_frame(&reply, REPLY);
    }
}

mod section_6_4_c_error {
    use super::*;

    const REPLY: &str = r#"{"cmd":"NODE_CLUSTER","errno":-98,"key":"null:40307:4:undefined:0","ack":1,"data":null,"seq":8}"#;

    #[test]
    fn primary_frames() {
        let bind_error = std::io::Error::from_raw_os_error(98);
        let errno = Errno::from_io_error(&bind_error);
        assert_eq!(errno.name(), "EADDRINUSE");
        let key = HandleKey::new("null:40307:4:undefined:0");
        let reply = query_server_reply(1, &key, &Value::Null, QueryOutcome::Failed(errno), 8);
        assert_frame(&reply, REPLY);
    }
}

mod section_6_5_newconn {
    use super::*;

    const NEWCONN: &str = r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:46627:4:undefined:0","seq":4}}"#;
    const HANDLE_ACK: &str = r#"{"cmd":"NODE_HANDLE_ACK"}"#;
    const ACCEPTED: &str = r#"{"cmd":"NODE_CLUSTER","ack":4,"accepted":true,"seq":5}"#;

    #[test]
    fn worker_frames() {
        assert!(matches!(
            parse(HANDLE_ACK),
            Err(ParseError::NotCluster { .. })
        ));
        assert_eq!(
            parse(ACCEPTED),
            Ok(FromWorker::Reply {
                ack: 4,
                accepted: Some(true)
            })
        );
    }

    #[test]
    fn primary_frames() {
        let key = HandleKey::new("null:46627:4:undefined:0");
        assert_frame(&envelope(NEWCONN_HANDLE_TYPE, newconn(&key, 4)), NEWCONN);
    }
}

mod section_6_7_shutdown {
    use super::*;

    #[test]
    fn exited_after_disconnect_is_acked_with_its_seq() {
        let request = r#"{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":6}"#;
        let Ok(FromWorker::ExitedAfterDisconnect { seq: request_seq }) = parse(request) else {
            panic!("expected exitedAfterDisconnect");
        };
        assert_frame(
            &exited_after_disconnect_ack(request_seq, 3),
            r#"{"cmd":"NODE_CLUSTER","ack":6,"seq":3}"#,
        );
    }
}

mod section_10_reference {
    use super::*;

    const ONLINE: &str = r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#;
    const QUERY: &str = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":18471,"addressType":4,"flags":0,"backlog":false,"seq":1}"#;
    const KEY: &str = "127.0.0.1:18471:4:undefined:0";
    const USER_MESSAGE: &str = r#"{"hello":"worker"}"#;
    const HANDLE_ACK: &str = r#"{"cmd":"NODE_HANDLE_ACK"}"#;

    fn check_common_worker_frames(listening: &str, close: &str) {
        assert_eq!(parse(ONLINE), Ok(FromWorker::Online));
        let query = parse_query(QUERY);
        assert_eq!(query.seq, 1);
        assert_eq!(query.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(query.port, Some(18471));
        assert_eq!(query.address_type, AddressType::Tcp4);
        assert_eq!(query.flags, Some(0));
        assert!(!query.ipv6_only());
        assert_eq!(query.backlog, 511);
        assert_eq!(query.key.as_str(), KEY);
        assert_eq!(
            parse_listening(listening),
            ServerAddress {
                address: Some("127.0.0.1".to_owned()),
                port: Some(18471),
                address_type: AddressType::Tcp4,
                fd: None,
            }
        );
        assert_eq!(
            parse(close),
            Ok(FromWorker::Close {
                key: HandleKey::new(KEY)
            })
        );
        assert!(matches!(
            parse(HANDLE_ACK),
            Err(ParseError::NotCluster { .. })
        ));
        assert_eq!(
            parse(USER_MESSAGE),
            Err(ParseError::NotCluster { cmd: None })
        );
    }

    mod round_robin {
        use super::*;

        const REPLY: &str = r#"{"cmd":"NODE_CLUSTER","errno":null,"key":"127.0.0.1:18471:4:undefined:0","ack":1,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":18471},"seq":0}"#;
        const LISTENING: &str = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":18471,"addressType":4,"flags":0,"backlog":false,"seq":2}"#;
        const NEWCONN: &str = r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"127.0.0.1:18471:4:undefined:0","seq":1}}"#;
        const ACCEPTED: &str = r#"{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":3}"#;
        const DISCONNECT: &str = r#"{"cmd":"NODE_CLUSTER","act":"disconnect","seq":2}"#;
        const CLOSE: &str =
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"127.0.0.1:18471:4:undefined:0","seq":4}"#;

        #[test]
        fn worker_frames() {
            check_common_worker_frames(LISTENING, CLOSE);
            assert_eq!(
                parse(ACCEPTED),
                Ok(FromWorker::Reply {
                    ack: 1,
                    accepted: Some(true)
                })
            );
        }

        #[test]
        fn primary_frames_in_wire_order() {
            let mut seq = SeqCounter::new();
            let mut data = EchoData::new();
            let query = parse_query(QUERY);
            data.offer(&query.data);
            let sockname = loopback(18471);
            let reply = query_server_reply(
                query.seq,
                &query.key,
                data.value(),
                QueryOutcome::RoundRobin {
                    sockname: Some(&sockname),
                },
                seq.next_seq(),
            );
            assert_frame(&reply, REPLY);

            let newconn_seq = seq.next_seq();
            assert_frame(
                &envelope(NEWCONN_HANDLE_TYPE, newconn(&query.key, newconn_seq)),
                NEWCONN,
            );
            let Ok(FromWorker::Reply { ack, .. }) = parse(ACCEPTED) else {
                panic!("expected a reply");
            };
            assert_eq!(ack, newconn_seq);

            // The user message in between is not a cluster message and takes no seq.
            assert_frame(&disconnect(seq.next_seq()), DISCONNECT);
        }
    }

    mod shared {
        use super::*;

        const REPLY: &str = r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"127.0.0.1:18471:4:undefined:0","ack":1,"data":null,"seq":0}}"#;
        const LISTENING: &str = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":18471,"addressType":4,"flags":0,"backlog":false,"seq":2}"#;
        const DISCONNECT: &str = r#"{"cmd":"NODE_CLUSTER","act":"disconnect","seq":1}"#;
        const CLOSE: &str =
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"127.0.0.1:18471:4:undefined:0","seq":3}"#;

        #[test]
        fn worker_frames() {
            check_common_worker_frames(LISTENING, CLOSE);
        }

        #[test]
        fn primary_frames_in_wire_order() {
            let mut seq = SeqCounter::new();
            let query = parse_query(QUERY);
            let outcome = QueryOutcome::Shared;
            assert!(outcome.sends_fd());
            let msg =
                query_server_reply(query.seq, &query.key, &query.data, outcome, seq.next_seq());
            assert_frame(&envelope(query.address_type.handle_type(), msg), REPLY);
            assert_frame(&disconnect(seq.next_seq()), DISCONNECT);
        }
    }
}
