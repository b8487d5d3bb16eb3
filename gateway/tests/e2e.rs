//! End-to-end: the real `livegate` binary, a WebSocket client from
//! tokio-tungstenite and plain HTTP/1.1 over a TCP socket.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livegate_core::protocol::{ClientFrame, Position, ServerFrame};
use livegate_core::{Encoding, Payload};
use support::Gateway;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gw: &Gateway, encoding: Encoding) -> Ws {
    let mut req = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        encoding.subprotocol().parse().expect("header"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connect");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(encoding.subprotocol())
    );
    assert!(matches!(
        recv(&mut ws, encoding).await,
        ServerFrame::Connected { .. }
    ));
    ws
}

async fn send(ws: &mut Ws, encoding: Encoding, frame: &ClientFrame) {
    let bytes = encoding.encode_client(frame);
    let msg = match encoding {
        Encoding::Json => Message::Text(String::from_utf8(bytes).expect("utf-8").into()),
        Encoding::Msgpack => Message::Binary(bytes.into()),
    };
    ws.send(msg).await.expect("send");
}

async fn recv(ws: &mut Ws, encoding: Encoding) -> ServerFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("no error");
        let bytes = match msg {
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Binary(b) => b.to_vec(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        };
        return encoding.decode_server(&bytes).expect("valid frame");
    }
}

fn publish_n(gw: &Gateway, topic: &str, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        let (status, body) = gw.post(&format!("/api/publish/{topic}"), &format!("{{\"n\":{i}}}"));
        assert_eq!(status, 200, "{body}");
    }
}

fn n_of(frame: &ServerFrame) -> (u64, u64) {
    let ServerFrame::Publication(p) = frame else {
        panic!("expected a publication, got {frame:?}");
    };
    (p.offset, p.data.to_json_value()["n"].as_u64().expect("n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_receives_in_order_and_resumes_exactly_the_gap() {
    let gw = Gateway::start(&[]);
    for encoding in Encoding::ALL {
        let topic = format!("e2e.{encoding:?}").to_lowercase();
        let mut ws = connect(&gw, encoding).await;
        let sub = ClientFrame::Subscribe {
            id: Some(1),
            topic: topic.clone(),
            since: None,
        };
        send(&mut ws, encoding, &sub).await;
        let ServerFrame::Subscribed {
            epoch,
            offset: 0,
            recovered: false,
            ..
        } = recv(&mut ws, encoding).await
        else {
            panic!("expected subscribed at offset 0");
        };
        publish_n(&gw, &topic, 1..=20);
        for i in 1..=20 {
            assert_eq!(n_of(&recv(&mut ws, encoding).await), (i, i));
        }
        ws.close(None).await.expect("close");

        publish_n(&gw, &topic, 21..=25);
        let mut ws = connect(&gw, encoding).await;
        let since = Some(Position {
            epoch: epoch.clone(),
            offset: 20,
        });
        send(
            &mut ws,
            encoding,
            &ClientFrame::Subscribe {
                id: Some(2),
                topic: topic.clone(),
                since,
            },
        )
        .await;
        let ServerFrame::Subscribed {
            id: Some(2),
            offset: 25,
            recovered: true,
            publications,
            ..
        } = recv(&mut ws, encoding).await
        else {
            panic!("expected a recovered subscribe");
        };
        let got: Vec<u64> = publications.iter().map(|p| p.offset).collect();
        assert_eq!(got, vec![21, 22, 23, 24, 25]);
        publish_n(&gw, &topic, 26..=26);
        assert_eq!(n_of(&recv(&mut ws, encoding).await), (26, 26));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publish_follows_the_namespace_and_shutdown_is_announced() {
    let dir = std::env::temp_dir().join(format!("livegate-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let cfg = dir.join("livegate.toml");
    std::fs::write(
        &cfg,
        "[[namespaces]]\nprefix = \"chat.\"\nclient_publish = true\n",
    )
    .expect("write config");
    let mut gw = Gateway::start(&["--config".into(), cfg.to_str().expect("utf-8 path").into()]);
    let enc = Encoding::Json;
    let mut ws = connect(&gw, enc).await;
    let data = Payload::from_json("{\"text\":\"hi\"}").expect("json");
    send(
        &mut ws,
        enc,
        &ClientFrame::Publish {
            id: Some(7),
            topic: "chat.room".into(),
            event: None,
            data: data.clone(),
            msg_id: None,
        },
    )
    .await;
    assert!(matches!(
        recv(&mut ws, enc).await,
        ServerFrame::Ack {
            id: Some(7),
            offset: 1,
            ..
        }
    ));
    send(
        &mut ws,
        enc,
        &ClientFrame::Publish {
            id: Some(8),
            topic: "alerts".into(),
            event: None,
            data,
            msg_id: None,
        },
    )
    .await;
    let ServerFrame::Error {
        id: Some(8), code, ..
    } = recv(&mut ws, enc).await
    else {
        panic!("expected an error");
    };
    assert_eq!(code, "publish_forbidden");

    let status = gw.terminate();
    let ServerFrame::Disconnect {
        code, reconnect, ..
    } = recv(&mut ws, enc).await
    else {
        panic!("expected disconnect");
    };
    assert_eq!((code.as_str(), reconnect), ("shutdown", true));
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(dir);
}
